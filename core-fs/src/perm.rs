//! POSIX permission checks. Every check in core-fs goes through here:
//! mode bits, or the inode's POSIX.1e access ACL when it has one (read
//! through an [`AclSource`]: the caller's transaction, the store, or a
//! snapshot's view).

use crate::acl::{self, Acl, AclSource};
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

/// The rwx bits that apply to `cred` for `ino` by its mode alone (owner,
/// group or other).
fn class_bits(ino: &InodeRecord, cred: &Credentials) -> u32 {
    if cred.uid == ino.uid {
        (ino.mode >> 6) & 7
    } else if cred.in_group(ino.gid) {
        (ino.mode >> 3) & 7
    } else {
        ino.mode & 7
    }
}

/// The access ACL that decides for `cred` on `ino`, if any. Root and the
/// owner never need it (the owner's entry is the mode's owner bits), so
/// their checks cost no metadata read; for everyone else this is one
/// point read of the ACL key (absent for most inodes).
fn deciding_acl<S: AclSource + ?Sized>(
    src: &mut S,
    ino: &InodeRecord,
    cred: &Credentials,
) -> FsResult<Option<Acl>> {
    if cred.is_root() || cred.uid == ino.uid {
        return Ok(None);
    }
    acl::load_access(src, ino)
}

/// Whether `cred` has all of `want` on `ino`, given its deciding ACL.
/// Root has every permission except execute on a non-directory without
/// any x bit.
fn grants(ino: &InodeRecord, cred: &Credentials, acl: Option<&Acl>, want: u32) -> bool {
    if cred.is_root() {
        return !(want & X != 0 && ino.kind != FileType::Directory && ino.mode & 0o111 == 0);
    }
    match acl {
        Some(a) => a.permits(ino.uid, ino.gid, cred, want),
        None => class_bits(ino, cred) & want == want,
    }
}

/// Whether `cred` has all of `want` (R|W|X) on `ino`: its mode bits, or
/// its POSIX ACL when it has one (read from `src`).
pub fn allowed<S: AclSource + ?Sized>(
    src: &mut S,
    ino: &InodeRecord,
    cred: &Credentials,
    want: u32,
) -> FsResult<bool> {
    let acl = deciding_acl(src, ino, cred)?;
    Ok(grants(ino, cred, acl.as_ref(), want))
}

/// Fails with `Access` unless `cred` has `want` on `ino`.
pub fn check<S: AclSource + ?Sized>(
    src: &mut S,
    ino: &InodeRecord,
    cred: &Credentials,
    want: u32,
) -> FsResult<()> {
    if allowed(src, ino, cred, want)? {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// Like [`check`], but the owner may always read and write their own
/// regular file: an NFS client checks modes at open time, and a process
/// that created a file read-only must still be able to write what it
/// opened (the knfsd "owner override").
pub fn check_data<S: AclSource + ?Sized>(
    src: &mut S,
    ino: &InodeRecord,
    cred: &Credentials,
    want: u32,
) -> FsResult<()> {
    if cred.uid == ino.uid && ino.kind == FileType::Regular {
        return Ok(());
    }
    check(src, ino, cred, want)
}

/// Search permission on a directory (and that it is one).
pub fn check_search<S: AclSource + ?Sized>(
    src: &mut S,
    dir: &InodeRecord,
    cred: &Credentials,
) -> FsResult<()> {
    if dir.kind != FileType::Directory {
        return Err(FsError::NotDir);
    }
    check(src, dir, cred, X)
}

/// Permission to add or remove entries in `dir`.
pub fn check_modify_dir<S: AclSource + ?Sized>(
    src: &mut S,
    dir: &InodeRecord,
    cred: &Credentials,
) -> FsResult<()> {
    if dir.kind != FileType::Directory {
        return Err(FsError::NotDir);
    }
    check(src, dir, cred, W | X)
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

/// The NFSv3 ACCESS bits in `want` that `cred` holds on `ino` (each rwx
/// bit checked on its own, the ACL read at most once).
pub fn access_mask<S: AclSource + ?Sized>(
    src: &mut S,
    ino: &InodeRecord,
    cred: &Credentials,
    want: u32,
) -> FsResult<u32> {
    let acl = deciding_acl(src, ino, cred)?;
    let acl = acl.as_ref();
    let mut granted = 0;
    let r = grants(ino, cred, acl, R);
    let w = grants(ino, cred, acl, W);
    let x = grants(ino, cred, acl, X);
    if ino.kind == FileType::Directory {
        if r {
            granted |= access::READ;
        }
        if x {
            granted |= access::LOOKUP;
        }
        // As the operations check it: both bits from one entry.
        if grants(ino, cred, acl, W | X) {
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
    Ok(granted & want)
}
