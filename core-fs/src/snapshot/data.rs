//! Copy-on-write of chunk data.
//!
//! Before the first change to a chunk after a snapshot (a write into it,
//! or a truncate that cuts or drops it), the chunk is shared
//! ([`nitrofs_chunk_store::ChunkStore::share`]: a hard link in the local engine, so no bytes
//! move; the engine copies it when the live side then changes) to the
//! snapshot's home for that inode, and a `CHUNK_HISTORY` record points to
//! the copy (or says the chunk was a hole). A truncate that drops whole
//! chunks therefore copies nothing. Crash safety: a `GC ‖ home ‖
//! index` intent is committed before the copy and deleted in the
//! transaction that records it, so a copy no record points to is deleted
//! at the next start.

use super::admin::encode_location;
use super::state::{chunk_home, take_over, SnapState};
use crate::{FileSystem, FsResult};
use nitrofs_chunk_store::ChunkId;
use nitrofs_metadata::{keys, transact};

/// Inside `txn`, which moves inline file `ino`'s bytes into chunks
/// `indexes`: the newest snapshot holding the file saw it inline, so
/// those chunks were holes to it. Copy-on-write then copies nothing
/// when they change, and a restore deletes them.
pub(crate) fn chunks_unseen(
    txn: &mut dyn nitrofs_metadata::Txn,
    volume: u32,
    ino: u64,
    indexes: impl IntoIterator<Item = u64>,
) -> FsResult<()> {
    let Some(target) = SnapState::load(txn, volume)?.target() else {
        return Ok(());
    };
    if ino >= target.next_inode {
        return Ok(());
    }
    for index in indexes {
        let hk = keys::history(target.epoch, &keys::chunk_history(ino, index));
        if txn.get(&hk)?.is_none() {
            txn.put(&hk, &encode_location(None))?;
        }
    }
    Ok(())
}

impl FileSystem {
    /// Keeps the newest snapshot's copy of chunks `indexes` of data inode
    /// `ino` (in `volume`, chunk size `cs`) before they change.
    pub(crate) fn preserve_chunks(
        &self,
        volume: u32,
        ino: u64,
        cs: u64,
        indexes: impl IntoIterator<Item = u64>,
    ) -> FsResult<()> {
        let state = self.snap_state(volume)?;
        let Some(target) = state.target() else {
            return Ok(());
        };
        if ino >= target.next_inode {
            return Ok(());
        }
        // Chunk I/O and syncs that must not be deferred follow.
        nitrofs_metadata::may_wait()?;
        if nitrofs_metadata::sync_owed() {
            return Err(crate::FsError::Io(
                "snapshot copy-on-write inside a deferred log sync".into(),
            ));
        }
        let mut existing: Option<Vec<u64>> = None;
        for index in indexes {
            let original = keys::chunk_history(ino, index);
            let hk = keys::history(target.epoch, &original);
            if self.kv.get(&hk)?.is_some() {
                continue;
            }
            let _guard = self.lock_inode(ino);
            if self.kv.get(&hk)?.is_some() {
                continue;
            }
            if self.take_over_chunk(volume, target.epoch, &original)? {
                continue;
            }
            let exists = existing
                .get_or_insert_with(|| self.chunks.indexes(ino).unwrap_or_default())
                .contains(&index);
            let home = chunk_home(target.epoch, ino);
            let intent = keys::gc_chunk(home, index);
            let mut copied = None;
            if exists {
                transact(self.kv.as_ref(), true, |txn| -> FsResult<()> {
                    Ok(txn.put(&intent, &[])?)
                })?;
                // Writes from before the snapshot become durable in the
                // copy too; the copy shares storage until either changes.
                self.chunks.sync(ino)?;
                let copy = ChunkId { ino: home, index };
                if self
                    .chunks
                    .share(ChunkId { ino, index }, copy, cs as usize)?
                {
                    self.chunks.sync(home)?;
                    copied = Some((home, cs as usize));
                }
            }
            transact(self.kv.as_ref(), true, |txn| -> FsResult<()> {
                if txn.get(&hk)?.is_none() {
                    txn.put(&hk, &encode_location(copied))?;
                }
                if exists {
                    txn.delete(&intent)?;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    /// A newer snapshot being deleted may hold the chunk as `epoch` saw
    /// it: its record moves to `epoch`. True when it did.
    fn take_over_chunk(&self, volume: u32, epoch: u64, original: &[u8]) -> FsResult<bool> {
        transact(self.kv.as_ref(), true, |txn| -> FsResult<bool> {
            let state = SnapState::load(txn, volume)?;
            let newer: Vec<u64> = state.newer_than(epoch).map(|s| s.epoch).collect();
            Ok(take_over(txn, newer, epoch, original)?)
        })
    }
}
