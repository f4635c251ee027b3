//! Disk puts, deletes and space deletion racing each other, driven step by
//! step through a gated chunk engine; and removal failures that must not
//! let a deleted or overwritten value come back after a restart.

use super::faulty::{faulty_space, until};
use super::{b, T0};
use crate::store::space::MAX_WAITERS;
use crate::store::{ManualClock, PutMode, PutOutcome, StoreError};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn clock() -> Arc<ManualClock> {
    Arc::new(ManualClock::new(T0))
}

#[test]
fn puts_of_one_key_run_one_at_a_time_so_the_newest_value_id_is_the_value_held() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = faulty_space(dir.path(), 1 << 20, clock());
    let gate = f.arm();
    let second_done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        // Owned here so a failing assert drops it and frees the writer.
        let gate = gate;
        let first = scope.spawn(|| s.put(b"k", b("first"), PutMode::Overwrite));
        assert_eq!(gate.entered.recv().expect("first put writes"), 1);
        let second = scope.spawn(|| {
            let r = s.put(b"k", b("second"), PutMode::Overwrite);
            second_done.store(true, Ordering::SeqCst);
            r
        });
        // The second put either waits for the key or (without the key
        // lock) has already run to the end.
        until("second put waits or finishes", || {
            s.waiters() == 1 || second_done.load(Ordering::SeqCst)
        });
        gate.release.send(()).expect("release");
        assert_eq!(
            first.join().expect("join").expect("put"),
            PutOutcome::Stored
        );
        assert_eq!(
            second.join().expect("join").expect("put"),
            PutOutcome::Stored
        );
    });
    // The put that finished last holds the key, with the newest value id:
    // exactly what recovery will pick.
    assert_eq!(s.get(b"k").expect("get"), Some(b("second")));
    assert_eq!(s.vids(b"k"), (Some(2), 3));
    assert!(!f.exists(1));
    drop(s);
    let (s, _) = faulty_space(dir.path(), 1 << 20, clock());
    assert_eq!(s.get(b"k").expect("get"), Some(b("second")));
}

#[test]
fn puts_beyond_the_waiter_limit_fail_at_once_with_a_retryable_busy_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = faulty_space(dir.path(), 1 << 20, clock());
    let gate = f.arm();
    std::thread::scope(|scope| {
        // Owned here so a failing assert drops it and frees the writer.
        let gate = gate;
        let holder = scope.spawn(|| s.put(b"hot", b("0"), PutMode::Overwrite));
        gate.entered.recv().expect("holder writes");
        let waiting: Vec<_> = (0..MAX_WAITERS)
            .map(|i| {
                let s = &s;
                scope.spawn(move || s.put(b"hot", b(&format!("{i}")), PutMode::Overwrite))
            })
            .collect();
        until("every slot is taken", || s.waiters() == MAX_WAITERS);
        let err = s
            .put(b"hot", b("late"), PutMode::Overwrite)
            .expect_err("no slot left");
        assert!(
            matches!(err, StoreError::NoSpace { busy: true, .. }),
            "{err}"
        );
        assert!(err.is_retryable());
        // A put that needs no wait is not turned away.
        assert_eq!(
            s.put(b"cold", b("v"), PutMode::Overwrite).expect("put"),
            PutOutcome::Stored
        );
        gate.release.send(()).expect("release");
        holder.join().expect("join").expect("holder put");
        for w in waiting {
            w.join().expect("join").expect("waiting put");
        }
    });
    assert_eq!(s.stats().puts, 2 + MAX_WAITERS as u64);
    assert_eq!(s.waiters(), 0);
    s.check_invariants();
}

#[test]
fn a_put_that_cannot_fit_beside_puts_in_flight_waits_without_evicting() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = faulty_space(dir.path(), 1000, clock());
    for i in 0..5 {
        s.put(
            format!("k{i}").as_bytes(),
            Bytes::from(vec![1u8; 98]),
            PutMode::Overwrite,
        )
        .expect("put");
    }
    let gate = f.arm();
    std::thread::scope(|scope| {
        // Owned here so a failing assert drops it and frees the writer.
        let gate = gate;
        // 600 bytes: one 100-byte entry goes to make room, then it writes.
        let big = scope.spawn(|| s.put(b"big", Bytes::from(vec![2u8; 597]), PutMode::Overwrite));
        gate.entered.recv().expect("big put writes");
        assert_eq!((s.stats().keys, s.stats().evictions), (4, 1));
        // 500 bytes cannot fit beside the 600 in flight, whatever is evicted.
        let other = scope.spawn(|| s.put(b"b2", Bytes::from(vec![3u8; 498]), PutMode::Overwrite));
        until("the second put waits for room", || s.waiters() == 1);
        assert_eq!(
            (s.stats().keys, s.stats().evictions),
            (4, 1),
            "nothing evicted while the room cannot be made"
        );
        gate.release.send(()).expect("release");
        big.join().expect("join").expect("big put");
        other.join().expect("join").expect("second put");
    });
    let st = s.stats();
    assert!(st.bytes <= 1000, "{st:?}");
    assert_eq!(s.value_len(b"b2"), Some(498));
    s.check_invariants();
}

#[test]
fn deleting_a_space_fails_a_put_in_flight_and_leaves_no_files() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("space");
    let (s, f) = faulty_space(&dir, 1 << 20, clock());
    s.put(b"kept", b("v"), PutMode::Overwrite).expect("put");
    let gate = f.arm();
    std::thread::scope(|scope| {
        // Owned here so a failing assert drops it and frees the writer.
        let gate = gate;
        let put = scope.spawn(|| s.put(b"k", b("v"), PutMode::Overwrite));
        gate.entered.recv().expect("put writes");
        // What `Store::delete_space` does once the catalog forgot the space.
        let delete = scope.spawn(|| {
            s.mark_deleted();
            std::fs::remove_dir_all(&dir).expect("remove the space directory");
        });
        until("the space is marked deleted", || s.is_deleted());
        gate.release.send(()).expect("release");
        let r = put.join().expect("join");
        assert!(matches!(r, Err(StoreError::NoSuchSpace(_))), "{r:?}");
        delete.join().expect("join");
    });
    assert!(!dir.exists(), "nothing written after the directory went");
    assert!(matches!(
        s.put(b"k", b("v"), PutMode::Overwrite),
        Err(StoreError::NoSuchSpace(_))
    ));
    assert!(matches!(s.delete(b"kept"), Err(StoreError::NoSuchSpace(_))));
    assert!(!dir.exists());
}

#[test]
fn an_overwritten_value_whose_removal_failed_is_removed_by_the_next_delete() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = faulty_space(dir.path(), 1 << 20, clock());
    s.put(b"k", b("v1"), PutMode::Overwrite).expect("put");
    f.fail_remove(1);
    // The new value is stored and served, but the put cannot promise the
    // old one will not come back: it reports the failure.
    assert!(s.put(b"k", b("v2"), PutMode::Overwrite).is_err());
    assert_eq!(s.get(b"k").expect("get"), Some(b("v2")));
    assert!(f.exists(1));
    // Still failing: the delete cannot make the key's removal durable.
    assert!(s.delete(b"k").is_err());
    f.heal();
    assert!(
        !s.delete(b"k").expect("delete"),
        "already gone from the index"
    );
    assert!(!f.exists(1) && !f.exists(2));
    drop(s);
    let (s, _) = faulty_space(dir.path(), 1 << 20, clock());
    assert_eq!(s.get(b"k").expect("get"), None, "not resurrected");
}

#[test]
fn an_evicted_value_whose_removal_failed_cannot_outlive_a_delete_of_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (s, f) = faulty_space(dir.path(), 200, clock());
    s.put(b"a", Bytes::from(vec![1u8; 99]), PutMode::Overwrite)
        .expect("put");
    f.fail_remove(1);
    // Evicts "a"; its record stays behind.
    s.put(b"b", Bytes::from(vec![2u8; 199]), PutMode::Overwrite)
        .expect("put");
    assert_eq!(s.value_len(b"a"), None);
    assert!(f.exists(1));
    f.heal();
    assert!(!s.delete(b"a").expect("delete"));
    assert!(!f.exists(1));
    drop(s);
    let (s, _) = faulty_space(dir.path(), 200, clock());
    assert_eq!(s.value_len(b"a"), None, "not resurrected");
    assert_eq!(s.value_len(b"b"), Some(199));
}
