//! Where in the metadata log each file's latest unstable write is, so
//! that COMMIT waits only for a log sync that covers that write: one that
//! has already finished costs it nothing, and (for a COMMIT the NFS
//! server answers on a connection's task, an inline file's) one already
//! running is enough. Before, every COMMIT asked for a sync starting
//! after it, so it waited for the running one to end and then for a
//! whole sync more.

use nitrofs_common::InodeId;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Files remembered before the map is emptied into its floor.
const CAPACITY: usize = 1 << 16;

/// Log positions ([`nitrofs_metadata::MetaKv::log_position`]) of unstable
/// writes, by file.
#[derive(Default)]
pub(crate) struct UnsyncedWrites {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    positions: HashMap<InodeId, u64>,
    /// No write of a file missing from `positions` is past this position.
    floor: u64,
}

impl UnsyncedWrites {
    /// Records that an unstable write of `ino` committed before the log
    /// was at `position`.
    pub(crate) fn note(&self, ino: InodeId, position: u64) {
        let mut g = self.inner.lock();
        if g.positions.len() >= CAPACITY && !g.positions.contains_key(&ino) {
            // Forgotten files fall back to the floor: later than their
            // writes, so a COMMIT of one waits for more than it needs.
            let top = g.positions.values().copied().max().unwrap_or(0);
            g.floor = g.floor.max(top);
            g.positions.clear();
        }
        let p = g.positions.entry(ino).or_insert(0);
        *p = (*p).max(position);
    }

    /// A log position no unstable write of `ino` so far is past.
    pub(crate) fn of(&self, ino: InodeId) -> u64 {
        let g = self.inner.lock();
        g.positions.get(&ino).copied().unwrap_or(g.floor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_at_its_latest_write_and_forgotten_ones_at_the_floor() {
        let w = UnsyncedWrites::default();
        assert_eq!(w.of(1), 0);
        w.note(1, 10);
        w.note(1, 7);
        w.note(2, 12);
        assert_eq!((w.of(1), w.of(2), w.of(3)), (10, 12, 0));
        for ino in 100..100 + CAPACITY as u64 {
            w.note(ino, 20);
        }
        // The map filled and was emptied: what it held is at the floor,
        // which is past every write it forgot.
        assert_eq!(w.of(1), 20);
        assert_eq!(w.of(2), 20);
        w.note(2, 30);
        assert_eq!((w.of(2), w.of(5)), (30, 20));
    }
}
