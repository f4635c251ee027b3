//! CopyObject, and the copy source shared with UploadPartCopy.
//!
//! A copy reads the source and writes a new detached file that is then
//! published like a PUT, so the destination appears whole or not at all.
//! (core-fs has no chunk-sharing clone yet; a copy costs a read and a
//! write of the bytes.) `x-amz-metadata-directive: COPY` (the default)
//! keeps the source's metadata and its stored checksums; `REPLACE` takes
//! the request's. Copying an object onto itself needs `REPLACE`, and then
//! only its metadata changes, in place.

use crate::checksum::{Algo, Expect};
use crate::cond::Conditions;
use crate::error::{fs_error, key_error};
use crate::key::{parse_key, KeyPath};
use crate::meta::{self, ObjectMeta, PREFIX};
use crate::object::{find, Found};
use crate::{acl, body, ns, NitroS3};
use nitrofs_core_fs::{Credentials, DetachedKind, FileSystem, FileType, InodeId};
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};

/// A resolved copy source.
pub(crate) struct Source {
    pub bucket: String,
    pub key: String,
    pub found: Found,
}

/// The copy-source conditions of a request.
pub(crate) struct SourceConditions<'a> {
    pub if_match: Option<&'a ETagCondition>,
    pub if_none_match: Option<&'a ETagCondition>,
    pub if_modified_since: Option<&'a Timestamp>,
    pub if_unmodified_since: Option<&'a Timestamp>,
}

/// Looks up the source object (read permission needed) and checks the
/// `x-amz-copy-source-if-*` conditions (any failure is 412).
pub(crate) fn source(
    fs: &FileSystem,
    cred: &Credentials,
    cs: &CopySource,
    c: SourceConditions<'_>,
) -> S3Result<Source> {
    let CopySource::Bucket {
        bucket,
        key,
        version_id,
    } = cs
    else {
        return Err(S3Error::with_message(
            S3ErrorCode::NotImplemented,
            "Copy sources are 'bucket/key' here (no access points or outposts)",
        ));
    };
    if version_id.as_deref().is_some_and(|v| v != "null") {
        return Err(S3Error::with_message(
            S3ErrorCode::NoSuchVersion,
            "Versioning is not enabled",
        ));
    }
    let kp = parse_key(key).map_err(key_error)?;
    let vol = ns::volume(fs, bucket)?;
    let found = find(fs, cred, vol.root, &kp)?;
    if found.attr.kind != FileType::Regular {
        return Err(S3Error::with_message(
            S3ErrorCode::InvalidRequest,
            "A directory marker cannot be a copy source",
        ));
    }
    Conditions {
        if_match: c.if_match,
        if_none_match: c.if_none_match,
        if_modified_since: c.if_modified_since,
        if_unmodified_since: c.if_unmodified_since,
    }
    .check_strict(&found.etag, found.attr.mtime.secs)?;
    Ok(Source {
        bucket: bucket.to_string(),
        key: key.to_string(),
        found,
    })
}

impl NitroS3 {
    pub(crate) async fn copy_object_impl(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let dst = parse_key(&input.key).map_err(key_error)?;
        if dst.dir {
            return Err(S3Error::with_message(
                S3ErrorCode::InvalidRequest,
                "A directory marker cannot be a copy destination",
            ));
        }
        acl::refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let mode = acl::canned_mode(input.acl.as_ref().map(|a| a.as_str()), false)?;
        let replace = match input.metadata_directive.as_ref().map(|d| d.as_str()) {
            None | Some(MetadataDirective::COPY) => false,
            Some(MetadataDirective::REPLACE) => true,
            Some(_) => {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidArgument,
                    "Unknown metadata directive.",
                ))
            }
        };
        let algo = match input.checksum_algorithm.as_ref() {
            Some(a) => Some(Algo::parse(a.as_str()).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "Unsupported checksum algorithm",
                )
            })?),
            None => None,
        };
        if replace {
            meta::check_user_meta(input.metadata.as_ref())?;
        }
        let request_meta = ObjectMeta {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            user: input.metadata.unwrap_or_default(),
            checksum: Checksum::default(),
        };
        let dst_bucket = input.bucket;
        let cs = input.copy_source;
        let (cm, cnm, cms, cus) = (
            input.copy_source_if_match,
            input.copy_source_if_none_match,
            input.copy_source_if_modified_since,
            input.copy_source_if_unmodified_since,
        );
        let c2 = cred.clone();
        let prepared = ns::blocking(&self.fs, move |fs| {
            let src = source(
                fs,
                &c2,
                &cs,
                SourceConditions {
                    if_match: cm.as_ref(),
                    if_none_match: cnm.as_ref(),
                    if_modified_since: cms.as_ref(),
                    if_unmodified_since: cus.as_ref(),
                },
            )?;
            let vol = ns::volume(fs, &dst_bucket)?;
            let same = src.bucket == dst_bucket && src.key == dst.components_key();
            if same && !replace {
                return Err(S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
                ));
            }
            let mut new_meta = if replace {
                request_meta
            } else {
                let mut m = src.found.stored.meta.clone();
                if !src.found.stored.is_current(&src.found.attr) {
                    m.checksum = Checksum::default();
                }
                m
            };
            if replace && src.found.stored.is_current(&src.found.attr) {
                // Same bytes: the verified checksums still hold.
                new_meta.checksum = src.found.stored.meta.checksum.clone();
            }
            if same {
                let attr = replace_meta_in_place(fs, &c2, src.found.attr.ino, &new_meta)?;
                return Ok(Prepared::Done(src.found.etag, attr.mtime));
            }
            Ok(Prepared::Copy(Box::new((src, vol.id, vol.root, dst, new_meta))))
        })
        .await?;
        let (src, vol_id, root, dst, mut new_meta) = match prepared {
            Prepared::Done(etag, mtime) => return Ok(copy_result(etag, mtime)),
            Prepared::Copy(job) => *job,
        };
        let c3 = cred.clone();
        let ino = ns::blocking(&self.fs, move |fs| {
            fs.create_detached(&c3, vol_id, mode, DetachedKind::Transient)
                .map_err(fs_error)
        })
        .await?
        .ino;
        let result = ns::blocking(&self.fs, move |fs| {
            let mut expect = Expect::default();
            if let Some(a) = algo {
                expect.algos.push(a);
            }
            let w = body::copy_range(
                fs,
                &cred,
                src.found.attr.ino,
                0,
                src.found.size,
                ino,
                expect.hasher(),
            )?;
            if let Some(a) = algo {
                new_meta.checksum = Checksum::default();
                a.set(&mut new_meta.checksum, a.get(&w.checksum).cloned());
                new_meta.checksum.checksum_type =
                    Some(ChecksumType::from_static(ChecksumType::FULL_OBJECT));
            }
            let etag = meta::hex(&w.md5);
            let attr = fs.getattr(ino).map_err(fs_error)?;
            let mut x = new_meta.to_xattrs();
            x.extend(meta::etag_xattrs(&etag, &attr));
            let published = fs
                .publish(&cred, ino, root, &dst.components, &x)
                .map_err(fs_error)?;
            Ok((etag, published.mtime))
        })
        .await;
        match result {
            Ok((etag, mtime)) => Ok(copy_result(etag, mtime)),
            Err(e) => {
                body::discard_file(&self.fs, ino).await;
                Err(e)
            }
        }
    }
}

enum Prepared {
    Done(String, nitrofs_core_fs::Timestamp),
    Copy(
        Box<(
            Source,
            nitrofs_core_fs::VolumeId,
            InodeId,
            KeyPath,
            ObjectMeta,
        )>,
    ),
}

fn copy_result(etag: String, mtime: nitrofs_core_fs::Timestamp) -> S3Response<CopyObjectOutput> {
    S3Response::new(CopyObjectOutput {
        copy_object_result: Some(CopyObjectResult {
            e_tag: Some(ETag::Strong(etag)),
            last_modified: Some(meta::to_s3_time(mtime)),
            ..CopyObjectResult::default()
        }),
        ..CopyObjectOutput::default()
    })
}

/// Rewrites an object's metadata xattrs, keeping its ETag (its bytes do
/// not change).
fn replace_meta_in_place(
    fs: &FileSystem,
    cred: &Credentials,
    ino: InodeId,
    m: &ObjectMeta,
) -> S3Result<nitrofs_core_fs::Attr> {
    let current = fs.list_xattrs(cred, ino).map_err(fs_error)?;
    let new = m.to_xattrs();
    let mut changes: Vec<(Vec<u8>, Option<Vec<u8>>)> = Vec::new();
    for (name, _) in &current {
        let ours = name.starts_with(PREFIX.as_bytes())
            && name.as_slice() != meta::ETAG.as_bytes()
            && name.as_slice() != meta::ETAG_STAMP.as_bytes();
        if ours && !new.iter().any(|(n, _)| n == name) {
            changes.push((name.clone(), None));
        }
    }
    changes.extend(new.into_iter().map(|(n, v)| (n, Some(v))));
    fs.set_xattrs(cred, ino, &changes).map_err(fs_error)
}

impl KeyPath {
    /// The key this path was parsed from (without a trailing `/`).
    pub(crate) fn components_key(&self) -> String {
        let parts: Vec<&str> = self
            .components
            .iter()
            .filter_map(|c| std::str::from_utf8(c).ok())
            .collect();
        parts.join("/")
    }
}
