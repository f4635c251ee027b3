//! PutObject, GetObject, HeadObject, DeleteObject, DeleteObjects.
//!
//! A PUT never shows a partial object: the body streams into a detached
//! file (`create_detached(Transient)`), is verified (Content-MD5,
//! checksums), and is then published under its name with its metadata in
//! one transaction; a failed PUT discards the detached file, and one that
//! a crash interrupts is deleted at the next start. A body small enough
//! to be kept inline (`inline_max`) needs no detached file: it is
//! verified in memory, and the file, its bytes and its name are made in
//! one transaction (`publish_new_if`).
//!
//! DELETE is idempotent (a missing key is 204) and keeps directories:
//! removing `a/b/c` leaves `a/b/` in place (an empty directory then lists
//! as the marker `a/b/`), which is what NFS users of the same tree expect.
//! DELETE of a marker `d/` removes the directory when it is empty; when it
//! is not, only the explicit-marker tag goes (the directory stays for its
//! contents, and is listed through them).

use crate::checksum::Expect;
use crate::cond::{read_conditions, Conditions};
use crate::error::{fs_error, internal, key_error};
use crate::key::{parse_key, KeyPath};
use crate::meta::{self, ObjectMeta, Stored};
use crate::{acl, body, ns, NitroS3};
use nitrofs_core_fs::{Attr, Credentials, FileSystem, FileType, FsError};
use nitrofs_core_fs::{InodeId, PublishIf, SetAttr};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

/// Default Content-Type of objects stored without one (as S3).
const DEFAULT_CONTENT_TYPE: &str = "binary/octet-stream";

/// Checksum values a request carries in its fields.
pub(crate) fn checksum_of(
    crc32: Option<String>,
    crc32c: Option<String>,
    crc64nvme: Option<String>,
    sha1: Option<String>,
    sha256: Option<String>,
) -> Checksum {
    Checksum {
        checksum_crc32: crc32,
        checksum_crc32c: crc32c,
        checksum_crc64nvme: crc64nvme,
        checksum_sha1: sha1,
        checksum_sha256: sha256,
        checksum_type: None,
    }
}

/// An object's state as GET/HEAD see it.
pub(crate) struct Found {
    pub attr: Attr,
    pub stored: Stored,
    pub etag: String,
    pub size: u64,
}

/// How many times a GET looks its object up when the object is replaced
/// each time before its body is read (a small one) or opened.
const GET_ATTEMPTS: u32 = 3;

/// Looks up an object and its metadata (needs read permission).
pub(crate) fn find(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    key: &KeyPath,
) -> S3Result<Found> {
    let attr = ns::object(fs, cred, root, key)?;
    let xattrs = match fs.list_xattrs(cred, attr.ino) {
        Ok(x) => x,
        Err(FsError::Stale | FsError::NotFound) => return Err(ns::no_such_key()),
        Err(e) => return Err(fs_error(e)),
    };
    let stored = Stored::from_xattrs(&xattrs);
    let (etag, size) = if attr.kind == FileType::Directory {
        (meta::EMPTY_MD5.to_string(), 0)
    } else {
        (stored.etag(&attr), attr.size)
    };
    Ok(Found {
        attr,
        stored,
        etag,
        size,
    })
}

impl NitroS3 {
    pub(crate) async fn put_object_impl(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        let cred = self.cred(&req)?;
        let S3Request {
            input,
            headers,
            trailing_headers,
            ..
        } = req;
        let key = parse_key(&input.key).map_err(key_error)?;
        meta::check_user_meta(input.metadata.as_ref())?;
        let bucket = input.bucket.clone();
        let vol = ns::quick(&self.fs, move |fs| ns::volume(fs, &bucket)).await?;
        acl::refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let mode = acl::canned_mode(input.acl.as_ref().map(|a| a.as_str()), key.dir)?;
        if key.dir {
            return self
                .put_marker(&cred, vol.root, key, mode, input.body, input.content_length)
                .await;
        }
        let expect = Expect::from_request(
            &headers,
            input.content_md5.as_ref(),
            checksum_of(
                input.checksum_crc32,
                input.checksum_crc32c,
                input.checksum_crc64nvme,
                input.checksum_sha1,
                input.checksum_sha256,
            ),
            input.checksum_algorithm.as_ref().map(|a| a.as_str()),
        )?;
        let mut object_meta = ObjectMeta {
            content_type: input.content_type.clone(),
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            user: input.metadata.unwrap_or_default(),
            checksum: Checksum::default(),
        };
        let (if_match, if_none_match) = (input.if_match, input.if_none_match);
        let c2 = cred.clone();
        let upload = body::Upload::new(input.body, input.content_length, expect, trailing_headers);
        let target = body::Target::New {
            volume: vol.id,
            mode,
        };
        let finish = move |fs: &FileSystem, landed, w: body::Written, verified| {
            object_meta.checksum = verified;
            let etag = meta::hex(&w.md5);
            let cond = if if_match.is_some() || if_none_match.is_some() {
                check_overwrite(
                    fs,
                    &c2,
                    vol.root,
                    &key,
                    if_match.as_ref(),
                    if_none_match.as_ref(),
                )?
            } else {
                PublishIf::Always
            };
            let mut x = object_meta.to_xattrs();
            let path = &key.components;
            // The condition is checked again inside the publishing
            // transaction, so a racing writer cannot slip in between.
            match landed {
                body::Landed::Memory(data) => {
                    let xattrs = |attr: &Attr| {
                        x.extend(meta::etag_xattrs(&etag, attr));
                        x
                    };
                    fs.publish_new_if(&c2, vol.id, vol.root, path, mode, &data, xattrs, cond)
                }
                body::Landed::File(ino) => {
                    let attr = fs.getattr(ino).map_err(fs_error)?;
                    x.extend(meta::etag_xattrs(&etag, &attr));
                    fs.publish_if(&c2, ino, vol.root, path, &x, cond)
                }
            }
            .map_err(fs_error)?;
            Ok((etag, object_meta.checksum, w.size))
        };
        let (etag, checksum, size) =
            body::write_body(&self.fs, &cred, target, upload, finish).await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(etag)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            checksum_type: checksum.checksum_type,
            size: i64::try_from(size).ok(),
            ..PutObjectOutput::default()
        }))
    }

    /// PUT `d/`: creates the directory (and its parents). Markers carry no
    /// bytes.
    async fn put_marker(
        &self,
        cred: &Credentials,
        root: InodeId,
        key: KeyPath,
        mode: u32,
        body: Option<StreamingBlob>,
        content_length: Option<i64>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        if content_length.is_some_and(|n| n > 0) {
            return Err(ns::directory_holds_no_data());
        }
        if let Some(mut b) = body {
            while let Some(chunk) = futures::StreamExt::next(&mut b).await {
                let chunk = chunk.map_err(|e| {
                    S3Error::with_message(S3ErrorCode::IncompleteBody, e.to_string())
                })?;
                if !chunk.is_empty() {
                    return Err(ns::directory_holds_no_data());
                }
            }
        }
        let cred = cred.clone();
        ns::blocking(&self.fs, move |fs| {
            let (parents, last) = (key.parents(), key.name());
            let parent = ns::mkdir_p(fs, &cred, root, parents).map_err(fs_error)?;
            let set = SetAttr {
                mode: Some(mode),
                ..SetAttr::default()
            };
            let dir = match fs.mkdir(&cred, parent.ino, last, &set) {
                Ok((a, _)) => a,
                Err(FsError::Exists) => match fs.lookup(&cred, parent.ino, last) {
                    Ok(a) if a.kind == FileType::Directory => a,
                    Ok(_) => return Err(fs_error(FsError::NotDir)),
                    Err(e) => return Err(fs_error(e)),
                },
                Err(e) => return Err(fs_error(e)),
            };
            // Best effort: a directory the caller may not tag stays implicit.
            let tag = [(meta::MARKER.as_bytes().to_vec(), Some(b"1".to_vec()))];
            if let Err(e) = fs.set_xattrs(&cred, dir.ino, &tag) {
                tracing::debug!(error = %e, "directory marker not tagged");
            }
            Ok(())
        })
        .await?;
        Ok(S3Response::new(PutObjectOutput {
            e_tag: Some(ETag::Strong(meta::EMPTY_MD5.to_string())),
            size: Some(0),
            ..PutObjectOutput::default()
        }))
    }

    /// Looks up an object for GET or HEAD (on the connection's task when
    /// its records are in memory) and checks the request's conditions;
    /// returns it with the byte range to send (start, end, Content-Range).
    async fn find_for_read(
        &self,
        cred: &Credentials,
        bucket: &str,
        key: &KeyPath,
        conditions: Conditions<'_>,
        range: Option<&Range>,
    ) -> S3Result<(Found, (u64, u64, Option<String>))> {
        let (bucket, c2, key) = (bucket.to_string(), cred.clone(), key.clone());
        let found = ns::quick(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            find(fs, &c2, vol.root, &key)
        })
        .await?;
        conditions.check_read(&found.etag, found.attr.mtime)?;
        let range = range_of(range, found.size)?;
        Ok((found, range))
    }

    pub(crate) async fn get_object_impl(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = parse_key(&input.key).map_err(key_error)?;
        // A small body is read before the answer, a larger one opened: an
        // object replaced between its lookup and then is looked up again.
        let mut attempts = 0;
        let (found, start, end, content_range, body) = loop {
            attempts += 1;
            let conditions = read_conditions!(input);
            let (found, (start, end, content_range)) = self
                .find_for_read(&cred, &input.bucket, &key, conditions, input.range.as_ref())
                .await?;
            let body = if end <= start {
                None
            } else {
                let (ino, size) = (found.attr.ino, found.size);
                let read = if end - start <= body::SMALL_READ {
                    body::read_small(&self.fs, &cred, ino, start, end).await?
                } else {
                    body::open_body(&self.fs, &cred, ino, size, start, end, self.stall).await?
                };
                match read {
                    Some(b) => Some(b),
                    None if attempts < GET_ATTEMPTS => continue,
                    None => {
                        return Err(internal("the object kept being replaced while it was read"))
                    }
                }
            };
            break (found, start, end, content_range, body);
        };
        let full = content_range.is_none();
        let checksum = checksums_to_return(&found, input.checksum_mode.as_ref(), full);
        let m = found.stored.meta;
        Ok(S3Response::new(GetObjectOutput {
            body,
            accept_ranges: Some("bytes".to_string()),
            content_length: i64::try_from(end - start).ok(),
            content_range,
            content_type: Some(
                m.content_type
                    .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string()),
            ),
            content_encoding: m.content_encoding,
            content_disposition: m.content_disposition,
            content_language: m.content_language,
            cache_control: m.cache_control,
            expires: m.expires,
            metadata: (!m.user.is_empty()).then_some(m.user),
            e_tag: Some(ETag::Strong(found.etag)),
            last_modified: Some(meta::to_s3_time(found.attr.mtime)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            checksum_type: checksum.checksum_type,
            ..GetObjectOutput::default()
        }))
    }

    pub(crate) async fn head_object_impl(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = parse_key(&input.key).map_err(key_error)?;
        let conditions = read_conditions!(input);
        let (found, (start, end, content_range)) = self
            .find_for_read(&cred, &input.bucket, &key, conditions, input.range.as_ref())
            .await?;
        let checksum = checksums_to_return(
            &found,
            input.checksum_mode.as_ref(),
            content_range.is_none(),
        );
        let m = found.stored.meta;
        let content_type = input
            .response_content_type
            .or(m.content_type)
            .unwrap_or_else(|| DEFAULT_CONTENT_TYPE.to_string());
        Ok(S3Response::new(HeadObjectOutput {
            accept_ranges: Some("bytes".to_string()),
            content_length: i64::try_from(end - start).ok(),
            content_range,
            content_type: Some(content_type),
            content_encoding: input.response_content_encoding.or(m.content_encoding),
            content_disposition: input.response_content_disposition.or(m.content_disposition),
            content_language: input.response_content_language.or(m.content_language),
            cache_control: input.response_cache_control.or(m.cache_control),
            expires: input.response_expires.or(m.expires),
            metadata: (!m.user.is_empty()).then_some(m.user),
            e_tag: Some(ETag::Strong(found.etag)),
            last_modified: Some(meta::to_s3_time(found.attr.mtime)),
            checksum_crc32: checksum.checksum_crc32,
            checksum_crc32c: checksum.checksum_crc32c,
            checksum_crc64nvme: checksum.checksum_crc64nvme,
            checksum_sha1: checksum.checksum_sha1,
            checksum_sha256: checksum.checksum_sha256,
            checksum_type: checksum.checksum_type,
            ..HeadObjectOutput::default()
        }))
    }

    pub(crate) async fn delete_object_impl(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = parse_key(&input.key).map_err(key_error)?;
        let bucket = input.bucket;
        let if_match = input.if_match;
        ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            if let Some(m) = &if_match {
                let found = find(fs, &cred, vol.root, &key)?;
                Conditions {
                    if_match: Some(m),
                    ..Conditions::default()
                }
                .check_strict(&found.etag, found.attr.mtime.secs)?;
            }
            delete_one(fs, &cred, vol.root, &key)
        })
        .await?;
        Ok(S3Response::with_status(
            DeleteObjectOutput::default(),
            hyper::StatusCode::NO_CONTENT,
        ))
    }

    pub(crate) async fn delete_objects_impl(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let objects = input.delete.objects;
        if objects.len() > 1000 {
            return Err(S3Error::with_message(
                S3ErrorCode::MalformedXML,
                "A DeleteObjects request names at most 1000 keys",
            ));
        }
        let quiet = input.delete.quiet.unwrap_or(false);
        let bucket = input.bucket;
        let (deleted, errors) = ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            let mut deleted = Vec::new();
            let mut errors = Vec::new();
            for o in objects {
                let r = parse_key(&o.key)
                    .map_err(key_error)
                    .and_then(|k| delete_one(fs, &cred, vol.root, &k));
                match r {
                    Ok(()) if quiet => {}
                    Ok(()) => deleted.push(DeletedObject {
                        key: Some(o.key),
                        ..DeletedObject::default()
                    }),
                    Err(e) => errors.push(Error {
                        code: Some(e.code().as_str().to_string()),
                        message: e.message().map(str::to_string),
                        key: Some(o.key),
                        version_id: None,
                    }),
                }
            }
            Ok((deleted, errors))
        })
        .await?;
        Ok(S3Response::new(DeleteObjectsOutput {
            deleted: Some(deleted),
            errors: (!errors.is_empty()).then_some(errors),
            request_charged: None,
        }))
    }
}

/// Deletes one key; a key with nothing to delete is success.
fn delete_one(fs: &FileSystem, cred: &Credentials, root: InodeId, key: &KeyPath) -> S3Result<()> {
    let Some(parent) = ns::walk(fs, cred, root, key.parents())? else {
        return Ok(());
    };
    if parent.kind != FileType::Directory {
        return Ok(());
    }
    let r = if key.dir {
        fs.rmdir(cred, parent.ino, key.name())
    } else {
        fs.remove(cred, parent.ino, key.name())
    };
    if key.dir && matches!(r, Err(FsError::NotEmpty)) {
        // The marker object goes; the directory stays for what it holds.
        if let Ok(d) = fs.lookup(cred, parent.ino, key.name()) {
            let untag = [(meta::MARKER.as_bytes().to_vec(), None)];
            if let Err(e) = fs.set_xattrs(cred, d.ino, &untag) {
                return Err(fs_error(e));
            }
        }
    }
    match r {
        Ok(_) => {
            // The object is gone; tidying its prefix is best effort.
            if let Err(e) = ns::prune_implicit_parents(fs, cred, root, key.parents()) {
                tracing::debug!(error = %e, "implicit parent directories kept");
            }
            Ok(())
        }
        // Nothing there, a directory where a file was named (or the
        // reverse), or a non-empty directory (which has no marker object).
        Err(
            FsError::NotFound
            | FsError::Stale
            | FsError::IsDir
            | FsError::NotDir
            | FsError::NotEmpty,
        ) => Ok(()),
        Err(e) => Err(fs_error(e)),
    }
}

/// Conditional PUT (`If-Match` / `If-None-Match: *`) against the current
/// object; returns what the publish must find to stay atomic with this check.
fn check_overwrite(
    fs: &FileSystem,
    cred: &Credentials,
    root: InodeId,
    key: &KeyPath,
    if_match: Option<&ETagCondition>,
    if_none_match: Option<&ETagCondition>,
) -> S3Result<PublishIf> {
    let current = match find(fs, cred, root, key) {
        Ok(f) => Some(f),
        Err(e) if e.code() == &S3ErrorCode::NoSuchKey => None,
        Err(e) => return Err(e),
    };
    match (&current, if_match) {
        (None, Some(_)) => return Err(ns::no_such_key()),
        (Some(f), Some(m)) => Conditions {
            if_match: Some(m),
            ..Conditions::default()
        }
        .check_strict(&f.etag, f.attr.mtime.secs)?,
        _ => {}
    }
    if let (Some(f), Some(n)) = (&current, if_none_match) {
        Conditions {
            if_none_match: Some(n),
            ..Conditions::default()
        }
        .check_strict(&f.etag, f.attr.mtime.secs)?;
    }
    Ok(match &current {
        None => PublishIf::Absent,
        Some(f) => PublishIf::Unchanged {
            ino: f.attr.ino,
            ctime: f.attr.ctime,
        },
    })
}

/// The byte range to send: (start, end, Content-Range when partial).
pub(crate) fn range_of(range: Option<&Range>, size: u64) -> S3Result<(u64, u64, Option<String>)> {
    let Some(r) = range else {
        return Ok((0, size, None));
    };
    match r.check(size) {
        Ok(r) => Ok((
            r.start,
            r.end,
            Some(format!("bytes {}-{}/{}", r.start, r.end - 1, size)),
        )),
        Err(_) => {
            let mut e = S3Error::with_message(
                S3ErrorCode::InvalidRange,
                "The requested range is not satisfiable",
            );
            let mut h = hyper::HeaderMap::new();
            if let Ok(v) = format!("bytes */{size}").parse() {
                h.insert(hyper::header::CONTENT_RANGE, v);
            }
            h.insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("application/xml"),
            );
            e.set_headers(h);
            Err(e)
        }
    }
}

/// Checksums to return: only with `x-amz-checksum-mode: ENABLED`, for the
/// whole object, and while the stored values still describe the bytes.
fn checksums_to_return(found: &Found, mode: Option<&ChecksumMode>, full: bool) -> Checksum {
    let enabled = mode.is_some_and(|m| m.as_str().eq_ignore_ascii_case(ChecksumMode::ENABLED));
    if !enabled || !full || !found.stored.is_current(&found.attr) {
        return Checksum::default();
    }
    found.stored.meta.checksum.clone()
}
