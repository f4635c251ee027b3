//! File data: READ, WRITE, COMMIT, truncation, and FSSTAT.
//!
//! Bytes go to the chunk store first; the size and times that make them
//! visible are committed to metadata after. A stable write syncs its
//! chunks, then commits metadata durably, before returning.

use crate::perm::{self, R, W};
use crate::record::{self, InodeRecord};
use crate::types::{Attr, FileType, FsStat, ReadResult, Wcc, FILE_SIZE_MAX, S_ISGID, S_ISUID};
use crate::{FileSystem, FsError, FsResult};
use bytes::{Bytes, BytesMut};
use nitrofs_chunk_store::ChunkId;
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::transact;

/// atime is refreshed on read when older than mtime or than this (relatime).
const RELATIME_SECS: i64 = 24 * 3600;

fn data_file(rec: &InodeRecord) -> FsResult<()> {
    match rec.kind {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(FsError::IsDir),
        _ => Err(FsError::Invalid("not a regular file")),
    }
}

/// Splits `[offset, offset+len)` into per-chunk pieces:
/// (chunk index, offset in chunk, length).
fn pieces(chunk_size: u64, offset: u64, len: u64) -> impl Iterator<Item = (u64, u64, u64)> {
    let end = offset + len;
    let mut pos = offset;
    std::iter::from_fn(move || {
        if pos >= end {
            return None;
        }
        let index = pos / chunk_size;
        let within = pos % chunk_size;
        let n = (chunk_size - within).min(end - pos);
        pos += n;
        Some((index, within, n))
    })
}

impl FileSystem {
    /// Reads up to `count` bytes at `offset`. Holes read as zeros.
    pub fn read(
        &self,
        cred: &Credentials,
        ino: InodeId,
        offset: u64,
        count: u32,
    ) -> FsResult<ReadResult> {
        let rec = self.read_inode(ino)?;
        data_file(&rec)?;
        perm::check_data(&rec, cred, R)?;
        let attr = self.touch_atime(&rec)?;
        if offset >= rec.size {
            return Ok(ReadResult {
                attr,
                data: Bytes::new(),
                eof: true,
            });
        }
        let end = rec.size.min(offset.saturating_add(u64::from(count)));
        let len = end - offset;
        let cs = u64::from(rec.chunk_size);
        let mut parts: Vec<Bytes> = Vec::with_capacity(2);
        for (index, within, n) in pieces(cs, offset, len) {
            let got = self
                .chunks
                .read(ChunkId { ino, index }, within, n as usize)?;
            if got.len() as u64 == n {
                parts.push(got);
            } else {
                // Short chunk: the rest of this range is a hole.
                let mut b = BytesMut::zeroed(n as usize);
                b[..got.len()].copy_from_slice(&got);
                parts.push(b.freeze());
            }
        }
        let data = if parts.len() == 1 {
            parts.pop().unwrap_or_default()
        } else {
            let mut b = BytesMut::with_capacity(len as usize);
            for p in parts {
                b.extend_from_slice(&p);
            }
            b.freeze()
        };
        Ok(ReadResult {
            attr,
            data,
            eof: end >= rec.size,
        })
    }

    /// Refreshes atime with relatime rules; returns the attributes.
    fn touch_atime(&self, rec: &InodeRecord) -> FsResult<Attr> {
        let now = Timestamp::now();
        if rec.atime > rec.mtime && now.secs - rec.atime.secs < RELATIME_SECS {
            return Ok(rec.attr());
        }
        let ino = rec.ino;
        let _guard = self.lock_inode(ino);
        transact(self.kv.as_ref(), false, |txn| -> FsResult<Attr> {
            let mut r = record::load_inode(txn, ino)?;
            r.atime = now;
            record::put_inode(txn, &r)?;
            Ok(r.attr())
        })
    }

    /// Writes `data` at `offset`. With `stable`, data and metadata are on
    /// stable storage when this returns; otherwise they survive a process
    /// crash but need [`FileSystem::commit`] to survive power loss.
    pub fn write(
        &self,
        cred: &Credentials,
        ino: InodeId,
        offset: u64,
        data: &[u8],
        stable: bool,
    ) -> FsResult<Wcc> {
        let rec = self.read_inode(ino)?;
        data_file(&rec)?;
        perm::check_data(&rec, cred, W)?;
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|e| *e <= FILE_SIZE_MAX)
            .ok_or(FsError::TooBig)?;
        if data.is_empty() {
            // POSIX: a zero-length write has no other results.
            let attr = rec.attr();
            return Ok(Wcc {
                before: (&attr).into(),
                after: attr,
            });
        }
        let cs = u64::from(rec.chunk_size);
        let mut done = 0usize;
        for (index, within, n) in pieces(cs, offset, data.len() as u64) {
            let n = n as usize;
            self.chunks
                .write(ChunkId { ino, index }, within, &data[done..done + n])?;
            done += n;
        }
        if stable {
            self.chunks.sync(ino)?;
        }
        let now = Timestamp::now();
        let _guard = self.lock_inode(ino);
        transact(self.kv.as_ref(), stable, |txn| -> FsResult<Wcc> {
            let mut r = record::load_inode(txn, ino)?;
            let before = (&r.attr()).into();
            r.size = r.size.max(end);
            r.mtime = now;
            r.ctime = now;
            if !cred.is_root() {
                r.mode &= !(S_ISUID | S_ISGID);
            }
            record::put_inode(txn, &r)?;
            Ok(Wcc {
                before,
                after: r.attr(),
            })
        })
    }

    /// Makes every earlier write to `ino` durable.
    pub fn commit(&self, ino: InodeId) -> FsResult<Wcc> {
        let rec = self.read_inode(ino)?;
        self.chunks.sync(ino)?;
        self.kv.sync()?;
        let attr = rec.attr();
        Ok(Wcc {
            before: (&attr).into(),
            after: attr,
        })
    }

    /// Cuts the chunk data of `rec` to `size` bytes and syncs it.
    pub(crate) fn truncate_chunks(&self, rec: &InodeRecord, size: u64) -> FsResult<()> {
        let cs = u64::from(rec.chunk_size);
        if size == 0 {
            self.chunks.remove_from(rec.ino, 0)?;
        } else {
            let last = (size - 1) / cs;
            self.chunks.truncate(
                ChunkId {
                    ino: rec.ino,
                    index: last,
                },
                size - last * cs,
            )?;
            self.chunks.remove_from(rec.ino, last + 1)?;
        }
        self.chunks.sync(rec.ino)?;
        Ok(())
    }

    /// Capacity of the device behind the volume of `ino`.
    pub fn fsstat(&self, ino: InodeId) -> FsResult<(Attr, FsStat)> {
        let attr = self.getattr(ino)?;
        let sp = self.chunks.space()?;
        Ok((
            attr,
            FsStat {
                total_bytes: sp.total_bytes,
                free_bytes: sp.free_bytes,
                avail_bytes: sp.avail_bytes,
                total_files: sp.total_files,
                free_files: sp.free_files,
                avail_files: sp.free_files,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::pieces;

    #[test]
    fn pieces_split_at_chunk_boundaries() {
        let p: Vec<_> = pieces(10, 5, 20).collect();
        assert_eq!(p, vec![(0, 5, 5), (1, 0, 10), (2, 0, 5)]);
        assert_eq!(pieces(10, 0, 0).count(), 0);
        assert_eq!(pieces(10, 30, 10).collect::<Vec<_>>(), vec![(3, 0, 10)]);
    }
}
