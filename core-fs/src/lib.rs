//! The filesystem core: one namespace, one permission model and one data
//! path for every protocol.
//!
//! core-fs owns inodes, directory entries, permissions, timestamps, volumes
//! and the mapping of file bytes onto chunks. It stores metadata only
//! through [`nitrofs_metadata::MetaKv`] and data only through
//! [`nitrofs_chunk_store::ChunkStore`]; it speaks no protocol. Every
//! namespace operation is one metadata transaction, and every call carries
//! the caller's [`Credentials`], checked here and nowhere else.
//!
//! All calls block on I/O: async adapters run them on a blocking pool.

mod acl;
mod cache;
mod error;
mod ops;
mod perm;
mod quota;
mod record;
mod snapshot;
mod types;
mod unsynced;

pub use acl::{Acl, AclEdit, AclEntry, AclError, AclKind, AclSpec, AclTag};
pub use error::{FsError, FsResult};
pub use nitrofs_chunk_store::FileRange;
pub use nitrofs_common::{Credentials, InodeId, Timestamp, VolumeId};
/// Durable metadata changes whose log sync is left to the caller: see
/// [`nitrofs_metadata::deferring_sync`]; the caller makes them durable
/// with [`FileSystem::sync_metadata`] (or [`FileSystem::sync_metadata_to`]
/// the position `deferring_sync_to` names) before it acknowledges them.
pub use nitrofs_metadata::{deferring_sync, deferring_sync_to, sync_owed};
/// Reads that must not wait for the disk: see [`nitrofs_metadata::memory_only`].
/// Every read of a [`FileSystem`] call made inside it comes from memory
/// (the inode cache, RocksDB's memtable and block cache) or misses.
pub use nitrofs_metadata::{may_wait, memory_only, memory_read_missed};
pub use ops::acl::AclListing;
pub use ops::object::{DetachedKind, PublishIf, IMPLICIT_DIR_XATTR};
pub use ops::pinned::PinnedRead;
pub use ops::xattr::{XATTR_NAME_MAX, XATTR_VALUE_MAX};
pub use perm::{access_permitted, R, W, X};
pub use quota::{QuotaInfo, QuotaLimits, QuotaPhase, QuotaTarget, QuotaUsage};
pub use snapshot::{Snapshot, SNAPSHOT_DIR};
pub use types::*;

use nitrofs_chunk_store::ChunkStore;
use nitrofs_metadata::MetaKv;
use parking_lot::Mutex;
use std::sync::Arc;

/// Default chunk size: 4 MiB. Large enough that a checkpoint streams in
/// few, large, sequential chunk files and an NFS 1 MiB WRITE never spans
/// more than two chunks; small files are unaffected because chunk files
/// are sparse and only as long as their data.
pub const DEFAULT_CHUNK_SIZE: u32 = 4 * 1024 * 1024;

/// Name of the volume created on first start.
pub const DEFAULT_VOLUME: &str = "default";

/// Tunables of the core.
#[derive(Debug, Clone)]
pub struct FsOptions {
    /// Chunk size for files created from now on (a power of two, 64 KiB to 64 MiB).
    pub chunk_size: u32,
    /// Most entries each metadata cache (inode records, directory
    /// entries) keeps in memory: a few hundred bytes per inode record,
    /// about a hundred per directory entry.
    pub cache_entries: usize,
    /// Files created from now on keep their bytes with their metadata
    /// (one metadata transaction per write, no chunk file) while they
    /// are at most this long; 0 puts every file's bytes in chunks. At
    /// most [`INLINE_MAX_LIMIT`].
    pub inline_max: u32,
    /// Most bytes of inline files the read cache keeps in memory, so a
    /// READ of a file written or read lately is answered on the
    /// connection's task (as a chunk file's would be from the page
    /// cache) instead of waiting for the metadata engine.
    pub inline_cache_bytes: usize,
}

/// Default of [`FsOptions::inline_cache_bytes`], for when the memory the
/// process may use is not known.
pub const DEFAULT_INLINE_CACHE_BYTES: usize = 256 << 20;

/// The inline bytes cache for a machine with `memory` bytes: a sixteenth
/// of it, as the metadata caches take. The metadata engine's block cache
/// is not enough: it holds only blocks read since they were flushed or
/// compacted, so every file read once after its write missed it (20,000
/// files of 16 KiB written over NFS then read: 2,728-2,746 files/s
/// against 5,727-6,572 with the bytes in chunk files).
pub fn inline_cache_bytes_for_memory(memory: u64) -> usize {
    usize::try_from(memory / 16).unwrap_or(usize::MAX)
}

/// Default of [`FsOptions::inline_max`].
pub const DEFAULT_INLINE_MAX: u32 = 64 * 1024;

/// The largest [`FsOptions::inline_max`]: an inline file's bytes are
/// rewritten whole at each write.
pub const INLINE_MAX_LIMIT: u32 = 1024 * 1024;

/// Default of [`FsOptions::cache_entries`], for when the memory the
/// process may use is not known.
pub const DEFAULT_CACHE_ENTRIES: usize = 512 * 1024;

/// The fewest entries a metadata cache may be given.
pub const MIN_CACHE_ENTRIES: usize = 1024;

/// Memory one cached inode record and one cached directory entry take
/// together, with their maps' overhead: filling 1,000,000 files' worth
/// instead of 512 Ki raised the server's resident set by ~300 MB
/// (`bench/meta.py populate` of 1,000,000 files, then LOOKUP and GETATTR
/// of 6,000 random ones; 777 MB → 1,073 MB).
pub const CACHED_PAIR_BYTES: u64 = 640;

/// The number of entries each metadata cache may keep on a machine with
/// `memory` bytes: a sixteenth of the memory for both caches together
/// (never fewer than [`MIN_CACHE_ENTRIES`]), so a small container is not
/// pushed over its limit by the caches. When every volume's files
/// fit (the caches are shared by all of them), LOOKUP and GETATTR are
/// answered from memory whatever the count; with 1,000,000 files and
/// 512 Ki entries, LOOKUP of a random file took 207–223 µs at the median
/// and 625–699 µs at p99, with 2 Mi entries 151–162 µs and 326–390 µs
/// (`bench/meta.py`, 3 × 2,000 samples each; 10,000 files: 142 / 444 µs).
pub fn cache_entries_for_memory(memory: u64) -> usize {
    let fit = memory / 16 / CACHED_PAIR_BYTES;
    usize::try_from(fit)
        .unwrap_or(usize::MAX)
        .max(MIN_CACHE_ENTRIES)
}

impl Default for FsOptions {
    fn default() -> Self {
        Self {
            chunk_size: DEFAULT_CHUNK_SIZE,
            cache_entries: DEFAULT_CACHE_ENTRIES,
            inline_max: DEFAULT_INLINE_MAX,
            inline_cache_bytes: DEFAULT_INLINE_CACHE_BYTES,
        }
    }
}

/// The filesystem. Cheap to share behind an `Arc`; every method is safe to
/// call from many threads.
pub struct FileSystem {
    kv: Arc<dyn MetaKv>,
    chunks: Arc<dyn ChunkStore>,
    opts: FsOptions,
    /// Inode numbers reserved in metadata but not yet handed out: (next, end).
    inode_alloc: Mutex<(u64, u64)>,
    boot_count: u64,
    /// Striped locks that serialise this process's updates of one inode's
    /// size and times, so parallel WRITEs to a file do not spin on
    /// transaction conflicts.
    inode_locks: Vec<Mutex<()>>,
    /// Data writes hold it shared; taking or restoring a snapshot holds it
    /// exclusively, so no write straddles the instant a snapshot is taken.
    snap_barrier: parking_lot::RwLock<()>,
    /// Inode records and directory entries for reads outside
    /// transactions (see `cache`).
    caches: cache::MetaCaches,
    /// Snapshot epoch → (volume id, snapshot record), filled on demand.
    snap_cache: Mutex<std::collections::HashMap<u64, (u32, snapshot::state::SnapshotRecord)>>,
    /// One snapshot collection at a time.
    snap_collector: Mutex<()>,
    /// Write reservations and the quota walk lock.
    quota_gate: quota::Gate,
    /// Data inodes open for reading, whose chunk deletion waits for them.
    read_pins: ops::pinned::ReadPins,
    /// Where each file's latest unstable write is in the metadata log.
    unsynced: unsynced::UnsyncedWrites,
}

/// How long a call inside `memory_only` waits for a lock another thread
/// holds before it misses and runs again on the blocking pool. Changes of
/// one directory hold its stripe for tens of microseconds; giving up at
/// once sent every CREATE queued behind one that went to the pool there
/// too (a cascade of misses while its turn came).
const EXECUTOR_LOCK_WAIT: std::time::Duration = std::time::Duration::from_micros(200);

/// `lock`, waiting at most [`EXECUTOR_LOCK_WAIT`] inside `memory_only`
/// (then a miss: the lock may be held across a disk read or a log sync),
/// without limit elsewhere.
pub(crate) fn lock_on_executor<T>(lock: &Mutex<T>) -> FsResult<parking_lot::MutexGuard<'_, T>> {
    if let Some(held) = lock.try_lock_for(EXECUTOR_LOCK_WAIT) {
        return Ok(held);
    }
    nitrofs_metadata::may_wait()?;
    Ok(lock.lock())
}

/// `lock` shared, like [`lock_on_executor`]: a snapshot being taken holds
/// it exclusively across its log sync.
pub(crate) fn read_on_executor<T>(
    lock: &parking_lot::RwLock<T>,
) -> FsResult<parking_lot::RwLockReadGuard<'_, T>> {
    if let Some(held) = lock.try_read_for(EXECUTOR_LOCK_WAIT) {
        return Ok(held);
    }
    nitrofs_metadata::may_wait()?;
    Ok(lock.read())
}

/// Number of stripes in `inode_locks`.
const INODE_LOCK_STRIPES: usize = 256;

impl FileSystem {
    /// Opens the filesystem on its engines: initialises an empty store
    /// (format record, `default` volume), counts this start, and finishes
    /// chunk deletions a crash interrupted.
    pub fn open(
        kv: Arc<dyn MetaKv>,
        chunks: Arc<dyn ChunkStore>,
        opts: FsOptions,
    ) -> FsResult<Self> {
        ops::open::open(kv, chunks, opts)
    }

    /// How many times this store has been opened. Changes at every start,
    /// so NFS uses it as the write verifier.
    pub fn boot_count(&self) -> u64 {
        self.boot_count
    }

    fn inode_stripe(ino: InodeId) -> usize {
        (ino % INODE_LOCK_STRIPES as u64) as usize
    }

    fn lock_inode(&self, ino: InodeId) -> parking_lot::MutexGuard<'_, ()> {
        self.inode_locks[Self::inode_stripe(ino)].lock()
    }

    /// [`FileSystem::lock_inode`] inside `memory_only` too (see
    /// [`lock_on_executor`]).
    fn lock_inode_on_executor(&self, ino: InodeId) -> FsResult<parking_lot::MutexGuard<'_, ()>> {
        lock_on_executor(&self.inode_locks[Self::inode_stripe(ino)])
    }

    /// The largest file kept inline ([`FsOptions::inline_max`]).
    pub fn inline_max(&self) -> u32 {
        self.opts.inline_max
    }

    /// Makes every write so far durable (all chunks, all metadata). Call
    /// before a clean shutdown.
    pub fn sync_all(&self) -> FsResult<()> {
        self.chunks.sync_all()?;
        self.kv.sync()?;
        Ok(())
    }

    /// Makes every metadata change committed so far durable (one log sync,
    /// shared with concurrent callers).
    pub fn sync_metadata(&self) -> FsResult<()> {
        Ok(self.kv.sync()?)
    }

    /// How far the metadata log is: a position that grows with every
    /// commit ([`nitrofs_metadata::MetaKv::log_position`]).
    pub fn log_position(&self) -> u64 {
        self.kv.log_position()
    }

    /// Makes the metadata committed before the log reached `upto` durable
    /// (nothing to do if a sync already has).
    pub fn sync_metadata_to(&self, upto: u64) -> FsResult<()> {
        Ok(self.kv.sync_to(upto)?)
    }

    /// Runs `body` in one metadata transaction, retrying on conflicts.
    /// Every change goes through the snapshot copy-on-write layer, so no
    /// operation can change what a snapshot shows.
    pub(crate) fn transact<T>(
        &self,
        durable: bool,
        mut body: impl FnMut(&mut dyn nitrofs_metadata::Txn) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut txn = snapshot::CowTxn::new(self.kv.begin());
            let value = match body(&mut txn) {
                Ok(v) => v,
                Err(e) => return Err(txn.take_refusal().unwrap_or(e)),
            };
            let written = self.caches.before_commit(txn.take_written());
            match txn.commit(durable) {
                Ok(()) => {
                    self.caches.committed(written);
                    return Ok(value);
                }
                // A conflict committed nothing: the caches still hold.
                Err(e) if e.is_retryable() && attempt < nitrofs_metadata::MAX_TXN_ATTEMPTS => {
                    tracing::debug!(attempt, "metadata transaction conflict, retrying");
                    std::thread::yield_now();
                }
                Err(e) => {
                    self.caches.failed(written);
                    return Err(e.into());
                }
            }
        }
    }

    /// [`FileSystem::transact`] for a change of the entries of `dirs`,
    /// holding their stripe locks while the transaction runs and commits:
    /// concurrent changes of one directory queue here instead of failing
    /// each other's optimistic commit on its record (filling a directory
    /// with 32 CREATEs in flight retried 1.35 transactions per CREATE).
    /// A durable change syncs after the locks are released, so changes of
    /// one directory still share a log sync (group commit). `body` takes
    /// its timestamps itself: stamped under the locks, queued changes keep
    /// a directory's times in order.
    pub(crate) fn transact_in_dirs<T>(
        &self,
        dirs: &[InodeId],
        durable: bool,
        body: impl FnMut(&mut dyn nitrofs_metadata::Txn) -> FsResult<T>,
    ) -> FsResult<T> {
        let mut stripes: Vec<usize> = dirs.iter().map(|&d| Self::inode_stripe(d)).collect();
        // One order for every caller, so two renames cannot deadlock.
        stripes.sort_unstable();
        stripes.dedup();
        let value = {
            let _held = stripes
                .iter()
                .map(|&i| lock_on_executor(&self.inode_locks[i]))
                .collect::<FsResult<Vec<_>>>()?;
            self.transact(false, body)?
        };
        if durable {
            self.kv.sync()?;
        }
        Ok(value)
    }

    /// The chunk size new files get.
    pub fn chunk_size(&self) -> u32 {
        self.opts.chunk_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_caches_take_a_sixteenth_of_memory() {
        let gib = 1u64 << 30;
        assert_eq!(cache_entries_for_memory(0), MIN_CACHE_ENTRIES);
        let small = cache_entries_for_memory(512 << 20);
        assert_eq!(small as u64, (512 << 20) / 16 / CACHED_PAIR_BYTES);
        assert!(
            small as u64 * CACHED_PAIR_BYTES <= (512 << 20) / 16,
            "a 512 MiB container keeps its caches to 32 MiB: {small}"
        );
        let at_24 = cache_entries_for_memory(24 * gib);
        assert_eq!(at_24 as u64, 24 * gib / 16 / CACHED_PAIR_BYTES);
        assert!(
            at_24 >= 2_000_000,
            "a 24 GiB machine caches 2 M files: {at_24}"
        );
        assert!(cache_entries_for_memory(48 * gib) > at_24);
        assert!(cache_entries_for_memory(u64::MAX) > at_24);
    }
}
