//! RocksDB backend: an `OptimisticTransactionDB` whose commits detect
//! conflicts on every key read with `get_for_update`.

use crate::{KvError, KvPair, KvResult, MetaKv, Txn};
use nitrofs_common::group_sync::GroupSync;
use rocksdb::{
    BlockBasedOptions, Cache, OptimisticTransactionDB, OptimisticTransactionOptions, Options,
    ReadOptions, ReadTier, Transaction, WriteOptions,
};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// Block cache of the metadata engine: index, filter and data blocks of
/// the namespace (a million inodes with their entries and attributes fit
/// in a few hundred MiB).
const BLOCK_CACHE_BYTES: usize = 256 << 20;

/// Values this long or longer are kept in blob files, apart from the
/// table files of the namespace. They are mostly inline small files'
/// bytes: left in the table files, each compaction copied them again and
/// competed with the calls for the CPU (20,000 files of 16 KiB written
/// over NFS, then stat'ed: 8,300-10,175 files/s against 10,416-13,307
/// with blob files; see BENCHMARKS.md). Large extended attributes, the
/// records of objects of hundreds of parts and snapshot copies of such
/// values land there too: a memory-only read of one always misses (there
/// is no blob cache), and waits for the disk where the caller may.
pub const BLOB_MIN_BYTES: u64 = 4096;

/// Metadata stored in a RocksDB directory.
pub struct RocksKv {
    db: OptimisticTransactionDB,
    /// Group commit: transactions committed so far (each is in the WAL,
    /// not yet necessarily on disk) ...
    committed: AtomicU64,
    /// ... and how many of them a WAL fsync has made durable.
    synced: GroupSync,
    /// A WAL fsync failed: the kernel may have dropped the pages it did
    /// not write, and a later fsync can succeed without them, so no sync
    /// is trusted again until the database is reopened (and recovers
    /// from what its log really holds).
    sync_failed: AtomicBool,
}

fn engine(e: rocksdb::Error) -> KvError {
    KvError::Engine(e.into_string())
}

/// Read options that answer from the memtables and the block cache only
/// (a read that needs a file fails with `Incomplete`).
fn memory_read_options(mut ro: ReadOptions) -> ReadOptions {
    ro.set_read_tier(ReadTier::BlockCache);
    ro
}

/// How a read's engine errors become [`KvError`]s.
type ErrorMap = fn(rocksdb::Error) -> KvError;

/// `ro`, limited to memory inside [`crate::memory_only`], with the error
/// mapping that goes with it.
fn read_options_for(ro: ReadOptions) -> (ReadOptions, ErrorMap) {
    if crate::reads_from_memory_only() {
        (memory_read_options(ro), memory_error)
    } else {
        (ro, engine)
    }
}

/// An error of a memory-only read: a miss, or a real failure.
fn memory_error(e: rocksdb::Error) -> KvError {
    if e.kind() == rocksdb::ErrorKind::Incomplete {
        crate::note_memory_miss()
    } else {
        engine(e)
    }
}

fn commit_error(e: rocksdb::Error) -> KvError {
    // Optimistic conflict detection reports Busy (write conflict) or
    // TryAgain (history too short to decide); both mean "run again".
    match e.kind() {
        rocksdb::ErrorKind::Busy | rocksdb::ErrorKind::TryAgain => KvError::Conflict,
        _ => engine(e),
    }
}

impl RocksKv {
    /// Opens (creating if missing) the database in `dir`.
    pub fn open(dir: &Path) -> KvResult<Self> {
        let mut opts = Options::default();
        opts.create_if_missing(true);
        opts.set_max_background_jobs(2);
        opts.set_bytes_per_sync(1 << 20);
        opts.increase_parallelism(2);
        // Metadata reads are point lookups of small records: keep index,
        // filter and data blocks in a cache large enough for the hot
        // namespace, and let whole-key bloom filters skip files (and the
        // memtable) that cannot hold a key.
        let mut table = BlockBasedOptions::default();
        let cache = Cache::new_lru_cache(BLOCK_CACHE_BYTES);
        table.set_block_cache(&cache);
        table.set_bloom_filter(10.0, false);
        table.set_cache_index_and_filter_blocks(true);
        table.set_pin_l0_filter_and_index_blocks_in_cache(true);
        opts.set_block_based_table_factory(&table);
        opts.set_memtable_whole_key_filtering(true);
        // Values of at least BLOB_MIN_BYTES (small files' bytes) go to blob
        // files when the memtable is flushed; compactions then rewrite only
        // their references, not the bytes, and GC moves the live ones out
        // of the oldest blob files.
        opts.set_enable_blob_files(true);
        opts.set_min_blob_size(BLOB_MIN_BYTES);
        opts.set_enable_blob_gc(true);
        // Blob files whose bytes are mostly dead (removed or rewritten small
        // files) are compacted soon, not only when a compaction happens by.
        opts.set_blob_gc_force_threshold(0.5);
        opts.set_memtable_prefix_bloom_ratio(0.05);
        // Reuse old log files (overwriting them) instead of appending to
        // new ones: an fdatasync then flushes the data alone, with no
        // inode update for the file's growth (16 KiB + fdatasync on the
        // test machine's ext4: 146-202 us against 234-315 us appended).
        // With point-in-time recovery since RocksDB 9 (a recycled file's
        // old records are told apart by their log number).
        opts.set_recycle_log_file_num(4);
        let db = OptimisticTransactionDB::open(&opts, dir).map_err(engine)?;
        Ok(Self {
            db,
            committed: AtomicU64::new(0),
            synced: GroupSync::new(0),
            sync_failed: AtomicBool::new(false),
        })
    }

    /// Writes the memtables out to table files (tests and tools: the
    /// engine does this by itself as they fill).
    pub fn flush_memtables(&self) -> KvResult<()> {
        self.db.flush().map_err(engine)
    }

    /// Makes the first `upto` commits durable with one WAL fsync shared
    /// by every committer waiting meanwhile (group commit): concurrent
    /// durable transactions cost one fsync per group, not one each.
    fn sync_upto(&self, upto: u64) -> KvResult<()> {
        self.synced.sync_to(upto, || {
            if self.sync_failed.load(Ordering::SeqCst) {
                return Err(KvError::Engine(
                    "an earlier metadata log sync failed; restart to recover".into(),
                ));
            }
            // Everything committed by now is in the WAL: this fsync covers it.
            let covered = self.committed.load(Ordering::SeqCst);
            if let Err(e) = self.db.flush_wal(true) {
                self.sync_failed.store(true, Ordering::SeqCst);
                return Err(engine(e));
            }
            Ok(covered)
        })
    }
}

/// Up to `limit` pairs from `it`; `error` maps the iterator's failure.
fn collect(mut it: impl RawIter, limit: usize, error: ErrorMap) -> KvResult<Vec<KvPair>> {
    let mut out = Vec::new();
    while out.len() < limit {
        match it.pair() {
            Some(kv) => out.push(kv),
            None => break,
        }
        it.advance();
    }
    it.status().map_err(error)?;
    Ok(out)
}

/// The two raw-iterator types of rocksdb differ only in their database
/// parameter; this lets `collect` serve both.
trait RawIter {
    fn pair(&self) -> Option<KvPair>;
    fn advance(&mut self);
    fn status(&self) -> Result<(), rocksdb::Error>;
}

impl<D: rocksdb::DBAccess> RawIter for rocksdb::DBRawIteratorWithThreadMode<'_, D> {
    fn pair(&self) -> Option<KvPair> {
        if !self.valid() {
            return None;
        }
        Some((self.key()?.to_vec(), self.value()?.to_vec()))
    }
    fn advance(&mut self) {
        self.next();
    }
    fn status(&self) -> Result<(), rocksdb::Error> {
        rocksdb::DBRawIteratorWithThreadMode::status(self)
    }
}

fn bounded(end: &[u8]) -> ReadOptions {
    let mut ro = ReadOptions::default();
    ro.set_iterate_upper_bound(end.to_vec());
    ro
}

impl MetaKv for RocksKv {
    fn begin(&self) -> Box<dyn Txn + '_> {
        let mut wo = WriteOptions::default();
        // Inside `memory_only` a commit must not sleep in a write stall
        // (memtables or level-0 files over their limits): it fails with
        // `Incomplete`, a miss, and the work runs where it may wait.
        wo.set_no_slowdown(crate::reads_from_memory_only());
        let mut to = OptimisticTransactionOptions::default();
        // Conflicts are judged against the state at begin(), not at first read.
        to.set_snapshot(true);
        Box::new(RocksTxn {
            txn: self.db.transaction_opt(&wo, &to),
            kv: self,
        })
    }

    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if !crate::reads_from_memory_only() {
            return self.db.get(key).map_err(engine);
        }
        let ro = memory_read_options(ReadOptions::default());
        self.db.get_opt(key, &ro).map_err(memory_error)
    }

    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        let (ro, error) = read_options_for(bounded(end));
        let mut it = self.db.raw_iterator_opt(ro);
        it.seek(start);
        collect(it, limit, error)
    }

    fn log_position(&self) -> u64 {
        self.committed.load(Ordering::SeqCst)
    }

    fn sync_to(&self, upto: u64) -> KvResult<()> {
        if self.synced.reached() >= upto {
            return Ok(());
        }
        if crate::defer_sync(upto) {
            return Ok(());
        }
        self.sync_upto(upto)
    }
}

struct RocksTxn<'db> {
    txn: Transaction<'db, OptimisticTransactionDB>,
    kv: &'db RocksKv,
}

impl Txn for RocksTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        if !crate::reads_from_memory_only() {
            return self.txn.get_for_update(key, true).map_err(engine);
        }
        let ro = memory_read_options(ReadOptions::default());
        self.txn
            .get_for_update_opt(key, true, &ro)
            .map_err(memory_error)
    }

    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.txn.put(key, value).map_err(commit_error)
    }

    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.txn.delete(key).map_err(commit_error)
    }

    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        let (ro, error) = read_options_for(bounded(end));
        let mut it = self.txn.raw_iterator_opt(ro);
        it.seek(start);
        collect(it, limit, error)
    }

    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        let this = *self;
        crate::commit_allowed()?;
        this.txn.commit().map_err(|e| {
            if e.kind() == rocksdb::ErrorKind::Incomplete && crate::reads_from_memory_only() {
                crate::note_memory_miss()
            } else {
                commit_error(e)
            }
        })?;
        crate::note_committed();
        let seq = this.kv.committed.fetch_add(1, Ordering::SeqCst) + 1;
        if durable && !crate::defer_sync(seq) {
            // The transaction was written to the WAL without fsync; one
            // synced flush, shared with concurrent committers, makes it
            // (and everything before it) durable.
            this.kv.sync_upto(seq)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{memory_only, memory_read_missed, MetaKv};

    #[test]
    fn memory_only_reads_answer_from_memory_and_report_a_read_that_needs_the_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let kv = RocksKv::open(dir.path()).expect("open");
            crate::transact(&kv, true, |t| t.put(b"k1", b"v1")).expect("put");
            // In the memtable: answered from memory.
            let got = memory_only(|| kv.get(b"k1")).expect("in memory");
            assert_eq!(got.expect("get").as_deref(), Some(&b"v1"[..]));
            kv.flush_memtables().expect("flush");
        }
        // Reopened: the value is in a table file, its block not cached yet.
        let kv = RocksKv::open(dir.path()).expect("reopen");
        let missed = memory_only(|| {
            let r = kv.get(b"k1");
            assert!(matches!(r, Err(KvError::NotInMemory)), "got {r:?}");
            assert!(memory_read_missed());
        });
        assert!(missed.is_none());
        assert!(!memory_read_missed(), "the scope ended");
        let scanned = memory_only(|| kv.scan(b"k", b"l", 10));
        assert!(scanned.is_none(), "a scan needing the disk misses too");
        // A normal read brings the block into the cache; then memory serves it.
        assert_eq!(kv.get(b"k1").expect("get").as_deref(), Some(&b"v1"[..]));
        let got = memory_only(|| kv.get(b"k1")).expect("cached now");
        assert_eq!(got.expect("get").as_deref(), Some(&b"v1"[..]));
        let pairs = memory_only(|| kv.scan(b"k", b"l", 10))
            .expect("cached now")
            .expect("scan");
        assert_eq!(pairs, vec![(b"k1".to_vec(), b"v1".to_vec())]);
    }

    #[test]
    fn large_values_in_blob_files_read_scan_and_conflict_like_small_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let big = |b: u8| vec![b; BLOB_MIN_BYTES as usize * 4];
        {
            let kv = RocksKv::open(dir.path()).expect("open");
            crate::transact(&kv, true, |t| {
                t.put(b"b1", &big(1))?;
                t.put(b"b2", b"small")
            })
            .expect("put");
            kv.flush_memtables().expect("flush");
        }
        let names = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect::<Vec<_>>();
        assert!(
            names.iter().any(|n| n.ends_with(".blob")),
            "the large value went to a blob file: {names:?}"
        );
        let kv = RocksKv::open(dir.path()).expect("reopen");
        // From memory only: the blob is not in memory, so the read misses
        // (never an answer without the value).
        let missed = memory_only(|| kv.get(b"b1"));
        assert!(missed.is_none(), "a blob read needs the disk");
        assert_eq!(kv.get(b"b1").expect("get"), Some(big(1)));
        let pairs = kv.scan(b"b", b"c", 10).expect("scan");
        assert_eq!(
            pairs,
            vec![
                (b"b1".to_vec(), big(1)),
                (b"b2".to_vec(), b"small".to_vec())
            ]
        );
        // A transaction that read the blob conflicts with a change of it.
        let mut t = kv.begin();
        assert_eq!(t.get(b"b1").expect("get"), Some(big(1)));
        crate::transact(&kv, true, |u| u.put(b"b1", &big(2))).expect("overwrite");
        t.put(b"b3", b"x").expect("put");
        assert!(matches!(t.commit(true), Err(KvError::Conflict)));
        assert_eq!(kv.get(b"b1").expect("get"), Some(big(2)));
        assert_eq!(kv.get(b"b3").expect("get"), None);
    }

    /// A database whose only record, `k1`, is in a table file whose block
    /// is not cached yet.
    fn reopened_with_k1_on_disk(dir: &Path) -> RocksKv {
        {
            let kv = RocksKv::open(dir).expect("open");
            crate::transact(&kv, true, |t| t.put(b"k1", b"v1")).expect("put");
            kv.flush_memtables().expect("flush");
        }
        RocksKv::open(dir).expect("reopen")
    }

    #[test]
    fn inside_memory_only_a_transaction_misses_too_and_then_commits_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = reopened_with_k1_on_disk(dir.path());
        let tried = memory_only(|| {
            let mut t = kv.begin();
            let r = t.get(b"k1");
            assert!(matches!(r, Err(KvError::NotInMemory)), "got {r:?}");
            // A caller that ignored the miss still cannot commit: the
            // scope runs again, and its change must not be made twice.
            t.put(b"k2", b"v2").expect("put");
            let c = t.commit(true);
            assert!(matches!(c, Err(KvError::NotInMemory)), "got {c:?}");
        });
        assert!(tried.is_none());
        assert_eq!(kv.get(b"k2").expect("get"), None);
    }

    #[test]
    fn inside_memory_only_reads_after_a_commit_wait_for_the_disk_instead_of_missing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = reopened_with_k1_on_disk(dir.path());
        let got = memory_only(|| {
            crate::transact(&kv, false, |t| t.put(b"k2", b"v2")).expect("commit");
            kv.get(b"k1")
        })
        .expect("no miss once something committed");
        assert_eq!(got.expect("get").as_deref(), Some(&b"v1"[..]));
    }

    #[test]
    fn deferring_sync_leaves_durable_commits_unsynced_and_says_so() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = RocksKv::open(dir.path()).expect("open");
        let unsynced = |kv: &RocksKv| kv.synced.reached() < kv.committed.load(Ordering::SeqCst);
        let (r, owed) = crate::deferring_sync(|| crate::transact(&kv, true, |t| t.put(b"a", b"1")));
        r.expect("commit");
        assert!(owed);
        assert!(unsynced(&kv), "the log must not have been synced");
        assert!(!crate::sync_owed(), "the scope ended");
        let (r, owed) = crate::deferring_sync(|| kv.sync());
        r.expect("sync");
        assert!(owed, "a sync asked for inside the scope is owed too");
        assert!(unsynced(&kv));
        let (r, owed) =
            crate::deferring_sync(|| crate::transact(&kv, false, |t| t.put(b"b", b"2")));
        r.expect("commit");
        assert!(!owed, "a commit that need not be durable owes nothing");
        kv.sync().expect("sync");
        assert!(!unsynced(&kv));
    }
}
