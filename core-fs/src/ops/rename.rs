//! RENAME: atomic, across directories, replacing a target as POSIX says.

use super::lookup::{is_dot, validate_name};
use super::remove::drop_link;
use crate::perm::{self, W};
use crate::record::{self, InodeRecord};
use crate::types::{FileType, PreAttr, Wcc};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::Txn;

/// How deep a directory tree may be before the ancestor walk gives up.
const MAX_DEPTH: usize = 4096;

/// Fails with `Invalid` when `dir` is `moved` or lies below it.
fn refuse_own_subtree(txn: &mut dyn Txn, moved: u64, mut dir: u64) -> FsResult<()> {
    for _ in 0..MAX_DEPTH {
        if dir == moved {
            return Err(FsError::Invalid(
                "cannot move a directory into its own subtree",
            ));
        }
        let rec = record::load_inode(txn, dir)?;
        if rec.parent == dir || rec.parent == 0 {
            return Ok(());
        }
        dir = rec.parent;
    }
    Err(FsError::Invalid("directory tree too deep"))
}

impl FileSystem {
    /// Renames `from_dir/from` to `to_dir/to`, replacing an existing
    /// compatible target. Returns the WCC of both directories.
    pub fn rename(
        &self,
        cred: &Credentials,
        from_dir: InodeId,
        from: &[u8],
        to_dir: InodeId,
        to: &[u8],
    ) -> FsResult<(Wcc, Wcc)> {
        if is_dot(from) || is_dot(to) {
            return Err(FsError::Invalid("cannot rename '.' or '..'"));
        }
        validate_name(from)?;
        validate_name(to)?;
        let (wccs, gc) = self.transact_in_dirs(&[from_dir, to_dir], true, |txn| {
            let now = Timestamp::now();
            self.rename_txn(txn, cred, from_dir, from, to_dir, to, now)
        })?;
        for ino in gc {
            self.delete_chunks(ino);
        }
        Ok(wccs)
    }

    #[allow(clippy::too_many_arguments)]
    fn rename_txn(
        &self,
        txn: &mut dyn Txn,
        cred: &Credentials,
        from_dir: InodeId,
        from: &[u8],
        to_dir: InodeId,
        to: &[u8],
        now: Timestamp,
    ) -> FsResult<((Wcc, Wcc), Vec<u64>)> {
        let same_dir = from_dir == to_dir;
        let mut fd = record::load_inode(txn, from_dir)?;
        let mut td: Option<InodeRecord> = if same_dir {
            None
        } else {
            Some(record::load_inode(txn, to_dir)?)
        };
        perm::check_modify_dir(txn, &fd, cred)?;
        if let Some(t) = &td {
            perm::check_modify_dir(txn, t, cred)?;
            if t.volume != fd.volume {
                return Err(FsError::CrossDevice);
            }
        }
        let fd_before: PreAttr = (&fd.attr()).into();
        let td_before: PreAttr = td.as_ref().map_or(fd_before, |t| (&t.attr()).into());

        let src_entry = record::get_dentry(txn, from_dir, from)?.ok_or(FsError::NotFound)?;
        let mut src = record::load_inode(txn, src_entry.ino)?;
        perm::check_sticky(&fd, &src, cred)?;
        let src_is_dir = src.kind == FileType::Directory;
        if src_is_dir && !same_dir {
            // Its ".." changes: that is a write to the directory itself.
            perm::check(txn, &src, cred, W)?;
            refuse_own_subtree(txn, src.ino, to_dir)?;
        }

        let mut gc = Vec::new();
        if let Some(dst_entry) = record::get_dentry(txn, to_dir, to)? {
            if dst_entry.ino == src.ino {
                // Two names of one file (or the same name): POSIX says do nothing.
                let f = fd.attr();
                let t = td.as_ref().map_or_else(|| f.clone(), InodeRecord::attr);
                return Ok((
                    (
                        Wcc {
                            before: fd_before,
                            after: f,
                        },
                        Wcc {
                            before: td_before,
                            after: t,
                        },
                    ),
                    Vec::new(),
                ));
            }
            let mut dst = record::load_inode(txn, dst_entry.ino)?;
            let tdir_rec = td.as_ref().unwrap_or(&fd);
            perm::check_sticky(tdir_rec, &dst, cred)?;
            match (src_is_dir, dst.kind == FileType::Directory) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if dst.entries > 0 => return Err(FsError::NotEmpty),
                _ => {}
            }
            let t = td.as_mut().unwrap_or(&mut fd);
            record::remove_dentry(txn, t, to, &dst_entry)?;
            if dst.kind == FileType::Directory {
                t.nlink = t.nlink.saturating_sub(1).max(2);
            }
            gc = drop_link(txn, &mut dst, now)?;
        }

        self.quota_on_move(txn, &src, to_dir)?;
        record::remove_dentry(txn, &mut fd, from, &src_entry)?;
        {
            let t = td.as_mut().unwrap_or(&mut fd);
            record::add_dentry(txn, t, to, src.ino, src.kind)?;
        }
        if src_is_dir && !same_dir {
            src.parent = to_dir;
            fd.nlink = fd.nlink.saturating_sub(1).max(2);
            if let Some(t) = td.as_mut() {
                t.nlink += 1;
            }
        }
        src.ctime = now;
        fd.mtime = now;
        fd.ctime = now;
        if let Some(t) = td.as_mut() {
            t.mtime = now;
            t.ctime = now;
        }
        record::put_inode(txn, &src)?;
        record::put_inode(txn, &fd)?;
        if let Some(t) = &td {
            record::put_inode(txn, t)?;
        }
        let f_after = fd.attr();
        let t_after = td
            .as_ref()
            .map_or_else(|| f_after.clone(), InodeRecord::attr);
        Ok((
            (
                Wcc {
                    before: fd_before,
                    after: f_after,
                },
                Wcc {
                    before: td_before,
                    after: t_after,
                },
            ),
            gc,
        ))
    }
}
