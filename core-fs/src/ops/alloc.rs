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
pub(crate) fn reserve(kv: &dyn MetaKv, name: &str, count: u64, first: u64) -> FsResult<u64> {
    let key = keys::system(name);
    transact(kv, true, |txn| -> FsResult<u64> {
        let start = read_u64(txn, &key)?.unwrap_or(first);
        txn.put(&key, &(start + count).to_be_bytes())?;
        Ok(start)
    })
}

impl FileSystem {
    /// A fresh inode number.
    pub(crate) fn alloc_inode(&self) -> FsResult<u64> {
        let mut range = self.inode_alloc.lock();
        if range.0 >= range.1 {
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
