//! Duplicate request cache: the replies of calls that are not idempotent
//! (CREATE, REMOVE, RENAME, …), kept so that a client that sends one
//! again, with the same xid, gets the answer the first one got instead of
//! running it twice. A client retransmits when it saw no reply: after a
//! timeout, or on a new connection when the old one closed (a stall, a
//! reset, a restart of its side) with replies in flight. Run twice, a
//! CREATE GUARDED answers EXIST and a REMOVE NOENT for the client's own
//! change.
//!
//! A call is recognised by its client's address (not the port: a new
//! connection has a new one), its xid, its procedure and a hash of the
//! whole record. A reply is kept only once it has been sent and its change
//! is durable, so a replayed answer never promises more than the first
//! one did; a call whose answer was not durable (NFS3ERR_IO after a failed
//! log sync) or never sent is forgotten, and its retransmission runs
//! again. A retransmission that arrives while its call is still running
//! is dropped: the client sends it again later. Linux knfsd keeps such a
//! cache for the same procedures.

use parking_lot::Mutex;
use std::collections::hash_map::{DefaultHasher, Entry};
use std::collections::{HashMap, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

/// NFSv3 procedures whose replies are kept: SETATTR, CREATE, MKDIR,
/// SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK.
pub(crate) const CACHED_PROCS: [u32; 9] = [2, 8, 9, 10, 11, 12, 13, 14, 15];

/// Replies kept at most (the oldest go first).
pub(crate) const CAPACITY: usize = 8192;

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
    pub(crate) fn new(peer: IpAddr, xid: u32, proc_num: u32, record: &[u8]) -> Self {
        let mut h = DefaultHasher::new();
        record.hash(&mut h);
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
