//! Group commit for calls answered on the connection's task.
//!
//! A CREATE (or SETATTR, MKDIR, …) run there commits its transaction inside
//! [`nitrofs_core_fs::deferring_sync`] and must not be answered before
//! the metadata log is synced. Parking the executor thread on that fsync
//! would stall every connection it serves, and a hop per call to the
//! blocking pool costs more thread switches than the call itself, so the
//! call asks this syncer instead and its reply waits on the answer: one
//! thread runs one log sync at a time, each covering every request made
//! before it started, and wakes their tasks.

use parking_lot::{Condvar, Mutex};
use std::sync::Arc;
use std::thread::JoinHandle;
use tokio::sync::oneshot;

/// The outcome of a sync, sent to every request it covered.
pub(crate) type Synced = Result<(), String>;

/// The syncer thread and its queue; dropping it stops the thread after
/// it answered every request.
pub(crate) struct LogSyncer {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
}

#[derive(Default)]
struct Queue {
    waiting: Vec<oneshot::Sender<Synced>>,
    stop: bool,
}

impl LogSyncer {
    /// Starts the thread; `sync` makes everything committed before the
    /// call durable.
    pub(crate) fn start(sync: impl Fn() -> Synced + Send + 'static) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
        });
        let mine = shared.clone();
        let thread = std::thread::Builder::new()
            .name("nfs-log-sync".into())
            .spawn(move || run(&mine, &sync))?;
        Ok(Self {
            shared,
            thread: Some(thread),
        })
    }

    /// Asks for a sync covering everything committed before this call;
    /// the receiver gets its outcome.
    pub(crate) fn request(&self) -> oneshot::Receiver<Synced> {
        let (tx, rx) = oneshot::channel();
        self.shared.queue.lock().waiting.push(tx);
        self.shared.wake.notify_one();
        rx
    }
}

impl Drop for LogSyncer {
    fn drop(&mut self) {
        self.shared.queue.lock().stop = true;
        self.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            if t.join().is_err() {
                tracing::error!("the NFS log sync thread panicked");
            }
        }
    }
}

fn run(shared: &Shared, sync: &dyn Fn() -> Synced) {
    loop {
        let batch = {
            let mut q = shared.queue.lock();
            while q.waiting.is_empty() && !q.stop {
                shared.wake.wait(&mut q);
            }
            if q.waiting.is_empty() {
                return;
            }
            // Taken before the sync starts: every request in the batch was
            // made after its commit, so this sync covers them all.
            std::mem::take(&mut q.waiting)
        };
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(sync))
            .unwrap_or_else(|_| Err("the metadata log sync panicked".into()));
        if let Err(e) = &outcome {
            tracing::error!(error = %e, calls = batch.len(), "metadata log sync failed");
        }
        for waiter in batch {
            // A dropped receiver: its connection closed meanwhile.
            let _ = waiter.send(outcome.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};

    #[tokio::test]
    async fn every_request_is_answered_by_a_sync_that_started_after_it() {
        // "Commits" count up; a sync makes durable what was committed
        // when it started. Each request checks its commit is covered.
        let committed = Arc::new(AtomicU64::new(0));
        let durable = Arc::new(AtomicU64::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let (c, d, n) = (committed.clone(), durable.clone(), syncs.clone());
        let syncer = LogSyncer::start(move || {
            let upto = c.load(Ordering::SeqCst);
            std::thread::yield_now();
            d.fetch_max(upto, Ordering::SeqCst);
            n.fetch_add(1, Ordering::SeqCst);
            Ok(())
        })
        .expect("start");
        let mut waits = Vec::new();
        for _ in 0..200 {
            let mine = committed.fetch_add(1, Ordering::SeqCst) + 1;
            waits.push((mine, syncer.request()));
        }
        for (mine, rx) in waits {
            rx.await.expect("answered").expect("synced");
            assert!(
                durable.load(Ordering::SeqCst) >= mine,
                "answered before its sync"
            );
        }
        let ran = syncs.load(Ordering::SeqCst);
        assert!((1..=200).contains(&ran), "{ran} syncs");
        drop(syncer);
    }

    #[tokio::test]
    async fn a_failed_sync_reaches_the_requests_it_covered() {
        let syncer = LogSyncer::start(|| Err("disk gone".to_string())).expect("start");
        let got = syncer.request().await.expect("answered");
        assert_eq!(got, Err("disk gone".to_string()));
    }

    #[test]
    fn dropping_the_syncer_answers_what_was_asked_then_stops() {
        let syncer = LogSyncer::start(|| Ok(())).expect("start");
        let mut rx = syncer.request();
        drop(syncer);
        assert_eq!(
            rx.try_recv().expect("answered before the thread ended"),
            Ok(())
        );
    }
}
