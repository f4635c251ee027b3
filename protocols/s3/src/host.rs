//! Virtual-hosted-style addressing: `bucket.<domain>[:port]` names the
//! bucket in the Host header.
//!
//! s3s's `SingleDomain` compares the whole Host header, port included, so
//! `vhost.s3.example:9000` never matched `s3.example`, and it takes any
//! other domain-like host (`localhost:9000`) as a bucket name (CNAME
//! style). Here the port is ignored, the domain is matched without regard
//! to case, and every host that is not `<bucket>.<domain>` is path-style.

use s3s::host::{S3Host, VirtualHost};
use s3s::S3Result;

/// The virtual-host parser for one base domain.
#[derive(Debug, Clone)]
pub(crate) struct NitroHost {
    /// The base domain, without a port.
    domain: String,
}

impl NitroHost {
    /// A parser for `domain` (a port in it is ignored, as in Host headers).
    pub(crate) fn new(domain: &str) -> Result<Self, String> {
        s3s::host::SingleDomain::new(domain).map_err(|e| e.to_string())?;
        Ok(Self {
            domain: strip_port(domain).to_ascii_lowercase(),
        })
    }

    /// The bucket a Host header names, if it is `<bucket>.<domain>[:port]`.
    pub(crate) fn bucket<'a>(&self, host: &'a str) -> Option<&'a str> {
        let name = strip_port(host)
            .strip_suffix('.')
            .unwrap_or(strip_port(host));
        let split = name.len().checked_sub(self.domain.len() + 1)?;
        let (bucket, rest) = (name.get(..split)?, name.get(split..)?);
        let rest = rest.strip_prefix('.')?;
        (!bucket.is_empty() && rest.eq_ignore_ascii_case(&self.domain)).then_some(bucket)
    }
}

/// `host` without a `:port` suffix (IPv6 literals `[..]` keep their colons).
pub(crate) fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.find(']').and_then(|i| host.get(..=i)).unwrap_or(host);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

impl S3Host for NitroHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<VirtualHost<'a>> {
        Ok(match self.bucket(host) {
            Some(bucket) => VirtualHost::new(self.domain.as_str()).with_bucket(bucket),
            None => VirtualHost::new(host),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bucket_is_the_label_before_the_domain_whatever_the_port() {
        let h = NitroHost::new("s3.nitro.test").unwrap();
        assert_eq!(h.bucket("vhost.s3.nitro.test:9000"), Some("vhost"));
        assert_eq!(h.bucket("vhost.s3.nitro.test"), Some("vhost"));
        assert_eq!(h.bucket("my.dotted.S3.Nitro.Test:80"), Some("my.dotted"));
        assert_eq!(h.bucket("s3.nitro.test:9000"), None);
        assert_eq!(h.bucket(".s3.nitro.test"), None);
        assert_eq!(h.bucket("xs3.nitro.test"), None);
        assert_eq!(h.bucket("localhost:9000"), None);
        assert_eq!(h.bucket("127.0.0.1:9000"), None);
        assert_eq!(h.bucket("[::1]:9000"), None);
        let vh = h.parse_host_header("localhost:9000").unwrap();
        assert_eq!(vh.bucket(), None, "other hosts are path-style");
        let vh = h.parse_host_header("b.s3.nitro.test:1").unwrap();
        assert_eq!(vh.bucket(), Some("b"));
        assert!(NitroHost::new("not a domain").is_err());
        assert_eq!(strip_port("[::1]:80"), "[::1]");
        assert_eq!(strip_port("a:b"), "a:b");
    }
}
