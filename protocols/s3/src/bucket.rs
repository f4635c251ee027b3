//! Bucket operations: a bucket is a volume.
//!
//! Ownership: a bucket's owner is the owner of its root directory. A
//! volume made by CreateBucket is given to the identity that created it
//! (its root directory is chowned to the caller's uid/gid, mode from the
//! canned ACL, 0755 by default); creating an existing bucket answers
//! `BucketAlreadyOwnedByYou` to its owner (and to root) and
//! `BucketAlreadyExists` to others. Only the owner or root may delete a
//! bucket; a bucket whose tree holds only implicit directories (what is
//! left after deleting every object, since DeleteObject keeps directories)
//! is empty: DeleteBucket removes those directories, then the volume. An
//! explicit marker (`PUT dir/`) is an object and keeps the bucket non-empty. ListBuckets lists every volume (there is one namespace, and
//! POSIX permissions decide what each identity can do inside).

use crate::error::fs_error;
use crate::multipart::INDEX_PREFIX;
use crate::{acl, meta, ns, NitroS3};
use nitrofs_core_fs::{access, Credentials, FileSystem, FileType, FsError};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

impl NitroS3 {
    pub(crate) async fn list_buckets_impl(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        let cred = self.cred(&req)?;
        let prefix = req.input.prefix.clone();
        let vols = ns::blocking(&self.fs, |fs| fs.list_volumes().map_err(fs_error)).await?;
        let buckets = vols
            .into_iter()
            .filter(|v| prefix.as_deref().is_none_or(|p| v.name.starts_with(p)))
            .map(|v| Bucket {
                name: Some(v.name),
                creation_date: Some(meta::to_s3_time(v.created)),
                bucket_region: Some(self.region.clone()),
            })
            .collect();
        Ok(S3Response::new(ListBucketsOutput {
            buckets: Some(buckets),
            owner: Some(acl::owner(cred.uid)),
            prefix,
            continuation_token: None,
        }))
    }

    pub(crate) async fn create_bucket_impl(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        acl::refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let mode = acl::canned_mode(input.acl.as_ref().map(|a| a.as_str()), true)?;
        let public = input
            .acl
            .as_ref()
            .is_some_and(|a| crate::public::canned_is_public(a.as_str()));
        let name = input.bucket.clone();
        ns::blocking(&self.fs, move |fs| {
            create_bucket(fs, &cred, &name, mode, public)
        })
        .await?;
        Ok(S3Response::new(CreateBucketOutput {
            location: Some(format!("/{}", input.bucket)),
        }))
    }

    pub(crate) async fn head_bucket_impl(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        let cred = self.cred(&req)?;
        let bucket = req.input.bucket;
        ns::quick(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            let (_, granted) = fs
                .access(&cred, vol.root, access::LOOKUP | access::READ)
                .map_err(fs_error)?;
            if granted == 0 {
                return Err(fs_error(FsError::Access));
            }
            Ok(())
        })
        .await?;
        Ok(S3Response::new(HeadBucketOutput {
            bucket_region: Some(self.region.clone()),
            ..HeadBucketOutput::default()
        }))
    }

    pub(crate) async fn delete_bucket_impl(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        let cred = self.cred(&req)?;
        let bucket = req.input.bucket;
        ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            let root = fs.getattr(vol.root).map_err(fs_error)?;
            if !cred.is_root() && root.uid != cred.uid {
                return Err(fs_error(FsError::Perm));
            }
            // Objects are deleted without their directories; a bucket
            // whose tree holds nothing but directories is empty to S3.
            remove_empty_dirs(fs, &cred, vol.root)?;
            // The bucket's multipart uploads go with it (their parts are
            // not entries, so they would not keep the volume alive).
            let index = fs
                .list_xattrs(&Credentials::root(), vol.root)
                .map_err(fs_error)?;
            match fs.delete_volume(&bucket) {
                Ok(()) => {}
                Err(FsError::NotFound) => return Err(ns::no_such_bucket()),
                Err(e) => return Err(fs_error(e)),
            }
            for (name, _) in index {
                if let Some(id) = name.strip_prefix(INDEX_PREFIX.as_bytes()) {
                    for ino in fs.detached_of_upload(id).unwrap_or_default() {
                        let _ = fs.discard_detached(ino);
                    }
                }
            }
            Ok(())
        })
        .await?;
        Ok(S3Response::with_status(
            DeleteBucketOutput::default(),
            hyper::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn get_bucket_location_impl(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        let _ = self.cred(&req)?;
        let bucket = req.input.bucket;
        ns::quick(&self.fs, move |fs| ns::volume(fs, &bucket).map(|_| ())).await?;
        // us-east-1 is reported as an empty constraint, as AWS does.
        let location_constraint = (self.region != "us-east-1")
            .then(|| BucketLocationConstraint::from(self.region.clone()));
        Ok(S3Response::new(GetBucketLocationOutput {
            location_constraint,
        }))
    }
}

/// Removes the directories under `root` if the tree holds nothing else;
/// `BucketNotEmpty` (and nothing removed) if it holds any file.
fn remove_empty_dirs(fs: &FileSystem, cred: &Credentials, root: u64) -> S3Result<()> {
    let not_empty = || fs_error(FsError::NotEmpty);
    // Pass 1 (read-only): every directory, parents before children.
    let mut dirs: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut todo = vec![root];
    while let Some(dir) = todo.pop() {
        let mut after = Vec::new();
        loop {
            let (entries, more) = fs.list_by_name(cred, dir, &after, 1000).map_err(fs_error)?;
            for e in &entries {
                match e.attr.as_ref().map(|a| a.kind) {
                    Some(FileType::Directory) => {
                        // An explicit marker (`PUT dir/`) is an object.
                        if fs
                            .get_xattr(cred, e.ino, meta::MARKER.as_bytes())
                            .map_err(fs_error)?
                            .is_some()
                        {
                            return Err(not_empty());
                        }
                        dirs.push((dir, e.name.clone()));
                        todo.push(e.ino);
                    }
                    _ => return Err(not_empty()),
                }
            }
            match entries.last() {
                Some(last) if more => after = last.name.clone(),
                _ => break,
            }
        }
    }
    // Pass 2: children before parents.
    for (parent, name) in dirs.iter().rev() {
        match fs.rmdir(cred, *parent, name) {
            Ok(_) | Err(FsError::NotFound) => {}
            Err(FsError::NotEmpty) => return Err(not_empty()),
            Err(e) => return Err(fs_error(e)),
        }
    }
    Ok(())
}

/// Creates the volume of a new bucket and gives it to the caller (public
/// for `x-amz-acl: public-read`).
fn create_bucket(
    fs: &FileSystem,
    cred: &Credentials,
    name: &str,
    mode: u32,
    public: bool,
) -> S3Result<()> {
    match fs.create_volume_owned(name, cred.uid, cred.gid, mode) {
        Ok(vol) if public => crate::public::set_public(fs, cred, vol.root, true).map_err(fs_error),
        Ok(_) => Ok(()),
        Err(FsError::Exists) => {
            let vol = ns::volume(fs, name)?;
            let root = fs.getattr(vol.root).map_err(fs_error)?;
            if cred.is_root() || root.uid == cred.uid {
                Err(S3Error::with_message(
                    S3ErrorCode::BucketAlreadyOwnedByYou,
                    "Your previous request to create the named bucket succeeded and you already own it.",
                ))
            } else {
                Err(S3Error::with_message(
                    S3ErrorCode::BucketAlreadyExists,
                    "The requested bucket name is not available.",
                ))
            }
        }
        Err(FsError::Invalid(_)) => Err(S3Error::with_message(
            S3ErrorCode::InvalidBucketName,
            "The specified bucket is not valid.",
        )),
        Err(e) => Err(fs_error(e)),
    }
}
