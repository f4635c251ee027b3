//! Chunk storage: the bytes of files, split into fixed-size chunks.
//!
//! This crate owns the [`ChunkStore`] trait that core-fs writes file data
//! through and the local-disk engine ([`LocalChunkStore`]). A chunk is
//! addressed by `(inode, index)`; a chunk that was never written reads as
//! empty (a hole), and bytes past a chunk's stored length read as zeros to
//! the caller. It knows nothing of names, permissions or metadata: the
//! caller decides which chunks exist.

mod journal;
mod local;

pub use local::{LocalChunkStore, DEFAULT_JOURNAL_BYTES};

use bytes::Bytes;
use std::fs::File;
use std::os::fd::AsFd;
use std::sync::Arc;
use std::time::Duration;

/// The address of one chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ChunkId {
    /// The inode the chunk belongs to.
    pub ino: u64,
    /// The chunk's position in the file (offset / chunk size).
    pub index: u64,
}

/// Errors of a chunk engine.
#[derive(Debug, thiserror::Error)]
pub enum ChunkError {
    /// The underlying disk or file system failed.
    #[error("chunk I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The device is full.
    #[error("no space left for chunk data")]
    NoSpace,
}

impl ChunkError {
    /// Classifies an I/O error, recognising ENOSPC.
    pub fn from_io(e: std::io::Error) -> Self {
        if e.raw_os_error() == Some(28) {
            ChunkError::NoSpace
        } else {
            ChunkError::Io(e)
        }
    }
}

/// Result of a chunk operation.
pub type ChunkResult<T> = Result<T, ChunkError>;

/// Capacity of the device holding the chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceStats {
    /// Total bytes of the device.
    pub total_bytes: u64,
    /// Bytes free for any user.
    pub free_bytes: u64,
    /// Bytes available to an unprivileged user.
    pub avail_bytes: u64,
    /// Total inodes the device can hold.
    pub total_files: u64,
    /// Free inodes on the device.
    pub free_files: u64,
}

/// Bytes of a chunk as a range of its open file, for sending to a socket
/// straight from the page cache. The store hands out ranges only of files
/// no other chunk shares, and does not share a file while a range of it
/// is out, so the bytes stay the chunk's own.
#[derive(Clone, Debug)]
pub struct FileRange {
    file: Arc<File>,
    offset: u64,
    len: usize,
}

impl FileRange {
    pub(crate) fn new(file: Arc<File>, offset: u64, len: usize) -> Self {
        Self { file, offset, len }
    }

    /// Bytes in the range.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// One `sendfile(2)` of the range's bytes from `done` on to `out`:
    /// how many went, 0 if the file now ends before them.
    fn send_to(&self, out: &impl AsFd, done: usize) -> std::io::Result<usize> {
        let left = self.len.saturating_sub(done);
        let mut at = i64::try_from(self.offset + done as u64).map_err(std::io::Error::other)?;
        nix::sys::sendfile::sendfile(out, &*self.file, Some(&mut at), left)
            .map_err(std::io::Error::from)
    }

    /// Sends the range's bytes from `done` on to `out` with `sendfile(2)`,
    /// waiting (`poll(2)`, at most `stall` each time) while a non-blocking
    /// socket is full. Returns how far it got, short of [`FileRange::len`]
    /// when the file now ends before (cut since the range was taken), and
    /// the error that stopped it, if any (`TimedOut` for a socket that
    /// stayed full). Blocks: the disk may have to be read.
    pub fn send_all(
        &self,
        out: &impl AsFd,
        mut done: usize,
        stall: Duration,
    ) -> (usize, std::io::Result<()>) {
        use nix::poll::{PollFd, PollFlags, PollTimeout};
        use std::io::ErrorKind;
        let wait = PollTimeout::try_from(stall).unwrap_or(PollTimeout::MAX);
        while done < self.len {
            match self.send_to(out, done) {
                Ok(0) => break,
                Ok(n) => done += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let mut fds = [PollFd::new(out.as_fd(), PollFlags::POLLOUT)];
                    match nix::poll::poll(&mut fds, wait) {
                        Ok(0) => return (done, Err(ErrorKind::TimedOut.into())),
                        Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                        Err(e) => return (done, Err(e.into())),
                    }
                }
                Err(e) => return (done, Err(e)),
            }
        }
        (done, Ok(()))
    }

    /// Reads the range's bytes from `done` into `buf` (the copying way, for
    /// when [`FileRange::send_to`] cannot be used); 0 at the file's end.
    pub fn read_at(&self, buf: &mut [u8], done: usize) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = buf.len().min(self.len.saturating_sub(done));
        self.file.read_at(&mut buf[..n], self.offset + done as u64)
    }
}

/// Where file bytes live. Implementations must be safe to call from many
/// threads at once; calls block on I/O.
pub trait ChunkStore: Send + Sync {
    /// Reads up to `len` bytes at `offset` within the chunk. Returns fewer
    /// bytes (possibly none) where the chunk's stored data ends; the caller
    /// fills the rest of the file's range with zeros.
    fn read(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<Bytes>;

    /// The `len` bytes at `offset` within the chunk as a range of an open
    /// file, for a caller that sends them to a socket straight from the
    /// page cache (`sendfile`) instead of copying them into memory first.
    /// `None` when the store keeps the chunk elsewhere or the file holds
    /// fewer than `len` bytes there (the caller then uses [`ChunkStore::read`]).
    /// The range shows the chunk as it is when the bytes are sent, like a
    /// read made then.
    fn read_range(
        &self,
        _id: ChunkId,
        _offset: u64,
        _len: usize,
    ) -> ChunkResult<Option<FileRange>> {
        Ok(None)
    }

    /// [`ChunkStore::read`] if it can be done without waiting for the
    /// disk: the chunk's file is found from memory and the `len` bytes at
    /// `offset` are all in memory. `None` otherwise (the chunk may still
    /// exist; errors are `None` too), and the caller reads the usual way
    /// where it may wait. The default: always `None`.
    fn read_cached(&self, _id: ChunkId, _offset: u64, _len: usize) -> ChunkResult<Option<Bytes>> {
        Ok(None)
    }

    /// Whether [`ChunkStore::read_cached`] can answer at all here (the
    /// kernel and file system allow reads that do not wait); a caller
    /// need not try it when not.
    fn reads_cached(&self) -> bool {
        false
    }

    /// Writes `data` at `offset` within the chunk, creating it if needed.
    /// Not durable until [`ChunkStore::sync`].
    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()>;

    /// The writer filled chunk `id` to its end: the store may start making
    /// it durable now, in the background, so that a file written in full
    /// reaches the disk while the rest of it arrives instead of all at its
    /// [`ChunkStore::sync`]. Only a head start: `sync` still makes the
    /// chunk durable, and a store may ignore this.
    fn filled(&self, _id: ChunkId) {}

    /// Cuts a chunk's stored data to `len` bytes (no-op if absent).
    fn truncate(&self, id: ChunkId, len: u64) -> ChunkResult<()>;

    /// Deletes every chunk of `ino` with index >= `from_index`.
    fn remove_from(&self, ino: u64, from_index: u64) -> ChunkResult<()>;

    /// Deletes one chunk (`Ok` if it does not exist). The deletion is made
    /// durable by the next [`ChunkStore::sync`] of `id.ino`.
    fn remove(&self, id: ChunkId) -> ChunkResult<()>;

    /// Makes `dst` hold what `src` holds now, replacing it; returns false
    /// (and leaves `dst` absent) when `src` does not exist. Engines that
    /// can share storage (the local one: a hard link, copied on the next
    /// change of either side) do so; the default copies up to
    /// `chunk_size` bytes. Durable after [`ChunkStore::sync`] of `dst.ino`
    /// (and of `src.ino` for writes to `src` not yet synced).
    fn share(&self, src: ChunkId, dst: ChunkId, chunk_size: usize) -> ChunkResult<bool> {
        self.remove(dst)?;
        copy_chunk(self, src, dst, chunk_size)
    }

    /// Every chunk index stored for `ino`, sorted (empty if it has none).
    fn indexes(&self, ino: u64) -> ChunkResult<Vec<u64>>;

    /// Makes every write to `ino`'s chunks so far durable.
    fn sync(&self, ino: u64) -> ChunkResult<()>;

    /// Makes every write to every chunk so far durable.
    fn sync_all(&self) -> ChunkResult<()>;

    /// Every inode that has chunk data (for orphan collection).
    fn inodes(&self) -> ChunkResult<Vec<u64>>;

    /// Space on the device that holds the chunks.
    fn space(&self) -> ChunkResult<SpaceStats>;
}

/// [`ChunkStore::share`] by copying: writes up to `chunk_size` bytes of
/// `src` into `dst` (already removed); false when `src` does not exist.
pub(crate) fn copy_chunk<S: ChunkStore + ?Sized>(
    store: &S,
    src: ChunkId,
    dst: ChunkId,
    chunk_size: usize,
) -> ChunkResult<bool> {
    if !store.indexes(src.ino)?.contains(&src.index) {
        return Ok(false);
    }
    let data = store.read(src, 0, chunk_size)?;
    store.write(dst, 0, &data)?;
    Ok(true)
}
