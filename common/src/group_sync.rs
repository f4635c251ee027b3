//! Group commit for an append-only log: many callers, one fsync at a time.
//!
//! Each caller wants the log durable up to its own position. One of them
//! runs the sync, covering everything appended before it started; callers
//! arriving meanwhile sleep until it ends and usually find themselves
//! covered. Those that are not elect the next syncer among themselves.
//!
//! Waiting sleeps on a condition variable. The earlier way, holding a mutex
//! across the fsync, made every waiter spin and `sched_yield` on that
//! mutex before sleeping (its spinning suits a lock held for nanoseconds,
//! not for a 0.3 ms flush): `perf` counted six `sched_yield`s per small
//! file created over NFS, each one a context switch on a busy 2-core
//! machine.

use parking_lot::{Condvar, Mutex};

/// Where a log is durable up to, and who is syncing it.
#[derive(Debug, Default)]
pub struct GroupSync {
    state: Mutex<State>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// Every position below this one is durable.
    reached: u64,
    /// A caller is running a sync.
    running: bool,
    /// Callers asleep until it ends.
    waiting: usize,
}

impl GroupSync {
    /// A log durable below `reached`.
    pub fn new(reached: u64) -> Self {
        Self {
            state: Mutex::new(State {
                reached,
                ..State::default()
            }),
            done: Condvar::new(),
        }
    }

    /// Every position below this one is durable.
    pub fn reached(&self) -> u64 {
        self.state.lock().reached
    }

    /// Callers asleep until the running sync ends.
    pub fn waiting(&self) -> usize {
        self.state.lock().waiting
    }

    /// Records that everything below `reached` is durable by other means
    /// (a log reopened after recovery). The mark never moves back.
    pub fn mark_reached(&self, reached: u64) {
        let mut st = self.state.lock();
        st.reached = st.reached.max(reached);
    }

    /// Makes every position below `target` durable. If that is already so,
    /// returns at once; if another caller is syncing, waits for it to end
    /// and looks again; otherwise runs `sync`, which makes the log durable
    /// and returns the position it covered (read before it started the
    /// flush). An error is returned to this caller only: the callers still
    /// waiting elect another syncer, and `sync` must refuse at once if the
    /// log can no longer be trusted.
    pub fn sync_to<E>(&self, target: u64, sync: impl FnOnce() -> Result<u64, E>) -> Result<(), E> {
        let mut st = self.state.lock();
        loop {
            if st.reached >= target {
                return Ok(());
            }
            if !st.running {
                break;
            }
            st.waiting += 1;
            self.done.wait(&mut st);
            st.waiting -= 1;
        }
        st.running = true;
        drop(st);
        // Ends the run even if `sync` panics, or the waiters sleep forever.
        let mut run = Running {
            group: self,
            covered: None,
        };
        let covered = sync()?;
        debug_assert!(
            covered >= target,
            "a sync covered {covered}, below the {target} it was run for"
        );
        run.covered = Some(covered);
        Ok(())
    }
}

/// The run of one sync; ending it wakes every waiter.
struct Running<'a> {
    group: &'a GroupSync,
    covered: Option<u64>,
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut st = self.group.state.lock();
        st.running = false;
        if let Some(c) = self.covered {
            st.reached = st.reached.max(c);
        }
        drop(st);
        self.group.done.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{mpsc, Arc};
    use std::thread;
    use std::time::{Duration, Instant};

    #[test]
    fn a_covered_target_needs_no_sync_and_the_mark_only_rises() {
        let g = GroupSync::new(5);
        let r: Result<(), ()> = g.sync_to(5, || panic!("5 is already durable"));
        r.expect("covered");
        g.sync_to(6, || Ok::<_, ()>(9)).expect("sync");
        assert_eq!(g.reached(), 9, "the sync covered more than asked");
        g.mark_reached(3);
        assert_eq!(g.reached(), 9, "never moves back");
        g.mark_reached(20);
        assert_eq!(g.reached(), 20);
    }

    type Outcome<E> = thread::JoinHandle<Result<(), E>>;

    /// Starts a caller whose sync to `target` is held mid-flush until the
    /// returned sender is used, then ends as `flush` says. Returns once
    /// the flush has started.
    fn held_sync<E: Send + 'static>(
        g: &Arc<GroupSync>,
        target: u64,
        flush: impl FnOnce() -> Result<u64, E> + Send + 'static,
    ) -> (Outcome<E>, mpsc::Sender<()>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let g = g.clone();
        let leader = thread::spawn(move || {
            g.sync_to(target, || {
                started_tx.send(()).expect("test alive");
                release_rx.recv().expect("test alive");
                flush()
            })
        });
        started.recv().expect("the held sync started");
        (leader, release)
    }

    /// Waits (bounded) until `n` callers sleep behind the running sync.
    fn await_sleepers(g: &GroupSync, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while g.waiting() < n {
            assert!(Instant::now() < deadline, "{n} callers never slept");
            thread::yield_now();
        }
    }

    #[test]
    fn callers_arriving_during_a_sync_wait_for_it_instead_of_syncing_again() {
        let g = Arc::new(GroupSync::new(0));
        let syncs = Arc::new(AtomicU64::new(0));
        let counted = syncs.clone();
        // Everything the callers below ask for was appended before this
        // flush started.
        let (leader, release) = held_sync(&g, 1, move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, ()>(10)
        });
        let waiters: Vec<_> = (2..=10)
            .map(|target| {
                let (g, syncs) = (g.clone(), syncs.clone());
                thread::spawn(move || {
                    g.sync_to(target, || {
                        syncs.fetch_add(1, Ordering::SeqCst);
                        Ok::<_, ()>(target)
                    })
                })
            })
            .collect();
        await_sleepers(&g, 9);
        assert_eq!(syncs.load(Ordering::SeqCst), 0, "none synced meanwhile");
        release.send(()).expect("leader waiting");
        leader.join().expect("leader").expect("leader synced");
        for w in waiters {
            w.join().expect("waiter").expect("covered");
        }
        assert_eq!(syncs.load(Ordering::SeqCst), 1, "one flush covered all");
        assert_eq!(g.reached(), 10);
    }

    #[test]
    fn a_waiter_not_covered_runs_the_next_sync() {
        let g = Arc::new(GroupSync::new(0));
        let (leader, release) = held_sync(&g, 1, || Ok::<_, ()>(1));
        let late = {
            let g = g.clone();
            thread::spawn(move || g.sync_to(7, || Ok::<_, ()>(7)))
        };
        await_sleepers(&g, 1);
        release.send(()).expect("leader waiting");
        leader.join().expect("leader").expect("leader synced");
        late.join().expect("late").expect("late synced");
        assert_eq!(g.reached(), 7);
    }

    #[test]
    fn a_failed_sync_wakes_the_waiters_and_the_next_syncer_gets_its_own_error() {
        let g = Arc::new(GroupSync::new(0));
        // As the real users do: a failed flush marks the log untrusted,
        // and every later sync refuses at once.
        let broken = Arc::new(AtomicBool::new(false));
        let breaks = broken.clone();
        let (leader, release) = held_sync(&g, 1, move || {
            breaks.store(true, Ordering::SeqCst);
            Err("disk gone")
        });
        let waiter = {
            let g = g.clone();
            thread::spawn(move || {
                g.sync_to(2, || {
                    if broken.load(Ordering::SeqCst) {
                        return Err("log untrusted");
                    }
                    Ok(2)
                })
            })
        };
        await_sleepers(&g, 1);
        release.send(()).expect("leader waiting");
        assert_eq!(leader.join().expect("leader"), Err("disk gone"));
        assert_eq!(
            waiter.join().expect("waiter woke"),
            Err("log untrusted"),
            "not covered, the waiter synced itself and got the refusal"
        );
        assert_eq!(g.reached(), 0, "no failed sync moves the mark");
    }

    #[test]
    fn a_panicking_sync_ends_its_run() {
        let g = Arc::new(GroupSync::new(0));
        let panicked = {
            let g = g.clone();
            thread::spawn(move || g.sync_to(3, || -> Result<u64, ()> { panic!("bug") }))
        };
        assert!(panicked.join().is_err());
        assert!(!g.state.lock().running, "the run ended with the panic");
        assert_eq!(g.reached(), 0);
        g.sync_to(3, || Ok::<_, ()>(3))
            .expect("the next caller syncs");
        assert_eq!(g.reached(), 3);
    }
}
