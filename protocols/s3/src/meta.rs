//! Object metadata stored as xattrs, and the ETag rules.
//!
//! | xattr | holds |
//! |---|---|
//! | `user.s3.etag` | ETag without quotes: hex MD5 of a single PUT, `hex(md5(part md5s))-N` after multipart |
//! | `user.s3.etag-stamp` | `size:mtime_secs.mtime_nanos` of the file when the ETag was computed |
//! | `user.s3.content-type`, `…content-encoding`, `…content-disposition`, `…content-language`, `…cache-control`, `…expires` | the standard headers, as sent |
//! | `user.s3.meta.<name>` | `x-amz-meta-<name>` (name lower-cased) |
//! | `user.s3.checksum.<ALGO>`, `user.s3.checksum-type` | see [`crate::checksum`] |
//! | `user.s3.marker` (on a directory) | the directory is an explicit marker object (`PUT dir/`) |
//!
//! ETag rules: the stored ETag is used only while the file's size and
//! mtime still equal its stamp. A file written or changed over NFS (no
//! stamp, or a stale one) gets a *derived* ETag,
//! `hex(md5("nitrofs-etag-v1" ‖ ino ‖ generation ‖ size ‖ mtime))-1`:
//! stable while the file is unchanged, different after any write, and
//! computed without reading the data. It carries a `-1` suffix on purpose:
//! clients (rclone, s3cmd) treat an ETag without `-` as the MD5 of the
//! content and would report a false corruption; with the suffix they
//! treat it as opaque, as they do for multipart ETags.

use crate::checksum;
use nitrofs_core_fs::Attr;
use s3s::dto::{Checksum, Metadata, Timestamp, TimestampFormat};

/// Prefix of every xattr this adapter owns.
pub const PREFIX: &str = "user.s3.";
/// The ETag.
pub const ETAG: &str = "user.s3.etag";
/// When the ETag was computed.
pub const ETAG_STAMP: &str = "user.s3.etag-stamp";
/// `Content-Type`.
pub const CONTENT_TYPE: &str = "user.s3.content-type";
/// `Content-Encoding`.
pub const CONTENT_ENCODING: &str = "user.s3.content-encoding";
/// `Content-Disposition`.
pub const CONTENT_DISPOSITION: &str = "user.s3.content-disposition";
/// `Content-Language`.
pub const CONTENT_LANGUAGE: &str = "user.s3.content-language";
/// `Cache-Control`.
pub const CACHE_CONTROL: &str = "user.s3.cache-control";
/// `Expires` (HTTP date).
pub const EXPIRES: &str = "user.s3.expires";
/// Prefix of user metadata (`x-amz-meta-*`).
pub const USER_META: &str = "user.s3.meta.";
/// Set on a directory made (or claimed) by `PUT dir/`: an explicit marker
/// object, which keeps a bucket non-empty. Directories made implicitly
/// (by a PUT of `dir/key`, or over NFS) do not carry it.
pub const MARKER: &str = "user.s3.marker";

/// MD5 of nothing: the ETag of an empty object and of a directory marker.
pub const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The headers an object carries besides its bytes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct ObjectMeta {
    /// `Content-Type`.
    pub content_type: Option<String>,
    /// `Content-Encoding`.
    pub content_encoding: Option<String>,
    /// `Content-Disposition`.
    pub content_disposition: Option<String>,
    /// `Content-Language`.
    pub content_language: Option<String>,
    /// `Cache-Control`.
    pub cache_control: Option<String>,
    /// `Expires`.
    pub expires: Option<Timestamp>,
    /// `x-amz-meta-*`.
    pub user: Metadata,
    /// Verified checksums.
    pub checksum: Checksum,
}

/// What GET/HEAD/list need to know about a stored object.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Stored {
    /// Metadata headers.
    pub meta: ObjectMeta,
    /// Stored ETag (unquoted) and its stamp.
    pub etag: Option<(String, String)>,
}

impl ObjectMeta {
    /// The xattrs that store this metadata (without the ETag).
    pub fn to_xattrs(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::new();
        let mut put = |name: &str, v: &Option<String>| {
            if let Some(v) = v {
                out.push((name.as_bytes().to_vec(), v.as_bytes().to_vec()));
            }
        };
        put(CONTENT_TYPE, &self.content_type);
        put(CONTENT_ENCODING, &self.content_encoding);
        put(CONTENT_DISPOSITION, &self.content_disposition);
        put(CONTENT_LANGUAGE, &self.content_language);
        put(CACHE_CONTROL, &self.cache_control);
        put(EXPIRES, &self.expires.as_ref().and_then(fmt_http_date));
        let mut user: Vec<_> = self.user.iter().collect();
        user.sort();
        for (k, v) in user {
            out.push((
                format!("{USER_META}{}", k.to_ascii_lowercase()).into_bytes(),
                v.as_bytes().to_vec(),
            ));
        }
        out.extend(checksum::to_xattrs(&self.checksum));
        out
    }
}

impl Stored {
    /// Reads what this adapter stored from an object's xattrs; others are ignored.
    pub fn from_xattrs(xattrs: &[(Vec<u8>, Vec<u8>)]) -> Stored {
        let mut s = Stored::default();
        let mut etag = None;
        let mut stamp = None;
        for (name, value) in xattrs {
            let (Ok(name), Ok(text)) = (std::str::from_utf8(name), std::str::from_utf8(value))
            else {
                continue;
            };
            if !name.starts_with(PREFIX) {
                continue;
            }
            let v = Some(text.to_string());
            match name {
                ETAG => etag = v,
                ETAG_STAMP => stamp = v,
                CONTENT_TYPE => s.meta.content_type = v,
                CONTENT_ENCODING => s.meta.content_encoding = v,
                CONTENT_DISPOSITION => s.meta.content_disposition = v,
                CONTENT_LANGUAGE => s.meta.content_language = v,
                CACHE_CONTROL => s.meta.cache_control = v,
                EXPIRES => s.meta.expires = Timestamp::parse(TimestampFormat::HttpDate, text).ok(),
                _ => {
                    if let Some(k) = name.strip_prefix(USER_META) {
                        s.meta.user.insert(k.to_string(), text.to_string());
                    } else {
                        checksum::from_xattr(&mut s.meta.checksum, name, value);
                    }
                }
            }
        }
        if let (Some(e), Some(st)) = (etag, stamp) {
            s.etag = Some((e, st));
        }
        s
    }

    /// The object's ETag (unquoted), following the rules above.
    pub fn etag(&self, attr: &Attr) -> String {
        match &self.etag {
            Some((etag, stamp)) if *stamp == etag_stamp(attr) => etag.clone(),
            _ => derived_etag(attr),
        }
    }

    /// True when the stored metadata still describes the file's bytes (it
    /// has not been rewritten over NFS since).
    pub fn is_current(&self, attr: &Attr) -> bool {
        matches!(&self.etag, Some((_, stamp)) if *stamp == etag_stamp(attr))
    }
}

/// Largest total size of user metadata (`x-amz-meta-*` names and values), as S3.
pub const USER_META_MAX: usize = 2048;

/// Refuses user metadata larger than S3 allows.
pub fn check_user_meta(m: Option<&Metadata>) -> s3s::S3Result<()> {
    let size: usize = m
        .iter()
        .flat_map(|m| m.iter())
        .map(|(k, v)| k.len() + v.len())
        .sum();
    if size > USER_META_MAX {
        return Err(s3s::S3Error::with_message(
            s3s::S3ErrorCode::MetadataTooLarge,
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(())
}

/// The stamp that ties a stored ETag to one version of the file's bytes.
pub fn etag_stamp(attr: &Attr) -> String {
    format!("{}:{}.{:09}", attr.size, attr.mtime.secs, attr.mtime.nanos)
}

/// The xattrs recording `etag` for a file whose attributes are `attr`.
pub fn etag_xattrs(etag: &str, attr: &Attr) -> Vec<(Vec<u8>, Vec<u8>)> {
    vec![
        (ETAG.as_bytes().to_vec(), etag.as_bytes().to_vec()),
        (
            ETAG_STAMP.as_bytes().to_vec(),
            etag_stamp(attr).into_bytes(),
        ),
    ]
}

/// The ETag of a file no S3 upload described (see the module note).
pub fn derived_etag(attr: &Attr) -> String {
    use s3s::crypto::Checksum as _;
    let mut h = s3s::crypto::Md5::new();
    h.update(b"nitrofs-etag-v1");
    h.update(&attr.ino.to_be_bytes());
    h.update(&attr.generation.to_be_bytes());
    h.update(&attr.size.to_be_bytes());
    h.update(&attr.mtime.secs.to_be_bytes());
    h.update(&attr.mtime.nanos.to_be_bytes());
    format!("{}-1", hex(&h.finalize()))
}

/// Lower-case hex.
pub fn hex(raw: &[u8]) -> String {
    hex_simd::encode_to_string(raw, hex_simd::AsciiCase::Lower)
}

/// The multipart ETag: MD5 of the parts' binary MD5s, then `-N`.
pub fn multipart_etag(part_md5s: &[[u8; 16]]) -> String {
    use s3s::crypto::Checksum as _;
    let mut h = s3s::crypto::Md5::new();
    for m in part_md5s {
        h.update(m);
    }
    format!("{}-{}", hex(&h.finalize()), part_md5s.len())
}

/// Decodes an unquoted hex MD5 ETag.
pub fn parse_md5_etag(etag: &str) -> Option<[u8; 16]> {
    let raw = hex_simd::decode_to_vec(etag.trim_matches('"')).ok()?;
    raw.try_into().ok()
}

/// A timestamp as an RFC 1123 HTTP date.
pub fn fmt_http_date(t: &Timestamp) -> Option<String> {
    let mut buf = Vec::new();
    t.format(TimestampFormat::HttpDate, &mut buf).ok()?;
    String::from_utf8(buf).ok()
}

/// A core timestamp as an S3 timestamp.
pub fn to_s3_time(t: nitrofs_core_fs::Timestamp) -> Timestamp {
    let nanos = i128::from(t.secs) * 1_000_000_000 + i128::from(t.nanos);
    time::OffsetDateTime::from_unix_timestamp_nanos(nanos)
        .map(Timestamp::from)
        .unwrap_or_default()
}

/// Seconds since the epoch of an S3 timestamp.
pub fn unix_secs(t: &Timestamp) -> i64 {
    time::OffsetDateTime::from(t.clone()).unix_timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;
    use nitrofs_core_fs::{FileType, Timestamp as FsTime};

    fn attr(size: u64, mtime: (i64, u32)) -> Attr {
        Attr {
            ino: 42,
            generation: 1,
            volume: 1,
            kind: FileType::Regular,
            mode: 0o644,
            nlink: 1,
            uid: 0,
            gid: 0,
            size,
            used: size,
            rdev: (0, 0),
            atime: FsTime::new(mtime.0, mtime.1),
            mtime: FsTime::new(mtime.0, mtime.1),
            ctime: FsTime::new(mtime.0, mtime.1),
        }
    }

    #[test]
    fn a_stored_etag_is_used_while_the_file_is_unchanged() {
        let a = attr(5, (100, 7));
        let s = Stored::from_xattrs(&etag_xattrs("5d41402abc4b2a76b9719d911017c592", &a));
        assert_eq!(s.etag(&a), "5d41402abc4b2a76b9719d911017c592");
        assert!(s.is_current(&a));
    }

    #[test]
    fn a_file_rewritten_over_nfs_gets_a_new_derived_etag() {
        let a = attr(5, (100, 7));
        let s = Stored::from_xattrs(&etag_xattrs("5d41402abc4b2a76b9719d911017c592", &a));
        let rewritten = attr(5, (101, 0));
        let e = s.etag(&rewritten);
        assert_ne!(e, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(e, derived_etag(&rewritten));
        assert!(!s.is_current(&rewritten));
    }

    #[test]
    fn derived_etags_are_stable_and_change_with_size_or_mtime() {
        let a = attr(10, (5, 5));
        assert_eq!(derived_etag(&a), derived_etag(&a.clone()));
        assert!(derived_etag(&a).ends_with("-1"));
        assert_eq!(derived_etag(&a).len(), 34);
        assert_ne!(derived_etag(&a), derived_etag(&attr(11, (5, 5))));
        assert_ne!(derived_etag(&a), derived_etag(&attr(10, (5, 6))));
    }

    #[test]
    fn the_multipart_etag_is_the_md5_of_part_md5s_with_the_part_count() {
        // Two parts "a" and "b": md5(md5("a") ‖ md5("b")) - 2.
        use s3s::crypto::Checksum as _;
        let a = s3s::crypto::Md5::checksum(b"a");
        let b = s3s::crypto::Md5::checksum(b"b");
        let mut cat = a.to_vec();
        cat.extend_from_slice(&b);
        let want = format!("{}-2", hex(&s3s::crypto::Md5::checksum(&cat)));
        assert_eq!(multipart_etag(&[a, b]), want);
        assert_eq!(parse_md5_etag(&format!("\"{}\"", hex(&a))), Some(a));
        assert_eq!(hex(&s3s::crypto::Md5::checksum(b"")), EMPTY_MD5);
    }

    #[test]
    fn metadata_round_trips_through_xattrs() {
        let mut m = ObjectMeta {
            content_type: Some("text/plain".into()),
            cache_control: Some("no-cache".into()),
            expires: Timestamp::parse(TimestampFormat::HttpDate, "Wed, 21 Oct 2015 07:28:00 GMT")
                .ok(),
            ..ObjectMeta::default()
        };
        m.user.insert("color".into(), "blue".into());
        let s = Stored::from_xattrs(&m.to_xattrs());
        assert_eq!(s.meta, m);
        assert!(s.etag.is_none());
    }
}
