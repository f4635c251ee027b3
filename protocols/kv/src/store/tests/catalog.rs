//! Space definitions: creation, deletion, validation, the catalog file.

use super::{b, cfg, Fixture};
use crate::store::catalog::Catalog;
use crate::store::{Durability, PutMode, Store, StoreError};

#[test]
fn spaces_persist_and_ids_are_never_reused() {
    let mut f = Fixture::new();
    let a = f.space("a", 100, Durability::Disk);
    let bee = f.space("b", 200, Durability::Memory);
    assert_eq!((a.config().id, bee.config().id), (1, 2));
    a.put(b"k", b("v"), PutMode::Overwrite).expect("put");
    f.store.delete_space("a").expect("delete");
    assert!(!f.root().join("spaces/1").exists(), "data removed");
    assert!(matches!(
        a.put(b"k", b("v"), PutMode::Overwrite),
        Err(StoreError::NoSuchSpace(_))
    ));
    let c = f.space("c", 300, Durability::Disk);
    assert_eq!(c.config().id, 3);
    drop((a, bee, c));

    f.reopen();
    let names: Vec<(String, u64)> = f
        .store
        .spaces()
        .iter()
        .map(|s| (s.config().name.clone(), s.config().id))
        .collect();
    assert_eq!(names, [("b".to_string(), 2), ("c".to_string(), 3)]);
    let b2 = f.get("b");
    assert_eq!(b2.config().capacity, 200);
    assert_eq!(b2.config().mode, 0o750);
    assert_eq!(b2.config().uid, 1000);
    let a2 = f.space("a", 100, Durability::Disk);
    assert_eq!(a2.config().id, 4);
    assert_eq!(
        a2.get(b"k").expect("get"),
        None,
        "old data is not resurrected"
    );
}

#[test]
fn space_definitions_are_validated() {
    let f = Fixture::new();
    f.space("s", 100, Durability::Memory);
    assert!(matches!(
        f.store.create_space(cfg("s", 100, Durability::Disk)),
        Err(StoreError::SpaceExists(_))
    ));
    assert!(matches!(
        f.store.create_space(cfg("a/b", 100, Durability::Disk)),
        Err(StoreError::InvalidName(_))
    ));
    assert!(matches!(
        f.store.create_space(cfg("z", 0, Durability::Disk)),
        Err(StoreError::InvalidConfig(_))
    ));
    let mut bad_mode = cfg("z", 1, Durability::Disk);
    bad_mode.mode = 0o4755;
    assert!(matches!(
        f.store.create_space(bad_mode),
        Err(StoreError::InvalidConfig(_))
    ));
    let mut zero_ttl = cfg("z", 1, Durability::Disk);
    zero_ttl.ttl_secs = Some(0);
    assert!(matches!(
        f.store.create_space(zero_ttl),
        Err(StoreError::InvalidConfig(_))
    ));
    assert!(matches!(
        f.store.delete_space("nope"),
        Err(StoreError::NoSuchSpace(_))
    ));
    assert_eq!(f.store.spaces().len(), 1);
    // Refused creations burn no id.
    assert_eq!(f.space("t", 1, Durability::Memory).config().id, 2);
}

#[test]
fn the_catalog_file_is_versioned_json() {
    let f = Fixture::new();
    let mut c = cfg("kvcache", 1 << 30, Durability::Disk);
    c.ttl_secs = Some(3600);
    f.store.create_space(c).expect("create");
    let raw = std::fs::read_to_string(f.root().join("catalog.json")).expect("catalog");
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["version"], 1);
    assert_eq!(v["next_id"], 2);
    assert_eq!(v["spaces"][0]["name"], "kvcache");
    assert_eq!(v["spaces"][0]["durability"], "disk");
    assert_eq!(v["spaces"][0]["ttl_secs"], 3600);
    assert_eq!(v["spaces"][0]["id"], 1);
}

#[test]
fn an_unknown_catalog_version_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("kv");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(
        root.join("catalog.json"),
        r#"{"version": 2, "next_id": 1, "spaces": [], "shards": 4}"#,
    )
    .expect("write");
    let err = Store::open(&root).expect_err("newer catalog");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("version 2")),
        "{err}"
    );
    std::fs::write(root.join("catalog.json"), b"{not json").expect("write");
    assert!(matches!(Store::open(&root), Err(StoreError::Corrupt(_))));
}

#[test]
fn directories_no_space_owns_are_removed_on_open() {
    let mut f = Fixture::new();
    f.space("d", 100, Durability::Disk);
    // A crash during delete_space: catalog updated, directory left.
    std::fs::create_dir_all(f.root().join("spaces/77/00")).expect("mkdir");
    f.reopen();
    assert!(!f.root().join("spaces/77").exists());
    assert!(f.root().join("spaces/1").exists());
}

#[test]
fn a_space_that_fails_to_open_is_rolled_back_out_of_the_catalog() {
    let mut f = Fixture::new();
    // Id 1's directory cannot be a directory: the open fails.
    std::fs::write(f.root().join("spaces/1"), b"in the way").expect("write");
    assert!(f
        .store
        .create_space(cfg("d", 100, Durability::Disk))
        .is_err());
    assert!(f.store.space("d").is_none());
    let cat = Catalog::load(&f.root()).expect("catalog");
    assert!(cat.spaces.is_empty(), "{cat:?}");
    assert_eq!(cat.next_id, 2, "the id stays burnt");
    std::fs::remove_file(f.root().join("spaces/1")).expect("rm");
    // The name is free again, and taken only once.
    assert_eq!(f.space("d", 100, Durability::Disk).config().id, 2);
    assert!(matches!(
        f.store.create_space(cfg("d", 100, Durability::Disk)),
        Err(StoreError::SpaceExists(_))
    ));
    f.reopen();
    assert_eq!(f.store.spaces().len(), 1);
    assert_eq!(f.get("d").config().id, 2);
}

#[test]
fn a_space_id_at_the_top_of_the_range_opens_and_no_id_is_handed_out_twice() {
    let f = Fixture::new();
    let mut top = cfg("top", 100, Durability::Memory);
    top.id = u64::MAX;
    Catalog {
        version: 1,
        next_id: 1,
        spaces: vec![top],
    }
    .save(&f.root())
    .expect("save");
    let store = Store::open(&f.root()).expect("open");
    assert_eq!(store.space("top").map(|s| s.config().id), Some(u64::MAX));
    assert!(matches!(
        store.create_space(cfg("next", 100, Durability::Memory)),
        Err(StoreError::InvalidConfig(_))
    ));
    assert_eq!(store.spaces().len(), 1);
}
