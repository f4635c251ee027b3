//! Volumes: top-level namespaces, each an NFS export (and, later, an S3
//! bucket) with its own root directory.

use super::alloc;
use crate::record::{self, InodeRecord, FIRST_COOKIE};
use crate::types::{FileType, Volume};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Timestamp, VolumeId};
use nitrofs_metadata::{keys, prefix_end};

/// Checks a volume name against the S3 bucket naming rules, so that every
/// volume can also be a bucket: 3–63 characters of lowercase letters,
/// digits, `-` and `.`, starting and ending with a letter or digit, no
/// `..`, and not shaped like an IPv4 address.
pub fn validate_volume_name(name: &str) -> FsResult<()> {
    let ok_len = (3..=63).contains(&name.len());
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    let ok_edges = edge(name.bytes().next()) && edge(name.bytes().last());
    let ipv4 = name.split('.').count() == 4 && name.split('.').all(|p| p.parse::<u8>().is_ok());
    if ok_len && ok_chars && ok_edges && !name.contains("..") && !ipv4 {
        Ok(())
    } else {
        Err(FsError::Invalid(
            "volume names are 3-63 lowercase letters, digits, '-' or '.', starting and ending with a letter or digit",
        ))
    }
}

impl FileSystem {
    /// Creates a volume with an empty root directory (mode 0755, root-owned).
    pub fn create_volume(&self, name: &str) -> FsResult<Volume> {
        self.create_volume_owned(name, 0, 0, 0o755)
    }

    /// Creates a volume whose root directory belongs to `uid`:`gid` with
    /// permission bits `mode`, all in the one creating transaction.
    pub fn create_volume_owned(
        &self,
        name: &str,
        uid: u32,
        gid: u32,
        mode: u32,
    ) -> FsResult<Volume> {
        validate_volume_name(name)?;
        if self.kv.get(&keys::volume(name))?.is_some() {
            return Err(FsError::Exists);
        }
        let id = u32::try_from(alloc::reserve(
            self.kv.as_ref(),
            keys::SYS_NEXT_VOLUME,
            1,
            1,
        )?)
        .map_err(|_| FsError::NoSpace)?;
        let root_ino = self.alloc_inode()?;
        let now = Timestamp::now();
        let mut root = self.new_record(root_ino, id, FileType::Directory, mode, uid, gid, now);
        root.parent = root_ino;
        let vol = Volume {
            id,
            name: name.to_string(),
            root: root_ino,
            created: now,
        };
        self.transact(true, |txn| -> FsResult<()> {
            if txn.get(&keys::volume(name))?.is_some() {
                return Err(FsError::Exists);
            }
            txn.put(&keys::volume(name), &record::encode_volume(&vol)?)?;
            txn.put(&keys::volume_id(id), name.as_bytes())?;
            record::put_inode(txn, &root)
        })?;
        tracing::info!(volume = name, id, "volume created");
        Ok(vol)
    }

    /// Deletes an empty volume.
    pub fn delete_volume(&self, name: &str) -> FsResult<()> {
        self.transact(true, |txn| -> FsResult<()> {
            let vol = match txn.get(&keys::volume(name))? {
                Some(b) => record::decode_volume(&b)?,
                None => return Err(FsError::NotFound),
            };
            if let Some(root) = record::get_inode(txn, vol.root)? {
                if root.entries > 0 {
                    return Err(FsError::NotEmpty);
                }
            }
            if !crate::snapshot::state::SnapState::load(txn, vol.id)?
                .snaps
                .is_empty()
            {
                // Its snapshots must go first (they hold its history).
                return Err(FsError::NotEmpty);
            }
            txn.delete(&keys::volume(name))?;
            txn.delete(&keys::volume_id(vol.id))?;
            txn.delete(&keys::inode(vol.root))?;
            txn.delete(&keys::acl(vol.root, 1))?;
            txn.delete(&keys::acl(vol.root, 2))?;
            Ok(())
        })?;
        tracing::info!(volume = name, "volume deleted");
        Ok(())
    }

    /// Every volume, in name order.
    pub fn list_volumes(&self) -> FsResult<Vec<Volume>> {
        let prefix = keys::volume_prefix();
        self.kv
            .scan(&prefix, &prefix_end(&prefix), usize::MAX)?
            .iter()
            .map(|(_, v)| record::decode_volume(v))
            .collect()
    }

    /// The volume called `name`.
    pub fn volume(&self, name: &str) -> FsResult<Volume> {
        match self.kv.get(&keys::volume(name))? {
            Some(b) => record::decode_volume(&b),
            None => Err(FsError::NotFound),
        }
    }

    /// The volume with id `id`.
    pub fn volume_by_id(&self, id: VolumeId) -> FsResult<Volume> {
        match self.kv.get(&keys::volume_id(id))? {
            Some(name) => self.volume(&String::from_utf8_lossy(&name)),
            None => Err(FsError::NotFound),
        }
    }

    /// A new inode record with all times `now`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_record(
        &self,
        ino: u64,
        volume: VolumeId,
        kind: FileType,
        mode: u32,
        uid: u32,
        gid: u32,
        now: Timestamp,
    ) -> InodeRecord {
        let dir = kind == FileType::Directory;
        InodeRecord {
            ino,
            generation: rand::random::<u32>() | 1,
            volume,
            kind,
            mode: mode & crate::types::MODE_MASK,
            nlink: if dir { 2 } else { 1 },
            uid,
            gid,
            size: 0,
            atime: now,
            mtime: now,
            ctime: now,
            rdev: (0, 0),
            chunk_size: self.opts.chunk_size,
            parent: 0,
            next_cookie: if dir { FIRST_COOKIE } else { 0 },
            entries: 0,
            target: None,
            create_verf: None,
            epoch: 0,
            segments: Vec::new(),
            inline: kind == FileType::Regular && self.opts.inline_max > 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::validate_volume_name;

    #[test]
    fn volume_names_follow_bucket_rules() {
        for good in ["default", "abc", "my-bucket.v2", "a1b"] {
            assert!(validate_volume_name(good).is_ok(), "{good}");
        }
        for bad in [
            "ab",
            "Upper",
            "-lead",
            "trail-",
            "a..b",
            "192.168.1.1",
            "sp ace",
            "a/b",
            "",
        ] {
            assert!(validate_volume_name(bad).is_err(), "{bad}");
        }
    }
}
