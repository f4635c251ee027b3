//! Counting the existing usage of a new quota, and clearing a removed
//! tree quota's membership records: walks in small transactions that run
//! while the filesystem serves requests.
//!
//! **Tree quota on a populated directory `X`.** The quota is created in
//! phase `Counting` with zero usage; from then on creates in `X` charge it.
//! The walk then visits `X`'s subtree, a batch of entries per transaction.
//! For each entry whose membership still leads to the quota `X` itself is
//! charged to (`outer`), it adds the entry's usage (for a nested quota
//! root, its whole usage) to a progress record and points the entry's
//! membership at `X`, in the same transaction. Every operation charges the
//! quota its object's membership leads to, so an object is counted in `X`
//! exactly once: by the walk if the walk re-points it first, by the
//! operation if the operation sees it already re-pointed (a conflict on
//! the membership or inode record orders the two). A directory is scanned
//! only while it is still charged to `X` (one moved away since was
//! re-pointed by the rename). An entry charged elsewhere — a hard link
//! whose inode lives in another tree — is left there. When the walk ends,
//! the progress is added to the quota and it becomes `Ready`. A crash
//! leaves the quota `Counting`; the walk runs again at the next start and
//! skips what it already counted (entries already pointing at `X`).
//!
//! **User or group quota.** The walk scans all inodes in number order;
//! the progress record holds the scan position. Operations charge the
//! quota for inodes below it and leave the rest to the scan. An inode
//! created above the position rewrites the progress record, so a scan
//! batch that cannot see it (it started earlier) conflicts and retries.
//!
//! **Removing a tree quota.** The quota becomes `Removing` (no longer
//! charged or enforced: memberships pointing at it lead past it, to the
//! quota above); the walk re-points them, then deletes the quota.
//!
//! While a quota is being counted its limits are enforced against the
//! usage counted so far, which is never more than the real usage: nothing
//! is refused that the final count would allow. One walk runs at a time.

use super::charge::{footprint, nearest_of_dir, resolve};
use super::record::{
    load_member, load_progress, load_quota, load_volume, store_member, store_progress, store_quota,
    Member, Phase,
};
use crate::record::{self, DentryRecord};
use crate::types::FileType;
use crate::{FileSystem, FsError, FsResult};
use nitrofs_metadata::{keys, prefix_end, Txn};
use std::collections::VecDeque;
use std::time::Duration;

/// Entries (or inodes) per walk transaction.
const BATCH: usize = 256;

/// Times a walk batch is retried after its transaction kept failing
/// (conflicts with busy writers), with a growing pause.
const BATCH_ATTEMPTS: u32 = 50;

/// What one batch found.
struct Step {
    /// The quota is gone or changed: stop walking.
    stop: bool,
    /// This directory (or the inode scan) has no more entries.
    done: bool,
    /// Name of the last entry handled (resume point).
    last: Vec<u8>,
    /// Directories to visit.
    subdirs: Vec<u64>,
}

/// Entries of `dir` after `after` (name order), at most `BATCH`.
fn entries(txn: &mut dyn Txn, dir: u64, after: &[u8]) -> FsResult<Vec<(Vec<u8>, DentryRecord)>> {
    let prefix = keys::dentry_prefix(dir);
    let mut start = keys::dentry(dir, after);
    if !after.is_empty() {
        start.push(0);
    }
    let rows = txn.scan(&start, &prefix_end(&prefix), BATCH)?;
    rows.into_iter()
        .map(|(k, v)| Ok((k[prefix.len()..].to_vec(), DentryRecord::decode(&v)?)))
        .collect()
}

impl FileSystem {
    /// Runs one walk batch, retrying when busy writers make it fail.
    fn walk_batch<T>(&self, mut batch: impl FnMut(&mut dyn Txn) -> FsResult<T>) -> FsResult<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.transact(false, &mut batch) {
                Err(FsError::Io(e)) if attempt < BATCH_ATTEMPTS => {
                    tracing::debug!(error = %e, attempt, "quota walk batch failed; retrying");
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 5));
                }
                other => return other,
            }
        }
    }

    /// Visits the directories of the subtree of `root` with `batch`.
    fn walk_tree(
        &self,
        root: u64,
        batch: impl Fn(&mut dyn Txn, u64, &[u8]) -> FsResult<Step>,
    ) -> FsResult<bool> {
        let mut queue = VecDeque::from([root]);
        while let Some(dir) = queue.pop_front() {
            let mut after = Vec::new();
            loop {
                let step = self.walk_batch(|txn| batch(txn, dir, &after))?;
                if step.stop {
                    return Ok(false);
                }
                queue.extend(step.subdirs);
                after = step.last;
                if step.done {
                    break;
                }
            }
        }
        Ok(true)
    }

    /// Counts the existing usage of the new tree quota `root` (see the
    /// module notes) and makes it `Ready`.
    pub(crate) fn count_tree(&self, root: u64, id: u64) -> FsResult<()> {
        let _one = self.quota_gate.walk.lock();
        let key = keys::quota_tree(root);
        let me = Member { root, id };
        let finished = self.walk_tree(root, |txn, dir, after| {
            let live = load_quota(txn, &key)?;
            if !live.is_some_and(|q| q.id == id && q.phase == Phase::Counting) {
                return Ok(Step::stop());
            }
            if dir != root && nearest_of_dir(txn, dir)? != Some(me) {
                return Ok(Step::finished());
            }
            let up = load_member(txn, root)?;
            let outer = resolve(txn, up)?;
            let mut progress = load_progress(txn, &key)?;
            let rows = entries(txn, dir, after)?;
            let mut step = Step::after(&rows);
            for (_, entry) in rows {
                let Some(child) = record::get_inode(txn, entry.ino)? else {
                    continue;
                };
                let nested = match child.kind {
                    FileType::Directory => load_quota(txn, &keys::quota_tree(child.ino))?
                        .filter(|q| q.phase != Phase::Removing),
                    _ => None,
                };
                let m = load_member(txn, child.ino)?;
                if m != Some(me) && resolve(txn, m)? == outer {
                    progress.counted += footprint(&child);
                    if let Some(n) = &nested {
                        progress.counted += n.usage;
                    }
                    store_member(txn, child.ino, Some(me))?;
                }
                if child.kind == FileType::Directory && nested.is_none() {
                    step.subdirs.push(child.ino);
                }
            }
            store_progress(txn, &key, &progress)?;
            Ok(step)
        })?;
        if finished {
            self.finish_count(&key, Some(id))?;
        }
        Ok(())
    }

    /// Adds a finished walk's count to quota `key` and makes it `Ready`.
    fn finish_count(&self, key: &[u8], id: Option<u64>) -> FsResult<()> {
        self.transact(true, |txn| {
            let Some(mut q) = load_quota(txn, key)? else {
                return Ok(());
            };
            if q.phase != Phase::Counting || id.is_some_and(|id| id != q.id) {
                return Ok(());
            }
            let p = load_progress(txn, key)?;
            q.usage += p.counted;
            q.phase = Phase::Ready;
            store_quota(txn, key, &q)?;
            txn.delete(&keys::quota_count(key))?;
            Ok(())
        })
    }

    /// Clears the memberships of the removed tree quota `root` (see the
    /// module notes) and deletes it.
    pub(crate) fn uncount_tree(&self, root: u64, id: u64) -> FsResult<()> {
        let _one = self.quota_gate.walk.lock();
        let key = keys::quota_tree(root);
        let finished = self.walk_tree(root, |txn, dir, after| {
            let live = load_quota(txn, &key)?;
            if !live.is_some_and(|q| q.id == id && q.phase == Phase::Removing) {
                return Ok(Step::stop());
            }
            let target = nearest_of_dir(txn, dir)?;
            let rows = entries(txn, dir, after)?;
            let mut step = Step::after(&rows);
            for (_, entry) in rows {
                let Some(child) = record::get_inode(txn, entry.ino)? else {
                    continue;
                };
                if load_member(txn, child.ino)?.is_some_and(|m| m.root == root) {
                    store_member(txn, child.ino, target)?;
                }
                if child.kind == FileType::Directory {
                    let nested = load_quota(txn, &keys::quota_tree(child.ino))?;
                    if nested.is_none_or(|q| q.phase == Phase::Removing) {
                        step.subdirs.push(child.ino);
                    }
                }
            }
            Ok(step)
        })?;
        if finished {
            self.transact(true, |txn| match load_quota(txn, &key)? {
                Some(q) if q.id == id && q.phase == Phase::Removing => {
                    txn.delete(&key)?;
                    txn.delete(&keys::quota_count(&key))?;
                    let mut vq = load_volume(txn, q.volume)?;
                    vq.trees = vq.trees.saturating_sub(1);
                    super::record::store_volume(txn, q.volume, &vq)
                }
                _ => Ok(()),
            })?;
        }
        Ok(())
    }

    /// Counts the existing usage of the new user or group quota `key`
    /// (see the module notes) and makes it `Ready`.
    pub(crate) fn count_owner(&self, key: &[u8]) -> FsResult<()> {
        let _one = self.quota_gate.walk.lock();
        let (kind, volume, id) = owner_of_key(key)?;
        loop {
            let step = self.walk_batch(|txn| {
                match load_quota(txn, key)? {
                    Some(q) if q.phase == Phase::Counting => {}
                    _ => return Ok(Step::stop()),
                }
                let mut p = load_progress(txn, key)?;
                if p.cursor == u64::MAX {
                    return Ok(Step::finished());
                }
                let end = if p.limit == u64::MAX {
                    prefix_end(&keys::inode_prefix())
                } else {
                    keys::inode(p.limit)
                };
                let rows = txn.scan(&keys::inode(p.cursor), &end, BATCH)?;
                let mut next = u64::MAX;
                for (k, _) in &rows {
                    let Some(ino) = keys::ino_of(k) else { continue };
                    // Read through the transaction: a change to this inode
                    // before the commit makes the batch retry.
                    if let Some(rec) = record::get_inode(txn, ino)? {
                        let owner = if kind == keys::QUOTA_USER {
                            rec.uid
                        } else {
                            rec.gid
                        };
                        if rec.volume == volume && owner == id {
                            p.counted += footprint(&rec);
                        }
                    }
                    next = ino.saturating_add(1);
                }
                let done = rows.len() < BATCH;
                p.cursor = if done { u64::MAX } else { next };
                store_progress(txn, key, &p)?;
                Ok(Step {
                    stop: false,
                    done,
                    last: Vec::new(),
                    subdirs: Vec::new(),
                })
            })?;
            if step.stop {
                return Ok(());
            }
            if step.done {
                break;
            }
        }
        self.finish_count(key, None)
    }

    /// Finishes the walks a crash interrupted. Runs at start.
    pub(crate) fn resume_quota_walks(&self) -> FsResult<()> {
        let mut trees = Vec::new();
        let prefix = keys::quota_tree_prefix();
        for (k, v) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
            let q = super::record::decode_quota(&v)?;
            if let Some(root) = k.get(2..10).and_then(|b| <[u8; 8]>::try_from(b).ok()) {
                trees.push((u64::from_be_bytes(root), q.id, q.phase));
            }
        }
        for (root, id, phase) in trees {
            match phase {
                Phase::Counting => {
                    tracing::info!(root, "resuming the count of a tree quota");
                    self.count_tree(root, id)?;
                }
                Phase::Removing => {
                    tracing::info!(root, "resuming the removal of a tree quota");
                    self.uncount_tree(root, id)?;
                }
                Phase::Ready => {}
            }
        }
        for kind in [keys::QUOTA_USER, keys::QUOTA_GROUP] {
            let prefix = [keys::QUOTA, kind];
            for (k, v) in self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)? {
                if super::record::decode_quota(&v)?.phase == Phase::Counting {
                    tracing::info!("resuming the count of a user or group quota");
                    self.count_owner(&k)?;
                }
            }
        }
        Ok(())
    }
}

/// (kind, volume, uid or gid) of a user or group quota key.
pub(crate) fn owner_of_key(key: &[u8]) -> FsResult<(u8, u32, u32)> {
    let bad = || FsError::Io("corrupt user or group quota key".into());
    let kind = *key.get(1).ok_or_else(bad)?;
    let volume = key.get(2..6).and_then(|b| <[u8; 4]>::try_from(b).ok());
    let id = key.get(6..10).and_then(|b| <[u8; 4]>::try_from(b).ok());
    match (volume, id) {
        (Some(v), Some(i)) => Ok((kind, u32::from_be_bytes(v), u32::from_be_bytes(i))),
        _ => Err(bad()),
    }
}

impl Step {
    fn stop() -> Self {
        Self {
            stop: true,
            done: true,
            last: Vec::new(),
            subdirs: Vec::new(),
        }
    }

    fn finished() -> Self {
        Self {
            stop: false,
            done: true,
            last: Vec::new(),
            subdirs: Vec::new(),
        }
    }

    /// A step over `rows`: done when the batch was not full.
    fn after(rows: &[(Vec<u8>, DentryRecord)]) -> Self {
        Self {
            stop: false,
            done: rows.len() < BATCH,
            last: rows.last().map(|(n, _)| n.clone()).unwrap_or_default(),
            subdirs: Vec::new(),
        }
    }
}
