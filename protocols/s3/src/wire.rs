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
//! - A request with `Expect: 100-continue` answered before any of its body
//!   was read closes the connection (`Connection: close`). The client was
//!   never told to send the body and may not (botocore does not after a
//!   final status, RFC 9110 §10.1.1 allows both), so the server cannot
//!   know where the next request starts. hyper assumes the body follows
//!   and takes the first Content-Length bytes of the next request for it
//!   when they have already arrived: `HEAD` became `EAD` and failed its
//!   signature check.

use crate::host::NitroHost;
use crate::stall::StallBody;
use crate::xmlcheck::{self, MalformedBody};
use futures::future::BoxFuture;
use s3s::service::S3Service;
use s3s::{HttpError, HttpResponse};
use std::borrow::Cow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The longest a presigned URL may be valid (7 days, as on AWS).
const MAX_PRESIGNED_EXPIRES: u64 = 7 * 24 * 3600;
/// The largest XML body the front reads to check (s3s's own limit for
/// XML bodies); a larger one is left to s3s, which refuses it.
const XML_BODY_LIMIT: u64 = 20 * 1024 * 1024;
/// The region ListBuckets and GetBucketLocation may always be signed for.
const GLOBAL_REGION: &str = "us-east-1";

/// The S3 HTTP service (a hyper `Service`); build it with [`crate::s3_service`].
#[derive(Clone)]
pub struct NitroService {
    inner: S3Service,
    region: Arc<str>,
    host: Option<Arc<NitroHost>>,
    stall: std::time::Duration,
}

impl std::fmt::Debug for NitroService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NitroService")
            .field("region", &self.region)
            .field("host", &self.host)
            .finish_non_exhaustive()
    }
}

impl NitroService {
    pub(crate) fn new(
        inner: S3Service,
        region: String,
        host: Option<NitroHost>,
        stall: std::time::Duration,
    ) -> Self {
        Self {
            inner,
            region: region.into(),
            host: host.map(Arc::new),
            stall,
        }
    }

    /// How long a connection's client may take no response bytes.
    pub(crate) fn stall(&self) -> std::time::Duration {
        self.stall
    }

    /// The answer to a request refused before s3s sees it, if it is.
    fn refuse_early<B>(&self, req: &hyper::Request<B>) -> Option<HttpResponse> {
        let query = req.uri().query().unwrap_or("");
        let presigned = query_param(query, "X-Amz-Algorithm").is_some();
        if presigned {
            let expires = query_param(query, "X-Amz-Expires");
            if let Some(secs) = expires.and_then(|e| e.parse::<u64>().ok()) {
                if secs > MAX_PRESIGNED_EXPIRES {
                    return Some(error_response(
                        "AuthorizationQueryParametersError",
                        &format!(
                            "X-Amz-Expires must be less than a week (in seconds) that is {MAX_PRESIGNED_EXPIRES}"
                        ),
                        None,
                    ));
                }
            }
        }
        let signed = signed_region(req)?;
        if signed.region == *self.region {
            return None;
        }
        let valid = valid_region(&signed.region);
        if valid && signed.region == GLOBAL_REGION && self.is_global(req) {
            return None;
        }
        let (code, what) = if signed.presigned {
            (
                "AuthorizationQueryParametersError",
                "Error parsing the X-Amz-Credential parameter",
            )
        } else {
            (
                "AuthorizationHeaderMalformed",
                "The authorization header is malformed",
            )
        };
        let message = format!(
            "{what}; the region '{}' is wrong; expecting '{}'",
            signed.region, self.region
        );
        // Only a malformed region names the right one in `<Region>`: s3cmd
        // needs it to recover from signing with `US`; SDKs would use it
        // to re-sign any request for the server's region behind the
        // caller's back.
        let region = (!valid).then_some(&*self.region);
        Some(error_response(code, &message, region))
    }

    /// Whether `req` is ListBuckets or GetBucketLocation, which AWS accepts
    /// signed for `us-east-1` in every region.
    fn is_global<B>(&self, req: &hyper::Request<B>) -> bool {
        if req.method() != hyper::Method::GET {
            return false;
        }
        let query = req.uri().query().unwrap_or("");
        if query_param(query, "location").is_some() {
            return true;
        }
        let host_bucket = match (&self.host, req.headers().get(hyper::header::HOST)) {
            (Some(parser), Some(host)) => host.to_str().ok().and_then(|h| parser.bucket(h)),
            _ => None,
        };
        req.uri().path() == "/" && host_bucket.is_none()
    }
}

/// Whether the front reads the body of `req` to check its XML: a
/// DeleteObjects or CompleteMultipartUpload request with a plain body of
/// known, bounded length.
fn xml_body_to_check<B>(req: &hyper::Request<B>) -> bool {
    if req.method() != hyper::Method::POST {
        return false;
    }
    let query = req.uri().query().unwrap_or("");
    if query_param(query, "delete").is_none() && query_param(query, "uploadId").is_none() {
        return false;
    }
    let header = |name: &str| {
        req.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    };
    let streaming = header("x-amz-content-sha256").starts_with("STREAMING-")
        || header("content-encoding").contains("aws-chunked");
    let length = header("content-length").parse::<u64>().ok();
    !streaming && length.is_some_and(|n| n <= XML_BODY_LIMIT)
}

/// The value of the first query parameter `name` (percent-decoded).
fn query_param<'a>(query: &'a str, name: &str) -> Option<Cow<'a, str>> {
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_encoding::percent_decode_str(k).decode_utf8().ok()?;
        (k == name).then(|| percent_encoding::percent_decode_str(v).decode_utf8_lossy())
    })
}

/// The region of a SigV4 credential scope (`AK/date/region/s3/aws4_request`).
fn scope_region(credential: &str) -> Option<&str> {
    credential.split('/').nth(2)
}

/// The region a request was signed for.
struct SignedRegion {
    region: String,
    /// From a presigned URL's `X-Amz-Credential` (else the Authorization header).
    presigned: bool,
}

/// The region a request was signed for, from its Authorization header or
/// its presigned `X-Amz-Credential` parameter.
fn signed_region<B>(req: &hyper::Request<B>) -> Option<SignedRegion> {
    if let Some(auth) = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    {
        let rest = auth.strip_prefix("AWS4-HMAC-SHA256")?;
        let cred = rest
            .split(',')
            .find_map(|p| p.trim().strip_prefix("Credential="))?;
        return scope_region(cred).map(|r| SignedRegion {
            region: r.to_string(),
            presigned: false,
        });
    }
    let cred = query_param(req.uri().query()?, "X-Amz-Credential")?;
    scope_region(&cred).map(|r| SignedRegion {
        region: r.to_string(),
        presigned: true,
    })
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

/// A 400 S3 error document, with a `<Region>` element if `region` is set.
fn error_response(code: &str, message: &str, region: Option<&str>) -> HttpResponse {
    let region = region
        .map(|r| format!("<Region>{}</Region>", xml_escape(r)))
        .unwrap_or_default();
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>{}</Code>\
         <Message>{}</Message>{region}</Error>",
        xml_escape(code),
        xml_escape(message),
    );
    let mut resp = HttpResponse::new(s3s::Body::from(body));
    *resp.status_mut() = hyper::StatusCode::BAD_REQUEST;
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    resp
}

/// Whether `req` asks for `100 Continue` before it sends a body it has.
fn holds_body_back(req: &hyper::Request<hyper::body::Incoming>) -> bool {
    use hyper::body::Body as _;
    // hyper heeds the last Expect header: any one asking counts here.
    let expects = req
        .headers()
        .get_all(hyper::header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"));
    expects && !req.body().is_end_stream()
}

/// Marks `resp` as the last on its connection.
fn close_after(mut resp: HttpResponse) -> HttpResponse {
    resp.headers_mut().insert(
        hyper::header::CONNECTION,
        hyper::header::HeaderValue::from_static("close"),
    );
    resp
}

impl hyper::service::Service<hyper::Request<hyper::body::Incoming>> for NitroService {
    type Response = HttpResponse;
    type Error = HttpError;
    type Future = BoxFuture<'static, Result<HttpResponse, HttpError>>;

    fn call(&self, req: hyper::Request<hyper::body::Incoming>) -> Self::Future {
        let held_back = holds_body_back(&req);
        if let Some(resp) = self.refuse_early(&req) {
            let resp = if held_back { close_after(resp) } else { resp };
            return Box::pin(async move { Ok(resp) });
        }
        let check_body = xml_body_to_check(&req);
        let inner = self.inner.clone();
        let stall = self.stall;
        Box::pin(async move {
            use hyper::body::Body as _;
            let (mut parts, body) = req.into_parts();
            // A body fails once its client sends nothing for the stall
            // limit; only a held-back one reports whether any of it came;
            // no body at all stays s3s's unboxed hyper body.
            let arrived = held_back.then(|| Arc::new(AtomicBool::new(false)));
            let gave_up = Arc::new(AtomicBool::new(false));
            let mut body = if body.is_end_stream() {
                s3s::Body::from(body)
            } else {
                let watched = StallBody::new(body, stall, Arc::clone(&gave_up));
                s3s::Body::http_body(match &arrived {
                    Some(flag) => watched.reporting_arrival(Arc::clone(flag)),
                    None => watched,
                })
            };
            // What a request whose client stopped sending its body gets,
            // whoever was reading it; the rest of the body never comes.
            let timed_out = || {
                close_after(error_response(
                    "RequestTimeout",
                    &format!(
                        "Your socket connection to the server was not read from or written to within the timeout period ({stall:?})."
                    ),
                    None,
                ))
            };
            if check_body {
                // The limit is the Content-Length checked above.
                match body.store_all_limited(usize::MAX).await {
                    Ok(bytes) if xmlcheck::has_content_outside_root(&bytes) => {
                        parts.extensions.insert(MalformedBody);
                    }
                    Ok(_) => {}
                    Err(_) if gave_up.load(Ordering::Relaxed) => return Ok(timed_out()),
                    Err(e) => {
                        tracing::debug!(error = %e, "reading an XML request body failed");
                        return Ok(error_response(
                            "IncompleteBody",
                            "You did not provide the number of bytes specified by the Content-Length HTTP header.",
                            None,
                        ));
                    }
                }
            }
            let resp = inner.call(hyper::Request::from_parts(parts, body)).await?;
            if gave_up.load(Ordering::Relaxed) {
                return Ok(timed_out());
            }
            match arrived {
                Some(flag) if !flag.load(Ordering::Relaxed) => Ok(close_after(resp)),
                _ => Ok(resp),
            }
        })
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

    fn service(region: &str, domain: Option<&str>) -> NitroService {
        let h = crate::tests::Harness::new();
        let host = domain.map(|d| NitroHost::new(d).unwrap());
        let inner = s3s::service::S3ServiceBuilder::new(h.s3).build();
        NitroService::new(inner, region.into(), host, crate::body::DEFAULT_STALL)
    }

    fn request(method: &str, uri: &str, region: &str) -> hyper::Request<()> {
        hyper::Request::builder()
            .method(method)
            .uri(uri)
            .header(
                "authorization",
                format!(
                    "AWS4-HMAC-SHA256 Credential=AK/20240101/{region}/s3/aws4_request, \
                     SignedHeaders=host, Signature=00"
                ),
            )
            .body(())
            .unwrap()
    }

    async fn refusal(svc: &NitroService, req: &hyper::Request<()>) -> Option<String> {
        let resp = svc.refuse_early(req)?;
        let body = resp.into_body().store_all_limited(1 << 20).await.unwrap();
        Some(String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn requests_must_be_signed_for_the_configured_region() {
        let svc = service("eu-west-3", None);
        assert!(svc
            .refuse_early(&request("GET", "/b", "eu-west-3"))
            .is_none());
        let wrong = refusal(&svc, &request("GET", "/b", "us-east-1"))
            .await
            .unwrap();
        assert!(
            wrong.contains("<Code>AuthorizationHeaderMalformed</Code>"),
            "{wrong}"
        );
        assert!(wrong.contains("expecting 'eu-west-3'"), "{wrong}");
        assert!(
            !wrong.contains("<Region>"),
            "SDKs must not re-sign: {wrong}"
        );
        // s3cmd's `US` is told the region to retry with.
        let us = refusal(&svc, &request("GET", "/", "US")).await.unwrap();
        assert!(us.contains("<Region>eu-west-3</Region>"), "{us}");
        // ListBuckets and GetBucketLocation accept us-east-1 everywhere.
        assert!(svc
            .refuse_early(&request("GET", "/", "us-east-1"))
            .is_none());
        assert!(svc
            .refuse_early(&request("GET", "/b?location", "us-east-1"))
            .is_none());
        assert!(svc
            .refuse_early(&request("PUT", "/", "us-west-2"))
            .is_some());
        let vhost = service("eu-west-3", Some("s3.test"));
        let mut list = request("GET", "/", "us-east-1");
        list.headers_mut()
            .insert("host", "b.s3.test:9000".parse().unwrap());
        assert!(
            vhost.refuse_early(&list).is_some(),
            "ListObjects in vhost style"
        );
        // Presigned URLs.
        let cred = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AK%2F20240101%2Fus-east-1%2Fs3%2Faws4_request";
        let get = |q: &str| {
            hyper::Request::get(format!("/b?{cred}&{q}"))
                .body(())
                .unwrap()
        };
        let svc = service("us-east-1", None);
        assert!(svc.refuse_early(&get("X-Amz-Expires=604800")).is_none());
        let long = refusal(&svc, &get("X-Amz-Expires=604801")).await.unwrap();
        assert!(
            long.contains("<Code>AuthorizationQueryParametersError</Code>"),
            "{long}"
        );
        let other = service("eu-west-3", None);
        let wrong = refusal(&other, &get("X-Amz-Expires=60")).await.unwrap();
        assert!(
            wrong.contains("<Code>AuthorizationQueryParametersError</Code>"),
            "{wrong}"
        );
    }

    #[test]
    fn only_plain_delete_and_complete_bodies_are_read() {
        let post = |uri: &str, headers: &[(&str, &str)]| {
            let mut b = hyper::Request::post(uri);
            for (k, v) in headers {
                b = b.header(*k, *v);
            }
            b.body(()).unwrap()
        };
        let len = [("content-length", "10")];
        assert!(xml_body_to_check(&post("/b?delete", &len)));
        assert!(xml_body_to_check(&post("/b/k?uploadId=x", &len)));
        assert!(!xml_body_to_check(&post("/b?delete", &[])));
        assert!(!xml_body_to_check(&post("/b/k?uploads", &len)));
        assert!(!xml_body_to_check(&post(
            "/b?delete",
            &[
                ("content-length", "10"),
                ("x-amz-content-sha256", "STREAMING-UNSIGNED-PAYLOAD-TRAILER")
            ]
        )));
        assert!(!xml_body_to_check(&post(
            "/b?delete",
            &[("content-length", "99999999999")]
        )));
        assert_eq!(
            query_param("a=1&delete&X-Amz-Credential=a%2Fb", "X-Amz-Credential").as_deref(),
            Some("a/b")
        );
        assert_eq!(query_param("delete", "delete").as_deref(), Some(""));
        assert_eq!(query_param("deleted=1", "delete"), None);
    }
}
