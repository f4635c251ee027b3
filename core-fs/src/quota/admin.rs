//! The public quota calls: set, get, list and remove. They take no
//! credentials: they are administrator operations (the admin API).

use super::record::{
    decode_quota, load_quota, load_volume, store_quota, store_volume, Count, Phase, QuotaLimits,
    QuotaRecord, QuotaUsage,
};
use crate::record::{self, DentryRecord};
use crate::types::FileType;
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{InodeId, VolumeId};
use nitrofs_metadata::{keys, prefix_end};

/// What a quota limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum QuotaTarget {
    /// Everything below a directory (not the directory itself).
    Tree(InodeId),
    /// Everything a user owns in a volume.
    User {
        /// The volume.
        volume: VolumeId,
        /// The owner.
        uid: u32,
    },
    /// Everything a group owns in a volume.
    Group {
        /// The volume.
        volume: VolumeId,
        /// The group.
        gid: u32,
    },
}

impl QuotaTarget {
    fn key(&self) -> Vec<u8> {
        match *self {
            QuotaTarget::Tree(root) => keys::quota_tree(root),
            QuotaTarget::User { volume, uid } => keys::quota_owner(keys::QUOTA_USER, volume, uid),
            QuotaTarget::Group { volume, gid } => keys::quota_owner(keys::QUOTA_GROUP, volume, gid),
        }
    }
}

/// Where a quota is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuotaPhase {
    /// Counting and enforcing.
    Ready,
    /// Its existing usage is still being counted (usage is partial).
    Counting,
    /// Being removed.
    Removing,
}

/// A quota as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaInfo {
    /// What it limits.
    pub target: QuotaTarget,
    /// The volume.
    pub volume: VolumeId,
    /// Hard limits.
    pub limits: QuotaLimits,
    /// Usage now (while counting: what has been counted so far).
    pub usage: QuotaUsage,
    /// Life cycle.
    pub phase: QuotaPhase,
}

fn info(target: QuotaTarget, q: &QuotaRecord, counted: Count) -> QuotaInfo {
    QuotaInfo {
        target,
        volume: q.volume,
        limits: q.limits,
        usage: (q.usage + counted).usage(),
        phase: match q.phase {
            Phase::Ready => QuotaPhase::Ready,
            Phase::Counting => QuotaPhase::Counting,
            Phase::Removing => QuotaPhase::Removing,
        },
    }
}

impl FileSystem {
    /// Sets the limits of a quota, creating it if needed. A new quota on a
    /// populated directory or volume counts what is already there before
    /// this returns (see `quota::walk`); changing the limits of an
    /// existing quota is immediate. Usage above a new limit is kept, and
    /// only growth is refused.
    pub fn set_quota(&self, target: QuotaTarget, limits: QuotaLimits) -> FsResult<QuotaInfo> {
        let volume = match target {
            QuotaTarget::Tree(dir) => {
                let d = self.read_inode(dir).map_err(|_| FsError::NotFound)?;
                if d.kind != FileType::Directory {
                    return Err(FsError::NotDir);
                }
                d.volume
            }
            QuotaTarget::User { volume, .. } | QuotaTarget::Group { volume, .. } => {
                self.volume_by_id(volume)?;
                volume
            }
        };
        let key = target.key();
        let created = self.transact(true, |txn| -> FsResult<Option<u64>> {
            if let QuotaTarget::Tree(dir) = target {
                // The directory may have gone since it was looked up.
                record::load_inode(txn, dir).map_err(|_| FsError::NotFound)?;
            }
            if let Some(mut q) = load_quota(txn, &key)? {
                if q.phase == Phase::Removing {
                    return Err(FsError::Invalid(
                        "the quota is being removed; set it again when that is done",
                    ));
                }
                q.limits = limits;
                store_quota(txn, &key, &q)?;
                return Ok(None);
            }
            let id = rand::random::<u64>() | 1;
            let q = QuotaRecord {
                volume,
                id,
                limits,
                usage: Count::default(),
                phase: Phase::Counting,
            };
            store_quota(txn, &key, &q)?;
            if !matches!(target, QuotaTarget::Tree(_)) {
                // Every inode numbered from the counter's value on is made
                // after this commit: charged as it changes, not scanned.
                let limit = crate::ops::alloc::read_u64(txn, &keys::system(keys::SYS_NEXT_INODE))?
                    .unwrap_or(crate::ops::alloc::FIRST_INODE);
                let progress = super::record::Progress {
                    limit,
                    ..Default::default()
                };
                super::record::store_progress(txn, &key, &progress)?;
            }
            let mut vq = load_volume(txn, volume)?;
            match target {
                QuotaTarget::Tree(_) => vq.trees += 1,
                QuotaTarget::User { .. } => vq.users += 1,
                QuotaTarget::Group { .. } => vq.groups += 1,
            }
            store_volume(txn, volume, &vq)?;
            Ok(Some(id))
        })?;
        if let Some(id) = created {
            tracing::info!(?target, "quota created; counting existing usage");
            match target {
                QuotaTarget::Tree(root) => self.count_tree(root, id)?,
                _ => self.count_owner(&key)?,
            }
        }
        self.get_quota(target)
    }

    /// One quota.
    pub fn get_quota(&self, target: QuotaTarget) -> FsResult<QuotaInfo> {
        let key = target.key();
        let mut txn = self.kv.begin(); // read-only view, never committed
        let txn = txn.as_mut();
        let q = load_quota(txn, &key)?.ok_or(FsError::NotFound)?;
        let counted = match q.phase {
            Phase::Counting => super::record::load_progress(txn, &key)?.counted,
            _ => Count::default(),
        };
        Ok(info(target, &q, counted))
    }

    /// Every quota of a volume: tree quotas, then user and group quotas in
    /// id order.
    pub fn list_quotas(&self, volume: VolumeId) -> FsResult<Vec<QuotaInfo>> {
        let mut targets = Vec::new();
        let prefix = keys::quota_tree_prefix();
        for (k, v) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
            if decode_quota(&v)?.volume != volume {
                continue;
            }
            if let Some(root) = k.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                targets.push(QuotaTarget::Tree(u64::from_be_bytes(root)));
            }
        }
        for kind in [keys::QUOTA_USER, keys::QUOTA_GROUP] {
            let prefix = keys::quota_owner_prefix(kind, volume);
            for (k, _) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
                let (_, _, id) = super::walk::owner_of_key(&k)?;
                targets.push(if kind == keys::QUOTA_USER {
                    QuotaTarget::User { volume, uid: id }
                } else {
                    QuotaTarget::Group { volume, gid: id }
                });
            }
        }
        let mut out = Vec::with_capacity(targets.len());
        for t in targets {
            match self.get_quota(t) {
                Ok(i) => out.push(i),
                Err(FsError::NotFound) => {} // removed meanwhile
                Err(e) => return Err(e),
            }
        }
        Ok(out)
    }

    /// Removes a quota. A tree quota stops being enforced at once; its
    /// bookkeeping is cleared before this returns.
    pub fn remove_quota(&self, target: QuotaTarget) -> FsResult<()> {
        let key = target.key();
        let removing = self.transact(true, |txn| -> FsResult<Option<u64>> {
            let Some(mut q) = load_quota(txn, &key)? else {
                return Err(FsError::NotFound);
            };
            if let QuotaTarget::Tree(_) = target {
                if q.phase == Phase::Removing {
                    return Ok(Some(q.id));
                }
                q.phase = Phase::Removing;
                store_quota(txn, &key, &q)?;
                txn.delete(&keys::quota_count(&key))?;
                return Ok(Some(q.id));
            }
            txn.delete(&key)?;
            txn.delete(&keys::quota_count(&key))?;
            let mut vq = load_volume(txn, q.volume)?;
            match target {
                QuotaTarget::User { .. } => vq.users = vq.users.saturating_sub(1),
                _ => vq.groups = vq.groups.saturating_sub(1),
            }
            store_volume(txn, q.volume, &vq)?;
            Ok(None)
        })?;
        if let (QuotaTarget::Tree(root), Some(id)) = (target, removing) {
            self.uncount_tree(root, id)?;
        }
        tracing::info!(?target, "quota removed");
        Ok(())
    }

    /// The path of directory `dir` from its volume root ("" for the root
    /// itself, else "a/b"), for showing tree quotas.
    pub fn dir_path(&self, dir: InodeId) -> FsResult<String> {
        let mut names: Vec<String> = Vec::new();
        let mut cur = self.read_inode(dir)?;
        for _ in 0..4096 {
            if cur.parent == cur.ino || cur.parent == 0 {
                names.reverse();
                return Ok(names.join("/"));
            }
            let prefix = keys::dentry_prefix(cur.parent);
            let mut found = None;
            for (k, v) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
                if DentryRecord::decode(&v)?.ino == cur.ino {
                    found = Some(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
                    break;
                }
            }
            names.push(found.ok_or(FsError::NotFound)?);
            cur = self.read_inode(cur.parent)?;
        }
        Err(FsError::Invalid("directory tree too deep"))
    }
}
