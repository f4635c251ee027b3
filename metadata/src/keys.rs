//! Every metadata key prefix, in one place.
//!
//! Keys are a one-byte prefix followed by big-endian integers and raw names,
//! so that a range scan walks them in numeric then byte order. Prefix bytes
//! are never reused for another meaning; add new ones at the end.
//!
//! | prefix | key after the prefix | value (versioned, encoded by core-fs) |
//! |---|---|---|
//! | `SYSTEM` | ascii name | instance-wide records: format version, inode allocator, boot count |
//! | `VOLUME` | volume name | volume record (id, root inode, options) |
//! | `VOLUME_ID` | volume id (u32) | volume name (handle → volume) |
//! | `INODE` | inode (u64) | inode record (type, mode, owner, size, times, layout, epoch) |
//! | `DENTRY` | parent (u64) ‖ name | dentry (child inode, type, readdir cookie) |
//! | `DIR_COOKIE` | parent (u64) ‖ cookie (u64) | child inode (u64) ‖ name — stable readdir order and resume points |
//! | `XATTR` | inode (u64) ‖ name | value (S3 object metadata lives here as `user.s3.*`) |
//! | `ACL` | inode (u64) ‖ kind (u8: 1 access, 2 default) | POSIX.1e ACL entries |
//! | `QUOTA` | kind (u8) ‖ … — see below | quota limits and usage, updated in the same transaction as the change they count |
//! | `GC` | inode (u64) | inode whose chunks must be deleted (written in the unlink transaction) |
//! | `SNAPSHOT` | volume id (u32) ‖ name | snapshot record (epoch, time, inode high-water mark, state) |
//! | `HISTORY` | epoch (u64) ‖ original key | record as it was before the first change after snapshot `epoch` (copy-on-write); original keys include the pseudo-keys `CHUNK_HISTORY` and `DATA_HISTORY` |
//! | `PENDING` | inode (u64) | a file with no name yet (S3 PUT or multipart part in progress): kind tag |
//! | `DATA_OWNER` | data inode (u64) | the file (u64) whose bytes it holds (a multipart part linked into the object) |
//! | `UPLOAD_INDEX` | id length (u16) ‖ upload id ‖ inode (u64) | empty — the detached files of one multipart upload |
//! | `SNAP_STATE` | volume id (u32) | the volume's snapshots (epochs, high-water marks), read by every write transaction |
//! | `CHUNK_HISTORY` | data inode (u64) ‖ chunk index (u64) | only inside `HISTORY`: where a snapshot's copy of a chunk lives |
//! | `DATA_HISTORY` | data inode (u64) | only inside `HISTORY`: the inode's live chunks belong to the snapshot (file removed after it) |
//! | `INLINE` | inode (u64) | the bytes of a small file kept with its metadata (data on the metadata service), at most the volume's inline limit |
//!
//! A `GC` key is `GC ‖ ino` (all chunks of the inode) or `GC ‖ ino ‖ index`
//! (one chunk: a snapshot's copy that is no longer needed).
//!
//! `QUOTA` keys, by the kind byte after the prefix:
//! `QUOTA ‖ 0 ‖ volume (u32)` how many tree, user and group quotas the volume
//! has (read by every charging transaction, written only by quota admin);
//! `QUOTA ‖ 1 ‖ root (u64)` a directory-tree quota (limits, usage, state);
//! `QUOTA ‖ 2 ‖ volume (u32) ‖ uid (u32)` and `QUOTA ‖ 3 ‖ volume ‖ gid` per-user
//! and per-group quotas; `QUOTA ‖ 4 ‖ inode (u64)` the tree quota root an inode
//! inside a quota tree is charged to (only such inodes have one);
//! `QUOTA ‖ 5 ‖ <kind and id of a quota>` progress of counting the existing
//! usage of a quota set on a populated tree or volume.

/// Instance-wide records.
pub const SYSTEM: u8 = 0x01;
/// Volume by name.
pub const VOLUME: u8 = 0x02;
/// Volume name by id.
pub const VOLUME_ID: u8 = 0x03;
/// Inode records.
pub const INODE: u8 = 0x04;
/// Directory entries by parent and name.
pub const DENTRY: u8 = 0x05;
/// Directory entries by parent and readdir cookie.
pub const DIR_COOKIE: u8 = 0x06;
/// Extended attributes.
pub const XATTR: u8 = 0x07;
/// POSIX ACLs.
pub const ACL: u8 = 0x08;
/// Quota limits and usage per quota root.
pub const QUOTA: u8 = 0x09;
/// Inodes whose chunks await deletion.
pub const GC: u8 = 0x0a;
/// Snapshots per volume.
pub const SNAPSHOT: u8 = 0x0b;
/// Copy-on-write history of records changed after a snapshot.
pub const HISTORY: u8 = 0x0c;

/// Detached (not yet named) files.
pub const PENDING: u8 = 0x0d;
/// Data inodes owned by a file (segments of a multipart object).
pub const DATA_OWNER: u8 = 0x0e;

/// Detached files by the multipart upload that owns them.
pub const UPLOAD_INDEX: u8 = 0x0f;

/// Snapshot state per volume.
pub const SNAP_STATE: u8 = 0x10;
/// Pseudo-prefix of a chunk's history (only inside `HISTORY` keys).
pub const CHUNK_HISTORY: u8 = 0x11;
/// Pseudo-prefix of a removed file's data history (only inside `HISTORY` keys).
pub const DATA_HISTORY: u8 = 0x12;
/// Bytes of small files kept in the metadata store.
pub const INLINE: u8 = 0x13;

/// Name of the system record holding the next snapshot epoch.
pub const SYS_NEXT_EPOCH: &str = "next_epoch";

/// Name of the system record holding the on-disk format version.
pub const SYS_FORMAT: &str = "format";
/// Name of the system record holding the inode allocator's high-water mark.
pub const SYS_NEXT_INODE: &str = "next_inode";
/// Name of the system record holding the next volume id.
pub const SYS_NEXT_VOLUME: &str = "next_volume";
/// Name of the system record counting server starts (feeds write verifiers).
pub const SYS_BOOT_COUNT: &str = "boot_count";

fn with_prefix(prefix: u8, cap: usize) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + cap);
    k.push(prefix);
    k
}

/// `SYSTEM ‖ name`.
pub fn system(name: &str) -> Vec<u8> {
    let mut k = with_prefix(SYSTEM, name.len());
    k.extend_from_slice(name.as_bytes());
    k
}

/// `VOLUME ‖ name`.
pub fn volume(name: &str) -> Vec<u8> {
    let mut k = with_prefix(VOLUME, name.len());
    k.extend_from_slice(name.as_bytes());
    k
}

/// The prefix of all volume records.
pub fn volume_prefix() -> Vec<u8> {
    vec![VOLUME]
}

/// `VOLUME_ID ‖ id`.
pub fn volume_id(id: u32) -> Vec<u8> {
    let mut k = with_prefix(VOLUME_ID, 4);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `INODE ‖ ino`.
pub fn inode(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(INODE, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// The prefix of all inode records.
pub fn inode_prefix() -> Vec<u8> {
    vec![INODE]
}

/// `DENTRY ‖ parent ‖ name`.
pub fn dentry(parent: u64, name: &[u8]) -> Vec<u8> {
    let mut k = dentry_prefix(parent);
    k.extend_from_slice(name);
    k
}

/// `DENTRY ‖ parent`: all entries of one directory, in name order.
pub fn dentry_prefix(parent: u64) -> Vec<u8> {
    let mut k = with_prefix(DENTRY, 8);
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

/// `DIR_COOKIE ‖ parent ‖ cookie`.
pub fn dir_cookie(parent: u64, cookie: u64) -> Vec<u8> {
    let mut k = dir_cookie_prefix(parent);
    k.extend_from_slice(&cookie.to_be_bytes());
    k
}

/// `DIR_COOKIE ‖ parent`: all entries of one directory, in cookie order.
pub fn dir_cookie_prefix(parent: u64) -> Vec<u8> {
    let mut k = with_prefix(DIR_COOKIE, 8);
    k.extend_from_slice(&parent.to_be_bytes());
    k
}

/// Decodes the cookie from a `DIR_COOKIE` key.
pub fn dir_cookie_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// `XATTR ‖ ino ‖ name`.
pub fn xattr(ino: u64, name: &[u8]) -> Vec<u8> {
    let mut k = xattr_prefix(ino);
    k.extend_from_slice(name);
    k
}

/// `XATTR ‖ ino`: all extended attributes of one inode.
pub fn xattr_prefix(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(XATTR, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `ACL ‖ ino ‖ kind`.
pub fn acl(ino: u64, kind: u8) -> Vec<u8> {
    let mut k = with_prefix(ACL, 9);
    k.extend_from_slice(&ino.to_be_bytes());
    k.push(kind);
    k
}

/// Kind byte of `QUOTA ‖ 0 ‖ volume`: the volume's quota counts.
pub const QUOTA_VOLUME: u8 = 0;
/// Kind byte of a directory-tree quota.
pub const QUOTA_TREE: u8 = 1;
/// Kind byte of a per-user quota.
pub const QUOTA_USER: u8 = 2;
/// Kind byte of a per-group quota.
pub const QUOTA_GROUP: u8 = 3;
/// Kind byte of an inode's tree-quota membership.
pub const QUOTA_MEMBER: u8 = 4;
/// Kind byte of the counting progress of a new quota.
pub const QUOTA_COUNT: u8 = 5;

/// `QUOTA ‖ 0 ‖ volume`.
pub fn quota_volume(volume: u32) -> Vec<u8> {
    let mut k = with_prefix(QUOTA, 5);
    k.push(QUOTA_VOLUME);
    k.extend_from_slice(&volume.to_be_bytes());
    k
}

/// `QUOTA ‖ 1 ‖ root`.
pub fn quota_tree(root: u64) -> Vec<u8> {
    let mut k = quota_tree_prefix();
    k.extend_from_slice(&root.to_be_bytes());
    k
}

/// `QUOTA ‖ 1`: every directory-tree quota.
pub fn quota_tree_prefix() -> Vec<u8> {
    vec![QUOTA, QUOTA_TREE]
}

/// `QUOTA ‖ kind ‖ volume ‖ id` for kind `QUOTA_USER` or `QUOTA_GROUP`.
pub fn quota_owner(kind: u8, volume: u32, id: u32) -> Vec<u8> {
    let mut k = quota_owner_prefix(kind, volume);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// `QUOTA ‖ kind ‖ volume`: every user (or group) quota of a volume.
pub fn quota_owner_prefix(kind: u8, volume: u32) -> Vec<u8> {
    let mut k = with_prefix(QUOTA, 9);
    k.push(kind);
    k.extend_from_slice(&volume.to_be_bytes());
    k
}

/// `QUOTA ‖ 4 ‖ ino`.
pub fn quota_member(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(QUOTA, 9);
    k.push(QUOTA_MEMBER);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `QUOTA ‖ 5 ‖ rest of quota_key`: counting progress of that quota.
pub fn quota_count(quota_key: &[u8]) -> Vec<u8> {
    let mut k = with_prefix(QUOTA, quota_key.len());
    k.push(QUOTA_COUNT);
    k.extend_from_slice(quota_key.get(1..).unwrap_or_default());
    k
}

/// `GC ‖ ino`.
pub fn gc(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(GC, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `GC ‖ ino ‖ index`: one chunk to delete.
pub fn gc_chunk(ino: u64, index: u64) -> Vec<u8> {
    let mut k = gc(ino);
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// Decodes the chunk index of a `GC ‖ ino ‖ index` key (`None` for a
/// whole-inode `GC` key).
pub fn gc_chunk_index(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(9..17)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// The prefix of all pending chunk deletions.
pub fn gc_prefix() -> Vec<u8> {
    vec![GC]
}

/// Decodes the inode from a `GC` or `INODE` key.
pub fn ino_of(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(1..9)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

/// `INLINE ‖ ino`: the bytes of a small file.
pub fn inline(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(INLINE, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `SNAPSHOT ‖ volume ‖ name`.
pub fn snapshot(volume: u32, name: &str) -> Vec<u8> {
    let mut k = with_prefix(SNAPSHOT, 4 + name.len());
    k.extend_from_slice(&volume.to_be_bytes());
    k.extend_from_slice(name.as_bytes());
    k
}

/// `SNAPSHOT ‖ volume`: every snapshot of a volume, in name order.
pub fn snapshot_prefix(volume: u32) -> Vec<u8> {
    let mut k = with_prefix(SNAPSHOT, 4);
    k.extend_from_slice(&volume.to_be_bytes());
    k
}

/// `SNAP_STATE ‖ volume`.
pub fn snap_state(volume: u32) -> Vec<u8> {
    let mut k = with_prefix(SNAP_STATE, 4);
    k.extend_from_slice(&volume.to_be_bytes());
    k
}

/// `HISTORY ‖ epoch`: every record kept for one snapshot.
pub fn history_prefix(epoch: u64) -> Vec<u8> {
    let mut k = with_prefix(HISTORY, 8);
    k.extend_from_slice(&epoch.to_be_bytes());
    k
}

/// The original key inside a `HISTORY` key.
pub fn history_original(key: &[u8]) -> Option<&[u8]> {
    key.get(9..)
}

/// `CHUNK_HISTORY ‖ data ino ‖ index`: the pseudo-key of a chunk's
/// history, used inside [`history`].
pub fn chunk_history(ino: u64, index: u64) -> Vec<u8> {
    let mut k = with_prefix(CHUNK_HISTORY, 16);
    k.extend_from_slice(&ino.to_be_bytes());
    k.extend_from_slice(&index.to_be_bytes());
    k
}

/// `DATA_HISTORY ‖ data ino`: the pseudo-key saying a removed inode's
/// chunks belong to a snapshot, used inside [`history`].
pub fn data_history(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(DATA_HISTORY, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `HISTORY ‖ epoch ‖ original key`.
pub fn history(epoch: u64, original: &[u8]) -> Vec<u8> {
    let mut k = with_prefix(HISTORY, 8 + original.len());
    k.extend_from_slice(&epoch.to_be_bytes());
    k.extend_from_slice(original);
    k
}

/// `PENDING ‖ ino`.
pub fn pending(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(PENDING, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// The prefix of all detached files.
pub fn pending_prefix() -> Vec<u8> {
    vec![PENDING]
}

/// `DATA_OWNER ‖ data ino`.
pub fn data_owner(ino: u64) -> Vec<u8> {
    let mut k = with_prefix(DATA_OWNER, 8);
    k.extend_from_slice(&ino.to_be_bytes());
    k
}

/// `UPLOAD_INDEX ‖ len ‖ id`: every detached file of upload `id`, or
/// `None` for an id longer than 65535 bytes.
pub fn upload_index_prefix(id: &[u8]) -> Option<Vec<u8>> {
    let len = u16::try_from(id.len()).ok()?;
    let mut k = with_prefix(UPLOAD_INDEX, 2 + id.len() + 8);
    k.extend_from_slice(&len.to_be_bytes());
    k.extend_from_slice(id);
    Some(k)
}

/// `UPLOAD_INDEX ‖ len ‖ id ‖ ino`.
pub fn upload_index(id: &[u8], ino: u64) -> Option<Vec<u8>> {
    let mut k = upload_index_prefix(id)?;
    k.extend_from_slice(&ino.to_be_bytes());
    Some(k)
}

/// The inode at the end of an `UPLOAD_INDEX` key.
pub fn upload_index_ino(key: &[u8]) -> Option<u64> {
    let tail: [u8; 8] = key.get(key.len().checked_sub(8)?..)?.try_into().ok()?;
    Some(u64::from_be_bytes(tail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dentry_keys_of_one_directory_sort_by_name_and_stay_inside_its_prefix() {
        let p = dentry_prefix(7);
        let a = dentry(7, b"a");
        let b = dentry(7, b"b");
        let other = dentry(8, b"");
        assert!(a < b);
        assert!(a.starts_with(&p) && b.starts_with(&p));
        assert!(b < crate::prefix_end(&p));
        assert!(other >= crate::prefix_end(&p));
    }

    #[test]
    fn cookie_and_inode_round_trip_through_keys() {
        assert_eq!(
            dir_cookie_of(&dir_cookie(3, 0x0102_0304_0506)),
            Some(0x0102_0304_0506)
        );
        assert_eq!(ino_of(&gc(99)), Some(99));
        assert_eq!(ino_of(&inode(u64::MAX)), Some(u64::MAX));
        assert_eq!(ino_of(&[GC, 1]), None);
    }

    #[test]
    fn upload_index_keys_of_one_upload_share_a_prefix_no_other_upload_has() {
        let a = upload_index(b"ab", 7).expect("key");
        let ab = upload_index(b"abc", 7).expect("key");
        assert!(a.starts_with(&upload_index_prefix(b"ab").expect("prefix")));
        assert!(!ab.starts_with(&upload_index_prefix(b"ab").expect("prefix")));
        assert_eq!(upload_index_ino(&a), Some(7));
        assert!(upload_index_prefix(&vec![0; 70_000]).is_none());
    }

    #[test]
    fn prefixes_are_distinct() {
        let all = [
            SYSTEM,
            VOLUME,
            VOLUME_ID,
            INODE,
            DENTRY,
            DIR_COOKIE,
            XATTR,
            ACL,
            QUOTA,
            GC,
            SNAPSHOT,
            HISTORY,
            PENDING,
            DATA_OWNER,
            UPLOAD_INDEX,
            SNAP_STATE,
            CHUNK_HISTORY,
            DATA_HISTORY,
        ];
        let mut sorted = all.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), all.len());
    }
}
