//! [`Store`]: every space of one data node, under `<data-dir>/kv`.
//!
//! ```text
//! <root>/catalog.json          space definitions (see catalog.rs)
//! <root>/spaces/<id>/          chunk engine of disk space <id>
//! ```

use super::catalog::Catalog;
use super::{Clock, Durability, Space, SpaceConfig, StoreError, SystemClock};
use nitrofs_common::crashsafe;
use parking_lot::Mutex;
use std::collections::{BTreeMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// All spaces of a data node.
pub struct Store {
    root: PathBuf,
    clock: Arc<dyn Clock>,
    /// Guards the catalog and the open spaces together; held across the
    /// (rare) catalog writes and space opens, never by data operations.
    inner: Mutex<Inner>,
}

struct Inner {
    catalog: Catalog,
    spaces: BTreeMap<String, Arc<Space>>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("root", &self.root).finish()
    }
}

impl Store {
    /// Opens (creating if missing) the store at `root`: loads the catalog,
    /// opens every space and rebuilds the disk spaces' indexes.
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        Self::open_with_clock(root, Arc::new(SystemClock))
    }

    /// [`Store::open`] with the clock TTLs are measured by.
    pub fn open_with_clock(root: &Path, clock: Arc<dyn Clock>) -> Result<Store, StoreError> {
        crashsafe::create_dir_all_durable(&spaces_dir(root))?;
        let catalog = Catalog::load(root)?;
        let mut spaces = BTreeMap::new();
        for cfg in &catalog.spaces {
            let space = open_space(root, cfg.clone(), clock.clone())?;
            spaces.insert(cfg.name.clone(), Arc::new(space));
        }
        remove_orphans(root, &catalog)?;
        Ok(Store {
            root: root.to_path_buf(),
            clock,
            inner: Mutex::new(Inner { catalog, spaces }),
        })
    }

    /// Creates a space; `cfg.id` is ignored and assigned.
    pub fn create_space(&self, mut cfg: SpaceConfig) -> Result<Arc<Space>, StoreError> {
        cfg.validate()?;
        let mut inner = self.inner.lock();
        if inner.spaces.contains_key(&cfg.name) {
            return Err(StoreError::SpaceExists(cfg.name));
        }
        let mut catalog = inner.catalog.clone();
        cfg.id = catalog.next_id;
        catalog.next_id += 1;
        catalog.spaces.push(cfg.clone());
        catalog.save(&self.root)?;
        inner.catalog = catalog;
        // Once in the catalog, a failed open is retried by the next
        // `Store::open`; an id is burnt either way.
        let space = Arc::new(open_space(&self.root, cfg.clone(), self.clock.clone())?);
        inner.spaces.insert(cfg.name, space.clone());
        Ok(space)
    }

    /// Deletes a space and its values: the catalog entry first (durably),
    /// then its directory. Handles still held refuse further puts.
    pub fn delete_space(&self, name: &str) -> Result<(), StoreError> {
        let space = {
            let mut inner = self.inner.lock();
            if !inner.spaces.contains_key(name) {
                return Err(StoreError::NoSuchSpace(name.to_string()));
            }
            let mut catalog = inner.catalog.clone();
            catalog.spaces.retain(|s| s.name != name);
            catalog.save(&self.root)?;
            inner.catalog = catalog;
            inner.spaces.remove(name)
        };
        if let Some(space) = space {
            space.mark_deleted();
            // A crash before this finishes leaves an orphan directory,
            // removed by the next open.
            remove_dir(&space_dir(&self.root, space.config().id))?;
        }
        Ok(())
    }

    /// The space called `name`.
    pub fn space(&self, name: &str) -> Option<Arc<Space>> {
        self.inner.lock().spaces.get(name).cloned()
    }

    /// Every space, sorted by name.
    pub fn spaces(&self) -> Vec<Arc<Space>> {
        self.inner.lock().spaces.values().cloned().collect()
    }
}

fn spaces_dir(root: &Path) -> PathBuf {
    root.join("spaces")
}

fn space_dir(root: &Path, id: u64) -> PathBuf {
    spaces_dir(root).join(id.to_string())
}

fn open_space(root: &Path, cfg: SpaceConfig, clock: Arc<dyn Clock>) -> Result<Space, StoreError> {
    match cfg.durability {
        Durability::Memory => Ok(Space::new_memory(cfg, clock)),
        Durability::Disk => {
            let dir = space_dir(root, cfg.id);
            Space::open_disk(cfg, &dir, clock)
        }
    }
}

/// Removes directories under `spaces/` that no disk space owns (left by a
/// crash during `delete_space`).
fn remove_orphans(root: &Path, catalog: &Catalog) -> Result<(), StoreError> {
    let owned: HashSet<String> = catalog
        .spaces
        .iter()
        .filter(|s| s.durability == Durability::Disk)
        .map(|s| s.id.to_string())
        .collect();
    for entry in std::fs::read_dir(spaces_dir(root))? {
        let entry = entry?;
        let name = entry.file_name();
        if owned.contains(&*name.to_string_lossy()) {
            continue;
        }
        tracing::warn!(path = %entry.path().display(), "kv: removing an entry no space owns");
        if entry.file_type()?.is_dir() {
            remove_dir(&entry.path())?;
        } else {
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

fn remove_dir(dir: &Path) -> Result<(), StoreError> {
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    }
    if let Some(parent) = dir.parent() {
        crashsafe::fsync_dir(parent)?;
    }
    Ok(())
}
