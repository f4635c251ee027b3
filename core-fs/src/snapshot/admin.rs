//! Creating, listing, deleting and restoring snapshots.

use super::state::{decode_history, owner_of, SnapInfo, SnapState, SnapshotRecord, SNAPDIR_EPOCH};
use crate::ops::alloc::{read_u64, FIRST_INODE};
use crate::record::InodeRecord;
use crate::types::{FileType, NAME_MAX};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_chunk_store::ChunkId;
use nitrofs_common::Timestamp;
use nitrofs_metadata::{keys, prefix_end, transact, Txn};

/// A snapshot as listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Name, unique in its volume.
    pub name: String,
    /// Volume name.
    pub volume: String,
    /// Creation time.
    pub created: Timestamp,
    /// Epoch (orders snapshots by creation; names its objects' inode numbers).
    pub epoch: u64,
}

/// History records handled per transaction when deleting or restoring.
const BATCH: usize = 256;

/// Rejects names a snapshot may not have (they are directory names
/// under `.snapshot`).
fn validate_snapshot_name(name: &str) -> FsResult<()> {
    if name.is_empty() || name == "." || name == ".." {
        return Err(FsError::Invalid(
            "snapshot name must not be empty, '.' or '..'",
        ));
    }
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.contains('/') || name.contains('\0') {
        return Err(FsError::Invalid("snapshot name contains '/' or NUL"));
    }
    Ok(())
}

/// What to do with one history record of a snapshot that goes away.
enum Fate {
    /// The previous snapshot saw the same: it takes the record over.
    MoveTo(u64),
    /// No one else needs it.
    Drop,
}

impl FileSystem {
    /// Takes a snapshot of `volume` named `name`. Writes three metadata
    /// keys whatever the size of the volume, copies no data.
    pub fn create_snapshot(&self, volume: &str, name: &str) -> FsResult<Snapshot> {
        validate_snapshot_name(name)?;
        let vol = self.volume(volume)?;
        let _barrier = self.snap_barrier.write();
        let created = Timestamp::now();
        let rec = transact(self.kv.as_ref(), true, |txn| -> FsResult<SnapshotRecord> {
            let key = keys::snapshot(vol.id, name);
            if txn.get(&key)?.is_some() {
                return Err(FsError::Exists);
            }
            let mut state = SnapState::load(txn, vol.id)?;
            if state.restoring {
                return Err(FsError::ReadOnly);
            }
            let epoch_key = keys::system(keys::SYS_NEXT_EPOCH);
            let epoch = read_u64(txn, &epoch_key)?.unwrap_or(1);
            if epoch >= SNAPDIR_EPOCH {
                return Err(FsError::NoSpace);
            }
            txn.put(&epoch_key, &(epoch + 1).to_be_bytes())?;
            // Every inode handed out so far is below the allocator's mark.
            let next_inode =
                read_u64(txn, &keys::system(keys::SYS_NEXT_INODE))?.unwrap_or(FIRST_INODE);
            let rec = SnapshotRecord {
                name: name.to_string(),
                epoch,
                created,
                next_inode,
                deleting: false,
            };
            state.snaps.push(SnapInfo {
                epoch,
                next_inode,
                deleting: false,
            });
            state.store(txn, vol.id)?;
            txn.put(&key, &rec.encode()?)?;
            Ok(rec)
        })?;
        self.snap_cache.lock().clear();
        tracing::info!(
            volume,
            snapshot = name,
            epoch = rec.epoch,
            "snapshot created"
        );
        Ok(Snapshot {
            name: rec.name,
            volume: vol.name,
            created: rec.created,
            epoch: rec.epoch,
        })
    }

    /// Snapshot records of a volume id, deleting ones included.
    pub(crate) fn snapshot_records(&self, volume: u32) -> FsResult<Vec<SnapshotRecord>> {
        let p = keys::snapshot_prefix(volume);
        let mut out = Vec::new();
        for (_, v) in self.kv.scan(&p, &prefix_end(&p), usize::MAX)? {
            out.push(SnapshotRecord::decode(&v)?);
        }
        out.sort_by_key(|r| r.epoch);
        Ok(out)
    }

    /// The snapshots of `volume`, oldest first.
    pub fn list_snapshots(&self, volume: &str) -> FsResult<Vec<Snapshot>> {
        let vol = self.volume(volume)?;
        Ok(self
            .snapshot_records(vol.id)?
            .into_iter()
            .filter(|r| !r.deleting)
            .map(|r| Snapshot {
                name: r.name,
                volume: vol.name.clone(),
                created: r.created,
                epoch: r.epoch,
            })
            .collect())
    }

    /// Deletes a snapshot: it disappears at once; its history is merged
    /// into the previous snapshot or freed by
    /// [`FileSystem::collect_snapshots`] (the server runs it in the
    /// background; an interrupted run resumes at the next start).
    pub fn delete_snapshot(&self, volume: &str, name: &str) -> FsResult<()> {
        let vol = self.volume(volume)?;
        transact(self.kv.as_ref(), true, |txn| -> FsResult<()> {
            let key = keys::snapshot(vol.id, name);
            let mut rec = match txn.get(&key)? {
                Some(b) => SnapshotRecord::decode(&b)?,
                None => return Err(FsError::NotFound),
            };
            if rec.deleting {
                return Err(FsError::NotFound);
            }
            rec.deleting = true;
            txn.put(&key, &rec.encode()?)?;
            let mut state = SnapState::load(txn, vol.id)?;
            for s in &mut state.snaps {
                if s.epoch == rec.epoch {
                    s.deleting = true;
                }
            }
            state.store(txn, vol.id)
        })?;
        self.snap_cache.lock().clear();
        tracing::info!(
            volume,
            snapshot = name,
            "snapshot deleted; freeing its history"
        );
        Ok(())
    }

    /// Finishes every snapshot deletion and restore that is pending.
    /// Returns the number of snapshots whose deletion completed.
    pub fn collect_snapshots(&self) -> FsResult<usize> {
        let _one = self.snap_collector.lock();
        let mut done = 0;
        for vol in self.list_volumes()? {
            let state = self.snap_state(vol.id)?;
            if state.restoring {
                if let Some(last) = state.snaps.iter().rev().find(|s| !s.deleting) {
                    self.finish_restore(vol.id, *last)?;
                }
            }
            for rec in self.snapshot_records(vol.id)? {
                if rec.deleting {
                    self.drain_snapshot(vol.id, &rec)?;
                    done += 1;
                }
            }
        }
        Ok(done)
    }

    /// A volume's snapshot state, read outside any transaction (one point
    /// read: every data write asks it).
    pub(crate) fn snap_state(&self, volume: u32) -> FsResult<SnapState> {
        SnapState::decode(self.kv.get(&keys::snap_state(volume))?.as_deref())
    }

    /// Moves or frees every history record of a deleted snapshot, then
    /// forgets it. Each batch is one transaction, so a crash resumes.
    fn drain_snapshot(&self, volume: u32, rec: &SnapshotRecord) -> FsResult<()> {
        let hp = keys::history_prefix(rec.epoch);
        let end = prefix_end(&hp);
        loop {
            let batch = self.kv.scan(&hp, &end, BATCH)?;
            if batch.is_empty() {
                break;
            }
            let gc = transact(self.kv.as_ref(), true, |txn| -> FsResult<Vec<Vec<u8>>> {
                let state = SnapState::load(txn, volume)?;
                let prev = state
                    .snaps
                    .iter()
                    .rev()
                    .find(|s| s.epoch < rec.epoch)
                    .copied();
                let mut gc = Vec::new();
                for (k, _) in &batch {
                    // Re-read: a live change may have moved it meanwhile.
                    let Some(v) = txn.get(k)? else { continue };
                    let original = keys::history_original(k)
                        .ok_or_else(|| FsError::Io("corrupt history key".into()))?
                        .to_vec();
                    let fate = fate(txn, prev, &original)?;
                    match fate {
                        Fate::MoveTo(epoch) => txn.put(&keys::history(epoch, &original), &v)?,
                        Fate::Drop => gc.extend(release(txn, &original, &v)?),
                    }
                    txn.delete(k)?;
                }
                Ok(gc)
            })?;
            self.run_gc_keys(&gc);
        }
        transact(self.kv.as_ref(), true, |txn| -> FsResult<()> {
            let mut state = SnapState::load(txn, volume)?;
            state.snaps.retain(|s| s.epoch != rec.epoch);
            state.store(txn, volume)?;
            txn.delete(&keys::snapshot(volume, &rec.name))?;
            Ok(())
        })?;
        tracing::info!(
            snapshot = rec.name,
            epoch = rec.epoch,
            "snapshot history freed"
        );
        Ok(())
    }

    /// Rolls `volume` back to snapshot `name`, which must be its newest.
    /// Changes made since are undone; the snapshot stays.
    pub fn restore_snapshot(&self, volume: &str, name: &str) -> FsResult<()> {
        let vol = self.volume(volume)?;
        let _barrier = self.snap_barrier.write();
        let target = transact(self.kv.as_ref(), true, |txn| -> FsResult<SnapInfo> {
            let rec = match txn.get(&keys::snapshot(vol.id, name))? {
                Some(b) => SnapshotRecord::decode(&b)?,
                None => return Err(FsError::NotFound),
            };
            if rec.deleting {
                return Err(FsError::NotFound);
            }
            let mut state = SnapState::load(txn, vol.id)?;
            if state.snaps.iter().any(|s| s.epoch > rec.epoch) {
                return Err(FsError::Invalid(
                    "only the newest snapshot can be restored: delete newer snapshots first",
                ));
            }
            let info = state
                .get(rec.epoch)
                .ok_or_else(|| FsError::Io("snapshot missing from volume state".into()))?;
            state.restoring = true;
            state.store(txn, vol.id)?;
            Ok(info)
        })?;
        self.finish_restore(vol.id, target)?;
        tracing::info!(volume, snapshot = name, "volume restored");
        Ok(())
    }

    /// Puts back every record and chunk the snapshot kept, removes what
    /// was created since, then lets writes in again. Idempotent: each
    /// step deletes the history it applied in the same transaction.
    fn finish_restore(&self, volume: u32, snap: SnapInfo) -> FsResult<()> {
        let hp = keys::history_prefix(snap.epoch);
        let end = prefix_end(&hp);
        loop {
            let batch = self.kv.scan(&hp, &end, BATCH)?;
            if batch.is_empty() {
                break;
            }
            // Chunks first (data before the metadata that points to it).
            for (k, v) in &batch {
                let original = keys::history_original(k).unwrap_or_default();
                if original.first() == Some(&keys::CHUNK_HISTORY) {
                    let (ino, index) = chunk_of(original)?;
                    self.restore_chunk(ino, index, v)?;
                }
            }
            let gc = transact(self.kv.as_ref(), true, |txn| -> FsResult<Vec<Vec<u8>>> {
                let mut gc = Vec::new();
                for (k, _) in &batch {
                    let Some(v) = txn.get(k)? else { continue };
                    let original = keys::history_original(k).unwrap_or_default().to_vec();
                    match original.first() {
                        Some(&keys::CHUNK_HISTORY) => gc.extend(release(txn, &original, &v)?),
                        Some(&keys::DATA_HISTORY) => {}
                        _ => {
                            let old = decode_history(&v)?;
                            if original.first() == Some(&keys::INODE) && old.is_none() {
                                // Created since: its data goes too.
                                if let Some(live) = txn.get(&original)? {
                                    gc.extend(data_gc(txn, &InodeRecord::decode(&live)?)?);
                                }
                            }
                            match old {
                                Some(o) => txn.put(&original, o)?,
                                None => txn.delete(&original)?,
                            }
                        }
                    }
                    txn.delete(k)?;
                }
                Ok(gc)
            });
            // Even a failed commit may have reached the engine (a log sync
            // that failed after the write): nothing cached may survive it.
            self.caches.clear();
            self.run_gc_keys(&gc?);
        }
        // Inodes numbered after the snapshot's mark did not exist then.
        let mut cursor = keys::inode(snap.next_inode);
        let stop = keys::inode(super::LIVE_INO_LIMIT);
        loop {
            let rows = self.kv.scan(&cursor, &stop, BATCH)?;
            let Some((last, _)) = rows.last() else { break };
            cursor = last.clone();
            cursor.push(0);
            let mine: Vec<InodeRecord> = rows
                .iter()
                .filter_map(|(_, v)| InodeRecord::decode(v).ok())
                .filter(|r| r.volume == volume)
                .collect();
            if !mine.is_empty() {
                let gc = transact(self.kv.as_ref(), true, |txn| -> FsResult<Vec<Vec<u8>>> {
                    let mut gc = Vec::new();
                    for r in &mine {
                        for p in [
                            keys::xattr_prefix(r.ino),
                            keys::dentry_prefix(r.ino),
                            keys::dir_cookie_prefix(r.ino),
                        ] {
                            for (k, _) in txn.scan(&p, &prefix_end(&p), usize::MAX)? {
                                txn.delete(&k)?;
                            }
                        }
                        txn.delete(&keys::acl(r.ino, 1))?;
                        txn.delete(&keys::acl(r.ino, 2))?;
                        txn.delete(&keys::inline(r.ino))?;
                        txn.delete(&keys::inode(r.ino))?;
                        gc.extend(data_gc(txn, r)?);
                    }
                    Ok(gc)
                });
                self.caches.clear();
                self.run_gc_keys(&gc?);
            }
            if rows.len() < BATCH {
                break;
            }
        }
        self.recount_quotas(volume)?;
        transact(self.kv.as_ref(), true, |txn| -> FsResult<()> {
            let mut state = SnapState::load(txn, volume)?;
            state.restoring = false;
            state.store(txn, volume)
        })?;
        Ok(())
    }

    /// Quota usage is live state, not part of snapshots: after a restore
    /// every quota of the volume is counted again from the restored tree
    /// (a tree quota whose directory did not exist then goes with it).
    fn recount_quotas(&self, volume: u32) -> FsResult<()> {
        for q in self.list_quotas(volume)? {
            self.remove_quota(q.target)?;
            match self.set_quota(q.target, q.limits) {
                Ok(_) => {}
                Err(FsError::NotFound | FsError::Stale | FsError::NotDir) => {
                    tracing::info!(target = ?q.target, "quota root gone with the restore");
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Puts a chunk back as the snapshot saw it.
    fn restore_chunk(&self, ino: u64, index: u64, history: &[u8]) -> FsResult<()> {
        let live = ChunkId { ino, index };
        match decode_location(history)? {
            None => self.chunks.remove(live)?,
            Some((home, len)) => {
                self.chunks.share(ChunkId { ino: home, index }, live, len)?;
            }
        }
        self.chunks.sync(ino)?;
        Ok(())
    }

    /// Deletes the chunks named by `GC` keys written in a committed
    /// transaction, then the keys.
    pub(crate) fn run_gc_keys(&self, gc: &[Vec<u8>]) {
        for k in gc {
            let Some(ino) = keys::ino_of(k) else { continue };
            match keys::gc_chunk_index(k) {
                Some(index) => self.delete_chunk(ino, index),
                None => self.delete_chunks(ino),
            }
        }
    }
}

/// Where a kept chunk's history says its copy is and how long it is
/// (`None`: it was a hole).
pub(crate) fn decode_location(v: &[u8]) -> FsResult<Option<(u64, usize)>> {
    let bad = || FsError::Io("corrupt chunk history record".into());
    match v.split_first() {
        Some((0, _)) => Ok(None),
        Some((1, rest)) if rest.len() == 12 => {
            let home: [u8; 8] = rest[..8].try_into().map_err(|_| bad())?;
            let len: [u8; 4] = rest[8..].try_into().map_err(|_| bad())?;
            Ok(Some((
                u64::from_be_bytes(home),
                u32::from_be_bytes(len) as usize,
            )))
        }
        _ => Err(bad()),
    }
}

/// Encodes where a kept chunk's copy is and its length.
pub(crate) fn encode_location(copy: Option<(u64, usize)>) -> Vec<u8> {
    match copy {
        None => vec![0],
        Some((home, len)) => {
            let mut v = vec![1];
            v.extend_from_slice(&home.to_be_bytes());
            v.extend_from_slice(&(len as u32).to_be_bytes());
            v
        }
    }
}

/// (data inode, chunk index) of a `CHUNK_HISTORY` pseudo-key.
pub(crate) fn chunk_of(original: &[u8]) -> FsResult<(u64, u64)> {
    let bad = || FsError::Io("corrupt chunk history key".into());
    let ino: [u8; 8] = original
        .get(1..9)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    let idx: [u8; 8] = original
        .get(9..17)
        .ok_or_else(bad)?
        .try_into()
        .map_err(|_| bad())?;
    Ok((u64::from_be_bytes(ino), u64::from_be_bytes(idx)))
}

/// Whether the previous snapshot takes a deleted snapshot's record over:
/// it does when it lacks its own (so the record was unchanged between
/// them) and the record's inode existed when it was taken.
fn fate(txn: &mut dyn Txn, prev: Option<SnapInfo>, original: &[u8]) -> FsResult<Fate> {
    let Some(prev) = prev else {
        return Ok(Fate::Drop);
    };
    let owner = match original.first() {
        Some(&keys::CHUNK_HISTORY) => Some(chunk_of(original)?.0),
        Some(&keys::DATA_HISTORY) => keys::ino_of(original),
        _ => owner_of(original),
    };
    let Some(owner) = owner else {
        return Ok(Fate::Drop);
    };
    if owner >= prev.next_inode || txn.get(&keys::history(prev.epoch, original))?.is_some() {
        return Ok(Fate::Drop);
    }
    Ok(Fate::MoveTo(prev.epoch))
}

/// Frees what a dropped history record held: a kept chunk copy, or a
/// removed file's chunks. Returns the `GC` keys written.
fn release(txn: &mut dyn Txn, original: &[u8], v: &[u8]) -> FsResult<Vec<Vec<u8>>> {
    let key = match original.first() {
        Some(&keys::CHUNK_HISTORY) => {
            let (_, index) = chunk_of(original)?;
            match decode_location(v)? {
                Some((home, _)) => keys::gc_chunk(home, index),
                None => return Ok(Vec::new()),
            }
        }
        Some(&keys::DATA_HISTORY) => match keys::ino_of(original) {
            Some(ino) => keys::gc(ino),
            None => return Ok(Vec::new()),
        },
        _ => return Ok(Vec::new()),
    };
    txn.put(&key, &[])?;
    Ok(vec![key])
}

/// Writes the `GC` records for the data of a file that goes away and
/// returns them.
fn data_gc(txn: &mut dyn Txn, r: &InodeRecord) -> FsResult<Vec<Vec<u8>>> {
    if r.kind != FileType::Regular {
        return Ok(Vec::new());
    }
    let mut out = Vec::new();
    for ino in r.data_inodes() {
        let k = keys::gc(ino);
        txn.put(&k, &[])?;
        out.push(k);
    }
    Ok(out)
}
