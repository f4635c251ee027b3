//! Content integrity: Content-MD5 and the `x-amz-checksum-*` family.
//!
//! What s3s 0.14 verifies itself: the SigV4 signature, the
//! `x-amz-content-sha256` of a single-chunk signed payload, every chunk
//! signature of an `aws-chunked` body and the trailer signature. It does
//! NOT verify `Content-MD5` or `x-amz-checksum-{crc32,crc32c,crc64nvme,
//! sha1,sha256}` — in headers or in trailers — so this module does: the
//! body is hashed while it streams to chunks (MD5 always, for the ETag;
//! the checksum algorithms the request names in a checksum header,
//! `x-amz-sdk-checksum-algorithm` or `x-amz-trailer`), and a mismatch is
//! `BadDigest` with the detached file discarded.
//!
//! The checksum the client sent (verified) is stored as the xattr
//! `user.s3.checksum.<ALGO>` (base64, as on the wire) and returned on
//! GET/HEAD when the request has `x-amz-checksum-mode: ENABLED`.

use s3s::checksum::ChecksumHasher;
use s3s::dto::{Checksum, ChecksumType};
use s3s::{S3Error, S3ErrorCode};

/// The checksum algorithms S3 defines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algo {
    /// CRC-32 (ISO-HDLC).
    Crc32,
    /// CRC-32C (Castagnoli).
    Crc32c,
    /// CRC-64/NVME.
    Crc64Nvme,
    /// SHA-1.
    Sha1,
    /// SHA-256.
    Sha256,
}

/// All algorithms, in a fixed order.
pub const ALGOS: [Algo; 5] = [
    Algo::Crc32,
    Algo::Crc32c,
    Algo::Crc64Nvme,
    Algo::Sha1,
    Algo::Sha256,
];

/// Xattr name prefix of stored checksums.
pub const XATTR_PREFIX: &str = "user.s3.checksum.";
/// Xattr holding the checksum type (FULL_OBJECT or COMPOSITE).
pub const XATTR_TYPE: &str = "user.s3.checksum-type";

impl Algo {
    /// The S3 name (`CRC32`, …).
    pub fn name(self) -> &'static str {
        match self {
            Algo::Crc32 => "CRC32",
            Algo::Crc32c => "CRC32C",
            Algo::Crc64Nvme => "CRC64NVME",
            Algo::Sha1 => "SHA1",
            Algo::Sha256 => "SHA256",
        }
    }

    /// Parses an S3 algorithm name (case-insensitive).
    pub fn parse(s: &str) -> Option<Algo> {
        ALGOS.into_iter().find(|a| a.name().eq_ignore_ascii_case(s))
    }

    /// The request/response header carrying this checksum.
    pub fn header(self) -> String {
        format!("x-amz-checksum-{}", self.name().to_ascii_lowercase())
    }

    /// The field of a [`Checksum`] for this algorithm.
    pub fn get(self, c: &Checksum) -> Option<&String> {
        match self {
            Algo::Crc32 => c.checksum_crc32.as_ref(),
            Algo::Crc32c => c.checksum_crc32c.as_ref(),
            Algo::Crc64Nvme => c.checksum_crc64nvme.as_ref(),
            Algo::Sha1 => c.checksum_sha1.as_ref(),
            Algo::Sha256 => c.checksum_sha256.as_ref(),
        }
    }

    /// Sets the field of a [`Checksum`] for this algorithm.
    pub fn set(self, c: &mut Checksum, v: Option<String>) {
        match self {
            Algo::Crc32 => c.checksum_crc32 = v,
            Algo::Crc32c => c.checksum_crc32c = v,
            Algo::Crc64Nvme => c.checksum_crc64nvme = v,
            Algo::Sha1 => c.checksum_sha1 = v,
            Algo::Sha256 => c.checksum_sha256 = v,
        }
    }

    fn enable(self, h: &mut ChecksumHasher) {
        use s3s::crypto::Checksum as _;
        match self {
            Algo::Crc32 => h.crc32 = Some(s3s::crypto::Crc32::new()),
            Algo::Crc32c => h.crc32c = Some(s3s::crypto::Crc32c::new()),
            Algo::Crc64Nvme => h.crc64nvme = Some(s3s::crypto::Crc64Nvme::new()),
            Algo::Sha1 => h.sha1 = Some(s3s::crypto::Sha1::new()),
            Algo::Sha256 => h.sha256 = Some(s3s::crypto::Sha256::new()),
        }
    }

    /// The checksum of `data` with this algorithm, raw bytes.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use s3s::crypto::Checksum as _;
        match self {
            Algo::Crc32 => s3s::crypto::Crc32::checksum(data).to_vec(),
            Algo::Crc32c => s3s::crypto::Crc32c::checksum(data).to_vec(),
            Algo::Crc64Nvme => s3s::crypto::Crc64Nvme::checksum(data).to_vec(),
            Algo::Sha1 => s3s::crypto::Sha1::checksum(data).as_ref().to_vec(),
            Algo::Sha256 => s3s::crypto::Sha256::checksum(data).as_ref().to_vec(),
        }
    }
}

/// What a request asks to be checked, and the values it claims.
#[derive(Debug, Default, Clone)]
pub struct Expect {
    /// Base64 MD5 from `Content-MD5`.
    pub content_md5: Option<String>,
    /// Checksum values from headers (trailer values are read after the body).
    pub values: Checksum,
    /// Algorithms to compute (named by a header, the SDK algorithm header or the trailer).
    pub algos: Vec<Algo>,
    /// Algorithms whose value arrives in the trailer.
    pub trailer: Vec<Algo>,
}

impl Expect {
    /// Collects the checks a request asks for from its checksum fields,
    /// `x-amz-sdk-checksum-algorithm` and the `x-amz-trailer` header.
    pub fn from_request(
        headers: &hyper::HeaderMap,
        content_md5: Option<&String>,
        values: Checksum,
        sdk_algorithm: Option<&str>,
    ) -> Result<Expect, S3Error> {
        let mut e = Expect {
            content_md5: content_md5.cloned(),
            values,
            ..Expect::default()
        };
        for a in ALGOS {
            if a.get(&e.values).is_some() {
                e.algos.push(a);
            }
        }
        if let Some(name) = sdk_algorithm {
            let a = Algo::parse(name).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "Unsupported x-amz-sdk-checksum-algorithm",
                )
            })?;
            if !e.algos.contains(&a) {
                e.algos.push(a);
            }
        }
        for v in headers.get_all("x-amz-trailer") {
            let Ok(v) = v.to_str() else { continue };
            for name in v.split(',') {
                let name = name.trim().to_ascii_lowercase();
                if let Some(a) = ALGOS.into_iter().find(|a| a.header() == name) {
                    e.trailer.push(a);
                    if !e.algos.contains(&a) {
                        e.algos.push(a);
                    }
                }
            }
        }
        Ok(e)
    }

    /// A hasher computing every algorithm asked for.
    pub fn hasher(&self) -> ChecksumHasher {
        let mut h = ChecksumHasher::default();
        for a in &self.algos {
            a.enable(&mut h);
        }
        h
    }

    /// Compares what was computed with what the client sent (headers, then
    /// the trailer). Returns the verified checksums to store and return.
    pub fn verify(
        &self,
        md5: &[u8; 16],
        computed: &Checksum,
        trailers: Option<&hyper::HeaderMap>,
    ) -> Result<Checksum, S3Error> {
        if let Some(want) = &self.content_md5 {
            let Ok(raw) = base64_simd::STANDARD.decode_to_vec(want.trim()) else {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidDigest,
                    "The Content-MD5 you specified is not valid.",
                ));
            };
            if raw.as_slice() != md5.as_slice() {
                return Err(S3Error::with_message(
                    S3ErrorCode::BadDigest,
                    "The Content-MD5 you specified did not match what we received.",
                ));
            }
        }
        let mut out = Checksum::default();
        for &a in &self.algos {
            let got = a.get(computed);
            let mut want = a.get(&self.values).cloned();
            if want.is_none() && self.trailer.contains(&a) {
                want = trailers
                    .and_then(|t| t.get(a.header()))
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.trim().to_string());
            }
            if let Some(want) = want {
                if got != Some(&want) {
                    return Err(S3Error::with_message(
                        S3ErrorCode::BadDigest,
                        format!(
                            "The {} you specified did not match the calculated checksum.",
                            a.name()
                        ),
                    ));
                }
                a.set(&mut out, Some(want));
            } else {
                // Asked for by algorithm only: store what we computed.
                a.set(&mut out, got.cloned());
            }
        }
        if self.algos.is_empty() {
            return Ok(out);
        }
        out.checksum_type = Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
        Ok(out)
    }
}

/// Xattrs storing `c`.
pub fn to_xattrs(c: &Checksum) -> Vec<(Vec<u8>, Vec<u8>)> {
    let mut out = Vec::new();
    for a in ALGOS {
        if let Some(v) = a.get(c) {
            out.push((
                format!("{XATTR_PREFIX}{}", a.name()).into_bytes(),
                v.clone().into_bytes(),
            ));
        }
    }
    if let Some(t) = &c.checksum_type {
        out.push((
            XATTR_TYPE.as_bytes().to_vec(),
            t.as_str().as_bytes().to_vec(),
        ));
    }
    out
}

/// Reads one stored checksum xattr into `c`; false if `name` is not one.
pub fn from_xattr(c: &mut Checksum, name: &str, value: &[u8]) -> bool {
    let Ok(value) = std::str::from_utf8(value) else {
        return false;
    };
    if name == XATTR_TYPE {
        c.checksum_type = Some(ChecksumType::from(value.to_string()));
        return true;
    }
    let Some(algo) = name.strip_prefix(XATTR_PREFIX).and_then(Algo::parse) else {
        return false;
    };
    algo.set(c, Some(value.to_string()));
    true
}

/// Base64 of raw bytes, as checksum headers carry them.
pub fn b64(raw: &[u8]) -> String {
    base64_simd::STANDARD.encode_to_string(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md5(data: &[u8]) -> [u8; 16] {
        use s3s::crypto::Checksum as _;
        s3s::crypto::Md5::checksum(data)
    }

    #[test]
    fn crc32_of_a_known_string_matches_the_aws_value() {
        // CRC32("hello world") = 0x0d4a1185
        assert_eq!(b64(&Algo::Crc32.digest(b"hello world")), "DUoRhQ==");
    }

    #[test]
    fn a_matching_header_checksum_is_verified_and_kept() {
        let values = Checksum {
            checksum_crc32: Some("DUoRhQ==".into()),
            ..Checksum::default()
        };
        let e = Expect::from_request(&hyper::HeaderMap::new(), None, values, None).unwrap();
        let mut h = e.hasher();
        h.update(b"hello world");
        let got = e.verify(&md5(b"hello world"), &h.finalize(), None).unwrap();
        assert_eq!(got.checksum_crc32.as_deref(), Some("DUoRhQ=="));
        assert_eq!(
            got.checksum_type.as_ref().map(|t| t.as_str()),
            Some("FULL_OBJECT")
        );
    }

    #[test]
    fn a_wrong_checksum_or_content_md5_is_bad_digest() {
        let values = Checksum {
            checksum_crc32: Some("AAAAAA==".into()),
            ..Checksum::default()
        };
        let e = Expect::from_request(&hyper::HeaderMap::new(), None, values, None).unwrap();
        let mut h = e.hasher();
        h.update(b"hello world");
        let err = e
            .verify(&md5(b"hello world"), &h.finalize(), None)
            .unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::BadDigest);

        let wrong_md5 = b64(&md5(b"other"));
        let e = Expect::from_request(
            &hyper::HeaderMap::new(),
            Some(&wrong_md5),
            Checksum::default(),
            None,
        )
        .unwrap();
        let err = e
            .verify(&md5(b"hello world"), &Checksum::default(), None)
            .unwrap_err();
        assert_eq!(err.code(), &S3ErrorCode::BadDigest);
    }

    #[test]
    fn a_trailer_checksum_is_read_after_the_body() {
        let mut headers = hyper::HeaderMap::new();
        headers.insert("x-amz-trailer", "x-amz-checksum-crc32c".parse().unwrap());
        let e = Expect::from_request(&headers, None, Checksum::default(), Some("CRC32C")).unwrap();
        assert_eq!(e.algos, [Algo::Crc32c]);
        let mut h = e.hasher();
        h.update(b"abc");
        let computed = h.finalize();
        let mut trailers = hyper::HeaderMap::new();
        trailers.insert(
            "x-amz-checksum-crc32c",
            computed.checksum_crc32c.clone().unwrap().parse().unwrap(),
        );
        let got = e.verify(&md5(b"abc"), &computed, Some(&trailers)).unwrap();
        assert_eq!(got.checksum_crc32c, computed.checksum_crc32c);
        let mut bad = hyper::HeaderMap::new();
        bad.insert("x-amz-checksum-crc32c", "AAAAAA==".parse().unwrap());
        assert!(e.verify(&md5(b"abc"), &computed, Some(&bad)).is_err());
    }

    #[test]
    fn stored_checksums_round_trip_through_xattrs() {
        let c = Checksum {
            checksum_sha256: Some("x".into()),
            checksum_type: Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT)),
            ..Checksum::default()
        };
        let mut back = Checksum::default();
        for (n, v) in to_xattrs(&c) {
            assert!(from_xattr(&mut back, std::str::from_utf8(&n).unwrap(), &v));
        }
        assert_eq!(back, c);
    }
}
