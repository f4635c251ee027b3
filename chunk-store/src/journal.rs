//! The journal of small syncs: a write-ahead log of chunk changes.
//!
//! Making a new 16 KiB file durable cost the data disk an fdatasync of its
//! chunk file and an fsync of the directory holding the file's entry:
//! scattered blocks and two flushes per file (445 µs on the test machine's
//! ext4, against 150 µs to overwrite 16 KiB of a preallocated file and
//! fdatasync it; `bench/fsync_probe.py`). A sync that changed
//! few bytes writes them here instead, one sequential write, and syncs
//! running at the same time share one fdatasync (group commit). The chunk
//! files get the same bytes through the page cache as always and reach
//! the disk all together at a checkpoint (`syncfs`), after which their
//! records are no longer needed. After a crash the store replays the
//! records written since the last checkpoint onto the chunk files.
//!
//! The record area is filled with real zeros a MiB ahead of the records
//! (not at creation, so a new data directory starts at once), so that
//! after the first pass a record overwrites blocks the file already has
//! and its fdatasync writes no file-system metadata. The file starts with
//! two header slots (written in turn, so a torn header write leaves the
//! other one valid) naming the area's size and where the live records
//! start; the rest is a circular area of records. A
//! record is 64-byte aligned, carries a sequence number one above its
//! predecessor's and a CRC32C; reading stops at the first record that is
//! not the expected next one. Positions are logical byte offsets (`lsn`)
//! that only grow; the physical offset is `lsn % area`. A record never
//! straddles the end of the area: a wrap record pads to it.

use crate::ChunkId;
use nitrofs_common::group_sync::GroupSync;
use parking_lot::Mutex;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

/// Where the records start in the file; the header slots sit before it.
const AREA_START: u64 = 4096;

/// Size of a header slot; slot `gen % 2` holds header generation `gen`.
const HEADER_SLOT: u64 = 512;

const HEADER_MAGIC: &[u8; 8] = b"NFSJRNL1";

/// Bytes of a header: magic, generation, start lsn, start seq, area size,
/// CRC32C.
const HEADER_LEN: usize = 44;

/// The largest record area (a record's length field has 32 bits).
const MAX_AREA: u64 = 1 << 30;

/// How far ahead of the records the area is filled with zeros.
const FILL_STEP: u64 = 1 << 20;

/// Records are aligned to this (a wrap record always fits in what is left).
const ALIGN: u64 = 64;

/// Bytes of a record's header.
const RECORD_HEADER: usize = 64;

/// The upper 24 bits of a record's tag; the low byte is its kind.
const RECORD_MAGIC: u32 = 0x4e_46_4a_00;

const KIND_CHUNK: u8 = 1;
const KIND_REMOVE: u8 = 2;
const KIND_REMOVE_FROM: u8 = 3;
const KIND_WRAP: u8 = 4;

/// A chunk's `cut` field when the chunk was not cut.
const NO_CUT: u64 = u64::MAX;

/// One change to replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Record<D> {
    /// Since its previous durable state, chunk `id` was cut to `cut` bytes
    /// (if it was), holds `data` at `lo`, and is `len` bytes long.
    Chunk {
        id: ChunkId,
        cut: Option<u64>,
        lo: u64,
        data: D,
        len: u64,
    },
    /// Chunk `id` was removed.
    Remove(ChunkId),
    /// Every chunk of `ino` from index `from` on was removed.
    RemoveFrom { ino: u64, from: u64 },
}

/// A record to append, borrowing its bytes.
pub(crate) type Op<'a> = Record<&'a [u8]>;

/// Where the live records start and the next one goes.
#[derive(Debug, Clone, Copy)]
struct Tail {
    /// The next record's position and sequence number.
    lsn: u64,
    seq: u64,
    /// The first live record's position and sequence number.
    start_lsn: u64,
    start_seq: u64,
    /// Generation of the header on disk.
    gen: u64,
    /// Bytes of the area that hold zeros or records (filled once).
    filled: u64,
}

/// A point in the journal: records before it are covered by a checkpoint
/// that started after they were appended.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cut {
    lsn: u64,
    seq: u64,
}

impl Cut {
    /// The sequence number of the first record after the cut.
    pub(crate) fn seq(&self) -> u64 {
        self.seq
    }
}

/// The journal file and where its records are.
pub(crate) struct Journal {
    file: File,
    /// Bytes of the circular record area.
    area: u64,
    tail: Mutex<Tail>,
    /// Every record with a lower sequence number is durable.
    durable: GroupSync,
    /// A write or sync of the journal (or a checkpoint) failed: what it
    /// covered may not be on the disk, and a later fdatasync would not say
    /// so (Linux reports a writeback error once, then the pages are clean).
    /// Every later call fails until the store is reopened and replays.
    broken: AtomicBool,
}

impl Journal {
    /// Opens the journal at `path`, creating one of `capacity` bytes if
    /// there is none. Returns the records written since the last
    /// checkpoint, in order; they must be applied and made durable before
    /// [`Journal::restart`], which is the first call after this one.
    pub(crate) fn open(path: &Path, capacity: u64) -> io::Result<(Self, Vec<Record<Vec<u8>>>)> {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(file) => Self::read_existing(file),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Ok((Self::create(path, capacity)?, Vec::new()))
            }
            Err(e) => Err(e),
        }
    }

    fn create(path: &Path, capacity: u64) -> io::Result<Self> {
        let area = (capacity.saturating_sub(AREA_START) / ALIGN) * ALIGN;
        if !(16 * ALIGN..=MAX_AREA).contains(&area) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("a chunk journal of {capacity} bytes is too small or too large"),
            ));
        }
        let dir = path.parent().unwrap_or(Path::new("."));
        let tmp = dir.join(".journal.new");
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        let tail = Tail {
            lsn: 0,
            seq: 1,
            start_lsn: 0,
            start_seq: 1,
            gen: 1,
            filled: 0,
        };
        file.write_all_at(&encode_header(&tail, area), header_offset(tail.gen))?;
        file.set_len(AREA_START)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)?;
        nitrofs_common::crashsafe::fsync_dir(dir)?;
        Ok(Self::with(file, area, tail))
    }

    fn with(file: File, area: u64, tail: Tail) -> Self {
        Self {
            file,
            area,
            durable: GroupSync::new(tail.seq),
            broken: AtomicBool::new(false),
            tail: Mutex::new(tail),
        }
    }

    fn read_existing(file: File) -> io::Result<(Self, Vec<Record<Vec<u8>>>)> {
        let size = file.metadata()?.len();
        let (mut tail, area) = [0u64, 1]
            .into_iter()
            .filter_map(|slot| {
                let mut buf = [0u8; HEADER_LEN];
                file.read_exact_at(&mut buf, slot * HEADER_SLOT).ok()?;
                decode_header(&buf)
            })
            .max_by_key(|(t, _)| t.gen)
            .ok_or_else(|| invalid("no valid header in the chunk journal"))?;
        tail.filled = size.saturating_sub(AREA_START).min(area);
        let mut records = Vec::new();
        let mut head = vec![0u8; RECORD_HEADER];
        loop {
            if tail.lsn - tail.start_lsn >= area {
                break;
            }
            let phys = tail.lsn % area;
            if phys + RECORD_HEADER as u64 > tail.filled {
                break;
            }
            file.read_exact_at(&mut head, AREA_START + phys)?;
            let Some(h) = RecordHeader::decode(&head) else {
                break;
            };
            if h.seq != tail.seq || h.len < RECORD_HEADER as u64 || phys + h.len > tail.filled {
                break;
            }
            if tail.lsn + h.len - tail.start_lsn > area {
                break;
            }
            let mut body = vec![0u8; h.len as usize];
            file.read_exact_at(&mut body, AREA_START + phys)?;
            if crc_fast::crc32_iscsi(&body[8..]) != h.crc {
                break;
            }
            let data_end = RECORD_HEADER + h.data_len as usize;
            if data_end > body.len() {
                break;
            }
            let record = match h.kind {
                KIND_CHUNK => Some(Record::Chunk {
                    id: ChunkId {
                        ino: h.ino,
                        index: h.index,
                    },
                    cut: (h.a != NO_CUT).then_some(h.a),
                    lo: h.b,
                    data: body[RECORD_HEADER..data_end].to_vec(),
                    len: h.c,
                }),
                KIND_REMOVE => Some(Record::Remove(ChunkId {
                    ino: h.ino,
                    index: h.index,
                })),
                KIND_REMOVE_FROM => Some(Record::RemoveFrom {
                    ino: h.ino,
                    from: h.index,
                }),
                KIND_WRAP => None,
                _ => break,
            };
            records.extend(record);
            tail.lsn += h.len;
            tail.seq += 1;
        }
        Ok((Self::with(file, area, tail), records))
    }

    /// Starts a new run of records after the ones [`Journal::open`]
    /// returned, which the caller has applied and made durable. The
    /// sequence numbers jump past any a torn run of records beyond the
    /// valid ones may hold, so none of those can pass for the next record.
    pub(crate) fn restart(&self) -> io::Result<()> {
        let cut = {
            let mut t = self.tail.lock();
            t.seq += self.area / ALIGN + 1;
            Cut {
                lsn: t.lsn,
                seq: t.seq,
            }
        };
        self.durable.mark_reached(cut.seq);
        self.checkpointed(cut)
    }

    /// Appends `ops` as consecutive records; returns the sequence number
    /// of the last one, or `None` if the area has no room for them until
    /// a checkpoint. Not durable until [`Journal::sync_upto`].
    pub(crate) fn append(&self, ops: &[Op<'_>]) -> io::Result<Option<u64>> {
        self.usable()?;
        self.append_records(ops).map_err(|e| self.broke(e))
    }

    fn append_records(&self, ops: &[Op<'_>]) -> io::Result<Option<u64>> {
        let mut t = self.tail.lock();
        // Room needed, counting a wrap record wherever one is due.
        let mut lsn = t.lsn;
        for op in ops {
            let len = record_len(op);
            if len > self.area {
                return Ok(None);
            }
            lsn += self.wrap_pad(lsn, len) + len;
        }
        if lsn - t.start_lsn > self.area {
            return Ok(None);
        }
        // The area wraps only once it is full, so the first pass ends at
        // the highest position these records reach.
        let reach = if lsn > self.area { self.area } else { lsn };
        if reach > t.filled {
            let to = reach.next_multiple_of(FILL_STEP).min(self.area);
            self.fill(t.filled, to)?;
            t.filled = to;
        }
        let mut buf = Vec::new();
        for op in ops {
            let len = record_len(op);
            let pad = self.wrap_pad(t.lsn, len);
            if pad > 0 {
                buf.clear();
                encode_wrap(&mut buf, t.seq, pad);
                self.file
                    .write_all_at(&buf, AREA_START + t.lsn % self.area)?;
                t.lsn += pad;
                t.seq += 1;
            }
            buf.clear();
            encode_record(&mut buf, t.seq, op);
            self.file
                .write_all_at(&buf, AREA_START + t.lsn % self.area)?;
            t.lsn += len;
            t.seq += 1;
        }
        Ok(Some(t.seq - 1))
    }

    /// Bytes of the wrap record due before a record of `len` bytes at
    /// `lsn`: what is left of the area when the record would straddle its
    /// end, else none.
    fn wrap_pad(&self, lsn: u64, len: u64) -> u64 {
        let phys = lsn % self.area;
        if phys + len > self.area {
            self.area - phys
        } else {
            0
        }
    }

    /// Writes zeros over `from..to` of the area (beyond the records: their
    /// first fdatasync makes the zeros and the file's new size durable).
    fn fill(&self, from: u64, to: u64) -> io::Result<()> {
        let zeros = vec![0u8; (to - from).min(FILL_STEP) as usize];
        let mut at = from;
        while at < to {
            let n = (to - at).min(zeros.len() as u64) as usize;
            self.file.write_all_at(&zeros[..n], AREA_START + at)?;
            at += n as u64;
        }
        Ok(())
    }

    /// Makes every record up to sequence number `seq` durable, with one
    /// fdatasync shared by every caller waiting meanwhile.
    pub(crate) fn sync_upto(&self, seq: u64) -> io::Result<()> {
        // Already durable before anything broke: nothing to ask of the disk.
        self.durable.sync_to(seq.saturating_add(1), || {
            self.usable()?;
            // Every record appended by now is written: this fdatasync covers it.
            let covered = self.tail.lock().seq;
            self.file.sync_data().map_err(|e| self.broke(e))?;
            Ok(covered)
        })
    }

    /// Refuses every later call (see `broken`); returns `e`.
    pub(crate) fn broke(&self, e: io::Error) -> io::Error {
        self.broken.store(true, Ordering::Release);
        tracing::error!(error = %e, "chunk journal failed; syncs fail until the store is reopened");
        e
    }

    /// Fails if the journal broke (see `broken`).
    pub(crate) fn usable(&self) -> io::Result<()> {
        if self.broken.load(Ordering::Acquire) {
            return Err(io::Error::other(
                "the chunk journal failed earlier; restart to replay it",
            ));
        }
        Ok(())
    }

    /// Every record below this sequence number is durable.
    #[cfg(test)]
    pub(crate) fn durable_below(&self) -> u64 {
        self.durable.reached()
    }

    /// Bytes of the area live records hold.
    pub(crate) fn used(&self) -> u64 {
        let t = self.tail.lock();
        t.lsn - t.start_lsn
    }

    /// Bytes of the file when the record area is filled.
    pub(crate) fn capacity(&self) -> u64 {
        AREA_START + self.area
    }

    /// Bytes of the record area.
    pub(crate) fn area(&self) -> u64 {
        self.area
    }

    /// The sequence number of the last record appended.
    pub(crate) fn last_seq(&self) -> u64 {
        self.tail.lock().seq - 1
    }

    /// The sequence number of the first live record.
    pub(crate) fn start_seq(&self) -> u64 {
        self.tail.lock().start_seq
    }

    /// The current end of the journal, for a checkpoint about to start.
    pub(crate) fn cut(&self) -> Cut {
        let t = self.tail.lock();
        Cut {
            lsn: t.lsn,
            seq: t.seq,
        }
    }

    /// Drops the records before `cut`, whose changes a checkpoint has made
    /// durable in the chunk files. Their space is reused only once the new
    /// header is durable: until then a crash replays them.
    pub(crate) fn checkpointed(&self, cut: Cut) -> io::Result<()> {
        self.usable()?;
        let mut next = *self.tail.lock();
        next.gen += 1;
        next.start_lsn = cut.lsn;
        next.start_seq = cut.seq;
        self.file
            .write_all_at(&encode_header(&next, self.area), header_offset(next.gen))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| self.broke(e))?;
        let mut t = self.tail.lock();
        t.gen = next.gen;
        t.start_lsn = cut.lsn;
        t.start_seq = cut.seq;
        Ok(())
    }
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn header_offset(gen: u64) -> u64 {
    (gen % 2) * HEADER_SLOT
}

fn encode_header(t: &Tail, area: u64) -> [u8; HEADER_LEN] {
    let mut buf = [0u8; HEADER_LEN];
    buf[..8].copy_from_slice(HEADER_MAGIC);
    buf[8..16].copy_from_slice(&t.gen.to_le_bytes());
    buf[16..24].copy_from_slice(&t.start_lsn.to_le_bytes());
    buf[24..32].copy_from_slice(&t.start_seq.to_le_bytes());
    buf[32..40].copy_from_slice(&area.to_le_bytes());
    let crc = crc_fast::crc32_iscsi(&buf[..40]);
    buf[40..44].copy_from_slice(&crc.to_le_bytes());
    buf
}

/// A header's position and the area size it names, if it is valid.
fn decode_header(buf: &[u8; HEADER_LEN]) -> Option<(Tail, u64)> {
    if &buf[..8] != HEADER_MAGIC {
        return None;
    }
    let crc = u32::from_le_bytes(buf[40..44].try_into().ok()?);
    if crc_fast::crc32_iscsi(&buf[..40]) != crc {
        return None;
    }
    let word = |at: usize| buf[at..at + 8].try_into().ok().map(u64::from_le_bytes);
    let (gen, start_lsn, start_seq, area) = (word(8)?, word(16)?, word(24)?, word(32)?);
    if !(16 * ALIGN..=MAX_AREA).contains(&area) || !area.is_multiple_of(ALIGN) {
        return None;
    }
    let tail = Tail {
        lsn: start_lsn,
        seq: start_seq,
        start_lsn,
        start_seq,
        gen,
        filled: 0,
    };
    Some((tail, area))
}

/// The fixed part of a record (little endian):
///
/// | offset | bytes | field |
/// |---|---|---|
/// | 0 | 4 | tag: `RECORD_MAGIC` with the kind in the low byte |
/// | 4 | 4 | CRC32C of bytes 8.. of the record (padding included) |
/// | 8 | 4 | length of the record, padded to 64 bytes |
/// | 12 | 4 | length of the data after this header |
/// | 16 | 8 | sequence number |
/// | 24 | 8 | inode |
/// | 32 | 8 | chunk index (`RemoveFrom`: the first index removed) |
/// | 40 | 8 | `Chunk`: length cut to, or `u64::MAX` |
/// | 48 | 8 | `Chunk`: offset of the data in the chunk |
/// | 56 | 8 | `Chunk`: length of the chunk |
struct RecordHeader {
    kind: u8,
    crc: u32,
    len: u64,
    data_len: u32,
    seq: u64,
    ino: u64,
    index: u64,
    a: u64,
    b: u64,
    c: u64,
}

impl RecordHeader {
    fn decode(buf: &[u8]) -> Option<Self> {
        let half = |at: usize| buf.get(at..at + 4)?.try_into().ok().map(u32::from_le_bytes);
        let word = |at: usize| buf.get(at..at + 8)?.try_into().ok().map(u64::from_le_bytes);
        let tag = half(0)?;
        if tag & !0xff != RECORD_MAGIC {
            return None;
        }
        Some(Self {
            kind: (tag & 0xff) as u8,
            crc: half(4)?,
            len: u64::from(half(8)?),
            data_len: half(12)?,
            seq: word(16)?,
            ino: word(24)?,
            index: word(32)?,
            a: word(40)?,
            b: word(48)?,
            c: word(56)?,
        })
    }
}

fn record_len(op: &Op<'_>) -> u64 {
    let data = match op {
        Record::Chunk { data, .. } => data.len(),
        _ => 0,
    };
    (RECORD_HEADER + data).next_multiple_of(ALIGN as usize) as u64
}

fn encode_record(buf: &mut Vec<u8>, seq: u64, op: &Op<'_>) {
    let (kind, id, a, b, c, data): (u8, ChunkId, u64, u64, u64, &[u8]) = match *op {
        Record::Chunk {
            id,
            cut,
            lo,
            data,
            len,
        } => (KIND_CHUNK, id, cut.unwrap_or(NO_CUT), lo, len, data),
        Record::Remove(id) => (KIND_REMOVE, id, 0, 0, 0, &[]),
        Record::RemoveFrom { ino, from } => {
            (KIND_REMOVE_FROM, ChunkId { ino, index: from }, 0, 0, 0, &[])
        }
    };
    let len = record_len(op);
    encode(buf, kind, seq, len, id, [a, b, c], data);
}

fn encode_wrap(buf: &mut Vec<u8>, seq: u64, pad: u64) {
    encode(
        buf,
        KIND_WRAP,
        seq,
        pad,
        ChunkId { ino: 0, index: 0 },
        [0; 3],
        &[],
    );
}

fn encode(
    buf: &mut Vec<u8>,
    kind: u8,
    seq: u64,
    len: u64,
    id: ChunkId,
    abc: [u64; 3],
    data: &[u8],
) {
    let start = buf.len();
    buf.extend_from_slice(&(RECORD_MAGIC | u32::from(kind)).to_le_bytes());
    buf.extend_from_slice(&[0; 4]);
    // Lengths fit: a record is at most the area, which `append` checked,
    // and chunk data is far below 4 GiB.
    buf.extend_from_slice(&(len as u32).to_le_bytes());
    buf.extend_from_slice(&(data.len() as u32).to_le_bytes());
    for w in [seq, id.ino, id.index, abc[0], abc[1], abc[2]] {
        buf.extend_from_slice(&w.to_le_bytes());
    }
    buf.extend_from_slice(data);
    let end = start + len as usize;
    buf.resize(end.max(buf.len()), 0);
    let crc = crc_fast::crc32_iscsi(&buf[start + 8..end]);
    buf[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

impl Record<Vec<u8>> {
    /// The record to append, borrowing this one's bytes.
    pub(crate) fn as_op(&self) -> Op<'_> {
        match self {
            Record::Chunk {
                id,
                cut,
                lo,
                data,
                len,
            } => Record::Chunk {
                id: *id,
                cut: *cut,
                lo: *lo,
                data: data.as_slice(),
                len: *len,
            },
            Record::Remove(id) => Record::Remove(*id),
            Record::RemoveFrom { ino, from } => Record::RemoveFrom {
                ino: *ino,
                from: *from,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: ChunkId = ChunkId { ino: 7, index: 0 };

    fn chunk(byte: u8, len: usize) -> Record<Vec<u8>> {
        Record::Chunk {
            id: ID,
            cut: byte.is_multiple_of(2).then_some(u64::from(byte)),
            lo: u64::from(byte),
            data: vec![byte; len],
            len: u64::from(byte) + len as u64,
        }
    }

    fn append(j: &Journal, records: &[Record<Vec<u8>>]) -> Option<u64> {
        let ops: Vec<Op<'_>> = records.iter().map(Record::as_op).collect();
        j.append(&ops).expect("append")
    }

    fn reopen(path: &Path) -> (Journal, Vec<Record<Vec<u8>>>) {
        Journal::open(path, 0).expect("reopen")
    }

    /// Flips one byte of the file at `at`.
    fn corrupt(path: &Path, at: u64) {
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .expect("open");
        let mut b = [0u8];
        f.read_exact_at(&mut b, at).expect("read");
        f.write_all_at(&[b[0] ^ 0xff], at).expect("write");
    }

    #[test]
    fn records_read_back_in_order_after_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, found) = Journal::open(&path, 8 << 20).expect("create");
        assert!(found.is_empty());
        let size = || std::fs::metadata(&path).expect("stat").len();
        assert_eq!(size(), AREA_START, "a new journal is filled as it is used");
        j.restart().expect("restart");
        let written = vec![
            chunk(1, 100),
            Record::Remove(ChunkId { ino: 9, index: 3 }),
            chunk(2, 4096),
            Record::RemoveFrom { ino: 7, from: 1 },
            chunk(3, 0),
        ];
        let last = append(&j, &written).expect("room");
        j.sync_upto(last).expect("sync");
        assert_eq!(size(), AREA_START + FILL_STEP, "zeros a step ahead");
        drop(j);
        // Until the records are restarted past, every reopen finds them.
        assert_eq!(reopen(&path).1, written);
        let (j, found) = reopen(&path);
        assert_eq!(found, written);
        j.restart().expect("restart");
        drop(j);
        assert!(
            reopen(&path).1.is_empty(),
            "applied records are not replayed again"
        );
    }

    #[test]
    fn a_torn_record_ends_the_replay_and_nothing_after_it_passes_for_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, _) = Journal::open(&path, 1 << 20).expect("create");
        j.restart().expect("restart");
        let (a, b, c) = (chunk(1, 200), chunk(2, 200), chunk(3, 200));
        append(&j, &[a.clone(), b.clone(), c]).expect("room");
        drop(j);
        // Tear the second record's data: the third is valid but unreachable.
        let second = AREA_START + record_len(&a.as_op());
        corrupt(&path, second + RECORD_HEADER as u64 + 10);
        let (j, found) = reopen(&path);
        assert_eq!(found, vec![a.clone()]);
        // Restarted after that replay, a record of the torn one's length
        // lands where it was; the old third record right after it must not
        // be taken for the new record's successor.
        j.restart().expect("restart");
        let d = chunk(4, 200);
        assert_eq!(record_len(&d.as_op()), record_len(&b.as_op()));
        append(&j, std::slice::from_ref(&d)).expect("room");
        drop(j);
        assert_eq!(reopen(&path).1, vec![d]);
    }

    #[test]
    fn records_wrap_around_the_area_once_a_checkpoint_frees_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, _) = Journal::open(&path, AREA_START + 64 * 1024).expect("create");
        j.restart().expect("restart");
        let mut n = 0u8;
        while append(&j, &[chunk(n, 5000)]).is_some() {
            n += 1;
        }
        assert!(n >= 10, "{n} records of 5000 bytes in 64 KiB");
        assert!(j.used() <= j.area());
        // Full: a checkpoint frees everything appended so far.
        j.checkpointed(j.cut()).expect("checkpoint");
        assert_eq!(j.used(), 0);
        let after: Vec<_> = (100..100 + n).map(|b| chunk(b, 5000)).collect();
        for r in &after {
            append(&j, std::slice::from_ref(r)).expect("room after the checkpoint");
        }
        drop(j);
        assert_eq!(reopen(&path).1, after, "records past the wrap, in order");
    }

    #[test]
    fn a_torn_header_falls_back_to_the_previous_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, _) = Journal::open(&path, 1 << 20).expect("create");
        j.restart().expect("restart");
        let a = chunk(1, 300);
        append(&j, std::slice::from_ref(&a)).expect("room");
        let cut = j.cut();
        let b = chunk(2, 300);
        append(&j, std::slice::from_ref(&b)).expect("room");
        j.checkpointed(cut).expect("checkpoint");
        let gen = j.tail.lock().gen;
        drop(j);
        assert_eq!(reopen(&path).1, vec![b.clone()]);
        // The newest header torn: the older one still names a valid start,
        // from which both records replay (replaying more is safe, less is not).
        corrupt(&path, header_offset(gen) + 20);
        assert_eq!(reopen(&path).1, vec![a, b]);
    }

    #[test]
    fn a_file_with_no_valid_header_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        std::fs::write(&path, vec![0u8; 1 << 16]).expect("write");
        let err = Journal::open(&path, 1 << 20).err().expect("refused");
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }

    #[test]
    fn after_a_failed_write_or_sync_every_call_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, _) = Journal::open(&path, 1 << 20).expect("create");
        j.restart().expect("restart");
        let seq = append(&j, &[chunk(1, 10)]).expect("room");
        j.broke(io::Error::other("injected"));
        let ops = [chunk(2, 10)];
        let ops: Vec<Op<'_>> = ops.iter().map(Record::as_op).collect();
        assert!(j.append(&ops).is_err());
        assert!(
            j.sync_upto(seq).is_err(),
            "a record of the failed run passed for durable"
        );
        assert!(j.checkpointed(j.cut()).is_err());
    }

    /// A new, restarted journal of `capacity` bytes shared by 8 threads,
    /// each running `work` with its number; returns their results.
    fn on_8_threads<T: Send + 'static>(
        path: &Path,
        capacity: u64,
        before_join: impl FnOnce(&Journal),
        work: impl Fn(&Journal, u8) -> T + Send + Sync + 'static,
    ) -> Vec<T> {
        let (j, _) = Journal::open(path, capacity).expect("create");
        j.restart().expect("restart");
        let j = std::sync::Arc::new(j);
        let work = std::sync::Arc::new(work);
        let workers: Vec<_> = (0..8u8)
            .map(|w| {
                let (j, work) = (j.clone(), work.clone());
                std::thread::spawn(move || work(&j, w))
            })
            .collect();
        before_join(&j);
        workers
            .into_iter()
            .map(|w| w.join().expect("worker"))
            .collect()
    }

    #[test]
    fn concurrent_appenders_all_end_durable_and_reopen_finds_every_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let lasts = on_8_threads(
            &path,
            4 << 20,
            |_| {},
            |j, w| {
                let mut last = 0;
                for _ in 0..40 {
                    let seq = append(j, &[chunk(w, 200)]).expect("room");
                    j.sync_upto(seq).expect("sync");
                    assert!(j.durable_below() > seq, "returned before durable");
                    last = seq;
                }
                last
            },
        );
        assert_eq!(lasts.len(), 8);
        let (j, records) = reopen(&path);
        assert_eq!(records.len(), 8 * 40, "every synced record is replayed");
        assert!(j.last_seq() >= lasts.into_iter().max().unwrap_or(0));
    }

    #[test]
    fn records_of_concurrent_appenders_never_pass_for_durable_after_a_break() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let appended = std::sync::Arc::new(std::sync::Barrier::new(9));
        let mine = appended.clone();
        let outcomes = on_8_threads(
            &path,
            1 << 20,
            |j| {
                appended.wait();
                // Every record is written and none synced: the write-back fails.
                j.broke(io::Error::other("injected"));
                appended.wait();
            },
            move |j, w| {
                let seq = append(j, &[chunk(w, 100)]).expect("room");
                mine.wait();
                mine.wait();
                j.sync_upto(seq)
            },
        );
        assert_eq!(outcomes.len(), 8);
        assert!(
            outcomes.iter().all(Result::is_err),
            "a record of the failed run passed for durable"
        );
    }

    #[test]
    fn ops_larger_than_the_area_do_not_fit() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("journal");
        let (j, _) = Journal::open(&path, AREA_START + 64 * 1024).expect("create");
        j.restart().expect("restart");
        assert_eq!(append(&j, &[chunk(1, 70 * 1024)]), None);
        assert_eq!(j.used(), 0, "nothing was written");
    }
}
