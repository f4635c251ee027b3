//! A cache of inode records for reads outside transactions (getattr,
//! lookup, READ, ACCESS, listings): most metadata reads are of a few hot
//! inodes, and each saved engine lookup is a skiplist or SST search.
//!
//! Coherence: every committed change of an inode record invalidates its
//! entry before the operation returns (`FileSystem::transact` knows the
//! inodes its transaction wrote), so a read that starts after a change was
//! acknowledged never sees the old record. A reader that raced a change
//! must not put back what it read before it: each stripe has a generation
//! that invalidation bumps, and a reader inserts only if the generation it
//! saw before reading the engine is unchanged. Transactions never read
//! through the cache (their reads are conflict-tracked).

use crate::record::InodeRecord;
use parking_lot::Mutex;
use std::collections::HashMap;

/// Independent stripes (fewer lock collisions between threads).
const STRIPES: usize = 64;
/// Entries per stripe before half of it is dropped.
const PER_STRIPE: usize = 4096;

#[derive(Default)]
struct Stripe {
    map: HashMap<u64, InodeRecord>,
    generation: u64,
}

/// Striped inode-record cache; see the module notes.
pub(crate) struct InodeCache {
    stripes: Vec<Mutex<Stripe>>,
}

impl InodeCache {
    pub(crate) fn new() -> Self {
        Self {
            stripes: (0..STRIPES)
                .map(|_| Mutex::new(Stripe::default()))
                .collect(),
        }
    }

    fn stripe(&self, ino: u64) -> &Mutex<Stripe> {
        &self.stripes[(ino % STRIPES as u64) as usize]
    }

    /// The cached record, or the generation to pass to [`InodeCache::fill`]
    /// after reading it from the engine.
    pub(crate) fn get(&self, ino: u64) -> Result<InodeRecord, u64> {
        let s = self.stripe(ino).lock();
        match s.map.get(&ino) {
            Some(r) => Ok(r.clone()),
            None => Err(s.generation),
        }
    }

    /// Caches `rec`, read from the engine after [`InodeCache::get`]
    /// returned `generation`, unless a change was invalidated since.
    pub(crate) fn fill(&self, rec: &InodeRecord, generation: u64) {
        let mut s = self.stripe(rec.ino).lock();
        if s.generation != generation {
            return;
        }
        if s.map.len() >= PER_STRIPE {
            let victims: Vec<u64> = s.map.keys().take(PER_STRIPE / 2).copied().collect();
            for v in victims {
                s.map.remove(&v);
            }
        }
        s.map.insert(rec.ino, rec.clone());
    }

    /// Forgets `ino` after a committed change.
    pub(crate) fn invalidate(&self, ino: u64) {
        let mut s = self.stripe(ino).lock();
        s.generation = s.generation.wrapping_add(1);
        s.map.remove(&ino);
    }

    /// Forgets everything (after bulk changes such as a restore).
    pub(crate) fn clear(&self) {
        for s in &self.stripes {
            let mut s = s.lock();
            s.generation = s.generation.wrapping_add(1);
            s.map.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(ino: u64, size: u64) -> InodeRecord {
        crate::record::test_file(ino, size)
    }

    #[test]
    fn a_read_that_raced_an_invalidation_is_not_cached() {
        let c = InodeCache::new();
        let g = c.get(7).expect_err("empty");
        // A change commits and invalidates while the reader holds the old record.
        c.invalidate(7);
        c.fill(&rec(7, 1), g);
        assert!(c.get(7).is_err(), "the stale record must not be cached");
        let g = c.get(7).expect_err("still empty");
        c.fill(&rec(7, 2), g);
        assert_eq!(c.get(7).expect("cached").size, 2);
        c.invalidate(7);
        assert!(c.get(7).is_err());
    }

    #[test]
    fn a_full_stripe_drops_entries_instead_of_growing() {
        let c = InodeCache::new();
        for i in 0..(PER_STRIPE as u64 * 3) {
            let ino = i * STRIPES as u64;
            let g = c.get(ino).expect_err("new");
            c.fill(&rec(ino, i), g);
        }
        assert!(c.stripes[0].lock().map.len() <= PER_STRIPE);
        c.clear();
        assert!(c.get(0).is_err());
    }
}
