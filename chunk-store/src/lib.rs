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
use std::sync::Arc;

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

/// Bytes of a chunk as a range of its open file.
#[derive(Clone, Debug)]
pub struct FileRange {
    pub file: Arc<File>,
    pub offset: u64,
    pub len: usize,
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

    /// Writes `data` at `offset` within the chunk, creating it if needed.
    /// Not durable until [`ChunkStore::sync`].
    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()>;

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
        if !self.indexes(src.ino)?.contains(&src.index) {
            return Ok(false);
        }
        let data = self.read(src, 0, chunk_size)?;
        self.write(dst, 0, &data)?;
        Ok(true)
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
