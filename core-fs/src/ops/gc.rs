//! Deleting the chunks of removed files, and collecting orphans.
//!
//! The unlink transaction writes a `GC` record; chunks are deleted after
//! the commit and the record goes last. A crash in between leaves the
//! record, and the next start finishes the job. Chunk data of inodes that
//! never reached metadata (creates come first, but a create answered
//! before its log sync, on an NFS `async_metadata` export, can be lost by
//! a crash after its file's chunks were written, and a crash during
//! deletion can leave partial directories) is found by the orphan scan at
//! start.

use crate::{FileSystem, FsResult};
use nitrofs_metadata::{keys, prefix_end};

impl FileSystem {
    /// Deletes the chunks of a removed inode and then its GC record.
    /// Failures are logged and left for the next start.
    pub(crate) fn delete_chunks(&self, ino: u64) {
        // The change that freed them must be durable first: inside
        // `deferring_sync` its log sync is still owed, so the GC record
        // is left for the collector at the next start.
        if nitrofs_metadata::sync_owed() {
            tracing::debug!(ino, "chunk deletion left to the collector: sync owed");
            return;
        }
        // A reader that opened the file before it lost its name keeps its
        // bytes; the last one to finish deletes them.
        if self.read_pins.defer_deletion(ino) {
            tracing::debug!(ino, "chunk deletion waits for readers");
            return;
        }
        // A snapshot may have taken the data over instead (no GC record).
        match self.kv.get(&keys::gc(ino)) {
            Ok(Some(_)) => {}
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(ino, error = %e, "could not read GC record");
                return;
            }
        }
        if let Err(e) = self.chunks.remove_from(ino, 0) {
            tracing::warn!(ino, error = %e, "chunk deletion failed; will retry at next start");
            return;
        }
        let mut txn = self.kv.begin();
        let res = txn
            .delete(&keys::gc(ino))
            .and_then(|()| txn.delete(&keys::data_owner(ino)))
            .and_then(|()| txn.commit(false));
        if let Err(e) = res {
            tracing::warn!(ino, error = %e, "could not clear GC record");
        }
    }

    /// Deletes one chunk (a snapshot's copy no one needs) and then its GC
    /// record.
    pub(crate) fn delete_chunk(&self, ino: u64, index: u64) {
        if let Err(e) = self
            .chunks
            .remove(nitrofs_chunk_store::ChunkId { ino, index })
        {
            tracing::warn!(ino, index, error = %e, "chunk deletion failed; will retry at next start");
            return;
        }
        let mut txn = self.kv.begin();
        let res = txn
            .delete(&keys::gc_chunk(ino, index))
            .and_then(|()| txn.commit(false));
        if let Err(e) = res {
            tracing::warn!(ino, index, error = %e, "could not clear GC record");
        }
    }

    /// Finishes interrupted deletions and removes chunk data that belongs
    /// to no inode. Runs at start, before any request is served.
    pub(crate) fn collect_garbage(&self) -> FsResult<()> {
        let prefix = keys::gc_prefix();
        let pending = self.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)?;
        let keys: Vec<Vec<u8>> = pending.into_iter().map(|(k, _)| k).collect();
        self.run_gc_keys(&keys);
        let mut orphans = 0usize;
        let epochs = self.all_snapshot_epochs()?;
        for ino in self.chunks.inodes()? {
            // Snapshot copies are freed through their history records.
            if ino >= crate::snapshot::LIVE_INO_LIMIT {
                continue;
            }
            if self.kv.get(&keys::inode(ino))?.is_none()
                && self.kv.get(&keys::data_owner(ino))?.is_none()
                && !self.held_by_snapshot(ino, &epochs)?
            {
                self.chunks.remove_from(ino, 0)?;
                orphans += 1;
            }
        }
        if orphans > 0 {
            tracing::info!(orphans, "removed chunk data of inodes that no longer exist");
        }
        Ok(())
    }

    /// Every snapshot epoch of every volume (deleting ones included).
    fn all_snapshot_epochs(&self) -> FsResult<Vec<u64>> {
        let p = vec![keys::SNAP_STATE];
        let mut out = Vec::new();
        for (k, _) in self.kv.scan(&p, &prefix_end(&p), usize::MAX)? {
            let vol: [u8; 4] = k
                .get(1..5)
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| crate::FsError::Io("corrupt snapshot state key".into()))?;
            let state = self.snap_state(u32::from_be_bytes(vol))?;
            out.extend(state.snaps.iter().map(|s| s.epoch));
        }
        Ok(out)
    }

    /// Whether a removed inode's chunks belong to a snapshot.
    fn held_by_snapshot(&self, ino: u64, epochs: &[u64]) -> FsResult<bool> {
        for e in epochs {
            if self
                .kv
                .get(&keys::history(*e, &keys::data_history(ino)))?
                .is_some()
            {
                return Ok(true);
            }
        }
        Ok(false)
    }
}
