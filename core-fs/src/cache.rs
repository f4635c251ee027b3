//! Caches of metadata records for reads outside transactions: inode
//! records (getattr, lookup, READ, ACCESS, listings), directory entries
//! (lookup) and inline files' bytes (READ). Most metadata reads are of a few hot records, and each saved
//! engine lookup is a skiplist or SST search; a record the engine has
//! flushed to a table file and not read since is not even in its block
//! cache, so an NFS call needing it would leave the connection's task for
//! the blocking pool (`nitrofs_metadata::memory_only`).
//!
//! Filling: a read that missed puts what it read; a committed transaction
//! puts what it wrote (write-through), so a file just created is looked up
//! and stat'ed from memory, as a kernel server's dentry and inode caches
//! would.
//!
//! Coherence: every committed change of a cached key updates or drops its
//! entry before the operation returns (`FileSystem::transact` knows the
//! keys its transaction wrote), so a read that starts after a change was
//! acknowledged never sees the old value. Nobody may put back an older
//! value than the engine holds: each stripe has a generation that every
//! change bumps, a reader fills only if the generation it saw before
//! reading the engine is unchanged, and a writer stores its value only if
//! the generation it saw before committing is unchanged (otherwise another
//! change raced it, and the entry is dropped instead). Transactions never
//! read through the caches (their reads are conflict-tracked).

use crate::record::{DentryRecord, InodeRecord};
use bytes::Bytes;
use nitrofs_common::Timestamp;
use nitrofs_metadata::keys;
use parking_lot::Mutex;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

/// Independent stripes: fewer lock collisions between threads, and fewer
/// write-through stores dropped because another change bumped the same
/// stripe meanwhile.
const STRIPES: usize = 1024;

/// Stripes of the inline bytes cache: fewer than the record caches', so
/// that each stripe's share of the bytes holds even the largest inline
/// file ([`crate::INLINE_MAX_LIMIT`]) when the cache is a few hundred MiB.
const INLINE_STRIPES: usize = 64;

/// What an inline file's cached bytes cost beyond their length (the map
/// slot, the `Bytes` handle and the allocation's header).
const INLINE_ENTRY_BYTES: usize = 64;

struct Stripe<K, V> {
    map: HashMap<K, V>,
    generation: u64,
    /// What the entries weigh together.
    weight: usize,
}

/// A striped, coherent cache; see the module notes. Each entry has a
/// weight (1 for records, its bytes for inline data) and each stripe
/// holds at most its share of the capacity.
pub(crate) struct Cache<K, V> {
    stripes: Vec<Mutex<Stripe<K, V>>>,
    /// Weight each stripe may hold.
    per_stripe: usize,
    weigh: fn(&V) -> usize,
    hasher: RandomState,
}

impl<K: Hash + Eq + Clone, V: Clone> Cache<K, V> {
    /// A cache of at most `capacity` entries.
    pub(crate) fn new(capacity: usize) -> Self {
        Self::weighted(STRIPES, capacity, |_| 1)
    }

    /// A cache of at most `capacity` in the weights `weigh` gives, in
    /// `stripes` stripes (each holds at least two entries of weight 1).
    fn weighted(stripes: usize, capacity: usize, weigh: fn(&V) -> usize) -> Self {
        Self {
            stripes: (0..stripes)
                .map(|_| {
                    Mutex::new(Stripe {
                        map: HashMap::new(),
                        generation: 0,
                        weight: 0,
                    })
                })
                .collect(),
            per_stripe: (capacity / stripes).max(2),
            weigh,
            hasher: RandomState::new(),
        }
    }

    fn stripe(&self, key: &K) -> &Mutex<Stripe<K, V>> {
        let i = self.hasher.hash_one(key) % self.stripes.len() as u64;
        &self.stripes[i as usize]
    }

    /// The cached value, or the generation to pass to [`Cache::fill`]
    /// after reading it from the engine.
    pub(crate) fn get(&self, key: &K) -> Result<V, u64> {
        self.get_if(key, |_| true)
    }

    /// [`Cache::get`], with a cached value that `usable` refuses treated
    /// as missing.
    pub(crate) fn get_if(&self, key: &K, usable: impl FnOnce(&V) -> bool) -> Result<V, u64> {
        let s = self.stripe(key).lock();
        match s.map.get(key) {
            Some(v) if usable(v) => Ok(v.clone()),
            _ => Err(s.generation),
        }
    }

    /// Caches `value`, read from the engine after [`Cache::get`] returned
    /// `generation`, unless a change was made since.
    pub(crate) fn fill(&self, key: K, value: V, generation: u64) {
        let mut s = self.stripe(&key).lock();
        if s.generation == generation {
            self.insert(&mut s, key, value);
        }
    }

    /// The generation to pass to [`Cache::store_committed`], read before
    /// the transaction that writes `key` commits.
    pub(crate) fn generation(&self, key: &K) -> u64 {
        self.stripe(key).lock().generation
    }

    /// After a commit that wrote `key`: caches `value` (what the engine
    /// now holds; `None` drops the entry) if nothing changed since
    /// [`Cache::generation`] returned `generation`, else drops the entry.
    pub(crate) fn store_committed(&self, key: K, value: Option<V>, generation: u64) {
        let mut s = self.stripe(&key).lock();
        let unchanged = s.generation == generation;
        s.generation = s.generation.wrapping_add(1);
        match value {
            Some(v) if unchanged => self.insert(&mut s, key, v),
            _ => self.remove(&mut s, &key),
        }
    }

    /// Forgets `key` after a change whose new value is unknown.
    pub(crate) fn invalidate(&self, key: &K) {
        let mut s = self.stripe(key).lock();
        s.generation = s.generation.wrapping_add(1);
        self.remove(&mut s, key);
    }

    /// Forgets everything (after bulk changes such as a restore).
    pub(crate) fn clear(&self) {
        for s in &self.stripes {
            let mut s = s.lock();
            s.generation = s.generation.wrapping_add(1);
            s.map.clear();
            s.weight = 0;
        }
    }

    fn remove(&self, s: &mut Stripe<K, V>, key: &K) {
        if let Some(old) = s.map.remove(key) {
            s.weight -= (self.weigh)(&old);
        }
    }

    /// Inserts, making room in a full stripe by dropping entries (the
    /// first the map yields, in effect random ones) until the new one
    /// fits; one heavier than a whole stripe is not kept. Dropping half a
    /// stripe at a time, as this cache first did, threw away thousands of
    /// entries whenever a few stripes of a nearly full cache overflowed:
    /// LOOKUP p99 at 200,000 files stayed at 0.64x ganesha.
    fn insert(&self, s: &mut Stripe<K, V>, key: K, value: V) {
        self.remove(s, &key);
        let weight = (self.weigh)(&value);
        if weight > self.per_stripe {
            return;
        }
        while s.weight + weight > self.per_stripe {
            let Some(victim) = s.map.keys().next().cloned() else {
                break;
            };
            self.remove(s, &victim);
        }
        s.weight += weight;
        s.map.insert(key, value);
    }
}

/// Which version of an inline file's record some cached bytes go with:
/// every change of the bytes commits a new size or new times with them.
///
/// The record and the bytes are cached apart, and a reader takes the
/// record first (from its cache or the engine), then the bytes. Without
/// this mark, a reader between a write's commit and its cache updates
/// could pair the new record with the old bytes, and show zeros where an
/// append went, under the new mtime, which NFS clients cache by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InlineStamp {
    size: u64,
    mtime: Timestamp,
    ctime: Timestamp,
}

impl InlineStamp {
    pub(crate) fn of(rec: &InodeRecord) -> Self {
        Self {
            size: rec.size,
            mtime: rec.mtime,
            ctime: rec.ctime,
        }
    }
}

/// The caches of one file system: inode records by number, directory
/// entries (`None`: the name is absent) by their `DENTRY` key, and inline
/// files' bytes by inode number (present ones only), each with the stamp
/// of the record it goes with.
pub(crate) struct MetaCaches {
    pub(crate) inodes: Cache<u64, InodeRecord>,
    pub(crate) dentries: Cache<Vec<u8>, Option<DentryRecord>>,
    pub(crate) inline: Cache<u64, (InlineStamp, Bytes)>,
}

/// An engine key that one of the caches holds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum CachedKey {
    /// `INODE ‖ ino`.
    Inode(u64),
    /// `DENTRY ‖ parent ‖ name`, whole.
    Dentry(Vec<u8>),
    /// `INLINE ‖ ino`.
    Inline(u64),
}

impl CachedKey {
    /// Which cache holds `key`, if any.
    pub(crate) fn of(key: &[u8]) -> Option<Self> {
        match key.first() {
            Some(&keys::INODE) if key.len() == 9 => keys::ino_of(key).map(Self::Inode),
            Some(&keys::DENTRY) => Some(Self::Dentry(key.to_vec())),
            Some(&keys::INLINE) if key.len() == 9 => keys::ino_of(key).map(Self::Inline),
            _ => None,
        }
    }
}

/// What a transaction wrote, with the generations seen before its commit.
pub(crate) struct Written(Vec<(CachedKey, Option<Vec<u8>>, u64)>);

impl MetaCaches {
    /// Caches of at most `entries` inode records and as many directory
    /// entries (`FsOptions::cache_entries`), and of at most
    /// `inline_bytes` of inline files' bytes (`FsOptions::inline_cache_bytes`).
    pub(crate) fn new(entries: usize, inline_bytes: usize) -> Self {
        Self {
            inodes: Cache::new(entries),
            dentries: Cache::new(entries),
            inline: Cache::weighted(INLINE_STRIPES, inline_bytes, |(_, b)| {
                b.len() + INLINE_ENTRY_BYTES
            }),
        }
    }

    /// Notes the generations of the keys in `written` (a transaction's
    /// writes, see `CowTxn::take_written`); call just before it commits.
    pub(crate) fn before_commit(&self, written: HashMap<CachedKey, Option<Vec<u8>>>) -> Written {
        Written(
            written
                .into_iter()
                .map(|(key, value)| {
                    let generation = match &key {
                        CachedKey::Inode(ino) => self.inodes.generation(ino),
                        CachedKey::Dentry(k) => self.dentries.generation(k),
                        CachedKey::Inline(ino) => self.inline.generation(ino),
                    };
                    (key, value, generation)
                })
                .collect(),
        )
    }

    /// The transaction committed: its writes are what the engine holds.
    pub(crate) fn committed(&self, w: Written) {
        // Inline bytes are cached with the stamp of the record the same
        // transaction wrote (it always writes one with them); without one
        // they are dropped.
        let mut stamps = HashMap::new();
        if w.0.iter().any(|(k, ..)| matches!(k, CachedKey::Inline(_))) {
            for (key, value, _) in &w.0 {
                if let (CachedKey::Inode(ino), Some(v)) = (key, value) {
                    if let Ok(rec) = InodeRecord::decode(v) {
                        stamps.insert(*ino, InlineStamp::of(&rec));
                    }
                }
            }
        }
        for (key, value, generation) in w.0 {
            match key {
                CachedKey::Inode(ino) => {
                    let rec = value.and_then(|v| InodeRecord::decode(&v).ok());
                    self.inodes.store_committed(ino, rec, generation);
                }
                CachedKey::Dentry(k) => {
                    let entry = match value {
                        None => Some(None),
                        Some(v) => DentryRecord::decode(&v).ok().map(Some),
                    };
                    self.dentries.store_committed(k, entry, generation);
                }
                CachedKey::Inline(ino) => {
                    let entry = value.and_then(|v| Some((*stamps.get(&ino)?, Bytes::from(v))));
                    self.inline.store_committed(ino, entry, generation);
                }
            }
        }
    }

    /// The commit failed, perhaps after the engine took the writes (a log
    /// sync that failed): drop every key it wrote.
    pub(crate) fn failed(&self, w: Written) {
        for (key, ..) in w.0 {
            match key {
                CachedKey::Inode(ino) => self.inodes.invalidate(&ino),
                CachedKey::Dentry(k) => self.dentries.invalidate(&k),
                CachedKey::Inline(ino) => self.inline.invalidate(&ino),
            }
        }
    }

    /// Forgets everything (after bulk changes such as a restore).
    pub(crate) fn clear(&self) {
        self.inodes.clear();
        self.dentries.clear();
        self.inline.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_read_that_raced_a_change_is_not_cached() {
        let c: Cache<u64, u32> = Cache::new(1024);
        let g = c.get(&7).expect_err("empty");
        // A change commits and invalidates while the reader holds the old value.
        c.invalidate(&7);
        c.fill(7, 1, g);
        assert!(c.get(&7).is_err(), "the stale value must not be cached");
        let g = c.get(&7).expect_err("still empty");
        c.fill(7, 2, g);
        assert_eq!(c.get(&7), Ok(2));
        c.invalidate(&7);
        assert!(c.get(&7).is_err());
    }

    #[test]
    fn a_weighted_cache_keeps_each_stripe_within_its_share() {
        // One stripe of 100 bytes: sizes are the weights.
        let c: Cache<u64, Vec<u8>> = Cache::weighted(1, 100, |v| v.len());
        let put = |k: u64, n: usize| c.store_committed(k, Some(vec![k as u8; n]), c.generation(&k));
        put(1, 40);
        put(2, 40);
        assert!(c.get(&1).is_ok() && c.get(&2).is_ok());
        // A third does not fit beside both: one of them makes room.
        put(3, 40);
        assert_eq!(c.get(&3).map(|v| v.len()), Ok(40));
        assert_eq!([1, 2].iter().filter(|k| c.get(k).is_ok()).count(), 1);
        // Replacing a value counts its new weight only.
        put(3, 60);
        put(3, 10);
        let left = [1, 2].iter().filter(|k| c.get(k).is_ok()).count();
        assert_eq!(left, 1, "10 + 40 fit; the replaced 60 no longer counts");
        // One heavier than the whole stripe is not kept (nor does it
        // push the others out).
        put(4, 101);
        assert!(c.get(&4).is_err());
        assert!(c.get(&3).is_ok());
        // After a clear, the full share is free again.
        c.clear();
        put(5, 100);
        assert_eq!(c.get(&5).map(|v| v.len()), Ok(100));
    }

    #[test]
    fn a_committed_write_is_cached_unless_another_change_raced_it() {
        let c: Cache<u64, u32> = Cache::new(1024);
        let g = c.generation(&7);
        c.store_committed(7, Some(1), g);
        assert_eq!(c.get(&7), Ok(1));
        // Two writers saw the same generation; the first to store wins the
        // race only to be dropped by the second: no older value survives.
        let g1 = c.generation(&7);
        let g2 = c.generation(&7);
        c.store_committed(7, Some(3), g2);
        c.store_committed(7, Some(2), g1);
        assert!(c.get(&7).is_err(), "a raced store drops the entry");
        // A reader that read before a store does not put its value back.
        let g = c.get(&7).expect_err("dropped");
        let w = c.generation(&7);
        c.store_committed(7, Some(4), w);
        c.fill(7, 3, g);
        assert_eq!(c.get(&7), Ok(4));
        // A delete drops the entry.
        let w = c.generation(&7);
        c.store_committed(7, None, w);
        assert!(c.get(&7).is_err());
    }

    #[test]
    fn inline_bytes_are_cached_with_the_record_committed_beside_them() {
        let caches = MetaCaches::new(1024, 1 << 20);
        let commit = |writes: Vec<(CachedKey, Option<Vec<u8>>)>| {
            let w = caches.before_commit(writes.into_iter().collect());
            caches.committed(w);
        };
        let rec = crate::record::test_file(7, 3);
        let encoded = rec.encode().expect("encode");
        commit(vec![
            (CachedKey::Inline(7), Some(b"abc".to_vec())),
            (CachedKey::Inode(7), Some(encoded)),
        ]);
        let stamp = InlineStamp::of(&rec);
        let got = caches.inline.get_if(&7, |(s, _)| *s == stamp);
        assert_eq!(got.map(|(_, b)| b), Ok(Bytes::from_static(b"abc")));
        // A reader holding another version of the record does not take them.
        let mut newer = rec.clone();
        newer.size = 4;
        let other = InlineStamp::of(&newer);
        assert!(caches.inline.get_if(&7, |(s, _)| *s == other).is_err());
        // Bytes committed without their record are not cached at all.
        commit(vec![(CachedKey::Inline(8), Some(b"xyz".to_vec()))]);
        assert!(caches.inline.get(&8).is_err());
    }

    #[test]
    fn a_full_stripe_drops_entries_instead_of_growing() {
        let c: Cache<u64, u64> = Cache::new(STRIPES * 16);
        for i in 0..10_000u64 {
            let g = c.get(&i).expect_err("new");
            c.fill(i, i, g);
        }
        for s in &c.stripes {
            assert!(s.lock().map.len() <= 16);
        }
        c.clear();
        assert!((0..10_000u64).all(|i| c.get(&i).is_err()));
    }
}
