//! In-memory backend with the same optimistic-conflict semantics as the
//! RocksDB one. For tests and tools; nothing survives the process.

use crate::{KvError, KvPair, KvResult, MetaKv, Txn};
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;

#[derive(Default)]
struct State {
    /// key → (value, sequence number of the commit that wrote it).
    data: BTreeMap<Vec<u8>, (Vec<u8>, u64)>,
    /// Deleted keys → sequence number of the deleting commit.
    tombstones: HashMap<Vec<u8>, u64>,
    seq: u64,
    /// Commits up to this one were "synced" (nothing is durable here, but
    /// callers are told what a real engine would tell them).
    synced: u64,
}

impl State {
    fn version(&self, key: &[u8]) -> u64 {
        self.data
            .get(key)
            .map(|(_, s)| *s)
            .or_else(|| self.tombstones.get(key).copied())
            .unwrap_or(0)
    }
}

/// A transactional map in memory.
#[derive(Default)]
pub struct MemKv {
    state: Mutex<State>,
}

impl MemKv {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
}

fn range(state: &State, start: &[u8], end: &[u8], limit: usize) -> Vec<KvPair> {
    if start >= end {
        return Vec::new();
    }
    state
        .data
        .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
        .take(limit)
        .map(|(k, (v, _))| (k.clone(), v.clone()))
        .collect()
}

impl MetaKv for MemKv {
    fn begin(&self) -> Box<dyn Txn + '_> {
        let start_seq = self.state.lock().seq;
        Box::new(MemTxn {
            kv: self,
            start_seq,
            reads: Vec::new(),
            writes: BTreeMap::new(),
        })
    }

    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        Ok(self.state.lock().data.get(key).map(|(v, _)| v.clone()))
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        Ok(range(&self.state.lock(), start, end, limit))
    }

    fn log_position(&self) -> u64 {
        self.state.lock().seq
    }

    fn sync_to(&self, upto: u64) -> KvResult<()> {
        // Nothing to make durable; inside `deferring_sync` the caller is
        // still told a sync is owed, as with a real engine.
        let mut state = self.state.lock();
        if state.synced >= upto || crate::defer_sync(upto) {
            return Ok(());
        }
        state.synced = state.seq;
        Ok(())
    }
}

struct MemTxn<'a> {
    kv: &'a MemKv,
    start_seq: u64,
    reads: Vec<Vec<u8>>,
    /// Buffered writes; `None` is a delete.
    writes: BTreeMap<Vec<u8>, Option<Vec<u8>>>,
}

impl Txn for MemTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if let Some(w) = self.writes.get(key) {
            return Ok(w.clone());
        }
        // A change after begin() is reported at commit, as RocksDB does.
        self.reads.push(key.to_vec());
        Ok(self.kv.state.lock().data.get(key).map(|(v, _)| v.clone()))
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.writes.insert(key.to_vec(), Some(value.to_vec()));
        Ok(())
    }

    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.writes.insert(key.to_vec(), None);
        Ok(())
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        let state = self.kv.state.lock();
        let mut merged: BTreeMap<Vec<u8>, Vec<u8>> =
            range(&state, start, end, usize::MAX).into_iter().collect();
        drop(state);
        if start < end {
            for (k, w) in self
                .writes
                .range::<[u8], _>((Bound::Included(start), Bound::Excluded(end)))
            {
                match w {
                    Some(v) => merged.insert(k.clone(), v.clone()),
                    None => merged.remove(k),
                };
            }
        }
        Ok(merged.into_iter().take(limit).collect())
    }

    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        crate::commit_allowed()?;
        let mut state = self.kv.state.lock();
        if self.reads.iter().any(|k| state.version(k) > self.start_seq) {
            return Err(KvError::Conflict);
        }
        if self.writes.is_empty() {
            return Ok(());
        }
        state.seq += 1;
        crate::note_committed();
        let seq = state.seq;
        if durable && !crate::defer_sync(seq) {
            state.synced = seq;
        }
        for (k, w) in self.writes {
            match w {
                Some(v) => {
                    state.tombstones.remove(&k);
                    state.data.insert(k, (v, seq));
                }
                None => {
                    state.data.remove(&k);
                    state.tombstones.insert(k, seq);
                }
            }
        }
        Ok(())
    }
}
