//! Retransmissions of calls that are not idempotent: the same record sent
//! again (same xid), on a new connection as a client does after its old
//! one closed, gets the first answer back instead of running twice.

use super::durability::{start_with_ledger, HeldSync};
use super::*;
use std::sync::atomic::Ordering;

/// Sends `record` on a new connection as a client retransmits: again
/// after a second without a reply (a copy that arrives while the first
/// call still runs is dropped), at most 60 times.
async fn retransmitted(h: &Harness, record: &[u8]) -> Vec<u8> {
    let mut c = Client::connect(h.addr).await;
    for _ in 0..60 {
        c.send_raw(record).await;
        let wait = std::time::Duration::from_secs(1);
        if let Ok(reply) = tokio::time::timeout(wait, c.recv_raw()).await {
            return reply.expect("reply");
        }
    }
    panic!("no reply to a retransmission in 60 tries");
}

/// The NFS status at the start of an accepted reply's results.
fn status_of(reply: &[u8]) -> u32 {
    let (_, answer) = parse_reply(reply);
    let Answer::Accepted(0, body) = answer else {
        panic!("call not accepted: {answer:?}");
    };
    u32::from_be_bytes(body[..4].try_into().expect("status word"))
}

const OK: u32 = 0;
const NOENT: u32 = 2;
const IO: u32 = 5;
const EXIST: u32 = 17;

/// A GUARDED CREATE of `name` in `dir`, as a record (not sent).
fn guarded_create(c: &mut Client, dir: &nfs_fh3, name: &str) -> Vec<u8> {
    let how = createhow3::GUARDED(sattr3::default());
    c.nfs_record(8, &create_args(dir, name, how)).1
}

/// A REMOVE of `name` in `dir`, as a record (not sent).
fn remove_call(c: &mut Client, dir: &nfs_fh3, name: &str) -> Vec<u8> {
    let object = diropargs3 {
        dir: dir.clone(),
        name: name.as_bytes().into(),
    };
    c.nfs_record(12, &REMOVE3args { object }).1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retransmitted_create_and_remove_get_their_first_answers() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let create = guarded_create(&mut c, &root, "f");
    c.send_raw(&create).await;
    let first = c.recv_raw().await.expect("reply");
    assert_eq!(status_of(&first), OK);
    drop(c);
    // The client saw no reply (its connection closed) and sends the call
    // again: run twice, a GUARDED CREATE would answer EXIST.
    let again = retransmitted(&h, &create).await;
    assert_eq!(again, first, "the first answer, byte for byte");
    // A new call (a new xid) with the same arguments runs.
    let mut c = Client::connect(h.addr).await;
    let other = guarded_create(&mut c, &root, "f");
    c.send_raw(&other).await;
    assert_eq!(status_of(&c.recv_raw().await.expect("reply")), EXIST);
    let remove = remove_call(&mut c, &root, "f");
    c.send_raw(&remove).await;
    let first = c.recv_raw().await.expect("reply");
    assert_eq!(status_of(&first), OK);
    let again = retransmitted(&h, &remove).await;
    assert_eq!(again, first, "run twice, the REMOVE would answer NOENT");
    let other = remove_call(&mut c, &root, "f");
    c.send_raw(&other).await;
    assert_eq!(status_of(&c.recv_raw().await.expect("reply")), NOENT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_answer_that_was_not_durable_is_not_replayed() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    ledger.failing.store(true, Ordering::SeqCst);
    let create = guarded_create(&mut c, &root, "f");
    c.send_raw(&create).await;
    let first = c.recv_raw().await.expect("reply");
    assert_eq!(status_of(&first), IO, "the log sync failed");
    ledger.failing.store(false, Ordering::SeqCst);
    // The retransmission runs again (the file's entry was committed, so
    // it exists now) instead of replaying the IO error.
    let again = retransmitted(&h, &create).await;
    assert_eq!(status_of(&again), EXIST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_whose_connection_closed_before_its_sync_is_replayed_once_durable() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let held = HeldSync::new(&ledger);
    let create = guarded_create(&mut c, &root, "f");
    c.send_raw(&create).await;
    // The CREATE committed and its sync is held: the client resets the
    // connection before any reply, so the server's write of it fails.
    held.wait_started().await;
    // A zero linger resets at once (tokio deprecates it for blocking on
    // drop, which a zero linger never does).
    #[allow(deprecated)]
    c.sock
        .set_linger(Some(std::time::Duration::ZERO))
        .expect("linger");
    drop(c);
    drop(held);
    let again = retransmitted(&h, &create).await;
    assert_eq!(status_of(&again), OK, "the first answer, not EXIST");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_remove_answered_with_an_io_error_runs_again() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    c.create_file(&root, "f").await;
    ledger.failing.store(true, Ordering::SeqCst);
    let remove = remove_call(&mut c, &root, "f");
    c.send_raw(&remove).await;
    assert_eq!(status_of(&c.recv_raw().await.expect("reply")), IO);
    ledger.failing.store(false, Ordering::SeqCst);
    // Not replayed: it runs again (the entry's removal was committed).
    let again = retransmitted(&h, &remove).await;
    assert_eq!(status_of(&again), NOENT);
}
