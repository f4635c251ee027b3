//! The HTTP service the listener runs: s3s's service behind a small
//! front that fixes what s3s cannot answer the way clients expect.
//!
//! - The region of a SigV4 credential scope must be the configured one
//!   (s3s checks only that it is a well-formed name). A scope whose region
//!   is not a lower-case region name (s3cmd signs bucket-less requests
//!   with its default location `US`) gets `AuthorizationHeaderMalformed`
//!   with the right region in a `<Region>` element, as from AWS, and
//!   clients (s3cmd) re-sign for that region and retry. Another valid
//!   region gets the same code without `<Region>`: the message names the
//!   expected region, but SDKs do not silently re-sign and retry (botocore
//!   would). As on AWS, ListBuckets and GetBucketLocation may be signed for
//!   `us-east-1` whatever the configured region.
//! - A presigned URL may not be valid for more than 7 days
//!   (`X-Amz-Expires` at most 604800), as on AWS.
//! - The XML bodies of DeleteObjects and CompleteMultipartUpload are read
//!   here and checked for content outside the root element, which s3s's
//!   parser ignores (see [`crate::xmlcheck`]); the body is handed on
//!   unchanged, so Content-MD5 and checksums are still verified by s3s.

use futures::future::BoxFuture;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse};
use std::sync::Arc;

/// The S3 HTTP service (a hyper `Service`); build it with [`crate::s3_service`].
#[derive(Clone)]
pub struct NitroService {
    inner: S3Service,
    region: Arc<str>,
}

impl std::fmt::Debug for NitroService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NitroService")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

impl NitroService {
    pub(crate) fn new(inner: S3Service, region: String) -> Self {
        Self {
            inner,
            region: region.into(),
        }
    }
}

/// The region of a SigV4 credential scope (`AK/date/region/s3/aws4_request`).
fn scope_region(credential: &str) -> Option<&str> {
    credential.split('/').nth(2)
}

/// The region a request was signed for, from its Authorization header or
/// its presigned `X-Amz-Credential` parameter.
fn signed_region(req: &hyper::Request<hyper::body::Incoming>) -> Option<String> {
    if let Some(auth) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
        let cred = rest
            .split(',')
            .find_map(|p| p.trim().strip_prefix("Credential="))?;
        return scope_region(cred).map(str::to_string);
    }
    let query = req.uri().query()?;
    let cred = query
        .split('&')
        .find_map(|p| p.strip_prefix("X-Amz-Credential="))?;
    let cred = percent_encoding::percent_decode_str(cred)
        .decode_utf8()
        .ok()?;
    scope_region(&cred).map(str::to_string)
}

/// Whether s3s accepts `r` as a region name.
fn valid_region(r: &str) -> bool {
    !r.is_empty()
        && r.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn wrong_region(got: &str, want: &str) -> HttpResponse {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>AuthorizationHeaderMalformed</Code>\
         <Message>The authorization header is malformed; the region '{}' is wrong; expecting '{}'</Message>\
         <Region>{}</Region></Error>",
        xml_escape(got),
        xml_escape(want),
        xml_escape(want)
    );
    let mut resp = HttpResponse::new(s3s::Body::from(body));
    *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for NitroService {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        if let Some(r) = signed_region(&req).filter(|r| !valid_region(r)) {
            let resp = wrong_region(&r, &self.region);
            return Box::pin(async move { Ok(resp) });
        }
        hyper::service::Service::call(&self.inner, req)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_scopes_name_their_region() {
        assert_eq!(scope_region("AK/20240101/US/s3/aws4_request"), Some("US"));
        assert!(!valid_region("US"));
        assert!(valid_region("us-east-1"));
        assert_eq!(xml_escape("<a&b>"), "&lt;a&amp;b&gt;");
    }
}
