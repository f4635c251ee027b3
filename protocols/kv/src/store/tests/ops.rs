//! put / get / delete / scan / prefix_match / TTL, on memory and disk spaces.

use super::{b, cfg, Fixture, BOTH};
use crate::store::{
    validate_space_name, Durability, PutMode, PutOutcome, StoreError, MAX_KEY, MAX_VALUE,
};
use bytes::Bytes;
use std::sync::Arc;

#[test]
fn values_roundtrip_in_memory_and_disk_spaces() {
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("s-{d}"), 1 << 20, d);
        assert_eq!(s.get(b"k").expect("get"), None);
        assert_eq!(
            s.put(b"k", b("value"), PutMode::Overwrite).expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(s.get(b"k").expect("get"), Some(b("value")));
        assert_eq!(s.value_len(b"k"), Some(5));
        assert!(s.exists(b"k"));
        assert!(!s.exists(b"nope"));
        s.put(b"empty", Bytes::new(), PutMode::Overwrite)
            .expect("put empty");
        assert_eq!(s.get(b"empty").expect("get"), Some(Bytes::new()));
        let st = s.stats();
        assert_eq!((st.puts, st.hits, st.misses), (2, 3, 2), "{d}");
        assert_eq!((st.keys, st.bytes), (2, 1 + 5 + 5), "{d}");
        s.check_invariants();
    }
}

#[test]
fn memory_values_are_shared_not_copied() {
    let f = Fixture::new();
    let s = f.space("m", 1 << 20, Durability::Memory);
    let v = Bytes::from(vec![7u8; 4096]);
    s.put(b"k", v.clone(), PutMode::Overwrite).expect("put");
    let got = s.get(b"k").expect("get").expect("value");
    assert_eq!(got.as_ptr(), v.as_ptr());
}

#[test]
fn put_if_absent_keeps_the_first_value() {
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("s-{d}"), 1 << 20, d);
        assert_eq!(
            s.put(b"k", b("first"), PutMode::IfAbsent).expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(
            s.put(b"k", b("second"), PutMode::IfAbsent).expect("put"),
            PutOutcome::Exists
        );
        assert_eq!(s.get(b"k").expect("get"), Some(b("first")));
        assert_eq!(s.stats().puts, 1);
        assert_eq!(s.stats().bytes, 1 + 5);
    }
}

#[test]
fn overwrite_replaces_the_value_and_frees_the_old_bytes() {
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("s-{d}"), 1 << 20, d);
        s.put(b"k", b("a long first value"), PutMode::Overwrite)
            .expect("put");
        s.put(b"k", b("short"), PutMode::Overwrite).expect("put");
        assert_eq!(s.get(b"k").expect("get"), Some(b("short")));
        assert_eq!((s.stats().keys, s.stats().bytes), (1, 1 + 5));
        if let Some(chunks) = s.chunk_store() {
            // The old record is gone: one record for one key.
            let files: usize = chunks
                .inodes()
                .expect("inodes")
                .into_iter()
                .map(|i| chunks.indexes(i).expect("indexes").len())
                .sum();
            assert_eq!(files, 1);
        }
        s.check_invariants();
    }
}

#[test]
fn delete_removes_a_live_value_once() {
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("s-{d}"), 1 << 20, d);
        s.put(b"k", b("v"), PutMode::Overwrite).expect("put");
        assert!(s.delete(b"k").expect("delete"));
        assert!(!s.delete(b"k").expect("delete again"));
        assert_eq!(s.get(b"k").expect("get"), None);
        let st = s.stats();
        assert_eq!((st.deletes, st.keys, st.bytes), (1, 0, 0));
        if let Some(chunks) = s.chunk_store() {
            for ino in chunks.inodes().expect("inodes") {
                assert!(chunks.indexes(ino).expect("indexes").is_empty());
            }
        }
    }
}

#[test]
fn scan_is_ordered_paginated_and_bounded_by_the_prefix() {
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("s-{d}"), 1 << 20, d);
        for k in ["b/3", "a/1", "b/1", "c", "b/2", "b", "ba"] {
            s.put(k.as_bytes(), b("xyz"), PutMode::Overwrite)
                .expect("put");
        }
        let keys = |v: Vec<(Bytes, u64)>| -> Vec<String> {
            v.into_iter()
                .map(|(k, n)| {
                    assert_eq!(n, 3);
                    String::from_utf8_lossy(&k).into_owned()
                })
                .collect()
        };
        assert_eq!(
            keys(s.scan(b"", None, 100)),
            ["a/1", "b", "b/1", "b/2", "b/3", "ba", "c"]
        );
        assert_eq!(keys(s.scan(b"b/", None, 2)), ["b/1", "b/2"]);
        assert_eq!(keys(s.scan(b"b/", Some(b"b/2"), 2)), ["b/3"]);
        assert!(s.scan(b"b/", Some(b"b/3"), 2).is_empty());
        // A cursor before the prefix starts at the prefix.
        assert_eq!(keys(s.scan(b"b/", Some(b"a"), 10)), ["b/1", "b/2", "b/3"]);
        assert!(s.scan(b"zz", None, 10).is_empty());
        assert!(s.scan(b"", None, 0).is_empty());
    }
}

#[test]
fn prefix_match_counts_the_leading_run_of_existing_keys() {
    let f = Fixture::new();
    let s = f.space("s", 1 << 20, Durability::Memory);
    for k in [b"h1", b"h2", b"h3", b"h5"] {
        s.put(k, b("v"), PutMode::Overwrite).expect("put");
    }
    assert_eq!(s.prefix_match(&[b"h1", b"h2", b"h3", b"h4", b"h5"]), 3);
    assert_eq!(s.prefix_match(&[b"h1", b"h2"]), 2);
    assert_eq!(s.prefix_match(&[b"h0", b"h1"]), 0);
    assert_eq!(s.prefix_match(&[]), 0);
    let st = s.stats();
    assert_eq!((st.hits, st.misses), (5, 2));
}

#[test]
fn bad_keys_and_values_are_refused_before_any_work() {
    let f = Fixture::new();
    let s = f.space("s", 1000, Durability::Disk);
    assert!(matches!(
        s.put(b"", b("v"), PutMode::Overwrite),
        Err(StoreError::KeyTooLong { len: 0, .. })
    ));
    let long = vec![b'k'; MAX_KEY + 1];
    assert!(matches!(
        s.put(&long, b("v"), PutMode::Overwrite),
        Err(StoreError::KeyTooLong { len, max: MAX_KEY }) if len == MAX_KEY + 1
    ));
    assert!(matches!(s.get(&long), Err(StoreError::KeyTooLong { .. })));
    assert!(matches!(
        s.put(b"k", Bytes::from(vec![0u8; 1000]), PutMode::Overwrite),
        Err(StoreError::NoSpace {
            size: 1001,
            capacity: 1000,
            busy: false
        })
    ));
    // `vec![0; n]` is a calloc: the 64 MiB are never touched.
    let huge = Bytes::from(vec![0u8; MAX_VALUE as usize + 1]);
    assert!(matches!(
        s.put(b"k", huge, PutMode::Overwrite),
        Err(StoreError::TooLarge { size, max: MAX_VALUE }) if size == MAX_VALUE + 1
    ));
    assert_eq!(s.stats().keys, 0);
}

#[test]
fn space_names_follow_the_naming_rule() {
    for ok in ["a", "KV.cache_1-x", &"n".repeat(64)] {
        assert!(validate_space_name(ok).is_ok(), "{ok}");
    }
    for bad in ["", ".", "..", "a/b", "a b", "ü", &"n".repeat(65)] {
        assert!(
            matches!(validate_space_name(bad), Err(StoreError::InvalidName(_))),
            "{bad}"
        );
    }
    assert_eq!("disk".parse::<Durability>().ok(), Some(Durability::Disk));
    assert_eq!(Durability::Memory.to_string(), "memory");
    assert!(matches!(
        "Disk".parse::<Durability>(),
        Err(StoreError::InvalidConfig(_))
    ));
    let json = serde_json::to_string(&cfg("x", 1, Durability::Disk)).expect("json");
    assert!(json.contains("\"durability\":\"disk\""), "{json}");
}

#[test]
fn expired_values_are_invisible_before_the_sweep_and_swept_after() {
    let f = Fixture::new();
    for d in BOTH {
        let mut c = cfg(&format!("t-{d}"), 1 << 20, d);
        c.ttl_secs = Some(1);
        let s = f.store.create_space(c).expect("create");
        s.put(b"old", b("v"), PutMode::Overwrite).expect("put");
        f.clock.advance(600);
        s.put(b"new", b("v"), PutMode::Overwrite).expect("put");
        f.clock.advance(399);
        assert_eq!(s.get(b"old").expect("get"), Some(b("v")));
        f.clock.advance(1);
        // "old" is 1000 ms old: gone from every lookup.
        assert_eq!(s.get(b"old").expect("get"), None);
        assert!(!s.exists(b"old"));
        assert_eq!(s.value_len(b"old"), None);
        assert_eq!(s.prefix_match(&[b"old"]), 0);
        assert_eq!(s.scan(b"", None, 10).len(), 1);
        assert_eq!(s.stats().keys, 2, "not swept yet");
        assert_eq!(s.expire_now(), 1);
        assert_eq!((s.stats().keys, s.stats().expirations), (1, 1));
        // An overwrite restarts the TTL; its stale queue item is skipped.
        s.put(b"new", b("w"), PutMode::Overwrite).expect("put");
        f.clock.advance(700);
        assert_eq!(s.expire_now(), 0);
        assert_eq!(s.get(b"new").expect("get"), Some(b("w")));
        // An expired key counts as absent for put-if-absent.
        f.clock.advance(300);
        assert_eq!(
            s.put(b"new", b("x"), PutMode::IfAbsent).expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(s.get(b"new").expect("get"), Some(b("x")));
        s.check_invariants();
    }
}

#[test]
fn capacity_is_never_exceeded_by_concurrent_putters() {
    const CAP: u64 = 32 * 1024;
    let f = Fixture::new();
    for d in BOTH {
        let s = f.space(&format!("c-{d}"), CAP, d);
        let puts = if d == Durability::Disk { 100 } else { 500 };
        std::thread::scope(|scope| {
            for t in 0..4u8 {
                let s = Arc::clone(&s);
                scope.spawn(move || {
                    for i in 0..puts {
                        let key = format!("t{t}-{i}");
                        let value = Bytes::from(vec![t; 1000 + (i % 7) * 100]);
                        s.put(key.as_bytes(), value, PutMode::Overwrite)
                            .expect("put");
                        let bytes = s.stats().bytes;
                        assert!(bytes <= CAP, "{bytes} > {CAP}");
                        // Overwrites and readers race with the putters too.
                        if i % 5 == 0 {
                            s.put(key.as_bytes(), Bytes::from(vec![t; 10]), PutMode::Overwrite)
                                .expect("overwrite");
                            let _ = s.get(format!("t{}-{}", (t + 1) % 4, i).as_bytes());
                        }
                    }
                });
            }
        });
        let st = s.stats();
        assert!(st.bytes <= CAP, "{d}: {st:?}");
        assert!(st.evictions > 0, "{d}: {st:?}");
        assert_eq!(st.puts, 4 * (puts as u64 + puts.div_ceil(5) as u64));
        s.check_invariants();
        // Every key still held reads back its own thread's bytes.
        for (k, len) in s.scan(b"", None, usize::MAX) {
            let v = s.get(&k).expect("get").expect("live");
            assert_eq!(v.len() as u64, len);
            assert!(v.iter().all(|&x| x == k[1] - b'0'));
        }
    }
}

#[test]
fn disk_puts_whose_values_fit_wait_for_room_held_by_puts_in_flight() {
    // Each value fits alone, but eight in flight together do not: the
    // later ones must wait for the earlier ones' room, not fail.
    const CAP: u64 = 1024 * 1024;
    let f = Fixture::new();
    let s = f.space("tight", CAP, Durability::Disk);
    std::thread::scope(|scope| {
        for t in 0..8u8 {
            let s = Arc::clone(&s);
            scope.spawn(move || {
                for i in 0..10 {
                    let key = format!("t{t}-{i}");
                    s.put(
                        key.as_bytes(),
                        Bytes::from(vec![t; 400 * 1024]),
                        PutMode::Overwrite,
                    )
                    .expect("a value that fits is stored");
                    assert!(s.stats().bytes <= CAP);
                }
            });
        }
    });
    let st = s.stats();
    assert_eq!(st.puts, 80);
    assert!(st.bytes <= CAP && st.evictions >= 70, "{st:?}");
    s.check_invariants();
}
