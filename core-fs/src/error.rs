//! The one error type of the filesystem core. Protocol adapters map it to
//! their own codes in exactly one function each.

use nitrofs_chunk_store::ChunkError;
use nitrofs_metadata::KvError;

/// Why a filesystem operation failed.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// No such file, directory or volume.
    #[error("not found")]
    NotFound,
    /// The name already exists.
    #[error("already exists")]
    Exists,
    /// A path component or target is not a directory.
    #[error("not a directory")]
    NotDir,
    /// The target is a directory where a non-directory is required.
    #[error("is a directory")]
    IsDir,
    /// The directory is not empty.
    #[error("directory not empty")]
    NotEmpty,
    /// Permission bits deny the caller.
    #[error("permission denied")]
    Access,
    /// The caller is not the owner (or root) for an owner-only change.
    #[error("operation not permitted")]
    Perm,
    /// The device is full.
    #[error("no space left")]
    NoSpace,
    /// A quota hard limit would be exceeded.
    #[error("quota exceeded")]
    QuotaExceeded,
    /// The handle refers to an inode that no longer exists.
    #[error("stale file handle")]
    Stale,
    /// A name is longer than 255 bytes.
    #[error("name too long")]
    NameTooLong,
    /// The target is read-only (snapshot or read-only export).
    #[error("read-only")]
    ReadOnly,
    /// An argument is invalid (bad name, moving a directory into itself…).
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    /// The operation is not supported for this object.
    #[error("not supported")]
    NotSupported,
    /// A guard condition (e.g. ctime guard of SETATTR) did not hold.
    #[error("guard condition failed")]
    GuardFailed,
    /// A file would exceed the maximum file size.
    #[error("file too large")]
    TooBig,
    /// Too many hard links.
    #[error("too many links")]
    TooManyLinks,
    /// Links or renames across volumes.
    #[error("cross-volume link")]
    CrossDevice,
    /// The storage engines failed.
    #[error("I/O error: {0}")]
    Io(String),
}

impl FsError {
    /// Whether retrying the same call may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, FsError::Io(_))
    }
}

impl From<KvError> for FsError {
    fn from(e: KvError) -> Self {
        FsError::Io(e.to_string())
    }
}

impl From<ChunkError> for FsError {
    fn from(e: ChunkError) -> Self {
        match e {
            ChunkError::NoSpace => FsError::NoSpace,
            ChunkError::Io(e) => FsError::Io(e.to_string()),
        }
    }
}

/// Result of a filesystem operation.
pub type FsResult<T> = Result<T, FsError>;
