//! Making names: CREATE, MKDIR, SYMLINK, MKNOD and LINK.

use super::attr::apply_setattr;
use super::lookup::{is_dot, validate_name};
use crate::perm;
use crate::record::{self, InodeRecord};
use crate::types::{
    Attr, CreateHow, FileType, NodeKind, SetAttr, Wcc, LINK_MAX, PATH_MAX, S_ISGID,
};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::Txn;

/// What kind of object a create makes.
pub(crate) struct NewNode<'a> {
    kind: FileType,
    default_mode: u32,
    set: &'a SetAttr,
    target: Option<&'a [u8]>,
    rdev: (u32, u32),
    verf: Option<[u8; 8]>,
}

impl<'a> NewNode<'a> {
    /// A directory with attributes `set` (mode 0755 unless given).
    pub(crate) fn directory(set: &'a SetAttr) -> Self {
        Self {
            kind: FileType::Directory,
            default_mode: 0o755,
            set,
            target: None,
            rdev: (0, 0),
            verf: None,
        }
    }
}

/// The outcome of looking at an existing name during CREATE.
enum Existing {
    /// Return this object as the result (UNCHECKED / EXCLUSIVE retry).
    Reuse(InodeRecord),
    /// Fail with this error.
    Fail(FsError),
}

impl FileSystem {
    /// Creates (or, per `how`, opens) a regular file.
    pub fn create(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        how: &CreateHow,
    ) -> FsResult<(Attr, Wcc)> {
        let empty = SetAttr::default();
        let (set, verf) = match how {
            CreateHow::Unchecked(s) | CreateHow::Guarded(s) => (s, None),
            CreateHow::Exclusive(v) => (&empty, Some(*v)),
        };
        let node = NewNode {
            kind: FileType::Regular,
            default_mode: 0o644,
            set,
            target: None,
            rdev: (0, 0),
            verf,
        };
        if matches!(how, CreateHow::Unchecked(s) if s.size == Some(0)) {
            self.truncate_existing_for_create(cred, dir, name)?;
        }
        let (attr, wcc, _) = self.make_node(cred, dir, name, &node, |existing| match how {
            CreateHow::Guarded(_) => Existing::Fail(FsError::Exists),
            CreateHow::Unchecked(_) if existing.kind == FileType::Regular => {
                Existing::Reuse(existing.clone())
            }
            CreateHow::Exclusive(v)
                if existing.kind == FileType::Regular && existing.create_verf == Some(*v) =>
            {
                Existing::Reuse(existing.clone())
            }
            _ => Existing::Fail(FsError::Exists),
        })?;
        Ok((attr, wcc))
    }

    /// UNCHECKED create with size 0 of an existing file truncates it: drop
    /// its chunk data before the metadata commit (as SETATTR does), so a
    /// crash cannot leave stale bytes behind a zero size.
    fn truncate_existing_for_create(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
    ) -> FsResult<()> {
        let existing = match self.lookup(cred, dir, name) {
            Ok(a) => a,
            Err(_) => return Ok(()), // no such file: the create path reports errors
        };
        if existing.kind != FileType::Regular || existing.size == 0 {
            return Ok(());
        }
        let rec = self.read_inode(existing.ino)?;
        perm::check_data(&mut self.store_acls(), &rec, cred, perm::W)?;
        perm::check_modify_dir(&mut self.store_acls(), &self.read_inode(dir)?, cred)?;
        self.truncate_chunks(&rec, 0)
    }

    /// Creates a directory.
    pub fn mkdir(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        set: &SetAttr,
    ) -> FsResult<(Attr, Wcc)> {
        let node = NewNode::directory(set);
        let (a, w, _) =
            self.make_node(cred, dir, name, &node, |_| Existing::Fail(FsError::Exists))?;
        Ok((a, w))
    }

    /// Creates a symbolic link to `target`.
    pub fn symlink(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        target: &[u8],
        set: &SetAttr,
    ) -> FsResult<(Attr, Wcc)> {
        if target.is_empty() {
            return Err(FsError::Invalid("empty symlink target"));
        }
        if target.len() > PATH_MAX {
            return Err(FsError::NameTooLong);
        }
        let node = NewNode {
            kind: FileType::Symlink,
            default_mode: 0o777,
            set,
            target: Some(target),
            rdev: (0, 0),
            verf: None,
        };
        let (a, w, _) =
            self.make_node(cred, dir, name, &node, |_| Existing::Fail(FsError::Exists))?;
        Ok((a, w))
    }

    /// Creates a device node, FIFO or socket.
    pub fn mknod(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        kind: NodeKind,
        set: &SetAttr,
    ) -> FsResult<(Attr, Wcc)> {
        let (ft, rdev) = match kind {
            NodeKind::CharDevice(ma, mi) => (FileType::CharDevice, (ma, mi)),
            NodeKind::BlockDevice(ma, mi) => (FileType::BlockDevice, (ma, mi)),
            NodeKind::Fifo => (FileType::Fifo, (0, 0)),
            NodeKind::Socket => (FileType::Socket, (0, 0)),
        };
        if matches!(ft, FileType::CharDevice | FileType::BlockDevice) && !cred.is_root() {
            return Err(FsError::Perm);
        }
        let node = NewNode {
            kind: ft,
            default_mode: 0o644,
            set,
            target: None,
            rdev,
            verf: None,
        };
        let (a, w, _) =
            self.make_node(cred, dir, name, &node, |_| Existing::Fail(FsError::Exists))?;
        Ok((a, w))
    }

    /// Adds the name `name` in `dir` for the existing object `ino`.
    pub fn link(
        &self,
        cred: &Credentials,
        ino: InodeId,
        dir: InodeId,
        name: &[u8],
    ) -> FsResult<(Attr, Wcc)> {
        if is_dot(name) {
            return Err(FsError::Exists);
        }
        validate_name(name)?;
        self.transact_in_dirs(&[dir], true, |txn| -> FsResult<(Attr, Wcc)> {
            let now = Timestamp::now();
            let mut file = record::load_inode(txn, ino)?;
            let mut d = record::load_inode(txn, dir)?;
            if file.kind == FileType::Directory {
                return Err(FsError::Perm);
            }
            if file.volume != d.volume {
                return Err(FsError::CrossDevice);
            }
            perm::check_modify_dir(txn, &d, cred)?;
            if file.nlink >= LINK_MAX {
                return Err(FsError::TooManyLinks);
            }
            if record::get_dentry(txn, dir, name)?.is_some() {
                return Err(FsError::Exists);
            }
            let before = (&d.attr()).into();
            self.quota_check_link(txn, &file, dir)?;
            record::add_dentry(txn, &mut d, name, ino, file.kind)?;
            d.mtime = now;
            d.ctime = now;
            file.nlink += 1;
            file.ctime = now;
            record::put_inode(txn, &d)?;
            record::put_inode(txn, &file)?;
            Ok((
                file.attr(),
                Wcc {
                    before,
                    after: d.attr(),
                },
            ))
        })
    }

    /// The shared body of every create: one transaction that checks the
    /// parent, handles an existing name, and writes the inode and entry.
    /// Returns the object, the parent's WCC, and — when UNCHECKED reused a
    /// file and truncated it to zero — the record before truncation.
    fn make_node(
        &self,
        cred: &Credentials,
        dir: InodeId,
        name: &[u8],
        node: &NewNode<'_>,
        on_existing: impl Fn(&InodeRecord) -> Existing,
    ) -> FsResult<(Attr, Wcc, Option<InodeRecord>)> {
        if is_dot(name) {
            return Err(FsError::Exists);
        }
        validate_name(name)?;
        let ino = self.alloc_inode()?;
        self.transact_in_dirs(&[dir], true, |txn| {
            let now = Timestamp::now();
            let mut d = record::load_inode(txn, dir)?;
            perm::check_modify_dir(txn, &d, cred)?;
            let before = (&d.attr()).into();
            if let Some(existing) = record::get_dentry(txn, dir, name)? {
                let rec = record::load_inode(txn, existing.ino)?;
                return match on_existing(&rec) {
                    Existing::Fail(e) => Err(e),
                    Existing::Reuse(mut rec) => {
                        let mut truncated = None;
                        if node.set.size == Some(0) && rec.size > 0 {
                            let old = rec.clone();
                            let only_size = SetAttr {
                                size: Some(0),
                                ..SetAttr::default()
                            };
                            apply_setattr(txn, &mut rec, cred, &only_size, now)?;
                            super::io::trim_after_resize(txn, &mut rec)?;
                            self.quota_on_update(txn, &old, &rec, None)?;
                            record::put_inode(txn, &rec)?;
                            truncated = Some(old);
                        }
                        Ok((
                            rec.attr(),
                            Wcc {
                                before,
                                after: d.attr(),
                            },
                            truncated,
                        ))
                    }
                };
            }
            let child = self.add_child(txn, &mut d, cred, name, ino, node, now)?;
            Ok((
                child.attr(),
                Wcc {
                    before,
                    after: d.attr(),
                },
                None,
            ))
        })
    }

    /// Creates inode `ino` as `name` in `parent` inside `txn`: builds its
    /// record, adds the entry, stamps the parent's times and writes both.
    /// The caller has checked permission on `parent` and that `name` is free.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn add_child(
        &self,
        txn: &mut dyn Txn,
        parent: &mut InodeRecord,
        cred: &Credentials,
        name: &[u8],
        ino: u64,
        node: &NewNode<'_>,
        now: Timestamp,
    ) -> FsResult<InodeRecord> {
        let mut child = self.build_child(txn, parent, cred, ino, node, now)?;
        crate::acl::inherit(txn, parent, &mut child)?;
        self.quota_on_create(txn, parent.ino, &child)?;
        record::add_dentry(txn, parent, name, ino, node.kind)?;
        parent.mtime = now;
        parent.ctime = now;
        record::put_inode(txn, parent)?;
        record::put_inode(txn, &child)?;
        Ok(child)
    }

    /// The new inode's record, with ownership and mode following POSIX
    /// (setgid directories pass on their group, and their bit to subdirs).
    fn build_child(
        &self,
        txn: &mut dyn Txn,
        parent: &mut InodeRecord,
        cred: &Credentials,
        ino: u64,
        node: &NewNode<'_>,
        now: Timestamp,
    ) -> FsResult<InodeRecord> {
        let sgid_dir = parent.mode & S_ISGID != 0;
        let gid = if sgid_dir { parent.gid } else { cred.gid };
        let mut mode = node.set.mode.unwrap_or(node.default_mode);
        if node.kind == FileType::Symlink {
            mode = 0o777;
        }
        let mut child = self.new_record(ino, parent.volume, node.kind, mode, cred.uid, gid, now);
        if node.kind == FileType::Directory {
            child.parent = parent.ino;
            if sgid_dir {
                child.mode |= S_ISGID;
            }
            if parent.nlink >= LINK_MAX {
                return Err(FsError::TooManyLinks);
            }
            parent.nlink += 1;
        } else if child.mode & S_ISGID != 0 && !cred.is_root() && !cred.in_group(child.gid) {
            child.mode &= !S_ISGID;
        }
        if let Some(t) = node.target {
            child.size = t.len() as u64;
            child.target = Some(t.to_vec());
        }
        child.rdev = node.rdev;
        child.create_verf = node.verf;
        // Ownership and times given with the create (mode is applied above).
        let extra = SetAttr {
            mode: None,
            size: None,
            ..node.set.clone()
        };
        if extra != SetAttr::default() {
            let verf = child.create_verf;
            apply_setattr(txn, &mut child, cred, &extra, now)?;
            child.create_verf = verf;
        }
        Ok(child)
    }
}
