//! Opening a disk space: rebuild its index from the value records.
//!
//! Only each record's header and key are read, never the value (its
//! checksum is checked when it is read). Torn or damaged records, expired
//! ones and older duplicates of a key are removed; records of a newer
//! format version are left alone. Restored entries enter the main queue
//! with no access credit, in value-id order, and the space is then evicted
//! down to its capacity (which may have been lowered).

use super::format::{DecodeError, RecordHeader, HEADER_LEN};
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
        found.sort_unstable_by_key(|(vid, _, _)| *vid);

        let mut index = Index::new(cfg.capacity);
        for (vid, key, h) in found {
            let data = Data::Disk {
                vid,
                crc: h.value_crc,
            };
            if let Some(older) = index.insert(key, h.value_len, h.expires_at_ms, data, true) {
                if let Data::Disk { vid: old_vid, .. } = older.entry.data {
                    garbage.push(old_vid);
                }
            }
        }
        let mut evicted = Vec::new();
        index.shrink_to_capacity(&mut evicted);

        let state = State {
            index,
            next_vid: max_vid + 1,
            buckets,
        };
        let space = Space::from_parts(cfg, state, Some(chunks), clock);
        space.discard_vids(&garbage);
        space.evicted(evicted);
        Ok(space)
    }
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
