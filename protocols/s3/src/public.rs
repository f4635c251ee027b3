//! Public buckets and anonymous (unsigned) requests.
//!
//! Anonymous requests are denied unless a bucket is explicitly made public:
//! the canned ACL `public-read` (or `public-read-write`) given to
//! PutBucketAcl or CreateBucket marks the bucket's root directory with the
//! xattr [`PUBLIC_XATTR`] = `read`; any other canned ACL clears it, and an
//! ACL document without an `AllUsers` `READ` grant clears it too (a
//! document never makes a bucket public, so writing back the ACL of a
//! private bucket cannot publish it).
//!
//! One function, [`anonymous`], decides every unsigned request: only the
//! read operations in [`ANONYMOUS_READ_OPS`] on a public bucket are let
//! through, and they run in core-fs as `nobody` (uid/gid 65534), so POSIX
//! modes still decide (a 0600 object in a public bucket stays private).
//! Everything else — writes, ACL and multipart operations, ListBuckets,
//! any bucket without the flag or that does not exist — is `AccessDenied`.
//! The decision costs one xattr read on the bucket root.
//!
//! It runs as s3s's access check ([`NitroAccess`], replacing s3s's default
//! "signature required"), which leaves an [`AnonymousGrant`] in the
//! request's extensions; the operations take their credentials from it
//! (see `NitroS3::cred`), so a request that did not pass the check has no
//! credentials at all.

use crate::ns;
use nitrofs_common::NOBODY;
use nitrofs_core_fs::{Credentials, FileSystem, FsError};
use s3s::access::{S3Access, S3AccessContext};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::sync::Arc;

/// The xattr on a bucket's root directory that makes it public-read.
pub const PUBLIC_XATTR: &str = "user.s3.public";
/// Its value.
const PUBLIC_READ: &[u8] = b"read";

/// The operations an anonymous request may perform on a public bucket.
pub const ANONYMOUS_READ_OPS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "ListObjects",
    "ListObjectsV2",
    "HeadBucket",
    "GetBucketLocation",
];

/// The credentials anonymous requests run with in core-fs.
pub fn anonymous_credentials() -> Credentials {
    Credentials::new(NOBODY, NOBODY)
}

/// `AccessDenied` for an anonymous request.
pub fn denied() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::AccessDenied,
        "Anonymous access is allowed only to read public buckets; sign the request.",
    )
}

/// Whether the bucket whose root directory is `root` is public-read. The
/// flag is the adapter's own setting, read with root credentials.
pub fn is_public(fs: &FileSystem, root: u64) -> Result<bool, FsError> {
    let v = fs.get_xattr(&Credentials::root(), root, PUBLIC_XATTR.as_bytes())?;
    Ok(v.as_deref() == Some(PUBLIC_READ))
}

/// Sets (`true`) or clears the public flag of the bucket root `root`, as
/// `cred` (its owner or root: the caller has just changed its mode).
pub fn set_public(
    fs: &FileSystem,
    cred: &Credentials,
    root: u64,
    public: bool,
) -> Result<(), FsError> {
    let value = public.then(|| PUBLIC_READ.to_vec());
    fs.set_xattrs(cred, root, &[(PUBLIC_XATTR.as_bytes().to_vec(), value)])?;
    Ok(())
}

/// What a canned ACL does to the public flag.
pub fn canned_is_public(acl: &str) -> bool {
    matches!(acl, "public-read" | "public-read-write")
}

/// The decision for an anonymous request of operation `op` on `bucket`
/// (`None` for the service root): the credentials it runs with, or
/// `AccessDenied`.
pub fn anonymous(fs: &FileSystem, op: &str, bucket: Option<&str>) -> S3Result<Credentials> {
    if !ANONYMOUS_READ_OPS.contains(&op) {
        return Err(denied());
    }
    let Some(bucket) = bucket else {
        return Err(denied());
    };
    // A missing bucket is denied too: anonymous callers learn nothing.
    let Ok(vol) = fs.volume(bucket) else {
        return Err(denied());
    };
    match is_public(fs, vol.root) {
        Ok(true) => Ok(anonymous_credentials()),
        Ok(false) | Err(_) => Err(denied()),
    }
}

/// Left in a request's extensions by [`NitroAccess`] when an anonymous
/// request was allowed: the credentials it runs with.
#[derive(Clone, Debug)]
pub struct AnonymousGrant(pub Credentials);

/// The credentials of an anonymous request: the grant of the access
/// check, or `AccessDenied`.
pub fn granted(ext: &hyper::http::Extensions) -> S3Result<Credentials> {
    ext.get::<AnonymousGrant>()
        .map(|g| g.0.clone())
        .ok_or_else(denied)
}

/// s3s's access check: signed requests pass (the operations run with the
/// identity's credentials), unsigned ones are decided by [`anonymous`].
pub struct NitroAccess {
    fs: Arc<FileSystem>,
}

impl NitroAccess {
    /// The access check over `fs`.
    pub fn new(fs: Arc<FileSystem>) -> Self {
        Self { fs }
    }
}

#[async_trait::async_trait]
impl S3Access for NitroAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        if cx.credentials().is_some() {
            return Ok(());
        }
        let op = cx.s3_op().name().to_string();
        let bucket = cx.s3_path().get_bucket_name().map(str::to_string);
        // Read-only, and nearly always in memory: decided on this task.
        let cred = ns::quick(&self.fs, move |fs| anonymous(fs, &op, bucket.as_deref())).await?;
        cx.extensions_mut().insert(AnonymousGrant(cred));
        Ok(())
    }
}
