//! The local chunk engine: one file per chunk. With `<shard>` =
//! `<root>/<ino % 256 as 2 hex>`, an inode's first chunk is the file
//! `<shard>/<ino as 16 hex>.0` and its other chunks are
//! `<shard>/<ino as 16 hex>/<index as 16 hex>`.
//!
//! Files are written in place with positional I/O and are sparse, so a
//! small file costs one small chunk file (no directory of its own: most
//! files of an AI data set fit in their first chunk, and a directory per
//! file doubled the inodes the data disk spent and added a `mkdir` and a
//! directory fsync to every new file) and a hole costs nothing.
//!
//! Stores made before that layout kept the first chunk in the inode
//! directory too. A store records its layout in `<root>/layout` when it
//! is created; a root with shard directories and without that file is an
//! older store and keeps the older layout.
//!
//! Durability: a shard directory is made durable (root fsync) as soon as
//! it is created, since every inode in it depends on it. New inode
//! directories, new chunk files and removed chunks are made durable
//! (fsync of the directory holding their entry) by `sync` of their inode.
//! A store opened with a journal ([`LocalChunkStore::open_journaled`])
//! makes a sync that changed at most [`JOURNAL_SYNC_MAX`] bytes durable
//! as records in `<root>/journal` instead (see `journal.rs`): one shared
//! sequential write in place of an fsync of every chunk file and
//! directory. A checkpoint (`syncfs` of the chunk file system) later makes
//! the chunk files durable and frees the records; opening the store
//! replays the records a crash left.
//!
//! Sharing: [`ChunkStore::share`] hard-links a chunk file under another
//! name (a snapshot's copy, a clone's file) without copying. A chunk whose
//! file has more than one link is copied to a file of its own before its
//! first change (`<index>.cow`, fsynced, renamed over the name), so a
//! change never reaches the other names.
//!
//! Locking: `sync(ino)` holds `ino`'s sync lock from taking its dirty set
//! until the fsyncs are done, so a second `sync` of the same inode cannot
//! find the set empty and return before the first has made the writes it
//! took durable. Creating an inode's directory or chunk file also takes
//! that lock and records the creation before releasing it: whoever sees the
//! new file and then syncs finds the directory fsync it needs.

use crate::journal::{Journal, Op, Record};
use crate::{ChunkError, ChunkId, ChunkResult, ChunkStore, FileRange, SpaceStats};
use bytes::Bytes;
use nitrofs_common::beside;
use nitrofs_common::buf::BufPool;
use nitrofs_common::crashsafe;
use parking_lot::Mutex;
use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// How many chunk files are kept open between calls.
const OPEN_FILE_CACHE: usize = 512;

/// Shard directories under the root.
const SHARDS: usize = 256;

/// The file naming the layout of a store (see the module notes).
const LAYOUT_FILE: &str = "layout";

/// Contents of [`LAYOUT_FILE`] for the layout with first chunks beside the
/// inode directories.
const LAYOUT_FIRST_CHUNK_BESIDE: &[u8] = b"first-chunk-beside-inode-dir 1\n";

/// Suffix of a first chunk's file name beside its inode directory.
const FIRST_CHUNK_SUFFIX: &str = ".0";

/// Suffix of a private copy of a shared chunk being made.
const COW_SUFFIX: &str = ".cow";

/// What changed in one chunk since its last sync.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct ChunkDirty {
    /// The chunk file was created or removed: the directory holding its
    /// entry must be fsynced.
    entry: bool,
    /// The chunk file became a link of another chunk's file (`share`):
    /// only the file system's own entries can make that durable.
    linked: bool,
    /// The shortest length the chunk was cut to (0: created or removed).
    cut: Option<u64>,
    /// The bytes writes covered, `lo..hi` (none when `lo >= hi`).
    lo: u64,
    hi: u64,
}

impl ChunkDirty {
    /// Folds in a write of `len` bytes at `offset`.
    fn wrote(&mut self, offset: u64, len: u64) {
        if len == 0 {
            return;
        }
        if self.lo >= self.hi {
            (self.lo, self.hi) = (offset, offset + len);
        } else {
            self.lo = self.lo.min(offset);
            self.hi = self.hi.max(offset + len);
        }
    }

    /// Folds in a cut to `len` bytes.
    fn cut_to(&mut self, len: u64) {
        self.cut = Some(self.cut.map_or(len, |c| c.min(len)));
    }

    /// Folds in what an earlier period changed (`self` is the later one).
    fn merge_earlier(&mut self, earlier: ChunkDirty) {
        self.entry |= earlier.entry;
        self.linked |= earlier.linked;
        if let Some(c) = earlier.cut {
            self.cut_to(c);
        }
        self.wrote(earlier.lo, earlier.hi.saturating_sub(earlier.lo));
    }

    /// Bytes a journal record of this change would carry at most.
    fn span(&self) -> u64 {
        self.hi.saturating_sub(self.lo)
    }
}

/// What `sync` of one inode still has to make durable.
#[derive(Debug, Default)]
struct Dirty {
    /// Chunks changed since the last sync.
    chunks: HashMap<u64, ChunkDirty>,
    /// The inode directory was created (the shard directory must be
    /// fsynced).
    dir_created: bool,
}

impl Dirty {
    /// Folds `other` (taken by a sync that failed) back in.
    fn merge(&mut self, other: Dirty) {
        for (index, earlier) in other.chunks {
            self.chunks.entry(index).or_default().merge_earlier(earlier);
        }
        self.dir_created |= other.dir_created;
    }
}

/// Chunks stored as files in a local directory.
pub struct LocalChunkStore {
    root: PathBuf,
    open: Mutex<HashMap<ChunkId, Arc<File>>>,
    /// Per inode, what its next `sync` must make durable.
    dirty: Mutex<HashMap<u64, Dirty>>,
    /// Per-inode sync locks, present while someone holds or awaits one.
    sync_locks: Mutex<HashMap<u64, Arc<Mutex<()>>>>,
    /// Shard directories known to exist durably (created and root fsynced
    /// by this process).
    shards: Vec<AtomicBool>,
    /// Chunks whose file may have other links: copied before a change.
    shared: Mutex<HashSet<ChunkId>>,
    /// First chunks live beside the inode directories (not in them).
    first_beside: bool,
    /// The process's pooled buffers that reads fill. A chunk read needs an
    /// initialized buffer (the std read API fills a `&mut [u8]`), and
    /// zeroing a fresh MiB for every read was ~15% of the server's CPU during S3 downloads (perf:
    /// `__memset_avx2_unaligned_erms`): reads fill pooled buffers, handed out
    /// inside the returned `Bytes` and given back when the last handle drops.
    /// Only the bytes a read filled are visible.
    read_bufs: Arc<BufPool>,
    /// The journal of small syncs, if the store keeps one.
    deferred: Option<Arc<Deferred>>,
    /// Background syncs of filled chunks under way ([`ChunkStore::filled`]).
    head_starts: Arc<AtomicUsize>,
    /// Cleared when the kernel or file system turned down a read that may
    /// not wait ([`ChunkStore::read_cached`]): no point asking again.
    nowait_reads: AtomicBool,
    /// Bumped after a chunk's file is replaced (copy-on-write rename) or
    /// unlinked, before its cached handle is replaced or dropped: an
    /// opener that started before the bump does not cache what it opened,
    /// which may be the old file ([`Self::open_existing`]).
    replaced: AtomicU64,
}

/// Most background syncs of filled chunks at once; a chunk filled while
/// this many run waits for its file's own sync. Without them an 8-writer
/// NFS checkpoint (8 × 256 MiB in 1 MiB WRITEs, then COMMIT) was a phase
/// of copying into the page cache with the disk idle, then one of waiting
/// for the disk (`vmstat 1`: 74-76% system time, then 84% iowait).
const HEAD_STARTS: usize = 4;

/// The file of the journal of small syncs under the root.
const JOURNAL_FILE: &str = "journal";

/// A sync whose chunks changed at most this many bytes writes them to the
/// journal (when the store has one) instead of fsyncing the chunk files:
/// small files and small overwrites. Larger ones are cheaper written once,
/// in place.
const JOURNAL_SYNC_MAX: u64 = 128 << 10;

/// Default size of the journal file: room for about 4,000 records of
/// 16 KiB between checkpoints.
pub const DEFAULT_JOURNAL_BYTES: u64 = 64 << 20;

/// The journal of small syncs and what it holds (see [`crate::journal`]).
///
/// The rule that keeps replay right: once a record about an inode is in the
/// live journal, a change of that inode is made durable only by another
/// record or after a checkpoint that covers the record. (A record replayed
/// over a chunk that was fsynced in place later would bring back older
/// bytes.) So `sync` of an inode in the journal that is too large for a
/// record checkpoints first, and removals of such an inode are recorded
/// too. A shared chunk needs nothing more: its link is made durable in
/// place (a `linked` change never goes to the journal), and a record
/// replayed onto a name that is still a link goes through the same
/// copy-on-write as any write, so the other name keeps its bytes.
struct Deferred {
    journal: Journal,
    /// The root directory, to `syncfs` the file system holding the chunks.
    root: File,
    /// Per inode, the sequence number of its last record.
    inodes: Mutex<HashMap<u64, u64>>,
    /// Held by the one checkpoint running.
    checkpointing: Mutex<()>,
    /// A background checkpoint is queued or running.
    background: AtomicBool,
}

impl Deferred {
    /// Makes every chunk change so far durable in the chunk files (one
    /// `syncfs`), then drops the records that described them.
    fn checkpoint(&self) -> ChunkResult<()> {
        // A broken journal frees nothing: spare the file system a syncfs.
        self.journal.usable().map_err(ChunkError::from_io)?;
        let _one = self.checkpointing.lock();
        let cut = self.journal.cut();
        if cut.seq() <= self.journal.start_seq() {
            return Ok(());
        }
        // A failed syncfs leaves the journal broken: the next one would
        // report success over pages that never reached the disk.
        syncfs(&self.root).map_err(|e| ChunkError::from_io(self.journal.broke(e)))?;
        self.journal
            .checkpointed(cut)
            .map_err(ChunkError::from_io)?;
        self.inodes.lock().retain(|_, seq| *seq >= cut.seq());
        Ok(())
    }

    /// Whether `ino` has records in the live journal.
    fn holds(&self, ino: u64) -> bool {
        let Some(&seq) = self.inodes.lock().get(&ino) else {
            return false;
        };
        seq >= self.journal.start_seq()
    }

    /// Makes sure no live record describes `ino` (see the type's notes).
    fn release(&self, ino: u64) -> ChunkResult<()> {
        if self.holds(ino) {
            self.checkpoint()?;
        }
        Ok(())
    }

    /// Records that `ino`'s last record is `seq`.
    fn noted(&self, ino: u64, seq: u64) {
        let mut inodes = self.inodes.lock();
        let last = inodes.entry(ino).or_insert(seq);
        *last = (*last).max(seq);
    }

    /// Appends `ops` about `ino`, checkpointing first if the journal is
    /// full; `None` if they do not fit even in an empty journal.
    fn append(&self, ino: u64, ops: &[Op<'_>]) -> ChunkResult<Option<u64>> {
        let mut seq = self.journal.append(ops).map_err(ChunkError::from_io)?;
        if seq.is_none() {
            self.checkpoint()?;
            seq = self.journal.append(ops).map_err(ChunkError::from_io)?;
        }
        if let Some(seq) = seq {
            self.noted(ino, seq);
        }
        Ok(seq)
    }

    /// Starts a checkpoint in the background once half the journal is
    /// used, so that writers rarely find it full.
    fn checkpoint_soon(self: &Arc<Self>) {
        if self.journal.used() < self.journal.area() / 2
            || self.background.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let this = Arc::clone(self);
        let started = std::thread::Builder::new()
            .name("chunk-checkpoint".into())
            .spawn(move || {
                if let Err(e) = this.checkpoint() {
                    tracing::warn!(error = %e, "chunk journal checkpoint failed; retried when needed");
                }
                this.background.store(false, Ordering::Release);
            });
        if started.is_err() {
            // A writer that finds the journal full checkpoints itself.
            self.background.store(false, Ordering::Release);
        }
    }
}

impl LocalChunkStore {
    /// Opens (creating if missing) a chunk store rooted at `root`. A
    /// journal of small syncs that the store was given (see
    /// [`Self::open_journaled`]) is replayed and kept.
    pub fn open(root: &Path) -> ChunkResult<Self> {
        Self::open_with(root, None)
    }

    /// [`Self::open`], keeping a journal of small syncs of `journal_bytes`
    /// (created if missing; an existing journal keeps its size). A sync
    /// that changed few bytes then costs one shared sequential write
    /// instead of fsyncs of each chunk file and its directory.
    pub fn open_journaled(root: &Path, journal_bytes: u64) -> ChunkResult<Self> {
        Self::open_with(root, Some(journal_bytes))
    }

    fn open_with(root: &Path, journal_bytes: Option<u64>) -> ChunkResult<Self> {
        crashsafe::create_dir_all_durable(root).map_err(ChunkError::from_io)?;
        let first_beside = Self::layout(root).map_err(ChunkError::from_io)?;
        let mut store = Self {
            root: root.to_path_buf(),
            open: Mutex::new(HashMap::new()),
            dirty: Mutex::new(HashMap::new()),
            sync_locks: Mutex::new(HashMap::new()),
            shards: (0..SHARDS).map(|_| AtomicBool::new(false)).collect(),
            shared: Mutex::new(HashSet::new()),
            first_beside,
            read_bufs: nitrofs_common::buf::process_pool(),
            deferred: None,
            head_starts: Arc::new(AtomicUsize::new(0)),
            nowait_reads: AtomicBool::new(true),
            replaced: AtomicU64::new(0),
        };
        let path = root.join(JOURNAL_FILE);
        let capacity = match journal_bytes {
            Some(bytes) => bytes,
            None if path.try_exists().map_err(ChunkError::from_io)? => DEFAULT_JOURNAL_BYTES,
            None => return Ok(store),
        };
        let (journal, records) = Journal::open(&path, capacity).map_err(ChunkError::from_io)?;
        if journal_bytes.is_some_and(|b| b != journal.capacity()) {
            tracing::info!(
                kept = journal.capacity(),
                asked = capacity,
                "the chunk journal keeps the size it was created with"
            );
        }
        let root_dir = File::open(root).map_err(ChunkError::from_io)?;
        if !records.is_empty() {
            for record in &records {
                store.replay(record)?;
            }
            syncfs(&root_dir).map_err(ChunkError::from_io)?;
            store.dirty.lock().clear();
            tracing::info!(records = records.len(), "chunk journal replayed");
        }
        journal.restart().map_err(ChunkError::from_io)?;
        store.deferred = Some(Arc::new(Deferred {
            journal,
            root: root_dir,
            inodes: Mutex::new(HashMap::new()),
            checkpointing: Mutex::new(()),
            background: AtomicBool::new(false),
        }));
        Ok(store)
    }

    /// Applies one journal record to the chunk files (before the journal
    /// is in use: nothing here writes records).
    fn replay(&self, record: &Record<Vec<u8>>) -> ChunkResult<()> {
        match record {
            Record::Chunk {
                id,
                cut,
                lo,
                data,
                len,
            } => {
                if let Some(cut) = cut {
                    self.truncate(*id, *cut)?;
                }
                if !data.is_empty() {
                    self.write(*id, *lo, data)?;
                }
                self.truncate(*id, *len)
            }
            Record::Remove(id) => self.remove(*id),
            Record::RemoveFrom { ino, from } => self.remove_from(*ino, *from),
        }
    }

    /// Whether the store at `root` keeps first chunks beside the inode
    /// directories: recorded in its layout file, written (durably) when
    /// the root holds no shard directory yet; a root with shard
    /// directories and no layout file is a store from before that layout.
    fn layout(root: &Path) -> io::Result<bool> {
        let path = root.join(LAYOUT_FILE);
        match fs::read(&path) {
            Ok(found) if found == LAYOUT_FIRST_CHUNK_BESIDE => return Ok(true),
            Ok(found) => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{}: unknown chunk store layout {:?}",
                        path.display(),
                        String::from_utf8_lossy(&found).trim_end()
                    ),
                ))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        // Older stores are recognised by their shard directories; other
        // names (a file system's lost+found, a layout file a crash left
        // half written) do not make a store old.
        for entry in fs::read_dir(root)? {
            let entry = entry?;
            let name = entry.file_name();
            let is_shard = name.len() == 2
                && name
                    .to_str()
                    .is_some_and(|n| u8::from_str_radix(n, 16).is_ok());
            if is_shard && entry.file_type()?.is_dir() {
                return Ok(false);
            }
        }
        crashsafe::write_file_atomic(&path, LAYOUT_FIRST_CHUNK_BESIDE, 0o644)?;
        Ok(true)
    }

    /// After `remove_from(ino, from_index)` emptied or found no inode
    /// directory: nothing in it is left to sync. A first chunk kept beside
    /// the directory is still there when `from_index > 0`, and so is what
    /// its next sync owes (its data, its entry in the shard directory).
    fn forget_dirty_dir(&self, ino: u64, from_index: u64) {
        let mut dirty = self.dirty.lock();
        if from_index == 0 || !self.first_beside {
            dirty.remove(&ino);
        } else if let Some(d) = dirty.get_mut(&ino) {
            d.dir_created = false;
            if d.chunks.is_empty() {
                dirty.remove(&ino);
            }
        }
    }

    /// Whether chunk `index` of an inode lives beside its directory.
    fn beside(&self, index: u64) -> bool {
        self.first_beside && index == 0
    }

    fn shard_dir(&self, ino: u64) -> PathBuf {
        self.root.join(format!("{:02x}", ino % SHARDS as u64))
    }

    fn inode_dir(&self, ino: u64) -> PathBuf {
        self.shard_dir(ino).join(format!("{ino:016x}"))
    }

    fn chunk_path(&self, id: ChunkId) -> PathBuf {
        if self.beside(id.index) {
            return self
                .shard_dir(id.ino)
                .join(format!("{:016x}{FIRST_CHUNK_SUFFIX}", id.ino));
        }
        self.inode_dir(id.ino).join(format!("{:016x}", id.index))
    }

    /// Where a private copy of shared chunk `id` is made before it is
    /// renamed over the chunk.
    fn cow_path(&self, id: ChunkId) -> PathBuf {
        let mut p = self.chunk_path(id).into_os_string();
        p.push(COW_SUFFIX);
        PathBuf::from(p)
    }

    /// Creates `ino`'s directory if missing, recording a creation for the
    /// next `sync`. Call under `ino`'s sync lock.
    fn ensure_inode_dir(&self, ino: u64) -> ChunkResult<()> {
        match fs::create_dir(self.inode_dir(ino)) {
            Ok(()) => self.dirty.lock().entry(ino).or_default().dir_created = true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ChunkError::from_io(e)),
        }
        Ok(())
    }

    /// Removes a file that may already be gone.
    fn remove_if_present(path: &Path) -> ChunkResult<bool> {
        match fs::remove_file(path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(ChunkError::from_io(e)),
        }
    }

    fn cached(&self, id: ChunkId) -> Option<Arc<File>> {
        self.open.lock().get(&id).cloned()
    }

    /// Whether a handle of `id`'s cached file is held outside the cache
    /// (a [`FileRange`] being sent, or a read under way).
    fn ranges_out(&self, id: ChunkId) -> bool {
        self.open
            .lock()
            .get(&id)
            .is_some_and(|f| Arc::strong_count(f) > 1)
    }

    fn remember(&self, id: ChunkId, f: Arc<File>) {
        Self::remember_in(&mut self.open.lock(), id, f);
    }

    /// [`Self::remember`] in the locked cache.
    fn remember_in(open: &mut HashMap<ChunkId, Arc<File>>, id: ChunkId, f: Arc<File>) {
        if open.len() >= OPEN_FILE_CACHE {
            // Drop an arbitrary half: cheap, and hot files are reopened.
            // Files with handles out stay, so `ranges_out` sees them.
            let victims: Vec<ChunkId> = open
                .iter()
                .filter(|(_, f)| Arc::strong_count(f) == 1)
                .map(|(id, _)| *id)
                .take(OPEN_FILE_CACHE / 2)
                .collect();
            for v in victims {
                open.remove(&v);
            }
        }
        open.insert(id, f);
    }

    /// [`Self::remember`] of a file opened by path when `replaced` read
    /// `seen`, unless a file was replaced or unlinked since: the handle
    /// may then be of the old file (a snapshot's copy, or unlinked), and a
    /// later write through the cache would land there and be lost. The
    /// check and the insertion share the cache's lock; a replacer bumps
    /// `replaced` before it takes that lock to put in or drop its handle.
    fn remember_opened(&self, id: ChunkId, f: Arc<File>, seen: u64) {
        let mut open = self.open.lock();
        if self.replaced.load(Ordering::SeqCst) == seen {
            Self::remember_in(&mut open, id, f);
        }
    }

    fn forget_inode(&self, ino: u64, from_index: u64) {
        self.open
            .lock()
            .retain(|id, _| !(id.ino == ino && id.index >= from_index));
    }

    /// Runs `f` holding `ino`'s sync lock; the lock's map entry is dropped
    /// afterwards if nobody else wants it.
    fn with_sync_lock<T>(&self, ino: u64, f: impl FnOnce() -> T) -> T {
        let lock = self.sync_locks.lock().entry(ino).or_default().clone();
        let out = {
            let _held = lock.lock();
            f()
        };
        let mut locks = self.sync_locks.lock();
        // The map's reference plus ours: nobody else holds or awaits it,
        // and nobody can clone it while we hold the map.
        if Arc::strong_count(&lock) == 2 {
            locks.remove(&ino);
        }
        out
    }

    /// Makes sure `ino`'s shard directory exists durably: created, then
    /// the root fsynced, even if another thread created it first (its
    /// fsync may not be done yet). Never creates the root: a store whose
    /// root was removed (a deleted KV space) fails instead of reviving it.
    fn ensure_shard(&self, ino: u64) -> ChunkResult<()> {
        let known = &self.shards[(ino % SHARDS as u64) as usize];
        if known.load(Ordering::Acquire) {
            return Ok(());
        }
        match fs::create_dir(self.shard_dir(ino)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(ChunkError::from_io(e)),
        }
        crashsafe::fsync_dir(&self.root).map_err(ChunkError::from_io)?;
        known.store(true, Ordering::Release);
        Ok(())
    }

    /// Opens an existing chunk for reading, or `None` for a hole.
    fn open_existing(&self, id: ChunkId) -> ChunkResult<Option<Arc<File>>> {
        if let Some(f) = self.cached(id) {
            return Ok(Some(f));
        }
        let seen = self.replaced.load(Ordering::SeqCst);
        match OpenOptions::new()
            .read(true)
            .write(true)
            .open(self.chunk_path(id))
        {
            Ok(f) => {
                if f.metadata().map_err(ChunkError::from_io)?.nlink() > 1 {
                    self.shared.lock().insert(id);
                }
                let f = Arc::new(f);
                self.remember_opened(id, f.clone(), seen);
                Ok(Some(f))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(ChunkError::from_io(e)),
        }
    }

    /// Opens a chunk for writing, creating file and directories as needed
    /// under the inode's sync lock, and recording what was created for the
    /// next `sync`.
    fn open_for_write(&self, id: ChunkId) -> ChunkResult<Arc<File>> {
        if let Some(f) = self.open_existing(id)? {
            return Ok(f);
        }
        self.create_for_write(id)
    }

    /// [`Self::open_for_write`] for a chunk just found missing.
    fn create_for_write(&self, id: ChunkId) -> ChunkResult<Arc<File>> {
        self.with_sync_lock(id.ino, || {
            self.ensure_shard(id.ino)?;
            if !self.beside(id.index) {
                self.ensure_inode_dir(id.ino)?;
            }
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .open(self.chunk_path(id))
            {
                Ok(f) => {
                    self.mark(id, |c| {
                        c.entry = true;
                        c.cut_to(0);
                    });
                    let f = Arc::new(f);
                    self.remember(id, f.clone());
                    Ok(f)
                }
                // Created by another writer while we waited for the lock.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    self.open_existing(id)?.ok_or_else(|| {
                        ChunkError::from_io(io::Error::new(
                            io::ErrorKind::NotFound,
                            "chunk file removed while being opened for a write",
                        ))
                    })
                }
                Err(e) => Err(ChunkError::from_io(e)),
            }
        })
    }

    /// Gives chunk `id` a file of its own if it shares one (see the module
    /// notes), before it changes.
    fn own(&self, id: ChunkId) -> ChunkResult<()> {
        if !self.shared.lock().contains(&id) {
            return Ok(());
        }
        self.with_sync_lock(id.ino, || {
            if !self.shared.lock().contains(&id) {
                return Ok(());
            }
            let Some(f) = self.open_existing(id)? else {
                self.shared.lock().remove(&id);
                return Ok(());
            };
            if f.metadata().map_err(ChunkError::from_io)?.nlink() > 1 {
                let path = self.chunk_path(id);
                let tmp = self.cow_path(id);
                fs::copy(&path, &tmp).map_err(ChunkError::from_io)?;
                let own = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&tmp)
                    .map_err(ChunkError::from_io)?;
                own.sync_data().map_err(ChunkError::from_io)?;
                fs::rename(&tmp, &path).map_err(ChunkError::from_io)?;
                // The rename is made durable now, not at the next sync: a
                // journaled sync writes no directory, and a record replayed
                // onto the old link would copy what the other name holds
                // by then.
                if let Some(dir) = path.parent() {
                    crashsafe::fsync_dir(dir).map_err(ChunkError::from_io)?;
                }
                self.replaced.fetch_add(1, Ordering::SeqCst);
                self.open.lock().insert(id, Arc::new(own));
                self.mark(id, |c| c.entry = true);
            }
            self.shared.lock().remove(&id);
            Ok(())
        })
    }

    /// Records what changed in chunk `id` for its next sync.
    fn mark(&self, id: ChunkId, change: impl FnOnce(&mut ChunkDirty)) {
        change(
            self.dirty
                .lock()
                .entry(id.ino)
                .or_default()
                .chunks
                .entry(id.index)
                .or_default(),
        );
    }

    /// Makes `dirty` durable: as a journal record when it is small and the
    /// store keeps a journal, else in place.
    fn flush_any(&self, ino: u64, dirty: &Dirty) -> ChunkResult<()> {
        if let Some(d) = &self.deferred {
            if self.flush_to_journal(d, ino, dirty)? {
                return Ok(());
            }
            d.release(ino)?;
        }
        self.flush(ino, dirty)
    }

    /// Writes what `dirty` changed, read back from the chunk files, as
    /// journal records and waits for them to be durable; false if it is
    /// not a small change the journal takes.
    fn flush_to_journal(&self, d: &Arc<Deferred>, ino: u64, dirty: &Dirty) -> ChunkResult<bool> {
        let mut span = 0;
        for c in dirty.chunks.values() {
            if c.linked {
                return Ok(false);
            }
            span += c.span();
        }
        if span > JOURNAL_SYNC_MAX {
            return Ok(false);
        }
        let mut records = Vec::with_capacity(dirty.chunks.len());
        for (&index, c) in &dirty.chunks {
            let id = ChunkId { ino, index };
            let Some(f) = self.open_existing(id)? else {
                records.push(Record::Remove(id));
                continue;
            };
            let len = f.metadata().map_err(ChunkError::from_io)?.len();
            let hi = c.hi.min(len);
            let lo = c.lo.min(hi);
            let mut data = vec![0; (hi - lo) as usize];
            let n = read_full_at(&f, &mut data, lo).map_err(ChunkError::from_io)?;
            data.truncate(n);
            records.push(Record::Chunk {
                id,
                cut: c.cut,
                lo,
                data,
                len,
            });
        }
        if records.is_empty() {
            // Nothing but a new directory (replay makes those), yet removal
            // records of this inode may still wait for a sync.
            self.sync_records(ino)?;
            return Ok(true);
        }
        let ops: Vec<Op<'_>> = records.iter().map(Record::as_op).collect();
        let Some(seq) = d.append(ino, &ops)? else {
            return Ok(false);
        };
        d.checkpoint_soon();
        d.journal.sync_upto(seq).map_err(ChunkError::from_io)?;
        Ok(true)
    }

    /// Makes the records about `ino` appended so far durable.
    fn sync_records(&self, ino: u64) -> ChunkResult<()> {
        let Some(d) = &self.deferred else {
            return Ok(());
        };
        let last = d.inodes.lock().get(&ino).copied();
        match last {
            Some(seq) => d.journal.sync_upto(seq).map_err(ChunkError::from_io),
            None => Ok(()),
        }
    }

    /// Runs a removal of `ino`'s chunks: under its sync lock when the store
    /// keeps a journal (a sync of `ino` that read a chunk before it went
    /// must not append its record after the removal's), and refused before
    /// anything is deleted if the removal needs a record the journal can no
    /// longer take. Without a journal there is nothing to order.
    fn removing(&self, ino: u64, f: impl FnOnce() -> ChunkResult<()>) -> ChunkResult<()> {
        let Some(d) = &self.deferred else {
            return f();
        };
        self.with_sync_lock(ino, || {
            if d.holds(ino) {
                d.journal.usable().map_err(ChunkError::from_io)?;
            }
            f()
        })
    }

    /// Records `op` about `ino` if the journal holds records about it, so
    /// that replaying them cannot bring back what `op` removed. Made
    /// durable with the next record anyone syncs.
    fn note_removal(&self, ino: u64, op: Op<'_>) -> ChunkResult<()> {
        if let Some(d) = &self.deferred {
            if d.holds(ino) {
                d.append(ino, &[op])?;
            }
        }
        Ok(())
    }

    /// The fsyncs of one inode's dirty set. The directories whose entry
    /// lists changed are fsynced beside the chunk files (the entries exist
    /// already, so no order between those fsyncs matters, and the caller
    /// returns only when all are done): a new small file waits for the
    /// slower of its data and its directory entry, not for their sum.
    fn flush(&self, ino: u64, dirty: &Dirty) -> ChunkResult<()> {
        let mut in_dir_changed = false;
        let mut shard_changed = dirty.dir_created;
        for (&index, c) in &dirty.chunks {
            if self.beside(index) {
                shard_changed |= c.entry;
            } else {
                in_dir_changed |= c.entry;
            }
        }
        // Removed meanwhile by `remove_from`: nothing left to sync in it.
        let in_dir = in_dir_changed.then(|| fsync_dir_beside(self.inode_dir(ino), true));
        let shard = shard_changed.then(|| fsync_dir_beside(self.shard_dir(ino), false));
        let files = self.sync_files(ino, dirty);
        let in_dir = in_dir.map_or(Ok(()), beside::Pending::wait);
        let shard = shard.map_or(Ok(()), beside::Pending::wait);
        files.and(in_dir).and(shard)
    }
}

impl LocalChunkStore {
    /// Deletes the files of every chunk of `ino` from `from_index` on.
    fn delete_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        let deleted = self.delete_files_from(ino, from_index);
        // Handles an opener cached meanwhile are of unlinked files.
        self.replaced.fetch_add(1, Ordering::SeqCst);
        self.forget_inode(ino, from_index);
        deleted
    }

    /// [`Self::delete_from`] but the last forgetting of cached handles.
    fn delete_files_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        self.forget_inode(ino, from_index);
        self.shared
            .lock()
            .retain(|id| !(id.ino == ino && id.index >= from_index));
        if let Some(d) = self.dirty.lock().get_mut(&ino) {
            d.chunks.retain(|idx, _| *idx < from_index);
        }
        if self.beside(from_index) {
            let first = ChunkId { ino, index: 0 };
            // A copy interrupted by a crash goes with the chunk.
            Self::remove_if_present(&self.cow_path(first))?;
            Self::remove_if_present(&self.chunk_path(first))?;
        }
        let dir = self.inode_dir(ino);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                self.forget_dirty_dir(ino, from_index);
                return Ok(());
            }
            Err(e) => return Err(ChunkError::from_io(e)),
        };
        let mut remaining = 0usize;
        for entry in entries {
            let entry = entry.map_err(ChunkError::from_io)?;
            let name = entry.file_name();
            let index = name.to_str().and_then(|n| {
                // A copy interrupted by a crash goes with the chunks.
                let n = n.strip_suffix(COW_SUFFIX).unwrap_or(n);
                u64::from_str_radix(n, 16).ok()
            });
            match index {
                Some(i) if i >= from_index => {
                    Self::remove_if_present(&entry.path())?;
                }
                _ => remaining += 1,
            }
        }
        if remaining == 0 {
            match fs::remove_dir(&dir) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::from_io(e)),
            }
            self.forget_dirty_dir(ino, from_index);
        }
        Ok(())
    }
}

/// How many threads at most sync one inode's chunk files at once.
const PARALLEL_FILE_SYNCS: usize = 8;

impl LocalChunkStore {
    /// Fsyncs the dirty chunk files of `ino`. A large file's many chunks
    /// are synced by several threads at once: one after the other, each
    /// `fdatasync` wrote its 4 MiB and waited, so a checkpoint's COMMIT
    /// kept a single write in flight to the disk.
    fn sync_files(&self, ino: u64, dirty: &Dirty) -> ChunkResult<()> {
        let mut files = Vec::with_capacity(dirty.chunks.len());
        for &index in dirty.chunks.keys() {
            if let Some(f) = self.open_existing(ChunkId { ino, index })? {
                files.push(f);
            }
        }
        let per_thread = files.len().div_ceil(PARALLEL_FILE_SYNCS).max(1);
        let mut groups = files.chunks(per_thread).map(<[Arc<File>]>::to_vec);
        let mine = groups.next().unwrap_or_default();
        let others: Vec<_> = groups
            .map(|group| beside::run(move || sync_all_data(&group)))
            .collect();
        let mut result = sync_all_data(&mine);
        for p in others {
            result = result.and(p.wait());
        }
        result
    }
}

fn sync_all_data(files: &[Arc<File>]) -> ChunkResult<()> {
    files
        .iter()
        .try_for_each(|f| f.sync_data().map_err(ChunkError::from_io))
}

/// Flushes everything the file system holding `dir` has in memory.
fn syncfs(dir: &File) -> io::Result<()> {
    nix::unistd::syncfs(dir.as_raw_fd()).map_err(io::Error::from)
}

/// Starts an fsync of `dir` beside the caller's work; `gone_ok`: a
/// directory removed meanwhile has nothing left to sync.
fn fsync_dir_beside(dir: PathBuf, gone_ok: bool) -> beside::Pending<ChunkResult<()>> {
    beside::run(move || match crashsafe::fsync_dir(&dir) {
        Err(e) if gone_ok && e.kind() == io::ErrorKind::NotFound => Ok(()),
        r => r.map_err(ChunkError::from_io),
    })
}

fn read_full_at(f: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match f.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

impl ChunkStore for LocalChunkStore {
    fn read(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Bytes> {
        let Some(f) = self.open_existing(id)? else {
            return Ok(Bytes::new());
        };
        let mut buf = self.read_bufs.take(len);
        let n = read_full_at(&f, &mut buf, offset).map_err(ChunkError::from_io)?;
        buf.truncate(n);
        Ok(buf.into_bytes())
    }

    /// Opens the chunk's file afresh (read-only, without updating its
    /// atime, every path step from the dentry cache: `openat2` with
    /// `RESOLVE_CACHED`) and reads with `preadv2` `RWF_NOWAIT`, which fails
    /// instead of waiting for a page. The file is not put in the open-file
    /// cache: closing cached files and racing copy-on-write renames are
    /// the blocking paths' business. Every failure is a miss; the caller
    /// reads the usual way, which reports real errors.
    fn read_cached(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Option<Bytes>> {
        use rustix::fs::{Mode, OFlags, ResolveFlags, CWD};
        use rustix::io::{Errno, ReadWriteFlags};
        if !self.reads_cached() {
            return Ok(None);
        }
        let flags = OFlags::RDONLY | OFlags::NOATIME | OFlags::CLOEXEC;
        let fd = match rustix::fs::openat2(
            CWD,
            self.chunk_path(id),
            flags,
            Mode::empty(),
            ResolveFlags::CACHED,
        ) {
            Ok(fd) => fd,
            // No openat2 or RESOLVE_CACHED (before Linux 5.12), or a
            // sandbox that forbids it: never ask again.
            Err(Errno::NOSYS | Errno::INVAL | Errno::PERM) => {
                self.nowait_reads.store(false, Ordering::Relaxed);
                return Ok(None);
            }
            // EAGAIN: a path step is not in the dentry cache; ENOENT: no
            // chunk file (a hole).
            Err(_) => return Ok(None),
        };
        let mut buf = self.read_bufs.take(len);
        let got = rustix::io::preadv2(
            &fd,
            &mut [io::IoSliceMut::new(&mut buf)],
            offset,
            ReadWriteFlags::NOWAIT,
        );
        match got {
            Ok(n) if n == len => Ok(Some(buf.into_bytes())),
            // A file system without buffered RWF_NOWAIT, or no preadv2.
            Err(Errno::OPNOTSUPP | Errno::NOSYS | Errno::PERM) => {
                self.nowait_reads.store(false, Ordering::Relaxed);
                Ok(None)
            }
            // Short (the end of the file, a hole follows), EAGAIN (a page
            // not in the page cache), or anything else.
            _ => Ok(None),
        }
    }

    fn reads_cached(&self) -> bool {
        self.nowait_reads.load(Ordering::Relaxed)
    }

    fn read_range(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Option<FileRange>> {
        let Some(file) = self.open_existing(id)? else {
            return Ok(None);
        };
        if self.shared.lock().contains(&id) {
            // Its bytes may turn into another name's at its next change.
            return Ok(None);
        }
        let meta = file.metadata().map_err(ChunkError::from_io)?;
        if meta.nlink() > 1 || offset.saturating_add(len as u64) > meta.len() {
            return Ok(None);
        }
        Ok(Some(FileRange::new(file, offset, len)))
    }

    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()> {
        // Opening learns whether the file is shared (its link count).
        let existing = self.open_existing(id)?;
        self.own(id)?;
        let f = match existing {
            // `own` may have replaced the file: open again (from the cache).
            Some(_) => self.open_for_write(id)?,
            None => self.create_for_write(id)?,
        };
        f.write_all_at(data, offset).map_err(ChunkError::from_io)?;
        self.mark(id, |c| c.wrote(offset, data.len() as u64));
        Ok(())
    }

    fn filled(&self, id: ChunkId) {
        let busy = &self.head_starts;
        if busy
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < HEAD_STARTS).then_some(n + 1)
            })
            .is_err()
        {
            return;
        }
        let Ok(Some(file)) = self.open_existing(id) else {
            busy.fetch_sub(1, Ordering::AcqRel);
            return;
        };
        let busy = Arc::clone(busy);
        // Not waited for: the file's next `sync` is what the caller relies on.
        drop(beside::run(move || {
            if let Err(e) = file.sync_data() {
                tracing::debug!(error = %e, "background sync of a filled chunk failed");
            }
            busy.fetch_sub(1, Ordering::AcqRel);
        }));
    }

    fn truncate(&self, id: ChunkId, len: u64) -> ChunkResult<()> {
        if self.open_existing(id)?.is_none() {
            return Ok(());
        }
        self.own(id)?;
        if let Some(f) = self.open_existing(id)? {
            f.set_len(len).map_err(ChunkError::from_io)?;
            self.mark(id, |c| c.cut_to(len));
        }
        Ok(())
    }

    fn remove_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        self.removing(ino, || {
            self.delete_from(ino, from_index)?;
            self.note_removal(
                ino,
                Record::RemoveFrom {
                    ino,
                    from: from_index,
                },
            )
        })
    }

    fn share(&self, src: ChunkId, dst: ChunkId, chunk_size: usize) -> ChunkResult<bool> {
        self.remove(dst)?;
        let src_path = self.chunk_path(src);
        let linked = self.with_sync_lock(dst.ino, || {
            self.ensure_shard(dst.ino)?;
            if !self.beside(dst.index) {
                self.ensure_inode_dir(dst.ino)?;
            }
            // Marked before the link exists: a writer of `src` that gets
            // past `own` before this copies nothing and writes in place
            // (the caller orders writes of `src` after sharing it).
            self.shared.lock().insert(src);
            // Marked before looking for ranges out: `read_range` takes its
            // handle before it looks at the mark, so either it sees the
            // mark or this sees its handle.
            if self.ranges_out(src) {
                // A range of `src`'s file is being sent: once linked, a
                // change of `src` would leave that file to `dst`, whose
                // own changes would then reach the send. Copy instead.
                return Ok(None);
            }
            match fs::hard_link(&src_path, self.chunk_path(dst)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Some(false)),
                Err(e) => return Err(ChunkError::from_io(e)),
            }
            self.shared.lock().insert(dst);
            self.mark(dst, |c| {
                c.entry = true;
                c.linked = true;
            });
            Ok(Some(true))
        })?;
        match linked {
            Some(linked) => Ok(linked),
            None => crate::copy_chunk(self, src, dst, chunk_size),
        }
    }

    fn remove(&self, id: ChunkId) -> ChunkResult<()> {
        self.shared.lock().remove(&id);
        self.open.lock().remove(&id);
        self.removing(id.ino, || {
            let removed = Self::remove_if_present(&self.chunk_path(id))?;
            // A handle an opener cached meanwhile is of the unlinked file.
            self.replaced.fetch_add(1, Ordering::SeqCst);
            self.open.lock().remove(&id);
            if !removed {
                return Ok(());
            }
            self.note_removal(id.ino, Record::Remove(id))?;
            // The directory's entry list changed, so `sync` fsyncs it (and
            // skips the file itself, which is gone).
            self.mark(id, |c| {
                c.entry = true;
                c.cut_to(0);
                (c.lo, c.hi) = (0, 0);
            });
            Ok(())
        })
    }

    fn indexes(&self, ino: u64) -> ChunkResult<Vec<u64>> {
        let mut out = Vec::new();
        if self.first_beside {
            match fs::symlink_metadata(self.chunk_path(ChunkId { ino, index: 0 })) {
                Ok(_) => out.push(0),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(ChunkError::from_io(e)),
            }
        }
        let entries = match fs::read_dir(self.inode_dir(ino)) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(ChunkError::from_io(e)),
        };
        for entry in entries {
            let entry = entry.map_err(ChunkError::from_io)?;
            if let Some(index) = entry
                .file_name()
                .to_str()
                .and_then(|n| u64::from_str_radix(n, 16).ok())
            {
                out.push(index);
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    fn sync(&self, ino: u64) -> ChunkResult<()> {
        self.with_sync_lock(ino, || {
            let Some(dirty) = self.dirty.lock().remove(&ino) else {
                // Nothing left to write, but a removal may have been
                // recorded (`remove_from` forgets the chunks it deleted).
                return self.sync_records(ino);
            };
            let result = self.flush_any(ino, &dirty);
            if result.is_err() {
                // Not durable: the next sync must try again.
                self.dirty.lock().entry(ino).or_default().merge(dirty);
            }
            result
        })
    }

    fn sync_all(&self) -> ChunkResult<()> {
        let inodes: Vec<u64> = self.dirty.lock().keys().copied().collect();
        for ino in inodes {
            self.sync(ino)?;
        }
        // Removal records of inodes with nothing dirty (what GC removed).
        if let Some(d) = &self.deferred {
            d.journal
                .sync_upto(d.journal.last_seq())
                .map_err(ChunkError::from_io)?;
        }
        Ok(())
    }

    fn inodes(&self) -> ChunkResult<Vec<u64>> {
        let mut out = Vec::new();
        for shard in fs::read_dir(&self.root).map_err(ChunkError::from_io)? {
            let shard = shard.map_err(ChunkError::from_io)?;
            if !shard.file_type().map_err(ChunkError::from_io)?.is_dir() {
                continue;
            }
            for d in fs::read_dir(shard.path()).map_err(ChunkError::from_io)? {
                let d = d.map_err(ChunkError::from_io)?;
                // An inode directory, a first chunk beside it, or a copy of
                // that chunk a crash interrupted.
                if let Some(ino) = d.file_name().to_str().and_then(|n| {
                    let n = n.strip_suffix(COW_SUFFIX).unwrap_or(n);
                    let n = n.strip_suffix(FIRST_CHUNK_SUFFIX).unwrap_or(n);
                    u64::from_str_radix(n, 16).ok()
                }) {
                    out.push(ino);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        Ok(out)
    }

    fn space(&self) -> ChunkResult<SpaceStats> {
        let st = nix::sys::statvfs::statvfs(&self.root)
            .map_err(|e| ChunkError::from_io(io::Error::from(e)))?;
        let frag = st.fragment_size() as u64;
        Ok(SpaceStats {
            total_bytes: st.blocks() as u64 * frag,
            free_bytes: st.blocks_free() as u64 * frag,
            avail_bytes: st.blocks_available() as u64 * frag,
            total_files: st.files() as u64,
            free_files: st.files_free() as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, LocalChunkStore) {
        let dir = tempfile::tempdir().expect("tempdir");
        let s = LocalChunkStore::open(&dir.path().join("chunks")).expect("open");
        (dir, s)
    }

    #[test]
    fn unwritten_chunk_reads_empty_and_written_bytes_read_back() {
        let (_d, s) = store();
        let id = ChunkId { ino: 5, index: 2 };
        assert!(s.read(id, 0, 10).expect("read").is_empty());
        s.write(id, 3, b"hello").expect("write");
        assert_eq!(&s.read(id, 0, 16).expect("read")[..], b"\0\0\0hello");
        assert_eq!(&s.read(id, 4, 2).expect("read")[..], b"el");
        s.sync(5).expect("sync");
    }

    #[test]
    fn a_handle_opened_before_its_file_was_replaced_or_unlinked_is_not_cached() {
        let (_d, s) = store();
        let id = ChunkId { ino: 8, index: 0 };
        s.write(id, 0, b"old").expect("write");
        s.sync(8).expect("sync");
        // An opener reads `replaced`, opens the file...
        s.forget_inode(8, 0);
        let seen = s.replaced.load(Ordering::SeqCst);
        let old = Arc::new(File::open(s.chunk_path(id)).expect("open"));
        // ...the file is unlinked (or replaced) meanwhile...
        s.remove(id).expect("remove");
        // ...and the opener's handle stays out of the cache.
        s.remember_opened(id, old.clone(), seen);
        assert!(
            s.cached(id).is_none(),
            "a handle of the unlinked file was cached"
        );
        // A write after that creates a new file, which a read then sees.
        s.write(id, 0, b"new").expect("write");
        assert_eq!(&s.read(id, 0, 3).expect("read")[..], b"new");
        // With nothing replaced in between, the handle is cached.
        s.forget_inode(8, 0);
        let seen = s.replaced.load(Ordering::SeqCst);
        let f = Arc::new(File::open(s.chunk_path(id)).expect("open"));
        s.remember_opened(id, f, seen);
        assert!(s.cached(id).is_some());
    }

    #[test]
    fn read_cached_answers_only_what_is_in_memory() {
        let (_d, s) = store();
        let id = ChunkId { ino: 6, index: 0 };
        let cached = |offset, len| s.read_cached(id, offset, len).expect("never an error");
        assert_eq!(cached(0, 4), None, "no such chunk");
        s.write(id, 0, &[9u8; 8192]).expect("write");
        let got = cached(4096, 4096);
        if !s.reads_cached() {
            eprintln!("skipped: this kernel or file system has no reads that do not wait");
            return;
        }
        assert_eq!(&got.expect("in the page cache")[..], &[9u8; 4096][..]);
        assert_eq!(
            cached(4096, 8192),
            None,
            "past the end: the usual read fills the hole"
        );
        // Not through the open-file cache: the file opens from the dentry
        // cache whether or not a handle is cached.
        s.sync(6).expect("sync");
        s.forget_inode(6, 0);
        assert!(cached(0, 4096).is_some(), "opened from the dentry cache");
        // Out of the page cache: a read would wait for the disk.
        let f = File::open(s.chunk_path(id)).expect("open");
        rustix::fs::fadvise(&f, 0, None, rustix::fs::Advice::DontNeed).expect("fadvise");
        assert_eq!(cached(0, 4096), None, "evicted");
        assert!(
            s.reads_cached(),
            "a page not cached does not turn the reads off"
        );
        assert_eq!(&s.read(id, 0, 4096).expect("read")[..], &[9u8; 4096][..]);
    }

    #[test]
    fn filled_chunks_are_synced_in_the_background_a_few_at_a_time() {
        let (_d, s) = store();
        let data = vec![b'c'; 64 << 10];
        let ids: Vec<ChunkId> = (0..32).map(|index| ChunkId { ino: 9, index }).collect();
        for &id in &ids {
            s.write(id, 0, &data).expect("write");
        }
        for &id in &ids {
            s.filled(id);
            let running = s.head_starts.load(Ordering::Acquire);
            assert!(running <= HEAD_STARTS, "{running} background syncs at once");
        }
        // A chunk that does not exist starts nothing.
        s.filled(ChunkId { ino: 10, index: 0 });
        // Every background sync ends and gives its slot back.
        let mut waited = 0;
        while s.head_starts.load(Ordering::Acquire) > 0 {
            assert!(waited < 1000, "background syncs never finished");
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        // The chunks' own sync and reads are unaffected.
        s.sync(9).expect("sync");
        for &id in &ids {
            assert_eq!(&s.read(id, 0, 64 << 10).expect("read")[..], &data[..]);
        }
    }

    #[test]
    fn a_large_read_shows_only_its_own_bytes_even_in_a_reused_buffer() {
        let (_d, s) = store();
        let big = ChunkId { ino: 11, index: 0 };
        s.write(big, 0, &vec![b'a'; 200_000]).expect("write");
        let first = s.read(big, 0, 200_000).expect("read");
        assert!(first.len() == 200_000 && first.iter().all(|&b| b == b'a'));
        drop(first);
        // The next read of that size class gets the same buffer back: a
        // short chunk must not show the earlier read's bytes after its end.
        let small = ChunkId { ino: 12, index: 0 };
        s.write(small, 0, b"tiny").expect("write");
        assert_eq!(&s.read(small, 0, 150_000).expect("read")[..], b"tiny");
        assert_eq!(&s.read(big, 199_998, 150_000).expect("read")[..], b"aa");
    }

    #[test]
    fn truncate_and_remove_from_drop_data() {
        let (_d, s) = store();
        for index in 0..4 {
            s.write(ChunkId { ino: 9, index }, 0, b"abcdef")
                .expect("write");
        }
        s.truncate(ChunkId { ino: 9, index: 1 }, 2)
            .expect("truncate");
        assert_eq!(
            &s.read(ChunkId { ino: 9, index: 1 }, 0, 10).expect("read")[..],
            b"ab"
        );
        s.remove_from(9, 2).expect("remove");
        assert!(s
            .read(ChunkId { ino: 9, index: 3 }, 0, 10)
            .expect("read")
            .is_empty());
        assert_eq!(s.inodes().expect("inodes"), vec![9]);
        s.remove_from(9, 0).expect("remove all");
        assert!(s.inodes().expect("inodes").is_empty());
    }

    #[test]
    fn remove_deletes_one_chunk_and_sync_makes_it_durable() {
        let (_d, s) = store();
        for index in [7, 2, 40] {
            s.write(ChunkId { ino: 3, index }, 0, b"data")
                .expect("write");
        }
        s.sync(3).expect("sync");
        // Cache the open file, then remove: the read must not see it.
        assert_eq!(
            &s.read(ChunkId { ino: 3, index: 7 }, 0, 4).expect("read")[..],
            b"data"
        );
        s.remove(ChunkId { ino: 3, index: 7 }).expect("remove");
        assert!(s
            .dirty
            .lock()
            .get(&3)
            .is_some_and(|d| d.chunks.get(&7).is_some_and(|c| c.entry)));
        s.sync(3).expect("sync after remove");
        assert!(s.dirty.lock().get(&3).is_none());
        assert!(s
            .read(ChunkId { ino: 3, index: 7 }, 0, 4)
            .expect("read")
            .is_empty());
        assert_eq!(s.indexes(3).expect("indexes"), vec![2, 40]);
        // Absent chunk, absent inode: both fine, nothing to sync.
        s.remove(ChunkId { ino: 3, index: 7 })
            .expect("remove again");
        s.remove(ChunkId { ino: 99, index: 0 })
            .expect("remove absent");
        assert!(s.dirty.lock().get(&99).is_none());
    }

    #[test]
    fn indexes_are_sorted_and_ignore_foreign_names() {
        let (_d, s) = store();
        assert!(s.indexes(8).expect("no inode").is_empty());
        for index in [300, 1, 0x1_0000_0000] {
            s.write(ChunkId { ino: 8, index }, 0, b"x").expect("write");
        }
        fs::write(s.inode_dir(8).join("not-a-chunk"), b"").expect("foreign file");
        assert_eq!(s.indexes(8).expect("indexes"), vec![1, 300, 0x1_0000_0000]);
    }

    #[test]
    fn sync_tolerates_a_directory_removed_after_a_remove() {
        let (_d, s) = store();
        s.write(ChunkId { ino: 4, index: 0 }, 0, b"x")
            .expect("write");
        s.write(ChunkId { ino: 4, index: 1 }, 0, b"y")
            .expect("write");
        s.sync(4).expect("sync");
        s.remove(ChunkId { ino: 4, index: 0 }).expect("remove");
        // Another caller empties the inode and its directory goes away.
        fs::remove_file(s.chunk_path(ChunkId { ino: 4, index: 1 })).expect("rm");
        fs::remove_dir(s.inode_dir(4)).expect("rmdir");
        s.sync(4).expect("sync of a vanished directory");
    }

    #[test]
    fn a_sync_returns_only_after_a_concurrent_sync_that_took_its_writes_is_done() {
        use std::sync::mpsc;
        use std::time::Duration;
        let (_d, s) = store();
        let id = ChunkId { ino: 6, index: 0 };
        s.write(id, 0, b"old").expect("write");
        s.sync(6).expect("sync");
        // Play a first `sync` that has taken the dirty set (including the
        // second writer's chunk) and is still fsyncing.
        let lock = s.sync_locks.lock().entry(6).or_default().clone();
        let held = lock.lock();
        let (tx, rx) = mpsc::channel();
        std::thread::scope(|scope| {
            let s = &s;
            let tx = tx.clone();
            scope.spawn(move || {
                s.write(id, 0, b"new").expect("write");
                tx.send("written").expect("send");
                s.sync(6).expect("sync");
                tx.send("synced").expect("send");
            });
            assert_eq!(rx.recv().expect("recv"), "written");
            let taken = s
                .dirty
                .lock()
                .remove(&6)
                .expect("the writer's chunk is dirty");
            // The second sync finds nothing dirty, but must not report the
            // write durable while the first sync is still working on it.
            assert!(
                rx.recv_timeout(Duration::from_millis(200)).is_err(),
                "a sync returned while another sync still held its writes"
            );
            s.flush(6, &taken).expect("fsync");
            drop(held);
            assert_eq!(rx.recv().expect("recv"), "synced");
        });
        assert!(s.sync_locks.lock().get(&6).is_some(), "we still hold it");
        drop(lock);
        s.sync(6).expect("sync");
        assert!(
            s.sync_locks.lock().is_empty(),
            "unused sync locks are dropped"
        );
    }

    #[test]
    fn a_failed_sync_keeps_its_writes_dirty_for_the_next_one() {
        let (_d, s) = store();
        let id = ChunkId { ino: 7, index: 1 };
        s.write(id, 0, b"data").expect("write");
        // Make the chunk unopenable: uncached, and a directory in its place.
        s.open.lock().clear();
        let path = s.chunk_path(id);
        fs::rename(&path, path.with_extension("moved")).expect("move away");
        fs::create_dir(&path).expect("dir in the way");
        assert!(s.sync(7).is_err());
        {
            let dirty = s.dirty.lock();
            let d = dirty.get(&7).expect("still dirty");
            assert!(
                d.chunks.get(&1).is_some_and(|c| c.entry),
                "creation still pending"
            );
            assert!(d.dir_created);
        }
        fs::remove_dir(&path).expect("rmdir");
        fs::rename(path.with_extension("moved"), &path).expect("move back");
        s.sync(7).expect("the retry syncs");
        assert!(s.dirty.lock().get(&7).is_none());
    }

    #[test]
    fn new_shards_are_durable_at_once_and_new_inode_directories_at_sync() {
        let (_d, s) = store();
        assert!(!s.shards[3].load(Ordering::Acquire));
        s.write(ChunkId { ino: 3, index: 1 }, 0, b"x")
            .expect("write");
        assert!(s.shards[3].load(Ordering::Acquire), "shard 03 fsynced");
        assert!(s.dirty.lock().get(&3).is_some_and(|d| d.dir_created));
        s.sync(3).expect("sync");
        // Same shard, another inode: its own directory is new.
        s.write(ChunkId { ino: 259, index: 3 }, 0, b"y")
            .expect("write");
        assert!(s.dirty.lock().get(&259).is_some_and(|d| d.dir_created));
        // A new chunk in an existing directory: no directory creation.
        s.sync(259).expect("sync");
        s.write(ChunkId { ino: 259, index: 1 }, 0, b"z")
            .expect("write");
        let dirty = s.dirty.lock();
        let d = dirty.get(&259).expect("dirty");
        assert!(!d.dir_created);
        assert!(d.chunks.get(&1).is_some_and(|c| c.entry));
    }

    #[test]
    fn a_file_of_one_chunk_needs_no_directory_of_its_own() {
        let (_d, s) = store();
        let first = ChunkId {
            ino: 0x105,
            index: 0,
        };
        s.write(first, 0, b"small file").expect("write");
        let beside = s.shard_dir(0x105).join("0000000000000105.0");
        assert_eq!(fs::read(&beside).expect("first chunk file"), b"small file");
        assert!(!s.inode_dir(0x105).exists(), "no inode directory");
        {
            let dirty = s.dirty.lock();
            let d = dirty.get(&0x105).expect("dirty");
            assert!(!d.dir_created);
            assert!(
                d.chunks.get(&0).is_some_and(|c| c.entry),
                "shard entry to fsync"
            );
        }
        s.sync(0x105).expect("sync");
        // A second chunk brings the directory; both are the inode's.
        s.write(
            ChunkId {
                ino: 0x105,
                index: 2,
            },
            0,
            b"more",
        )
        .expect("write");
        assert!(s.inode_dir(0x105).is_dir());
        assert_eq!(s.indexes(0x105).expect("indexes"), vec![0, 2]);
        assert_eq!(s.inodes().expect("inodes"), vec![0x105]);
        s.remove_from(0x105, 1).expect("cut");
        assert_eq!(s.indexes(0x105).expect("indexes"), vec![0]);
        assert_eq!(&s.read(first, 0, 64).expect("read")[..], b"small file");
        s.remove_from(0x105, 0).expect("remove all");
        assert!(!beside.exists());
        assert!(s.inodes().expect("inodes").is_empty());
        assert!(s.indexes(0x105).expect("indexes").is_empty());
    }

    #[test]
    fn cutting_a_file_back_to_its_first_chunk_keeps_that_chunk_owed_to_the_next_sync() {
        let (_d, s) = store();
        let first = ChunkId {
            ino: 0x21,
            index: 0,
        };
        s.write(first, 0, b"head").expect("write");
        s.write(
            ChunkId {
                ino: 0x21,
                index: 1,
            },
            0,
            b"tail",
        )
        .expect("write");
        // Truncation into the first chunk: the directory goes, the first
        // chunk's unsynced write and new entry must not.
        s.remove_from(0x21, 1).expect("cut");
        assert!(!s.inode_dir(0x21).exists());
        {
            let dirty = s.dirty.lock();
            let d = dirty.get(&0x21).expect("first chunk still dirty");
            assert!(d.chunks.get(&0).is_some_and(|c| c.entry));
            assert!(!d.chunks.contains_key(&1) && !d.dir_created);
        }
        s.sync(0x21).expect("sync");
        assert!(s.dirty.lock().get(&0x21).is_none());
        assert_eq!(&s.read(first, 0, 16).expect("read")[..], b"head");
    }

    #[test]
    fn a_store_from_before_the_layout_file_keeps_its_layout() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("chunks");
        // A first chunk where older stores put it, inside the inode dir.
        let old = root.join("07").join("0000000000000007");
        fs::create_dir_all(&old).expect("mkdir");
        fs::write(old.join("0000000000000000"), b"old data").expect("chunk");
        let s = LocalChunkStore::open(&root).expect("open");
        assert!(!s.first_beside);
        assert!(!root.join(LAYOUT_FILE).exists(), "layout left as found");
        let id = ChunkId { ino: 7, index: 0 };
        assert_eq!(&s.read(id, 0, 64).expect("read")[..], b"old data");
        s.write(ChunkId { ino: 8, index: 0 }, 0, b"new")
            .expect("write");
        assert!(s.inode_dir(8).join("0000000000000000").is_file());
        assert_eq!(s.inodes().expect("inodes"), vec![7, 8]);
        // A new store records its layout, even on a file system root with
        // its lost+found; an unknown layout is refused.
        let mount = dir.path().join("mount");
        fs::create_dir_all(mount.join("lost+found")).expect("mkdir");
        assert!(LocalChunkStore::open(&mount).expect("open").first_beside);
        let fresh = dir.path().join("fresh");
        assert!(LocalChunkStore::open(&fresh).expect("open").first_beside);
        assert_eq!(
            fs::read(fresh.join(LAYOUT_FILE)).expect("layout"),
            LAYOUT_FIRST_CHUNK_BESIDE
        );
        fs::write(fresh.join(LAYOUT_FILE), b"from the future 9\n").expect("write");
        assert!(LocalChunkStore::open(&fresh).is_err());
    }

    #[test]
    fn a_removed_root_is_not_recreated_by_a_write() {
        let (_d, s) = store();
        fs::remove_dir_all(&s.root).expect("rm root");
        assert!(s.write(ChunkId { ino: 1, index: 0 }, 0, b"x").is_err());
        assert!(!s.root.exists());
    }

    #[test]
    fn a_shared_chunk_is_copied_before_either_side_changes() {
        let (_d, s) = store();
        let a = ChunkId { ino: 1, index: 0 };
        let b = ChunkId { ino: 2, index: 0 };
        let c = ChunkId { ino: 3, index: 0 };
        s.write(a, 0, b"original").expect("write");
        assert!(s.share(a, b, 64).expect("share"));
        assert!(s.share(a, c, 64).expect("share"));
        s.write(a, 0, b"CHANGED!").expect("write a");
        assert_eq!(&s.read(b, 0, 64).expect("read")[..], b"original");
        s.write(b, 4, b"XY").expect("write b");
        assert_eq!(&s.read(b, 0, 64).expect("read")[..], b"origXYal");
        assert_eq!(&s.read(c, 0, 64).expect("read")[..], b"original");
        assert_eq!(&s.read(a, 0, 64).expect("read")[..], b"CHANGED!");
        s.truncate(c, 2).expect("truncate");
        assert_eq!(&s.read(c, 0, 64).expect("read")[..], b"or");
        s.sync(1).expect("sync");
        s.sync(2).expect("sync");
        s.sync(3).expect("sync");
        let missing = ChunkId { ino: 1, index: 9 };
        assert!(!s
            .share(missing, ChunkId { ino: 4, index: 0 }, 64)
            .expect("share"));
        assert!(s.indexes(4).expect("indexes").is_empty());
    }

    /// The bytes a range would send now, by the copying way.
    fn range_bytes(r: &FileRange) -> Vec<u8> {
        let mut buf = vec![0u8; r.len()];
        let n = r.read_at(&mut buf, 0).expect("read range");
        buf.truncate(n);
        buf
    }

    #[test]
    fn a_range_being_sent_keeps_its_chunks_bytes_whatever_is_shared_after() {
        let (_d, s) = store();
        let src = ChunkId { ino: 1, index: 0 };
        let dst = ChunkId { ino: 2, index: 0 };
        s.write(src, 0, b"src bytes").expect("write");
        let out = s.read_range(src, 0, 9).expect("range").expect("unshared");
        // Sharing while the range is out copies: linking would leave the
        // file to `dst` at `src`'s next change, and `dst`'s changes after
        // that would reach the range.
        assert!(s.share(src, dst, 64).expect("share"));
        s.write(src, 0, b"SRC").expect("write src");
        s.write(dst, 0, b"DST").expect("write dst");
        // The range shows `src`'s chunk as it is now (a linked file would
        // have gone to `dst` at `src`'s write and show "DST bytes").
        assert_eq!(range_bytes(&out), b"SRC bytes");
        assert_eq!(&s.read(dst, 0, 64).expect("read")[..], b"DST bytes");
        drop(out);
        // With no range out, sharing links, and a shared chunk gives none.
        let other = ChunkId { ino: 3, index: 0 };
        assert!(s.share(src, other, 64).expect("share"));
        assert!(s.read_range(src, 0, 3).expect("range").is_none());
        assert!(s.read_range(other, 0, 3).expect("range").is_none());
        // Nor does a range past the chunk's end (a hole the caller fills).
        assert!(s.read_range(dst, 0, 10).expect("range").is_none());
        assert_eq!(
            range_bytes(&s.read_range(dst, 3, 6).expect("range").expect("own file")),
            b" bytes"
        );
    }

    #[test]
    fn sharing_survives_a_reopen_and_a_leftover_copy_is_removed_with_its_inode() {
        let (d, s) = store();
        let a = ChunkId { ino: 1, index: 0 };
        let b = ChunkId { ino: 2, index: 0 };
        s.write(a, 0, b"shared").expect("write");
        assert!(s.share(a, b, 64).expect("share"));
        s.sync_all().expect("sync");
        drop(s);
        let s = LocalChunkStore::open(&d.path().join("chunks")).expect("reopen");
        s.write(b, 0, b"S").expect("write");
        assert_eq!(&s.read(a, 0, 64).expect("read")[..], b"shared");
        assert_eq!(&s.read(b, 0, 64).expect("read")[..], b"Shared");
        std::fs::write(s.cow_path(a), b"torn").expect("leftover");
        assert_eq!(s.indexes(1).expect("indexes"), vec![0]);
        assert_eq!(s.inodes().expect("inodes"), vec![1, 2]);
        s.remove_from(1, 0).expect("remove");
        assert!(!s.cow_path(a).exists() && !s.chunk_path(a).exists());
        assert_eq!(s.inodes().expect("inodes"), vec![2]);
    }

    #[test]
    fn space_reports_a_real_device() {
        let (_d, s) = store();
        let sp = s.space().expect("space");
        assert!(sp.total_bytes > 0 && sp.free_bytes <= sp.total_bytes);
    }

    /// A store with a journal of `bytes`, and its root.
    fn journaled(bytes: u64) -> (tempfile::TempDir, LocalChunkStore, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("chunks");
        let s = LocalChunkStore::open_journaled(&root, bytes).expect("open");
        (dir, s, root)
    }

    fn read_all(s: &LocalChunkStore, id: ChunkId) -> Vec<u8> {
        s.read(id, 0, 1 << 21).expect("read").to_vec()
    }

    /// Puts `data` in `id`'s file behind the store's back: what a power
    /// loss could leave on the disk where the page cache held newer bytes.
    fn on_disk(s: &LocalChunkStore, id: ChunkId, data: Option<&[u8]>) {
        let path = s.chunk_path(id);
        match data {
            Some(d) => fs::write(&path, d).expect("write behind"),
            None => fs::remove_file(&path).expect("remove behind"),
        }
    }

    #[test]
    fn a_small_sync_is_replayed_onto_chunk_files_the_disk_lost() {
        let (_d, s, root) = journaled(1 << 20);
        let (first, second) = (ChunkId { ino: 5, index: 0 }, ChunkId { ino: 5, index: 1 });
        let unsynced = ChunkId { ino: 6, index: 0 };
        s.write(first, 0, b"hello").expect("write");
        s.write(second, 10, b"world").expect("write");
        s.sync(5).expect("sync");
        s.write(unsynced, 0, b"never synced").expect("write");
        for id in [first, second, unsynced] {
            on_disk(&s, id, None);
        }
        drop(s);
        let s = LocalChunkStore::open(&root).expect("reopen");
        assert_eq!(read_all(&s, first), b"hello");
        assert_eq!(read_all(&s, second), b"\0\0\0\0\0\0\0\0\0\0world");
        assert!(read_all(&s, unsynced).is_empty(), "nothing synced it");
        assert!(s.deferred.is_some(), "the journal is kept");
    }

    #[test]
    fn replay_does_not_bring_back_removed_chunks_or_cut_bytes() {
        let (_d, s, root) = journaled(1 << 20);
        let removed = ChunkId { ino: 7, index: 0 };
        let cut = ChunkId { ino: 8, index: 0 };
        s.write(removed, 0, &[b'a'; 16384]).expect("write");
        s.write(cut, 0, &[b'b'; 16384]).expect("write");
        s.sync(7).expect("sync");
        s.sync(8).expect("sync");
        // Deleted, and cut to nothing then extended to 8 KiB of zeros.
        s.remove_from(7, 0).expect("remove_from");
        s.truncate(cut, 0).expect("cut");
        s.truncate(cut, 8192).expect("extend");
        s.sync(8).expect("sync");
        // The disk kept the old bytes of both.
        fs::write(s.chunk_path(removed), [b'a'; 16384]).expect("write behind");
        on_disk(&s, cut, Some(&[b'b'; 16384]));
        drop(s);
        let s = LocalChunkStore::open(&root).expect("reopen");
        assert!(
            s.indexes(7).expect("indexes").is_empty(),
            "removed stays removed"
        );
        assert_eq!(read_all(&s, cut), vec![0u8; 8192], "a cut is replayed");
    }

    #[test]
    fn a_large_sync_after_a_small_one_is_not_undone_by_replay() {
        let (_d, s, root) = journaled(1 << 20);
        let id = ChunkId { ino: 9, index: 0 };
        s.write(id, 0, &[b'a'; 100]).expect("write");
        s.sync(9).expect("small sync");
        s.write(id, 0, &vec![b'c'; 1 << 20]).expect("write");
        s.sync(9).expect("large sync");
        drop(s);
        let s = LocalChunkStore::open(&root).expect("reopen");
        let back = read_all(&s, id);
        assert_eq!(back.len(), 1 << 20);
        assert!(
            back.iter().all(|&b| b == b'c'),
            "an older record was replayed over newer bytes"
        );
    }

    #[test]
    fn a_full_journal_checkpoints_and_loses_no_sync() {
        let (_d, s, root) = journaled(4096 + 64 * 1024);
        for ino in 100..140u64 {
            s.write(ChunkId { ino, index: 0 }, 0, &[ino as u8; 5000])
                .expect("write");
            s.sync(ino).expect("sync");
        }
        let d = s.deferred.as_ref().expect("journal");
        assert!(d.journal.used() <= d.journal.area());
        assert!(d.journal.start_seq() > 2, "a checkpoint made room");
        drop(s);
        let s = LocalChunkStore::open(&root).expect("reopen");
        for ino in 100..140u64 {
            assert_eq!(
                read_all(&s, ChunkId { ino, index: 0 }),
                vec![ino as u8; 5000]
            );
        }
    }

    #[test]
    fn replaying_a_write_to_a_shared_chunk_leaves_the_other_name_alone() {
        let (_d, s, root) = journaled(1 << 20);
        let src = ChunkId { ino: 10, index: 0 };
        let dst = ChunkId { ino: 11, index: 0 };
        s.write(src, 0, &[b'a'; 100]).expect("write");
        s.sync(10).expect("sync");
        // `dst` held other bytes, journaled, before it became the copy.
        s.write(dst, 0, &[b'z'; 50]).expect("write");
        s.sync(11).expect("sync");
        assert!(s.share(src, dst, 1 << 20).expect("share"));
        s.sync(11).expect("sync share");
        s.write(src, 0, &[b'b'; 100]).expect("write after share");
        s.sync(10).expect("sync");
        // The disk lost the private copy's rename: `src` is still a link.
        fs::remove_file(s.chunk_path(src)).expect("remove");
        fs::hard_link(s.chunk_path(dst), s.chunk_path(src)).expect("link");
        drop(s);
        let s = LocalChunkStore::open(&root).expect("reopen");
        assert_eq!(read_all(&s, src), vec![b'b'; 100]);
        assert_eq!(
            read_all(&s, dst),
            vec![b'a'; 100],
            "the snapshot's name changed"
        );
    }

    fn journal_of(s: &LocalChunkStore) -> &Journal {
        &s.deferred.as_ref().expect("journal").journal
    }

    /// A journaled store where inode 7 got a record (written and synced)
    /// and was then removed, with no sync since (what GC does); and the
    /// sequence number after the removal's record.
    fn removed_after_a_record() -> (tempfile::TempDir, LocalChunkStore, u64) {
        let (d, s, _root) = journaled(1 << 20);
        s.write(ChunkId { ino: 7, index: 0 }, 0, &[b'a'; 100])
            .expect("write");
        s.sync(7).expect("sync");
        s.remove_from(7, 0).expect("remove_from");
        let appended = journal_of(&s).cut().seq();
        (d, s, appended)
    }

    #[test]
    fn a_sync_after_remove_from_makes_the_removal_record_durable() {
        let (_d, s, appended) = removed_after_a_record();
        let j = journal_of(&s);
        assert!(
            j.durable_below() < appended,
            "the removal is not synced yet"
        );
        // Nothing of inode 7 is dirty any more, but its removal record
        // must be durable before the caller commits the new size.
        s.sync(7).expect("sync after the removal");
        assert!(
            j.durable_below() >= appended,
            "the removal record was left unsynced"
        );
    }

    #[test]
    fn removals_wait_for_a_sync_of_their_inode_in_progress() {
        let (_d, s, _root) = journaled(1 << 20);
        let id = ChunkId { ino: 8, index: 0 };
        s.write(id, 0, b"x").expect("write");
        s.sync(8).expect("sync");
        // Stand in for a sync of inode 8 between reading its chunk and
        // appending the record.
        let lock = s.sync_locks.lock().entry(8).or_default().clone();
        let held = lock.lock();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                s.remove_from(8, 0).expect("remove_from");
                tx.send("removed").expect("send");
            });
            assert!(
                rx.recv_timeout(std::time::Duration::from_millis(200))
                    .is_err(),
                "remove_from ran while a sync of its inode was in progress"
            );
            drop(held);
            assert_eq!(rx.recv().expect("recv"), "removed");
        });
        assert!(s.indexes(8).expect("indexes").is_empty());
    }

    /// Breaks the journal as a failed fdatasync would.
    fn break_journal(s: &LocalChunkStore) {
        journal_of(s).broke(io::Error::other("injected"));
    }

    #[test]
    fn a_broken_journal_still_answers_syncs_it_had_made_durable() {
        let (_d, s, _root) = journaled(1 << 20);
        s.write(ChunkId { ino: 5, index: 0 }, 0, b"x")
            .expect("write");
        s.sync(5).expect("sync");
        break_journal(&s);
        s.sync(5).expect("nothing of inode 5 waits for the disk");
        s.write(ChunkId { ino: 6, index: 0 }, 0, b"y")
            .expect("write");
        assert!(s.sync(6).is_err(), "a new sync cannot be made durable");
    }

    #[test]
    fn a_broken_journal_refuses_a_removal_before_deleting_anything() {
        let (_d, s, _root) = journaled(1 << 20);
        let id = ChunkId { ino: 5, index: 0 };
        s.write(id, 0, b"x").expect("write");
        s.sync(5).expect("sync");
        break_journal(&s);
        assert!(s.remove_from(5, 0).is_err());
        assert!(s.remove(id).is_err());
        assert_eq!(
            s.indexes(5).expect("indexes"),
            vec![0],
            "deleted, then refused"
        );
    }

    #[test]
    fn sync_all_makes_removal_records_durable() {
        let (_d, s, appended) = removed_after_a_record();
        s.sync_all().expect("sync_all");
        assert!(
            journal_of(&s).durable_below() >= appended,
            "sync_all left a removal record unsynced"
        );
    }

    #[test]
    fn a_sync_of_only_a_new_directory_still_syncs_removal_records() {
        let (_d, s, appended) = removed_after_a_record();
        // Sharing from a missing source creates inode 7's directory and
        // nothing else.
        let missing = ChunkId { ino: 1, index: 9 };
        assert!(!s
            .share(missing, ChunkId { ino: 7, index: 3 }, 64)
            .expect("share"));
        s.sync(7).expect("sync");
        assert!(
            journal_of(&s).durable_below() >= appended,
            "the removal record was left unsynced"
        );
    }
}
