//! Conditional requests (RFC 9110 §13 as S3 applies it).
//!
//! Order: `If-Match` (else `If-Unmodified-Since`) failing is 412;
//! then `If-None-Match` (else `If-Modified-Since`) failing is 304 for
//! GET/HEAD. For copy sources every failing condition is 412. Times
//! compare at whole seconds, as HTTP dates carry them.

use crate::meta;
use s3s::dto::{ETagCondition, Timestamp};
use s3s::{S3Error, S3ErrorCode, S3Result};

/// The conditions of a request.
#[derive(Debug, Default, Clone)]
pub struct Conditions<'a> {
    /// `If-Match`.
    pub if_match: Option<&'a ETagCondition>,
    /// `If-None-Match`.
    pub if_none_match: Option<&'a ETagCondition>,
    /// `If-Modified-Since`.
    pub if_modified_since: Option<&'a Timestamp>,
    /// `If-Unmodified-Since`.
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// The [`Conditions`] of a GetObject or HeadObject input, whose fields
/// have the same names.
macro_rules! read_conditions {
    ($input:expr) => {
        $crate::cond::Conditions {
            if_match: $input.if_match.as_ref(),
            if_none_match: $input.if_none_match.as_ref(),
            if_modified_since: $input.if_modified_since.as_ref(),
            if_unmodified_since: $input.if_unmodified_since.as_ref(),
        }
    };
}
pub(crate) use read_conditions;

fn matches(c: &ETagCondition, etag: &str) -> bool {
    match c {
        ETagCondition::Any => true,
        ETagCondition::ETag(e) => e.value().trim_matches('"') == etag,
    }
}

/// How the conditions came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Go ahead.
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

impl Conditions<'_> {
    /// Evaluates the conditions against an object's ETag (unquoted) and
    /// modification time (seconds).
    pub fn evaluate(&self, etag: &str, mtime_secs: i64) -> Outcome {
        match self.if_match {
            Some(c) if !matches(c, etag) => return Outcome::Failed,
            Some(_) => {}
            None => {
                if let Some(t) = self.if_unmodified_since {
                    if mtime_secs > meta::unix_secs(t) {
                        return Outcome::Failed;
                    }
                }
            }
        }
        match self.if_none_match {
            Some(c) if matches(c, etag) => return Outcome::NotModified,
            Some(_) => {}
            None => {
                if let Some(t) = self.if_modified_since {
                    if mtime_secs <= meta::unix_secs(t) {
                        return Outcome::NotModified;
                    }
                }
            }
        }
        Outcome::Proceed
    }

    /// For GET/HEAD: 304 or 412 as an error (with the ETag and
    /// Last-Modified headers a 304 carries).
    pub fn check_read(&self, etag: &str, mtime: nitrofs_core_fs::Timestamp) -> S3Result<()> {
        match self.evaluate(etag, mtime.secs) {
            Outcome::Proceed => Ok(()),
            Outcome::Failed => Err(precondition_failed()),
            Outcome::NotModified => {
                let mut e = S3Error::new(S3ErrorCode::NotModified);
                let mut h = hyper::HeaderMap::new();
                if let Ok(v) = format!("\"{etag}\"").parse() {
                    h.insert(hyper::header::ETAG, v);
                }
                if let Some(v) =
                    meta::fmt_http_date(&meta::to_s3_time(mtime)).and_then(|d| d.parse().ok())
                {
                    h.insert(hyper::header::LAST_MODIFIED, v);
                }
                e.set_headers(h);
                Err(e)
            }
        }
    }

    /// For copy sources and conditional writes: any failure is 412.
    pub fn check_strict(&self, etag: &str, mtime_secs: i64) -> S3Result<()> {
        match self.evaluate(etag, mtime_secs) {
            Outcome::Proceed => Ok(()),
            _ => Err(precondition_failed()),
        }
    }
}

/// 412.
pub fn precondition_failed() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::PreconditionFailed,
        "At least one of the pre-conditions you specified did not hold",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use s3s::dto::{ETag, TimestampFormat};

    fn t(s: &str) -> Timestamp {
        Timestamp::parse(TimestampFormat::HttpDate, s).unwrap()
    }

    #[test]
    fn if_match_and_if_none_match_compare_etags() {
        let m = ETagCondition::ETag(ETag::Strong("abc".into()));
        let c = Conditions {
            if_match: Some(&m),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("abc", 0), Outcome::Proceed);
        assert_eq!(c.evaluate("xyz", 0), Outcome::Failed);
        let c = Conditions {
            if_none_match: Some(&m),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("abc", 0), Outcome::NotModified);
        assert_eq!(c.evaluate("xyz", 0), Outcome::Proceed);
        let any = ETagCondition::Any;
        let c = Conditions {
            if_none_match: Some(&any),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("abc", 0), Outcome::NotModified);
    }

    #[test]
    fn dates_compare_at_seconds_and_etag_conditions_take_precedence() {
        let since = t("Wed, 21 Oct 2015 07:28:00 GMT");
        let secs = meta::unix_secs(&since);
        let c = Conditions {
            if_modified_since: Some(&since),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("e", secs), Outcome::NotModified);
        assert_eq!(c.evaluate("e", secs + 1), Outcome::Proceed);
        let c = Conditions {
            if_unmodified_since: Some(&since),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("e", secs), Outcome::Proceed);
        assert_eq!(c.evaluate("e", secs + 1), Outcome::Failed);
        // If-Match true wins over If-Unmodified-Since false (S3 documents this).
        let m = ETagCondition::ETag(ETag::Strong("e".into()));
        let c = Conditions {
            if_match: Some(&m),
            if_unmodified_since: Some(&since),
            ..Conditions::default()
        };
        assert_eq!(c.evaluate("e", secs + 100), Outcome::Proceed);
    }
}
