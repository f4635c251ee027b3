//! Metadata changes answered on the connection's task: their reply
//! leaves only after a log sync that started after their commit, and a
//! failed sync turns it into NFS3ERR_IO.

use super::*;
use nitrofs_metadata::{KvError, KvPair, KvResult, MemKv, MetaKv, Txn};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// MemKv that numbers its commits and records how far its real (not
/// deferred) log syncs reached.
#[derive(Default)]
pub(super) struct Ledger {
    inner: MemKv,
    /// Commits so far.
    commits: AtomicU64,
    /// The number of commits the latest finished real sync covered.
    synced: AtomicU64,
    /// Syncs put off by `deferring_sync` (calls answered on the task).
    deferred: AtomicU64,
    /// Real syncs fail while set.
    pub(super) failing: AtomicBool,
    /// Real syncs run.
    syncs: AtomicU64,
    /// Syncs the log syncer thread asked for, whether or not one was due.
    asked: AtomicU64,
    /// While set, a real sync reports that it started and waits for the
    /// gate to open.
    gate: parking_lot::Mutex<Option<std::sync::mpsc::Sender<()>>>,
    opened: parking_lot::Condvar,
}

struct LedgerTxn<'a> {
    inner: Box<dyn Txn + 'a>,
    ledger: &'a Ledger,
}

impl Txn for LedgerTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.inner.delete(key)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }
    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        let ledger = self.ledger;
        // The ledger keeps the log: its positions are its commit count.
        self.inner.commit(false)?;
        let position = ledger.commits.fetch_add(1, Ordering::SeqCst) + 1;
        if durable {
            ledger.sync_to(position)?;
        }
        Ok(())
    }
}

impl Ledger {
    fn sync_now(&self) -> KvResult<()> {
        self.syncs.fetch_add(1, Ordering::SeqCst);
        let covered = self.commits.load(Ordering::SeqCst);
        let mut gate = self.gate.lock();
        if let Some(started) = gate.as_ref() {
            let _ = started.send(());
            while gate.is_some() {
                self.opened.wait(&mut gate);
            }
        }
        drop(gate);
        if self.failing.load(Ordering::SeqCst) {
            return Err(KvError::Engine("injected log sync failure".into()));
        }
        self.synced.fetch_max(covered, Ordering::SeqCst);
        Ok(())
    }
}

impl MetaKv for Ledger {
    fn begin(&self) -> Box<dyn Txn + '_> {
        Box::new(LedgerTxn {
            inner: self.inner.begin(),
            ledger: self,
        })
    }
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }
    fn log_position(&self) -> u64 {
        self.commits.load(Ordering::SeqCst)
    }
    fn sync_to(&self, upto: u64) -> KvResult<()> {
        if std::thread::current().name() == Some(crate::logsync::THREAD_NAME) {
            self.asked.fetch_add(1, Ordering::SeqCst);
        }
        if self.synced.load(Ordering::SeqCst) >= upto {
            return Ok(());
        }
        let was_owed = nitrofs_metadata::sync_owed();
        if nitrofs_metadata::defer_sync(upto) {
            if !was_owed {
                self.deferred.fetch_add(1, Ordering::SeqCst);
            }
            return Ok(());
        }
        self.sync_now()
    }
}

pub(super) async fn start_with_ledger() -> (Harness, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::default());
    let (dir, fs) = test_fs_on(ledger.clone());
    (start_on(dir, fs, ExportPolicy::default()).await, ledger)
}

#[tokio::test]
async fn a_create_is_answered_only_after_a_log_sync_covering_its_commit() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    for i in 0..20 {
        let f = c.create_file(&root, &format!("f{i}")).await;
        let (made, synced) = (
            ledger.commits.load(Ordering::SeqCst),
            ledger.synced.load(Ordering::SeqCst),
        );
        assert!(
            synced >= made,
            "CREATE f{i} answered with {made} commits, {synced} synced"
        );
        let chmod = SETATTR3args {
            object: f,
            new_attributes: sattr3 {
                mode: Nfs3Option::Some(0o600),
                ..sattr3::default()
            },
            guard: Nfs3Option::None,
        };
        let res: SETATTR3res = c.nfs(2, &chmod).await;
        assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
        assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
        let res = c.mkdir(&root, &format!("d{i}")).await;
        assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
        assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
    }
    // They ran on the connection's task, sharing the syncer's syncs.
    assert!(
        ledger.deferred.load(Ordering::SeqCst) >= 60,
        "only {} calls deferred their sync",
        ledger.deferred.load(Ordering::SeqCst)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_reply_is_held_until_its_log_sync_has_finished() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let held = HeldSync::new(&ledger);
    let xid = send_create(&mut c, &root, "f").await;
    // The sync covering the CREATE has started and is held at the gate.
    held.wait_started().await;
    assert_no_reply_yet(&c, "CREATE");
    drop(held);
    let reply = c.recv_raw().await.expect("reply");
    assert_created(&reply, xid);
    assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
}

#[tokio::test]
async fn a_create_whose_log_sync_fails_is_answered_with_an_io_error() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    ledger.failing.store(true, Ordering::SeqCst);
    let res = c
        .create(&root, "f", createhow3::GUARDED(sattr3::default()))
        .await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    let res = c.mkdir(&root, "d").await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    // Once syncs work again, so do creates.
    ledger.failing.store(false, Ordering::SeqCst);
    c.create_file(&root, "g").await;
}

/// Holds the ledger's next real sync at its gate until dropped (then
/// opens it, however the test ends, so the syncer thread joined when the
/// server drops is never left waiting); `started` hears when it is held.
pub(super) struct HeldSync<'a> {
    ledger: &'a Ledger,
    started: std::sync::mpsc::Receiver<()>,
}

impl<'a> HeldSync<'a> {
    pub(super) fn new(ledger: &'a Ledger) -> Self {
        let (tx, started) = std::sync::mpsc::channel();
        *ledger.gate.lock() = Some(tx);
        Self { ledger, started }
    }

    /// Waits (bounded) until a sync is held at the gate.
    pub(super) async fn wait_started(&self) {
        let waited = tokio::task::block_in_place(|| {
            self.started
                .recv_timeout(std::time::Duration::from_secs(60))
        });
        waited.expect("no log sync was asked for");
    }
}

impl Drop for HeldSync<'_> {
    fn drop(&mut self) {
        *self.ledger.gate.lock() = None;
        self.ledger.opened.notify_all();
    }
}

/// GUARDED CREATEs of `names` in `dir`, framed back to back for the
/// wire (nothing is sent): the bytes, each call's xid, and where each
/// record ends.
fn creates_framed(
    c: &mut Client,
    dir: &nfs_fh3,
    names: &[String],
) -> (Vec<u8>, Vec<u32>, Vec<usize>) {
    let (mut wire, mut xids, mut ends) = (Vec::new(), Vec::new(), Vec::new());
    for name in names {
        let args = create_args(dir, name, createhow3::GUARDED(sattr3::default()));
        let (xid, rec) = c.nfs_record(8, &args);
        wire.extend_from_slice(&super::framed(&rec));
        xids.push(xid);
        ends.push(wire.len());
    }
    (wire, xids, ends)
}

/// Sends a GUARDED CREATE of `name` in `dir` without waiting; its xid.
async fn send_create(c: &mut Client, dir: &nfs_fh3, name: &str) -> u32 {
    let (wire, xids, _) = creates_framed(c, dir, &[name.to_string()]);
    c.sock.write_all(&wire).await.expect("send");
    xids[0]
}

fn assert_created(reply: &[u8], xid: u32) {
    let (rxid, answer) = parse_reply(reply);
    assert_eq!(rxid, xid);
    match answer {
        Answer::Accepted(0, body) => {
            let (res, _) = CREATE3res::unpack(&mut &body[..]).expect("decode");
            assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
        }
        other => panic!("CREATE failed: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reply_held_for_its_log_sync_does_not_hold_back_later_calls() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let held = HeldSync::new(&ledger);
    let create = send_create(&mut c, &root, "f").await;
    held.wait_started().await;
    // A GETATTR sent after the held CREATE is answered first.
    let args = GETATTR3args {
        object: root.clone(),
    };
    let (getattr, rec) = c.nfs_record(1, &args);
    c.send_raw(&rec).await;
    let first = c.recv_raw().await.expect("reply");
    let (xid, answer) = parse_reply(&first);
    assert_eq!(xid, getattr, "the first reply is the GETATTR's");
    assert!(matches!(answer, Answer::Accepted(0, _)), "{answer:?}");
    drop(held);
    let second = c.recv_raw().await.expect("reply");
    assert_created(&second, create);
    assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_sending_still_gets_its_held_replies() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let held = HeldSync::new(&ledger);
    let xids = [
        send_create(&mut c, &root, "a").await,
        send_create(&mut c, &root, "b").await,
    ];
    held.wait_started().await;
    // The client closes its sending side: the server's reader ends while
    // both replies wait for syncs.
    c.sock.shutdown().await.expect("shutdown");
    drop(held);
    let mut got = Vec::new();
    while let Some(reply) = c.recv_raw().await {
        got.push(reply);
    }
    assert_eq!(
        got.len(),
        2,
        "both CREATEs answered before the server closed"
    );
    for (reply, xid) in got.iter().zip(xids) {
        assert_created(reply, xid);
    }
    assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
}

/// A server on a ledger, a client, and file `f` with an UNSTABLE write
/// of some bytes.
async fn with_unstable_write() -> (Harness, Arc<Ledger>, Client, nfs_fh3) {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "f").await;
    let w = c
        .write(&f, 0, b"unstable bytes", stable_how::UNSTABLE)
        .await;
    assert!(matches!(w, Nfs3Result::Ok(_)), "write failed");
    (h, ledger, c, f)
}

/// Nothing has arrived from the server yet (the `what` call's reply is
/// held for its log sync).
fn assert_no_reply_yet(c: &Client, what: &str) {
    let mut byte = [0u8; 1];
    match c.sock.try_read(&mut byte) {
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
        other => panic!("the {what} was answered before its log sync finished: {other:?}"),
    }
}

fn commit_args(file: &nfs_fh3) -> COMMIT3args {
    COMMIT3args {
        file: file.clone(),
        offset: 0,
        count: 0,
    }
}

/// Sends `args` as NFS procedure `proc_num` while the ledger's next log
/// sync is held at its gate, checks that no reply leaves before the gate
/// opens, and returns the accepted reply's body with the number of
/// commits made when that sync started.
async fn answered_after_held_sync<A: Pack>(
    c: &mut Client,
    ledger: &Ledger,
    proc_num: u32,
    args: &A,
    what: &str,
) -> (Vec<u8>, u64) {
    let held = HeldSync::new(ledger);
    let (xid, rec) = c.nfs_record(proc_num, args);
    c.send_raw(&rec).await;
    held.wait_started().await;
    assert_no_reply_yet(c, what);
    let made = ledger.commits.load(Ordering::SeqCst);
    drop(held);
    let reply = c.recv_raw().await.expect("reply");
    let (rxid, answer) = parse_reply(&reply);
    assert_eq!(rxid, xid);
    let Answer::Accepted(0, body) = answer else {
        panic!("{what} failed: {answer:?}");
    };
    (body, made)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_is_answered_only_after_a_log_sync_has_made_the_unstable_size_durable() {
    let (h, ledger, mut c, f) = with_unstable_write().await;
    let deferred = ledger.deferred.load(Ordering::SeqCst);
    // The commits made by then include the WRITE's new size.
    let (body, made) =
        answered_after_held_sync(&mut c, &ledger, 21, &commit_args(&f), "COMMIT").await;
    let (res, _) = COMMIT3res::unpack(&mut &body[..]).expect("decode");
    let Nfs3Result::Ok(ok) = res else {
        panic!("COMMIT refused: {res:?}");
    };
    assert_eq!(ok.verf.0, h.fs.boot_count().to_be_bytes());
    assert!(
        ledger.synced.load(Ordering::SeqCst) >= made,
        "COMMIT answered before the WRITE's size was synced"
    );
    // The COMMIT put its log sync off for the syncer thread, whose sync
    // the gate held, instead of syncing on a thread of its own.
    assert!(
        ledger.deferred.load(Ordering::SeqCst) > deferred,
        "the COMMIT synced the log itself"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_writes_a_finished_sync_covered_needs_no_sync() {
    let (_h, ledger, mut c, f) = with_unstable_write().await;
    let root = c.root().await;
    // The CREATE's log sync covers the WRITE before it.
    c.create_file(&root, "g").await;
    let syncs = ledger.syncs.load(Ordering::SeqCst);
    let deferred = ledger.deferred.load(Ordering::SeqCst);
    let res: COMMIT3res = c.nfs(21, &commit_args(&f)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    assert_eq!(
        ledger.syncs.load(Ordering::SeqCst),
        syncs,
        "COMMIT synced again"
    );
    assert_eq!(
        ledger.deferred.load(Ordering::SeqCst),
        deferred,
        "COMMIT owed a sync"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_of_writes_the_running_sync_covers_waits_for_that_sync_only() {
    let (_h, ledger, mut c, f) = with_unstable_write().await;
    let root = c.root().await;
    let before = ledger.asked.load(Ordering::SeqCst);
    // A CREATE's sync, which covers the WRITE, is held running ...
    let held = HeldSync::new(&ledger);
    let (wire, xids, _) = creates_framed(&mut c, &root, &["g".to_string()]);
    c.sock.write_all(&wire).await.expect("send");
    held.wait_started().await;
    // ... when the COMMIT arrives and finds its write not yet synced.
    let deferred = ledger.deferred.load(Ordering::SeqCst);
    let (commit_xid, rec) = c.nfs_record(21, &commit_args(&f));
    c.send_raw(&rec).await;
    let mut polls = 0;
    while ledger.deferred.load(Ordering::SeqCst) == deferred {
        polls += 1;
        assert!(polls < 60_000, "the COMMIT never ran");
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
    }
    assert_no_reply_yet(&c, "COMMIT");
    drop(held);
    for _ in 0..2 {
        let reply = c.recv_raw().await.expect("reply");
        let (xid, answer) = parse_reply(&reply);
        if xid == xids[0] {
            assert_created(&reply, xid);
        } else {
            assert_eq!(xid, commit_xid);
            let Answer::Accepted(0, body) = answer else {
                panic!("COMMIT failed: {answer:?}");
            };
            let (res, _) = COMMIT3res::unpack(&mut &body[..]).expect("decode");
            assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
        }
    }
    // One sync asked for: under load a second one would have synced
    // other calls' commits first.
    let asked = ledger.asked.load(Ordering::SeqCst) - before;
    assert_eq!(asked, 1, "the COMMIT waited for a second sync");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sync_write_of_an_inline_file_is_answered_after_a_shared_log_sync() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "f").await;
    let deferred = ledger.deferred.load(Ordering::SeqCst);
    let data = b"durable bytes";
    let args = WRITE3args {
        file: f.clone(),
        offset: 0,
        count: data.len() as u32,
        stable: stable_how::FILE_SYNC,
        data: Opaque::borrowed(data),
    };
    let (body, made) = answered_after_held_sync(&mut c, &ledger, 7, &args, "FILE_SYNC WRITE").await;
    let (res, _) = WRITE3res::unpack(&mut &body[..]).expect("decode");
    let Nfs3Result::Ok(ok) = res else {
        panic!("WRITE refused: {res:?}");
    };
    assert_eq!(ok.committed, stable_how::FILE_SYNC);
    assert!(ledger.synced.load(Ordering::SeqCst) >= made);
    // It ran on the connection's task and left its sync to the syncer
    // thread (on the blocking pool it would have synced by itself).
    assert!(
        ledger.deferred.load(Ordering::SeqCst) > deferred,
        "the WRITE synced the log itself"
    );
    let Nfs3Result::Ok(r) = c.read(&f, 0, 100).await else {
        panic!("read failed")
    };
    assert_eq!(r.data.as_ref(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_sync_write_whose_log_sync_fails_is_answered_with_an_io_error() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "f").await;
    ledger.failing.store(true, Ordering::SeqCst);
    let res = c.write(&f, 0, b"lost", stable_how::FILE_SYNC).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    ledger.failing.store(false, Ordering::SeqCst);
    let res = c.write(&f, 0, b"kept", stable_how::FILE_SYNC).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_whose_log_sync_fails_is_answered_with_an_io_error() {
    let (_h, ledger, mut c, f) = with_unstable_write().await;
    ledger.failing.store(true, Ordering::SeqCst);
    let res: COMMIT3res = c.nfs(21, &commit_args(&f)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    ledger.failing.store(false, Ordering::SeqCst);
    let res: COMMIT3res = c.nfs(21, &commit_args(&f)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_sent_together_share_one_log_sync() {
    let (h, ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    // Twelve CREATEs in one write: the server has them all in its read
    // buffer before it answers the first.
    let names: Vec<String> = (0..12).map(|i| format!("f{i}")).collect();
    let (wire, mut xids, _) = creates_framed(&mut c, &root, &names);
    let before = ledger.syncs.load(Ordering::SeqCst);
    // The first sync is held until the test sees it start: had it started
    // after the first CREATE, the others would need another.
    let held = HeldSync::new(&ledger);
    c.sock.write_all(&wire).await.expect("send");
    held.wait_started().await;
    drop(held);
    let mut answered = Vec::new();
    for _ in 0..xids.len() {
        let reply = c.recv_raw().await.expect("reply");
        let xid = parse_reply(&reply).0;
        assert_created(&reply, xid);
        answered.push(xid);
    }
    answered.sort_unstable();
    xids.sort_unstable();
    assert_eq!(answered, xids);
    assert!(ledger.synced.load(Ordering::SeqCst) >= ledger.commits.load(Ordering::SeqCst));
    let syncs = ledger.syncs.load(Ordering::SeqCst) - before;
    assert_eq!(syncs, 1, "log syncs for 12 CREATEs sent together");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_create_followed_by_part_of_another_call_is_answered_without_the_rest() {
    let (h, _ledger) = start_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let names = ["first".to_string(), "second".to_string()];
    let (wire, xids, ends) = creates_framed(&mut c, &root, &names);
    // The first call whole and the second cut short: the server must not
    // hold the first reply for a call it cannot read yet.
    let cut = ends[0] + 10;
    c.sock.write_all(&wire[..cut]).await.expect("send");
    let reply = tokio::time::timeout(std::time::Duration::from_secs(60), c.recv_raw())
        .await
        .expect("the first CREATE was held for a call not yet received")
        .expect("reply");
    assert_created(&reply, xids[0]);
    c.sock.write_all(&wire[cut..]).await.expect("send the rest");
    let reply = c.recv_raw().await.expect("reply");
    assert_created(&reply, xids[1]);
}

/// A server on a ledger whose exports answer metadata changes before
/// their log sync.
async fn start_async_with_ledger() -> (Harness, Arc<Ledger>) {
    let ledger = Arc::new(Ledger::default());
    let (dir, fs) = test_fs_on(ledger.clone());
    let policy = ExportPolicy {
        default: ExportOptions {
            async_metadata: true,
            ..ExportOptions::default()
        },
        ..ExportPolicy::default()
    };
    (start_on(dir, fs, policy).await, ledger)
}

/// Bounds a call that must be answered while every log sync is held.
async fn answered_unsynced<T>(what: &str, call: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(std::time::Duration::from_secs(30), call)
        .await
        .unwrap_or_else(|_| panic!("the {what} waited for a log sync"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_async_metadata_export_changes_are_answered_before_their_log_sync() {
    let (_h, ledger) = start_async_with_ledger().await;
    let mut c = Client::connect(_h.addr).await;
    let root = c.root().await;
    let synced = ledger.synced.load(Ordering::SeqCst);
    // No log sync can finish while this is held: every answer below was
    // sent before its change was durable.
    let held = HeldSync::new(&ledger);
    let f = answered_unsynced("CREATE", c.create_file(&root, "f")).await;
    let res = answered_unsynced("MKDIR", c.mkdir(&root, "d")).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    let chmod = SETATTR3args {
        object: f.clone(),
        new_attributes: sattr3 {
            mode: Nfs3Option::Some(0o600),
            ..sattr3::default()
        },
        guard: Nfs3Option::None,
    };
    let res: SETATTR3res = answered_unsynced("SETATTR", c.nfs(2, &chmod)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    let link = LINK3args {
        file: f.clone(),
        link: diropargs3 {
            dir: root.clone(),
            name: b"hard".as_slice().into(),
        },
    };
    let res: LINK3res = answered_unsynced("LINK", c.nfs(15, &link)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    assert_eq!(ledger.synced.load(Ordering::SeqCst), synced);
    assert!(ledger.commits.load(Ordering::SeqCst) >= synced + 4);
    drop(held);
    // Data keeps its guarantee, and a COMMIT of a file never written
    // makes its name (and every change answered before) durable too.
    let made = ledger.commits.load(Ordering::SeqCst);
    let (body, _) = answered_after_held_sync(&mut c, &ledger, 21, &commit_args(&f), "COMMIT").await;
    let (res, _) = COMMIT3res::unpack(&mut &body[..]).expect("decode");
    assert!(matches!(res, Nfs3Result::Ok(_)), "COMMIT refused: {res:?}");
    assert!(
        ledger.synced.load(Ordering::SeqCst) >= made,
        "COMMIT answered before the CREATE, MKDIR and SETATTR were synced"
    );
    // REMOVE frees data once its change is durable: still answered after.
    let remove = REMOVE3args {
        object: diropargs3 {
            dir: root.clone(),
            name: b"f".as_slice().into(),
        },
    };
    let (body, made) = answered_after_held_sync(&mut c, &ledger, 12, &remove, "REMOVE").await;
    let (res, _) = REMOVE3res::unpack(&mut &body[..]).expect("decode");
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    // (Deleting the GC record after the file's chunks commits once more.)
    assert!(ledger.synced.load(Ordering::SeqCst) >= made);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_async_metadata_volume_leaves_the_other_exports_synced() {
    let ledger = Arc::new(Ledger::default());
    let (dir, fs) = test_fs_on(ledger.clone());
    fs.create_volume("scratch").expect("volume");
    let policy = ExportPolicy {
        volumes: HashMap::from([(
            "scratch".to_string(),
            ExportOptions {
                async_metadata: true,
                ..ExportOptions::default()
            },
        )]),
        ..ExportPolicy::default()
    };
    let h = start_on(dir, fs, policy).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let scratch = match c.mount("/scratch").await {
        mountres3::Ok(ok) => nfs_fh3 {
            data: Opaque::owned(ok.fhandle.0.to_vec()),
        },
        mountres3::Err(e) => panic!("mount /scratch failed: {e}"),
    };
    // The same connection, one log: a change on the async volume is
    // answered while the sync is held, one on the default export is not.
    let synced = ledger.synced.load(Ordering::SeqCst);
    let held = HeldSync::new(&ledger);
    answered_unsynced("CREATE on /scratch", c.create_file(&scratch, "f")).await;
    assert_eq!(ledger.synced.load(Ordering::SeqCst), synced);
    drop(held);
    let args = create_args(&root, "g", createhow3::GUARDED(sattr3::default()));
    let (body, made) = answered_after_held_sync(&mut c, &ledger, 8, &args, "CREATE").await;
    let (res, _) = CREATE3res::unpack(&mut &body[..]).expect("decode");
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
    assert!(
        ledger.synced.load(Ordering::SeqCst) >= made,
        "the default export's CREATE was answered before its sync"
    );
    // And the async volume still answers before the sync afterwards.
    let _held = HeldSync::new(&ledger);
    let res = answered_unsynced("MKDIR on /scratch", c.mkdir(&scratch, "d")).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3_OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_async_metadata_change_no_call_syncs_is_synced_in_the_background() {
    let (h, ledger) = start_async_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    c.create_file(&root, "f").await;
    let made = ledger.commits.load(Ordering::SeqCst);
    // About BACKGROUND_SYNC_INTERVAL later; bounded well past it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while ledger.synced.load(Ordering::SeqCst) < made {
        assert!(
            std::time::Instant::now() < deadline,
            "the CREATE was never synced"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_failed_log_sync_an_async_metadata_export_answers_changes_with_io_errors() {
    let (h, ledger) = start_async_with_ledger().await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    ledger.failing.store(true, Ordering::SeqCst);
    // Answered before any sync was tried, so before one failed.
    let f = c.create_file(&root, "f").await;
    // The COMMIT's sync fails: so does the COMMIT.
    let res: COMMIT3res = c.nfs(21, &commit_args(&f)).await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    // From then on a change waits for its sync, which fails too.
    let res = c
        .create(&root, "g", createhow3::GUARDED(sattr3::default()))
        .await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
    let res = c.mkdir(&root, "d").await;
    assert_eq!(stat_of(&res), nfsstat3::NFS3ERR_IO);
}
