//! Disk spaces across restarts: persistence, damaged and duplicate
//! records, capacity changes, bucket directories.

use super::{b, Fixture, T0};
use crate::store::catalog::Catalog;
use crate::store::format::{crc32c, RecordHeader};
use crate::store::{Clock, Durability, PutMode};
use nitrofs_chunk_store::{ChunkId, ChunkStore, LocalChunkStore};
use std::fs::OpenOptions;
use std::path::PathBuf;

/// The file of value `vid` of disk space `id` (the chunk engine layout).
fn record_path(f: &Fixture, id: u64, vid: u64) -> PathBuf {
    let ino = vid >> 10;
    f.root()
        .join("spaces")
        .join(id.to_string())
        .join(format!("{:02x}", ino % 256))
        .join(format!("{ino:016x}"))
        .join(format!("{vid:016x}"))
}

/// Writes a record behind the store's back (as a crashed put left it).
fn write_raw(chunks: &LocalChunkStore, vid: u64, key: &[u8], value: &[u8]) {
    let head = RecordHeader {
        key_len: key.len() as u32,
        value_len: value.len() as u64,
        expires_at_ms: 0,
        value_crc: crc32c(value),
    }
    .encode_with_key(key);
    let id = ChunkId {
        ino: vid >> 10,
        index: vid,
    };
    chunks.write(id, 0, &head).expect("write head");
    chunks
        .write(id, head.len() as u64, value)
        .expect("write value");
    chunks.sync(id.ino).expect("sync");
}

fn all_vids(chunks: &dyn ChunkStore) -> Vec<u64> {
    chunks
        .inodes()
        .expect("inodes")
        .into_iter()
        .flat_map(|i| chunks.indexes(i).expect("indexes"))
        .collect()
}

#[test]
fn disk_values_survive_a_restart_and_memory_values_do_not() {
    let mut f = Fixture::new();
    let d = f.space("d", 1 << 20, Durability::Disk);
    let m = f.space("m", 1 << 20, Durability::Memory);
    for i in 0..20 {
        d.put(
            format!("k{i:02}").as_bytes(),
            b(&format!("v{i}")),
            PutMode::Overwrite,
        )
        .expect("put");
    }
    m.put(b"k", b("gone"), PutMode::Overwrite).expect("put");
    d.delete(b"k05").expect("delete");
    d.put(b"k06", b("rewritten"), PutMode::Overwrite)
        .expect("put");
    let before = d.stats();
    drop((d, m));
    f.reopen();

    let d = f.get("d");
    assert_eq!(d.get(b"k05").expect("get"), None);
    assert_eq!(d.get(b"k06").expect("get"), Some(b("rewritten")));
    assert_eq!(d.get(b"k19").expect("get"), Some(b("v19")));
    assert_eq!(
        (d.stats().keys, d.stats().bytes),
        (before.keys, before.bytes)
    );
    let m = f.get("m");
    assert_eq!(m.get(b"k").expect("get"), None);
    assert_eq!(m.config().durability, Durability::Memory);

    // Value ids continue above the largest seen: nothing is clobbered.
    d.put(b"new", b("n"), PutMode::Overwrite).expect("put");
    assert_eq!(d.get(b"k19").expect("get"), Some(b("v19")));
    assert_eq!(d.scan(b"", None, 100).len(), 20);
    d.check_invariants();
}

#[test]
fn torn_and_damaged_records_are_dropped_on_reopen_or_on_get() {
    let mut f = Fixture::new();
    let s = f.space("d", 1 << 20, Durability::Disk);
    let id = s.config().id;
    for k in ["torn", "bad-header", "bad-value", "fine"] {
        s.put(k.as_bytes(), b("0123456789"), PutMode::Overwrite)
            .expect("put");
    }
    drop(s);
    // vids 1..=4 in put order.
    let torn = record_path(&f, id, 1);
    let len = std::fs::metadata(&torn).expect("stat").len();
    OpenOptions::new()
        .write(true)
        .open(&torn)
        .expect("open")
        .set_len(len - 1)
        .expect("truncate");
    let flip = |vid: u64, at: u64| {
        let p = record_path(&f, id, vid);
        let mut data = std::fs::read(&p).expect("read");
        data[at as usize] ^= 0x40;
        std::fs::write(&p, data).expect("write");
    };
    flip(2, 20); // expires_at: header checksum fails
    flip(3, 36 + 9 + 2); // inside the value: caught by get
    f.reopen();

    let s = f.get("d");
    assert_eq!(s.value_len(b"torn"), None);
    assert_eq!(s.value_len(b"bad-header"), None);
    assert!(!record_path(&f, id, 1).exists());
    assert!(!record_path(&f, id, 2).exists());
    // The value's damage is invisible to recovery (it reads no values)...
    assert_eq!(s.value_len(b"bad-value"), Some(10));
    // ...and caught when read: a miss, the entry and its record dropped.
    assert_eq!(s.get(b"bad-value").expect("get"), None);
    assert_eq!(s.value_len(b"bad-value"), None);
    assert!(!record_path(&f, id, 3).exists());
    assert_eq!(s.get(b"fine").expect("get"), Some(b("0123456789")));
    assert_eq!(s.stats().keys, 1);
    s.check_invariants();
}

#[test]
fn a_value_whose_record_vanished_reads_as_a_miss() {
    let f = Fixture::new();
    let s = f.space("d", 1 << 20, Durability::Disk);
    s.put(b"k", b("v"), PutMode::Overwrite).expect("put");
    let chunks = s.chunk_store().expect("disk space");
    chunks.remove(ChunkId { ino: 0, index: 1 }).expect("remove");
    assert_eq!(s.get(b"k").expect("a miss, not an error"), None);
    assert_eq!(s.stats().misses, 1);
}

#[test]
fn duplicate_keys_recover_to_the_newest_record() {
    let mut f = Fixture::new();
    let id = f.space("d", 1 << 20, Durability::Disk).config().id;
    let dir = f.root().join("spaces").join(id.to_string());
    // A crash between an overwrite's insert and the old record's removal.
    {
        let chunks = LocalChunkStore::open(&dir).expect("chunks");
        write_raw(&chunks, 5, b"k", b"old");
        write_raw(&chunks, 2000, b"k", b"newest");
        write_raw(&chunks, 7, b"j", b"other");
    }
    f.reopen();
    let s = f.get("d");
    assert_eq!(s.get(b"k").expect("get"), Some(b("newest")));
    assert_eq!(s.get(b"j").expect("get"), Some(b("other")));
    let chunks = s.chunk_store().expect("disk");
    assert_eq!(all_vids(chunks.as_ref()), vec![7, 2000]);
    s.put(b"n", b("x"), PutMode::Overwrite).expect("put");
    assert_eq!(all_vids(chunks.as_ref()), vec![7, 2000, 2001]);
}

#[test]
fn a_newer_duplicate_that_fails_its_value_checksum_does_not_hide_the_older_value() {
    let mut f = Fixture::new();
    let id = f.space("d", 1 << 20, Durability::Disk).config().id;
    let dir = f.root().join("spaces").join(id.to_string());
    // A crash while an overwrite's record was written: header and length
    // made it to disk, the value did not.
    {
        let chunks = LocalChunkStore::open(&dir).expect("chunks");
        write_raw(&chunks, 5, b"k", b"old");
        write_raw(&chunks, 6, b"k", b"torn!");
        write_raw(&chunks, 7, b"j", b"other");
        write_raw(&chunks, 8, b"j", b"bad");
        write_raw(&chunks, 9, b"j", b"bad too");
    }
    for (vid, value_at) in [(6, 36 + 1), (8, 36 + 1), (9, 36 + 1 + 3)] {
        let p = record_path(&f, id, vid);
        let mut data = std::fs::read(&p).expect("read");
        data[value_at] ^= 0x20;
        std::fs::write(&p, data).expect("write");
    }
    f.reopen();
    let s = f.get("d");
    assert_eq!(s.get(b"k").expect("get"), Some(b("old")));
    assert_eq!(s.get(b"j").expect("get"), Some(b("other")));
    let chunks = s.chunk_store().expect("disk");
    assert_eq!(all_vids(chunks.as_ref()), vec![5, 7]);
    assert_eq!(s.stats().keys, 2);
    s.check_invariants();
}

#[test]
fn a_record_at_the_last_value_id_is_served_and_puts_report_exhaustion() {
    let mut f = Fixture::new();
    let id = f.space("d", 1 << 20, Durability::Disk).config().id;
    let dir = f.root().join("spaces").join(id.to_string());
    {
        let chunks = LocalChunkStore::open(&dir).expect("chunks");
        write_raw(&chunks, u64::MAX, b"last", b"v");
    }
    f.reopen();
    let s = f.get("d");
    assert_eq!(s.get(b"last").expect("get"), Some(b("v")));
    assert!(matches!(
        s.put(b"k", b("v"), PutMode::Overwrite),
        Err(crate::store::StoreError::Corrupt(_))
    ));
    assert_eq!(s.get(b"last").expect("get"), Some(b("v")));
    s.check_invariants();
}

#[test]
fn expired_records_are_dropped_on_reopen() {
    let mut f = Fixture::new();
    let mut c = super::cfg("t", 1 << 20, Durability::Disk);
    c.ttl_secs = Some(10);
    let s = f.store.create_space(c).expect("create");
    s.put(b"early", b("v"), PutMode::Overwrite).expect("put");
    f.clock.advance(5_000);
    s.put(b"late", b("v"), PutMode::Overwrite).expect("put");
    drop(s);
    f.clock.advance(5_000);
    f.reopen();
    let s = f.get("t");
    assert_eq!(s.get(b"early").expect("get"), None);
    assert_eq!(s.get(b"late").expect("get"), Some(b("v")));
    assert_eq!(all_vids(s.chunk_store().expect("disk").as_ref()), vec![2]);
    // The restored entry keeps its expiry.
    f.clock.advance(5_000);
    assert_eq!(s.expire_now(), 1);
    assert_eq!(f.clock.now_ms(), T0 + 15_000);
}

#[test]
fn a_lowered_capacity_evicts_down_on_reopen() {
    let mut f = Fixture::new();
    let s = f.space("d", 1000, Durability::Disk);
    for i in 0..9 {
        s.put(
            format!("k{i}").as_bytes(),
            bytes::Bytes::from(vec![1u8; 98]),
            PutMode::Overwrite,
        )
        .expect("put");
    }
    drop(s);
    let mut cat = Catalog::load(&f.root()).expect("catalog");
    cat.spaces[0].capacity = 500;
    cat.save(&f.root()).expect("save");
    f.reopen();
    let s = f.get("d");
    let st = s.stats();
    assert_eq!((st.keys, st.bytes, st.evictions), (5, 500, 4));
    // Restored entries are evicted oldest first.
    assert_eq!(s.value_len(b"k3"), None);
    assert_eq!(s.value_len(b"k4"), Some(98));
    assert_eq!(
        all_vids(s.chunk_store().expect("disk").as_ref()),
        vec![5, 6, 7, 8, 9]
    );
}

#[test]
fn emptied_bucket_directories_are_removed() {
    let mut f = Fixture::new();
    let id = f.space("d", 1 << 20, Durability::Disk).config().id;
    let dir = f.root().join("spaces").join(id.to_string());
    {
        let chunks = LocalChunkStore::open(&dir).expect("chunks");
        write_raw(&chunks, 1022, b"a", b"1");
        write_raw(&chunks, 1023, b"b", b"2");
        // An empty bucket left by a crash is removed by the reopen.
        write_raw(&chunks, 5000, b"c", b"3");
        chunks
            .remove(ChunkId {
                ino: 4,
                index: 5000,
            })
            .expect("remove");
        chunks.sync(4).expect("sync");
    }
    f.reopen();
    let s = f.get("d");
    let chunks = s.chunk_store().expect("disk");
    assert_eq!(chunks.inodes().expect("inodes"), vec![0]);
    // Next vid is 1024: bucket 0 takes no more writes.
    s.put(b"c", b("3"), PutMode::Overwrite).expect("put");
    assert_eq!(chunks.inodes().expect("inodes"), vec![0, 1]);
    s.delete(b"a").expect("delete");
    assert_eq!(chunks.inodes().expect("inodes"), vec![0, 1]);
    s.delete(b"b").expect("delete");
    assert_eq!(chunks.inodes().expect("inodes"), vec![1]);
}
