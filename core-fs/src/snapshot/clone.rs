//! Cloning a snapshot into a new, writable volume.
//!
//! The clone is built by walking the snapshot through the same read calls
//! NFS uses and recreating every object (type, mode, owner, times,
//! extended attributes, ACLs, hard links, symlinks, device nodes) in a new
//! volume. File data is copied chunk by chunk, skipping holes, so sparse
//! files stay sparse. The snapshot itself is untouched and may be deleted
//! afterwards.

use super::state::vino;
use crate::types::{Attr, CreateHow, FileType, NodeKind, SetAttr, SetTime, Volume};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId};
use nitrofs_metadata::keys;
use std::collections::HashMap;

/// Bytes copied per read.
const COPY_BLOCK: u32 = 1 << 20;

impl FileSystem {
    /// Creates volume `new_volume` holding what snapshot `name` of
    /// `volume` shows.
    pub fn clone_snapshot(&self, volume: &str, name: &str, new_volume: &str) -> FsResult<Volume> {
        let vol = self.volume(volume)?;
        let rec = match self.kv.get(&keys::snapshot(vol.id, name))? {
            Some(b) => super::state::SnapshotRecord::decode(&b)?,
            None => return Err(FsError::NotFound),
        };
        if rec.deleting {
            return Err(FsError::NotFound);
        }
        let src_root = self.getattr(vino(rec.epoch, vol.root))?;
        let new =
            self.create_volume_owned(new_volume, src_root.uid, src_root.gid, src_root.mode)?;
        let cred = Credentials::root();
        self.copy_acls(&cred, &src_root, new.root)?;
        let mut links: HashMap<InodeId, InodeId> = HashMap::new();
        let mut dirs = vec![(src_root.ino, new.root, src_root.clone())];
        let mut dir_times = Vec::new();
        while let Some((src, dst, attr)) = dirs.pop() {
            let mut cookie = 0;
            loop {
                let page = self.readdir(&cred, src, cookie, 256, true)?;
                for e in &page.entries {
                    cookie = e.cookie;
                    if e.name == b"." || e.name == b".." {
                        continue;
                    }
                    let Some(a) = e.attr.clone() else { continue };
                    if let Some(made) = self.clone_entry(&cred, dst, &e.name, &a, &mut links)? {
                        dirs.push((a.ino, made, a));
                    }
                }
                if page.eof {
                    break;
                }
            }
            dir_times.push((dst, attr));
        }
        // Directory times last: creating entries changed them.
        for (dst, attr) in dir_times {
            self.setattr(&cred, dst, &times_of(&attr), None)?;
        }
        tracing::info!(
            volume,
            snapshot = name,
            clone = new_volume,
            "snapshot cloned"
        );
        Ok(new)
    }

    /// Recreates one object; returns the new inode of a directory (to
    /// walk into), `None` otherwise.
    fn clone_entry(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        a: &Attr,
        links: &mut HashMap<InodeId, InodeId>,
    ) -> FsResult<Option<InodeId>> {
        if a.kind != FileType::Directory && a.nlink > 1 {
            if let Some(&made) = links.get(&a.ino) {
                self.link(cred, made, dir, name)?;
                return Ok(None);
            }
        }
        let set = SetAttr {
            mode: Some(a.mode),
            uid: Some(a.uid),
            gid: Some(a.gid),
            ..SetAttr::default()
        };
        let made = match a.kind {
            FileType::Directory => self.mkdir(cred, dir, name, &set)?.0,
            FileType::Regular => {
                let made = self.create(cred, dir, name, &CreateHow::Guarded(set))?.0;
                self.copy_data(cred, a, made.ino)?;
                made
            }
            FileType::Symlink => {
                let (_, target) = self.readlink(cred, a.ino)?;
                self.symlink(cred, dir, name, &target, &set)?.0
            }
            FileType::CharDevice => {
                let kind = NodeKind::CharDevice(a.rdev.0, a.rdev.1);
                self.mknod(cred, dir, name, kind, &set)?.0
            }
            FileType::BlockDevice => {
                let kind = NodeKind::BlockDevice(a.rdev.0, a.rdev.1);
                self.mknod(cred, dir, name, kind, &set)?.0
            }
            FileType::Fifo => self.mknod(cred, dir, name, NodeKind::Fifo, &set)?.0,
            FileType::Socket => self.mknod(cred, dir, name, NodeKind::Socket, &set)?.0,
        };
        let xattrs = self.list_xattrs(cred, a.ino)?;
        if !xattrs.is_empty() {
            let changes: Vec<_> = xattrs.into_iter().map(|(k, v)| (k, Some(v))).collect();
            self.set_xattrs(cred, made.ino, &changes)?;
        }
        self.copy_acls(cred, a, made.ino)?;
        if a.kind == FileType::Directory {
            return Ok(Some(made.ino));
        }
        if a.kind != FileType::Symlink {
            self.setattr(cred, made.ino, &times_of(a), None)?;
        }
        if a.nlink > 1 {
            links.insert(a.ino, made.ino);
        }
        Ok(None)
    }

    /// Gives the clone's file the snapshot file's bytes: shared chunks
    /// when the layouts match (no bytes move), else a copy that leaves
    /// all-zero blocks as holes.
    fn copy_data(&self, cred: &Credentials, src: &Attr, dst: InodeId) -> FsResult<()> {
        if self.share_snapshot_data(src.ino, dst)? {
            let set = SetAttr {
                size: Some(src.size),
                ..SetAttr::default()
            };
            self.setattr(cred, dst, &set, None)?;
            return Ok(());
        }
        let mut offset = 0u64;
        while offset < src.size {
            let r = self.read(cred, src.ino, offset, COPY_BLOCK)?;
            if r.data.is_empty() {
                break;
            }
            if r.data.iter().any(|b| *b != 0) {
                self.write(cred, dst, offset, &r.data, false)?;
            }
            offset += r.data.len() as u64;
        }
        let set = SetAttr {
            size: Some(src.size),
            ..SetAttr::default()
        };
        self.setattr(cred, dst, &set, None)?;
        self.commit(dst)?;
        Ok(())
    }
}

fn times_of(a: &Attr) -> SetAttr {
    SetAttr {
        atime: SetTime::Exact(a.atime),
        mtime: SetTime::Exact(a.mtime),
        ..SetAttr::default()
    }
}
