//! A chunk engine decorator for tests: holds a record write at a gate, or
//! fails the removal of chosen records, around a real local engine.

use crate::store::space::chunk_id;
use crate::store::{Clock, Durability, Space};
use bytes::Bytes;
use nitrofs_chunk_store::{
    ChunkError, ChunkId, ChunkResult, ChunkStore, LocalChunkStore, SpaceStats,
};
use parking_lot::Mutex;
use std::collections::HashSet;
use std::io;
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A held record write: `entered` gets its value id, then the write waits
/// until `release` is sent to (or dropped).
struct Gate {
    entered: Sender<u64>,
    release: Receiver<()>,
}

/// The test's end of an armed gate.
pub(super) struct Armed {
    pub entered: Receiver<u64>,
    pub release: Sender<()>,
}

pub(super) struct Faulty {
    inner: LocalChunkStore,
    gate: Mutex<Option<Gate>>,
    fail_remove: Mutex<HashSet<u64>>,
}

impl Faulty {
    /// Holds the next record write (its header write) at a gate.
    pub fn arm(&self) -> Armed {
        let (entered_tx, entered) = channel();
        let (release, release_rx) = channel();
        *self.gate.lock() = Some(Gate {
            entered: entered_tx,
            release: release_rx,
        });
        Armed { entered, release }
    }

    /// Makes removing record `vid` fail until [`Faulty::heal`].
    pub fn fail_remove(&self, vid: u64) {
        self.fail_remove.lock().insert(vid);
    }

    pub fn heal(&self) {
        self.fail_remove.lock().clear();
    }

    pub fn exists(&self, vid: u64) -> bool {
        let id = chunk_id(vid);
        self.inner
            .indexes(id.ino)
            .expect("indexes")
            .contains(&id.index)
    }
}

impl ChunkStore for Faulty {
    fn read(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Bytes> {
        self.inner.read(id, offset, len)
    }

    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()> {
        let gate = if offset == 0 {
            self.gate.lock().take()
        } else {
            None
        };
        if let Some(g) = gate {
            g.entered.send(id.index).expect("test listens");
            // Released by a message or by the test dropping its sender.
            let _ = g.release.recv();
        }
        self.inner.write(id, offset, data)
    }

    fn truncate(&self, id: ChunkId, len: u64) -> ChunkResult<()> {
        self.inner.truncate(id, len)
    }

    fn remove_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        self.inner.remove_from(ino, from_index)
    }

    fn remove(&self, id: ChunkId) -> ChunkResult<()> {
        if self.fail_remove.lock().contains(&id.index) {
            return Err(ChunkError::Io(io::Error::other("injected remove failure")));
        }
        self.inner.remove(id)
    }

    fn indexes(&self, ino: u64) -> ChunkResult<Vec<u64>> {
        self.inner.indexes(ino)
    }

    fn sync(&self, ino: u64) -> ChunkResult<()> {
        self.inner.sync(ino)
    }

    fn sync_all(&self) -> ChunkResult<()> {
        self.inner.sync_all()
    }

    fn inodes(&self) -> ChunkResult<Vec<u64>> {
        self.inner.inodes()
    }

    fn space(&self) -> ChunkResult<SpaceStats> {
        self.inner.space()
    }
}

/// A disk space of `capacity` over a [`Faulty`] engine in `dir` (opened,
/// so recovered, like a space of a store).
pub(super) fn faulty_space(
    dir: &Path,
    capacity: u64,
    clock: Arc<dyn Clock>,
) -> (Arc<Space>, Arc<Faulty>) {
    let faulty = Arc::new(Faulty {
        inner: LocalChunkStore::open(dir).expect("chunks"),
        gate: Mutex::new(None),
        fail_remove: Mutex::new(HashSet::new()),
    });
    let mut cfg = super::cfg("f", capacity, Durability::Disk);
    cfg.id = 1;
    let space = Space::recover(cfg, faulty.clone(), clock).expect("open space");
    (Arc::new(space), faulty)
}

/// Spins (yielding) until `cond` holds: for states another thread reaches
/// without telling us. Panics after a generous bound instead of hanging.
pub(super) fn until(what: &str, cond: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(30);
    while !cond() {
        assert!(Instant::now() < give_up, "never reached: {what}");
        std::thread::yield_now();
    }
}
