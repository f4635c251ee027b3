//! The values core-fs hands to and takes from protocol adapters.

use nitrofs_common::{InodeId, Timestamp, VolumeId};
use serde::{Deserialize, Serialize};

/// Type of a filesystem object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FileType {
    /// Regular file.
    Regular,
    /// Directory.
    Directory,
    /// Symbolic link.
    Symlink,
    /// Block device node.
    BlockDevice,
    /// Character device node.
    CharDevice,
    /// Named pipe.
    Fifo,
    /// Unix socket node.
    Socket,
}

/// Set-user-id bit.
pub const S_ISUID: u32 = 0o4000;
/// Set-group-id bit.
pub const S_ISGID: u32 = 0o2000;
/// Sticky bit.
pub const S_ISVTX: u32 = 0o1000;
/// All permission and special bits a mode may carry.
pub const MODE_MASK: u32 = 0o7777;

/// Attributes of one object, as every protocol reports them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attr {
    /// Inode number (NFS fileid).
    pub ino: InodeId,
    /// Generation: with `ino`, names this object for its whole life.
    pub generation: u32,
    /// Volume the object belongs to (NFS fsid).
    pub volume: VolumeId,
    /// Object type.
    pub kind: FileType,
    /// Permission and special bits (`MODE_MASK`).
    pub mode: u32,
    /// Hard link count.
    pub nlink: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Size in bytes (for symlinks, the target length).
    pub size: u64,
    /// Bytes of storage used.
    pub used: u64,
    /// Device numbers (major, minor) for device nodes.
    pub rdev: (u32, u32),
    /// Last access.
    pub atime: Timestamp,
    /// Last data modification.
    pub mtime: Timestamp,
    /// Last status change.
    pub ctime: Timestamp,
}

/// The part of the attributes that NFS weak cache consistency reports
/// from before an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PreAttr {
    /// Size before.
    pub size: u64,
    /// Modification time before.
    pub mtime: Timestamp,
    /// Change time before.
    pub ctime: Timestamp,
}

impl From<&Attr> for PreAttr {
    fn from(a: &Attr) -> Self {
        Self {
            size: a.size,
            mtime: a.mtime,
            ctime: a.ctime,
        }
    }
}

/// Before and after attributes of an object an operation changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wcc {
    /// Attributes before the change.
    pub before: PreAttr,
    /// Attributes after the change.
    pub after: Attr,
}

/// How to set a time attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SetTime {
    /// Leave unchanged.
    #[default]
    Keep,
    /// Set to the server's current time.
    ServerNow,
    /// Set to this time (owner or root only).
    Exact(Timestamp),
}

/// Attribute changes requested by SETATTR or with a create.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SetAttr {
    /// New permission bits.
    pub mode: Option<u32>,
    /// New owner.
    pub uid: Option<u32>,
    /// New group.
    pub gid: Option<u32>,
    /// New size (truncate or extend with zeros).
    pub size: Option<u64>,
    /// New access time.
    pub atime: SetTime,
    /// New modification time.
    pub mtime: SetTime,
}

/// How CREATE treats an existing name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CreateHow {
    /// Succeed on an existing regular file, applying the attributes
    /// (only a size of 0 truncates).
    Unchecked(SetAttr),
    /// Fail with `Exists` if the name exists.
    Guarded(SetAttr),
    /// Exactly-once create: a retry with the same verifier returns the
    /// file created by the first attempt; another verifier gets `Exists`.
    Exclusive([u8; 8]),
}

/// Special file kinds MKNOD can make.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    /// Character device (major, minor).
    CharDevice(u32, u32),
    /// Block device (major, minor).
    BlockDevice(u32, u32),
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// Access bits, with the values of NFSv3 ACCESS.
pub mod access {
    /// Read data / list directory.
    pub const READ: u32 = 0x01;
    /// Look up names in a directory.
    pub const LOOKUP: u32 = 0x02;
    /// Rewrite data / change directory entries.
    pub const MODIFY: u32 = 0x04;
    /// Append data / add directory entries.
    pub const EXTEND: u32 = 0x08;
    /// Delete directory entries.
    pub const DELETE: u32 = 0x10;
    /// Execute a file.
    pub const EXECUTE: u32 = 0x20;
}

/// One directory entry returned by [`crate::FileSystem::readdir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    /// Resume point: pass it back to continue after this entry.
    pub cookie: u64,
    /// Entry name.
    pub name: Vec<u8>,
    /// Inode the name points to.
    pub ino: InodeId,
    /// The child's attributes, when requested.
    pub attr: Option<Attr>,
}

/// A page of directory entries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadDirPage {
    /// The directory's attributes.
    pub dir: Attr,
    /// Entries after the requested cookie, in cookie order.
    pub entries: Vec<DirEntry>,
    /// True when no entries follow the last one returned.
    pub eof: bool,
}

/// Result of a read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadResult {
    /// Attributes after the read.
    pub attr: Attr,
    /// The bytes (shorter than asked at end of file).
    pub data: bytes::Bytes,
    /// True when the read reached the end of the file.
    pub eof: bool,
}

/// Part of what [`crate::FileSystem::read_ranges`] read.
#[derive(Debug, Clone)]
pub enum ReadPiece {
    /// Bytes in memory.
    Bytes(bytes::Bytes),
    /// Bytes still in a chunk file.
    File(nitrofs_chunk_store::FileRange),
}

impl ReadPiece {
    /// Bytes in the piece.
    pub fn len(&self) -> usize {
        match self {
            ReadPiece::Bytes(b) => b.len(),
            ReadPiece::File(r) => r.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What [`crate::FileSystem::read_ranges`] returns.
#[derive(Debug, Clone)]
pub struct RangesResult {
    /// Attributes after the read.
    pub attr: Attr,
    /// The bytes, in order (fewer than asked at end of file).
    pub pieces: Vec<ReadPiece>,
    /// True when the read reached the end of the file.
    pub eof: bool,
}

/// Capacity numbers of a volume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsStat {
    /// Total bytes.
    pub total_bytes: u64,
    /// Free bytes.
    pub free_bytes: u64,
    /// Bytes available to the caller.
    pub avail_bytes: u64,
    /// Total file slots.
    pub total_files: u64,
    /// Free file slots.
    pub free_files: u64,
    /// File slots available to the caller.
    pub avail_files: u64,
}

/// A volume: an NFS export and (later) an S3 bucket of the same name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Volume id (NFS fsid, first field of file handles).
    pub id: VolumeId,
    /// Name, following S3 bucket naming rules.
    pub name: String,
    /// Root directory inode.
    pub root: InodeId,
    /// Creation time.
    pub created: Timestamp,
}

/// Largest name a directory entry may have, in bytes.
pub const NAME_MAX: usize = 255;
/// Largest path (symlink target) accepted, in bytes.
pub const PATH_MAX: usize = 4096;
/// Largest hard link count.
pub const LINK_MAX: u32 = 65_000;
/// Largest file size.
pub const FILE_SIZE_MAX: u64 = i64::MAX as u64;
