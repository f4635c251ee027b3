//! Namespace helpers: buckets to volumes, keys to inodes, and running the
//! blocking core from async code.
//!
//! Objects are regular files and directory markers are directories.
//! Symbolic links, devices, FIFOs and sockets made over NFS are not
//! objects: GET answers `NoSuchKey` and listings skip them (following a
//! link could leave the bucket; its target is a client-side path anyway).

use crate::error::{fs_error, internal};
use crate::key::KeyPath;
use nitrofs_core_fs::{
    Attr, Credentials, FileSystem, FileType, FsError, InodeId, SetAttr, Volume, IMPLICIT_DIR_XATTR,
};
use s3s::{S3Error, S3ErrorCode, S3Result};
use std::sync::Arc;

/// Runs blocking core calls on the blocking pool.
pub async fn blocking<T, F>(fs: &Arc<FileSystem>, f: F) -> S3Result<T>
where
    T: Send + 'static,
    F: FnOnce(&FileSystem) -> S3Result<T> + Send + 'static,
{
    let fs = Arc::clone(fs);
    tokio::task::spawn_blocking(move || f(&fs))
        .await
        .map_err(internal)?
}

/// Runs a short core call here, on the executor, when every metadata
/// record it reads is in memory (`memory_only`): no thread hop. One that
/// would wait for the disk runs on the blocking pool instead, and a
/// durable change it made is synced there before the answer (so `f` may
/// change metadata; chunk reads answer from the page cache or miss; it
/// must not write chunks).
pub async fn quick<T, F>(fs: &Arc<FileSystem>, f: F) -> S3Result<T>
where
    T: Send + 'static,
    F: Fn(&FileSystem) -> S3Result<T> + Send + 'static,
{
    let tried = nitrofs_core_fs::memory_only(|| nitrofs_core_fs::deferring_sync_to(|| f(fs)));
    match tried {
        Some((out, None)) => out,
        Some((out, Some(upto))) => {
            blocking(fs, move |fs| fs.sync_metadata_to(upto).map_err(fs_error)).await?;
            out
        }
        None => blocking(fs, move |fs| f(fs)).await,
    }
}

/// The volume of a bucket, or `NoSuchBucket`.
pub fn volume(fs: &FileSystem, bucket: &str) -> S3Result<Volume> {
    match fs.volume(bucket) {
        Ok(v) => Ok(v),
        Err(FsError::NotFound | FsError::Invalid(_)) => Err(no_such_bucket()),
        Err(e) => Err(fs_error(e)),
    }
}

/// `NoSuchBucket`.
pub fn no_such_bucket() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchBucket,
        "The specified bucket does not exist",
    )
}

/// `NoSuchKey`.
pub fn no_such_key() -> S3Error {
    S3Error::with_message(S3ErrorCode::NoSuchKey, "The specified key does not exist.")
}

/// The error for data sent to a key ending in `/` (a directory).
pub fn directory_holds_no_data() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::InvalidArgument,
        "A key ending in '/' is a directory and cannot hold data.",
    )
}

/// Walks `components` from `root`. `Ok(None)` when a component is missing
/// or a non-final one is not a directory.
pub fn walk(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    components: &[Vec<u8>],
) -> S3Result<Option<Attr>> {
    walk_fs(fs, cred, root, components).map_err(|e| match e {
        // Only the root can fail this way: the bucket is gone.
        FsError::Stale | FsError::NotFound => no_such_bucket(),
        e => fs_error(e),
    })
}

/// [`walk`] with core errors: `Err` only for the root or a real failure.
fn walk_fs(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    components: &[Vec<u8>],
) -> Result<Option<Attr>, FsError> {
    let mut cur = fs.getattr(root)?;
    for c in components {
        if cur.kind != FileType::Directory {
            return Ok(None);
        }
        cur = match fs.lookup(cred, cur.ino, c) {
            Ok(a) => a,
            Err(FsError::NotFound | FsError::NotDir | FsError::Stale) => return Ok(None),
            Err(e) => return Err(e),
        };
    }
    Ok(Some(cur))
}

/// The object a key names: a regular file for `a/b`, a directory for
/// `a/b/`. `Ok(None)` when there is none.
pub fn find_object(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    key: &KeyPath,
) -> S3Result<Option<Attr>> {
    let Some(attr) = walk(fs, cred, root, &key.components)? else {
        return Ok(None);
    };
    let want = if key.dir {
        FileType::Directory
    } else {
        FileType::Regular
    };
    Ok((attr.kind == want).then_some(attr))
}

/// Like [`find_object`] but `NoSuchKey` when absent.
pub fn object(fs: &FileSystem, cred: &Credentials, root: InodeId, key: &KeyPath) -> S3Result<Attr> {
    find_object(fs, cred, root, key)?.ok_or_else(no_such_key)
}

/// Creates the directories `components` under `root` as needed (mode
/// 0755, owned by the caller) and returns the last one.
pub fn mkdir_p(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    components: &[Vec<u8>],
) -> Result<Attr, FsError> {
    let mut cur = fs.getattr(root)?;
    for c in components {
        cur = match fs.lookup(cred, cur.ino, c) {
            Ok(a) if a.kind == FileType::Directory => a,
            Ok(_) => return Err(FsError::NotDir),
            Err(FsError::NotFound) => {
                let set = SetAttr {
                    mode: Some(0o755),
                    ..SetAttr::default()
                };
                match fs.mkdir(cred, cur.ino, c, &set) {
                    Ok((a, _)) => {
                        // A parent made for a key, not asked for: it may
                        // go again with its last object.
                        let tag = [(IMPLICIT_DIR_XATTR.to_vec(), Some(b"1".to_vec()))];
                        fs.set_xattrs(cred, a.ino, &tag)?;
                        a
                    }
                    // Someone else made it meanwhile.
                    Err(FsError::Exists) => {
                        let a = fs.lookup(cred, cur.ino, c)?;
                        if a.kind != FileType::Directory {
                            return Err(FsError::NotDir);
                        }
                        a
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
    }
    Ok(cur)
}

/// After an object under `parents` went away: removes the directories
/// on its path that publish created implicitly and that are now empty,
/// deepest first, so the prefix vanishes as S3 clients expect. Stops at
/// the first directory that stays (explicit, non-empty, or raced by a
/// concurrent PUT, which then simply recreates what it needs).
pub fn prune_implicit_parents(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    parents: &[Vec<u8>],
) -> Result<(), FsError> {
    for depth in (1..=parents.len()).rev() {
        let Some(parent) = walk_fs(fs, cred, root, &parents[..depth - 1])? else {
            return Ok(());
        };
        if parent.kind != FileType::Directory {
            return Ok(());
        }
        let name = &parents[depth - 1];
        let dir = match fs.lookup(cred, parent.ino, name) {
            Ok(d) if d.kind == FileType::Directory => d,
            Ok(_) | Err(FsError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        };
        let implicit = fs.get_xattr(cred, dir.ino, IMPLICIT_DIR_XATTR)?.is_some();
        let marker = fs
            .get_xattr(cred, dir.ino, crate::meta::MARKER.as_bytes())?
            .is_some();
        if !implicit || marker {
            return Ok(());
        }
        match fs.rmdir(cred, parent.ino, name) {
            Ok(_) => {}
            Err(FsError::NotEmpty | FsError::NotFound) => return Ok(()),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The `Credentials` of a signed request's identity; `AccessDenied` when
/// there is none (unsigned requests are decided by
/// [`crate::public::anonymous`] alone).
pub fn require(cred: Option<Credentials>) -> S3Result<Credentials> {
    cred.ok_or_else(crate::public::denied)
}
