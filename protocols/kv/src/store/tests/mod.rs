//! Tests of the KV engine through its public API (plus a few looks at the
//! files it leaves on disk).

mod catalog;
mod disk;
mod eviction;
mod faulty;
mod inflight;
mod ops;

use super::{Durability, ManualClock, Space, SpaceConfig, Store};
use bytes::Bytes;
use std::path::PathBuf;
use std::sync::Arc;

/// Start of the manual clock: a plausible "now" in Unix millis.
pub(super) const T0: u64 = 1_700_000_000_000;

pub(super) fn cfg(name: &str, capacity: u64, durability: Durability) -> SpaceConfig {
    SpaceConfig {
        name: name.to_string(),
        capacity,
        ttl_secs: None,
        durability,
        uid: 1000,
        gid: 1000,
        mode: 0o750,
        acl: None,
        id: 0,
    }
}

/// A store in a temporary directory with a hand-driven clock.
pub(super) struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub store: Store,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let clock = Arc::new(ManualClock::new(T0));
        let store = Store::open_with_clock(&dir.path().join("kv"), clock.clone()).expect("open");
        Self { dir, clock, store }
    }

    pub fn root(&self) -> PathBuf {
        self.dir.path().join("kv")
    }

    /// Drops the store and opens it again from disk.
    pub fn reopen(&mut self) {
        self.store = Store::open_with_clock(&self.root(), self.clock.clone()).expect("reopen");
    }

    pub fn space(&self, name: &str, capacity: u64, durability: Durability) -> Arc<Space> {
        self.store
            .create_space(cfg(name, capacity, durability))
            .expect("create space")
    }

    pub fn get(&self, name: &str) -> Arc<Space> {
        self.store.space(name).expect("space exists")
    }
}

pub(super) fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

pub(super) const BOTH: [Durability; 2] = [Durability::Memory, Durability::Disk];
