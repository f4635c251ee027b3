//! Types every NitroFS layer shares: inode and volume ids, the caller's
//! [`Credentials`], timestamps and size units.
//!
//! This crate owns no behaviour and depends on nothing heavy; it must never
//! learn about a protocol or a storage engine.

pub mod beside;
pub mod buf;
pub mod crashsafe;
pub mod group_sync;
pub mod stall;

use serde::{Deserialize, Serialize};
use std::time::{SystemTime, UNIX_EPOCH};

/// One kibibyte.
pub const KIB: u64 = 1024;
/// One mebibyte.
pub const MIB: u64 = 1024 * KIB;
/// One gibibyte.
pub const GIB: u64 = 1024 * MIB;

/// Inode number, unique across all volumes of an instance and never reused.
pub type InodeId = u64;

/// Volume number, unique within an instance and never reused.
pub type VolumeId = u32;

/// The uid that anonymous callers (AUTH_NONE, squashed ids) map to by default.
pub const NOBODY: u32 = 65534;

/// Who is asking. Every namespace call carries one from the protocol adapter
/// (NFS AUTH_SYS, S3 identity, KV token) into core-fs, where permission,
/// ACL and quota checks happen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// Effective user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
}

impl Credentials {
    /// The superuser.
    pub fn root() -> Self {
        Self::new(0, 0)
    }

    /// A caller with no supplementary groups.
    pub fn new(uid: u32, gid: u32) -> Self {
        Self {
            uid,
            gid,
            groups: Vec::new(),
        }
    }

    /// True for uid 0.
    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    /// True when `gid` is the primary or a supplementary group.
    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }
}

/// A POSIX timestamp with nanoseconds.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
pub struct Timestamp {
    /// Seconds since the Unix epoch.
    pub secs: i64,
    /// Nanoseconds within the second, below 1e9.
    pub nanos: u32,
}

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Self {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => Self {
                secs: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
                nanos: d.subsec_nanos(),
            },
            Err(_) => Self::default(),
        }
    }

    /// A timestamp from seconds and nanoseconds (nanoseconds are clamped).
    pub fn new(secs: i64, nanos: u32) -> Self {
        Self {
            secs,
            nanos: nanos.min(999_999_999),
        }
    }
}
