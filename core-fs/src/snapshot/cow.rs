//! The copy-on-write transaction wrapper.
//!
//! Before a transaction first changes a namespace record (inode, entry,
//! readdir cookie, xattr, ACL) of a volume that has a snapshot, the record
//! as it was goes to `HISTORY ‖ epoch ‖ key` of the newest snapshot
//! (`epoch`), unless one is already there: that is the snapshot's copy,
//! and later changes never touch it. Records of inodes created after the
//! snapshot (at or above its inode high-water mark) are not in it and are
//! never copied. A removed file's chunks are not deleted while a snapshot
//! holds the file: the `GC` record becomes a `DATA_HISTORY` record of the
//! snapshot.
//!
//! Every transaction reads the volume's `SNAP_STATE` before its first
//! change, so a snapshot taken concurrently (which writes that key) makes
//! one of the two retry: each change lands wholly before or after it.

use super::state::{encode_history, owner_of, take_over, SnapState, LIVE_INO_LIMIT};
use crate::cache::CachedKey;
use crate::record::InodeRecord;
use crate::FsError;
use nitrofs_metadata::{keys, KvError, KvPair, KvResult, Txn};
use std::collections::HashMap;

/// A metadata transaction that preserves what snapshots show.
pub(crate) struct CowTxn<'a> {
    inner: Box<dyn Txn + 'a>,
    /// Volume of every inode this transaction has read or written.
    volumes: HashMap<u64, u32>,
    /// Snapshot state of every volume this transaction changed.
    states: HashMap<u32, SnapState>,
    /// The first volume seen: data inodes without a record of their own
    /// (segments of a multipart object) belong to it.
    primary: Option<u32>,
    /// Why a change was refused (reported instead of the engine error).
    refused: Option<FsError>,
    /// Inode records and directory entries this transaction wrote (the
    /// value) or deleted (`None`), last write of each key.
    written: HashMap<CachedKey, Option<Vec<u8>>>,
}

impl<'a> CowTxn<'a> {
    pub(crate) fn new(inner: Box<dyn Txn + 'a>) -> Self {
        Self {
            inner,
            volumes: HashMap::new(),
            states: HashMap::new(),
            primary: None,
            refused: None,
            written: HashMap::new(),
        }
    }

    pub(crate) fn commit(self, durable: bool) -> KvResult<()> {
        self.inner.commit(durable)
    }

    /// The inode records and directory entries this transaction wrote
    /// (`None`: deleted), for the caches once it commits.
    pub(crate) fn take_written(&mut self) -> HashMap<CachedKey, Option<Vec<u8>>> {
        std::mem::take(&mut self.written)
    }

    /// The error to report when a change failed because it was refused
    /// (the `Txn` interface can only carry engine errors).
    pub(crate) fn take_refusal(&mut self) -> Option<FsError> {
        self.refused.take()
    }

    fn learn(&mut self, ino: u64, record: &[u8]) {
        if let Ok(rec) = InodeRecord::decode(record) {
            self.volumes.insert(ino, rec.volume);
            self.primary.get_or_insert(rec.volume);
        }
    }

    fn volume_of(&mut self, ino: u64) -> KvResult<Option<u32>> {
        if let Some(v) = self.volumes.get(&ino) {
            return Ok(Some(*v));
        }
        match self.inner.get(&keys::inode(ino))? {
            Some(b) => {
                self.learn(ino, &b);
                Ok(self.volumes.get(&ino).copied())
            }
            None => Ok(None),
        }
    }

    fn state(&mut self, volume: u32) -> KvResult<&SnapState> {
        if !self.states.contains_key(&volume) {
            let st = SnapState::load(self.inner.as_mut(), volume)
                .map_err(|e| KvError::Engine(e.to_string()))?;
            self.states.insert(volume, st);
        }
        Ok(&self.states[&volume])
    }

    fn refuse(&mut self, why: FsError) -> KvError {
        let msg = why.to_string();
        self.refused = Some(why);
        KvError::Engine(msg)
    }

    /// Keeps the newest snapshot's copy of `key` before it changes.
    fn preserve(&mut self, key: &[u8]) -> KvResult<()> {
        let Some(owner) = owner_of(key) else {
            return Ok(());
        };
        if owner >= LIVE_INO_LIMIT {
            return Err(self.refuse(FsError::ReadOnly));
        }
        let Some(volume) = self.volume_of(owner)? else {
            // No record: created in this transaction, in no snapshot.
            return Ok(());
        };
        let state = self.state(volume)?;
        if state.restoring {
            return Err(self.refuse(FsError::ReadOnly));
        }
        let Some(target) = state.target() else {
            return Ok(());
        };
        if owner >= target.next_inode {
            return Ok(());
        }
        let newer: Vec<u64> = state.newer_than(target.epoch).map(|s| s.epoch).collect();
        let hk = keys::history(target.epoch, key);
        if self.inner.get(&hk)?.is_some() {
            return Ok(());
        }
        // A newer snapshot being deleted may hold what the target saw
        // (unchanged between them): it moves over instead of a copy.
        if take_over(self.inner.as_mut(), newer, target.epoch, key)? {
            return Ok(());
        }
        let old = self.inner.get(key)?;
        self.inner.put(&hk, &encode_history(old.as_deref()))
    }

    /// A removed data inode the newest snapshot holds keeps its chunks:
    /// returns true when the `GC` record must not be written.
    fn keep_for_snapshot(&mut self, ino: u64) -> KvResult<bool> {
        let Some(volume) = self.volumes.get(&ino).copied().or(self.primary) else {
            return Ok(false);
        };
        let Some(target) = self.state(volume)?.target() else {
            return Ok(false);
        };
        if ino >= target.next_inode {
            return Ok(false);
        }
        let hk = keys::history(target.epoch, &keys::data_history(ino));
        if self.inner.get(&hk)?.is_none() {
            self.inner.put(&hk, &[1])?;
        }
        Ok(true)
    }
}

impl Txn for CowTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        let v = self.inner.get(key)?;
        if key.first() == Some(&keys::INODE) {
            if let (Some(ino), Some(b)) = (keys::ino_of(key), v.as_deref()) {
                self.learn(ino, b);
            }
        }
        Ok(v)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        match key.first() {
            Some(&keys::INODE) => {
                if let Some(ino) = keys::ino_of(key) {
                    if !self.volumes.contains_key(&ino) {
                        // Maybe a new inode: its record names its volume.
                        // One numbered below a snapshot's mark (reserved
                        // before it, created after) still gets its absence
                        // recorded, so the snapshot and a restore know it
                        // did not exist.
                        self.learn(ino, value);
                    }
                }
            }
            Some(&keys::GC) if key.len() == 9 => {
                if let Some(ino) = keys::ino_of(key) {
                    if self.keep_for_snapshot(ino)? {
                        return Ok(());
                    }
                }
                return self.inner.put(key, value);
            }
            _ => {}
        }
        self.preserve(key)?;
        self.inner.put(key, value)?;
        if let Some(k) = CachedKey::of(key) {
            self.written.insert(k, Some(value.to_vec()));
        }
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.preserve(key)?;
        self.inner.delete(key)?;
        if let Some(k) = CachedKey::of(key) {
            self.written.insert(k, None);
        }
        Ok(())
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }

    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        self.inner.commit(durable)
    }
}
