//! Removing value records: of entries that left the index (evicted,
//! expired, replaced, deleted, damaged) and of records recovery found
//! superseded or garbage; and writing one. A record that cannot be removed
//! is kept as a zombie of its key and retried by the key's next put or
//! delete (see the parent module on why that keeps values from coming
//! back).

use super::{bump, chunk_id, records_of, Space, BUCKET_BITS};
use crate::store::format::{crc32c, RecordHeader};
use crate::store::s3fifo::Removed;
use crate::store::StoreError;
use bytes::Bytes;
use nitrofs_chunk_store::ChunkStore;
use std::collections::{BTreeMap, BTreeSet, HashSet};

impl Space {
    /// Counts entries evicted to make room and removes their records (the
    /// caller holds their keys).
    pub(crate) fn evicted(&self, evicted: Vec<Removed>) {
        if !evicted.is_empty() {
            bump(&self.stats.evictions, evicted.len());
            self.discard(evicted);
        }
    }

    /// Finishes opening a disk space: removes the keyless `garbage`
    /// records (damaged, expired), the records `superseded` by newer ones
    /// of their key and those of entries `evicted` to fit the capacity.
    pub(crate) fn finish_recovery(
        &self,
        garbage: &[u64],
        superseded: Vec<(Bytes, u64)>,
        evicted: Vec<Removed>,
    ) {
        if let (_, Err(e)) = self.remove_records(garbage) {
            tracing::warn!(space = %self.cfg.name, error = %e, "kv: removing damaged or expired records failed");
        }
        {
            let mut st = self.state.lock();
            for (key, _) in &superseded {
                st.hold(key);
            }
            st.hold_removed(&evicted);
        }
        self.discard_records(superseded);
        self.evicted(evicted);
    }

    /// Removes the records of entries that left the index (the caller
    /// took a hold on their keys when they left), then releases the holds.
    pub(super) fn discard(&self, removed: Vec<Removed>) {
        let records = records_of(&removed);
        // Memory values are freed here, outside the lock.
        drop(removed);
        self.discard_records(records);
    }

    /// Removes `records` of keys the caller holds, then releases one hold
    /// per record. A record that cannot be removed becomes a zombie of its
    /// key: logged, harmless (the key is not in the index) until the key's
    /// next put or delete, which retries it.
    fn discard_records(&self, records: Vec<(Bytes, u64)>) {
        if records.is_empty() {
            return;
        }
        let vids: Vec<u64> = records.iter().map(|(_, vid)| *vid).collect();
        let (failed, result) = self.remove_records(&vids);
        if let Err(e) = result {
            tracing::warn!(space = %self.cfg.name, error = %e, "kv: removing value records failed");
        }
        let failed: HashSet<u64> = failed.into_iter().collect();
        let mut st = self.state.lock();
        for (key, vid) in records {
            if failed.contains(&vid) {
                st.zombies.entry(key.clone()).or_default().push(vid);
            }
            self.release_key(&mut st, &key);
        }
    }

    /// Durably removes `vids`, older records of `key` (whose key the
    /// caller holds); those that remain become zombies of the key.
    pub(super) fn remove_stale(&self, key: &[u8], vids: Vec<u64>) -> Result<(), StoreError> {
        if vids.is_empty() {
            return Ok(());
        }
        let (failed, err) = self.remove_records(&vids);
        if !failed.is_empty() {
            self.state
                .lock()
                .zombies
                .entry(Bytes::copy_from_slice(key))
                .or_default()
                .extend(failed);
        }
        err
    }

    /// Removes value records durably, then any bucket directory they left
    /// empty for good. Returns the records that may still exist and the
    /// first error.
    fn remove_records(&self, vids: &[u64]) -> (Vec<u64>, Result<(), StoreError>) {
        let Some(chunks) = &self.chunks else {
            return (Vec::new(), Ok(()));
        };
        let mut first_err: Option<StoreError> = None;
        let mut failed = Vec::new();
        let mut by_ino: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &vid in vids {
            match chunks.remove(chunk_id(vid)) {
                Ok(()) => by_ino.entry(vid >> BUCKET_BITS).or_default().push(vid),
                Err(e) => {
                    failed.push(vid);
                    first_err.get_or_insert(e.into());
                }
            }
        }
        let mut gone = Vec::with_capacity(vids.len());
        for (ino, vids) in by_ino {
            match chunks.sync(ino) {
                Ok(()) => gone.extend(vids),
                // Unlinked but perhaps not durably: try again later (the
                // chunk engine keeps the directory dirty).
                Err(e) => {
                    failed.extend(vids);
                    first_err.get_or_insert(e.into());
                }
            }
        }
        let empty: BTreeSet<u64> = {
            let mut st = self.state.lock();
            let current = st.next_vid >> BUCKET_BITS;
            let mut empty = BTreeSet::new();
            for vid in gone {
                let bucket = vid >> BUCKET_BITS;
                if let Some(n) = st.buckets.get_mut(&bucket) {
                    *n = n.saturating_sub(1);
                    if *n == 0 && bucket < current {
                        st.buckets.remove(&bucket);
                        empty.insert(bucket);
                    }
                }
            }
            empty
        };
        for bucket in empty {
            // A leftover empty bucket is harmless: recovery removes it.
            if let Err(e) = chunks.remove_from(bucket, 0) {
                tracing::warn!(space = %self.cfg.name, bucket, error = %e, "kv: removing an empty bucket failed");
            }
        }
        (failed, first_err.map_or(Ok(()), Err))
    }
}

/// Writes and fsyncs one value record: header and key, then the value
/// (not copied). Returns the value's CRC-32C.
pub(super) fn write_record(
    chunks: &dyn ChunkStore,
    vid: u64,
    key: &[u8],
    value: &[u8],
    expires_at: u64,
) -> Result<u32, StoreError> {
    let crc = crc32c(value);
    let head = RecordHeader {
        key_len: key.len() as u32,
        value_len: value.len() as u64,
        expires_at_ms: expires_at,
        value_crc: crc,
    }
    .encode_with_key(key);
    let id = chunk_id(vid);
    chunks.write(id, 0, &head)?;
    chunks.write(id, head.len() as u64, value)?;
    chunks.sync(id.ino)?;
    Ok(crc)
}
