//! Stored records and their versioned encoding.
//!
//! Every value starts with one format-version byte followed by the bincode
//! encoding of that version's struct. Decoding an older version goes
//! through its migration into the current struct; a version this build
//! does not know is an error, never a guess.

use crate::types::{Attr, FileType, Volume};
use crate::{FsError, FsResult};
use nitrofs_common::Timestamp;
use nitrofs_metadata::{keys, Txn};
use serde::{de::DeserializeOwned, Deserialize, Serialize};

/// First version of the inode record (no segments).
const INODE_V1: u8 = 1;
/// Second version of the inode record (segments, no inline data).
const INODE_V2: u8 = 2;
/// Current version of the inode record.
const INODE_V3: u8 = 3;
/// Current version of the dentry record.
const DENTRY_V1: u8 = 1;
/// Current version of the volume record.
const VOLUME_V1: u8 = 1;

/// On-disk format of the whole store, recorded under `SYS_FORMAT`.
pub const STORE_FORMAT: u64 = 1;

/// Encodes `value` as version `version` (version byte, then bincode).
pub(crate) fn encode_versioned<T: Serialize>(version: u8, value: &T) -> FsResult<Vec<u8>> {
    encode(version, value)
}

/// Decodes a record written by [`encode_versioned`] with `expected`.
pub(crate) fn decode_versioned<T: DeserializeOwned>(
    what: &str,
    expected: u8,
    bytes: &[u8],
) -> FsResult<T> {
    decode(what, expected, bytes)
}

fn encode<T: Serialize>(version: u8, value: &T) -> FsResult<Vec<u8>> {
    let mut out = vec![version];
    bincode::serialize_into(&mut out, value).map_err(|e| FsError::Io(format!("encode: {e}")))?;
    Ok(out)
}

fn decode<T: DeserializeOwned>(what: &str, expected: u8, bytes: &[u8]) -> FsResult<T> {
    match bytes.split_first() {
        Some((v, rest)) if *v == expected => bincode::deserialize(rest)
            .map_err(|e| FsError::Io(format!("corrupt {what} record: {e}"))),
        Some((v, _)) => Err(FsError::Io(format!(
            "{what} record has unknown format version {v}"
        ))),
        None => Err(FsError::Io(format!("empty {what} record"))),
    }
}

/// An inode as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InodeRecord {
    /// Inode number (also in the key; kept here for convenience).
    pub ino: u64,
    /// Random at creation: a handle must match it.
    pub generation: u32,
    /// Volume the inode belongs to.
    pub volume: u32,
    /// Object type.
    pub kind: FileType,
    /// Permission and special bits.
    pub mode: u32,
    /// Hard links (directories: 2 + subdirectories).
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes.
    pub size: u64,
    /// Access time.
    pub atime: Timestamp,
    /// Modification time.
    pub mtime: Timestamp,
    /// Change time.
    pub ctime: Timestamp,
    /// Device numbers.
    pub rdev: (u32, u32),
    /// Chunk size fixed at creation (files).
    pub chunk_size: u32,
    /// Parent directory (directories only: answers `..`).
    pub parent: u64,
    /// Next readdir cookie to hand out (directories only).
    pub next_cookie: u64,
    /// Number of entries (directories only).
    pub entries: u64,
    /// Symlink target.
    pub target: Option<Vec<u8>>,
    /// EXCLUSIVE create verifier, kept until the first SETATTR.
    pub create_verf: Option<[u8; 8]>,
    /// Snapshot epoch in which this version was written (copy-on-write
    /// history is kept for records older than the newest snapshot).
    pub epoch: u64,
    /// Where the bytes live when they are not in this inode's own chunks:
    /// the concatenation of these data inodes (a multipart object whose
    /// parts were linked in without a copy). Empty for ordinary files.
    /// Bytes past the end of all but the last segment map into the last.
    pub segments: Vec<Segment>,
    /// The file's bytes are in its `INLINE` record (none yet if there is
    /// no record), not in chunks: a small file kept with its metadata.
    /// Set at creation when the filesystem keeps small files inline;
    /// cleared for good when the file outgrows the limit.
    pub inline: bool,
}

/// A run of a file's bytes held in another (data-only) inode's chunks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// The data inode whose chunks hold the bytes.
    pub ino: u64,
    /// Bytes in this segment (ignored for the last one, which is open-ended).
    pub len: u64,
    /// Chunk size of the data inode.
    pub chunk_size: u32,
}

/// Version 1 of the inode record, decoded and migrated to the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct InodeRecordV1 {
    ino: u64,
    generation: u32,
    volume: u32,
    kind: FileType,
    mode: u32,
    nlink: u32,
    uid: u32,
    gid: u32,
    size: u64,
    atime: Timestamp,
    mtime: Timestamp,
    ctime: Timestamp,
    rdev: (u32, u32),
    chunk_size: u32,
    parent: u64,
    next_cookie: u64,
    entries: u64,
    target: Option<Vec<u8>>,
    create_verf: Option<[u8; 8]>,
    epoch: u64,
}

impl From<InodeRecordV1> for InodeRecord {
    fn from(v: InodeRecordV1) -> Self {
        Self {
            ino: v.ino,
            generation: v.generation,
            volume: v.volume,
            kind: v.kind,
            mode: v.mode,
            nlink: v.nlink,
            uid: v.uid,
            gid: v.gid,
            size: v.size,
            atime: v.atime,
            mtime: v.mtime,
            ctime: v.ctime,
            rdev: v.rdev,
            chunk_size: v.chunk_size,
            parent: v.parent,
            next_cookie: v.next_cookie,
            entries: v.entries,
            target: v.target,
            create_verf: v.create_verf,
            epoch: v.epoch,
            segments: Vec::new(),
            inline: false,
        }
    }
}

impl InodeRecord {
    /// The attributes protocols see.
    pub fn attr(&self) -> Attr {
        let used = match self.kind {
            FileType::Regular => self.size.div_ceil(4096) * 4096,
            FileType::Directory => 4096,
            _ => 0,
        };
        Attr {
            ino: self.ino,
            generation: self.generation,
            volume: self.volume,
            kind: self.kind,
            mode: self.mode,
            nlink: self.nlink,
            uid: self.uid,
            gid: self.gid,
            size: self.size,
            used,
            rdev: self.rdev,
            atime: self.atime,
            mtime: self.mtime,
            ctime: self.ctime,
        }
    }

    /// Encodes the current version.
    pub fn encode(&self) -> FsResult<Vec<u8>> {
        encode(INODE_V3, self)
    }

    /// Decodes any known version, migrating older ones.
    pub fn decode(bytes: &[u8]) -> FsResult<Self> {
        match bytes.first() {
            Some(&INODE_V1) => Ok(decode::<InodeRecordV1>("inode", INODE_V1, bytes)?.into()),
            Some(&INODE_V2) => {
                // bincode writes a struct's fields one after another, so a
                // v2 record is a v1 record followed by its segments.
                let (v1, segments): (InodeRecordV1, Vec<Segment>) =
                    decode("inode", INODE_V2, bytes)?;
                Ok(Self {
                    segments,
                    ..v1.into()
                })
            }
            _ => decode("inode", INODE_V3, bytes),
        }
    }

    /// The data inodes holding this file's bytes (itself for ordinary files).
    pub fn data_inodes(&self) -> Vec<u64> {
        if self.segments.is_empty() {
            vec![self.ino]
        } else {
            self.segments.iter().map(|s| s.ino).collect()
        }
    }
}

/// A directory entry as stored under `DENTRY ‖ parent ‖ name`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DentryRecord {
    /// Child inode.
    pub ino: u64,
    /// Child type (saves a read for readdir).
    pub kind: FileType,
    /// Readdir cookie of this entry (key of its `DIR_COOKIE` record).
    pub cookie: u64,
}

impl DentryRecord {
    /// Encodes the current version.
    pub fn encode(&self) -> FsResult<Vec<u8>> {
        encode(DENTRY_V1, self)
    }

    /// Decodes any known version.
    pub fn decode(bytes: &[u8]) -> FsResult<Self> {
        decode("dentry", DENTRY_V1, bytes)
    }
}

/// Encodes a volume record.
pub fn encode_volume(v: &Volume) -> FsResult<Vec<u8>> {
    encode(VOLUME_V1, v)
}

/// Decodes a volume record.
pub fn decode_volume(bytes: &[u8]) -> FsResult<Volume> {
    decode("volume", VOLUME_V1, bytes)
}

/// Reads an inode inside a transaction; `None` if absent.
pub fn get_inode(txn: &mut dyn Txn, ino: u64) -> FsResult<Option<InodeRecord>> {
    match txn.get(&keys::inode(ino))? {
        Some(b) => Ok(Some(InodeRecord::decode(&b)?)),
        None => Ok(None),
    }
}

/// Reads an inode that a caller holds a reference to: absent means stale.
pub fn load_inode(txn: &mut dyn Txn, ino: u64) -> FsResult<InodeRecord> {
    if ino >= crate::snapshot::LIVE_INO_LIMIT {
        // Objects inside snapshots are never changed.
        return Err(FsError::ReadOnly);
    }
    get_inode(txn, ino)?.ok_or(FsError::Stale)
}

/// Writes an inode.
pub fn put_inode(txn: &mut dyn Txn, rec: &InodeRecord) -> FsResult<()> {
    txn.put(&keys::inode(rec.ino), &rec.encode()?)?;
    Ok(())
}

/// Reads a directory entry.
pub fn get_dentry(txn: &mut dyn Txn, parent: u64, name: &[u8]) -> FsResult<Option<DentryRecord>> {
    match txn.get(&keys::dentry(parent, name))? {
        Some(b) => Ok(Some(DentryRecord::decode(&b)?)),
        None => Ok(None),
    }
}

/// Adds an entry to `dir` (whose record the caller writes back), giving it
/// the directory's next cookie.
pub fn add_dentry(
    txn: &mut dyn Txn,
    dir: &mut InodeRecord,
    name: &[u8],
    ino: u64,
    kind: FileType,
) -> FsResult<()> {
    if dir.parent == dir.ino && name == crate::snapshot::SNAPSHOT_DIR {
        // The volume root's `.snapshot` is the snapshots' directory.
        return Err(FsError::Exists);
    }
    let cookie = dir.next_cookie;
    dir.next_cookie += 1;
    dir.entries += 1;
    let d = DentryRecord { ino, kind, cookie };
    txn.put(&keys::dentry(dir.ino, name), &d.encode()?)?;
    let mut by_cookie = Vec::with_capacity(8 + name.len());
    by_cookie.extend_from_slice(&ino.to_be_bytes());
    by_cookie.extend_from_slice(name);
    txn.put(&keys::dir_cookie(dir.ino, cookie), &by_cookie)?;
    Ok(())
}

/// Removes an entry from `dir` (whose record the caller writes back).
pub fn remove_dentry(
    txn: &mut dyn Txn,
    dir: &mut InodeRecord,
    name: &[u8],
    d: &DentryRecord,
) -> FsResult<()> {
    txn.delete(&keys::dentry(dir.ino, name))?;
    txn.delete(&keys::dir_cookie(dir.ino, d.cookie))?;
    dir.entries = dir.entries.saturating_sub(1);
    Ok(())
}

/// Splits a `DIR_COOKIE` value into (child inode, name).
pub fn decode_cookie_value(v: &[u8]) -> FsResult<(u64, &[u8])> {
    let (ino, name) = v
        .split_at_checked(8)
        .ok_or_else(|| FsError::Io("corrupt cookie record".into()))?;
    let ino: [u8; 8] = ino
        .try_into()
        .map_err(|_| FsError::Io("corrupt cookie record".into()))?;
    Ok((u64::from_be_bytes(ino), name))
}

/// First cookie given to a real entry; 1 and 2 are `.` and `..`.
pub const FIRST_COOKIE: u64 = 3;

/// A regular file's record with plain values (root's, 1 MiB chunks, no
/// segments), for tests to adjust with struct update syntax.
#[cfg(test)]
pub(crate) fn test_file(ino: u64, size: u64) -> InodeRecord {
    InodeRecord {
        ino,
        generation: 1,
        volume: 1,
        kind: FileType::Regular,
        mode: 0o644,
        nlink: 1,
        uid: 0,
        gid: 0,
        size,
        atime: Timestamp::default(),
        mtime: Timestamp::default(),
        ctime: Timestamp::default(),
        rdev: (0, 0),
        chunk_size: 1 << 20,
        parent: 0,
        next_cookie: 0,
        entries: 0,
        target: None,
        create_verf: None,
        epoch: 0,
        segments: Vec::new(),
        inline: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> InodeRecord {
        InodeRecord {
            generation: 7,
            uid: 1000,
            gid: 1000,
            atime: Timestamp::new(1, 2),
            mtime: Timestamp::new(3, 4),
            ctime: Timestamp::new(5, 6),
            chunk_size: 4 << 20,
            ..test_file(42, 5)
        }
    }

    #[test]
    fn inode_record_round_trips_and_starts_with_its_version() {
        let mut r = sample();
        r.segments.push(Segment {
            ino: 9,
            len: 5 << 20,
            chunk_size: 4 << 20,
        });
        let b = r.encode().expect("encode");
        assert_eq!(b[0], INODE_V3);
        assert_eq!(InodeRecord::decode(&b).expect("decode"), r);
        r.inline = true;
        let b = r.encode().expect("encode");
        assert_eq!(InodeRecord::decode(&b).expect("decode"), r);
    }

    fn fixture(hex: &str) -> Vec<u8> {
        (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect()
    }

    /// Fixture: the bytes of a version-1 inode record as written by the
    /// first release. Must keep decoding in every later version.
    /// Fixture: a version-1 record (written before segments existed)
    /// decodes into the current record with no segments.
    #[test]
    fn version_1_inode_fixture_still_decodes() {
        let bytes = fixture(V1_INODE_FIXTURE);
        assert_eq!(InodeRecord::decode(&bytes).expect("decode"), sample());
    }

    /// Fixture: a version-2 record (segments, written before inline data
    /// existed) decodes into a file whose bytes are in chunks.
    #[test]
    fn version_2_inode_fixture_still_decodes_with_its_bytes_in_chunks() {
        let bytes = fixture(V2_INODE_FIXTURE);
        let r = InodeRecord::decode(&bytes).expect("decode");
        assert_eq!(r, sample());
        assert!(!r.inline);
    }

    /// Fixture: a version-2 record with two segments, as the last build
    /// writing version 2 (d5e33a8) encoded it.
    #[test]
    fn version_2_inode_fixture_with_segments_still_decodes() {
        let r = InodeRecord::decode(&fixture(V2_SEGMENTS_FIXTURE)).expect("decode");
        let want = InodeRecord {
            segments: vec![
                Segment {
                    ino: 9,
                    len: 5 << 20,
                    chunk_size: 4 << 20,
                },
                Segment {
                    ino: 11,
                    len: 0,
                    chunk_size: 1 << 20,
                },
            ],
            ..sample()
        };
        assert_eq!(r, want);
        assert!(!r.inline);
    }

    const V2_SEGMENTS_FIXTURE: &str = "022a00000000000000070000000100000000000000a401000001000000e8030000e8030000050000000000000001000000000000000200000003000000000000000400000005000000000000000600000000000000000000000000400000000000000000000000000000000000000000000000000000000000000000000000020000000000000009000000000000000000500000000000000040000b00000000000000000000000000000000001000";

    /// The version-1 fixture's fields, then an empty segment list.
    const V2_INODE_FIXTURE: &str = "022a00000000000000070000000100000000000000a401000001000000e8030000e80300000500000000000000010000000000000002000000030000000000000004000000050000000000000006000000000000000000000000004000000000000000000000000000000000000000000000000000000000000000000000000000000000000000";

    const V1_INODE_FIXTURE: &str = "012a00000000000000070000000100000000000000a401000001000000e8030000e8030000050000000000000001000000000000000200000003000000000000000400000005000000000000000600000000000000000000000000400000000000000000000000000000000000000000000000000000000000000000000000";

    #[test]
    fn unknown_version_and_garbage_are_errors_not_panics() {
        assert!(InodeRecord::decode(&[]).is_err());
        assert!(InodeRecord::decode(&[99, 1, 2]).is_err());
        assert!(InodeRecord::decode(&[INODE_V1, 1, 2]).is_err());
        assert!(InodeRecord::decode(&[INODE_V2, 1, 2]).is_err());
        assert!(DentryRecord::decode(&[DENTRY_V1]).is_err());
    }
}
