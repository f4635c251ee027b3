//! Opening a disk space: rebuild its index from the value records.
//!
//! Only each record's header and key are read, not the value (its
//! checksum is checked when it is read), except for keys with more than
//! one record: there the newest record whose value passes its checksum
//! wins, so a torn newer record (a put that crashed before it was
//! acknowledged) does not hide the older value it was replacing. Torn or
//! damaged records, expired ones and older duplicates of a key are
//! removed; records of a newer format version are left alone. Restored
//! entries enter the main queue with no access credit, in value-id order,
//! and the space is then evicted down to its capacity (which may have been
//! lowered).

use super::format::{crc32c, DecodeError, RecordHeader, HEADER_LEN};
use super::s3fifo::{Data, Index};
use super::space::{chunk_id, State, BUCKET_BITS};
use super::{Clock, Space, SpaceConfig, StoreError, MAX_KEY, MAX_VALUE};
use bytes::Bytes;
use nitrofs_chunk_store::{ChunkId, ChunkStore, LocalChunkStore};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// What the head of one record says.
enum Head {
    Valid(Bytes, RecordHeader),
    /// Garbage: remove it.
    Invalid(String),
    /// From a newer build: keep it, do not index it.
    Unsupported(String),
}

impl Space {
    /// Opens the disk space `cfg` whose records live under `dir`.
    pub(crate) fn open_disk(
        cfg: SpaceConfig,
        dir: &Path,
        clock: Arc<dyn Clock>,
    ) -> Result<Space, StoreError> {
        let chunks: Arc<dyn ChunkStore> = Arc::new(LocalChunkStore::open(dir)?);
        Self::recover(cfg, chunks, clock)
    }

    /// Rebuilds a disk space's index from the records in `chunks`.
    pub(crate) fn recover(
        cfg: SpaceConfig,
        chunks: Arc<dyn ChunkStore>,
        clock: Arc<dyn Clock>,
    ) -> Result<Space, StoreError> {
        let now = clock.now_ms();
        let mut found: Vec<(u64, Bytes, RecordHeader)> = Vec::new();
        let mut garbage: Vec<u64> = Vec::new();
        let mut buckets: HashMap<u64, u32> = HashMap::new();
        let mut max_vid = 0u64;
        for ino in chunks.inodes()? {
            let vids = chunks.indexes(ino)?;
            if vids.is_empty() {
                // A bucket emptied before a crash.
                chunks.remove_from(ino, 0)?;
                continue;
            }
            for vid in vids {
                if vid >> BUCKET_BITS != ino {
                    tracing::warn!(space = %cfg.name, ino, vid, "kv: misplaced record removed");
                    chunks.remove(ChunkId { ino, index: vid })?;
                    chunks.sync(ino)?;
                    continue;
                }
                max_vid = max_vid.max(vid);
                *buckets.entry(ino).or_default() += 1;
                match read_head(chunks.as_ref(), vid)? {
                    Head::Valid(key, h) if h.expires_at_ms != 0 && now >= h.expires_at_ms => {
                        drop(key);
                        garbage.push(vid);
                    }
                    Head::Valid(key, h) => found.push((vid, key, h)),
                    Head::Invalid(why) => {
                        tracing::warn!(space = %cfg.name, vid, why, "kv: damaged record dropped");
                        garbage.push(vid);
                    }
                    Head::Unsupported(why) => {
                        tracing::warn!(space = %cfg.name, vid, why, "kv: record of a newer format kept but not served");
                    }
                }
            }
        }
        let (found, superseded) = newest_valid(chunks.as_ref(), found, &mut garbage)?;

        let mut index = Index::new(cfg.capacity);
        for (vid, key, h) in found {
            let data = Data::Disk {
                vid,
                crc: h.value_crc,
            };
            // One record per key is left: nothing is replaced.
            index.insert(key, h.value_len, h.expires_at_ms, data, true);
        }
        let mut evicted = Vec::new();
        index.shrink_to_capacity(&mut evicted);

        // `u64::MAX` is never handed out (it means "exhausted"), so a
        // record named `u64::MAX` cannot be overwritten by a new one.
        let next_vid = max_vid.saturating_add(1).max(1);
        let state = State::new(index, next_vid, buckets);
        let space = Space::from_parts(cfg, state, Some(chunks), clock);
        space.finish_recovery(&garbage, superseded, evicted);
        Ok(space)
    }
}

/// A record found by recovery: value id, key, header.
type Found = (u64, Bytes, RecordHeader);

/// Records kept (one per key), and older records they supersede.
type Kept = (Vec<Found>, Vec<(Bytes, u64)>);

/// Keeps one record per key: the newest, or, for a key with several, the
/// newest whose value passes its checksum. Returns the records kept in
/// value-id order and the older records they supersede, with their keys;
/// newer records that failed their checksum go to `garbage`.
fn newest_valid(
    chunks: &dyn ChunkStore,
    mut found: Vec<Found>,
    garbage: &mut Vec<u64>,
) -> Result<Kept, StoreError> {
    found.sort_unstable_by(|a, b| a.1.cmp(&b.1).then(a.0.cmp(&b.0)));
    let mut kept = Vec::with_capacity(found.len());
    let mut superseded = Vec::new();
    let mut records = found.into_iter().peekable();
    while let Some(first) = records.next() {
        let mut group = vec![first];
        while let Some(next) = records.next_if(|r| r.1 == group[0].1) {
            group.push(next);
        }
        if group.len() == 1 {
            kept.extend(group);
            continue;
        }
        // Newest first; the first whose value checks out wins.
        let mut winner = None;
        while let Some((vid, key, h)) = group.pop() {
            if value_ok(chunks, vid, &h)? {
                winner = Some((vid, key, h));
                break;
            }
            tracing::warn!(
                vid,
                "kv: newer duplicate record fails its value checksum; dropped"
            );
            garbage.push(vid);
        }
        if let Some(w) = winner {
            superseded.extend(group.into_iter().map(|(vid, key, _)| (key, vid)));
            kept.push(w);
        }
    }
    kept.sort_unstable_by_key(|(vid, _, _)| *vid);
    Ok((kept, superseded))
}

/// Whether record `vid`'s value is whole and matches its checksum.
fn value_ok(chunks: &dyn ChunkStore, vid: u64, h: &RecordHeader) -> Result<bool, StoreError> {
    let len = usize::try_from(h.value_len).map_err(|_| {
        StoreError::Corrupt(format!(
            "record {vid}: value length {} does not fit in memory",
            h.value_len
        ))
    })?;
    let value = chunks.read(chunk_id(vid), h.value_offset(), len)?;
    Ok(value.len() == len && crc32c(&value) == h.value_crc)
}

/// Reads and checks the header and key of record `vid`, and that the
/// record is as long as the header says.
fn read_head(chunks: &dyn ChunkStore, vid: u64) -> Result<Head, StoreError> {
    let id = chunk_id(vid);
    let raw = chunks.read(id, 0, HEADER_LEN)?;
    let h = match RecordHeader::decode(&raw) {
        Ok(h) => h,
        Err(DecodeError::Invalid(why)) => return Ok(Head::Invalid(why)),
        Err(DecodeError::Unsupported(why)) => return Ok(Head::Unsupported(why)),
    };
    let key_len = h.key_len as usize;
    if key_len == 0 || key_len > MAX_KEY || h.value_len > MAX_VALUE {
        return Ok(Head::Invalid(format!(
            "key of {key_len} or value of {} bytes out of range",
            h.value_len
        )));
    }
    let key = chunks.read(id, HEADER_LEN as u64, key_len)?;
    if key.len() != key_len {
        return Ok(Head::Invalid("torn key".into()));
    }
    if !RecordHeader::verify(&raw, &key) {
        return Ok(Head::Invalid("header checksum mismatch".into()));
    }
    if h.value_len > 0 && chunks.read(id, h.record_len() - 1, 1)?.is_empty() {
        return Ok(Head::Invalid("torn value".into()));
    }
    Ok(Head::Valid(key, h))
}
