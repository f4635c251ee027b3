//! The one mapping from core-fs errors to S3 error codes.
//!
//! Call sites handle the cases whose S3 code depends on the operation
//! *before* mapping: a missing bucket is `NoSuchBucket` (see
//! [`crate::ns::volume`]), a missing key on GET/HEAD/DELETE is resolved by
//! [`crate::ns::find_object`], `Exists` on CreateBucket is
//! `BucketAlreadyOwnedByYou`, and `NotEmpty` on DELETE of a directory
//! marker is a successful no-op. Everything else goes through [`fs_error`].

use crate::key::KeyError;
use nitrofs_core_fs::FsError;
use s3s::{S3Error, S3ErrorCode};
use std::str::FromStr;

/// Maps a filesystem error to the S3 error a client expects.
pub fn fs_error(e: FsError) -> S3Error {
    use S3ErrorCode as C;
    let (code, msg): (S3ErrorCode, String) = match e {
        FsError::NotFound | FsError::Stale => (C::NoSuchKey, "The specified key does not exist.".into()),
        FsError::Access | FsError::Perm | FsError::ReadOnly => (C::AccessDenied, "Access Denied".into()),
        FsError::Exists => (
            C::OperationAborted,
            "A conflicting operation on this name is in progress; retry.".into(),
        ),
        FsError::NotEmpty => (
            C::BucketNotEmpty,
            "The bucket you tried to delete is not empty".into(),
        ),
        FsError::NoSpace => {
            let mut err = S3Error::with_message(
                custom("InsufficientStorage"),
                "The storage has no space left for this request.",
            );
            err.set_status_code(hyper::StatusCode::INSUFFICIENT_STORAGE);
            return err;
        }
        FsError::QuotaExceeded => {
            let mut err = S3Error::with_message(
                custom("QuotaExceeded"),
                "The request would exceed a quota of the bucket or of the caller.",
            );
            err.set_status_code(hyper::StatusCode::FORBIDDEN);
            return err;
        }
        FsError::NameTooLong => (
            C::KeyTooLongError,
            "A part of the key is longer than 255 bytes.".into(),
        ),
        FsError::Invalid(why) => (C::InvalidArgument, why.into()),
        FsError::NotDir => (
            C::InvalidArgument,
            "A prefix of this key is an object (a file), so it cannot also be a directory.".into(),
        ),
        FsError::IsDir => (
            C::InvalidArgument,
            "This key names a directory (it has objects under 'key/'); it cannot also be an object."
                .into(),
        ),
        FsError::NotSupported => (C::NotImplemented, "Not supported for this object.".into()),
        FsError::GuardFailed => (C::PreconditionFailed, "A precondition did not hold.".into()),
        FsError::TooBig => (C::EntityTooLarge, "The object is too large.".into()),
        FsError::TooManyLinks | FsError::CrossDevice => (C::InvalidRequest, e.to_string()),
        FsError::Io(ref why) => {
            // A memory-only attempt's miss is not a failure: the call
            // runs again where it may wait (`ns::quick`).
            if nitrofs_core_fs::memory_read_missed() {
                tracing::debug!(error = %why, "not in memory; running again");
            } else {
                tracing::error!(error = %why, "storage I/O error");
            }
            (C::InternalError, "We encountered an internal error. Please try again.".into())
        }
    };
    S3Error::with_message(code, msg)
}

/// Maps a refused key.
pub fn key_error(e: KeyError) -> S3Error {
    match e {
        KeyError::TooLong(why) => S3Error::with_message(S3ErrorCode::KeyTooLongError, why),
        KeyError::Invalid(why) => S3Error::with_message(S3ErrorCode::InvalidArgument, why),
    }
}

/// An error code S3 uses that s3s does not name.
pub(crate) fn custom(code: &str) -> S3ErrorCode {
    match S3ErrorCode::from_str(code) {
        Ok(c) => c,
        Err(never) => match never {},
    }
}

/// An internal failure that is not a filesystem error (a task that
/// panicked, a corrupt record of ours).
pub fn internal(what: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %what, "internal error");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::StatusCode;

    fn code_and_status(e: FsError) -> (String, Option<StatusCode>) {
        let err = fs_error(e);
        let status = err.status_code();
        (err.code().as_str().to_string(), status)
    }

    #[test]
    fn every_fs_error_has_the_s3_code_clients_expect() {
        let cases = [
            (FsError::NotFound, "NoSuchKey", 404),
            (FsError::Stale, "NoSuchKey", 404),
            (FsError::Access, "AccessDenied", 403),
            (FsError::Perm, "AccessDenied", 403),
            (FsError::ReadOnly, "AccessDenied", 403),
            (FsError::NotEmpty, "BucketNotEmpty", 409),
            (FsError::NoSpace, "InsufficientStorage", 507),
            (FsError::QuotaExceeded, "QuotaExceeded", 403),
            (FsError::NameTooLong, "KeyTooLongError", 400),
            (FsError::Invalid("x"), "InvalidArgument", 400),
            (FsError::NotDir, "InvalidArgument", 400),
            (FsError::IsDir, "InvalidArgument", 400),
            (FsError::TooBig, "EntityTooLarge", 400),
            (FsError::GuardFailed, "PreconditionFailed", 412),
            (FsError::Io("disk".into()), "InternalError", 500),
        ];
        for (e, code, status) in cases {
            let what = format!("{e:?}");
            let (c, s) = code_and_status(e);
            assert_eq!(c, code, "{what}");
            assert_eq!(s.map(|s| s.as_u16()), Some(status), "{what}");
        }
    }

    #[test]
    fn refused_keys_map_to_invalid_argument_or_key_too_long() {
        assert_eq!(
            key_error(KeyError::Invalid("x")).code(),
            &S3ErrorCode::InvalidArgument
        );
        assert_eq!(
            key_error(KeyError::TooLong("x")).code(),
            &S3ErrorCode::KeyTooLongError
        );
    }
}
