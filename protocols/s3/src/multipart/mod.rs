//! Multipart uploads: parts are detached files, completion links them into
//! the object without copying a byte.
//!
//! State, all in core-fs metadata so an upload survives a restart:
//!
//! - **Index**: the xattr `user.s3.upload.<id>` on the bucket's root
//!   directory, value JSON `{key, manifest inode, initiated, uid}`. It is
//!   what ListMultipartUploads reads and how the other calls find an
//!   upload. It is written with root credentials (the adapter's own
//!   bookkeeping, after the caller's access to the bucket was checked);
//!   NFSv3 does not show xattrs, so NFS clients never see it.
//! - **Manifest**: a detached, empty file of kind `Upload(id)` owned by the
//!   initiator (mode 0600). Its xattrs hold the object's metadata headers
//!   (the same `user.s3.*` names an object has), `user.s3.upload-info`
//!   (key, mode, checksum algorithm) and one `user.s3.part.NNNNN` per part:
//!   JSON `{inode, md5, size, modified, checksum}`.
//! - **Parts**: detached files of kind `Upload(id)`, mode 0600. Uploading a
//!   part number again replaces (and discards) the earlier one.
//!
//! CompleteMultipartUpload validates the list (ascending numbers:
//! `InvalidPartOrder`; unknown part or ETag mismatch: `InvalidPart`; a
//! part other than the last below 5 MiB: `EntityTooSmall`), concatenates
//! the parts into a new detached file with `concat_detached` (the parts'
//! chunks become the object's) and publishes it in one transaction with
//! ETag `hex(md5(part md5s))-N`. Then the manifest, parts that were
//! uploaded but not used, and the index entry are removed. If publishing
//! fails after the parts were linked (e.g. a path component became a
//! file), the upload is gone and the error is returned.
//!
//! Checksums: each part's checksum is verified like a PUT. The object gets
//! the full-object checksum the client sends in CompleteMultipartUpload
//! (stored as sent: recomputing it would mean reading the object), else a
//! COMPOSITE checksum (checksum of the parts' checksums, `-N`) when the
//! upload named an algorithm and every part has it.

mod complete;
mod listing;
mod part;

pub use complete::validate_parts;

use crate::checksum::{self, Algo, Expect};
use crate::copy::{source, SourceConditions};
use crate::error::{fs_error, key_error};
use crate::key::{parse_key, KeyPath};
use crate::meta::{self, ObjectMeta, Stored};
use crate::object::checksum_of;
use crate::{acl, body, ns, NitroS3};
use nitrofs_core_fs::{
    access, Credentials, DetachedKind, FileSystem, FsError, InodeId, Timestamp, Volume,
};
use rand::Rng;
use s3s::dto::*;
use s3s::{S3Error, S3ErrorCode, S3Request, S3Response, S3Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Xattr prefix of the upload index on a bucket root.
pub const INDEX_PREFIX: &str = "user.s3.upload.";
/// Manifest xattr with the upload's own settings.
pub const INFO: &str = "user.s3.upload-info";
/// Manifest xattr prefix of part records.
pub const PART_PREFIX: &str = "user.s3.part.";
/// Smallest part other than the last (the S3 limit).
pub const MIN_PART: u64 = 5 * 1024 * 1024;
/// Largest part number.
pub const MAX_PART_NUMBER: i32 = 10_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
struct IndexEntry {
    v: u32,
    key: String,
    manifest: u64,
    initiated: (i64, u32),
    uid: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct UploadInfo {
    v: u32,
    key: String,
    mode: u32,
    algo: Option<String>,
}

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartRecord {
    /// The part's detached file.
    pub ino: u64,
    /// Hex MD5 of the part (its ETag).
    pub md5: String,
    /// Bytes.
    pub size: u64,
    /// When it was uploaded.
    pub modified: (i64, u32),
    /// Its verified checksums, by algorithm name.
    #[serde(default)]
    pub checksum: BTreeMap<String, String>,
}

struct Upload {
    vol: Volume,
    manifest: InodeId,
    entry: IndexEntry,
}

fn no_such_upload() -> S3Error {
    S3Error::with_message(
        S3ErrorCode::NoSuchUpload,
        "The specified multipart upload does not exist. The upload ID might be invalid, or the multipart upload might have been aborted or completed.",
    )
}

fn index_name(id: &str) -> Vec<u8> {
    format!("{INDEX_PREFIX}{id}").into_bytes()
}

fn part_name(n: i32) -> Vec<u8> {
    format!("{PART_PREFIX}{n:05}").into_bytes()
}

fn json<T: Serialize>(v: &T) -> S3Result<Vec<u8>> {
    serde_json::to_vec(v).map_err(crate::error::internal)
}

/// Finds an upload of `key` in `bucket`.
fn load(fs: &FileSystem, bucket: &str, id: &str, key: &str) -> S3Result<Upload> {
    let vol = ns::volume(fs, bucket)?;
    if id.len() != 32 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(no_such_upload());
    }
    let raw = fs
        .get_xattr(&Credentials::root(), vol.root, &index_name(id))
        .map_err(fs_error)?
        .ok_or_else(no_such_upload)?;
    let entry: IndexEntry = serde_json::from_slice(&raw).map_err(|_| no_such_upload())?;
    if entry.key != key {
        return Err(no_such_upload());
    }
    match fs.getattr(entry.manifest) {
        Ok(_) => {}
        Err(FsError::Stale | FsError::NotFound) => return Err(no_such_upload()),
        Err(e) => return Err(fs_error(e)),
    }
    Ok(Upload {
        vol,
        manifest: entry.manifest,
        entry,
    })
}

/// The manifest's contents: settings, object metadata xattrs, parts.
struct Manifest {
    info: UploadInfo,
    /// The object's metadata xattrs.
    meta: Vec<(Vec<u8>, Vec<u8>)>,
    parts: BTreeMap<i32, PartRecord>,
}

fn read_manifest(fs: &FileSystem, cred: &Credentials, up: &Upload) -> S3Result<Manifest> {
    let xattrs = fs.list_xattrs(cred, up.manifest).map_err(fs_error)?;
    let mut info = None;
    let mut meta_x = Vec::new();
    let mut parts = BTreeMap::new();
    for (name, value) in xattrs {
        if name == INFO.as_bytes() {
            info = serde_json::from_slice::<UploadInfo>(&value).ok();
        } else if let Some(n) = name.strip_prefix(PART_PREFIX.as_bytes()) {
            let n = std::str::from_utf8(n)
                .ok()
                .and_then(|n| n.parse::<i32>().ok());
            if let (Some(n), Ok(rec)) = (n, serde_json::from_slice::<PartRecord>(&value)) {
                parts.insert(n, rec);
            }
        } else if name.starts_with(meta::PREFIX.as_bytes()) {
            meta_x.push((name, value));
        }
    }
    let info =
        info.ok_or_else(|| crate::error::internal("multipart manifest without upload-info"))?;
    Ok(Manifest {
        info,
        meta: meta_x,
        parts,
    })
}

/// Removes everything of an upload: its detached files and its index entry.
fn purge(fs: &FileSystem, root: InodeId, id: &str) -> S3Result<()> {
    for ino in fs.detached_of_upload(id.as_bytes()).map_err(fs_error)? {
        match fs.discard_detached(ino) {
            Ok(()) | Err(FsError::Stale | FsError::NotFound) => {}
            Err(e) => return Err(fs_error(e)),
        }
    }
    fs.set_xattrs(&Credentials::root(), root, &[(index_name(id), None)])
        .map_err(fs_error)?;
    Ok(())
}

fn check_part_number(n: i32) -> S3Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(S3Error::with_message(
            S3ErrorCode::InvalidArgument,
            "Part number must be an integer between 1 and 10000, inclusive",
        ))
    }
}

fn now_pair() -> (i64, u32) {
    let t = Timestamp::now();
    (t.secs, t.nanos)
}

fn time_of(p: (i64, u32)) -> s3s::dto::Timestamp {
    meta::to_s3_time(Timestamp::new(p.0, p.1))
}

/// Records a written part in the manifest (after making its bytes
/// durable: a part acknowledged with 200 must survive a crash), discarding
/// the part it replaces.
fn record_part(
    fs: &FileSystem,
    cred: &Credentials,
    manifest: InodeId,
    n: i32,
    rec: &PartRecord,
) -> S3Result<()> {
    fs.commit(rec.ino).map_err(fs_error)?;
    let name = part_name(n);
    let old = fs.get_xattr(cred, manifest, &name).map_err(fs_error)?;
    fs.set_xattrs(cred, manifest, &[(name, Some(json(rec)?))])
        .map_err(fs_error)?;
    if let Some(old) = old.and_then(|o| serde_json::from_slice::<PartRecord>(&o).ok()) {
        if old.ino != rec.ino {
            let _ = fs.discard_detached(old.ino);
        }
    }
    Ok(())
}

fn part_checksums(c: &Checksum) -> BTreeMap<String, String> {
    checksum::ALGOS
        .into_iter()
        .filter_map(|a| a.get(c).map(|v| (a.name().to_string(), v.clone())))
        .collect()
}

impl NitroS3 {
    pub(crate) async fn create_multipart_upload_impl(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        let key = parse_key(&input.key).map_err(key_error)?;
        if key.dir {
            return Err(ns::directory_holds_no_data());
        }
        acl::refuse_grant_headers(
            input.grant_full_control.is_some()
                || input.grant_read.is_some()
                || input.grant_read_acp.is_some()
                || input.grant_write_acp.is_some(),
        )?;
        let mode = acl::canned_mode(input.acl.as_ref().map(|a| a.as_str()), false)?;
        meta::check_user_meta(input.metadata.as_ref())?;
        let algo = match &input.checksum_algorithm {
            Some(a) => Some(Algo::parse(a.as_str()).ok_or_else(|| {
                S3Error::with_message(
                    S3ErrorCode::InvalidRequest,
                    "Unsupported checksum algorithm",
                )
            })?),
            None => None,
        };
        let object_meta = ObjectMeta {
            content_type: input.content_type,
            content_encoding: input.content_encoding,
            content_disposition: input.content_disposition,
            content_language: input.content_language,
            cache_control: input.cache_control,
            expires: input.expires,
            user: input.metadata.unwrap_or_default(),
            checksum: Checksum::default(),
        };
        let id: String = {
            let mut rng = rand::thread_rng();
            (0..16)
                .map(|_| format!("{:02x}", rng.gen::<u8>()))
                .collect()
        };
        let bucket = input.bucket.clone();
        let key_s = input.key.clone();
        let id2 = id.clone();
        ns::blocking(&self.fs, move |fs| {
            let vol = ns::volume(fs, &bucket)?;
            let (_, granted) = fs
                .access(&cred, vol.root, access::LOOKUP)
                .map_err(fs_error)?;
            if granted & access::LOOKUP == 0 {
                return Err(fs_error(FsError::Access));
            }
            let manifest = fs
                .create_detached(
                    &cred,
                    vol.id,
                    0o600,
                    DetachedKind::Upload(id2.as_bytes().to_vec()),
                )
                .map_err(fs_error)?;
            let info = UploadInfo {
                v: 1,
                key: key_s.clone(),
                mode,
                algo: algo.map(|a| a.name().to_string()),
            };
            let mut x: Vec<(Vec<u8>, Option<Vec<u8>>)> = object_meta
                .to_xattrs()
                .into_iter()
                .map(|(n, v)| (n, Some(v)))
                .collect();
            x.push((INFO.as_bytes().to_vec(), Some(json(&info)?)));
            let entry = IndexEntry {
                v: 1,
                key: key_s,
                manifest: manifest.ino,
                initiated: now_pair(),
                uid: cred.uid,
            };
            let entry = json(&entry)?;
            let r = fs.set_xattrs(&cred, manifest.ino, &x).and_then(|_| {
                fs.set_xattrs(
                    &Credentials::root(),
                    vol.root,
                    &[(index_name(&id2), Some(entry))],
                )
            });
            if let Err(e) = r {
                let _ = fs.discard_detached(manifest.ino);
                return Err(fs_error(e));
            }
            Ok(())
        })
        .await?;
        Ok(S3Response::new(CreateMultipartUploadOutput {
            bucket: Some(input.bucket),
            key: Some(input.key),
            upload_id: Some(id),
            checksum_algorithm: input.checksum_algorithm,
            checksum_type: input
                .checksum_type
                .or_else(|| algo.map(|_| ChecksumType::from_static(ChecksumType::COMPOSITE))),
            ..CreateMultipartUploadOutput::default()
        }))
    }

    pub(crate) async fn abort_multipart_upload_impl(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        let cred = self.cred(&req)?;
        let input = req.input;
        ns::blocking(&self.fs, move |fs| {
            let up = load(fs, &input.bucket, &input.upload_id, &input.key)?;
            // Only someone who may read the manifest (its owner, root) aborts.
            fs.list_xattrs(&cred, up.manifest).map_err(fs_error)?;
            purge(fs, up.vol.root, &input.upload_id)
        })
        .await?;
        Ok(S3Response::with_status(
            AbortMultipartUploadOutput::default(),
            hyper::StatusCode::NO_CONTENT,
        ))
    }
}
