//! One space: puts, gets, deletes, scans over its index, with values in
//! memory or in the space's chunk engine.
//!
//! Locking: one mutex per space guards the index; it is never held across
//! disk I/O. A disk put reserves its bytes under the lock (evicting as
//! needed, so `bytes + reserved <= capacity` at every instant), writes and
//! fsyncs its record without the lock, then inserts under the lock and
//! returns the reservation. A concurrent `get` of a value being evicted,
//! replaced or deleted reads nothing and reports a miss.
//!
//! Keys (disk spaces): a put or a delete holds its key from start to end,
//! and so does the removal of a record that left the index (evicted,
//! expired, replaced, damaged). Puts and deletes of one key therefore run
//! one at a time, in the order they get the key, and a put's value id is
//! taken while it holds the key: value-id order is insert order, which is
//! what recovery relies on ("the newest record of a key wins").
//!
//! No resurrection: a put or delete returns `Ok` only once every older
//! record of its key is durably removed. The older records are the
//! replaced or deleted entry's, those whose removal an earlier operation
//! failed (kept as "zombies" and retried by the next put or delete of the
//! key) and those being removed after an eviction (the key is held until
//! that is done). We remove the old record before acknowledging rather than
//! write a durable tombstone: it costs a delete one unlink and one
//! directory fsync instead of a record write, two fsyncs and a later
//! clean-up, and it keeps the "newest valid record wins" rule of recovery
//! simple (a newer record that fails its checksum can only be a put that
//! was never acknowledged, so the older record it hides is the right
//! value). So after a crash a deleted key, or an overwritten value, can
//! come back only if the delete or put that removed it did not return `Ok`.
//!
//! Waiting: a put whose key is held, or whose room is held by puts in
//! flight, waits on the blocking thread that runs it; at most
//! [`MAX_WAITERS`] puts of a space wait at once and a put waits at most
//! [`RESERVE_WAIT`]; beyond either it fails with a retryable
//! [`StoreError::NoSpace`] (`busy`).

mod records;

use records::write_record;

use super::access::SpaceAccess;
use super::format::{crc32c, HEADER_LEN};
use super::s3fifo::{Data, Index, Removed};
use super::{
    check_key, Clock, Durability, PutMode, PutOutcome, SpaceConfig, SpaceStats, StoreError,
    MAX_VALUE,
};
use bytes::Bytes;
use nitrofs_chunk_store::{ChunkId, ChunkStore};
use nitrofs_common::Credentials;
use parking_lot::{Condvar, Mutex, MutexGuard, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a disk put waits for its key and for room held by other puts
/// in flight before it gives up with a busy `NoSpace`.
pub(crate) const RESERVE_WAIT: Duration = Duration::from_secs(10);

/// How many puts of one space may wait (for their key or for room) at
/// once. Each waits on a thread of the blocking pool; beyond this a put
/// fails at once with a busy `NoSpace` rather than tie up more of the pool.
pub(crate) const MAX_WAITERS: usize = 32;

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

/// Who holds a key and who waits for it.
#[derive(Debug, Default)]
pub(crate) struct KeyState {
    /// The put or delete running on the key, plus record removals of it.
    holds: u32,
    /// Puts and deletes waiting for `holds` to drop to zero.
    waiters: u32,
}

/// What the space mutex guards.
pub(crate) struct State {
    pub index: Index,
    /// The next value id (disk spaces); never reused. `u64::MAX` is never
    /// handed out: it means the ids are exhausted.
    pub next_vid: u64,
    /// Chunk files per bucket that exist or are being written; a bucket
    /// below the current one whose count drops to zero is removed.
    pub buckets: HashMap<u64, u32>,
    /// Keys held (disk spaces); an entry lives while it has holders or
    /// waiters.
    keys: HashMap<Bytes, KeyState>,
    /// Records still on disk whose removal failed, by key: removed by the
    /// next put or delete of the key before it returns.
    zombies: HashMap<Bytes, Vec<u64>>,
    /// Puts waiting for a key or for room.
    waiters: usize,
}

impl State {
    /// The state of a space holding `index`, with value ids from
    /// `next_vid` and `buckets` chunk files per bucket.
    pub fn new(index: Index, next_vid: u64, buckets: HashMap<u64, u32>) -> Self {
        Self {
            index,
            next_vid,
            buckets,
            keys: HashMap::new(),
            zombies: HashMap::new(),
            waiters: 0,
        }
    }

    fn alloc_vid(&mut self) -> Result<u64, StoreError> {
        let vid = self.next_vid;
        let Some(next) = vid.checked_add(1) else {
            return Err(StoreError::Corrupt(
                "the space has used up its value ids".into(),
            ));
        };
        self.next_vid = next;
        *self.buckets.entry(vid >> BUCKET_BITS).or_default() += 1;
        Ok(vid)
    }

    /// Adds a hold on `key` for a removal of one of its records.
    fn hold(&mut self, key: &Bytes) {
        self.keys.entry(key.clone()).or_default().holds += 1;
    }

    /// Holds the keys of the disk entries in `removed` (they left the
    /// index; their records are about to be removed).
    fn hold_removed(&mut self, removed: &[Removed]) {
        for r in removed {
            if matches!(r.entry.data, Data::Disk { .. }) {
                self.hold(&r.key);
            }
        }
    }

    /// Drops `key`'s entry if nobody holds or awaits it.
    fn tidy(&mut self, key: &[u8]) {
        if self
            .keys
            .get(key)
            .is_some_and(|k| k.holds == 0 && k.waiters == 0)
        {
            self.keys.remove(key);
        }
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

/// The records of the disk entries in `removed`, with their keys.
fn records_of(removed: &[Removed]) -> Vec<(Bytes, u64)> {
    removed
        .iter()
        .filter_map(|r| match r.entry.data {
            Data::Disk { vid, .. } => Some((r.key.clone(), vid)),
            Data::Mem(_) => None,
        })
        .collect()
}

/// One KV namespace. All methods take `&self` and may be called from many
/// threads; disk-backed methods block on I/O.
pub struct Space {
    /// The definition the space was opened with. Its permission fields
    /// may be out of date: `access` holds the current ones.
    cfg: SpaceConfig,
    /// Who may use the space; changed by `Store::set_acl`.
    access: RwLock<SpaceAccess>,
    state: Mutex<State>,
    /// Signalled when a put in flight returns its reservation.
    room: Condvar,
    /// Signalled when a key's holds drop to zero.
    key_free: Condvar,
    /// The value records (disk spaces only).
    chunks: Option<Arc<dyn ChunkStore>>,
    clock: Arc<dyn Clock>,
    stats: Counters,
    /// Set (under the state lock) when the space is deleted.
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
            access: RwLock::new(SpaceAccess::of(&cfg)),
            cfg,
            state: Mutex::new(state),
            room: Condvar::new(),
            key_free: Condvar::new(),
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
        let state = State::new(Index::new(cfg.capacity), 1, HashMap::new());
        Self::from_parts(cfg, state, None, clock)
    }

    /// The space's definition, with its current permissions.
    pub fn config(&self) -> SpaceConfig {
        let mut cfg = self.cfg.clone();
        self.access.read().apply_to(&mut cfg);
        cfg
    }

    /// The space's name.
    pub fn name(&self) -> &str {
        &self.cfg.name
    }

    /// Where the space keeps its values.
    pub fn durability(&self) -> Durability {
        self.cfg.durability
    }

    /// Seconds a value lives after its put; `None` = until evicted.
    pub fn ttl_secs(&self) -> Option<u64> {
        self.cfg.ttl_secs
    }

    /// Whether `who` holds every bit of `want` (`nitrofs_core_fs::R` for
    /// reads, `W` for writes) on the space: core-fs's check of its owner,
    /// mode and ACL.
    pub fn permits(&self, who: &Credentials, want: u32) -> bool {
        self.access.read().permits(who, want)
    }

    /// Makes `cfg`'s owner, mode and ACL the space's permissions.
    pub(crate) fn set_access(&self, cfg: &SpaceConfig) {
        *self.access.write() = SpaceAccess::of(cfg);
    }

    /// Stores `value` under `key`. For a disk space the value is durable,
    /// and every older record of the key removed, before `Ok`. Making room
    /// may evict other keys, and, for an overwrite, the bytes of the old
    /// value are counted until the new one replaces it, so an overwrite can
    /// evict others first.
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
            return Err(self.no_space(need, false));
        }
        if self.deleted.load(Ordering::Acquire) {
            return Err(self.gone());
        }
        let now = self.clock.now_ms();
        let expires_at = self
            .cfg
            .ttl_ms()
            .map_or(0, |t| now.saturating_add(t).max(1));
        match &self.chunks {
            None => self.put_memory(key, value, mode, need, expires_at),
            Some(chunks) => {
                let deadline = Instant::now() + RESERVE_WAIT;
                self.acquire_key(&mut self.state.lock(), key, Some((deadline, need)))?;
                let r = self.put_disk(
                    chunks.as_ref(),
                    key,
                    value,
                    mode,
                    need,
                    expires_at,
                    deadline,
                );
                self.release_key(&mut self.state.lock(), key);
                r
            }
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
                return Err(self.no_space(need, false));
            }
        }
        // Old and evicted values are freed here, outside the lock.
        self.evicted(evicted);
        bump(&self.stats.puts, 1);
        Ok(PutOutcome::Stored)
    }

    /// Waits until nobody holds `key`, then holds it. A put passes its
    /// deadline and size: it gives up (busy) when the deadline passes or
    /// [`MAX_WAITERS`] puts already wait; a delete waits for the holder.
    fn acquire_key(
        &self,
        st: &mut MutexGuard<'_, State>,
        key: &[u8],
        put: Option<(Instant, u64)>,
    ) -> Result<(), StoreError> {
        loop {
            if self.deleted.load(Ordering::Acquire) {
                st.tidy(key);
                return Err(self.gone());
            }
            let ks = st.keys.entry(Bytes::copy_from_slice(key)).or_default();
            if ks.holds == 0 {
                ks.holds = 1;
                return Ok(());
            }
            let Some((deadline, need)) = put else {
                ks.waiters += 1;
                self.key_free.wait(st);
                if let Some(ks) = st.keys.get_mut(key) {
                    ks.waiters = ks.waiters.saturating_sub(1);
                }
                continue;
            };
            if st.waiters >= MAX_WAITERS {
                st.tidy(key);
                return Err(self.no_space(need, true));
            }
            if let Some(ks) = st.keys.get_mut(key) {
                ks.waiters += 1;
            }
            st.waiters += 1;
            let timed_out = self.key_free.wait_until(st, deadline).timed_out();
            st.waiters -= 1;
            if let Some(ks) = st.keys.get_mut(key) {
                ks.waiters = ks.waiters.saturating_sub(1);
            }
            if timed_out {
                st.tidy(key);
                return Err(self.no_space(need, true));
            }
        }
    }

    /// Drops one hold on `key`, waking its waiters when it is free.
    fn release_key(&self, st: &mut State, key: &[u8]) {
        let Some(ks) = st.keys.get_mut(key) else {
            return;
        };
        ks.holds = ks.holds.saturating_sub(1);
        if ks.holds == 0 {
            st.tidy(key);
            // Waiters for this key and `mark_deleted` share the condvar.
            self.key_free.notify_all();
        }
    }

    /// A disk put, holding `key`.
    #[allow(clippy::too_many_arguments)]
    fn put_disk(
        &self,
        chunks: &dyn ChunkStore,
        key: &[u8],
        value: Bytes,
        mode: PutMode,
        need: u64,
        expires_at: u64,
        deadline: Instant,
    ) -> Result<PutOutcome, StoreError> {
        let now = self.clock.now_ms();
        let mut evicted = Vec::new();
        let vid = {
            let mut st = self.state.lock();
            let vid = self.reserve_disk(&mut st, key, mode, need, now, deadline, &mut evicted);
            self.publish(&st);
            vid
        };
        self.evicted(evicted);
        let Some(vid) = vid? else {
            return Ok(PutOutcome::Exists);
        };

        let written = write_record(chunks, vid, key, &value, expires_at);

        let mut st = self.state.lock();
        st.index.release(need);
        self.room.notify_all();
        let crc = match written {
            Ok(crc) if !self.deleted.load(Ordering::Acquire) => crc,
            failed => {
                let e = match failed {
                    Ok(_) => self.gone(),
                    Err(e) => e,
                };
                drop(st);
                // If it stays behind, it is a zombie of the key: the next
                // put or delete of the key removes it.
                if let Err(re) = self.remove_stale(key, vec![vid]) {
                    tracing::warn!(space = %self.cfg.name, vid, error = %re, "kv: removing the record of a failed put failed");
                }
                return Err(e);
            }
        };
        let old = st.index.insert(
            Bytes::copy_from_slice(key),
            value.len() as u64,
            expires_at,
            Data::Disk { vid, crc },
            false,
        );
        let mut stale = st.zombies.remove(key).unwrap_or_default();
        if let Some(Data::Disk { vid, .. }) = old.as_ref().map(|r| &r.entry.data) {
            stale.push(*vid);
        }
        self.publish(&st);
        drop(st);
        drop(old);
        self.remove_stale(key, stale)?;
        bump(&self.stats.puts, 1);
        Ok(PutOutcome::Stored)
    }

    /// Reserves room for a disk put holding `key` and takes its value id;
    /// `None` if `IfAbsent` found a live value. Waits for room held by
    /// puts in flight, within the deadline and [`MAX_WAITERS`].
    #[allow(clippy::too_many_arguments)]
    fn reserve_disk(
        &self,
        st: &mut MutexGuard<'_, State>,
        key: &[u8],
        mode: PutMode,
        need: u64,
        now: u64,
        deadline: Instant,
        evicted: &mut Vec<Removed>,
    ) -> Result<Option<u64>, StoreError> {
        loop {
            if self.deleted.load(Ordering::Acquire) {
                return Err(self.gone());
            }
            if mode == PutMode::IfAbsent && st.index.live(key, now).is_some() {
                return Ok(None);
            }
            let before = evicted.len();
            let fits = st.index.reserve(need, evicted);
            st.hold_removed(&evicted[before..]);
            if fits {
                return match st.alloc_vid() {
                    Ok(vid) => Ok(Some(vid)),
                    Err(e) => {
                        st.index.release(need);
                        self.room.notify_all();
                        Err(e)
                    }
                };
            }
            // Room promised to puts in flight comes back when they finish
            // (as a value or a release): wait for it rather than fail a
            // value that fits.
            if st.index.reserved() == 0 {
                return Err(self.no_space(need, false));
            }
            if st.waiters >= MAX_WAITERS {
                return Err(self.no_space(need, true));
            }
            st.waiters += 1;
            let timed_out = self.room.wait_until(st, deadline).timed_out();
            st.waiters -= 1;
            if timed_out {
                return Err(self.no_space(need, true));
            }
        }
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
            st.hold_removed(r.as_slice());
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
    /// the removal, and that of every older record of the key, is durable
    /// before `Ok`.
    pub fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        check_key(key)?;
        let now = self.clock.now_ms();
        let disk = self.chunks.is_some();
        let (removed, stale) = {
            let mut st = self.state.lock();
            if disk {
                self.acquire_key(&mut st, key, None)?;
            }
            let r = st.index.remove(key);
            let stale = st.zombies.remove(key).unwrap_or_default();
            self.publish(&st);
            (r, stale)
        };
        let live = removed.as_ref().is_some_and(|r| !r.entry.expired(now));
        if removed.is_some() {
            bump(
                if live {
                    &self.stats.deletes
                } else {
                    &self.stats.expirations
                },
                1,
            );
        }
        if !disk {
            return Ok(live);
        }
        let mut vids = stale;
        if let Some(Data::Disk { vid, .. }) = removed.as_ref().map(|r| &r.entry.data) {
            vids.push(*vid);
        }
        drop(removed);
        let done = self.remove_stale(key, vids);
        self.release_key(&mut self.state.lock(), key);
        done.map(|()| live)
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
            st.hold_removed(&out);
            self.publish(&st);
        }
        let n = out.len();
        bump(&self.stats.expirations, n);
        self.discard(out);
        n
    }

    /// Marks the space deleted and waits until no put, delete or record
    /// removal is in flight: waiting puts and deletes give up, puts still
    /// writing remove their record and fail, and later ones are refused.
    /// Then nothing writes under the space's directory any more.
    pub(crate) fn mark_deleted(&self) {
        let mut st = self.state.lock();
        self.deleted.store(true, Ordering::Release);
        self.room.notify_all();
        self.key_free.notify_all();
        while st.keys.values().any(|k| k.holds > 0) {
            self.key_free.wait(&mut st);
        }
    }

    /// Mirrors the index's size into the lock-free counters.
    fn publish(&self, st: &State) {
        self.stats.bytes.store(st.index.bytes(), Ordering::Relaxed);
        self.stats
            .keys
            .store(st.index.len() as u64, Ordering::Relaxed);
    }

    fn no_space(&self, need: u64, busy: bool) -> StoreError {
        StoreError::NoSpace {
            size: need,
            capacity: self.cfg.capacity,
            busy,
        }
    }

    fn gone(&self) -> StoreError {
        StoreError::NoSuchSpace(self.cfg.name.clone())
    }

    /// The index's accounting (tests).
    #[cfg(test)]
    pub(crate) fn check_invariants(&self) {
        self.state.lock().index.check_invariants();
    }

    /// Whether the space was marked deleted (tests).
    #[cfg(test)]
    pub(crate) fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::Acquire)
    }

    /// Puts waiting for a key or for room (tests).
    #[cfg(test)]
    pub(crate) fn waiters(&self) -> usize {
        self.state.lock().waiters
    }

    /// The value id of `key`'s entry and the next value id (tests).
    #[cfg(test)]
    pub(crate) fn vids(&self, key: &[u8]) -> (Option<u64>, u64) {
        let st = self.state.lock();
        let vid = st.index.get(key).and_then(|e| match e.data {
            Data::Disk { vid, .. } => Some(vid),
            Data::Mem(_) => None,
        });
        (vid, st.next_vid)
    }

    /// The chunk engine of a disk space (tests).
    #[cfg(test)]
    pub(crate) fn chunk_store(&self) -> Option<Arc<dyn ChunkStore>> {
        self.chunks.clone()
    }
}
