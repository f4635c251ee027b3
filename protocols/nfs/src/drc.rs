//! Duplicate request cache: the replies of calls that are not idempotent
//! (CREATE, REMOVE, RENAME, …), kept so that a client that sends one
//! again, with the same xid, gets the answer the first one got instead of
//! running it twice. A client retransmits when it saw no reply: after a
//! timeout, or on a new connection when the old one closed (a stall, a
//! reset, a restart of its side) with replies in flight. Run twice, a
//! CREATE GUARDED answers EXIST and a REMOVE NOENT for the client's own
//! change.
//!
//! A call is recognised by its client's address (not the port: a client
//! such as libnfs reconnects from a new one; Linux knfsd keys on the port
//! too, as the kernel client reuses its own), its xid, its procedure and a
//! hash of the whole record (credentials included). A reply is kept once
//! it is final: when produced if its change was synced by then (or, on an
//! `async_metadata` export, was answered without waiting for its sync),
//! else once the log sync it waits for succeeds, whether or not it reached the
//! client (a connection that closed first is settled after it). Answers a
//! retry could change are not kept, and their calls are forgotten: a
//! failed sync's NFS3ERR_IO, SERVERFAULT, JUKEBOX, an RPC-level failure.
//! A retransmission that arrives while its call is still running (its
//! sync not yet done) is dropped: the client sends it again later, and
//! then gets the kept reply. Linux knfsd keeps such a cache for the same
//! procedures.

use parking_lot::Mutex;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// NFSv3 procedures whose replies are kept: SETATTR, CREATE, MKDIR,
/// SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK.
pub(crate) const CACHED_PROCS: [u32; 9] = [2, 8, 9, 10, 11, 12, 13, 14, 15];

/// Replies kept at most (the oldest go first): about 20 MB of replies,
/// and at 15,000 CREATEs a second the last four seconds of them.
pub(crate) const CAPACITY: usize = 65_536;

/// Bytes of a record hashed for its key: more than a SYMLINK with a
/// 4 KiB target and its header.
const HASHED: usize = 8192;

/// One call as a retransmission of it would look.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    peer: IpAddr,
    xid: u32,
    proc_num: u32,
    len: usize,
    digest: u64,
}

impl Key {
    /// The key of `record`, an NFS call of `proc_num` with `xid`, from `peer`.
    /// At most [`HASHED`] bytes are hashed (with the length): the cached
    /// procedures' calls are far shorter, and a garbage one costs no more.
    pub(crate) fn new(peer: IpAddr, xid: u32, proc_num: u32, record: &[u8]) -> Self {
        let mut h = DefaultHasher::new();
        record[..record.len().min(HASHED)].hash(&mut h);
        Self {
            peer,
            xid,
            proc_num,
            len: record.len(),
            digest: h.finish(),
        }
    }
}

enum State {
    Running,
    /// The reply as sent (its header carries the xid, so it is sent again
    /// byte for byte).
    Answered(Arc<[u8]>),
}

/// What to do with a call.
pub(crate) enum Begin {
    /// A new call: run it, and hand its reply to the slot.
    Run(Slot),
    /// Sent before: send this reply again.
    Replay(Arc<[u8]>),
    /// The same call is still running: drop this copy.
    Running,
}

#[derive(Default)]
struct Inner {
    calls: HashMap<Key, State>,
    /// Answered calls, oldest first (running ones are not evicted).
    answered: VecDeque<Key>,
}

/// The cache, shared by every connection of a server.
#[derive(Default)]
pub(crate) struct Drc {
    inner: Mutex<Inner>,
}

impl Drc {
    /// Looks `key` up, and marks it running if it is new.
    pub(crate) fn begin(self: &Arc<Self>, key: Key) -> Begin {
        let mut g = self.inner.lock();
        match g.calls.entry(key) {
            Entry::Occupied(e) => match e.get() {
                State::Running => Begin::Running,
                State::Answered(reply) => Begin::Replay(Arc::clone(reply)),
            },
            Entry::Vacant(e) => {
                e.insert(State::Running);
                Begin::Run(Slot {
                    drc: Arc::clone(self),
                    key,
                    done: false,
                })
            }
        }
    }

    fn answered(&self, key: Key, reply: Arc<[u8]>) {
        let mut g = self.inner.lock();
        g.calls.insert(key, State::Answered(reply));
        g.answered.push_back(key);
        while g.answered.len() > CAPACITY {
            if let Some(old) = g.answered.pop_front() {
                g.calls.remove(&old);
            }
        }
    }

    fn forget(&self, key: Key) {
        let mut g = self.inner.lock();
        if matches!(g.calls.get(&key), Some(State::Running)) {
            g.calls.remove(&key);
        }
    }

    /// Calls known (running or answered), for tests.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.inner.lock().calls.len()
    }
}

/// A running call's place in the cache. [`Slot::answered`] keeps its
/// reply; dropped without that (the reply was not durable, or never
/// sent), the call is forgotten and a retransmission runs again.
pub(crate) struct Slot {
    drc: Arc<Drc>,
    key: Key,
    done: bool,
}

impl Slot {
    /// The call's reply was sent and its change is durable.
    pub(crate) fn answered(mut self, reply: &[u8]) {
        self.done = true;
        self.drc.answered(self.key, Arc::from(reply));
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if !self.done {
            self.drc.forget(self.key);
        }
    }
}

/// Whether an NFS reply (its RPC header and results) is an answer that
/// running the call again would give too: accepted with SUCCESS, and an
/// NFS status other than a transient failure.
pub(crate) fn is_final(head: &[u8]) -> bool {
    const IO: u32 = 5;
    const SERVERFAULT: u32 = 10006;
    const JUKEBOX: u32 = 10008;
    let word = |at: usize| {
        head.get(at..at + 4)
            .and_then(|w| <[u8; 4]>::try_from(w).ok())
            .map(u32::from_be_bytes)
    };
    // xid, REPLY, MSG_ACCEPTED, the verifier (flavor, length, body).
    if word(8) != Some(0) {
        return false;
    }
    let Some(verf_len) = word(16).and_then(|n| usize::try_from(n).ok()) else {
        return false;
    };
    let at = 20 + verf_len.div_ceil(4) * 4;
    word(at) == Some(0) && word(at + 4).is_some_and(|st| ![IO, SERVERFAULT, JUKEBOX].contains(&st))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32, record: &[u8]) -> Key {
        Key::new(IpAddr::from([127, 0, 0, 1]), xid, 8, record)
    }

    #[test]
    fn a_call_runs_once_and_its_retransmissions_replay_or_wait() {
        let drc = Arc::new(Drc::default());
        let Begin::Run(slot) = drc.begin(key(1, b"create f")) else {
            panic!("a new call runs");
        };
        assert!(matches!(drc.begin(key(1, b"create f")), Begin::Running));
        // Another xid, or other bytes under the same xid, is another call.
        assert!(matches!(drc.begin(key(2, b"create f")), Begin::Run(_)));
        assert!(matches!(drc.begin(key(1, b"create g")), Begin::Run(_)));
        slot.answered(b"reply");
        match drc.begin(key(1, b"create f")) {
            Begin::Replay(r) => assert_eq!(&r[..], b"reply"),
            _ => panic!("an answered call replays"),
        }
        // The two dropped slots were forgotten.
        assert_eq!(drc.len(), 1);
    }

    /// An accepted reply with `verf` bytes of verifier and `status`.
    fn reply(verf: &[u8], status: u32) -> Vec<u8> {
        let mut r = Vec::new();
        for w in [7u32, 1, 0, 0, verf.len() as u32] {
            r.extend_from_slice(&w.to_be_bytes());
        }
        r.extend_from_slice(verf);
        r.resize(r.len().div_ceil(4) * 4, 0);
        r.extend_from_slice(&0u32.to_be_bytes()); // SUCCESS
        r.extend_from_slice(&status.to_be_bytes());
        r
    }

    #[test]
    fn only_answers_a_retry_would_give_too_are_final() {
        assert!(is_final(&reply(&[], 0)), "NFS3_OK");
        assert!(is_final(&reply(&[], 17)), "NFS3ERR_EXIST");
        assert!(is_final(&reply(&[1, 2, 3], 2)), "a verifier is skipped");
        for transient in [5, 10006, 10008] {
            assert!(!is_final(&reply(&[], transient)), "{transient}");
        }
        let mut system_err = reply(&[], 0);
        system_err[20..24].copy_from_slice(&5u32.to_be_bytes());
        assert!(!is_final(&system_err), "SYSTEM_ERR");
        let mut denied = reply(&[], 0);
        denied[8..12].copy_from_slice(&1u32.to_be_bytes());
        assert!(!is_final(&denied), "MSG_DENIED");
        assert!(!is_final(&[0; 10]), "too short");
    }

    #[test]
    fn a_call_not_answered_is_forgotten_and_runs_again() {
        let drc = Arc::new(Drc::default());
        let Begin::Run(slot) = drc.begin(key(1, b"remove f")) else {
            panic!("a new call runs");
        };
        drop(slot);
        assert!(matches!(drc.begin(key(1, b"remove f")), Begin::Run(_)));
    }

    #[test]
    fn the_oldest_answers_go_first_and_running_calls_stay() {
        let drc = Arc::new(Drc::default());
        let Begin::Run(running) = drc.begin(key(0, b"slow")) else {
            panic!("runs");
        };
        for xid in 1..=(CAPACITY as u32 + 10) {
            let Begin::Run(slot) = drc.begin(key(xid, b"x")) else {
                panic!("runs");
            };
            slot.answered(b"ok");
        }
        assert!(matches!(drc.begin(key(1, b"x")), Begin::Run(_)), "evicted");
        let last = CAPACITY as u32 + 10;
        assert!(matches!(drc.begin(key(last, b"x")), Begin::Replay(_)));
        assert!(matches!(drc.begin(key(0, b"slow")), Begin::Running));
        drop(running);
    }
}
