//! Who may do what in a space: its owner, group, mode bits and optional
//! POSIX.1e access ACL, decided by core-fs's check, the one NFS and S3
//! requests go through (`nitrofs_core_fs::access_permitted`). `r` lets a
//! caller get, test, scan and stat; `w` put and delete; `x` means nothing.
//!
//! As for files, the mode and the ACL are one state: the mode's owner and
//! other bits are the `user::` and `other::` entries and its group bits
//! the mask. The catalog keeps the ACL in short setfacl text
//! (`u::rw-,u:1001:r--,g::---,m::r--,o::---`); a space without the field
//! (every catalog written before ACLs) has none.

use super::{SpaceConfig, StoreError};
use nitrofs_core_fs::{access_permitted, Acl, AclEdit, AclEntry, AclSpec, Credentials, X};

/// A space's permissions as each request checks them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SpaceAccess {
    uid: u32,
    gid: u32,
    mode: u32,
    /// The access ACL with the mode applied; `None`: the mode decides.
    acl: Option<Acl>,
}

impl SpaceAccess {
    /// The permissions `cfg` defines.
    pub(crate) fn of(cfg: &SpaceConfig) -> Self {
        Self {
            uid: cfg.uid,
            gid: cfg.gid,
            mode: cfg.mode,
            acl: cfg.acl.clone().map(|a| a.with_mode(cfg.mode)),
        }
    }

    /// Whether `who` holds every bit of `want` (`nitrofs_core_fs::R` / `W`).
    pub(crate) fn permits(&self, who: &Credentials, want: u32) -> bool {
        access_permitted(self.uid, self.gid, self.mode, self.acl.as_ref(), who, want)
    }

    /// Writes these permissions into `cfg`.
    pub(crate) fn apply_to(&self, cfg: &mut SpaceConfig) {
        cfg.uid = self.uid;
        cfg.gid = self.gid;
        cfg.mode = self.mode;
        cfg.acl = self.acl.clone();
    }
}

/// `cfg` with its access ACL replaced as `setfacl --set` does with
/// `entries`: the `user::`, `group::` and `other::` entries they leave
/// out keep their current value, a mask they leave out is the union of
/// the group class, and the mode's group bits become the mask. An ACL the
/// mode alone expresses is dropped. Entries with `x` are refused.
pub(crate) fn with_acl(cfg: &SpaceConfig, entries: &[AclEntry]) -> Result<SpaceConfig, StoreError> {
    let invalid = |why: String| StoreError::InvalidConfig(format!("space {}: {why}", cfg.name));
    if entries.iter().any(|e| e.perms & X != 0) {
        return Err(invalid(
            "x has no meaning for a KV space (r: get, exists, scan, stat; w: put, delete)".into(),
        ));
    }
    let acl = cfg
        .access_acl()
        .edit(entries, AclEdit::Set)
        .map_err(|e| invalid(format!("ACL: {e}")))?;
    let mut out = cfg.clone();
    out.mode = (cfg.mode & !0o777) | acl.mode_bits();
    out.acl = (!acl.is_minimal()).then_some(acl);
    Ok(out)
}

impl SpaceConfig {
    /// The access ACL the space has as getfacl would show it: the stored
    /// one with the mode applied, or the mode's minimal ACL.
    pub fn access_acl(&self) -> Acl {
        self.acl
            .clone()
            .map_or_else(|| Acl::from_mode(self.mode), |a| a.with_mode(self.mode))
    }
}

/// Parses an access ACL in setfacl syntax; default (`d:`) entries are
/// refused, a space has no default ACL.
fn parse_acl(text: &str) -> Result<Acl, String> {
    let spec = AclSpec::parse(text).map_err(|e| e.to_string())?;
    if !spec.default.is_empty() {
        return Err("a KV space has no default ACL (d: entries)".into());
    }
    Acl::new(spec.access).map_err(|e| e.to_string())
}

/// Serde of `SpaceConfig::acl` as its short setfacl text.
pub(super) mod acl_text {
    use nitrofs_core_fs::Acl;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(acl: &Option<Acl>, s: S) -> Result<S::Ok, S::Error> {
        match acl {
            Some(a) => s.serialize_some(&a.to_short_text("")),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Acl>, D::Error> {
        match Option::<String>::deserialize(d)? {
            Some(text) => super::parse_acl(&text)
                .map(Some)
                .map_err(|e| serde::de::Error::custom(format!("acl {text:?}: {e}"))),
            None => Ok(None),
        }
    }
}
