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

/// The rwx bits that apply to `cred` by the mode alone, on an object
/// owned by `uid`:`gid` (owner, group or other class).
fn class_bits(uid: u32, gid: u32, mode: u32, cred: &Credentials) -> u32 {
    if cred.uid == uid {
        (mode >> 6) & 7
    } else if cred.in_group(gid) {
        (mode >> 3) & 7
    } else {
        mode & 7
    }
}

/// The permission check of core-fs, for any object with an owner, a mode
/// and perhaps an access ACL: whether `cred` holds every bit of `want`
/// (R|W|X) on an object owned by `uid`:`gid` with permission bits `mode`.
///
/// Without `acl`, the mode's owner, group or other class decides. With
/// one, [`Acl::permits`] decides (Linux `posix_acl_permission`); `acl`
/// must be the access ACL as it applies now, its `user::`, mask (or
/// `group::`) and `other::` entries matching `mode` (see
/// [`Acl::with_mode`]). Root holds every bit, except X when `mode` has no
/// x bit at all (callers that let root search any directory leave X out
/// of `want`). Inodes are checked with it, and so are KV spaces.
pub fn access_permitted(
    uid: u32,
    gid: u32,
    mode: u32,
    acl: Option<&Acl>,
    cred: &Credentials,
    want: u32,
) -> bool {
    if cred.is_root() {
        return want & X == 0 || mode & 0o111 != 0;
    }
    match acl {
        Some(a) => a.permits(uid, gid, cred, want),
        None => class_bits(uid, gid, mode, cred) & want == want,
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
    let want = if cred.is_root() && ino.kind == FileType::Directory {
        want & !X
    } else {
        want
    };
    access_permitted(ino.uid, ino.gid, ino.mode, acl, cred, want)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::acl::tests::{acl, who};

    #[test]
    fn without_an_acl_the_mode_class_of_the_caller_decides() {
        let (owner, member, other) = (who(10, 1, &[]), who(11, 9, &[20]), who(12, 9, &[]));
        // Owner rw-, group r--, other ---; owned by 10:20.
        assert!(access_permitted(10, 20, 0o640, None, &owner, R | W));
        assert!(access_permitted(10, 20, 0o640, None, &member, R));
        assert!(!access_permitted(10, 20, 0o640, None, &member, W));
        assert!(!access_permitted(10, 20, 0o640, None, &other, R));
        // The owner class decides for the owner even when group grants more.
        assert!(!access_permitted(10, 20, 0o460, None, &owner, W));
    }

    #[test]
    fn a_named_user_entry_grants_a_non_owner_within_the_mask() {
        let a = acl("u::rw-,u:1001:rw-,g::---,m::r--,o::---");
        let mode = a.mode_bits();
        assert_eq!(mode, 0o640, "the mask is the mode's group bits");
        let bob = who(1001, 500, &[]);
        assert!(access_permitted(1, 2, mode, Some(&a), &bob, R));
        assert!(
            !access_permitted(1, 2, mode, Some(&a), &bob, W),
            "the mask removes w from the named entry"
        );
        let eve = who(1002, 500, &[]);
        assert!(!access_permitted(1, 2, mode, Some(&a), &eve, R), "other::");
        // Without the ACL, the same mode gives bob only other's bits.
        assert!(!access_permitted(1, 2, mode, None, &bob, R));
    }

    #[test]
    fn the_group_class_needs_one_matching_entry_holding_every_bit() {
        let a = acl("u::rw-,g::r--,g:300:-w-,m::rw-,o::rw-");
        let mode = a.mode_bits();
        let both = who(7, 200, &[300]);
        assert!(access_permitted(1, 200, mode, Some(&a), &both, R));
        assert!(access_permitted(1, 200, mode, Some(&a), &both, W));
        assert!(
            !access_permitted(1, 200, mode, Some(&a), &both, R | W),
            "no single group entry holds rw, and other:: is not consulted"
        );
        let stranger = who(8, 400, &[]);
        assert!(access_permitted(1, 200, mode, Some(&a), &stranger, R | W));
    }

    #[test]
    fn root_holds_everything_but_x_without_any_x_bit() {
        let root = Credentials::root();
        let a = acl("u::---,u:1001:---,g::---,m::---,o::---");
        assert!(access_permitted(1, 1, 0, Some(&a), &root, R | W));
        assert!(!access_permitted(1, 1, 0o600, None, &root, X));
        assert!(access_permitted(1, 1, 0o610, None, &root, X));
    }
}
