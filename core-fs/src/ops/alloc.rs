//! Inode number allocation: ranges are reserved in metadata (one small
//! transaction per range), then handed out from memory. Numbers are never
//! reused, so a handle to a deleted inode can never name a new one.

use crate::{FileSystem, FsError, FsResult};
use nitrofs_metadata::{keys, transact, MetaKv, Txn};

/// Inode numbers reserved per metadata transaction.
const RESERVE: u64 = 1024;

/// First inode number ever handed out (0 and 1 are never used).
pub(crate) const FIRST_INODE: u64 = 2;

pub(crate) fn read_u64(txn: &mut dyn Txn, key: &[u8]) -> FsResult<Option<u64>> {
    match txn.get(key)? {
        Some(v) => {
            let arr: [u8; 8] = v
                .as_slice()
                .try_into()
                .map_err(|_| FsError::Io("corrupt counter record".into()))?;
            Ok(Some(u64::from_be_bytes(arr)))
        }
        None => Ok(None),
    }
}

/// Reserves `count` numbers from the counter at `name`; returns the first.
/// The reservation is durable when this returns, even inside
/// `deferring_sync`: numbers name chunk files, so one handed out must
/// never be handed out again after a crash.
pub(crate) fn reserve(kv: &dyn MetaKv, name: &str, count: u64, first: u64) -> FsResult<u64> {
    let key = keys::system(name);
    nitrofs_metadata::not_deferred(|| {
        transact(kv, true, |txn| -> FsResult<u64> {
            let start = read_u64(txn, &key)?.unwrap_or(first);
            txn.put(&key, &(start + count).to_be_bytes())?;
            Ok(start)
        })
    })
}

impl FileSystem {
    /// A fresh inode number.
    pub(crate) fn alloc_inode(&self) -> FsResult<u64> {
        // Inside `memory_only` (an executor thread) neither wait long for
        // the lock, held across a reservation's log sync, nor reserve.
        let mut range = crate::lock_on_executor(&self.inode_alloc)?;
        if range.0 >= range.1 {
            nitrofs_metadata::may_wait()?;
            let start = reserve(self.kv.as_ref(), keys::SYS_NEXT_INODE, RESERVE, FIRST_INODE)?;
            *range = (start, start + RESERVE);
        }
        let ino = range.0;
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            // Higher numbers name objects inside snapshots.
            return Err(crate::FsError::NoSpace);
        }
        range.0 += 1;
        Ok(ino)
    }
}

#[cfg(test)]
mod tests {
    use crate::{memory_only, CreateHow, Credentials, FileSystem, FsError, FsOptions, SetAttr};
    use std::sync::Arc;

    #[test]
    fn inside_memory_only_a_busy_lock_or_a_new_inode_range_is_a_miss_not_a_wait() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chunks = nitrofs_chunk_store::LocalChunkStore::open(&dir.path().join("chunks"))
            .expect("chunk store");
        let fs = FileSystem::open(
            Arc::new(nitrofs_metadata::MemKv::new()),
            Arc::new(chunks),
            FsOptions::default(),
        )
        .expect("open");
        let root = fs.volume("default").expect("volume").root;
        let cred = Credentials::root();
        let how = CreateHow::Guarded(SetAttr::default());
        let create = |name: &[u8]| memory_only(|| fs.create(&cred, root, name, &how));
        fs.create(&cred, root, b"first", &how).expect("create");
        // The directory's stripe, held by another thread's change.
        let held = fs.inode_locks[FileSystem::inode_stripe(root)].lock();
        assert!(create(b"a").is_none(), "waited for the directory's lock");
        drop(held);
        // The allocator, held across a reservation's sync.
        let held = fs.inode_alloc.lock();
        assert!(create(b"b").is_none(), "waited for the inode allocator");
        drop(held);
        // A used-up range: a new reservation syncs the log, not here.
        {
            let mut range = fs.inode_alloc.lock();
            range.0 = range.1;
        }
        assert!(
            create(b"c").is_none(),
            "reserved inode numbers inside memory_only"
        );
        for name in [&b"a"[..], b"b", b"c"] {
            assert!(
                matches!(fs.lookup(&cred, root, name), Err(FsError::NotFound)),
                "a missed attempt left {name:?} behind"
            );
        }
        fs.create(&cred, root, b"d", &how)
            .expect("create where it may wait");
        let made = create(b"e").expect("runs in memory once nothing blocks");
        made.expect("create");
    }
}
