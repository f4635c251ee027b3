//! The metadata engine boundary.
//!
//! This crate owns the small transactional key-value trait ([`MetaKv`],
//! [`Txn`]) that the filesystem core stores its namespace in, the two
//! backends ([`RocksKv`] for real use, [`MemKv`] for tests and tools), the
//! key layout of every record ([`keys`]), and the conformance suite
//! ([`conformance`]) that every backend must pass.
//!
//! It must not know what an inode means: values are opaque bytes here.
//! Only the `rocks` module names `rocksdb`.

pub mod conformance;
pub mod keys;
mod mem;
mod rocks;

pub use mem::MemKv;
pub use rocks::RocksKv;

/// Errors a metadata backend reports.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// Another transaction committed a conflicting change; retry the whole
    /// transaction.
    #[error("transaction conflict")]
    Conflict,
    /// The engine failed (I/O, corruption, shutdown).
    #[error("metadata engine: {0}")]
    Engine(String),
    /// Inside [`memory_only`]: answering needs a read from disk.
    #[error("the record is not in memory")]
    NotInMemory,
}

impl KvError {
    /// Whether running the transaction again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, KvError::Conflict)
    }
}

/// Result of a metadata call.
pub type KvResult<T> = Result<T, KvError>;

/// Where [`memory_only`] stands on this thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MemoryOnly {
    Off,
    On,
    Missed,
    /// A transaction committed inside the scope: it cannot be run again,
    /// so the rest of the scope reads wherever its records are.
    Committed,
}

thread_local! {
    static MEMORY_ONLY: std::cell::Cell<MemoryOnly> = const { std::cell::Cell::new(MemoryOnly::Off) };
}

/// Runs `f` answering reads ([`MetaKv::get`], [`MetaKv::scan`] and those
/// of transactions) only from memory (the memtable and the block cache):
/// a read that would wait for the disk fails with
/// [`KvError::NotInMemory`] at once. Returns `None` if any read did (run
/// the work again where it may wait), else `Some` of `f`'s result.
///
/// Work that changes metadata stays safe to run again: after a miss no
/// transaction of the scope commits (its commit fails with
/// `NotInMemory`), and once one has committed, later reads of the scope
/// may wait for the disk instead of missing.
///
/// For callers on an async executor: a quick metadata read can run there
/// without a hop to a blocking thread, and only a cold one pays the hop.
pub fn memory_only<T>(f: impl FnOnce() -> T) -> Option<T> {
    /// Puts back the state the scope found; a nested scope's miss or
    /// commit carries over to the enclosing one.
    struct Restore(MemoryOnly);
    impl Drop for Restore {
        fn drop(&mut self) {
            MEMORY_ONLY.with(|m| {
                let inner = m.get();
                m.set(match (self.0, inner) {
                    (MemoryOnly::Off, _) => MemoryOnly::Off,
                    (_, MemoryOnly::Missed) => MemoryOnly::Missed,
                    (MemoryOnly::On, MemoryOnly::Committed) => MemoryOnly::Committed,
                    (outer, _) => outer,
                });
            });
        }
    }
    let restore = Restore(MEMORY_ONLY.with(|m| {
        let outer = m.get();
        // Inside a scope that committed or missed, that still holds.
        m.set(match outer {
            MemoryOnly::Off | MemoryOnly::On => MemoryOnly::On,
            settled => settled,
        });
        outer
    }));
    let out = f();
    let missed = MEMORY_ONLY.with(|m| m.get()) == MemoryOnly::Missed;
    drop(restore);
    (!missed).then_some(out)
}

/// Whether this thread is inside [`memory_only`] and a read there missed
/// (its error is not worth reporting: the work will run again).
pub fn memory_read_missed() -> bool {
    MEMORY_ONLY.with(|m| m.get()) == MemoryOnly::Missed
}

/// Whether reads on this thread must come from memory (inside
/// [`memory_only`]): other stores' reads (file data) must not wait for
/// the disk there either.
pub fn reads_from_memory_only() -> bool {
    matches!(
        MEMORY_ONLY.with(|m| m.get()),
        MemoryOnly::On | MemoryOnly::Missed
    )
}

/// Backends call this before a transaction commits: inside
/// [`memory_only`] after a miss the scope will run again, so nothing of it
/// may commit.
pub(crate) fn commit_allowed() -> KvResult<()> {
    if memory_read_missed() {
        return Err(KvError::NotInMemory);
    }
    Ok(())
}

/// Backends call this after a transaction committed (see [`memory_only`]).
pub(crate) fn note_committed() {
    MEMORY_ONLY.with(|m| {
        if m.get() == MemoryOnly::On {
            m.set(MemoryOnly::Committed);
        }
    });
}

/// Records that a read inside [`memory_only`] needed the disk.
pub(crate) fn note_memory_miss() -> KvError {
    MEMORY_ONLY.with(|m| m.set(MemoryOnly::Missed));
    KvError::NotInMemory
}

/// Fails with [`KvError::NotInMemory`] (and marks the scope missed)
/// inside [`memory_only`]: work that would wait for a disk other than the
/// metadata engine's (chunk data, say) calls this first, so it runs again
/// where waiting is allowed.
pub fn may_wait() -> KvResult<()> {
    if reads_from_memory_only() {
        return Err(note_memory_miss());
    }
    Ok(())
}

thread_local! {
    /// Inside [`deferring_sync`]: how far the log must be synced for the
    /// durable commits and syncs put off so far ([`MetaKv::log_position`];
    /// 0 if none was).
    static SYNC_DEFERRED: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with its durable commits ([`Txn::commit`] with `durable`) and
/// [`MetaKv::sync`] calls written but not yet synced: they are durable
/// only once a later sync outside the scope ([`MetaKv::sync`], or
/// [`MetaKv::sync_to`] the position [`deferring_sync_to`] names) has
/// returned. Returns `f`'s result and whether such a sync is owed.
///
/// For callers on an async executor: the transaction runs there, and the
/// caller answers after an asynchronous sync that many callers share,
/// instead of parking a thread on the log's fsync. The caller must not
/// acknowledge the work, or act on its being durable, before that sync.
pub fn deferring_sync<T>(f: impl FnOnce() -> T) -> (T, bool) {
    let (out, owed) = deferring_sync_to(f);
    (out, owed.is_some())
}

/// [`deferring_sync`], saying how far the log must be synced: `Some(p)`
/// when a sync is owed, and then any sync of the log that starts once
/// [`MetaKv::log_position`] has reached `p` pays it.
pub fn deferring_sync_to<T>(f: impl FnOnce() -> T) -> (T, Option<u64>) {
    let restore = RestoreDeferral(SYNC_DEFERRED.with(|d| d.replace(Some(0))));
    let out = f();
    let owed = SYNC_DEFERRED.with(|d| d.get()).filter(|&p| p > 0);
    drop(restore);
    (out, owed)
}

/// Puts back the deferral state a scope found; a sync owed inside a
/// nested [`deferring_sync`] stays owed by the enclosing one.
struct RestoreDeferral(Option<u64>);

impl Drop for RestoreDeferral {
    fn drop(&mut self) {
        SYNC_DEFERRED.with(|d| {
            let owed = d.get().unwrap_or(0);
            d.set(self.0.map(|outer| outer.max(owed)));
        });
    }
}

/// Runs `f` with its syncs done at once even inside [`deferring_sync`]:
/// for changes other work relies on being durable as soon as they return.
pub fn not_deferred<T>(f: impl FnOnce() -> T) -> T {
    let _restore = RestoreDeferral(SYNC_DEFERRED.with(|d| d.replace(None)));
    f()
}

/// Whether this thread is inside [`deferring_sync`] (and not in a
/// [`not_deferred`] within it): a sync asked for now is put off.
pub fn defers_sync() -> bool {
    SYNC_DEFERRED.with(|d| d.get().is_some())
}

/// Whether this thread is inside [`deferring_sync`] and owes a sync so far.
pub fn sync_owed() -> bool {
    SYNC_DEFERRED.with(|d| d.get()).is_some_and(|p| p > 0)
}

/// Whether a sync of the log up to position `upto` (at least 1) asked for
/// on this thread is put off (inside [`deferring_sync`], which then
/// reports it owed). Backends, and wrappers of one, call this where they
/// would sync.
pub fn defer_sync(upto: u64) -> bool {
    SYNC_DEFERRED.with(|d| match d.get() {
        Some(owed) => {
            d.set(Some(owed.max(upto).max(1)));
            true
        }
        None => false,
    })
}

/// A key-value pair returned by a scan.
pub type KvPair = (Vec<u8>, Vec<u8>);

/// A transactional, ordered key-value store.
pub trait MetaKv: Send + Sync {
    /// Starts a transaction. Reads through it see a consistent snapshot
    /// plus the transaction's own writes.
    fn begin(&self) -> Box<dyn Txn + '_>;

    /// Reads one key outside any transaction.
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>>;

    /// Returns up to `limit` pairs with `start <= key < end`, in key order,
    /// outside any transaction.
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>>;

    /// Makes every committed transaction durable (fsync of the log).
    fn sync(&self) -> KvResult<()> {
        self.sync_to(self.log_position())
    }

    /// How far the log is: a position that grows with every commit. A
    /// sync of the log that starts once this has been read makes every
    /// transaction committed before the read durable.
    fn log_position(&self) -> u64;

    /// Makes the transactions committed before [`MetaKv::log_position`]
    /// said `upto` durable: nothing to do if a sync already has (also
    /// after a later sync failed: what an earlier one made durable
    /// stays so).
    fn sync_to(&self, upto: u64) -> KvResult<()>;
}

/// One transaction. Point reads are tracked: if another transaction
/// commits a write to a key this one read, `commit` fails with
/// [`KvError::Conflict`].
pub trait Txn {
    /// Reads a key and registers it for conflict detection.
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>>;

    /// Writes a key.
    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()>;

    /// Deletes a key (no error if absent).
    fn delete(&mut self, key: &[u8]) -> KvResult<()>;

    /// Returns up to `limit` pairs with `start <= key < end`, including
    /// this transaction's own writes. Ranges are not conflict-tracked:
    /// guard them by reading a key that every writer of the range updates.
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>>;

    /// Commits. With `durable`, the commit is on stable storage when this
    /// returns; otherwise it survives a process crash but may be lost on
    /// power loss until the next durable commit or [`MetaKv::sync`].
    fn commit(self: Box<Self>, durable: bool) -> KvResult<()>;
}

/// How many times [`transact`] runs a transaction that keeps conflicting.
pub const MAX_TXN_ATTEMPTS: usize = 64;

/// Runs `body` in a transaction and commits it, retrying on conflicts.
///
/// `body` may run several times; it must not have side effects outside the
/// transaction. Its own errors abort without retry.
pub fn transact<T, E>(
    kv: &dyn MetaKv,
    durable: bool,
    mut body: impl FnMut(&mut dyn Txn) -> Result<T, E>,
) -> Result<T, E>
where
    E: From<KvError>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut txn = kv.begin();
        let value = body(txn.as_mut())?;
        match txn.commit(durable) {
            Ok(()) => return Ok(value),
            Err(e) if e.is_retryable() && attempt < MAX_TXN_ATTEMPTS => {
                tracing::debug!(attempt, "metadata transaction conflict, retrying");
                // Back off a little so the winner can finish.
                std::thread::yield_now();
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Smallest key strictly greater than every key that starts with `prefix`
/// (the exclusive end of a prefix scan).
pub fn prefix_end(prefix: &[u8]) -> Vec<u8> {
    let mut end = prefix.to_vec();
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return end;
        }
    }
    // All 0xff: no finite successor; scan to the end of the keyspace.
    vec![0xff; prefix.len() + 1]
}

#[cfg(test)]
mod scope_tests {
    use super::*;

    #[test]
    fn nested_scopes_carry_their_outcome_to_the_enclosing_one() {
        // A miss in a nested scope is the enclosing scope's miss too.
        let outer = memory_only(|| {
            assert!(memory_only(may_wait).is_none());
        });
        assert!(outer.is_none());
        // After a commit nothing misses, in a nested scope either.
        let kv = MemKv::new();
        let outer = memory_only(|| {
            transact(&kv, false, |t| t.put(b"k", b"v")).expect("commit");
            memory_only(may_wait).expect("no miss after a commit")
        });
        assert!(matches!(outer, Some(Ok(()))));
        // A sync owed in a nested scope stays owed.
        let ((), owed) = deferring_sync(|| {
            let (r, inner) = deferring_sync(|| kv.sync());
            r.expect("sync");
            assert!(inner);
        });
        assert!(owed);
        // `not_deferred` syncs at once and owes nothing.
        let (r, owed) = deferring_sync(|| not_deferred(|| kv.sync()));
        r.expect("sync");
        assert!(!owed);
        assert!(!sync_owed(), "every scope ended");
    }
}
