//! Group commit for calls answered on the connection's task, and for
//! COMMIT.
//!
//! A CREATE (or SETATTR, MKDIR, a FILE_SYNC WRITE of an inline file, …)
//! run there commits its transaction inside
//! [`nitrofs_core_fs::deferring_sync`] and must not be answered before
//! the metadata log is synced; a COMMIT must not be answered before the
//! sizes (and an inline file's bytes) its file's unstable WRITEs
//! committed are. Parking the executor thread on that fsync would stall
//! every connection it serves, and a hop per call to the blocking pool
//! costs more thread switches than the call itself, so the call's
//! connection takes a ticket from this syncer instead (one for the calls
//! it has read in a burst) and its writer holds the reply until the sync
//! of that number has finished. One thread runs
//! one log sync at a time, each covering every ticket handed out before it
//! started, and then publishes its progress once for every connection: a
//! sync wakes one task per connection waiting, not one per call, and no
//! call spawns a task of its own. A call owing only changes committed
//! before the running sync started (a COMMIT of an inline file's earlier
//! WRITEs, mostly) takes that sync's ticket instead of the next one's.
//!
//! With an interval (exports whose metadata changes are answered before
//! their sync, `async_metadata`), the thread also syncs by itself when
//! that long has passed without a sync while the log has grown: what no
//! call asked to be synced is durable at most about that long later.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;
use tokio::sync::watch;

/// The name of the syncer thread.
pub(crate) const THREAD_NAME: &str = "nfs-log-sync";

/// Where the syncs stand, as published after each one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Progress {
    /// Syncs finished (they are numbered from 1).
    done: u64,
    /// The number of the last sync that failed, 0 if none has.
    last_failed: u64,
}

impl Progress {
    /// The outcome for a call holding `ticket`: `None` while its sync has
    /// not finished, then whether its change is durable. A failure in its
    /// own sync or any later one counts against it (a later one may have
    /// been the first to report a write-back error that also lost this
    /// change), so an answer is never more hopeful than the syncs were.
    pub(crate) fn outcome(&self, ticket: u64) -> Option<bool> {
        (self.done >= ticket).then_some(self.last_failed < ticket)
    }
}

/// The syncer thread and its state; dropping it stops the thread after
/// the sync of every ticket handed out has run.
pub(crate) struct LogSyncer {
    shared: Arc<Shared>,
    progress: watch::Receiver<Progress>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    state: Mutex<State>,
    wake: Condvar,
}

#[derive(Default)]
struct State {
    /// Syncs started so far.
    started: u64,
    /// The log position the latest started sync covers.
    covers: u64,
    /// The number of the last sync that failed, 0 if none has.
    last_failed: u64,
    /// The highest ticket handed out.
    wanted: u64,
    stop: bool,
}

impl LogSyncer {
    /// Starts the thread. `position` says how far the log is (it grows
    /// with every commit); `sync(p)` makes everything committed before the
    /// log reached `p` durable, or says why it could not. With `every`,
    /// the thread also syncs when that long has passed with no sync while
    /// the log grew past what the last one covered.
    pub(crate) fn start(
        position: impl Fn() -> u64 + Send + 'static,
        sync: impl Fn(u64) -> Result<(), String> + Send + 'static,
        every: Option<Duration>,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
        });
        let (publish, progress) = watch::channel(Progress::default());
        let mine = shared.clone();
        let thread = std::thread::Builder::new()
            .name(THREAD_NAME.into())
            .spawn(move || run(&mine, &position, &sync, &publish, every))?;
        Ok(Self {
            shared,
            progress,
            thread: Some(thread),
        })
    }

    /// A ticket for a change committed before this call: the number of
    /// the first sync that starts after it, which covers the change.
    pub(crate) fn request(&self) -> u64 {
        self.request_covering(u64::MAX)
    }

    /// A ticket for changes committed before the log reached `upto`: the
    /// latest sync started if it covers them (running, or finished and
    /// not failed), otherwise the first sync that starts after this call
    /// (a call after a failed sync tries again).
    pub(crate) fn request_covering(&self, upto: u64) -> u64 {
        let mut state = self.shared.state.lock();
        if state.started > state.last_failed && state.covers >= upto {
            return state.started;
        }
        let ticket = state.started + 1;
        state.wanted = ticket;
        drop(state);
        self.shared.wake.notify_one();
        ticket
    }

    /// Whether a sync has failed (the log is not trusted again until a
    /// restart, so changes must not be answered before a sync).
    pub(crate) fn has_failed(&self) -> bool {
        self.shared.state.lock().last_failed > 0
    }

    /// The syncs' progress, to wait on for tickets. Once the thread has
    /// stopped, waiting on it fails.
    pub(crate) fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.clone()
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        self.shared.state.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the NFS log sync thread panicked");
            }
        }
    }
}

fn run(
    shared: &Shared,
    position: &dyn Fn() -> u64,
    sync: &dyn Fn(u64) -> Result<(), String>,
    publish: &watch::Sender<Progress>,
    every: Option<Duration>,
) {
    let mut progress = Progress::default();
    loop {
        let (number, covers) = {
            let mut state = shared.state.lock();
            while state.wanted <= state.started && !state.stop {
                match every {
                    None => shared.wake.wait(&mut state),
                    // Quiet for `every`: sync what the log holds past the
                    // last sync, which no call may ever ask for (unless a
                    // sync failed: none will succeed before a restart).
                    Some(every) => {
                        if shared.wake.wait_for(&mut state, every).timed_out()
                            && state.last_failed == 0
                            && position() > state.covers
                        {
                            break;
                        }
                    }
                }
            }
            // Out of the wait without a ticket to sync: stopping, or (not
            // stopping) the background sync above.
            if state.wanted <= state.started && state.stop {
                return;
            }
            // Numbered before it starts: every ticket up to this number
            // was handed out after its change was committed, or for a
            // change before the position it covers, read here.
            state.started += 1;
            state.covers = position();
            (state.started, state.covers)
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| sync(covers)))
            .unwrap_or_else(|_| Err("the metadata log sync panicked".into()));
        progress.done = number;
        if let Err(e) = &outcome {
            tracing::error!(error = %e, sync = number, "metadata log sync failed");
            progress.last_failed = number;
            shared.state.lock().last_failed = number;
        }
        publish.send_replace(progress);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    /// Waits until the sync of `ticket` has finished; its outcome.
    async fn settled(progress: &mut watch::Receiver<Progress>, ticket: u64) -> bool {
        let p = progress
            .wait_for(|p| p.outcome(ticket).is_some())
            .await
            .expect("the syncer is running");
        p.outcome(ticket).expect("settled")
    }

    #[tokio::test]
    async fn every_ticket_is_settled_by_a_sync_that_started_after_it() {
        // "Commits" count up; sync number k (they run one at a time, so
        // in order) makes durable what was committed when it started,
        // recorded at index k - 1. Each ticket's own sync must cover its
        // commit.
        let committed = Arc::new(AtomicU64::new(0));
        let covered = Arc::new(parking_lot::Mutex::new(Vec::new()));
        let (c, d) = (committed.clone(), covered.clone());
        let position = move || c.load(Ordering::SeqCst);
        let syncer = LogSyncer::start(
            position,
            move |upto| {
                std::thread::yield_now();
                d.lock().push(upto);
                Ok(())
            },
            None,
        )
        .expect("start");
        let mut progress = syncer.progress();
        let mut tickets = Vec::new();
        for i in 0..200 {
            let mine = committed.fetch_add(1, Ordering::SeqCst) + 1;
            // Half ask for the next sync, half for one covering them.
            let ticket = if i % 2 == 0 {
                syncer.request()
            } else {
                syncer.request_covering(mine)
            };
            tickets.push((mine, ticket));
        }
        let numbers: Vec<u64> = tickets.iter().map(|t| t.1).collect();
        assert!(numbers.windows(2).all(|w| w[0] <= w[1]), "tickets go up");
        for (mine, ticket) in tickets {
            assert!(settled(&mut progress, ticket).await, "synced");
            let index = usize::try_from(ticket - 1).expect("small");
            let by_its_sync = covered.lock()[index];
            assert!(
                by_its_sync >= mine,
                "ticket {ticket} for commit {mine}: its sync covered only {by_its_sync}"
            );
        }
        let ran = covered.lock().len();
        assert!((1..=200).contains(&ran), "{ran} syncs");
        drop(syncer);
    }

    #[tokio::test]
    async fn a_change_the_running_sync_covers_takes_its_ticket_not_the_next() {
        let committed = Arc::new(AtomicU64::new(1));
        let c = committed.clone();
        let (started_tx, started) = std::sync::mpsc::channel();
        let (gate, gate_rx) = std::sync::mpsc::channel::<()>();
        let gate_rx = parking_lot::Mutex::new(gate_rx);
        let syncer = LogSyncer::start(
            move || c.load(Ordering::SeqCst),
            move |upto| {
                let _ = started_tx.send(upto);
                gate_rx.lock().recv().map_err(|e| e.to_string())
            },
            None,
        )
        .expect("start");
        let mut progress = syncer.progress();
        let first = syncer.request();
        assert_eq!(
            started.recv().expect("sync 1 started"),
            1,
            "it covers position 1"
        );
        // Sync 1 is running: a change before position 1 waits for it only.
        assert_eq!(syncer.request_covering(1), first);
        // One after it needs the next sync.
        committed.store(2, Ordering::SeqCst);
        let second = syncer.request_covering(2);
        assert_eq!(second, first + 1);
        assert_eq!(
            progress.borrow().outcome(first),
            None,
            "held until sync 1 ends"
        );
        gate.send(()).expect("open for sync 1");
        assert!(settled(&mut progress, first).await);
        assert_eq!(started.recv().expect("sync 2 started"), 2);
        gate.send(()).expect("open for sync 2");
        assert!(settled(&mut progress, second).await);
        // Covered by a finished sync: settled at once.
        let done = syncer.request_covering(2);
        assert_eq!(progress.borrow().outcome(done), Some(true));
        drop(gate);
        drop(syncer);
    }

    #[tokio::test]
    async fn a_failed_sync_fails_the_tickets_it_covered_and_not_later_ones() {
        let failing = Arc::new(AtomicBool::new(true));
        let f = failing.clone();
        let syncer = LogSyncer::start(
            || 1,
            move |_| {
                if f.load(Ordering::SeqCst) {
                    Err("disk gone".to_string())
                } else {
                    Ok(())
                }
            },
            None,
        )
        .expect("start");
        let mut progress = syncer.progress();
        let early = syncer.request();
        assert!(
            !settled(&mut progress, early).await,
            "a failed sync is no success"
        );
        // What the failed sync covered is tried again by the next one.
        let again = syncer.request_covering(1);
        assert!(again > early, "a failed sync is not reused");
        failing.store(false, Ordering::SeqCst);
        let late = syncer.request();
        assert!(late >= again);
        assert!(settled(&mut progress, late).await, "a later sync succeeded");
        // A ticket whose sync failed stays failed whatever came after.
        assert_eq!(progress.borrow().outcome(early), Some(false));
    }

    #[test]
    fn dropping_the_syncer_syncs_every_ticket_handed_out_then_stops() {
        let syncs = Arc::new(AtomicU64::new(0));
        let n = syncs.clone();
        let syncer = LogSyncer::start(
            || 1,
            move |_| {
                n.fetch_add(1, Ordering::SeqCst);
                Ok(())
            },
            None,
        )
        .expect("start");
        let mut progress = syncer.progress();
        let ticket = syncer.request();
        drop(syncer);
        assert_eq!(progress.borrow_and_update().outcome(ticket), Some(true));
        assert!(syncs.load(Ordering::SeqCst) >= 1);
        assert!(progress.has_changed().is_err(), "the thread has stopped");
    }

    #[test]
    fn with_an_interval_the_log_grown_past_the_last_sync_is_synced_unasked() {
        let committed = Arc::new(AtomicU64::new(0));
        let c = committed.clone();
        let (synced_tx, synced) = std::sync::mpsc::channel();
        let tx = parking_lot::Mutex::new(synced_tx);
        let syncer = LogSyncer::start(
            move || c.load(Ordering::SeqCst),
            move |upto| {
                let _ = tx.lock().send(upto);
                Ok(())
            },
            Some(Duration::from_millis(20)),
        )
        .expect("start");
        // Nothing committed: quiet intervals pass without a sync.
        let quiet = synced.recv_timeout(Duration::from_millis(100));
        assert!(quiet.is_err(), "synced {quiet:?} with nothing to sync");
        // Commits nobody asks a sync for are synced within an interval or so.
        committed.store(3, Ordering::SeqCst);
        let upto = synced
            .recv_timeout(Duration::from_secs(10))
            .expect("a sync, unasked");
        assert_eq!(upto, 3, "it covers what the log holds");
        // And only once, until the log grows again.
        let again = synced.recv_timeout(Duration::from_millis(100));
        assert!(again.is_err(), "synced {again:?} again with nothing new");
        committed.store(4, Ordering::SeqCst);
        assert_eq!(synced.recv_timeout(Duration::from_secs(10)), Ok(4));
        // Asked-for syncs still run, and stopping is still prompt.
        let mut progress = syncer.progress();
        let ticket = syncer.request();
        drop(syncer);
        assert_eq!(progress.borrow_and_update().outcome(ticket), Some(true));
    }

    #[test]
    fn an_outcome_waits_for_its_own_sync_and_counts_later_failures() {
        let p = Progress {
            done: 5,
            last_failed: 0,
        };
        assert_eq!(p.outcome(5), Some(true));
        assert_eq!(p.outcome(6), None);
        let p = Progress {
            done: 7,
            last_failed: 6,
        };
        assert_eq!(p.outcome(5), Some(false), "a later sync failed");
        assert_eq!(p.outcome(6), Some(false));
        assert_eq!(p.outcome(7), Some(true));
    }
}
