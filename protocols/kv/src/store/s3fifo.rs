//! A space's in-memory index: the ordered key map, the byte accounting
//! with reservations, S3-FIFO eviction and the TTL queue. No I/O here.
//!
//! # Why S3-FIFO and not LRU
//!
//! S3-FIFO (Yang et al., "FIFO queues are all you need for cache
//! eviction", SOSP'23) keeps a small FIFO (~10% of the bytes) where new
//! keys land, a main FIFO for keys that were reused, and a ghost FIFO of
//! hashes of keys recently dropped from the small queue.
//! - **Scan resistance.** A KVCache sees bursts of one-hit wonders (a long
//!   prompt's blocks that are never reused). They enter the small queue and
//!   leave it from its tail without ever touching the main queue, so the
//!   hot working set (shared system prompts) survives. An LRU puts every
//!   new key at the head and flushes the hot set after a scan as long as
//!   the cache.
//! - **Cheap hits.** A hit bumps a 2-bit counter in the entry; FIFO queues
//!   are never reordered on access, so there is no list surgery under the
//!   lock on the read path, which is the hot path of KVCache lookups.
//!
//! Queues hold `(key, generation)` items and are cleaned lazily: a delete
//! or overwrite only removes the map entry (O(log n)); the stale queue item
//! is skipped when it reaches the tail, and queues are compacted when
//! stale items outnumber live ones.

use bytes::Bytes;
use std::collections::hash_map::DefaultHasher;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::ops::Bound;

/// Highest value of the 2-bit access counter.
const MAX_FREQ: u8 = 3;

/// Which FIFO an entry is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Queue {
    Small,
    Main,
}

/// Where an entry's value is.
#[derive(Debug, Clone)]
pub(crate) enum Data {
    /// The value itself (memory spaces).
    Mem(Bytes),
    /// A record in the space's chunk engine, with the value's CRC-32C.
    Disk { vid: u64, crc: u32 },
}

/// One key's entry.
#[derive(Debug)]
pub(crate) struct Entry {
    /// Unique per insertion: tells a queue item of this entry from a stale
    /// one of an earlier value of the same key.
    pub gen: u64,
    /// Value length.
    pub len: u64,
    /// Expiry in Unix millis, 0 = never.
    pub expires_at: u64,
    pub data: Data,
    freq: u8,
    queue: Queue,
}

impl Entry {
    /// True once the TTL has passed.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.expires_at != 0 && now_ms >= self.expires_at
    }
}

/// An entry that left the index, for the caller to count and clean up.
#[derive(Debug)]
pub(crate) struct Removed {
    pub key: Bytes,
    pub entry: Entry,
}

#[derive(Debug)]
struct Item {
    key: Bytes,
    gen: u64,
}

/// The index of one space.
#[derive(Debug)]
pub(crate) struct Index {
    capacity: u64,
    /// Bytes of the small queue at which eviction takes from it.
    small_target: u64,
    map: BTreeMap<Bytes, Entry>,
    /// Bytes (key + value) of the entries in `map`.
    bytes: u64,
    /// Bytes promised to puts in flight; `bytes + reserved <= capacity`.
    reserved: u64,
    small: VecDeque<Item>,
    small_bytes: u64,
    small_len: usize,
    main: VecDeque<Item>,
    main_len: usize,
    ghost: VecDeque<u64>,
    ghost_count: HashMap<u64, u32>,
    /// `(expires_at, key, gen)` in insertion order, which is expiry order
    /// since the TTL is the same for the whole space.
    ttl: VecDeque<(u64, Bytes, u64)>,
    next_gen: u64,
}

fn charge(key: &[u8], len: u64) -> u64 {
    key.len() as u64 + len
}

fn key_hash(key: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

impl Index {
    pub fn new(capacity: u64) -> Self {
        Self {
            capacity,
            small_target: (capacity / 10).max(1),
            map: BTreeMap::new(),
            bytes: 0,
            reserved: 0,
            small: VecDeque::new(),
            small_bytes: 0,
            small_len: 0,
            main: VecDeque::new(),
            main_len: 0,
            ghost: VecDeque::new(),
            ghost_count: HashMap::new(),
            ttl: VecDeque::new(),
            next_gen: 1,
        }
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The entry of `key`, expired or not.
    #[cfg(test)]
    pub fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.map.get(key)
    }

    /// The entry of `key` if it is live.
    pub fn live(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.expired(now_ms))
    }

    /// A live lookup that counts as an access for eviction.
    pub fn touch(&mut self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        let e = self.map.get_mut(key).filter(|e| !e.expired(now_ms))?;
        e.freq = (e.freq + 1).min(MAX_FREQ);
        Some(e)
    }

    /// Reserves `need` bytes for a put, evicting into `evicted` until they
    /// fit. False, evicting nothing, if they cannot fit before puts in
    /// flight return their reservations (evicting every entry would not
    /// make that room, only empty the space).
    pub fn reserve(&mut self, need: u64, evicted: &mut Vec<Removed>) -> bool {
        if self.reserved.saturating_add(need) > self.capacity {
            return false;
        }
        while self.bytes + self.reserved + need > self.capacity {
            match self.evict_one() {
                Some(r) => evicted.push(r),
                None => return false,
            }
        }
        self.reserved += need;
        true
    }

    /// Bytes promised to puts in flight.
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Returns a reservation (the put finished or failed).
    pub fn release(&mut self, need: u64) {
        self.reserved = self.reserved.saturating_sub(need);
    }

    /// Inserts a value (the caller released its reservation first),
    /// returning the entry it replaced. A key remembered by the ghost
    /// queue goes straight to the main queue; `restored` entries (rebuilt
    /// at open) too, with no access credit.
    pub fn insert(
        &mut self,
        key: Bytes,
        len: u64,
        expires_at: u64,
        data: Data,
        restored: bool,
    ) -> Option<Removed> {
        let old = self.detach(&key);
        let gen = self.next_gen;
        self.next_gen += 1;
        let size = charge(&key, len);
        let queue = if restored || self.ghost_count.contains_key(&key_hash(&key)) {
            self.main.push_back(Item {
                key: key.clone(),
                gen,
            });
            self.main_len += 1;
            Queue::Main
        } else {
            self.small.push_back(Item {
                key: key.clone(),
                gen,
            });
            self.small_len += 1;
            self.small_bytes += size;
            Queue::Small
        };
        if expires_at != 0 {
            self.ttl.push_back((expires_at, key.clone(), gen));
        }
        self.bytes += size;
        self.map.insert(
            key,
            Entry {
                gen,
                len,
                expires_at,
                data,
                freq: 0,
                queue,
            },
        );
        self.compact();
        old
    }

    /// Removes `key`'s entry (live or expired).
    pub fn remove(&mut self, key: &[u8]) -> Option<Removed> {
        self.detach(key)
    }

    /// Removes `key`'s entry if it is still the insertion `gen`.
    pub fn remove_if_gen(&mut self, key: &[u8], gen: u64) -> Option<Removed> {
        if self.map.get(key).is_some_and(|e| e.gen == gen) {
            self.detach(key)
        } else {
            None
        }
    }

    /// Moves every entry whose TTL has passed into `out`, in O(expired)
    /// (plus stale TTL items of overwritten or deleted keys).
    pub fn expire(&mut self, now_ms: u64, out: &mut Vec<Removed>) {
        while let Some((at, _, _)) = self.ttl.front() {
            if *at > now_ms {
                break;
            }
            let Some((_, key, gen)) = self.ttl.pop_front() else {
                break;
            };
            if let Some(r) = self.remove_if_gen(&key, gen) {
                out.push(r);
            }
        }
    }

    /// Evicts until the bytes fit the capacity (after a restart with a
    /// lowered capacity).
    pub fn shrink_to_capacity(&mut self, evicted: &mut Vec<Removed>) {
        while self.bytes + self.reserved > self.capacity {
            match self.evict_one() {
                Some(r) => evicted.push(r),
                None => return,
            }
        }
    }

    /// Live keys starting with `prefix`, after `start_after`, in byte
    /// order, with their value lengths.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
        now_ms: u64,
    ) -> Vec<(Bytes, u64)> {
        let lower = match start_after {
            Some(s) if s >= prefix => Bound::Excluded(s),
            _ => Bound::Included(prefix),
        };
        self.map
            .range::<[u8], _>((lower, Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .filter(|(_, e)| !e.expired(now_ms))
            .take(limit)
            .map(|(k, e)| (k.clone(), e.len))
            .collect()
    }

    /// One S3-FIFO eviction: the dropped entry, or `None` if the index is
    /// empty.
    fn evict_one(&mut self) -> Option<Removed> {
        loop {
            if self.map.is_empty() {
                return None;
            }
            let from_small =
                self.small_len > 0 && (self.small_bytes >= self.small_target || self.main_len == 0);
            let queue = if from_small {
                Queue::Small
            } else {
                Queue::Main
            };
            let item = match queue {
                Queue::Small => self.small.pop_front(),
                Queue::Main => self.main.pop_front(),
            };
            // Live entries are always queued, so an empty queue here means
            // the counts are off; refuse to loop.
            let item = item?;
            let Some(e) = self.map.get_mut(&item.key) else {
                continue;
            };
            if e.gen != item.gen || e.queue != queue {
                continue;
            }
            match queue {
                Queue::Small if e.freq >= 1 => {
                    // Reused while in probation: promote.
                    e.freq = 0;
                    e.queue = Queue::Main;
                    let size = charge(&item.key, e.len);
                    self.small_bytes -= size;
                    self.small_len -= 1;
                    self.main_len += 1;
                    self.main.push_back(item);
                }
                Queue::Main if e.freq > 0 => {
                    e.freq -= 1;
                    self.main.push_back(item);
                }
                Queue::Small => {
                    let r = self.detach(&item.key)?;
                    self.remember_ghost(key_hash(&r.key));
                    return Some(r);
                }
                Queue::Main => return self.detach(&item.key),
            }
        }
    }

    fn remember_ghost(&mut self, hash: u64) {
        self.ghost.push_back(hash);
        *self.ghost_count.entry(hash).or_default() += 1;
        while self.ghost.len() > self.main_len {
            let Some(old) = self.ghost.pop_front() else {
                break;
            };
            if let Some(c) = self.ghost_count.get_mut(&old) {
                *c -= 1;
                if *c == 0 {
                    self.ghost_count.remove(&old);
                }
            }
        }
    }

    /// Takes `key` out of the map and the accounting; its queue items
    /// become stale.
    fn detach(&mut self, key: &[u8]) -> Option<Removed> {
        let (key, entry) = self.map.remove_entry(key)?;
        let size = charge(&key, entry.len);
        self.bytes -= size;
        match entry.queue {
            Queue::Small => {
                self.small_len -= 1;
                self.small_bytes -= size;
            }
            Queue::Main => self.main_len -= 1,
        }
        Some(Removed { key, entry })
    }

    /// Drops stale queue items once they outnumber live ones, keeping the
    /// queues O(live entries) under delete/overwrite-heavy loads.
    fn compact(&mut self) {
        let map = &self.map;
        let current = |key: &Bytes, gen: u64, queue: Option<Queue>| {
            map.get(key)
                .is_some_and(|e| e.gen == gen && queue.is_none_or(|q| e.queue == q))
        };
        if self.small.len() > 2 * self.small_len + 64 {
            self.small
                .retain(|i| current(&i.key, i.gen, Some(Queue::Small)));
        }
        if self.main.len() > 2 * self.main_len + 64 {
            self.main
                .retain(|i| current(&i.key, i.gen, Some(Queue::Main)));
        }
        if self.ttl.len() > 2 * map.len() + 64 {
            self.ttl.retain(|(_, k, g)| current(k, *g, None));
        }
    }

    /// Checks the accounting against the map (tests).
    #[cfg(test)]
    pub fn check_invariants(&self) {
        let bytes: u64 = self.map.iter().map(|(k, e)| charge(k, e.len)).sum();
        assert_eq!(bytes, self.bytes, "bytes");
        assert!(self.bytes + self.reserved <= self.capacity || self.reserved == 0);
        let small: Vec<_> = self
            .map
            .iter()
            .filter(|(_, e)| e.queue == Queue::Small)
            .collect();
        assert_eq!(small.len(), self.small_len, "small_len");
        let sb: u64 = small.iter().map(|(k, e)| charge(k, e.len)).sum();
        assert_eq!(sb, self.small_bytes, "small_bytes");
        assert_eq!(self.map.len() - self.small_len, self.main_len, "main_len");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(ix: &mut Index, key: &str, len: u64) -> Vec<Removed> {
        let mut ev = Vec::new();
        let need = key.len() as u64 + len;
        assert!(ix.reserve(need, &mut ev), "reserve {key}");
        ix.release(need);
        ix.insert(
            Bytes::copy_from_slice(key.as_bytes()),
            len,
            0,
            Data::Mem(Bytes::new()),
            false,
        );
        ix.check_invariants();
        ev
    }

    #[test]
    fn unused_small_entries_leave_first_and_reused_ones_are_promoted() {
        // 10 entries of 10 bytes fill it; small target is 10 bytes.
        let mut ix = Index::new(100);
        for i in 0..10 {
            assert!(put(&mut ix, &format!("k{i}"), 8).is_empty());
        }
        for k in [b"k0", b"k1", b"k2"] {
            assert!(ix.touch(k, 0).is_some());
        }
        let ev = put(&mut ix, "new", 7);
        // k0..k2 were reused: promoted to main; k3 was not: evicted.
        assert_eq!(ev.len(), 1);
        assert_eq!(&ev[0].key[..], b"k3");
        assert_eq!(ix.get(b"k0").map(|e| e.queue), Some(Queue::Main));
        assert_eq!(ix.get(b"new").map(|e| e.queue), Some(Queue::Small));
        // k3 is remembered by the ghost queue: it comes back into main.
        let ev = put(&mut ix, "k3", 8);
        assert_eq!(ev.len(), 1);
        assert_eq!(&ev[0].key[..], b"k4");
        assert_eq!(ix.get(b"k3").map(|e| e.queue), Some(Queue::Main));
    }

    #[test]
    fn main_entries_get_a_second_chance_per_access() {
        let mut ix = Index::new(30);
        for k in ["a", "b", "c"] {
            let mut ev = Vec::new();
            assert!(ix.reserve(10, &mut ev));
            ix.release(10);
            ix.insert(Bytes::from(k), 9, 0, Data::Mem(Bytes::new()), true);
        }
        ix.touch(b"a", 0);
        let ev = put(&mut ix, "d", 9);
        // "a" had freq 1: reinserted; "b" is the next tail and goes.
        assert_eq!(ev.len(), 1);
        assert_eq!(&ev[0].key[..], b"b");
        assert!(ix.get(b"a").is_some());
    }

    #[test]
    fn stale_queue_items_are_skipped_and_compacted() {
        let mut ix = Index::new(1 << 20);
        for _ in 0..1000 {
            put(&mut ix, "same", 10);
        }
        assert_eq!(ix.len(), 1);
        assert!(ix.small.len() <= 2 * ix.small_len + 65);
        ix.remove(b"same");
        ix.check_invariants();
        let mut ev = Vec::new();
        assert!(ix.evict_one().is_none());
        ix.shrink_to_capacity(&mut ev);
        assert!(ev.is_empty());
    }

    #[test]
    fn a_reservation_that_cannot_fit_beside_those_in_flight_evicts_nothing() {
        let mut ix = Index::new(100);
        for k in ["a", "b", "c"] {
            put(&mut ix, k, 19);
        }
        let mut ev = Vec::new();
        assert!(ix.reserve(60, &mut ev));
        assert_eq!(ev.len(), 1, "one entry goes to make room for 60");
        ev.clear();
        // 60 in flight + 50 > 100: no amount of eviction helps.
        assert!(!ix.reserve(50, &mut ev));
        assert!(ev.is_empty(), "nothing evicted in vain");
        assert_eq!(ix.len(), 2);
        ix.release(60);
        assert!(ix.reserve(50, &mut ev));
        ix.check_invariants();
    }

    #[test]
    fn reservations_count_against_capacity() {
        let mut ix = Index::new(100);
        let mut ev = Vec::new();
        assert!(ix.reserve(60, &mut ev));
        // Nothing is evictable and 60 bytes are promised.
        assert!(!ix.reserve(50, &mut ev));
        ix.release(60);
        assert!(ix.reserve(100, &mut ev));
    }
}
