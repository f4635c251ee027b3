//! Space definitions: creation, deletion, validation, the catalog file.

use super::{b, cfg, Fixture};
use crate::store::catalog::Catalog;
use crate::store::{Durability, PutMode, Store, StoreError};
use nitrofs_core_fs::{AclSpec, Credentials, R, W};

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

/// Fixture: `catalog.json` as the builds before space ACLs wrote it (no
/// `acl` field). Must keep loading, each space with no ACL.
const PRE_ACL_CATALOG: &str = r#"{
  "version": 1,
  "next_id": 3,
  "spaces": [
    {
      "name": "kvcache",
      "capacity": 1073741824,
      "ttl_secs": null,
      "durability": "memory",
      "uid": 1000,
      "gid": 1000,
      "mode": 416,
      "id": 1
    },
    {
      "name": "shared",
      "capacity": 4096,
      "ttl_secs": 60,
      "durability": "memory",
      "uid": 0,
      "gid": 0,
      "mode": 420,
      "id": 2
    }
  ]
}"#;

#[test]
fn a_catalog_written_before_space_acls_still_loads_without_acls() {
    let f = Fixture::new();
    std::fs::write(f.root().join("catalog.json"), PRE_ACL_CATALOG).expect("write");
    let store = Store::open(&f.root()).expect("open the old catalog");
    let kvcache = store.space("kvcache").expect("kvcache");
    let c = kvcache.config();
    assert_eq!((c.uid, c.gid, c.mode, c.id), (1000, 1000, 0o640, 1));
    assert_eq!(c.acl, None);
    assert!(
        kvcache.permits(&Credentials::new(1000, 1), R | W),
        "owner rw"
    );
    assert!(kvcache.permits(&Credentials::new(5, 1000), R), "group r");
    assert!(!kvcache.permits(&Credentials::new(5, 1000), W));
    assert!(!kvcache.permits(&Credentials::new(5, 5), R), "other ---");
    let shared = store.space("shared").expect("shared").config();
    assert_eq!(
        (shared.mode, shared.ttl_secs, shared.acl),
        (0o644, Some(60), None)
    );
    // Saving again (any catalog change) writes no `acl` for them.
    store
        .create_space(cfg("new", 1, Durability::Memory))
        .expect("create");
    let raw = std::fs::read_to_string(f.root().join("catalog.json")).expect("catalog");
    assert!(!raw.contains("\"acl\""), "{raw}");
}

#[test]
fn a_space_acl_is_checked_saved_and_reloaded_and_sets_the_group_bits() {
    let mut f = Fixture::new();
    f.space("s", 100, Durability::Memory); // 1000:1000, 0750
    let spec = AclSpec::parse("u:1001:rw-,g:2000:r--,m::rw-").expect("spec");
    let c = f.store.set_acl("s", &spec.access).expect("set");
    assert_eq!(c.mode, 0o760, "the group bits are the mask rw-");
    let text = "u::rwx,u:1001:rw-,g::r-x,g:2000:r--,m::rw-,o::---";
    assert_eq!(
        c.acl.as_ref().map(|a| a.to_short_text("")).as_deref(),
        Some(text)
    );
    let check = |s: &crate::store::Space| {
        assert!(
            s.permits(&Credentials::new(1001, 1), R | W),
            "u:1001 within the mask"
        );
        let g2000 = Credentials::new(7, 2000);
        assert!(s.permits(&g2000, R) && !s.permits(&g2000, W), "g:2000 r");
        let owning = Credentials::new(8, 1000);
        assert!(
            s.permits(&owning, R) && !s.permits(&owning, W),
            "g:: r-x & mask"
        );
        assert!(!s.permits(&Credentials::new(9, 9), R), "other ---");
    };
    check(&f.get("s"));
    let raw = std::fs::read_to_string(f.root().join("catalog.json")).expect("catalog");
    let v: serde_json::Value = serde_json::from_str(&raw).expect("json");
    assert_eq!(v["spaces"][0]["acl"], text, "stored as setfacl text");
    assert_eq!(v["spaces"][0]["mode"], 0o760);
    f.reopen();
    assert_eq!(f.get("s").config(), c);
    check(&f.get("s"));

    // An ACL the mode alone expresses is dropped.
    let spec = AclSpec::parse("u::rw-,g::r--,o::---").expect("spec");
    let c = f.store.set_acl("s", &spec.access).expect("set");
    assert_eq!((c.mode, c.acl), (0o640, None));
    assert!(!f.get("s").permits(&Credentials::new(1001, 1), R));
}

#[test]
fn space_acls_refuse_x_unknown_spaces_and_broken_catalog_text() {
    let f = Fixture::new();
    f.space("s", 100, Durability::Memory);
    let x = AclSpec::parse("u:1001:r-x").expect("spec");
    let err = f.store.set_acl("s", &x.access).expect_err("x");
    assert!(
        matches!(&err, StoreError::InvalidConfig(m) if m.contains("x has no meaning")),
        "{err}"
    );
    let ok = AclSpec::parse("u:1001:r--").expect("spec");
    assert!(matches!(
        f.store.set_acl("nope", &ok.access),
        Err(StoreError::NoSuchSpace(_))
    ));
    assert_eq!(f.get("s").config().acl, None, "nothing changed");

    let broken = PRE_ACL_CATALOG.replacen(
        "\"mode\": 416,",
        "\"mode\": 416, \"acl\": \"u::rw-,u:1001:rw-,g::---,o::---\",",
        1,
    );
    std::fs::write(f.root().join("catalog.json"), broken).expect("write");
    let err = Store::open(&f.root()).expect_err("named entry without a mask");
    assert!(
        matches!(&err, StoreError::Corrupt(m) if m.contains("mask")),
        "{err}"
    );
}
