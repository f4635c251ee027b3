//! The behaviour every [`MetaKv`] backend must show. Each backend's tests
//! call [`run_all`]; a new backend is done when it passes.

use crate::{deferring_sync_to, prefix_end, transact, KvError, MetaKv};

/// Runs every conformance check against `kv` (which must start empty).
pub fn run_all(kv: &dyn MetaKv) {
    point_reads_and_writes(kv);
    scans_are_ordered_bounded_and_limited(kv);
    transaction_sees_its_own_writes_in_gets_and_scans(kv);
    uncommitted_writes_are_invisible(kv);
    conflicting_commit_fails_and_leaves_no_trace(kv);
    transact_retries_conflicts_until_success(kv);
    durable_commit_and_sync_succeed(kv);
    log_positions_grow_and_syncs_to_them_are_owed_once(kv);
}

fn put(kv: &dyn MetaKv, k: &[u8], v: &[u8]) {
    let mut t = kv.begin();
    t.put(k, v).expect("put");
    t.commit(false).expect("commit");
}

/// Committed puts and deletes are visible to later reads.
pub fn point_reads_and_writes(kv: &dyn MetaKv) {
    put(kv, b"a/1", b"one");
    assert_eq!(kv.get(b"a/1").expect("get").as_deref(), Some(&b"one"[..]));
    put(kv, b"a/1", b"uno");
    assert_eq!(kv.get(b"a/1").expect("get").as_deref(), Some(&b"uno"[..]));
    let mut t = kv.begin();
    t.delete(b"a/1").expect("delete");
    t.delete(b"a/never-existed").expect("delete of absent key");
    t.commit(false).expect("commit");
    assert_eq!(kv.get(b"a/1").expect("get"), None);
}

/// Scans return keys in byte order, within [start, end), at most `limit`.
pub fn scans_are_ordered_bounded_and_limited(kv: &dyn MetaKv) {
    for k in [&b"s/b"[..], b"s/a", b"s/c", b"s/\xff", b"t/a", b"r/z"] {
        put(kv, k, k);
    }
    let all = kv.scan(b"s/", &prefix_end(b"s/"), 100).expect("scan");
    let keys: Vec<&[u8]> = all.iter().map(|(k, _)| k.as_slice()).collect();
    assert_eq!(keys, vec![&b"s/a"[..], b"s/b", b"s/c", b"s/\xff"]);
    assert_eq!(all[0].1, b"s/a".to_vec());
    let two = kv.scan(b"s/b", &prefix_end(b"s/"), 2).expect("scan");
    assert_eq!(two.len(), 2);
    assert_eq!(two[0].0, b"s/b".to_vec());
    assert!(kv.scan(b"s/z", b"s/a", 10).expect("empty range").is_empty());
}

/// Inside a transaction, reads and scans include its own puts and deletes.
pub fn transaction_sees_its_own_writes_in_gets_and_scans(kv: &dyn MetaKv) {
    put(kv, b"o/1", b"x");
    let mut t = kv.begin();
    t.put(b"o/2", b"y").expect("put");
    t.delete(b"o/1").expect("delete");
    assert_eq!(t.get(b"o/2").expect("get").as_deref(), Some(&b"y"[..]));
    assert_eq!(t.get(b"o/1").expect("get"), None);
    let seen = t.scan(b"o/", &prefix_end(b"o/"), 10).expect("scan");
    assert_eq!(seen, vec![(b"o/2".to_vec(), b"y".to_vec())]);
    t.commit(false).expect("commit");
}

/// Writes of an open or dropped transaction are not visible to others.
pub fn uncommitted_writes_are_invisible(kv: &dyn MetaKv) {
    {
        let mut t = kv.begin();
        t.put(b"u/1", b"pending").expect("put");
        assert_eq!(kv.get(b"u/1").expect("get"), None);
        // dropped without commit
    }
    assert_eq!(kv.get(b"u/1").expect("get"), None);
}

/// Two transactions that read then write the same key: the second commit
/// fails with a retryable conflict and none of its writes land.
pub fn conflicting_commit_fails_and_leaves_no_trace(kv: &dyn MetaKv) {
    put(kv, b"c/counter", b"0");
    let mut t1 = kv.begin();
    let mut t2 = kv.begin();
    assert_eq!(
        t1.get(b"c/counter").expect("get").as_deref(),
        Some(&b"0"[..])
    );
    assert_eq!(
        t2.get(b"c/counter").expect("get").as_deref(),
        Some(&b"0"[..])
    );
    t1.put(b"c/counter", b"1").expect("put");
    t2.put(b"c/counter", b"2").expect("put");
    t2.put(b"c/side-effect", b"2").expect("put");
    t1.commit(false).expect("first commit wins");
    let err = t2.commit(false).expect_err("second commit must conflict");
    assert!(matches!(err, KvError::Conflict), "got {err:?}");
    assert!(err.is_retryable());
    assert_eq!(
        kv.get(b"c/counter").expect("get").as_deref(),
        Some(&b"1"[..])
    );
    assert_eq!(kv.get(b"c/side-effect").expect("get"), None);
}

/// Concurrent read-modify-write increments through [`transact`] lose no
/// update.
pub fn transact_retries_conflicts_until_success(kv: &dyn MetaKv) {
    put(kv, b"n/count", &0u64.to_be_bytes());
    let threads = 4;
    let per_thread = 50;
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..per_thread {
                    transact(kv, false, |t| -> Result<(), KvError> {
                        let cur = t.get(b"n/count")?.unwrap_or_default();
                        let n = u64::from_be_bytes(cur.try_into().unwrap_or([0; 8]));
                        t.put(b"n/count", &(n + 1).to_be_bytes())
                    })
                    .expect("transact");
                }
            });
        }
    });
    let v = kv.get(b"n/count").expect("get").expect("present");
    let n = u64::from_be_bytes(v.try_into().expect("8 bytes"));
    assert_eq!(n, (threads * per_thread) as u64);
}

/// Durable commits and explicit syncs succeed.
pub fn durable_commit_and_sync_succeed(kv: &dyn MetaKv) {
    let mut t = kv.begin();
    t.put(b"d/1", b"durable").expect("put");
    t.commit(true).expect("durable commit");
    kv.sync().expect("sync");
    assert_eq!(
        kv.get(b"d/1").expect("get").as_deref(),
        Some(&b"durable"[..])
    );
}

/// Every commit moves the log position on; inside `deferring_sync_to` a
/// durable commit owes a sync up to at least its position, a sync to a
/// position no sync has covered is owed, and one a sync has covered is
/// not.
pub fn log_positions_grow_and_syncs_to_them_are_owed_once(kv: &dyn MetaKv) {
    let before = kv.log_position();
    put(kv, b"p/1", b"unsynced");
    let after_put = kv.log_position();
    assert!(after_put > before, "a commit moves the position on");
    let (r, owed) = deferring_sync_to(|| kv.sync_to(after_put));
    r.expect("sync_to");
    assert!(
        owed.is_some_and(|p| p >= after_put),
        "an unsynced commit owes a sync: {owed:?}"
    );
    let (r, owed) = deferring_sync_to(|| transact(kv, true, |t| t.put(b"p/2", b"durable")));
    r.expect("durable commit");
    let after_durable = kv.log_position();
    assert!(
        owed.is_some_and(|p| p > after_put && p <= after_durable),
        "{owed:?}"
    );
    kv.sync_to(after_durable).expect("sync");
    for upto in [after_put, after_durable] {
        let (r, owed) = deferring_sync_to(|| kv.sync_to(upto));
        r.expect("sync_to");
        assert_eq!(owed, None, "a sync already covered position {upto}");
    }
}

#[cfg(test)]
mod tests {
    use crate::MetaKv;

    #[test]
    fn mem_backend_conforms() {
        super::run_all(&crate::MemKv::new());
    }

    #[test]
    fn rocksdb_backend_conforms() {
        let dir = tempfile::tempdir().expect("tempdir");
        let kv = crate::RocksKv::open(dir.path()).expect("open");
        super::run_all(&kv);
    }

    #[test]
    fn rocksdb_keeps_committed_data_across_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let kv = crate::RocksKv::open(dir.path()).expect("open");
            let mut t = kv.begin();
            t.put(b"k", b"v").expect("put");
            t.commit(true).expect("commit");
        }
        let kv = crate::RocksKv::open(dir.path()).expect("reopen");
        assert_eq!(kv.get(b"k").expect("get").as_deref(), Some(&b"v"[..]));
    }
}
