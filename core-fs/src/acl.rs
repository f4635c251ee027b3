//! POSIX.1e access control lists, as Linux implements them.
//!
//! This module owns the ACL value ([`Acl`]: entries for the owner, named
//! users, the owning group, named groups, the mask and others), its text
//! form (setfacl / getfacl syntax), its stored encoding under
//! `keys::acl(ino, kind)`, the access check (Linux `posix_acl_permission`)
//! and inheritance at create (Linux `posix_acl_create`). It reads and
//! writes no metadata by itself except through the callers' transactions.
//!
//! Mode bits and the access ACL are one state, as in Linux: the owner
//! bits of the mode are the `user::` entry, the other bits the `other::`
//! entry, and the group bits the `mask::` entry (the `group::` entry when
//! there is no mask). The mode is authoritative for those three: a chmod
//! changes them without rewriting the stored ACL (every reader applies
//! the mode with [`Acl::with_mode`]), and setting an ACL rewrites the mode.
//! An ACL equivalent to its mode (only `user::`, `group::`, `other::`) is
//! never stored; a stored access ACL therefore always has a mask.

use crate::record::{decode_versioned, encode_versioned, InodeRecord};
use crate::types::FileType;
use crate::{FsError, FsResult};
use nitrofs_common::Credentials;
use nitrofs_metadata::{keys, MetaKv, Txn};
use serde::{Deserialize, Serialize};
use std::fmt;

/// Read permission bit of an entry.
const R: u32 = 4;
/// Write permission bit of an entry.
const W: u32 = 2;
/// Execute / search permission bit of an entry.
const X: u32 = 1;

/// Format version of a stored ACL.
const ACL_V1: u8 = 1;

/// Which of an inode's two ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AclKind {
    /// Checked on every access to the object.
    Access,
    /// Directories only: what objects created inside inherit.
    Default,
}

impl AclKind {
    /// The kind byte of its metadata key (1 access, 2 default).
    pub(crate) fn key_byte(self) -> u8 {
        match self {
            AclKind::Access => 1,
            AclKind::Default => 2,
        }
    }

    /// The metadata key of this ACL of `ino`.
    pub(crate) fn key(self, ino: u64) -> Vec<u8> {
        keys::acl(ino, self.key_byte())
    }
}

/// Whom an entry applies to. The declaration order is the canonical order
/// of entries (getfacl prints them so; named ones sorted by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AclTag {
    /// The file's owner (`user::`).
    UserObj,
    /// A named user (`user:UID:`).
    User(u32),
    /// The file's owning group (`group::`).
    GroupObj,
    /// A named group (`group:GID:`).
    Group(u32),
    /// The upper bound of the group class (`mask::`).
    Mask,
    /// Everyone else (`other::`).
    Other,
}

impl AclTag {
    /// Whether the mask limits this entry (the group class).
    fn in_group_class(self) -> bool {
        matches!(self, AclTag::User(_) | AclTag::GroupObj | AclTag::Group(_))
    }
}

/// One entry: a tag and its `rwx` bits (4, 2, 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AclEntry {
    /// Whom it applies to.
    pub tag: AclTag,
    /// Permission bits, 0 to 7.
    pub perms: u32,
}

impl AclEntry {
    /// An entry with `perms` (only the low three bits count).
    pub fn new(tag: AclTag, perms: u32) -> Self {
        Self {
            tag,
            perms: perms & 7,
        }
    }
}

/// Why an ACL or its text was refused. The message names the entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AclError(String);

impl From<AclError> for FsError {
    fn from(_: AclError) -> Self {
        FsError::Invalid("invalid ACL")
    }
}

fn err(msg: impl Into<String>) -> AclError {
    AclError(msg.into())
}

/// A valid ACL: entries in canonical order, each tag once, the three
/// base entries present, and a mask whenever there are named entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    entries: Vec<AclEntry>,
}

impl Acl {
    /// Validates `entries` (in any order) into an ACL.
    pub fn new(mut entries: Vec<AclEntry>) -> Result<Self, AclError> {
        entries.sort_by_key(|e| e.tag);
        for pair in entries.windows(2) {
            if pair[0].tag == pair[1].tag {
                return Err(err(format!(
                    "duplicate entry {}",
                    tag_text(pair[0].tag, false)
                )));
            }
        }
        if let Some(e) = entries.iter().find(|e| e.perms > 7) {
            return Err(err(format!(
                "bad permissions in {}",
                tag_text(e.tag, false)
            )));
        }
        let has = |t: AclTag| entries.iter().any(|e| e.tag == t);
        for (t, name) in [
            (AclTag::UserObj, "user::"),
            (AclTag::GroupObj, "group::"),
            (AclTag::Other, "other::"),
        ] {
            if !has(t) {
                return Err(err(format!("missing the {name} entry")));
            }
        }
        let named = entries
            .iter()
            .any(|e| matches!(e.tag, AclTag::User(_) | AclTag::Group(_)));
        if named && !has(AclTag::Mask) {
            return Err(err("named user or group entries need a mask:: entry"));
        }
        Ok(Self { entries })
    }

    /// The minimal ACL a mode stands for (owner, group, other).
    pub fn from_mode(mode: u32) -> Self {
        Self {
            entries: vec![
                AclEntry::new(AclTag::UserObj, mode >> 6),
                AclEntry::new(AclTag::GroupObj, mode >> 3),
                AclEntry::new(AclTag::Other, mode),
            ],
        }
    }

    /// The entries, in canonical order.
    pub fn entries(&self) -> &[AclEntry] {
        &self.entries
    }

    /// The permission bits of the entry with `tag`, if present.
    pub fn get(&self, tag: AclTag) -> Option<u32> {
        self.entries.iter().find(|e| e.tag == tag).map(|e| e.perms)
    }

    fn set(&mut self, tag: AclTag, perms: u32) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.tag == tag) {
            e.perms = perms & 7;
        }
    }

    fn has_mask(&self) -> bool {
        self.get(AclTag::Mask).is_some()
    }

    /// Whether the mode alone expresses this ACL (no named entries, no mask).
    pub fn is_minimal(&self) -> bool {
        self.entries.len() == 3
    }

    /// The `rwxrwxrwx` bits this ACL gives the mode: owner, mask (or the
    /// owning group without a mask), other.
    pub fn mode_bits(&self) -> u32 {
        let group = if self.has_mask() {
            AclTag::Mask
        } else {
            AclTag::GroupObj
        };
        let get = |t| self.get(t).unwrap_or(0);
        (get(AclTag::UserObj) << 6) | (get(group) << 3) | get(AclTag::Other)
    }

    /// This ACL with its owner, group-class and other entries taken from
    /// `mode` (the mode is authoritative for them, see the module note).
    pub fn with_mode(mut self, mode: u32) -> Self {
        self.set(AclTag::UserObj, mode >> 6);
        self.set(AclTag::Other, mode);
        if self.has_mask() {
            self.set(AclTag::Mask, mode >> 3);
        } else {
            self.set(AclTag::GroupObj, mode >> 3);
        }
        self
    }

    /// Whether `cred` holds every bit of `want` (R|W|X) on an object owned
    /// by `uid`:`gid` with this access ACL: Linux `posix_acl_permission`.
    /// The owner gets `user::`; a named user their entry limited by the
    /// mask; a member of the owning or of a named group is granted when
    /// one of their matching group entries holds all of `want` (within the
    /// mask) and denied otherwise; everyone else gets `other::`.
    /// Superuser rules are the caller's business.
    pub fn permits(&self, uid: u32, gid: u32, cred: &Credentials, want: u32) -> bool {
        let want = want & 7;
        let covers = |p: u32| p & want == want;
        let mask_allows = || self.get(AclTag::Mask).is_none_or(covers);
        if cred.uid == uid {
            return self.get(AclTag::UserObj).is_some_and(covers);
        }
        if let Some(p) = self.get(AclTag::User(cred.uid)) {
            return covers(p) && mask_allows();
        }
        let mut matched = false;
        for e in &self.entries {
            let member = match e.tag {
                AclTag::GroupObj => cred.in_group(gid),
                AclTag::Group(g) => cred.in_group(g),
                _ => false,
            };
            if member {
                if covers(e.perms) {
                    return mask_allows();
                }
                matched = true;
            }
        }
        !matched && self.get(AclTag::Other).is_some_and(covers)
    }

    /// This ACL changed by setfacl `entries`: [`AclEdit::Set`] keeps only
    /// its base entries before adding them, [`AclEdit::Modify`] all; a
    /// mask the entries do not give is recomputed as setfacl does.
    pub fn edit(&self, entries: &[AclEntry], how: AclEdit) -> Result<Acl, AclError> {
        edit(self, entries, how)
    }

    /// The `rwx` bits `cred` holds, each bit checked on its own as NFS
    /// ACCESS does (a request for all of them may still be denied when no
    /// single group entry holds them all).
    pub fn granted_bits(&self, uid: u32, gid: u32, cred: &Credentials) -> u32 {
        [R, W, X]
            .into_iter()
            .filter(|b| self.permits(uid, gid, cred, *b))
            .fold(0, |acc, b| acc | b)
    }

    /// Linux `posix_acl_create_masq`: the access ACL a new object gets from
    /// its directory's default ACL `self` and the mode `mode` it was
    /// created with, and the object's mode. Each of owner, group class and
    /// other keeps only what both allow. `None` when the result is
    /// expressed by the mode alone.
    pub fn inherit(&self, mode: u32) -> (Option<Acl>, u32) {
        let mut acl = self.clone();
        let owner = acl.get(AclTag::UserObj).unwrap_or(0) & (mode >> 6);
        let other = acl.get(AclTag::Other).unwrap_or(0) & mode;
        let group_tag = if acl.has_mask() {
            AclTag::Mask
        } else {
            AclTag::GroupObj
        };
        let group = acl.get(group_tag).unwrap_or(0) & (mode >> 3);
        acl.set(AclTag::UserObj, owner);
        acl.set(AclTag::Other, other);
        acl.set(group_tag, group);
        let new_mode = (mode & !0o777) | (owner << 6) | (group << 3) | other;
        if acl.is_minimal() {
            (None, new_mode)
        } else {
            (Some(acl), new_mode)
        }
    }

    /// Short text: `u::rwx,u:1001:r-x,g::r-x,m::rwx,o::---`, with `prefix`
    /// (e.g. `d:`) before each entry.
    pub fn to_short_text(&self, prefix: &str) -> String {
        self.entries
            .iter()
            .map(|e| format!("{prefix}{}{}", tag_text(e.tag, true), perms_text(e.perms)))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// getfacl lines: `user::rwx`, `user:1001:rwx\t#effective:r-x`, …,
    /// each with `prefix` (`default:` for a default ACL). The effective
    /// comment appears where the mask takes bits away from an entry.
    pub fn to_getfacl_lines(&self, prefix: &str) -> Vec<String> {
        let mask = self.get(AclTag::Mask);
        self.entries
            .iter()
            .map(|e| {
                let mut line = format!("{prefix}{}{}", tag_text(e.tag, false), perms_text(e.perms));
                if let Some(m) = mask {
                    if e.tag.in_group_class() && e.perms & m != e.perms {
                        line.push_str(&format!("\t#effective:{}", perms_text(e.perms & m)));
                    }
                }
                line
            })
            .collect()
    }

    /// The stored form: version byte, then the entries.
    pub(crate) fn encode(&self) -> FsResult<Vec<u8>> {
        let v1 = AclRecordV1 {
            entries: self
                .entries
                .iter()
                .map(|e| {
                    let (tag, id) = match e.tag {
                        AclTag::UserObj => (TAG_USER_OBJ, 0),
                        AclTag::User(u) => (TAG_USER, u),
                        AclTag::GroupObj => (TAG_GROUP_OBJ, 0),
                        AclTag::Group(g) => (TAG_GROUP, g),
                        AclTag::Mask => (TAG_MASK, 0),
                        AclTag::Other => (TAG_OTHER, 0),
                    };
                    EntryV1 {
                        tag,
                        id,
                        perms: e.perms as u8,
                    }
                })
                .collect(),
        };
        encode_versioned(ACL_V1, &v1)
    }

    /// Decodes a stored ACL; a record that is not a valid ACL is an error.
    pub(crate) fn decode(bytes: &[u8]) -> FsResult<Self> {
        let v1: AclRecordV1 = decode_versioned("acl", ACL_V1, bytes)?;
        let mut entries = Vec::with_capacity(v1.entries.len());
        for e in v1.entries {
            let tag = match e.tag {
                TAG_USER_OBJ => AclTag::UserObj,
                TAG_USER => AclTag::User(e.id),
                TAG_GROUP_OBJ => AclTag::GroupObj,
                TAG_GROUP => AclTag::Group(e.id),
                TAG_MASK => AclTag::Mask,
                TAG_OTHER => AclTag::Other,
                t => return Err(FsError::Io(format!("corrupt acl record: tag {t}"))),
            };
            entries.push(AclEntry {
                tag,
                perms: u32::from(e.perms),
            });
        }
        Acl::new(entries).map_err(|e| FsError::Io(format!("corrupt acl record: {e}")))
    }
}

impl fmt::Display for Acl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_short_text(""))
    }
}

// Stored tag values (those of Linux's ACL xattr format).
const TAG_USER_OBJ: u8 = 0x01;
const TAG_USER: u8 = 0x02;
const TAG_GROUP_OBJ: u8 = 0x04;
const TAG_GROUP: u8 = 0x08;
const TAG_MASK: u8 = 0x10;
const TAG_OTHER: u8 = 0x20;

/// Version 1 of the stored ACL.
#[derive(Debug, Serialize, Deserialize)]
struct AclRecordV1 {
    entries: Vec<EntryV1>,
}

#[derive(Debug, Serialize, Deserialize)]
struct EntryV1 {
    /// One of the `TAG_*` values.
    tag: u8,
    /// uid or gid of a named entry, 0 otherwise.
    id: u32,
    /// `rwx` bits.
    perms: u8,
}

fn tag_text(tag: AclTag, short: bool) -> String {
    let (user, group, mask, other) = if short {
        ("u", "g", "m", "o")
    } else {
        ("user", "group", "mask", "other")
    };
    match tag {
        AclTag::UserObj => format!("{user}::"),
        AclTag::User(u) => format!("{user}:{u}:"),
        AclTag::GroupObj => format!("{group}::"),
        AclTag::Group(g) => format!("{group}:{g}:"),
        AclTag::Mask => format!("{mask}::"),
        AclTag::Other => format!("{other}::"),
    }
}

fn perms_text(p: u32) -> String {
    let bit = |b: u32, c: char| if p & b != 0 { c } else { '-' };
    [bit(R, 'r'), bit(W, 'w'), bit(X, 'x')].iter().collect()
}

/// Entries of a setfacl specification, split by the ACL they change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclSpec {
    /// Entries for the access ACL.
    pub access: Vec<AclEntry>,
    /// Entries for the default ACL (written with a `d:` / `default:` prefix).
    pub default: Vec<AclEntry>,
}

impl AclSpec {
    /// Parses setfacl syntax: entries separated by commas or newlines,
    /// each `[d[efault]:]u[ser]:[UID]:PERMS`, `g[roup]:[GID]:PERMS`,
    /// `m[ask][:]:PERMS` or `o[ther][:]:PERMS`, where PERMS is any of
    /// `r`, `w`, `x`, `-` or one octal digit. getfacl output parses too
    /// (`#` starts a comment). Users and groups are numeric ids: names
    /// mean nothing to a server shared by many clients.
    pub fn parse(text: &str) -> Result<Self, AclError> {
        let mut spec = AclSpec::default();
        for raw in text.split([',', '\n']) {
            let item = raw.split('#').next().unwrap_or("").trim();
            if item.is_empty() {
                continue;
            }
            let (is_default, entry) = parse_entry(item)?;
            let list = if is_default {
                &mut spec.default
            } else {
                &mut spec.access
            };
            if list.iter().any(|e| e.tag == entry.tag) {
                return Err(err(format!("{item:?}: entry given twice")));
            }
            list.push(entry);
        }
        Ok(spec)
    }

    /// Whether it names no entry at all.
    pub fn is_empty(&self) -> bool {
        self.access.is_empty() && self.default.is_empty()
    }
}

fn parse_entry(item: &str) -> Result<(bool, AclEntry), AclError> {
    let mut fields: Vec<&str> = item.split(':').map(str::trim).collect();
    let is_default = matches!(fields.first(), Some(&("d" | "default")));
    if is_default {
        fields.remove(0);
    }
    let bad = |why: &str| err(format!("{item:?}: {why}"));
    let (kind, qualifier, perms) = match fields.as_slice() {
        [k, q, p] => (*k, *q, *p),
        // `m:rwx` and `o:rwx` (setfacl accepts them without the empty qualifier).
        [k @ ("m" | "mask" | "o" | "other"), p] => (*k, "", *p),
        _ => return Err(bad("expected TYPE:ID:PERMS (e.g. u:1001:rwx)")),
    };
    let id = |what: &str| -> Result<Option<u32>, AclError> {
        if qualifier.is_empty() {
            return Ok(None);
        }
        qualifier.parse::<u32>().map(Some).map_err(|_| {
            bad(&format!(
                "{what} {qualifier:?} is not a number (use numeric ids)"
            ))
        })
    };
    let tag = match kind {
        "u" | "user" => id("uid")?.map_or(AclTag::UserObj, AclTag::User),
        "g" | "group" => id("gid")?.map_or(AclTag::GroupObj, AclTag::Group),
        "m" | "mask" | "o" | "other" => {
            if !qualifier.is_empty() {
                return Err(bad("mask and other entries take no id"));
            }
            if kind.starts_with('m') {
                AclTag::Mask
            } else {
                AclTag::Other
            }
        }
        _ => return Err(bad("type must be u[ser], g[roup], m[ask] or o[ther]")),
    };
    Ok((
        is_default,
        AclEntry::new(tag, parse_perms(perms).map_err(|w| bad(&w))?),
    ))
}

fn parse_perms(p: &str) -> Result<u32, String> {
    if p.len() == 1 && p.as_bytes()[0].is_ascii_digit() {
        return match p.parse::<u32>() {
            Ok(n) if n <= 7 => Ok(n),
            _ => Err(format!("permissions {p:?} are not an octal digit")),
        };
    }
    if p.is_empty() {
        return Err("no permissions given (use - for none)".into());
    }
    let mut bits = 0;
    for c in p.chars() {
        bits |= match c {
            'r' => R,
            'w' => W,
            'x' => X,
            '-' => 0,
            _ => return Err(format!("permissions {p:?}: only r, w, x and - are allowed")),
        };
    }
    Ok(bits)
}

/// How a specification changes an object's ACLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AclEdit {
    /// `setfacl --set`: the entries replace the ACL of each kind the
    /// specification names (missing base entries come from the current
    /// ones; a missing mask is the union of the group class).
    Set,
    /// `setfacl -m`: the entries are added to or replace entries of the
    /// current ACLs (the mask is recomputed unless given).
    Modify,
}

/// The ACL `entries` ask for on top of `current` (the object's present
/// ACL of that kind, base entries included): [`AclEdit::Set`] keeps only
/// `current`'s base entries, [`AclEdit::Modify`] all of them. A mask the
/// entries do not give is recomputed as the union of the group class, as
/// setfacl does without `-n`.
pub fn edit(current: &Acl, entries: &[AclEntry], how: AclEdit) -> Result<Acl, AclError> {
    let mut out: Vec<AclEntry> = current
        .entries
        .iter()
        .filter(|e| {
            how == AclEdit::Modify
                || matches!(e.tag, AclTag::UserObj | AclTag::GroupObj | AclTag::Other)
        })
        .copied()
        .collect();
    for e in entries {
        out.retain(|o| o.tag != e.tag);
        out.push(*e);
    }
    let mask_given = entries.iter().any(|e| e.tag == AclTag::Mask);
    let named = out
        .iter()
        .any(|e| matches!(e.tag, AclTag::User(_) | AclTag::Group(_)));
    let has_mask = out.iter().any(|e| e.tag == AclTag::Mask);
    if !mask_given && (named || has_mask) {
        let union = out
            .iter()
            .filter(|e| e.tag.in_group_class())
            .fold(0, |acc, e| acc | e.perms);
        out.retain(|o| o.tag != AclTag::Mask);
        out.push(AclEntry::new(AclTag::Mask, union));
    }
    Acl::new(out)
}

/// Where permission checks read ACL records from: the transaction they
/// run in, the store directly (checks outside a transaction) or a
/// snapshot's view.
pub(crate) trait AclSource {
    /// The stored record of `ino`'s ACL of `kind`, if it has one.
    fn acl_record(&mut self, ino: u64, kind: AclKind) -> FsResult<Option<Vec<u8>>>;
}

impl AclSource for dyn Txn + '_ {
    fn acl_record(&mut self, ino: u64, kind: AclKind) -> FsResult<Option<Vec<u8>>> {
        Ok(self.get(&kind.key(ino))?)
    }
}

/// Reads ACLs from the store outside any transaction (the latest
/// committed state), for checks that run outside one.
pub(crate) struct StoreAcls<'a>(pub &'a dyn MetaKv);

impl AclSource for StoreAcls<'_> {
    fn acl_record(&mut self, ino: u64, kind: AclKind) -> FsResult<Option<Vec<u8>>> {
        Ok(self.0.get(&kind.key(ino))?)
    }
}

/// The stored ACL of `kind` on `ino`, if any, as stored (for an access
/// ACL, apply the mode with [`Acl::with_mode`] before use).
pub(crate) fn load<S: AclSource + ?Sized>(
    src: &mut S,
    ino: u64,
    kind: AclKind,
) -> FsResult<Option<Acl>> {
    match src.acl_record(ino, kind)? {
        Some(b) => Ok(Some(Acl::decode(&b)?)),
        None => Ok(None),
    }
}

/// The access ACL that decides for `rec`, with the mode applied.
pub(crate) fn load_access<S: AclSource + ?Sized>(
    src: &mut S,
    rec: &InodeRecord,
) -> FsResult<Option<Acl>> {
    Ok(load(src, rec.ino, AclKind::Access)?.map(|a| a.with_mode(rec.mode)))
}

/// Gives `child`, being created in `parent` inside `txn`, the ACLs POSIX
/// says it inherits: with a default ACL on `parent`, the child's access
/// ACL is that default masked by the mode it is created with (and its
/// mode follows), and a new directory also takes the default ACL as its
/// own default. Without one, nothing changes. Symbolic links have no ACLs.
pub(crate) fn inherit(
    txn: &mut dyn Txn,
    parent: &InodeRecord,
    child: &mut InodeRecord,
) -> FsResult<()> {
    if child.kind == FileType::Symlink {
        return Ok(());
    }
    let Some(default) = load(txn, parent.ino, AclKind::Default)? else {
        return Ok(());
    };
    let (access, mode) = default.inherit(child.mode);
    child.mode = mode;
    if let Some(a) = access {
        txn.put(&AclKind::Access.key(child.ino), &a.encode()?)?;
    }
    if child.kind == FileType::Directory {
        txn.put(&AclKind::Default.key(child.ino), &default.encode()?)?;
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The access ACL of `text` (setfacl syntax); perm.rs's tests use it too.
    pub(crate) fn acl(text: &str) -> Acl {
        Acl::new(AclSpec::parse(text).expect("parse").access).expect("valid")
    }

    /// A caller; perm.rs's tests use it too.
    pub(crate) fn who(uid: u32, gid: u32, groups: &[u32]) -> Credentials {
        Credentials {
            uid,
            gid,
            groups: groups.to_vec(),
        }
    }

    #[test]
    fn setfacl_short_and_long_forms_parse_to_the_same_entries() {
        let short =
            AclSpec::parse("u::rwx,u:1001:rwx,g::r-x,g:2000:r-x,m::rwx,o::---").expect("ok");
        let long = AclSpec::parse(
            "user::rwx\nuser:1001:rwx\ngroup::r-x\ngroup:2000:5\nmask:rwx\nother:---",
        )
        .expect("ok");
        assert_eq!(short, long);
        assert_eq!(short.access.len(), 6);
        assert!(short.default.is_empty());
    }

    #[test]
    fn default_prefix_sends_entries_to_the_default_acl() {
        let s =
            AclSpec::parse("u:1001:rwx,g:2000:r-x,m::rwx,d:u:1001:rwx,default:o::r").expect("ok");
        assert_eq!(s.access.len(), 3);
        assert_eq!(
            s.default,
            vec![
                AclEntry::new(AclTag::User(1001), 7),
                AclEntry::new(AclTag::Other, 4)
            ]
        );
    }

    #[test]
    fn getfacl_output_parses_back_ignoring_comments() {
        let a = acl("u::rw-,u:1001:rwx,g::r--,m::r--,o::---");
        let text = format!("# file: x\n{}\n", a.to_getfacl_lines("").join("\n"));
        assert!(text.contains("user:1001:rwx\t#effective:r--"), "{text}");
        assert_eq!(acl(&text), a);
    }

    #[test]
    fn bad_specifications_say_what_is_wrong() {
        for (spec, needle) in [
            ("u:bob:rwx", "not a number"),
            ("u:1:rwz", "only r, w, x"),
            ("q::rwx", "type must be"),
            ("m:1:rwx", "take no id"),
            ("u:1:rwx,u:1:r", "twice"),
            ("u:1", "expected TYPE:ID:PERMS"),
            ("o::8", "octal"),
            ("u::", "no permissions"),
        ] {
            let e = AclSpec::parse(spec).expect_err(spec);
            assert!(e.to_string().contains(needle), "{spec}: {e}");
        }
    }

    #[test]
    fn validation_requires_base_entries_and_a_mask_with_named_entries() {
        let parse = |s: &str| Acl::new(AclSpec::parse(s).expect("ok").access);
        assert!(parse("u::rwx,g::r-x").is_err(), "no other");
        assert!(
            parse("u::rwx,u:5:r,g::r-x,o::r").is_err(),
            "named without mask"
        );
        assert!(parse("u::rwx,g::r-x,o::r").is_ok());
        assert!(
            parse("u::rwx,g::r-x,m::r,o::r").is_ok(),
            "mask alone is allowed"
        );
        let e = Acl::new(vec![
            AclEntry::new(AclTag::UserObj, 7),
            AclEntry::new(AclTag::UserObj, 5),
        ])
        .expect_err("invalid");
        assert!(e.to_string().contains("duplicate"), "{e}");
    }

    #[test]
    fn entries_come_out_in_canonical_order() {
        let a = acl("o::r,m::rwx,g:20:r,u:9:r,g::r,u:3:w,u::rw");
        assert_eq!(
            a.to_short_text(""),
            "u::rw-,u:3:-w-,u:9:r--,g::r--,g:20:r--,m::rwx,o::r--"
        );
        assert_eq!(a.to_string(), a.to_short_text(""));
    }

    #[test]
    fn owner_gets_user_obj_whatever_the_named_entries_say() {
        let a = acl("u::r--,u:10:rwx,g::rwx,m::rwx,o::rwx");
        let owner = who(10, 10, &[]);
        assert!(a.permits(10, 10, &owner, R));
        assert!(
            !a.permits(10, 10, &owner, W),
            "user_obj rules for the owner"
        );
    }

    #[test]
    fn named_user_is_limited_by_the_mask() {
        let a = acl("u::rwx,u:1001:rwx,g::r--,m::r-x,o::---");
        let bob = who(1001, 500, &[]);
        assert!(a.permits(0, 0, &bob, R | X));
        assert!(!a.permits(0, 0, &bob, W), "mask removes w");
        assert_eq!(a.granted_bits(0, 0, &bob), R | X);
        let eve = who(1002, 500, &[]);
        assert_eq!(a.granted_bits(0, 0, &eve), 0, "others get other::");
    }

    #[test]
    fn named_user_entry_wins_over_group_and_other() {
        let a = acl("u::rwx,u:1001:---,g::rwx,m::rwx,o::rwx");
        let bob = who(1001, 0, &[]);
        assert_eq!(a.granted_bits(0, 0, &bob), 0);
    }

    #[test]
    fn group_class_grants_when_one_matching_entry_holds_all_bits() {
        // Owning group 100 may read, named group 200 may write.
        let a = acl("u::rwx,g::r--,g:200:-w-,m::rwx,o::rwx");
        let both = who(7, 100, &[200]);
        assert!(a.permits(1, 100, &both, R));
        assert!(a.permits(1, 100, &both, W));
        assert!(
            !a.permits(1, 100, &both, R | W),
            "no single group entry holds rw: denied, not other::"
        );
        assert!(
            !a.permits(1, 100, &both, X),
            "matched a group: other:: is not consulted"
        );
        let stranger = who(8, 300, &[]);
        assert!(a.permits(1, 100, &stranger, R | W | X), "other::rwx");
    }

    #[test]
    fn group_entries_are_limited_by_the_mask() {
        let a = acl("u::rwx,g::rwx,g:200:rwx,m::r--,o::---");
        let member = who(7, 200, &[]);
        assert!(a.permits(1, 100, &member, R));
        assert!(!a.permits(1, 100, &member, W));
        let owning = who(8, 100, &[]);
        assert_eq!(a.granted_bits(1, 100, &owning), R);
    }

    #[test]
    fn mode_bits_map_to_owner_mask_and_other() {
        let a = acl("u::rw-,u:5:rwx,g::r--,m::r-x,o::---");
        assert_eq!(a.mode_bits(), 0o650);
        assert_eq!(Acl::from_mode(0o754).mode_bits(), 0o754);
        // chmod: the group bits change the mask, not group::.
        let b = a.clone().with_mode(0o710);
        assert_eq!(b.get(AclTag::Mask), Some(1));
        assert_eq!(b.get(AclTag::GroupObj), Some(4));
        assert_eq!(b.get(AclTag::UserObj), Some(7));
        assert_eq!(b.get(AclTag::Other), Some(0));
        // Without a mask, group:: follows the mode.
        assert_eq!(
            Acl::from_mode(0o700).with_mode(0o750).get(AclTag::GroupObj),
            Some(5)
        );
    }

    #[test]
    fn inheritance_masks_the_default_with_the_create_mode() {
        let d = acl("u::rwx,u:1001:rwx,g::r-x,m::rwx,o::r-x");
        let (access, mode) = d.inherit(0o644);
        let access = access.expect("named entries make an ACL");
        assert_eq!(mode, 0o644, "owner rw, mask r, other r");
        assert_eq!(access.get(AclTag::UserObj), Some(6));
        assert_eq!(
            access.get(AclTag::Mask),
            Some(4),
            "mask & group bits of the mode"
        );
        assert_eq!(
            access.get(AclTag::User(1001)),
            Some(7),
            "named entries kept as is"
        );
        assert_eq!(access.get(AclTag::Other), Some(4));
        // Effective rights of the named user are limited by the new mask.
        assert_eq!(access.granted_bits(1, 1, &who(1001, 9, &[])), R);
        // A directory made with 0777 gets everything the default allows.
        let (_, mode) = d.inherit(0o777 | 0o2000);
        assert_eq!(mode, 0o2775, "special bits kept");
        // A minimal default gives no ACL, only a narrower mode.
        let (none, mode) = Acl::from_mode(0o750).inherit(0o666);
        assert!(none.is_none());
        assert_eq!(mode, 0o640);
    }

    #[test]
    fn set_fills_base_entries_and_computes_the_mask() {
        let current = Acl::from_mode(0o640);
        let spec = AclSpec::parse("u:1001:rwx,g:2000:r-x").expect("ok");
        let a = edit(&current, &spec.access, AclEdit::Set).expect("ok");
        assert_eq!(
            a.to_short_text(""),
            "u::rw-,u:1001:rwx,g::r--,g:2000:r-x,m::rwx,o::---"
        );
        // An explicit mask is kept.
        let spec = AclSpec::parse("u:1001:rwx,m::r").expect("ok");
        let a = edit(&current, &spec.access, AclEdit::Set).expect("ok");
        assert_eq!(a.get(AclTag::Mask), Some(4));
        // Set drops named entries not given; modify keeps them.
        let spec = AclSpec::parse("g:7:r").expect("ok");
        let set = edit(&a, &spec.access, AclEdit::Set).expect("ok");
        assert_eq!(set.get(AclTag::User(1001)), None);
        let modified = edit(&a, &spec.access, AclEdit::Modify).expect("ok");
        assert_eq!(modified.get(AclTag::User(1001)), Some(7));
        assert_eq!(modified.get(AclTag::Mask), Some(7), "recomputed union");
    }

    #[test]
    fn stored_acl_round_trips_and_starts_with_its_version() {
        let a = acl("u::rw-,u:1001:rwx,g::r--,g:2000:r-x,m::rwx,o::---");
        let b = a.encode().expect("ok");
        assert_eq!(b[0], ACL_V1);
        assert_eq!(Acl::decode(&b).expect("ok"), a);
    }

    /// Fixture: a version-1 record as the first release wrote it
    /// (`u::rw-,u:1001:rwx,g::r--,m::rwx,o::---`). Must keep decoding.
    #[test]
    fn version_1_acl_fixture_still_decodes() {
        let bytes: Vec<u8> = (0..V1_ACL_FIXTURE.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&V1_ACL_FIXTURE[i..i + 2], 16).expect("ok"))
            .collect();
        assert_eq!(
            Acl::decode(&bytes).expect("ok"),
            acl("u::rw-,u:1001:rwx,g::r--,m::rwx,o::---")
        );
    }

    const V1_ACL_FIXTURE: &str =
        "01050000000000000001000000000602e903000007040000000004100000000007200000000000";

    #[test]
    fn corrupt_records_are_errors_not_panics() {
        assert!(Acl::decode(&[]).is_err());
        assert!(Acl::decode(&[9, 0]).is_err());
        assert!(Acl::decode(&[ACL_V1, 1, 2, 3]).is_err());
        // A well-formed record of an invalid ACL (no other:: entry).
        let bad = encode_versioned(
            ACL_V1,
            &AclRecordV1 {
                entries: vec![
                    EntryV1 {
                        tag: TAG_USER_OBJ,
                        id: 0,
                        perms: 7,
                    },
                    EntryV1 {
                        tag: TAG_GROUP_OBJ,
                        id: 0,
                        perms: 7,
                    },
                ],
            },
        )
        .expect("ok");
        assert!(Acl::decode(&bad).is_err());
    }
}
