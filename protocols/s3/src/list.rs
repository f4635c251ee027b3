//! ListObjects (v1) and ListObjectsV2 over [`crate::walk`].
//!
//! One page is one blocking call: the walk reads directories a page at a
//! time and each listed file's xattrs (for its ETag), so a listing of
//! 100,000 keys never holds more than a page in memory. The continuation
//! token is opaque to clients: base64 of the last key or common prefix
//! returned. `max-keys` defaults to and is capped at 1000.

use crate::error::fs_error;
use crate::meta::{self, Stored};
use crate::ns;
use crate::walk::{Item, Walk};
use nitrofs_core_fs::{Credentials, FileSystem, FsError};
use s3s::dto::{CommonPrefix, EncodingType, Object, ObjectStorageClass};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// Largest page.
pub const MAX_KEYS: i32 = 1000;

/// A listing request, after v1/v2 differences are resolved.
#[derive(Debug, Clone, Default)]
pub struct Query {
    /// Only keys starting with this.
    pub prefix: String,
    /// Roll keys up at the first occurrence of this after the prefix.
    pub delimiter: Option<String>,
    /// Start after this key (exclusive).
    pub start_after: Option<String>,
    /// At most this many keys and prefixes.
    pub max_keys: usize,
}

/// One page of a listing.
#[derive(Debug, Default)]
pub struct Page {
    /// Objects, in key order.
    pub objects: Vec<Object>,
    /// Common prefixes, in order.
    pub prefixes: Vec<String>,
    /// Whether more follow.
    pub truncated: bool,
    /// The last key or prefix returned (resume point).
    pub last: Option<String>,
}

/// Parses `max-keys`.
pub fn max_keys(v: Option<i32>) -> S3Result<usize> {
    match v {
        None => Ok(MAX_KEYS as usize),
        Some(n) if n < 0 => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "max-keys must be a non-negative integer",
        )),
        Some(n) => Ok(n.min(MAX_KEYS) as usize),
    }
}

/// Encodes a continuation token.
pub fn encode_token(last: &str) -> String {
    base64_simd::URL_SAFE_NO_PAD.encode_to_string(last.as_bytes())
}

/// Decodes a continuation token.
pub fn decode_token(token: &str) -> S3Result<String> {
    base64_simd::URL_SAFE_NO_PAD
        .decode_to_vec(token)
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            S3Error::with_message(
                S3ErrorCode::InvalidArgument,
                "The continuation token provided is incorrect",
            )
        })
}

/// Lists one page of the bucket whose root is `root`.
pub fn list(fs: &FileSystem, cred: &Credentials, root: u64, q: &Query) -> S3Result<Page> {
    let mut page = Page::default();
    if q.max_keys == 0 {
        return Ok(page);
    }
    // The listed directory is the prefix up to its last '/'.
    let (dir_part, filter) = match q.prefix.rfind('/') {
        Some(i) => q.prefix.split_at(i + 1),
        None => ("", q.prefix.as_str()),
    };
    let mut comps = Vec::new();
    if let Some(body) = dir_part.strip_suffix('/') {
        for c in body.split('/') {
            if c.is_empty() || c == "." || c == ".." {
                return Ok(page);
            }
            comps.push(c.as_bytes().to_vec());
        }
    }
    let dir = match ns::walk(fs, cred, root, &comps)? {
        Some(a) if a.kind == nitrofs_core_fs::FileType::Directory => a,
        _ => return Ok(page),
    };
    let slash = q.delimiter.as_deref() == Some("/");
    let other_delim = q
        .delimiter
        .as_deref()
        .filter(|d| !d.is_empty() && *d != "/");
    let mut walk = Walk::new(
        fs,
        cred,
        dir,
        dir_part.as_bytes().to_vec(),
        filter.as_bytes().to_vec(),
        q.start_after.as_deref().map(str::as_bytes),
        slash,
        q.max_keys + 2,
    )?;
    let mut count = 0usize;
    while let Some(item) = walk.next_item()? {
        let Ok(key) = String::from_utf8(item.key().to_vec()) else {
            continue;
        };
        // General delimiters roll up here.
        if let Some(d) = other_delim {
            if let Some(i) = key[q.prefix.len().min(key.len())..].find(d) {
                let cp = key[..q.prefix.len() + i + d.len()].to_string();
                // A prefix at or before the start key was returned by an
                // earlier page (the walk never enters a '/' prefix at all).
                let seen = q.start_after.as_deref().is_some_and(|s| cp.as_str() <= s);
                if seen || page.prefixes.last() == Some(&cp) {
                    continue;
                }
                if count == q.max_keys {
                    page.truncated = true;
                    break;
                }
                count += 1;
                page.last = Some(cp.clone());
                page.prefixes.push(cp);
                continue;
            }
        }
        if count == q.max_keys {
            page.truncated = true;
            break;
        }
        count += 1;
        page.last = Some(key.clone());
        match item {
            Item::Prefix(_) => page.prefixes.push(key),
            Item::Marker(_, attr) => {
                page.objects
                    .push(object(key, meta::EMPTY_MD5.to_string(), 0, &attr))
            }
            Item::Object(_, attr) => {
                // Two point reads, not a scan of every attribute: a
                // listing needs only the ETag and what it was taken of.
                let stored = [meta::ETAG, meta::ETAG_STAMP]
                    .iter()
                    .map(|name| {
                        let v = fs.get_xattr(cred, attr.ino, name.as_bytes())?;
                        Ok(v.map(|v| (name.as_bytes().to_vec(), v)))
                    })
                    .collect::<Result<Vec<_>, FsError>>();
                let etag = match stored {
                    Ok(x) => {
                        let x: Vec<_> = x.into_iter().flatten().collect();
                        Stored::from_xattrs(&x).etag(&attr)
                    }
                    Err(FsError::Access | FsError::Perm) => meta::derived_etag(&attr),
                    Err(FsError::Stale | FsError::NotFound) => continue,
                    Err(e) => return Err(fs_error(e)),
                };
                page.objects.push(object(key, etag, attr.size, &attr));
            }
        }
    }
    Ok(page)
}

fn object(key: String, etag: String, size: u64, attr: &nitrofs_core_fs::Attr) -> Object {
    Object {
        key: Some(key),
        e_tag: Some(s3s::dto::ETag::Strong(etag)),
        size: Some(i64::try_from(size).unwrap_or(i64::MAX)),
        last_modified: Some(meta::to_s3_time(attr.mtime)),
        storage_class: Some(ObjectStorageClass::from_static(
            ObjectStorageClass::STANDARD,
        )),
        owner: Some(crate::acl::owner(attr.uid)),
        ..Object::default()
    }
}

/// Whether the response must URL-encode keys.
pub fn wants_url(e: Option<&EncodingType>) -> S3Result<bool> {
    match e {
        None => Ok(false),
        Some(e) if e.as_str().eq_ignore_ascii_case(EncodingType::URL) => Ok(true),
        Some(_) => Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Invalid Encoding Method specified in Request",
        )),
    }
}

/// URL-encodes a key for `encoding-type=url` (everything but unreserved
/// characters and `/`).
pub fn url_encode(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SET: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(s, SET).to_string()
}

/// Applies `encoding-type=url` to a page.
pub fn encode_page(page: &mut Page) {
    for o in &mut page.objects {
        if let Some(k) = &mut o.key {
            *k = url_encode(k);
        }
    }
    for p in &mut page.prefixes {
        *p = url_encode(p);
    }
}

/// The common prefixes of a page as DTOs.
pub fn common_prefixes(page: &Page) -> Option<Vec<CommonPrefix>> {
    if page.prefixes.is_empty() {
        return None;
    }
    Some(
        page.prefixes
            .iter()
            .map(|p| CommonPrefix {
                prefix: Some(p.clone()),
            })
            .collect(),
    )
}

impl crate::NitroS3 {
    /// Runs one page of a listing in the blocking pool.
    async fn page(&self, cred: Credentials, bucket: String, q: Query) -> S3Result<Page> {
        ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            list(fs, &cred, vol.root, &q)
        })
        .await
    }

    pub(crate) async fn list_objects_impl(
        &self,
        req: s3s::S3Request<s3s::dto::ListObjectsInput>,
    ) -> S3Result<s3s::S3Response<s3s::dto::ListObjectsOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let url = wants_url(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        let q = Query {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            start_after: input.marker.clone().filter(|m| !m.is_empty()),
            max_keys: max,
        };
        let mut page = self.page(cred, input.bucket.clone(), q).await?;
        let mut next_marker = page.truncated.then(|| page.last.clone()).flatten();
        let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
        if url {
            encode_page(&mut page);
            next_marker = next_marker.map(|m| url_encode(&m));
        }
        Ok(s3s::S3Response::new(s3s::dto::ListObjectsOutput {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix).unwrap_or_default()),
            marker: Some(enc(input.marker).unwrap_or_default()),
            delimiter: enc(input.delimiter),
            max_keys: i32::try_from(max).ok(),
            is_truncated: Some(page.truncated),
            next_marker,
            common_prefixes: common_prefixes(&page),
            contents: Some(page.objects),
            encoding_type: input.encoding_type,
            request_charged: None,
        }))
    }

    pub(crate) async fn list_objects_v2_impl(
        &self,
        req: s3s::S3Request<s3s::dto::ListObjectsV2Input>,
    ) -> S3Result<s3s::S3Response<s3s::dto::ListObjectsV2Output>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let url = wants_url(input.encoding_type.as_ref())?;
        let max = max_keys(input.max_keys)?;
        // A continuation token wins over start-after.
        let start_after = match input
            .continuation_token
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            Some(t) => Some(decode_token(t)?),
            None => input.start_after.clone().filter(|s| !s.is_empty()),
        };
        let q = Query {
            prefix: input.prefix.clone().unwrap_or_default(),
            delimiter: input.delimiter.clone().filter(|d| !d.is_empty()),
            start_after,
            max_keys: max,
        };
        let mut page = self.page(cred, input.bucket.clone(), q).await?;
        if !input.fetch_owner.unwrap_or(false) {
            for o in &mut page.objects {
                o.owner = None;
            }
        }
        let key_count = page.objects.len() + page.prefixes.len();
        let next = page
            .truncated
            .then(|| page.last.as_deref().map(encode_token))
            .flatten();
        let enc = |s: Option<String>| if url { s.map(|s| url_encode(&s)) } else { s };
        if url {
            encode_page(&mut page);
        }
        Ok(s3s::S3Response::new(s3s::dto::ListObjectsV2Output {
            name: Some(input.bucket),
            prefix: Some(enc(input.prefix).unwrap_or_default()),
            delimiter: enc(input.delimiter),
            max_keys: i32::try_from(max).ok(),
            key_count: i32::try_from(key_count).ok(),
            continuation_token: input.continuation_token,
            next_continuation_token: next,
            start_after: enc(input.start_after),
            is_truncated: Some(page.truncated),
            common_prefixes: common_prefixes(&page),
            contents: Some(page.objects),
            encoding_type: input.encoding_type,
            request_charged: None,
        }))
    }
}
