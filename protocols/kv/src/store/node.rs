//! [`Store`]: every space of one data node, under `<data-dir>/kv`.
//!
//! ```text
//! <root>/catalog.json          space definitions (see catalog.rs)
//! <root>/spaces/<id>/          chunk engine of disk space <id>
//! ```

use super::access::with_acl;
use super::catalog::Catalog;
use super::{Clock, Durability, Space, SpaceConfig, StoreError, SystemClock};
use nitrofs_common::crashsafe;
use nitrofs_core_fs::AclEntry;
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

    /// Creates a space; `cfg.id` is ignored and assigned. If the new space
    /// cannot be opened, the catalog entry is rolled back (its id stays
    /// burnt, so a leftover directory is never taken for a later space's).
    pub fn create_space(&self, mut cfg: SpaceConfig) -> Result<Arc<Space>, StoreError> {
        cfg.validate()?;
        let mut inner = self.inner.lock();
        // The catalog is the authority on names; the open spaces mirror it.
        if inner.spaces.contains_key(&cfg.name)
            || inner.catalog.spaces.iter().any(|s| s.name == cfg.name)
        {
            return Err(StoreError::SpaceExists(cfg.name));
        }
        let mut catalog = inner.catalog.clone();
        cfg.id = catalog.alloc_id()?;
        let burnt = catalog.clone();
        catalog.spaces.push(cfg.clone());
        catalog.save(&self.root)?;
        inner.catalog = catalog;
        match open_space(&self.root, cfg.clone(), self.clock.clone()) {
            Ok(space) => {
                let space = Arc::new(space);
                inner.spaces.insert(cfg.name, space.clone());
                Ok(space)
            }
            Err(e) => {
                tracing::warn!(space = %cfg.name, id = cfg.id, error = %e, "kv: new space failed to open; rolling back its creation");
                let rolled_back = match burnt.save(&self.root) {
                    Ok(()) => {
                        inner.catalog = burnt;
                        true
                    }
                    // Still in the catalog: the next `Store::open` retries
                    // the open (and refuses to start if it fails again).
                    Err(re) => {
                        tracing::error!(space = %cfg.name, error = %re, "kv: rolling back a space creation failed");
                        false
                    }
                };
                // Whatever the open left behind; an orphan directory left
                // now is removed by the next open.
                if rolled_back && cfg.durability == Durability::Disk {
                    if let Err(re) = remove_dir(&space_dir(&self.root, cfg.id)) {
                        tracing::warn!(space = %cfg.name, error = %re, "kv: leftover directory of a failed space kept until the next open");
                    }
                }
                Err(e)
            }
        }
    }

    /// Deletes a space and its values: the catalog entry first (durably),
    /// then, once every put, delete and record removal in flight on it has
    /// finished (puts still writing fail with `NoSuchSpace` and remove
    /// their record), its directory. Handles still held refuse further
    /// puts and deletes.
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
            // Blocks until the space's operations in flight are done; the
            // catalog lock is not held meanwhile.
            space.mark_deleted();
            // A crash before this finishes leaves an orphan directory,
            // removed by the next open.
            remove_dir(&space_dir(&self.root, space.config().id))?;
        }
        Ok(())
    }

    /// Replaces the access ACL of space `name` with setfacl `entries`, as
    /// `setfacl --set` does (see `access::with_acl`): durably in the
    /// catalog first, then for every request that follows. Returns the
    /// space's new definition (its mode's group bits are the new mask).
    pub fn set_acl(&self, name: &str, entries: &[AclEntry]) -> Result<SpaceConfig, StoreError> {
        let mut inner = self.inner.lock();
        let space = inner
            .spaces
            .get(name)
            .cloned()
            .ok_or_else(|| StoreError::NoSuchSpace(name.to_string()))?;
        let mut catalog = inner.catalog.clone();
        let Some(entry) = catalog.spaces.iter_mut().find(|s| s.name == name) else {
            return Err(StoreError::NoSuchSpace(name.to_string()));
        };
        let cfg = with_acl(entry, entries)?;
        cfg.validate()?;
        *entry = cfg.clone();
        catalog.save(&self.root)?;
        inner.catalog = catalog;
        space.set_access(&cfg);
        Ok(cfg)
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
