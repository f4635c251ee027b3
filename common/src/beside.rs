//! Blocking calls run beside the caller's own work on parked threads.
//!
//! A COMMIT flushes a chunk file, its directory and the metadata log: three
//! fsyncs on three files, each waiting for the disk. Run one after the
//! other they cost their sum; run side by side, the slowest one (and the
//! file system may merge them into one journal commit). Spawning a thread
//! for each such call cost a `clone` and a stack per COMMIT (strace showed
//! a new thread for every small file created over NFS), so the calls go to
//! a pool of threads that park between jobs and leave after a while idle.
//!
//! [`run`] queues a job and returns at once; [`Pending::wait`] returns its
//! result. A job that no pool thread has started by the time its caller
//! waits is run by the caller itself, so a job never waits for a thread
//! that cannot be had (the pool is full, or the OS refused a new thread):
//! the worst case is the caller's own sequential order.

use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::Duration;

/// The most threads the pool keeps; callers beyond that run their jobs
/// themselves when they wait.
const MAX_THREADS: usize = 32;

/// How long a thread stays parked without work before it leaves.
const IDLE_EXIT: Duration = Duration::from_secs(10);

type Job = Box<dyn FnOnce() + Send>;

/// A job that either a pool thread or its waiter takes, whoever comes first.
type Cell = Arc<Mutex<Option<Job>>>;

#[derive(Default)]
struct Queue {
    jobs: VecDeque<Cell>,
    /// Threads parked waiting for a job.
    idle: usize,
    /// Threads alive.
    threads: usize,
}

#[derive(Default)]
struct Pool {
    queue: Mutex<Queue>,
    work: Condvar,
}

fn pool() -> &'static Pool {
    static POOL: OnceLock<Pool> = OnceLock::new();
    POOL.get_or_init(Pool::default)
}

impl Pool {
    fn worker(&'static self) {
        let mut q = self.queue.lock();
        loop {
            if let Some(cell) = q.jobs.pop_front() {
                drop(q);
                let job = cell.lock().take();
                if let Some(job) = job {
                    job();
                }
                q = self.queue.lock();
                continue;
            }
            q.idle += 1;
            let timed_out = self.work.wait_for(&mut q, IDLE_EXIT).timed_out();
            q.idle -= 1;
            if timed_out && q.jobs.is_empty() {
                q.threads -= 1;
                return;
            }
        }
    }
}

/// What a job leaves for its waiter: its value, or the panic it raised.
struct Outcome<T> {
    value: Mutex<Option<thread::Result<T>>>,
    done: Condvar,
}

/// A job queued by [`run`].
#[must_use = "a job's result (and its errors) arrive through `wait`"]
pub struct Pending<T> {
    cell: Cell,
    outcome: Arc<Outcome<T>>,
}

/// Queues `job` for a pool thread and returns without waiting for it.
pub fn run<T, F>(job: F) -> Pending<T>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let outcome = Arc::new(Outcome {
        value: Mutex::new(None),
        done: Condvar::new(),
    });
    let out = Arc::clone(&outcome);
    let cell: Cell = Arc::new(Mutex::new(Some(Box::new(move || {
        let r = panic::catch_unwind(AssertUnwindSafe(job));
        *out.value.lock() = Some(r);
        out.done.notify_all();
    }))));
    let p = pool();
    let spawn = {
        let mut q = p.queue.lock();
        q.jobs.push_back(Arc::clone(&cell));
        let spawn = q.idle < q.jobs.len() && q.threads < MAX_THREADS;
        if spawn {
            q.threads += 1;
        } else {
            p.work.notify_one();
        }
        spawn
    };
    if spawn
        && thread::Builder::new()
            .name("nitrofs-beside".into())
            .spawn(|| pool().worker())
            .is_err()
    {
        // No thread: the waiter runs the job itself.
        p.queue.lock().threads -= 1;
    }
    Pending { cell, outcome }
}

impl<T> Pending<T> {
    /// The job's result, running the job here if no pool thread has
    /// started it. A panic in the job is raised again here.
    pub fn wait(self) -> T {
        let job = self.cell.lock().take();
        if let Some(job) = job {
            job();
        }
        let mut value = self.outcome.value.lock();
        loop {
            if let Some(r) = value.take() {
                return r.unwrap_or_else(|p| panic::resume_unwind(p));
            }
            self.outcome.done.wait(&mut value);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn a_job_returns_its_value_to_the_waiter() {
        let p = run(|| 6 * 7);
        assert_eq!(p.wait(), 42);
    }

    #[test]
    fn jobs_run_side_by_side_with_their_caller() {
        // The job reports that it started while its caller has not waited
        // yet: it runs on a pool thread, not (later) on the caller's.
        let (started, seen) = std::sync::mpsc::channel();
        let p = run(move || {
            let _ = started.send(());
            thread::current().id()
        });
        assert!(seen.recv_timeout(Duration::from_secs(30)).is_ok());
        assert_ne!(p.wait(), thread::current().id());
    }

    #[test]
    fn every_job_runs_exactly_once_under_many_callers() {
        let ran = Arc::new(AtomicUsize::new(0));
        thread::scope(|s| {
            for _ in 0..8 {
                let ran = Arc::clone(&ran);
                s.spawn(move || {
                    for i in 0..200usize {
                        let r = Arc::clone(&ran);
                        let p = run(move || {
                            r.fetch_add(1, Ordering::SeqCst);
                            i
                        });
                        assert_eq!(p.wait(), i);
                    }
                });
            }
        });
        assert_eq!(ran.load(Ordering::SeqCst), 8 * 200);
    }

    #[test]
    fn a_panic_in_a_job_reaches_its_waiter_and_spares_the_pool() {
        let p = run(|| -> u32 { panic!("job failed") });
        let caught = panic::catch_unwind(AssertUnwindSafe(|| p.wait()));
        assert!(caught.is_err());
        assert_eq!(run(|| 1).wait(), 1);
    }
}
