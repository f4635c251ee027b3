//! Read-only namespace calls: getattr, handle resolution, lookup,
//! path walk and readlink.

use crate::cache::InlineStamp;
use crate::perm;
use crate::record::{self, InodeRecord};
use crate::snapshot::LIVE_INO_LIMIT;
use crate::types::{Attr, FileType, NAME_MAX};
use crate::{FileSystem, FsError, FsResult};
use bytes::Bytes;
use nitrofs_common::{Credentials, InodeId, VolumeId};
use nitrofs_metadata::keys;

/// Rejects names no directory entry may have.
pub(crate) fn validate_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() {
        return Err(FsError::Invalid("empty name"));
    }
    if name.len() > NAME_MAX {
        return Err(FsError::NameTooLong);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::Invalid("name contains '/' or NUL"));
    }
    Ok(())
}

/// Whether `name` is `.` or `..`, which no operation may create or remove.
pub(crate) fn is_dot(name: &[u8]) -> bool {
    name == b"." || name == b".."
}

impl FileSystem {
    /// Reads an inode outside a transaction; absent means stale.
    pub(crate) fn read_inode(&self, ino: InodeId) -> FsResult<InodeRecord> {
        if ino >= LIVE_INO_LIMIT {
            // Inside a snapshot: callers that get here want to change it.
            return Err(FsError::ReadOnly);
        }
        let generation = match self.caches.inodes.get(&ino) {
            Ok(rec) => return Ok(rec),
            Err(g) => g,
        };
        match self.kv.get(&keys::inode(ino))? {
            Some(b) => {
                let rec = InodeRecord::decode(&b)?;
                self.caches.inodes.fill(ino, rec.clone(), generation);
                Ok(rec)
            }
            None => Err(FsError::Stale),
        }
    }

    /// Reads inline file `rec`'s bytes outside a transaction; `None` if it
    /// holds none (no bytes written yet, or moved to chunks). Cached bytes
    /// are taken only if they go with `rec` (see [`InlineStamp`]).
    pub(crate) fn read_inline(&self, rec: &InodeRecord) -> FsResult<Option<Bytes>> {
        let stamp = InlineStamp::of(rec);
        let generation = match self.caches.inline.get_if(&rec.ino, |(s, _)| *s == stamp) {
            Ok((_, bytes)) => return Ok(Some(bytes)),
            Err(g) => g,
        };
        let bytes = self.kv.get(&keys::inline(rec.ino))?.map(Bytes::from);
        if let Some(b) = &bytes {
            self.caches
                .inline
                .fill(rec.ino, (stamp, b.clone()), generation);
        }
        Ok(bytes)
    }

    /// Reads the entry `name` of directory `dir` outside a transaction.
    fn read_dentry(&self, dir: InodeId, name: &[u8]) -> FsResult<Option<record::DentryRecord>> {
        let key = keys::dentry(dir, name);
        let generation = match self.caches.dentries.get(&key) {
            Ok(entry) => return Ok(entry),
            Err(g) => g,
        };
        let entry = match self.kv.get(&key)? {
            Some(b) => Some(record::DentryRecord::decode(&b)?),
            None => None,
        };
        self.caches.dentries.fill(key, entry, generation);
        Ok(entry)
    }

    /// Attributes of an inode.
    pub fn getattr(&self, ino: InodeId) -> FsResult<Attr> {
        if ino >= LIVE_INO_LIMIT {
            return self.snap_getattr(ino);
        }
        Ok(self.read_inode(ino)?.attr())
    }

    /// Checks that a handle's parts still name a live object.
    pub fn resolve_handle(
        &self,
        volume: VolumeId,
        ino: InodeId,
        generation: u32,
    ) -> FsResult<Attr> {
        if ino >= LIVE_INO_LIMIT {
            return self.snap_resolve(volume, ino, generation);
        }
        let rec = self.read_inode(ino)?;
        if rec.generation != generation || rec.volume != volume {
            return Err(FsError::Stale);
        }
        Ok(rec.attr())
    }

    /// Looks `name` up in directory `dir`.
    pub fn lookup(&self, cred: &Credentials, dir: InodeId, name: &[u8]) -> FsResult<Attr> {
        if dir >= LIVE_INO_LIMIT {
            return self.snap_lookup(cred, dir, name);
        }
        let d = self.read_inode(dir)?;
        perm::check_search(&mut self.store_acls(), &d, cred)?;
        if Self::is_snapdir_name(&d, name) {
            return Ok(self.snapdir_attr(&d));
        }
        if name == b"." {
            return Ok(d.attr());
        }
        if name == b".." {
            return self.getattr(d.parent).map_err(|e| match e {
                FsError::Stale => FsError::NotFound,
                e => e,
            });
        }
        validate_name(name)?;
        let Some(entry) = self.read_dentry(dir, name)? else {
            return Err(FsError::NotFound);
        };
        // A concurrent remove may have deleted the inode since: not found.
        self.read_inode(entry.ino)
            .map(|r| r.attr())
            .map_err(|e| match e {
                FsError::Stale => FsError::NotFound,
                e => e,
            })
    }

    /// Walks `path` ("a/b/c", leading and repeated '/' ignored) from
    /// `root`, checking search permission on every directory.
    pub fn lookup_path(&self, cred: &Credentials, root: InodeId, path: &str) -> FsResult<Attr> {
        let mut cur = self.getattr(root)?;
        for comp in path.split('/').filter(|c| !c.is_empty() && *c != ".") {
            if comp == ".." {
                return Err(FsError::Invalid("'..' in a mount path"));
            }
            if cur.kind != FileType::Directory {
                return Err(FsError::NotDir);
            }
            cur = self.lookup(cred, cur.ino, comp.as_bytes())?;
        }
        Ok(cur)
    }

    /// The target of a symbolic link.
    pub fn readlink(&self, _cred: &Credentials, ino: InodeId) -> FsResult<(Attr, Vec<u8>)> {
        if ino >= LIVE_INO_LIMIT {
            return self.snap_readlink(ino);
        }
        let rec = self.read_inode(ino)?;
        match (&rec.kind, &rec.target) {
            (FileType::Symlink, Some(t)) => Ok((rec.attr(), t.clone())),
            _ => Err(FsError::Invalid("not a symbolic link")),
        }
    }
}
