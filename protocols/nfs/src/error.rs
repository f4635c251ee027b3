//! The one mapping from the core's [`FsError`] to NFS status codes, and
//! the place those errors are logged.

use nfs3_types::mount::mountstat3;
use nfs3_types::nfs3::nfsstat3;
use nitrofs_core_fs::FsError;

/// The NFSv3 status for a core error. Every procedure maps errors through
/// here, so this is where they are logged: expected outcomes (a missing
/// name, a denied permission) at debug, storage failures at warn.
pub fn nfsstat(err: &FsError) -> nfsstat3 {
    let stat = match err {
        FsError::NotFound => nfsstat3::NFS3ERR_NOENT,
        FsError::Exists => nfsstat3::NFS3ERR_EXIST,
        FsError::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        FsError::IsDir => nfsstat3::NFS3ERR_ISDIR,
        FsError::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        FsError::Access => nfsstat3::NFS3ERR_ACCES,
        FsError::Perm => nfsstat3::NFS3ERR_PERM,
        FsError::NoSpace => nfsstat3::NFS3ERR_NOSPC,
        FsError::QuotaExceeded => nfsstat3::NFS3ERR_DQUOT,
        FsError::Stale => nfsstat3::NFS3ERR_STALE,
        FsError::NameTooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        FsError::ReadOnly => nfsstat3::NFS3ERR_ROFS,
        FsError::Invalid(_) => nfsstat3::NFS3ERR_INVAL,
        FsError::NotSupported => nfsstat3::NFS3ERR_NOTSUPP,
        FsError::GuardFailed => nfsstat3::NFS3ERR_NOT_SYNC,
        FsError::TooBig => nfsstat3::NFS3ERR_FBIG,
        FsError::TooManyLinks => nfsstat3::NFS3ERR_MLINK,
        FsError::CrossDevice => nfsstat3::NFS3ERR_XDEV,
        FsError::Io(_) => nfsstat3::NFS3ERR_IO,
    };
    // A memory-only attempt's miss is not a failure: the call runs again.
    if matches!(err, FsError::Io(_)) && !nitrofs_core_fs::memory_read_missed() {
        tracing::warn!(error = %err, status = %stat, "storage error");
    } else {
        tracing::debug!(error = %err, status = %stat, "request failed");
    }
    stat
}

/// The MOUNT status for an NFS status (MOUNT has a subset of the codes).
pub fn mountstat(stat: nfsstat3) -> mountstat3 {
    match stat {
        nfsstat3::NFS3_OK => mountstat3::MNT3_OK,
        nfsstat3::NFS3ERR_PERM => mountstat3::MNT3ERR_PERM,
        nfsstat3::NFS3ERR_NOENT | nfsstat3::NFS3ERR_STALE => mountstat3::MNT3ERR_NOENT,
        nfsstat3::NFS3ERR_ACCES => mountstat3::MNT3ERR_ACCES,
        nfsstat3::NFS3ERR_NOTDIR => mountstat3::MNT3ERR_NOTDIR,
        nfsstat3::NFS3ERR_INVAL => mountstat3::MNT3ERR_INVAL,
        nfsstat3::NFS3ERR_NAMETOOLONG => mountstat3::MNT3ERR_NAMETOOLONG,
        nfsstat3::NFS3ERR_NOTSUPP => mountstat3::MNT3ERR_NOTSUPP,
        nfsstat3::NFS3ERR_IO => mountstat3::MNT3ERR_IO,
        _ => mountstat3::MNT3ERR_SERVERFAULT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_core_error_has_its_nfs_status() {
        let cases = [
            (FsError::NotFound, nfsstat3::NFS3ERR_NOENT),
            (FsError::Exists, nfsstat3::NFS3ERR_EXIST),
            (FsError::NotDir, nfsstat3::NFS3ERR_NOTDIR),
            (FsError::IsDir, nfsstat3::NFS3ERR_ISDIR),
            (FsError::NotEmpty, nfsstat3::NFS3ERR_NOTEMPTY),
            (FsError::Access, nfsstat3::NFS3ERR_ACCES),
            (FsError::Perm, nfsstat3::NFS3ERR_PERM),
            (FsError::NoSpace, nfsstat3::NFS3ERR_NOSPC),
            (FsError::QuotaExceeded, nfsstat3::NFS3ERR_DQUOT),
            (FsError::Stale, nfsstat3::NFS3ERR_STALE),
            (FsError::NameTooLong, nfsstat3::NFS3ERR_NAMETOOLONG),
            (FsError::ReadOnly, nfsstat3::NFS3ERR_ROFS),
            (FsError::Invalid("x"), nfsstat3::NFS3ERR_INVAL),
            (FsError::NotSupported, nfsstat3::NFS3ERR_NOTSUPP),
            (FsError::GuardFailed, nfsstat3::NFS3ERR_NOT_SYNC),
            (FsError::TooBig, nfsstat3::NFS3ERR_FBIG),
            (FsError::TooManyLinks, nfsstat3::NFS3ERR_MLINK),
            (FsError::CrossDevice, nfsstat3::NFS3ERR_XDEV),
            (FsError::Io("disk".into()), nfsstat3::NFS3ERR_IO),
        ];
        for (err, want) in cases {
            assert_eq!(nfsstat(&err), want, "{err}");
        }
    }

    #[test]
    fn mount_statuses_follow_the_nfs_ones() {
        assert!(matches!(
            mountstat(nfsstat3::NFS3ERR_NOENT),
            mountstat3::MNT3ERR_NOENT
        ));
        assert!(matches!(
            mountstat(nfsstat3::NFS3ERR_ACCES),
            mountstat3::MNT3ERR_ACCES
        ));
        assert!(matches!(
            mountstat(nfsstat3::NFS3ERR_NOTDIR),
            mountstat3::MNT3ERR_NOTDIR
        ));
        assert!(matches!(
            mountstat(nfsstat3::NFS3ERR_IO),
            mountstat3::MNT3ERR_IO
        ));
    }
}
