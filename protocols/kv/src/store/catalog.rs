//! The space definitions: `<root>/catalog.json`, replaced atomically.
//!
//! ```json
//! { "version": 1, "next_id": 3, "spaces": [ { "name": "kvcache", ... } ] }
//! ```
//!
//! `next_id` only grows, so a space id is never reused (a deleted space's
//! leftover directory can never be mistaken for a new space's). A file of
//! an unknown version is refused rather than guessed at.

use super::{SpaceConfig, StoreError};
use nitrofs_common::crashsafe;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// The catalog format this build reads and writes.
pub(crate) const CATALOG_VERSION: u32 = 1;

const FILE: &str = "catalog.json";

/// The contents of `catalog.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Catalog {
    /// Format version, [`CATALOG_VERSION`].
    pub version: u32,
    /// The id the next space gets.
    pub next_id: u64,
    /// Every space, in creation order.
    pub spaces: Vec<SpaceConfig>,
}

#[derive(Deserialize)]
struct VersionProbe {
    version: u32,
}

impl Default for Catalog {
    fn default() -> Self {
        Self {
            version: CATALOG_VERSION,
            next_id: 1,
            spaces: Vec::new(),
        }
    }
}

fn path(root: &Path) -> PathBuf {
    root.join(FILE)
}

impl Catalog {
    /// Reads the catalog under `root` (empty if there is none yet).
    pub fn load(root: &Path) -> Result<Catalog, StoreError> {
        let p = path(root);
        let raw = match std::fs::read(&p) {
            Ok(raw) => raw,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Catalog::default()),
            Err(e) => return Err(e.into()),
        };
        let corrupt = |why: String| StoreError::Corrupt(format!("{}: {why}", p.display()));
        let probe: VersionProbe =
            serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
        if probe.version != CATALOG_VERSION {
            return Err(corrupt(format!(
                "catalog version {} is not supported (this build reads version {CATALOG_VERSION})",
                probe.version
            )));
        }
        let mut cat: Catalog = serde_json::from_slice(&raw).map_err(|e| corrupt(e.to_string()))?;
        let mut names = HashSet::new();
        let mut ids = HashSet::new();
        for s in &cat.spaces {
            s.validate().map_err(|e| corrupt(e.to_string()))?;
            if s.id == 0 || !names.insert(s.name.clone()) || !ids.insert(s.id) {
                return Err(corrupt(format!(
                    "space {} (id {}) is duplicated or has no id",
                    s.name, s.id
                )));
            }
        }
        // Defensive: never hand out an id that is in use. `u64::MAX` is
        // never handed out, so it stands for "ids exhausted".
        let max = cat.spaces.iter().map(|s| s.id).max().unwrap_or(0);
        cat.next_id = cat.next_id.max(max.saturating_add(1));
        Ok(cat)
    }

    /// Takes the next space id.
    pub fn alloc_id(&mut self) -> Result<u64, StoreError> {
        let id = self.next_id;
        match id.checked_add(1) {
            Some(next) if id != 0 => {
                self.next_id = next;
                Ok(id)
            }
            _ => Err(StoreError::InvalidConfig(
                "no space ids left in the catalog".into(),
            )),
        }
    }

    /// Replaces the catalog under `root` durably.
    pub fn save(&self, root: &Path) -> Result<(), StoreError> {
        let json = serde_json::to_vec_pretty(self)
            .map_err(|e| StoreError::Corrupt(format!("catalog encoding: {e}")))?;
        crashsafe::write_file_atomic(&path(root), &json, 0o644)?;
        Ok(())
    }
}
