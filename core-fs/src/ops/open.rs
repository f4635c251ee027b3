//! Opening a store: format check, first-start initialisation, boot count.

use super::alloc;
use crate::record::STORE_FORMAT;
use crate::{FileSystem, FsError, FsOptions, FsResult, DEFAULT_VOLUME};
use nitrofs_chunk_store::ChunkStore;
use nitrofs_metadata::{keys, transact, MetaKv};
use parking_lot::Mutex;
use std::sync::Arc;

pub(crate) fn open(
    kv: Arc<dyn MetaKv>,
    chunks: Arc<dyn ChunkStore>,
    opts: FsOptions,
) -> FsResult<FileSystem> {
    if !opts.chunk_size.is_power_of_two() || !(64 * 1024..=64 << 20).contains(&opts.chunk_size) {
        return Err(FsError::Invalid(
            "chunk size must be a power of two from 64 KiB to 64 MiB",
        ));
    }
    let format_key = keys::system(keys::SYS_FORMAT);
    transact(kv.as_ref(), true, |txn| -> FsResult<()> {
        match txn.get(&format_key)? {
            None => txn.put(&format_key, &STORE_FORMAT.to_be_bytes())?,
            Some(v) if v.as_slice() == STORE_FORMAT.to_be_bytes() => {}
            Some(v) => {
                return Err(FsError::Io(format!(
                    "metadata has store format {v:?}, this build reads format {STORE_FORMAT}"
                )))
            }
        }
        Ok(())
    })?;
    let boot_count = alloc::reserve(kv.as_ref(), keys::SYS_BOOT_COUNT, 1, 1)?;
    let caches = crate::cache::MetaCaches::new(opts.cache_entries, opts.inline_cache_bytes);
    let fs = FileSystem {
        kv,
        chunks,
        opts,
        inode_alloc: Mutex::new((0, 0)),
        boot_count,
        inode_locks: (0..crate::INODE_LOCK_STRIPES)
            .map(|_| Mutex::new(()))
            .collect(),
        snap_barrier: parking_lot::RwLock::new(()),
        caches,
        snap_cache: Mutex::new(Default::default()),
        snap_collector: Mutex::new(()),
        quota_gate: Default::default(),
        read_pins: Default::default(),
        unsynced: Default::default(),
    };
    match fs.volume(DEFAULT_VOLUME) {
        Ok(_) => {}
        Err(FsError::NotFound) => match fs.create_volume(DEFAULT_VOLUME) {
            Ok(_) | Err(FsError::Exists) => {}
            Err(e) => return Err(e),
        },
        Err(e) => return Err(e),
    }
    fs.collect_garbage()?;
    fs.resume_quota_walks()?;
    // Finish snapshot deletions and restores a stop interrupted.
    fs.collect_snapshots()?;
    fs.discard_transient()?;
    Ok(fs)
}
