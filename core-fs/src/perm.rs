//! POSIX permission checks. Every check in core-fs goes through here.

use crate::record::InodeRecord;
use crate::types::{access, FileType, S_ISVTX};
use crate::{FsError, FsResult};
use nitrofs_common::Credentials;

/// Read permission bit (per class).
pub const R: u32 = 4;
/// Write permission bit (per class).
pub const W: u32 = 2;
/// Execute / search permission bit (per class).
pub const X: u32 = 1;

/// The rwx bits that apply to `cred` for `ino` (owner, group or other).
fn class_bits(ino: &InodeRecord, cred: &Credentials) -> u32 {
    if cred.uid == ino.uid {
        (ino.mode >> 6) & 7
    } else if cred.in_group(ino.gid) {
        (ino.mode >> 3) & 7
    } else {
        ino.mode & 7
    }
}

/// Whether `cred` has all of `want` (R|W|X) on `ino`. Root has every
/// permission except execute on a non-directory without any x bit.
pub fn allowed(ino: &InodeRecord, cred: &Credentials, want: u32) -> bool {
    if cred.is_root() {
        if want & X != 0 && ino.kind != FileType::Directory && ino.mode & 0o111 == 0 {
            return false;
        }
        return true;
    }
    class_bits(ino, cred) & want == want
}

/// Fails with `Access` unless `cred` has `want` on `ino`.
pub fn check(ino: &InodeRecord, cred: &Credentials, want: u32) -> FsResult<()> {
    if allowed(ino, cred, want) {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// Like [`check`], but the owner may always read and write their own
/// regular file: an NFS client checks modes at open time, and a process
/// that created a file read-only must still be able to write what it
/// opened (the knfsd "owner override").
pub fn check_data(ino: &InodeRecord, cred: &Credentials, want: u32) -> FsResult<()> {
    if cred.uid == ino.uid && ino.kind == FileType::Regular {
        return Ok(());
    }
    check(ino, cred, want)
}

/// Search permission on a directory (and that it is one).
pub fn check_search(dir: &InodeRecord, cred: &Credentials) -> FsResult<()> {
    if dir.kind != FileType::Directory {
        return Err(FsError::NotDir);
    }
    check(dir, cred, X)
}

/// Permission to add or remove entries in `dir`.
pub fn check_modify_dir(dir: &InodeRecord, cred: &Credentials) -> FsResult<()> {
    if dir.kind != FileType::Directory {
        return Err(FsError::NotDir);
    }
    check(dir, cred, W | X)
}

/// The sticky-bit rule: in a sticky directory only the owner of the entry,
/// the owner of the directory or root may remove or rename it.
pub fn check_sticky(dir: &InodeRecord, victim: &InodeRecord, cred: &Credentials) -> FsResult<()> {
    if dir.mode & S_ISVTX == 0 || cred.is_root() || cred.uid == dir.uid || cred.uid == victim.uid {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// Owner-only changes (chmod, explicit times): owner or root.
pub fn check_owner(ino: &InodeRecord, cred: &Credentials) -> FsResult<()> {
    if cred.is_root() || cred.uid == ino.uid {
        Ok(())
    } else {
        Err(FsError::Perm)
    }
}

/// The NFSv3 ACCESS bits in `want` that `cred` holds on `ino`.
pub fn access_mask(ino: &InodeRecord, cred: &Credentials, want: u32) -> u32 {
    let mut granted = 0;
    let r = allowed(ino, cred, R);
    let w = allowed(ino, cred, W);
    let x = allowed(ino, cred, X);
    if ino.kind == FileType::Directory {
        if r {
            granted |= access::READ;
        }
        if x {
            granted |= access::LOOKUP;
        }
        if w && x {
            granted |= access::MODIFY | access::EXTEND | access::DELETE;
        }
    } else {
        // No owner override here: ACCESS must answer what open(2) may do.
        if r {
            granted |= access::READ;
        }
        if w {
            granted |= access::MODIFY | access::EXTEND;
        }
        if x {
            granted |= access::EXECUTE;
        }
    }
    granted & want
}
