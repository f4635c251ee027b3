//! Extended attributes. S3 object metadata (content type, user metadata,
//! ETag) is stored here, so it follows the file through NFS renames.

use crate::perm::{self, R, W};
use crate::record;
use crate::types::Attr;
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::{keys, prefix_end};

/// Longest attribute name, in bytes.
pub const XATTR_NAME_MAX: usize = 255;
/// Largest attribute value, in bytes.
pub const XATTR_VALUE_MAX: usize = 64 * 1024;

fn check_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() || name.contains(&0) {
        return Err(FsError::Invalid("bad extended attribute name"));
    }
    if name.len() > XATTR_NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    Ok(())
}

impl FileSystem {
    /// One attribute of `ino`, if set. Needs read permission.
    pub fn get_xattr(
        &self,
        cred: &Credentials,
        ino: InodeId,
        name: &[u8],
    ) -> FsResult<Option<Vec<u8>>> {
        check_name(name)?;
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            return Ok(self
                .snap_xattrs(cred, ino, Some(name))?
                .pop()
                .map(|(_, v)| v));
        }
        let rec = self.read_inode(ino)?;
        perm::check_data(&mut self.store_acls(), &rec, cred, R)?;
        Ok(self.kv.get(&keys::xattr(ino, name))?)
    }

    /// Every attribute of `ino`, in name order. Needs read permission.
    pub fn list_xattrs(
        &self,
        cred: &Credentials,
        ino: InodeId,
    ) -> FsResult<Vec<(Vec<u8>, Vec<u8>)>> {
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            return self.snap_xattrs(cred, ino, None);
        }
        let rec = self.read_inode(ino)?;
        perm::check_data(&mut self.store_acls(), &rec, cred, R)?;
        let prefix = keys::xattr_prefix(ino);
        let plen = prefix.len();
        Ok(self
            .kv
            .scan(&prefix, &prefix_end(&prefix), usize::MAX)?
            .into_iter()
            .map(|(k, v)| (k[plen..].to_vec(), v))
            .collect())
    }

    /// Sets (`Some`) or removes (`None`) attributes in one transaction.
    /// Needs write permission (the owner always has it); updates ctime.
    pub fn set_xattrs(
        &self,
        cred: &Credentials,
        ino: InodeId,
        changes: &[(Vec<u8>, Option<Vec<u8>>)],
    ) -> FsResult<Attr> {
        for (name, value) in changes {
            check_name(name)?;
            if value.as_ref().is_some_and(|v| v.len() > XATTR_VALUE_MAX) {
                return Err(FsError::TooBig);
            }
        }
        let now = Timestamp::now();
        self.transact(true, |txn| -> FsResult<Attr> {
            let mut rec = record::load_inode(txn, ino)?;
            if !(cred.is_root() || cred.uid == rec.uid || perm::allowed(txn, &rec, cred, W)?) {
                return Err(FsError::Access);
            }
            for (name, value) in changes {
                match value {
                    Some(v) => txn.put(&keys::xattr(ino, name), v)?,
                    None => txn.delete(&keys::xattr(ino, name))?,
                }
            }
            rec.ctime = now;
            record::put_inode(txn, &rec)?;
            Ok(rec.attr())
        })
    }
}
