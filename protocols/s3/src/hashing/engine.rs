//! The hashing thread: takes runs of whole MD5 blocks from any number of
//! uploads and advances up to eight of them together in SIMD lanes.
//!
//! Each job is a stream's state and its blocks. The thread keeps up to
//! [`LANES`] jobs open and runs them in lockstep, [`ROUND`] blocks (16 KiB) at
//! a time or until the shortest ends, so a job that arrives while others are
//! running joins at the next round instead of waiting for them to finish. A
//! lone job is hashed by the scalar code (one lane of eight would cost as
//! much as eight); two to four use the four-lane function, more the
//! eight-lane one, the unused lanes hashing zeros. One thread per four
//! cores (at least one): a thread hashes 2-2.6 GB/s in eight lanes here,
//! four single streams' worth of cores.

use super::{compress_scalar, lanes};
use bytes::Bytes;
use parking_lot::{Condvar, Mutex};
use std::collections::VecDeque;
use std::sync::OnceLock;
use tokio::sync::oneshot;

/// Streams advanced together.
const LANES: usize = 2 * lanes::GROUP;

/// Blocks per lockstep round.
const ROUND: usize = 256;

static ZEROS: [u8; ROUND * 64] = [0; ROUND * 64];

struct Job {
    state: [u32; 4],
    blocks: Bytes,
    done: oneshot::Sender<[u32; 4]>,
}

#[derive(Default)]
struct Engine {
    queue: Mutex<VecDeque<Job>>,
    wake: Condvar,
}

/// The state after `blocks` (a whole number of 64-byte blocks) from `state`.
pub(super) async fn hash(state: [u32; 4], blocks: Bytes) -> [u32; 4] {
    let Some(engine) = engine() else {
        return local(state, blocks).await;
    };
    let (done, result) = oneshot::channel();
    let keep = blocks.clone();
    engine.queue.lock().push_back(Job {
        state,
        blocks,
        done,
    });
    engine.wake.notify_one();
    match result.await {
        Ok(s) => s,
        // The job was dropped (a round panicked, which a well-formed job
        // cannot make happen): hash it without the thread.
        Err(_) => local(state, keep).await,
    }
}

/// Hashes on the blocking pool (a MiB takes ~2 ms: not on a runtime worker).
async fn local(state: [u32; 4], blocks: Bytes) -> [u32; 4] {
    let scalar = move || {
        let mut s = state;
        compress_scalar(&mut s, &blocks);
        s
    };
    match tokio::task::spawn_blocking(scalar.clone()).await {
        Ok(s) => s,
        Err(_) => scalar(),
    }
}

/// The engine, its threads started on first use; `None` if no thread could
/// be started.
fn engine() -> Option<&'static Engine> {
    static ENGINE: OnceLock<Option<&'static Engine>> = OnceLock::new();
    *ENGINE.get_or_init(|| {
        let engine: &'static Engine = Box::leak(Box::default());
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut started = 0;
        for n in 0..(cores / 4).max(1) {
            match std::thread::Builder::new()
                .name(format!("s3-md5-{n}"))
                .spawn(move || run(engine))
            {
                Ok(_) => started += 1,
                Err(e) => tracing::warn!(error = %e, "cannot start an MD5 hashing thread"),
            }
        }
        (started > 0).then_some(engine)
    })
}

/// One job being hashed: how far it has got.
struct Lane {
    job: Job,
    at: usize,
}

impl Lane {
    fn left(&self) -> usize {
        (self.job.blocks.len() - self.at) / 64
    }
}

fn run(engine: &'static Engine) {
    let mut open: Vec<Lane> = Vec::with_capacity(LANES);
    loop {
        {
            let mut queue = engine.queue.lock();
            while open.is_empty() && queue.is_empty() {
                engine.wake.wait(&mut queue);
            }
            while open.len() < LANES {
                let Some(job) = queue.pop_front() else { break };
                open.push(Lane { job, at: 0 });
            }
        }
        let round = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| advance(&mut open)));
        if round.is_err() {
            // Cannot happen with well-formed jobs; if it does, the open
            // jobs' callers get their senders dropped and hash themselves.
            tracing::error!("an MD5 hashing round panicked");
            open.clear();
            continue;
        }
        let mut i = 0;
        while i < open.len() {
            if open[i].left() == 0 {
                let lane = open.swap_remove(i);
                // The uploader may have gone away; its result is not needed.
                let _ = lane.job.done.send(lane.job.state);
            } else {
                i += 1;
            }
        }
    }
}

/// Runs one lockstep round over the open jobs: [`ROUND`] blocks, or up to
/// the end of the shortest.
fn advance(open: &mut [Lane]) {
    let n = open.iter().map(Lane::left).min().unwrap_or(0).min(ROUND);
    let len = n * 64;
    match open.len() {
        0 => {}
        1 => {
            let lane = &mut open[0];
            compress_scalar(
                &mut lane.job.state,
                &lane.job.blocks[lane.at..lane.at + len],
            );
        }
        k => {
            let mut states = [[0u32; 4]; LANES];
            let mut data: [&[u8]; LANES] = [&ZEROS[..len]; LANES];
            for (i, lane) in open.iter().enumerate() {
                states[i] = lane.job.state;
                data[i] = &lane.job.blocks[lane.at..lane.at + len];
            }
            if k <= lanes::GROUP {
                lanes::compress::<1>(&mut states[..lanes::GROUP], &data[..lanes::GROUP]);
            } else {
                lanes::compress::<2>(&mut states, &data);
            }
            for (lane, state) in open.iter_mut().zip(states) {
                lane.job.state = state;
            }
        }
    }
    for lane in open.iter_mut() {
        lane.at += len;
    }
}
