//! The KV storage engine: spaces of keys, their values, their eviction.
//!
//! A [`Store`] holds every space of one data node, rooted at
//! `<data-dir>/kv`: the space definitions in `catalog.json` ([`catalog`]),
//! and for each durable space a chunk engine of its own under
//! `spaces/<id>/` holding one record per value ([`format`]).
//!
//! A [`Space`] keeps its index in memory: an ordered map from key to entry
//! under one mutex, with S3-FIFO eviction queues ([`s3fifo`]) and a TTL
//! queue beside it. Disk I/O never happens under that mutex: a put reserves
//! its bytes first (evicting as needed), writes its record, then inserts.
//!
//! Who may use a space is decided in [`access`] by core-fs's permission
//! check (mode bits and an optional POSIX.1e ACL).
//!
//! The code is synchronous and blocking; async callers run it in
//! `spawn_blocking`.

mod access;
mod catalog;
mod format;
mod node;
mod recover;
mod s3fifo;
mod space;

#[cfg(test)]
mod tests;

pub use node::Store;
pub use space::Space;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The largest value a space accepts.
pub const MAX_VALUE: u64 = 64 * 1024 * 1024;

/// The longest key a space accepts (keys are 1..=`MAX_KEY` bytes).
pub const MAX_KEY: usize = 1024;

/// The longest space name.
pub const MAX_SPACE_NAME: usize = 64;

/// Where a space keeps its values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// In memory only: values are lost on restart (the space is not).
    Memory,
    /// In the chunk engine, fsynced before a put or delete returns.
    Disk,
}

impl fmt::Display for Durability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Durability::Memory => "memory",
            Durability::Disk => "disk",
        })
    }
}

impl FromStr for Durability {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, StoreError> {
        match s {
            "memory" => Ok(Durability::Memory),
            "disk" => Ok(Durability::Disk),
            other => Err(StoreError::InvalidConfig(format!(
                "durability {other:?}: expected \"memory\" or \"disk\""
            ))),
        }
    }
}

/// The definition of one space, as stored in the catalog.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceConfig {
    /// The space's name: 1..=64 characters of `[A-Za-z0-9._-]`.
    pub name: String,
    /// Bytes of keys plus values the space may hold (> 0); beyond it,
    /// entries are evicted.
    pub capacity: u64,
    /// Seconds a value lives after its put; `None` = until evicted.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Where values are kept.
    pub durability: Durability,
    /// Owning user.
    pub uid: u32,
    /// Owning group.
    pub gid: u32,
    /// Permission bits (`0o777` mask) for owner, group and others; with
    /// an ACL, the group bits are its mask.
    pub mode: u32,
    /// The POSIX.1e access ACL (named users and groups, mask), stored as
    /// short setfacl text; `None`: the mode alone decides (see `access.rs`).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "access::acl_text"
    )]
    pub acl: Option<nitrofs_core_fs::Acl>,
    /// Assigned by the catalog at creation, never reused.
    #[serde(default)]
    pub id: u64,
}

impl SpaceConfig {
    /// Checks every field but `id`, naming the first bad one.
    pub fn validate(&self) -> Result<(), StoreError> {
        validate_space_name(&self.name)?;
        if self.capacity == 0 {
            return Err(StoreError::InvalidConfig(format!(
                "space {}: capacity must be > 0",
                self.name
            )));
        }
        if self.ttl_secs == Some(0) {
            return Err(StoreError::InvalidConfig(format!(
                "space {}: ttl_secs must be > 0 (omit it for no expiry)",
                self.name
            )));
        }
        if self.mode & !0o777 != 0 {
            return Err(StoreError::InvalidConfig(format!(
                "space {}: mode {:o} has bits outside 0o777",
                self.name, self.mode
            )));
        }
        Ok(())
    }

    /// Milliseconds a value lives, if the space expires values.
    pub(crate) fn ttl_ms(&self) -> Option<u64> {
        self.ttl_secs.map(|s| s.saturating_mul(1000))
    }
}

/// Checks a space name: 1..=64 characters of `[A-Za-z0-9._-]`.
pub fn validate_space_name(name: &str) -> Result<(), StoreError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_SPACE_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        // "." and ".." are legal by the charset but confusing everywhere.
        && name != "."
        && name != "..";
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName(name.to_string()))
    }
}

/// A snapshot of a space's counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SpaceStats {
    /// The configured capacity in bytes.
    pub capacity: u64,
    /// Bytes of keys plus values of the entries held (never > capacity).
    pub bytes: u64,
    /// Entries held (expired ones included until swept).
    pub keys: u64,
    /// Lookups (`get`, `exists`, `prefix_match`) that found a live value.
    pub hits: u64,
    /// Lookups that found nothing live.
    pub misses: u64,
    /// Entries dropped to make room.
    pub evictions: u64,
    /// Entries dropped because their TTL passed.
    pub expirations: u64,
    /// Successful stores (`PutOutcome::Stored`).
    pub puts: u64,
    /// Deletes that removed a live value.
    pub deletes: u64,
}

/// What a put does when the key already holds a live value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutMode {
    /// Replace it.
    Overwrite,
    /// Keep it and report [`PutOutcome::Exists`].
    IfAbsent,
}

/// The result of a put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The value is stored (durably, for a disk space).
    Stored,
    /// `IfAbsent` found a live value; the space is unchanged.
    Exists,
}

/// Errors of the KV engine.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// No space has this name.
    #[error("no such space: {0}")]
    NoSuchSpace(String),
    /// A space with this name exists.
    #[error("space exists: {0}")]
    SpaceExists(String),
    /// The space name breaks the naming rule.
    #[error("invalid space name {0:?}: 1..=64 characters of [A-Za-z0-9._-]")]
    InvalidName(String),
    /// The value exceeds [`MAX_VALUE`].
    #[error("value of {size} bytes exceeds the maximum of {max}")]
    TooLarge {
        /// The value's size.
        size: u64,
        /// The limit.
        max: u64,
    },
    /// The entry cannot fit in the space: it is bigger than the capacity,
    /// or (`busy`) the room is held by puts in flight and too many puts
    /// already wait for it, or it did not come back in time.
    #[error(
        "entry of {size} bytes does not fit in a space of {capacity}{}",
        if *busy { " now: puts in flight hold the room, retry later" } else { "" }
    )]
    NoSpace {
        /// Bytes of key plus value.
        size: u64,
        /// The space's capacity.
        capacity: u64,
        /// The space is busy rather than too small: retrying may succeed.
        busy: bool,
    },
    /// The key is empty or longer than [`MAX_KEY`].
    #[error("key length {len} outside 1..={max}")]
    KeyTooLong {
        /// The key's length (0 for an empty key).
        len: usize,
        /// The limit.
        max: usize,
    },
    /// A file of the store (catalog, directories) failed.
    #[error("kv store I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The chunk engine holding values failed.
    #[error("kv value storage: {0}")]
    Chunk(#[from] nitrofs_chunk_store::ChunkError),
    /// A stored file is unreadable or of an unsupported version.
    #[error("kv store corrupt: {0}")]
    Corrupt(String),
    /// A space definition is invalid.
    #[error("invalid space config: {0}")]
    InvalidConfig(String),
}

impl StoreError {
    /// Whether the same request may succeed if retried later (a busy
    /// space); everything else fails the same way again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, StoreError::NoSpace { busy: true, .. })
    }
}

/// Checks a key's length.
pub(crate) fn check_key(key: &[u8]) -> Result<(), StoreError> {
    if key.is_empty() || key.len() > MAX_KEY {
        return Err(StoreError::KeyTooLong {
            len: key.len(),
            max: MAX_KEY,
        });
    }
    Ok(())
}

/// Wall-clock time for TTLs, injectable so tests advance it by hand.
pub trait Clock: Send + Sync {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> u64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> u64 {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
            .unwrap_or(0)
    }
}

/// A clock that moves only when told to (tests, simulations).
#[derive(Debug, Default)]
pub struct ManualClock(AtomicU64);

impl ManualClock {
    /// A clock reading `ms`.
    pub fn new(ms: u64) -> Self {
        Self(AtomicU64::new(ms))
    }

    /// Moves the clock forward by `ms`.
    pub fn advance(&self, ms: u64) {
        self.0.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> u64 {
        self.0.load(Ordering::SeqCst)
    }
}
