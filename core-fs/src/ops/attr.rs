//! ACCESS and SETATTR.

use crate::acl::AclSource;
use crate::perm::{self, W};
use crate::record::{self, InodeRecord};
use crate::types::{
    Attr, FileType, SetAttr, SetTime, Wcc, FILE_SIZE_MAX, MODE_MASK, S_ISGID, S_ISUID,
};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};

/// Attempts of a SETATTR whose size keeps moving under concurrent WRITEs.
const SIZE_RACE_ATTEMPTS: usize = 16;

/// Applies `set` to `rec` with POSIX permission rules, stamping `now`.
/// Returns whether the size changed.
pub(crate) fn apply_setattr<S: AclSource + ?Sized>(
    src: &mut S,
    rec: &mut InodeRecord,
    cred: &Credentials,
    set: &SetAttr,
    now: Timestamp,
) -> FsResult<bool> {
    if let Some(uid) = set.uid {
        if uid != rec.uid && !cred.is_root() {
            return Err(FsError::Perm);
        }
    }
    if let Some(gid) = set.gid {
        if gid != rec.gid && !cred.is_root() && (cred.uid != rec.uid || !cred.in_group(gid)) {
            return Err(FsError::Perm);
        }
    }
    if set.mode.is_some() {
        perm::check_owner(rec, cred)?;
    }
    for t in [set.atime, set.mtime] {
        match t {
            SetTime::Keep => {}
            SetTime::Exact(_) => perm::check_owner(rec, cred)?,
            SetTime::ServerNow => {
                if !(cred.is_root() || cred.uid == rec.uid || perm::allowed(src, rec, cred, W)?) {
                    return Err(FsError::Access);
                }
            }
        }
    }
    let mut size_changed = false;
    if let Some(size) = set.size {
        match rec.kind {
            FileType::Regular => {}
            FileType::Directory => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("size of a non-regular file")),
        }
        if size > FILE_SIZE_MAX {
            return Err(FsError::TooBig);
        }
        perm::check_data(src, rec, cred, W)?;
        if size != rec.size {
            rec.size = size;
            rec.mtime = now;
            size_changed = true;
            if !cred.is_root() {
                rec.mode &= !(S_ISUID | S_ISGID);
            }
        }
    }
    let owner_changed =
        set.uid.is_some_and(|u| u != rec.uid) || set.gid.is_some_and(|g| g != rec.gid);
    if let Some(uid) = set.uid {
        rec.uid = uid;
    }
    if let Some(gid) = set.gid {
        rec.gid = gid;
    }
    if owner_changed && rec.kind == FileType::Regular && set.mode.is_none() {
        // chown clears set-id bits so a changed owner cannot inherit them.
        rec.mode &= !(S_ISUID | S_ISGID);
    }
    if let Some(mode) = set.mode {
        let mut mode = mode & MODE_MASK;
        if !cred.is_root() && !cred.in_group(rec.gid) {
            mode &= !S_ISGID;
        }
        rec.mode = mode;
    }
    match set.atime {
        SetTime::Keep => {}
        SetTime::ServerNow => rec.atime = now,
        SetTime::Exact(t) => rec.atime = t,
    }
    match set.mtime {
        SetTime::Keep => {}
        SetTime::ServerNow => rec.mtime = now,
        SetTime::Exact(t) => rec.mtime = t,
    }
    rec.ctime = now;
    rec.create_verf = None;
    Ok(size_changed)
}

impl FileSystem {
    /// Whether `set` asks for nothing but `rec`'s current size (and `rec`
    /// holds no exclusive-create verifier for a SETATTR to clear).
    fn only_keeps_the_size(set: &SetAttr, rec: &InodeRecord) -> bool {
        set.size == Some(rec.size)
            && rec.kind == FileType::Regular
            && rec.create_verf.is_none()
            && set.mode.is_none()
            && set.uid.is_none()
            && set.gid.is_none()
            && set.atime == SetTime::Keep
            && set.mtime == SetTime::Keep
    }

    /// What `set` would make of `current`, with every check a SETATTR
    /// makes (nothing is written).
    fn setattr_probe(
        &self,
        current: &InodeRecord,
        cred: &Credentials,
        set: &SetAttr,
    ) -> FsResult<InodeRecord> {
        let mut probe = current.clone();
        apply_setattr(
            &mut self.store_acls(),
            &mut probe,
            cred,
            set,
            Timestamp::now(),
        )?;
        Ok(probe)
    }

    /// The NFSv3 ACCESS bits of `want` that `cred` holds on `ino`.
    pub fn access(&self, cred: &Credentials, ino: InodeId, want: u32) -> FsResult<(Attr, u32)> {
        if ino >= crate::snapshot::LIVE_INO_LIMIT {
            return self.snap_access(cred, ino, want);
        }
        let rec = self.read_inode(ino)?;
        Ok((
            rec.attr(),
            perm::access_mask(&mut self.store_acls(), &rec, cred, want)?,
        ))
    }

    /// Changes attributes. With `guard_ctime`, fails with `GuardFailed`
    /// unless the object's ctime still equals it.
    pub fn setattr(
        &self,
        cred: &Credentials,
        ino: InodeId,
        set: &SetAttr,
        guard_ctime: Option<Timestamp>,
    ) -> FsResult<Wcc> {
        for _ in 0..SIZE_RACE_ATTEMPTS {
            if let Some(done) = self.setattr_once(cred, ino, set, guard_ctime)? {
                return Ok(done);
            }
        }
        Err(FsError::Io(format!(
            "the file's size changed while SETATTR cut its data, {SIZE_RACE_ATTEMPTS} times"
        )))
    }

    /// One attempt of [`FileSystem::setattr`]; `None`, changing nothing,
    /// if a shrink finds the size changed since it cut the chunk data for
    /// the size it read first (a WRITE extended the file meanwhile: its
    /// new bytes past the new size would stay in the chunks and come back
    /// with a later growth).
    fn setattr_once(
        &self,
        cred: &Credentials,
        ino: InodeId,
        set: &SetAttr,
        guard_ctime: Option<Timestamp>,
    ) -> FsResult<Option<Wcc>> {
        let current = self.read_inode(ino)?;
        if let Some(size) = set.size {
            if guard_ctime.is_some_and(|g| g != current.ctime) {
                return Err(FsError::GuardFailed);
            }
            if Self::only_keeps_the_size(set, &current) {
                // Like ftruncate(2) to the current size: nothing changes,
                // not even ctime, so there is nothing to commit (libnfs
                // sends one of these after every O_TRUNC create, and a
                // durable commit of nothing cost a log sync per file). The
                // checks still run: refusals are reported as for a change.
                self.setattr_probe(&current, cred, set)?;
                // A transaction would have been refused during a restore.
                if self.snap_state(current.volume)?.restoring {
                    return Err(FsError::ReadOnly);
                }
                let attr = current.attr();
                return Ok(Some(Wcc {
                    before: (&attr).into(),
                    after: attr,
                }));
            }
            if size < current.size && current.kind == FileType::Regular {
                // Drop the data first: a crash after this and before the
                // metadata commit leaves a file whose tail reads as zeros,
                // never a shorter file that later grows back stale bytes.
                let probe = self.setattr_probe(&current, cred, set)?;
                // Nor a cut file whose size a quota then refuses to change.
                self.quota_precheck(&current, &probe)?;
                self.truncate_chunks(&current, size)?;
            }
        }
        let now = Timestamp::now();
        self.transact(true, |txn| -> FsResult<Option<Wcc>> {
            let mut rec = record::load_inode(txn, ino)?;
            if let Some(g) = guard_ctime {
                if g != rec.ctime {
                    return Err(FsError::GuardFailed);
                }
            }
            if set.size.is_some_and(|size| {
                size < rec.size && (rec.size != current.size || rec.inline != current.inline)
            }) {
                // Nothing written: the transaction commits no change.
                return Ok(None);
            }
            let before = (&rec.attr()).into();
            let old = rec.clone();
            if apply_setattr(txn, &mut rec, cred, set, now)? {
                super::io::trim_after_resize(txn, &mut rec)?;
            }
            self.quota_on_update(txn, &old, &rec, None)?;
            record::put_inode(txn, &rec)?;
            Ok(Some(Wcc {
                before,
                after: rec.attr(),
            }))
        })
    }
}
