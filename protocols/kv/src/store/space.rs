//! One space: puts, gets, deletes, scans over its index, with values in
//! memory or in the space's chunk engine.
//!
//! Locking: one mutex per space guards the index; it is never held across
//! disk I/O. A disk put reserves its bytes under the lock (evicting as
//! needed, so `bytes + reserved <= capacity` at every instant), writes and
//! fsyncs its record without the lock, then inserts under the lock and
//! returns the reservation. Chunks of evicted, replaced or deleted values
//! are removed after the lock is released; a concurrent `get` of such a
//! value reads nothing and reports a miss.

use super::format::{crc32c, RecordHeader, HEADER_LEN};
use super::s3fifo::{Data, Index, Removed};
use super::{
    check_key, Clock, PutMode, PutOutcome, SpaceConfig, SpaceStats, StoreError, MAX_VALUE,
};
use bytes::Bytes;
use nitrofs_chunk_store::{ChunkError, ChunkId, ChunkStore};
use parking_lot::{Condvar, Mutex};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a disk put waits for room held by other puts in flight before
/// it gives up with `NoSpace`.
const RESERVE_WAIT: Duration = Duration::from_secs(10);

/// Values per chunk-engine directory: value `vid` is chunk
/// `(vid >> BUCKET_BITS, vid)`.
pub(crate) const BUCKET_BITS: u32 = 10;

/// Where value `vid`'s record lives.
pub(crate) fn chunk_id(vid: u64) -> ChunkId {
    ChunkId {
        ino: vid >> BUCKET_BITS,
        index: vid,
    }
}

/// What the space mutex guards.
pub(crate) struct State {
    pub index: Index,
    /// The next value id (disk spaces); never reused.
    pub next_vid: u64,
    /// Chunk files per bucket that exist or are being written; a bucket
    /// below the current one whose count drops to zero is removed.
    pub buckets: HashMap<u64, u32>,
}

impl State {
    fn alloc_vid(&mut self) -> u64 {
        let vid = self.next_vid;
        self.next_vid += 1;
        *self.buckets.entry(vid >> BUCKET_BITS).or_default() += 1;
        vid
    }
}

#[derive(Default)]
struct Counters {
    bytes: AtomicU64,
    keys: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
    evictions: AtomicU64,
    expirations: AtomicU64,
    puts: AtomicU64,
    deletes: AtomicU64,
}

fn bump(c: &AtomicU64, n: usize) {
    c.fetch_add(n as u64, Ordering::Relaxed);
}

/// One KV namespace. All methods take `&self` and may be called from many
/// threads; disk-backed methods block on I/O.
pub struct Space {
    cfg: SpaceConfig,
    state: Mutex<State>,
    /// Signalled when a put in flight returns its reservation.
    room: Condvar,
    /// The value records (disk spaces only).
    chunks: Option<Arc<dyn ChunkStore>>,
    clock: Arc<dyn Clock>,
    stats: Counters,
    deleted: AtomicBool,
}

impl std::fmt::Debug for Space {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Space").field("cfg", &self.cfg).finish()
    }
}

impl Space {
    /// A space over `state`, values in `chunks` (disk) or in memory.
    pub(crate) fn from_parts(
        cfg: SpaceConfig,
        state: State,
        chunks: Option<Arc<dyn ChunkStore>>,
        clock: Arc<dyn Clock>,
    ) -> Space {
        let space = Space {
            cfg,
            state: Mutex::new(state),
            room: Condvar::new(),
            chunks,
            clock,
            stats: Counters::default(),
            deleted: AtomicBool::new(false),
        };
        space.publish(&space.state.lock());
        space
    }

    /// An empty memory space.
    pub(crate) fn new_memory(cfg: SpaceConfig, clock: Arc<dyn Clock>) -> Space {
        let state = State {
            index: Index::new(cfg.capacity),
            next_vid: 1,
            buckets: HashMap::new(),
        };
        Self::from_parts(cfg, state, None, clock)
    }

    /// The space's definition.
    pub fn config(&self) -> &SpaceConfig {
        &self.cfg
    }

    /// Stores `value` under `key`. For a disk space the value is durable
    /// before `Ok`. Making room may evict other keys, and, for an
    /// overwrite, the bytes of the old value are counted until the new one
    /// replaces it, so an overwrite can evict others first.
    pub fn put(&self, key: &[u8], value: Bytes, mode: PutMode) -> Result<PutOutcome, StoreError> {
        check_key(key)?;
        let len = value.len() as u64;
        if len > MAX_VALUE {
            return Err(StoreError::TooLarge {
                size: len,
                max: MAX_VALUE,
            });
        }
        let need = key.len() as u64 + len;
        if need > self.cfg.capacity {
            return Err(self.no_space(need));
        }
        if self.deleted.load(Ordering::Acquire) {
            return Err(StoreError::NoSuchSpace(self.cfg.name.clone()));
        }
        let now = self.clock.now_ms();
        let expires_at = self
            .cfg
            .ttl_ms()
            .map_or(0, |t| now.saturating_add(t).max(1));
        match &self.chunks {
            None => self.put_memory(key, value, mode, need, expires_at),
            Some(chunks) => self.put_disk(chunks.as_ref(), key, value, mode, need, expires_at),
        }
    }

    fn put_memory(
        &self,
        key: &[u8],
        value: Bytes,
        mode: PutMode,
        need: u64,
        expires_at: u64,
    ) -> Result<PutOutcome, StoreError> {
        let now = self.clock.now_ms();
        let mut evicted = Vec::new();
        {
            let mut st = self.state.lock();
            if mode == PutMode::IfAbsent && st.index.live(key, now).is_some() {
                return Ok(PutOutcome::Exists);
            }
            let fits = st.index.reserve(need, &mut evicted);
            if fits {
                st.index.release(need);
                let len = value.len() as u64;
                st.index.insert(
                    Bytes::copy_from_slice(key),
                    len,
                    expires_at,
                    Data::Mem(value),
                    false,
                );
            }
            self.publish(&st);
            if !fits {
                drop(st);
                self.evicted(evicted);
                return Err(self.no_space(need));
            }
        }
        // Old and evicted values are freed here, outside the lock.
        self.evicted(evicted);
        bump(&self.stats.puts, 1);
        Ok(PutOutcome::Stored)
    }

    fn put_disk(
        &self,
        chunks: &dyn ChunkStore,
        key: &[u8],
        value: Bytes,
        mode: PutMode,
        need: u64,
        expires_at: u64,
    ) -> Result<PutOutcome, StoreError> {
        let now = self.clock.now_ms();
        let mut evicted = Vec::new();
        let vid = {
            let mut st = self.state.lock();
            let deadline = Instant::now() + RESERVE_WAIT;
            let vid = loop {
                if mode == PutMode::IfAbsent && st.index.live(key, now).is_some() {
                    break Err(PutOutcome::Exists);
                }
                if st.index.reserve(need, &mut evicted) {
                    break Ok(Some(st.alloc_vid()));
                }
                // Nothing left to evict. Room promised to puts in flight
                // comes back when they finish (as a value or a release):
                // wait for it rather than fail a value that fits.
                if st.index.reserved() == 0 || need > self.cfg.capacity {
                    break Ok(None);
                }
                if self.room.wait_until(&mut st, deadline).timed_out() {
                    break Ok(None);
                }
            };
            self.publish(&st);
            vid
        };
        let vid = match vid {
            Ok(vid) => vid,
            Err(outcome) => {
                self.evicted(evicted);
                return Ok(outcome);
            }
        };
        self.evicted(evicted);
        let Some(vid) = vid else {
            return Err(self.no_space(need));
        };

        let written = write_record(chunks, vid, key, &value, expires_at);

        let mut st = self.state.lock();
        st.index.release(need);
        self.room.notify_all();
        let crc = match written {
            Ok(crc) => crc,
            Err(e) => {
                drop(st);
                self.discard_vids(&[vid]);
                return Err(e);
            }
        };
        // Another put of the same key may have won while we wrote.
        if mode == PutMode::IfAbsent && st.index.live(key, self.clock.now_ms()).is_some() {
            drop(st);
            self.discard_vids(&[vid]);
            return Ok(PutOutcome::Exists);
        }
        let old = st.index.insert(
            Bytes::copy_from_slice(key),
            value.len() as u64,
            expires_at,
            Data::Disk { vid, crc },
            false,
        );
        self.publish(&st);
        drop(st);
        if let Some(old) = old {
            // Best effort: if it fails, recovery keeps the newer record.
            self.discard(vec![old]);
        }
        bump(&self.stats.puts, 1);
        Ok(PutOutcome::Stored)
    }

    /// The live value of `key`, counting a hit or a miss. A disk value that
    /// fails its checksum is logged, dropped and reported as a miss.
    pub fn get(&self, key: &[u8]) -> Result<Option<Bytes>, StoreError> {
        check_key(key)?;
        let now = self.clock.now_ms();
        let found = self
            .state
            .lock()
            .index
            .touch(key, now)
            .map(|e| (e.gen, e.len, e.data.clone()));
        let Some((gen, len, data)) = found else {
            bump(&self.stats.misses, 1);
            return Ok(None);
        };
        let (vid, crc) = match data {
            Data::Mem(v) => {
                bump(&self.stats.hits, 1);
                return Ok(Some(v));
            }
            Data::Disk { vid, crc } => (vid, crc),
        };
        let Some(chunks) = &self.chunks else {
            return Err(StoreError::Corrupt(format!(
                "space {}: disk entry in a memory space",
                self.cfg.name
            )));
        };
        let offset = (HEADER_LEN + key.len()) as u64;
        let value = chunks.read(chunk_id(vid), offset, len as usize)?;
        if value.len() as u64 == len && crc32c(&value) == crc {
            bump(&self.stats.hits, 1);
            return Ok(Some(value));
        }
        // Either the value was evicted, replaced or deleted meanwhile (its
        // entry is gone: a plain miss), or its record is damaged.
        let damaged = {
            let mut st = self.state.lock();
            let r = st.index.remove_if_gen(key, gen);
            self.publish(&st);
            r
        };
        if let Some(r) = damaged {
            tracing::warn!(
                space = %self.cfg.name,
                vid,
                read = value.len(),
                expected = len,
                "kv value failed its length or checksum check; dropped"
            );
            self.discard(vec![r]);
        }
        bump(&self.stats.misses, 1);
        Ok(None)
    }

    /// The length of `key`'s live value, without reading it or counting a
    /// hit (to answer "buffer too small").
    pub fn value_len(&self, key: &[u8]) -> Option<u64> {
        let now = self.clock.now_ms();
        self.state.lock().index.live(key, now).map(|e| e.len)
    }

    /// Whether `key` holds a live value. This is a lookup (prefix reuse
    /// probes ask it before fetching), so it counts a hit or a miss and a
    /// hit marks the key as reused for eviction.
    pub fn exists(&self, key: &[u8]) -> bool {
        let now = self.clock.now_ms();
        let found = self.state.lock().index.touch(key, now).is_some();
        bump(
            if found {
                &self.stats.hits
            } else {
                &self.stats.misses
            },
            1,
        );
        found
    }

    /// Removes `key`; true if a live value was removed. For a disk space
    /// the removal is durable before `Ok`.
    pub fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let now = self.clock.now_ms();
        let removed = {
            let mut st = self.state.lock();
            let r = st.index.remove(key);
            self.publish(&st);
            r
        };
        let Some(r) = removed else {
            return Ok(false);
        };
        let live = !r.entry.expired(now);
        bump(
            if live {
                &self.stats.deletes
            } else {
                &self.stats.expirations
            },
            1,
        );
        if let Data::Disk { vid, .. } = r.entry.data {
            self.drop_chunks(&[vid])?;
        }
        Ok(live)
    }

    /// Up to `limit` live keys that start with `prefix` and sort after
    /// `start_after` (exclusive), in byte order, with their value sizes.
    pub fn scan(
        &self,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: usize,
    ) -> Vec<(Bytes, u64)> {
        let now = self.clock.now_ms();
        self.state
            .lock()
            .index
            .scan(prefix, start_after, limit, now)
    }

    /// How many of `keys`, from the first, exist (live) without a gap: the
    /// reusable prefix of a token sequence. Counts a hit per key found and
    /// one miss for the first key missing, like [`Space::exists`].
    pub fn prefix_match(&self, keys: &[&[u8]]) -> usize {
        let now = self.clock.now_ms();
        let mut st = self.state.lock();
        let n = keys
            .iter()
            .take_while(|k| st.index.touch(k, now).is_some())
            .count();
        drop(st);
        bump(&self.stats.hits, n);
        if n < keys.len() {
            bump(&self.stats.misses, 1);
        }
        n
    }

    /// The space's counters (lock-free reads).
    pub fn stats(&self) -> SpaceStats {
        let c = &self.stats;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        SpaceStats {
            capacity: self.cfg.capacity,
            bytes: get(&c.bytes),
            keys: get(&c.keys),
            hits: get(&c.hits),
            misses: get(&c.misses),
            evictions: get(&c.evictions),
            expirations: get(&c.expirations),
            puts: get(&c.puts),
            deletes: get(&c.deletes),
        }
    }

    /// Drops every entry whose TTL has passed (the periodic sweeper calls
    /// this); returns how many. Costs O(expired): entries are queued in
    /// expiry order. Until it runs, expired entries are invisible to every
    /// lookup but still hold their bytes.
    pub fn expire_now(&self) -> usize {
        let now = self.clock.now_ms();
        let mut out = Vec::new();
        {
            let mut st = self.state.lock();
            st.index.expire(now, &mut out);
            self.publish(&st);
        }
        let n = out.len();
        bump(&self.stats.expirations, n);
        self.discard(out);
        n
    }

    /// Refuses further puts: the space was deleted.
    pub(crate) fn mark_deleted(&self) {
        self.deleted.store(true, Ordering::Release);
    }

    /// Counts entries evicted to make room and removes their chunks.
    pub(crate) fn evicted(&self, evicted: Vec<Removed>) {
        if !evicted.is_empty() {
            bump(&self.stats.evictions, evicted.len());
            self.discard(evicted);
        }
    }

    /// Removes the chunks of entries that left the index, logging failures
    /// (a leftover record is harmless: recovery drops or supersedes it).
    fn discard(&self, removed: Vec<Removed>) {
        let vids: Vec<u64> = removed
            .iter()
            .filter_map(|r| match r.entry.data {
                Data::Disk { vid, .. } => Some(vid),
                Data::Mem(_) => None,
            })
            .collect();
        drop(removed);
        self.discard_vids(&vids);
    }

    pub(crate) fn discard_vids(&self, vids: &[u64]) {
        if let Err(e) = self.drop_chunks(vids) {
            tracing::warn!(space = %self.cfg.name, error = %e, "kv: removing value records failed");
        }
    }

    /// Removes value records durably, then any bucket directory they left
    /// empty for good.
    fn drop_chunks(&self, vids: &[u64]) -> Result<(), StoreError> {
        let Some(chunks) = &self.chunks else {
            return Ok(());
        };
        if vids.is_empty() {
            return Ok(());
        }
        let mut first_err: Option<ChunkError> = None;
        let mut gone = Vec::with_capacity(vids.len());
        let mut inos = BTreeSet::new();
        for &vid in vids {
            match chunks.remove(chunk_id(vid)) {
                Ok(()) => {
                    gone.push(vid);
                    inos.insert(vid >> BUCKET_BITS);
                }
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        for ino in inos {
            if let Err(e) = chunks.sync(ino) {
                first_err.get_or_insert(e);
            }
        }
        let empty: Vec<u64> = {
            let mut st = self.state.lock();
            let current = st.next_vid >> BUCKET_BITS;
            let mut empty = Vec::new();
            for vid in gone {
                let bucket = vid >> BUCKET_BITS;
                if let Some(n) = st.buckets.get_mut(&bucket) {
                    *n = n.saturating_sub(1);
                    if *n == 0 && bucket < current {
                        st.buckets.remove(&bucket);
                        empty.push(bucket);
                    }
                }
            }
            empty
        };
        for bucket in empty {
            if let Err(e) = chunks.remove_from(bucket, 0) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            None => Ok(()),
            Some(e) => Err(e.into()),
        }
    }

    /// Mirrors the index's size into the lock-free counters.
    fn publish(&self, st: &State) {
        self.stats.bytes.store(st.index.bytes(), Ordering::Relaxed);
        self.stats
            .keys
            .store(st.index.len() as u64, Ordering::Relaxed);
    }

    fn no_space(&self, need: u64) -> StoreError {
        StoreError::NoSpace {
            size: need,
            capacity: self.cfg.capacity,
        }
    }

    /// The index's accounting (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.state.lock().index.check_invariants();
    }

    /// The chunk engine of a disk space (tests).
    #[cfg(test)]
    pub(crate) fn chunk_store(&self) -> Option<Arc<dyn ChunkStore>> {
        self.chunks.clone()
    }
}

/// Writes and fsyncs one value record: header and key, then the value
/// (not copied). Returns the value's CRC-32C.
fn write_record(
    chunks: &dyn ChunkStore,
    vid: u64,
    key: &[u8],
    value: &[u8],
    expires_at: u64,
) -> Result<u32, StoreError> {
    let crc = crc32c(value);
    let head = RecordHeader {
        key_len: key.len() as u32,
        value_len: value.len() as u64,
        expires_at_ms: expires_at,
        value_crc: crc,
    }
    .encode_with_key(key);
    let id = chunk_id(vid);
    chunks.write(id, 0, &head)?;
    chunks.write(id, head.len() as u64, value)?;
    chunks.sync(id.ino)?;
    Ok(crc)
}
