//! Removing names: REMOVE and RMDIR.

use super::lookup::validate_name;
use crate::perm;
use crate::record::{self, InodeRecord};
use crate::types::{FileType, Wcc};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::{keys, prefix_end, Txn};

/// Drops one link of `victim` inside `txn`. When it was the last, the
/// inode and its extended attributes go, and a GC record is written in the
/// same transaction so its chunks are deleted even across a crash.
/// Returns the data inodes whose chunks await deletion.
pub(crate) fn drop_link(
    txn: &mut dyn Txn,
    victim: &mut InodeRecord,
    now: Timestamp,
) -> FsResult<Vec<u64>> {
    let last = match victim.kind {
        FileType::Directory => true,
        _ => victim.nlink <= 1,
    };
    if !last {
        victim.nlink -= 1;
        victim.ctime = now;
        record::put_inode(txn, victim)?;
        return Ok(Vec::new());
    }
    crate::quota::release(txn, victim)?;
    txn.delete(&keys::inode(victim.ino))?;
    let xp = keys::xattr_prefix(victim.ino);
    for (k, _) in txn.scan(&xp, &prefix_end(&xp), usize::MAX)? {
        txn.delete(&k)?;
    }
    txn.delete(&keys::acl(victim.ino, 1))?;
    txn.delete(&keys::acl(victim.ino, 2))?;
    if victim.kind != FileType::Regular {
        return Ok(Vec::new());
    }
    if victim.inline {
        txn.delete(&keys::inline(victim.ino))?;
    }
    for seg in &victim.segments {
        txn.delete(&keys::data_owner(seg.ino))?;
    }
    let data = victim.data_inodes();
    for ino in &data {
        txn.put(&keys::gc(*ino), &[])?;
    }
    Ok(data)
}

impl FileSystem {
    /// Removes a non-directory name.
    pub fn remove(&self, cred: &Credentials, dir: InodeId, name: &[u8]) -> FsResult<Wcc> {
        if name == b"." || name == b".." {
            return Err(FsError::Invalid("cannot remove '.' or '..'"));
        }
        validate_name(name)?;
        let (wcc, gc) =
            self.transact_in_dirs(&[dir], true, |txn| -> FsResult<(Wcc, Vec<u64>)> {
                let now = Timestamp::now();
                let mut d = record::load_inode(txn, dir)?;
                perm::check_modify_dir(txn, &d, cred)?;
                let entry = record::get_dentry(txn, dir, name)?.ok_or(FsError::NotFound)?;
                let mut victim = record::load_inode(txn, entry.ino)?;
                if victim.kind == FileType::Directory {
                    return Err(FsError::IsDir);
                }
                perm::check_sticky(&d, &victim, cred)?;
                let before = (&d.attr()).into();
                record::remove_dentry(txn, &mut d, name, &entry)?;
                d.mtime = now;
                d.ctime = now;
                record::put_inode(txn, &d)?;
                let gc = drop_link(txn, &mut victim, now)?;
                Ok((
                    Wcc {
                        before,
                        after: d.attr(),
                    },
                    gc,
                ))
            })?;
        for ino in gc {
            self.delete_chunks(ino);
        }
        Ok(wcc)
    }

    /// Removes an empty directory.
    pub fn rmdir(&self, cred: &Credentials, dir: InodeId, name: &[u8]) -> FsResult<Wcc> {
        if name == b"." {
            return Err(FsError::Invalid("cannot remove '.'"));
        }
        if name == b".." {
            return Err(FsError::NotEmpty);
        }
        validate_name(name)?;
        self.transact_in_dirs(&[dir], true, |txn| -> FsResult<Wcc> {
            let now = Timestamp::now();
            let mut d = record::load_inode(txn, dir)?;
            perm::check_modify_dir(txn, &d, cred)?;
            let entry = record::get_dentry(txn, dir, name)?.ok_or(FsError::NotFound)?;
            let mut victim = record::load_inode(txn, entry.ino)?;
            if victim.kind != FileType::Directory {
                return Err(FsError::NotDir);
            }
            perm::check_sticky(&d, &victim, cred)?;
            if victim.entries > 0 {
                return Err(FsError::NotEmpty);
            }
            let before = (&d.attr()).into();
            record::remove_dentry(txn, &mut d, name, &entry)?;
            d.nlink = d.nlink.saturating_sub(1).max(2);
            d.mtime = now;
            d.ctime = now;
            record::put_inode(txn, &d)?;
            drop_link(txn, &mut victim, now)?;
            Ok(Wcc {
                before,
                after: d.attr(),
            })
        })
    }
}
