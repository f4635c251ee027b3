//! File data: READ, WRITE, COMMIT, truncation, and FSSTAT.
//!
//! Bytes go to the chunk store first; the size and times that make them
//! visible are committed to metadata after. A stable write syncs its
//! chunks, then commits metadata durably, before returning.

use crate::perm::{self, R, W};
use crate::quota::charge::Reservation;
use crate::record::{self, InodeRecord};
use crate::types::{
    Attr, FileType, FsStat, RangesResult, ReadPiece, ReadResult, Wcc, FILE_SIZE_MAX, S_ISGID,
    S_ISUID,
};
use crate::{FileSystem, FsError, FsResult};
use bytes::{Bytes, BytesMut};
use nitrofs_chunk_store::ChunkId;
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::{keys, Txn};
use std::sync::Arc;

/// atime is refreshed on read when older than mtime or than this (relatime).
const RELATIME_SECS: i64 = 24 * 3600;

/// Tries of a move of inline bytes to chunks that truncations race.
const MOVE_ATTEMPTS: usize = 8;

pub(crate) fn data_file(rec: &InodeRecord) -> FsResult<()> {
    match rec.kind {
        FileType::Regular => Ok(()),
        FileType::Directory => Err(FsError::IsDir),
        _ => Err(FsError::Invalid("not a regular file")),
    }
}

/// Splits `[offset, offset+len)` into per-chunk pieces:
/// (chunk index, offset in chunk, length).
pub(crate) fn pieces(
    chunk_size: u64,
    offset: u64,
    len: u64,
) -> impl Iterator<Item = (u64, u64, u64)> {
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

/// A run of file bytes in one data inode: (data inode, its chunk size,
/// offset in the data inode, length).
type Extent = (u64, u64, u64, u64);

/// Maps the file range `[offset, offset+len)` onto data inodes.
pub(crate) fn extents(rec: &InodeRecord, offset: u64, len: u64) -> Vec<Extent> {
    if rec.segments.is_empty() {
        return vec![(rec.ino, u64::from(rec.chunk_size), offset, len)];
    }
    let mut out = Vec::new();
    let end = offset + len;
    let mut seg_start = 0u64;
    let last = rec.segments.len() - 1;
    for (i, seg) in rec.segments.iter().enumerate() {
        // The last segment is open-ended: it takes everything after the others.
        let seg_end = if i == last {
            u64::MAX
        } else {
            seg_start + seg.len
        };
        let lo = offset.max(seg_start);
        let hi = end.min(seg_end);
        if lo < hi {
            out.push((seg.ino, u64::from(seg.chunk_size), lo - seg_start, hi - lo));
        }
        if seg_end >= end {
            break;
        }
        seg_start = seg_end;
    }
    out
}

/// The bytes of `pieces` (read without file ranges) as one buffer: the
/// piece itself when there is one, else a copy of them all.
pub(crate) fn joined(pieces: Vec<ReadPiece>) -> Bytes {
    let len = pieces.iter().map(ReadPiece::len).sum();
    let mut pieces = pieces.into_iter();
    match (pieces.next(), pieces.len()) {
        (None, _) => Bytes::new(),
        (Some(ReadPiece::Bytes(b)), 0) => b,
        (first, _) => {
            let mut b = BytesMut::with_capacity(len);
            for p in first.into_iter().chain(pieces) {
                if let ReadPiece::Bytes(p) = p {
                    b.extend_from_slice(&p);
                }
            }
            b.freeze()
        }
    }
}

/// `[offset, offset+len)` of `bytes`, with zeros past their end (as holes
/// read): an inline file's range, or a chunk read that came back short.
pub(crate) fn padded_range(bytes: &Bytes, offset: u64, len: u64) -> Bytes {
    let len = usize::try_from(len).unwrap_or(usize::MAX);
    let lo = usize::try_from(offset)
        .unwrap_or(usize::MAX)
        .min(bytes.len());
    let hi = lo.saturating_add(len).min(bytes.len());
    if hi - lo == len {
        return bytes.slice(lo..hi);
    }
    let mut out = BytesMut::zeroed(len);
    out[..hi - lo].copy_from_slice(&bytes[lo..hi]);
    out.freeze()
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
        let r = self.read_pieces(cred, ino, offset, count, false)?;
        Ok(ReadResult {
            attr: r.attr,
            data: joined(r.pieces),
            eof: r.eof,
        })
    }

    /// Reads like [`FileSystem::read`], leaving the bytes the chunk store
    /// can show as ranges of its files there ([`ReadPiece::File`]), for a
    /// caller that sends them to a socket without copying them (NFS READ
    /// uses `sendfile`). The ranges are read when they are sent.
    pub fn read_ranges(
        &self,
        cred: &Credentials,
        ino: InodeId,
        offset: u64,
        count: u32,
    ) -> FsResult<RangesResult> {
        // Ranges are sent where sending may wait: never inside `memory_only`.
        nitrofs_metadata::may_wait()?;
        self.read_pieces(cred, ino, offset, count, true)
    }

    /// `len` bytes of chunk `id` at `offset`; inside `memory_only`, only
    /// if the chunk store has them in memory (otherwise a miss, and the
    /// call runs again where it may wait).
    fn read_chunk(&self, id: ChunkId, offset: u64, len: usize) -> FsResult<Bytes> {
        if !nitrofs_metadata::reads_from_memory_only() {
            return Ok(self.chunks.read(id, offset, len)?);
        }
        if let Some(data) = self.chunks.read_cached(id, offset, len)? {
            return Ok(data);
        }
        // A miss: `may_wait` fails inside `memory_only`, and the call runs
        // again where the usual read below may wait.
        nitrofs_metadata::may_wait()?;
        Ok(self.chunks.read(id, offset, len)?)
    }

    /// Whether a read inside `memory_only` can be answered from memory at
    /// all on this machine (see [`ChunkStore::read_cached`]).
    pub fn reads_cached(&self) -> bool {
        self.chunks.reads_cached()
    }

    /// What both reads share; `ranges` leaves bytes in chunk files where
    /// the store can show them so. A snapshot's file is read into memory.
    fn read_pieces(
        &self,
        cred: &Credentials,
        ino: InodeId,
        offset: u64,
        count: u32,
        ranges: bool,
    ) -> FsResult<RangesResult> {
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            // A snapshot's file is read where reads may wait.
            nitrofs_metadata::may_wait()?;
            let r = self.snap_read(cred, ino, offset, count)?;
            return Ok(RangesResult {
                attr: r.attr,
                pieces: vec![ReadPiece::Bytes(r.data)],
                eof: r.eof,
            });
        }
        let rec = self.read_inode(ino)?;
        data_file(&rec)?;
        perm::check_data(&mut self.store_acls(), &rec, cred, R)?;
        if offset >= rec.size {
            return Ok(RangesResult {
                attr: self.touch_atime(&rec)?,
                pieces: Vec::new(),
                eof: true,
            });
        }
        let end = rec.size.min(offset.saturating_add(u64::from(count)));
        let parts = self.gather(&rec, offset, end - offset, ranges)?;
        // The data first: inside `memory_only` a read that misses must find
        // nothing committed yet (the call runs again elsewhere), and after an
        // atime commit reads would be free to wait on this thread.
        Ok(RangesResult {
            attr: self.touch_atime(&rec)?,
            pieces: parts,
            eof: end >= rec.size,
        })
    }

    /// The bytes `[offset, offset+len)` of `rec`'s data (within its size)
    /// as pieces; with `ranges`, as ranges of chunk files where the chunk
    /// store can show them. Holes read as zeros.
    pub(crate) fn gather(
        &self,
        rec: &InodeRecord,
        offset: u64,
        len: u64,
        ranges: bool,
    ) -> FsResult<Vec<ReadPiece>> {
        if rec.inline {
            if let Some(bytes) = self.read_inline(rec)? {
                return Ok(vec![ReadPiece::Bytes(padded_range(&bytes, offset, len))]);
            }
            // No bytes written yet, or moved to the chunks since `rec` was
            // read (they were durable there before the record changed).
            // Asked of the store, not the cache, which learns of the move
            // only after its commit.
            let now = match self.kv.get(&keys::inode(rec.ino))? {
                Some(b) => InodeRecord::decode(&b)?,
                None => return Err(FsError::Stale),
            };
            if now.inline {
                return Ok(vec![ReadPiece::Bytes(padded_range(
                    &Bytes::new(),
                    offset,
                    len,
                ))]);
            }
        }
        let mut parts: Vec<ReadPiece> = Vec::with_capacity(2);
        for (data_ino, cs, ext_off, ext_len) in extents(rec, offset, len) {
            for (index, within, n) in pieces(cs, ext_off, ext_len) {
                let id = ChunkId {
                    ino: data_ino,
                    index,
                };
                let n = n as usize;
                if ranges {
                    if let Some(r) = self.chunks.read_range(id, within, n)? {
                        parts.push(ReadPiece::File(r));
                        continue;
                    }
                }
                // A short chunk: the rest of this range is a hole.
                let got = self.read_chunk(id, within, n)?;
                parts.push(ReadPiece::Bytes(padded_range(&got, 0, n as u64)));
            }
        }
        Ok(parts)
    }

    /// Refreshes atime with relatime rules; returns the attributes.
    pub(crate) fn touch_atime(&self, rec: &InodeRecord) -> FsResult<Attr> {
        let now = Timestamp::now();
        if rec.atime > rec.mtime && now.secs - rec.atime.secs < RELATIME_SECS {
            return Ok(rec.attr());
        }
        let ino = rec.ino;
        // Inside `memory_only` (an NFS READ on the connection's task) not
        // behind a holder of the stripe that waits for the disk.
        let _guard = self.lock_inode_on_executor(ino)?;
        self.transact(false, |txn| -> FsResult<Attr> {
            let mut r = record::load_inode(txn, ino)?;
            r.atime = now;
            record::put_inode(txn, &r)?;
            Ok(r.attr())
        })
    }

    /// Writes `data` at `offset`. With `stable`, data and metadata are on
    /// stable storage when this returns (inside
    /// [`nitrofs_metadata::deferring_sync`], once the log sync it leaves
    /// owed has run); otherwise they survive a process crash but need
    /// [`FileSystem::commit`] to survive power loss.
    ///
    /// Inside `memory_only` only a write that keeps an inline file inline
    /// runs (its bytes go in one metadata transaction); one that needs
    /// chunk I/O misses before it changes anything.
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
        perm::check_data(&mut self.store_acls(), &rec, cred, W)?;
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
        let fits_inline = end <= u64::from(self.opts.inline_max);
        if !(rec.inline && fits_inline) {
            // Chunk I/O may wait for the disk: not inside `memory_only`.
            nitrofs_metadata::may_wait()?;
        }
        let _barrier = crate::read_on_executor(&self.snap_barrier)?;
        // Quotas: hold the bytes this write adds before writing any.
        let reserved = self.quota_reserve(&rec, end.saturating_sub(rec.size))?;
        if rec.inline {
            // Inline writes, and the move to chunks, run under the inode's
            // lock: each rewrites the inline bytes whole.
            let _guard = self.lock_inode_on_executor(ino)?;
            let rec = self.read_inode(ino)?;
            if rec.inline {
                if fits_inline {
                    return self.write_inline(cred, ino, offset, data, stable, reserved.as_ref());
                }
                self.move_inline_to_chunks(&rec)?;
            }
        }
        // A file moved to chunks since its record was read above.
        nitrofs_metadata::may_wait()?;
        let exts = extents(&rec, offset, data.len() as u64);
        for &(data_ino, cs, ext_off, ext_len) in &exts {
            let touched = pieces(cs, ext_off, ext_len).map(|(index, ..)| index);
            self.preserve_chunks(rec.volume, data_ino, cs, touched)?;
        }
        let mut done = 0usize;
        for &(data_ino, cs, ext_off, ext_len) in &exts {
            let n = ext_len as usize;
            self.write_chunks(data_ino, cs, ext_off, &data[done..done + n], !stable)?;
            done += n;
        }
        if stable {
            for &(data_ino, ..) in &exts {
                self.chunks.sync(data_ino)?;
            }
        }
        let now = Timestamp::now();
        let _guard = self.lock_inode(ino);
        let wcc = self.transact(stable, |txn| -> FsResult<Wcc> {
            let mut r = record::load_inode(txn, ino)?;
            self.wrote(txn, &mut r, end, now, cred, reserved.as_ref())
        })?;
        self.note_unsynced(ino, stable);
        Ok(wcc)
    }

    /// After a write of `ino` committed: an unstable one is durable once
    /// the log is synced past where it is now (see [`FileSystem::commit`]).
    fn note_unsynced(&self, ino: InodeId, stable: bool) {
        if !stable {
            self.unsynced.note(ino, self.kv.log_position());
        }
    }

    /// Writes `data` at `offset` of data inode `data_ino` (chunk size
    /// `cs`), chunk by chunk. With `note_filled`, each chunk written up to
    /// its end is handed to the background syncer.
    fn write_chunks(
        &self,
        data_ino: u64,
        cs: u64,
        offset: u64,
        data: &[u8],
        note_filled: bool,
    ) -> FsResult<()> {
        let mut done = 0usize;
        for (index, within, n) in pieces(cs, offset, data.len() as u64) {
            let n = n as usize;
            let id = ChunkId {
                ino: data_ino,
                index,
            };
            self.chunks.write(id, within, &data[done..done + n])?;
            if note_filled && within + n as u64 == cs {
                self.chunks.filled(id);
            }
            done += n;
        }
        Ok(())
    }

    /// What a write changes in its file's record (inside `txn`): the size
    /// grows to `end`, mtime and ctime are `now`, and a caller other than
    /// root clears the set-id bits; quotas are charged for the growth.
    fn wrote(
        &self,
        txn: &mut dyn Txn,
        r: &mut InodeRecord,
        end: u64,
        now: Timestamp,
        cred: &Credentials,
        reserved: Option<&Reservation<'_>>,
    ) -> FsResult<Wcc> {
        let before = (&r.attr()).into();
        let old = r.clone();
        r.size = r.size.max(end);
        r.mtime = now;
        r.ctime = now;
        if !cred.is_root() {
            r.mode &= !(S_ISUID | S_ISGID);
        }
        self.quota_on_update(txn, &old, r, reserved)?;
        record::put_inode(txn, r)?;
        Ok(Wcc {
            before,
            after: r.attr(),
        })
    }

    /// A write that keeps inline file `ino` within the inline limit: its
    /// bytes change in the same metadata transaction as its size, so one
    /// log sync makes both durable. The caller holds the inode's lock.
    fn write_inline(
        &self,
        cred: &Credentials,
        ino: InodeId,
        offset: u64,
        data: &[u8],
        stable: bool,
        reserved: Option<&Reservation<'_>>,
    ) -> FsResult<Wcc> {
        let key = keys::inline(ino);
        let now = Timestamp::now();
        let wcc = self.transact(stable, |txn| -> FsResult<Wcc> {
            let mut r = record::load_inode(txn, ino)?;
            if !r.inline {
                // Only a writer holding this lock moves the bytes out.
                return Err(FsError::Io(format!(
                    "inode {ino}: inline bytes moved out under the inode's lock"
                )));
            }
            // A write over every byte there is need not read them.
            let mut bytes = if offset == 0 && data.len() as u64 >= r.size {
                Vec::new()
            } else {
                txn.get(&key)?.unwrap_or_default()
            };
            // Bytes past the size (never kept, but never shown either).
            bytes.truncate(usize::try_from(r.size).unwrap_or(usize::MAX));
            let lo = usize::try_from(offset).map_err(|_| FsError::TooBig)?;
            let hi = lo + data.len();
            if bytes.len() < hi {
                bytes.resize(hi, 0);
            }
            bytes[lo..hi].copy_from_slice(data);
            txn.put(&key, &bytes)?;
            self.wrote(txn, &mut r, hi as u64, now, cred, reserved)
        })?;
        self.note_unsynced(ino, stable);
        Ok(wcc)
    }

    /// Moves inline file `rec`'s bytes into its chunks for good (a write
    /// takes it past the inline limit, or a multipart upload links it as
    /// a part). The chunks are durable before the record stops naming the
    /// inline bytes, so a crash anywhere keeps one durable copy. The caller
    /// holds the inode's lock.
    ///
    /// No snapshot needs the chunks kept: a file inline now was inline in
    /// every snapshot that holds it, which reads its inline bytes. Chunks
    /// left by a move that a crash or a restore undid mean nothing and go
    /// first, so none of their bytes shows through a hole.
    pub(crate) fn move_inline_to_chunks(&self, rec: &InodeRecord) -> FsResult<()> {
        let key = keys::inline(rec.ino);
        let cs = u64::from(rec.chunk_size);
        for _ in 0..MOVE_ATTEMPTS {
            // What is copied is checked again in the transaction that
            // flips the record: a truncation (it does not take the inode's
            // lock) that ran meanwhile would otherwise leave its cut bytes
            // in the chunks, to show again when the file grows.
            let size = self.read_inode(rec.ino)?.size;
            let raw = self.kv.get(&key)?;
            let mut bytes = raw.clone().unwrap_or_default();
            bytes.truncate(usize::try_from(size).unwrap_or(usize::MAX));
            self.chunks.remove_from(rec.ino, 0)?;
            self.write_chunks(rec.ino, cs, 0, &bytes, false)?;
            self.chunks.sync(rec.ino)?;
            let moved = self.transact(false, |txn| -> FsResult<bool> {
                let mut r = record::load_inode(txn, rec.ino)?;
                if !r.inline {
                    return Ok(true);
                }
                if r.size != size || txn.get(&key)? != raw {
                    return Ok(false);
                }
                r.inline = false;
                txn.delete(&key)?;
                let indexes = pieces(cs, 0, bytes.len() as u64).map(|(index, ..)| index);
                crate::snapshot::chunks_unseen(txn, r.volume, r.ino, indexes)?;
                record::put_inode(txn, &r)?;
                Ok(true)
            })?;
            if moved {
                return Ok(());
            }
        }
        Err(FsError::Io(format!(
            "inode {}: truncated while its inline bytes moved to chunks, {MOVE_ATTEMPTS} times",
            rec.ino
        )))
    }

    /// Makes every earlier write to `ino` durable. It commits no metadata
    /// of its own. Inside [`nitrofs_metadata::deferring_sync_to`] the
    /// metadata log's part is left owed: the caller answers once a shared
    /// log sync that started after the writes' commits (it may start
    /// before this call) has finished. Nothing is owed when a log sync
    /// already covered them.
    pub fn commit(&self, ino: InodeId) -> FsResult<Wcc> {
        // Every WRITE answered before this call noted its position
        // before its reply went out.
        let upto = self.unsynced.of(ino);
        let rec = self.read_inode(ino)?;
        let attr = rec.attr();
        let wcc = Wcc {
            before: (&attr).into(),
            after: attr,
        };
        if rec.inline {
            // Its bytes are in the metadata log with its size, so the log's
            // sync is all (chunks a move left behind mean nothing). Only
            // inside `deferring_sync`, which puts it off, is it no wait.
            if !nitrofs_metadata::defers_sync() {
                nitrofs_metadata::may_wait()?;
            }
            self.kv.sync_to(upto)?;
            return Ok(wcc);
        }
        // Chunk syncs wait for the disk: not inside `memory_only`.
        nitrofs_metadata::may_wait()?;
        let sync_chunks = || {
            rec.data_inodes()
                .into_iter()
                .try_for_each(|d| self.chunks.sync(d))
        };
        if nitrofs_metadata::defers_sync() {
            self.kv.sync_to(upto)?;
            sync_chunks()?;
        } else {
            // The chunk files and the metadata log are different files:
            // their flushes run side by side, so the caller waits for the
            // slower one (and the filesystem may merge both into one
            // journal commit) instead of their sum. Neither order protects
            // more than the other: any concurrent durable metadata commit
            // already syncs the size an unstable write recorded, whatever
            // this call does.
            let kv = Arc::clone(&self.kv);
            let meta = nitrofs_common::beside::run(move || kv.sync_to(upto));
            let chunks = sync_chunks();
            let meta = meta.wait();
            chunks?;
            meta?;
        }
        Ok(wcc)
    }

    /// Cuts the chunk data of `rec` to `size` bytes and syncs it. For a
    /// file with segments, data inodes wholly past `size` lose all their
    /// chunks here; [`trim_segments`] drops them from the record.
    pub(crate) fn truncate_chunks(&self, rec: &InodeRecord, size: u64) -> FsResult<()> {
        // Chunk I/O may wait for the disk: not inside `memory_only`.
        nitrofs_metadata::may_wait()?;
        let _barrier = self.snap_barrier.read();
        if rec.segments.is_empty() {
            return self.truncate_data(rec.volume, rec.ino, u64::from(rec.chunk_size), size);
        }
        let mut seg_start = 0u64;
        let last = rec.segments.len() - 1;
        for (i, seg) in rec.segments.iter().enumerate() {
            let keep = size.saturating_sub(seg_start);
            if i == last || keep < seg.len {
                self.truncate_data(rec.volume, seg.ino, u64::from(seg.chunk_size), keep)?;
            }
            seg_start = seg_start.saturating_add(seg.len);
        }
        Ok(())
    }

    /// Cuts one data inode's chunks to `size` bytes and syncs them.
    fn truncate_data(&self, volume: u32, ino: u64, cs: u64, size: u64) -> FsResult<()> {
        // Chunks from the one the new end falls in change or go.
        let first_touched = size / cs;
        let touched: Vec<u64> = self
            .chunks
            .indexes(ino)?
            .into_iter()
            .filter(|i| *i >= first_touched)
            .collect();
        self.preserve_chunks(volume, ino, cs, touched)?;
        if size == 0 {
            self.chunks.remove_from(ino, 0)?;
        } else {
            let last = (size - 1) / cs;
            self.chunks
                .truncate(ChunkId { ino, index: last }, size - last * cs)?;
            self.chunks.remove_from(ino, last + 1)?;
        }
        self.chunks.sync(ino)?;
        Ok(())
    }

    /// Capacity of the device behind the volume of `ino`.
    pub fn fsstat(&self, ino: InodeId) -> FsResult<(Attr, FsStat)> {
        let attr = self.getattr(ino)?;
        let sp = self.chunks.space()?;
        let st = FsStat {
            total_bytes: sp.total_bytes,
            free_bytes: sp.free_bytes,
            avail_bytes: sp.avail_bytes,
            total_files: sp.total_files,
            free_files: sp.free_files,
            avail_files: sp.free_files,
        };
        // Under a tree quota, `df` shows the quota.
        let st = self.quota_fsstat(&attr, st)?;
        Ok((attr, st))
    }
}

/// After a size change inside `txn`: forgets segments wholly past the new
/// size (their chunks were removed before the transaction).
pub(crate) fn trim_after_resize(txn: &mut dyn Txn, rec: &mut InodeRecord) -> FsResult<()> {
    let size = rec.size;
    if rec.inline {
        let key = keys::inline(rec.ino);
        if let Some(mut bytes) = txn.get(&key)? {
            let keep = usize::try_from(size).unwrap_or(usize::MAX);
            if bytes.len() > keep {
                bytes.truncate(keep);
                txn.put(&key, &bytes)?;
            }
        }
        return Ok(());
    }
    for dropped in trim_segments(rec, size) {
        txn.delete(&keys::data_owner(dropped))?;
        txn.put(&keys::gc(dropped), &[])?;
    }
    Ok(())
}

/// Drops the segments of `rec` that lie wholly past `size`, returning
/// their data inodes (whose chunks the caller has already removed).
pub(crate) fn trim_segments(rec: &mut InodeRecord, size: u64) -> Vec<u64> {
    let mut seg_start = 0u64;
    let mut keep = rec.segments.len();
    for (i, seg) in rec.segments.iter().enumerate() {
        seg_start = seg_start.saturating_add(seg.len);
        if seg_start >= size {
            keep = i + 1;
            break;
        }
    }
    rec.segments
        .split_off(keep.max(1).min(rec.segments.len()))
        .into_iter()
        .map(|s| s.ino)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::{extents, pieces, trim_segments};
    use crate::record::{InodeRecord, Segment};

    fn segmented(lens: &[u64]) -> InodeRecord {
        InodeRecord {
            chunk_size: 16,
            segments: lens
                .iter()
                .enumerate()
                .map(|(i, l)| Segment {
                    ino: 100 + i as u64,
                    len: *l,
                    chunk_size: 16,
                })
                .collect(),
            ..crate::record::test_file(1, lens.iter().sum())
        }
    }

    #[test]
    fn extents_map_file_ranges_onto_segments_and_past_the_end_into_the_last() {
        let r = segmented(&[10, 20, 5]);
        let all = vec![(100, 16, 0, 10), (101, 16, 0, 20), (102, 16, 0, 5)];
        assert_eq!(extents(&r, 0, 35), all);
        assert_eq!(extents(&r, 8, 4), vec![(100, 16, 8, 2), (101, 16, 0, 2)]);
        assert_eq!(extents(&r, 40, 3), vec![(102, 16, 10, 3)]);
        let plain = segmented(&[]);
        assert_eq!(extents(&plain, 7, 3), vec![(1, 16, 7, 3)]);
    }

    #[test]
    fn trimming_drops_only_segments_wholly_past_the_size() {
        let mut r = segmented(&[10, 20, 5]);
        assert_eq!(trim_segments(&mut r, 12), vec![102]);
        assert_eq!(r.segments.len(), 2);
        let mut r = segmented(&[10, 20, 5]);
        assert_eq!(trim_segments(&mut r, 0), vec![101, 102]);
        assert_eq!(r.segments.len(), 1);
        let mut r = segmented(&[10, 20, 5]);
        assert!(trim_segments(&mut r, 100).is_empty());
    }

    #[test]
    fn pieces_split_at_chunk_boundaries() {
        let p: Vec<_> = pieces(10, 5, 20).collect();
        assert_eq!(p, vec![(0, 5, 5), (1, 0, 10), (2, 0, 5)]);
        assert_eq!(pieces(10, 0, 0).count(), 0);
        assert_eq!(pieces(10, 30, 10).collect::<Vec<_>>(), vec![(3, 0, 10)]);
    }
}
