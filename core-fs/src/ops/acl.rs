//! Reading and changing POSIX ACLs (getfacl / setfacl), by inode or by
//! `/<volume>/<path>` for the admin API.

use crate::acl::{self, edit, Acl, AclEdit, AclEntry, AclKind, AclSpec, AclTag, StoreAcls};
use crate::perm;
use crate::record::{self, InodeRecord};
use crate::snapshot::LIVE_INO_LIMIT;
use crate::types::{Attr, FileType, S_ISGID, S_ISUID, S_ISVTX};
use crate::{FileSystem, FsError, FsResult};
use nitrofs_common::{Credentials, InodeId, Timestamp};
use nitrofs_metadata::Txn;

/// An object's ACLs as getfacl shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclListing {
    /// The object's attributes (owner, group, mode) after the call.
    pub attr: Attr,
    /// The access ACL: the stored one with the mode applied, or the
    /// minimal ACL of the mode when it has none.
    pub access: Acl,
    /// The default ACL (directories only).
    pub default: Option<Acl>,
}

impl AclListing {
    /// Whether the object has more than its mode (named entries, a
    /// mask, or a default ACL).
    pub fn is_extended(&self) -> bool {
        !self.access.is_minimal() || self.default.is_some()
    }

    /// getfacl output for the object named `name`: header comments, the
    /// access entries, then the default entries.
    pub fn getfacl(&self, name: &str) -> String {
        let a = &self.attr;
        let mut out = format!(
            "# file: {}\n# owner: {}\n# group: {}\n",
            name.trim_start_matches('/'),
            a.uid,
            a.gid
        );
        if a.mode & (S_ISUID | S_ISGID | S_ISVTX) != 0 {
            let flag = |b: u32, c: char| if a.mode & b != 0 { c } else { '-' };
            out.push_str(&format!(
                "# flags: {}{}{}\n",
                flag(S_ISUID, 's'),
                flag(S_ISGID, 's'),
                flag(S_ISVTX, 't')
            ));
        }
        for line in self.access.to_getfacl_lines("") {
            out.push_str(&line);
            out.push('\n');
        }
        if let Some(d) = &self.default {
            for line in d.to_getfacl_lines("default:") {
                out.push_str(&line);
                out.push('\n');
            }
        }
        out
    }
}

/// Refuses ACLs where POSIX has none.
fn check_kind(rec: &InodeRecord, kind: AclKind) -> FsResult<()> {
    if rec.kind == FileType::Symlink {
        return Err(FsError::Invalid("symbolic links have no ACLs"));
    }
    if kind == AclKind::Default && rec.kind != FileType::Directory {
        return Err(FsError::Invalid("only directories have a default ACL"));
    }
    Ok(())
}

/// Makes `acl` the access ACL of `rec` (whose record the caller writes
/// back): the mode takes its owner, mask (or group) and other bits, and
/// an ACL the mode alone expresses is not stored. As Linux does, setting
/// an ACL clears set-group-id unless the caller is root or in the group.
fn store_access(
    txn: &mut dyn Txn,
    rec: &mut InodeRecord,
    cred: &Credentials,
    acl: &Acl,
) -> FsResult<()> {
    let mut mode = (rec.mode & !0o777) | acl.mode_bits();
    if !cred.is_root() && !cred.in_group(rec.gid) {
        mode &= !S_ISGID;
    }
    rec.mode = mode;
    let key = AclKind::Access.key(rec.ino);
    if acl.is_minimal() {
        txn.delete(&key)?;
    } else {
        txn.put(&key, &acl.encode()?)?;
    }
    Ok(())
}

/// The access ACL of `rec` as it applies now (stored one with the mode,
/// or the mode's minimal ACL).
fn current_access(txn: &mut dyn Txn, rec: &InodeRecord) -> FsResult<Acl> {
    Ok(acl::load_access(txn, rec)?.unwrap_or_else(|| Acl::from_mode(rec.mode)))
}

/// The base entries (`user::`, `group::`, `other::`) of `acl`: what a
/// new default ACL starts from, as setfacl does.
fn base_of(acl: &Acl) -> Acl {
    let base: Vec<AclEntry> = acl
        .entries()
        .iter()
        .filter(|e| matches!(e.tag, AclTag::UserObj | AclTag::GroupObj | AclTag::Other))
        .copied()
        .collect();
    Acl::new(base).unwrap_or_else(|_| Acl::from_mode(0))
}

impl FileSystem {
    /// Reads ACLs straight from the store, for checks outside a transaction.
    pub(crate) fn store_acls(&self) -> StoreAcls<'_> {
        StoreAcls(self.kv.as_ref())
    }

    /// The ACL of `kind` on `ino`: for `Access`, the stored ACL with the
    /// mode applied, `None` when the mode alone decides; for `Default`,
    /// the directory's default ACL. Like getfacl, needs no permission on
    /// the object itself (finding it needed search permission). Objects
    /// inside snapshots answer with the ACL the snapshot saw.
    pub fn get_acl(
        &self,
        _cred: &Credentials,
        ino: InodeId,
        kind: AclKind,
    ) -> FsResult<Option<Acl>> {
        if ino >= LIVE_INO_LIMIT {
            return self.snap_acl(ino, kind);
        }
        let rec = self.read_inode(ino)?;
        let mut src = self.store_acls();
        match kind {
            AclKind::Access => acl::load_access(&mut src, &rec),
            AclKind::Default => acl::load(&mut src, ino, AclKind::Default),
        }
    }

    /// Sets (`Some`) or removes (`None`) the ACL of `kind` on `ino`. Only
    /// the owner or root may (`Perm` otherwise). Setting an access ACL
    /// sets the mode's owner, group (the mask) and other bits from it;
    /// removing it keeps the owner, owning-group and other entries as the
    /// mode (as `setfacl -b`). Only directories have a default ACL.
    pub fn set_acl(
        &self,
        cred: &Credentials,
        ino: InodeId,
        kind: AclKind,
        acl: Option<Acl>,
    ) -> FsResult<Attr> {
        let now = Timestamp::now();
        self.transact(true, |txn| -> FsResult<Attr> {
            let mut rec = record::load_inode(txn, ino)?;
            perm::check_owner(&rec, cred)?;
            check_kind(&rec, kind)?;
            match (kind, &acl) {
                (AclKind::Access, Some(a)) => store_access(txn, &mut rec, cred, a)?,
                (AclKind::Access, None) => {
                    let base = base_of(&current_access(txn, &rec)?);
                    store_access(txn, &mut rec, cred, &base)?;
                }
                (AclKind::Default, Some(a)) => {
                    txn.put(&AclKind::Default.key(ino), &a.encode()?)?;
                }
                (AclKind::Default, None) => txn.delete(&AclKind::Default.key(ino))?,
            }
            rec.ctime = now;
            record::put_inode(txn, &rec)?;
            Ok(rec.attr())
        })
    }

    /// Both ACLs of `ino`, as getfacl shows them.
    pub fn acl_listing(&self, cred: &Credentials, ino: InodeId) -> FsResult<AclListing> {
        let attr = self.getattr(ino)?;
        let access = self
            .get_acl(cred, ino, AclKind::Access)?
            .unwrap_or_else(|| Acl::from_mode(attr.mode));
        let default = match attr.kind {
            FileType::Directory => self.get_acl(cred, ino, AclKind::Default)?,
            _ => None,
        };
        Ok(AclListing {
            attr,
            access,
            default,
        })
    }

    /// Applies a setfacl specification to `ino` in one transaction (see
    /// [`AclEdit`]): its access entries change the access ACL, its
    /// default entries the default ACL; a kind it does not name is left
    /// alone. A new default ACL starts from the access ACL's base entries,
    /// as setfacl does. Owner or root only.
    pub fn edit_acl(
        &self,
        cred: &Credentials,
        ino: InodeId,
        spec: &AclSpec,
        how: AclEdit,
    ) -> FsResult<AclListing> {
        if spec.is_empty() {
            return Err(FsError::Invalid("empty ACL specification"));
        }
        let now = Timestamp::now();
        self.transact(true, |txn| -> FsResult<AclListing> {
            let mut rec = record::load_inode(txn, ino)?;
            perm::check_owner(&rec, cred)?;
            check_kind(&rec, AclKind::Access)?;
            if !spec.default.is_empty() {
                check_kind(&rec, AclKind::Default)?;
            }
            let mut access = current_access(txn, &rec)?;
            if !spec.access.is_empty() {
                access = edit(&access, &spec.access, how)?;
                store_access(txn, &mut rec, cred, &access)?;
            }
            let mut default = acl::load(txn, ino, AclKind::Default)?;
            if !spec.default.is_empty() {
                let from = default.clone().unwrap_or_else(|| base_of(&access));
                let d = edit(&from, &spec.default, how)?;
                txn.put(&AclKind::Default.key(ino), &d.encode()?)?;
                default = Some(d);
            }
            rec.ctime = now;
            record::put_inode(txn, &rec)?;
            Ok(AclListing {
                attr: rec.attr(),
                access: access.with_mode(rec.mode),
                default,
            })
        })
    }

    /// Removes every extended entry of `ino` (`setfacl -b`), or only its
    /// default ACL with `default_only` (`setfacl -k`). Owner or root only.
    pub fn remove_acls(
        &self,
        cred: &Credentials,
        ino: InodeId,
        default_only: bool,
    ) -> FsResult<AclListing> {
        let attr = self.getattr(ino)?;
        if !default_only {
            self.set_acl(cred, ino, AclKind::Access, None)?;
        }
        if attr.kind == FileType::Directory {
            self.set_acl(cred, ino, AclKind::Default, None)?;
        }
        self.acl_listing(cred, ino)
    }

    /// Gives `dst` exactly the ACLs of `src` (and so its mode's rwx bits),
    /// replacing any it inherited at create: used when cloning a snapshot.
    pub(crate) fn copy_acls(&self, cred: &Credentials, src: &Attr, dst: InodeId) -> FsResult<()> {
        if src.kind == FileType::Symlink {
            return Ok(());
        }
        let want = self.get_acl(cred, src.ino, AclKind::Access)?;
        if want.is_some() || self.get_acl(cred, dst, AclKind::Access)?.is_some() {
            let acl = want.unwrap_or_else(|| Acl::from_mode(src.mode));
            self.set_acl(cred, dst, AclKind::Access, Some(acl))?;
        }
        if src.kind == FileType::Directory {
            let want = self.get_acl(cred, src.ino, AclKind::Default)?;
            if want != self.get_acl(cred, dst, AclKind::Default)? {
                self.set_acl(cred, dst, AclKind::Default, want)?;
            }
        }
        Ok(())
    }

    /// The object at `/<volume>/<path>` (search permission checked on the
    /// way, as for any lookup).
    pub fn resolve_path(&self, cred: &Credentials, path: &str) -> FsResult<Attr> {
        let path = path.trim_start_matches('/');
        let (volume, rest) = path.split_once('/').unwrap_or((path, ""));
        if volume.is_empty() {
            return Err(FsError::Invalid("path must start with /<volume>"));
        }
        let root = self.volume(volume)?.root;
        self.lookup_path(cred, root, rest)
    }
}
