//! The TCP server: accept loop, one task per connection, many calls in
//! flight per connection, and the dispatch of each call to its program.
//!
//! A connection reads records in a loop. Quick metadata calls run on the
//! connection's task when everything they need is in memory; the others
//! run on tokio's blocking pool. Every reply goes to the connection's
//! single writer task, which sends it at once, or, for a call whose
//! metadata change is not durable yet, once the log sync it was given a
//! ticket for has finished (see [`crate::logsync`]). Replies therefore
//! go out in completion order, as ONC-RPC allows; at most
//! [`MAX_IN_FLIGHT`] calls per connection are outstanding before the
//! reader stops reading.

use crate::drc::{self, Begin, Drc, Slot};
use crate::export::{ExportOptions, ExportPolicy};
use crate::handle::FileHandle;
use crate::logsync::{LogSyncer, Progress};
use crate::metrics::NfsMetrics;
use crate::record::{read_record, whole_record_buffered, write_reply, ReplyOut, MAX_RECORD};
use crate::rpc::{self, Auth, Fault, Reply};
use crate::xdr::XdrReader;
use crate::{mount, nfs, portmap};
use nfs3_types::nfs3::nfsstat3;
use nitrofs_common::stall::StallGuard;
use nitrofs_core_fs::{FileSystem, FsError, VolumeId};
use parking_lot::RwLock;
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch, Semaphore};
use tracing::Instrument;

/// Calls one connection may have outstanding.
pub const MAX_IN_FLIGHT: usize = 64;

/// Connections served at once by default. With [`MAX_IN_FLIGHT`] calls of
/// at most [`MAX_RECORD`] bytes each, this bounds the memory that clients
/// can make the server hold; connections past it are closed at accept.
pub const MAX_CONNECTIONS: usize = 1024;

/// A connection with no call in flight and nothing received for this
/// long is closed (clients reconnect transparently, as after a restart).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// A connection whose client takes none of its replies' bytes for this
/// long is closed, with the calls it has in flight (`[nfs]
/// stall_timeout_secs`).
pub const DEFAULT_STALL: Duration = Duration::from_secs(120);

/// With an `async_metadata` export, the longest the metadata log goes
/// unsynced while it has changes no call asked to be synced.
pub const BACKGROUND_SYNC_INTERVAL: Duration = Duration::from_secs(1);

/// The NFSv3 + MOUNT v3 + PORTMAP v2 server over one filesystem.
pub struct NfsServer {
    pub(crate) fs: Arc<FileSystem>,
    pub(crate) policy: Arc<ExportPolicy>,
    /// Volume names by id (ids are never reused, so entries never go bad).
    volume_names: RwLock<HashMap<VolumeId, String>>,
    /// WRITE/COMMIT verifier: changes at every start of the store.
    pub(crate) write_verf: [u8; 8],
    /// Call counters, rendered by the binary.
    metrics: Arc<NfsMetrics>,
    /// Permits for open connections.
    connections: Arc<Semaphore>,
    /// How long an idle connection is kept.
    idle_timeout: Duration,
    /// How long a reply may wait for a client that reads nothing.
    stall: Duration,
    /// Log syncs for metadata changes answered on the connection's task
    /// and for COMMIT (without it those run on the blocking pool and sync
    /// there).
    log_sync: Option<LogSyncer>,
    /// Some export is `async_metadata` (the policy never changes).
    async_exports: bool,
    /// READ replies of at least `nfs::io::ZERO_COPY_MIN` bytes send chunk
    /// file ranges with `sendfile` (turned off for good after it fails
    /// once; see `record::write_reply`).
    pub(crate) zero_copy: Arc<AtomicBool>,
    /// Replies of calls that are not idempotent, for retransmissions.
    pub(crate) drc: Arc<Drc>,
}

/// What a procedure knows about its call.
pub(crate) struct Call<'a> {
    /// The server.
    pub server: &'a NfsServer,
    /// Client address.
    pub peer: IpAddr,
    /// Credentials as sent.
    pub auth: &'a Auth,
    /// The port this server listens on (for PORTMAP GETPORT).
    pub local_port: u16,
}

impl NfsServer {
    /// A server exporting every volume of `fs` under `policy`.
    pub fn new(fs: Arc<FileSystem>, policy: Arc<ExportPolicy>) -> Self {
        let write_verf = fs.boot_count().to_be_bytes();
        let (syncing, positions) = (fs.clone(), fs.clone());
        let position = move || positions.log_position();
        let sync = move |upto| syncing.sync_metadata_to(upto).map_err(|e| e.to_string());
        // Exports answering changes before their sync get them synced by
        // the syncer's thread when no call has asked for a while.
        let async_exports = policy.any_async_metadata();
        let every = async_exports.then_some(BACKGROUND_SYNC_INTERVAL);
        let log_sync = LogSyncer::start(position, sync, every)
            .inspect_err(|e| {
                tracing::warn!(error = %e, "no NFS log sync thread: metadata changes will use the blocking pool");
            })
            .ok();
        Self {
            log_sync,
            async_exports,
            fs,
            policy,
            volume_names: RwLock::new(HashMap::new()),
            write_verf,
            metrics: Arc::new(NfsMetrics::default()),
            connections: Arc::new(Semaphore::new(MAX_CONNECTIONS)),
            idle_timeout: IDLE_TIMEOUT,
            stall: DEFAULT_STALL,
            zero_copy: Arc::new(AtomicBool::new(true)),
            drc: Arc::new(Drc::default()),
        }
    }

    /// Sets how many connections are served at once and how long an idle
    /// one is kept (defaults [`MAX_CONNECTIONS`], [`IDLE_TIMEOUT`]).
    pub fn with_limits(mut self, max_connections: usize, idle_timeout: Duration) -> Self {
        self.connections = Arc::new(Semaphore::new(max_connections.max(1)));
        self.idle_timeout = idle_timeout;
        self
    }

    /// Sets how long a reply may wait for a client that takes none of its
    /// bytes before the connection is closed (default [`DEFAULT_STALL`]).
    pub fn with_stall(mut self, stall: Duration) -> Self {
        self.stall = stall;
        self
    }

    /// This server's call counters.
    pub fn metrics(&self) -> Arc<NfsMetrics> {
        self.metrics.clone()
    }

    /// Serves clients accepted on `listener` until the future is dropped.
    /// Returns only if the listener's address cannot be read.
    pub async fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<()> {
        let local_port = listener.local_addr()?.port();
        tracing::info!(port = local_port, "NFSv3/MOUNT/PORTMAP listening");
        loop {
            match listener.accept().await {
                Ok((sock, peer)) => {
                    let Ok(permit) = self.connections.clone().try_acquire_owned() else {
                        tracing::warn!(client = %peer, "connection limit reached; closing new connection");
                        drop(sock);
                        continue;
                    };
                    let server = self.clone();
                    let span = tracing::debug_span!("nfs_conn", client = %peer);
                    tokio::spawn(
                        async move {
                            server.serve_connection(sock, peer, local_port).await;
                            drop(permit);
                        }
                        .instrument(span),
                    );
                }
                Err(e) => {
                    // Out of descriptors or a connection reset before accept:
                    // back off briefly rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    async fn serve_connection(self: Arc<Self>, sock: TcpStream, peer: SocketAddr, local_port: u16) {
        if let Err(e) = sock.set_nodelay(true) {
            tracing::debug!(error = %e, "TCP_NODELAY not set");
        }
        tracing::debug!("connection opened");
        let (rd, wr) = sock.into_split();
        let mut rd = BufReader::with_capacity(256 * 1024, rd);
        let (tx, rx) = mpsc::channel::<Outgoing>(MAX_IN_FLIGHT);
        let writer = Writer {
            w: BufWriter::with_capacity(64 * 1024, StallGuard::new(wr, self.stall)),
            zero_copy: Arc::clone(&self.zero_copy),
            metrics: Arc::clone(&self.metrics),
            synced: self.log_sync.as_ref().map(LogSyncer::progress),
            held: VecDeque::new(),
            syncer_gone: false,
        };
        let writer = tokio::spawn(writer.run(rx).in_current_span());
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        // Replies of calls answered here that wait for a log sync not yet
        // asked for: calls already in the read buffer run first, so one
        // sync covers them all.
        let mut unsynced: Vec<Held> = Vec::new();
        // How far the log must be synced for them.
        let mut unsynced_upto = 0u64;
        // Calls read since the oldest of them: any call counts, so a
        // reply never waits behind many calls that need no sync.
        let mut batch_age = 0usize;
        loop {
            if !unsynced.is_empty() {
                batch_age += 1;
                if batch_age > SYNC_BATCH
                    || in_flight.available_permits() == 0
                    || !whole_record_buffered(rd.buffer())
                {
                    batch_age = 0;
                    let upto = std::mem::take(&mut unsynced_upto);
                    if !self.ask_sync(&mut unsynced, upto, &tx).await {
                        break;
                    }
                }
            }
            let Ok(permit) = in_flight.clone().acquire_owned().await else {
                break;
            };
            let read = read_record(&mut rd, MAX_RECORD);
            tokio::pin!(read);
            let record = loop {
                tokio::select! {
                    r = &mut read => break Some(r),
                    // The writer failed: the peer is gone.
                    _ = tx.closed() => break None,
                    _ = tokio::time::sleep(self.idle_timeout) => {
                        // Nothing arrived for a while; close only if no
                        // call is still being answered (this loop holds
                        // one permit itself).
                        if in_flight.available_permits() + 1 >= MAX_IN_FLIGHT {
                            tracing::debug!("closing idle connection");
                            break None;
                        }
                    }
                }
            };
            let Some(record) = record else {
                break;
            };
            let record = match record {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "closing connection");
                    break;
                }
            };
            let slot = match self.drc_key(peer.ip(), &record).map(|k| self.drc.begin(k)) {
                None => None,
                Some(Begin::Run(slot)) => Some(slot),
                Some(Begin::Replay(reply)) => {
                    drop(permit);
                    self.metrics.replayed();
                    tracing::debug!(%peer, "retransmitted call answered from the reply cache");
                    if tx.send(Reply::head(reply.to_vec()).into()).await.is_err() {
                        break;
                    }
                    continue;
                }
                Some(Begin::Running) => {
                    drop(permit);
                    self.metrics.dropped_duplicate();
                    tracing::debug!(%peer, "retransmitted call dropped: the first is running");
                    continue;
                }
            };
            if let Some(proc_num) = self.inline_proc(&record) {
                // A quick metadata call: answered on this task if every
                // record it needs is in memory, so the call costs no thread
                // hop at all (the writer task wakes on this worker). One
                // that needs the disk goes to the blocking pool like any
                // other, and never stalls this executor thread.
                let started = std::time::Instant::now();
                let inline = nitrofs_core_fs::memory_only(|| {
                    nitrofs_core_fs::deferring_sync_to(|| {
                        run_call(&self, peer.ip(), local_port, &record)
                    })
                });
                match inline {
                    None => {}
                    Some((None, _)) => {
                        drop(permit);
                        continue;
                    }
                    Some((Some(reply), Some(upto)))
                        if !self.answered_before_sync(proc_num, &record) =>
                    {
                        // It changed metadata (or a COMMIT found its
                        // writes not yet synced): answered once a log sync
                        // shared with other calls has made that durable,
                        // asked for once the calls already received ran.
                        let held = Held::new(reply, 0, proc_num, started, &record, permit, slot);
                        unsynced.push(held);
                        unsynced_upto = unsynced_upto.max(upto);
                        continue;
                    }
                    Some((Some(reply), owed)) => {
                        drop(permit);
                        if owed.is_some() {
                            // An `async_metadata` export's change: answered
                            // now, durable with the next log sync. (Calls
                            // owing a sync are counted when answered.)
                            self.metrics.nfs_call(proc_num, started.elapsed());
                        }
                        // Final (nothing owed, or nothing awaited): kept
                        // now, whether or not the reply reaches the client.
                        keep_reply(slot, &reply);
                        if tx.send(reply.into()).await.is_err() {
                            break;
                        }
                        continue;
                    }
                }
            }
            let server = self.clone();
            let tx = tx.clone();
            let conn_span = tracing::Span::current();
            // Anything that may wait for the disk runs on the blocking pool
            // and hands its reply straight to the writer: one thread hop.
            tokio::task::spawn_blocking(move || {
                let _conn = conn_span.enter();
                server.run_blocking(peer.ip(), local_port, &record, &tx, permit, slot);
            });
        }
        // Calls answered here whose sync was never asked for (the loop
        // ended between reading them and asking): asked for now, and
        // settled in the reply cache once it is done (nothing is sent).
        if let (Some(log_sync), false) = (&self.log_sync, unsynced.is_empty()) {
            let ticket = log_sync.request_covering(unsynced_upto);
            let held = unsynced
                .drain(..)
                .map(|mut h| {
                    h.ticket = ticket;
                    h
                })
                .collect();
            settle_detached(held, Some(log_sync.progress()));
        }
        drop(tx);
        match writer.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) if nitrofs_common::stall::gave_up(&e) => tracing::info!(
                %peer,
                "NFS connection closed: its client took no reply bytes for {:?}",
                self.stall
            ),
            Ok(Err(e)) => tracing::debug!(error = %e, "reply stream ended"),
            Err(e) => tracing::warn!(error = %e, "reply writer failed"),
        }
        tracing::debug!("connection closed");
    }

    /// Decodes one record, runs the call and returns the reply (none for
    /// records that are not calls).
    pub(crate) fn handle_record(
        &self,
        peer: IpAddr,
        local_port: u16,
        record: &[u8],
    ) -> Option<Reply> {
        let mut args = XdrReader::new(record);
        let header = match rpc::parse_call(&mut args) {
            Ok(h) => h,
            Err(e) => {
                tracing::debug!(error = ?e, "unusable call header");
                return e.reply().map(Reply::head);
            }
        };
        let op = op_name(header.prog, header.proc_num);
        let span = tracing::debug_span!("rpc", xid = header.xid, op, client = %peer);
        let _enter = span.enter();
        let call = Call {
            server: self,
            peer,
            auth: &header.auth,
            local_port,
        };
        let started = std::time::Instant::now();
        let mut out = rpc::success(header.xid);
        let result = match (header.prog, header.vers) {
            (nfs::PROGRAM, nfs::VERSION) => {
                nfs::dispatch(&call, header.proc_num, &mut args, &mut out)
            }
            (nfs::PROGRAM, _) => Err(Fault::ProgMismatch {
                low: nfs::VERSION,
                high: nfs::VERSION,
            }),
            (mount::PROGRAM, mount::VERSION) => {
                mount::dispatch(&call, header.proc_num, &mut args, &mut out)
            }
            (mount::PROGRAM, _) => Err(Fault::ProgMismatch {
                low: mount::VERSION,
                high: mount::VERSION,
            }),
            (portmap::PROGRAM, portmap::VERSION) => {
                portmap::dispatch(&call, header.proc_num, &mut args, &mut out)
            }
            (portmap::PROGRAM, _) => Err(Fault::ProgMismatch {
                low: portmap::VERSION,
                high: portmap::VERSION,
            }),
            _ => Err(Fault::ProgUnavail),
        };
        // A memory-only attempt that missed runs again on the blocking
        // pool: count the call there only. One whose log sync is owed is
        // counted when that is done.
        let counted = !nitrofs_core_fs::memory_read_missed() && !nitrofs_core_fs::sync_owed();
        Some(match result {
            Ok(data) if !counted => Reply { head: out, data },
            Err(fault) if !counted => Reply::head(fault.reply(header.xid)),
            Ok(data) => {
                if header.prog == nfs::PROGRAM {
                    self.metrics.nfs_call(header.proc_num, started.elapsed());
                } else {
                    self.metrics.other_call();
                }
                Reply { head: out, data }
            }
            Err(fault) => {
                self.metrics.refused();
                tracing::debug!(?fault, "call refused");
                Reply::head(fault.reply(header.xid))
            }
        })
    }

    /// The export options of a volume, by id. A volume that no longer
    /// exists makes its handles stale.
    pub(crate) fn options_for_volume(&self, id: VolumeId) -> Result<&ExportOptions, nfsstat3> {
        if let Some(name) = self.volume_names.read().get(&id) {
            return Ok(self.policy.options_for(name));
        }
        let volume = self.fs.volume_by_id(id).map_err(|e| match e {
            FsError::NotFound => nfsstat3::NFS3ERR_STALE,
            e => crate::error::nfsstat(&e),
        })?;
        let opts = self.policy.options_for(&volume.name);
        self.volume_names.write().insert(id, volume.name);
        Ok(opts)
    }
}

impl NfsServer {
    /// The reply-cache key of `record` if it is an NFSv3 call whose
    /// reply is kept for retransmissions ([`drc::CACHED_PROCS`]).
    fn drc_key(&self, peer: IpAddr, record: &[u8]) -> Option<drc::Key> {
        let proc_num = nfs3_proc(record).filter(|p| drc::CACHED_PROCS.contains(p))?;
        let xid = header_word(record, 0)?;
        Some(drc::Key::new(peer, xid, proc_num, record))
    }

    /// Whether a call run on the connection's task that changed metadata
    /// is answered before its log sync: one of [`nfs::SYNC_AFTER_PROCS`]
    /// (whose commit is the last thing they do) on an `async_metadata`
    /// export, read from the call's first file handle.
    fn answered_before_sync(&self, proc_num: u32, record: &[u8]) -> bool {
        if !self.async_exports || !nfs::SYNC_AFTER_PROCS.contains(&proc_num) {
            return false;
        }
        // After a failed log sync nothing becomes durable: the change waits
        // for its sync and is answered NFS3ERR_IO, as on any export.
        if self.log_sync.as_ref().is_none_or(LogSyncer::has_failed) {
            return false;
        }
        let mut args = XdrReader::new(record);
        if rpc::parse_call(&mut args).is_err() {
            return false;
        }
        let Ok(Ok(handle)) = nfs::fh(&mut args).map(FileHandle::decode) else {
            return false;
        };
        self.options_for_volume(handle.volume)
            .is_ok_and(|o| o.async_metadata)
    }

    /// The NFSv3 procedure of `record` if it is tried on the connection's
    /// task: one of [`INLINE_PROCS`], or when a log syncer is running one
    /// of [`nfs::SYNC_AFTER_PROCS`], a COMMIT, or a WRITE small enough to
    /// keep its file inline and at most [`TASK_WRITE_MAX`] (read from the
    /// call header's fixed words; anything unparsable goes the general
    /// way). A WRITE or COMMIT of a file whose bytes are in chunks misses
    /// there before it does anything, and runs on the blocking pool.
    fn inline_proc(&self, record: &[u8]) -> Option<u32> {
        let p = nfs3_proc(record)?;
        let inline_limit = (self.fs.inline_max() as usize).min(TASK_WRITE_MAX);
        let small_write =
            p == WRITE && inline_limit > 0 && record.len() <= inline_limit + WRITE_HEADER_MAX;
        let sync_after = self.log_sync.is_some()
            && (nfs::SYNC_AFTER_PROCS.contains(&p) || p == COMMIT || small_write);
        // READ only where the chunk store can read without waiting.
        let inline = INLINE_PROCS.contains(&p) && (p != READ || self.fs.reads_cached());
        (inline || sync_after).then_some(p)
    }

    /// Asks for one log sync covering every call in `unsynced` (all
    /// committed by now, before the log reached `upto`) and hands their
    /// replies to the writer to wait for it; false if the writer is gone.
    async fn ask_sync(
        &self,
        unsynced: &mut Vec<Held>,
        upto: u64,
        tx: &mpsc::Sender<Outgoing>,
    ) -> bool {
        let Some(log_sync) = &self.log_sync else {
            // `inline_proc` only lets these calls run here with a syncer.
            tracing::error!("metadata changed on the connection task without a log syncer");
            unsynced.clear();
            return true;
        };
        let ticket = log_sync.request_covering(upto);
        for mut held in unsynced.drain(..) {
            held.ticket = ticket;
            if tx.send(Outgoing::Held(held)).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Runs a call on the blocking pool and hands its reply to the
    /// writer. A COMMIT there (of a file with chunks, mostly: an inline
    /// file's is tried on the connection's task first) asks the syncer
    /// thread for a metadata log sync before it syncs the file's chunks,
    /// and its reply is held for that sync if its writes still owe one:
    /// the two run side by side, and the log's part is shared with the
    /// CREATEs and SETATTRs answered on connection tasks instead of
    /// waking a thread of its own. (It asks before it knows whether it
    /// owes a sync, so such a COMMIT never takes the running sync's
    /// ticket: that would give up the overlap.)
    fn run_blocking(
        &self,
        peer: IpAddr,
        local_port: u16,
        record: &[u8],
        tx: &mpsc::Sender<Outgoing>,
        permit: tokio::sync::OwnedSemaphorePermit,
        slot: Option<Slot>,
    ) {
        let log_sync = self
            .log_sync
            .as_ref()
            .filter(|_| nfs3_proc(record) == Some(COMMIT));
        let Some(log_sync) = log_sync else {
            if let Some(reply) = run_call(self, peer, local_port, record) {
                // A send error means the connection is closing.
                // Final: the call synced what it changed. Kept now, so a
                // retransmission after the connection closed replays it.
                keep_reply(slot, &reply);
                let _ = tx.blocking_send(reply.into());
            }
            return;
        };
        let started = std::time::Instant::now();
        // What a COMMIT makes durable in the log (the sizes its file's
        // unstable WRITEs recorded) was committed before the call began,
        // and the call commits no metadata itself (`FileSystem::commit`
        // only reads and syncs), so a ticket taken now covers it all and
        // the log sync overlaps the chunk sync. A call that committed
        // durably inside this scope would need a ticket taken after it.
        let ticket = log_sync.request();
        let (reply, owed) =
            nitrofs_core_fs::deferring_sync(|| run_call(self, peer, local_port, record));
        let out = match reply {
            Some(reply) if owed => Outgoing::Held(Held::new(
                reply, ticket, COMMIT, started, record, permit, slot,
            )),
            Some(reply) => {
                keep_reply(slot, &reply);
                reply.into()
            }
            None => return,
        };
        let _ = tx.blocking_send(out);
    }
}

/// NFSv3 procedures tried on the connection's task: GETATTR, LOOKUP,
/// ACCESS, FSSTAT, FSINFO, PATHCONF (and NULL), and READ. The others only
/// read metadata, which the inode cache or RocksDB's memtable and block
/// cache nearly always hold, so they take microseconds; a hop to the
/// blocking pool and back cost more than the call itself (GETATTR p50 was
/// ~110 µs on loopback, of which the server's work was ~2 µs). A READ of
/// fewer than 64 KiB (`ZERO_COPY_MIN`, counted to the end of the file) is
/// answered there when its chunk file opens from the kernel's dentry cache
/// and its bytes are in the page cache (`RWF_NOWAIT`, best effort: the
/// kernel may still start readahead before it says no), and may commit an
/// atime change there. They run under [`nitrofs_core_fs::memory_only`]: a
/// call that would wait for the disk, and every larger READ, goes to the
/// blocking pool after all, as does everything that writes chunk data or
/// walks a directory ([`nfs::SYNC_AFTER_PROCS`] commit metadata here too,
/// and so do WRITEs and COMMITs of inline files: see `inline_proc`).
const INLINE_PROCS: [u32; 8] = [0, 1, 3, 4, READ, 18, 19, 20];

/// NFSv3 READ's procedure number.
const READ: u32 = 6;

/// NFSv3 WRITE's procedure number.
const WRITE: u32 = 7;

/// The most data a WRITE answered on the connection's task carries,
/// whatever `inline_max` is: each such write copies its file's inline
/// bytes whole into the metadata log and memtable on the executor thread.
const TASK_WRITE_MAX: usize = 64 << 10;

/// The most a WRITE call record holds besides its data: the call header
/// with credentials and verifier of up to 400 bytes each, a 64-byte file
/// handle, offset, count, stable_how and the data's length.
const WRITE_HEADER_MAX: usize = 1024;

/// NFSv3 COMMIT's procedure number.
const COMMIT: u32 = 21;

/// Calls a connection reads, from the first whose reply waits for a log
/// sync, before that sync is asked for at the latest, so a client that
/// keeps the read buffer full still gets its replies in steady batches.
const SYNC_BATCH: usize = 16;

/// The big-endian word at byte `at` of a call record (its fixed header:
/// xid at 0, program at 12, version at 16, procedure at 20), if the
/// record is that long.
fn header_word(record: &[u8], at: usize) -> Option<u32> {
    record
        .get(at..at + 4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
}

/// The NFSv3 procedure a call record asks for, read from its header's
/// fixed words (xid, msg_type, rpcvers, prog, vers, proc); `None` for
/// another program or version, or a record too short to say.
fn nfs3_proc(record: &[u8]) -> Option<u32> {
    let word = |at| header_word(record, at);
    if word(12) != Some(nfs::PROGRAM) || word(16) != Some(nfs::VERSION) {
        return None;
    }
    word(20)
}

/// Runs one record and returns its reply; a panicking handler becomes a
/// SYSTEM_ERR reply instead of a lost connection.
fn run_call(server: &NfsServer, peer: IpAddr, local_port: u16, record: &[u8]) -> Option<Reply> {
    let xid = header_word(record, 0);
    let handled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        server.handle_record(peer, local_port, record)
    }));
    match handled {
        Ok(reply) => reply,
        Err(_) => {
            tracing::error!("request handler panicked");
            xid.map(|x| Reply::head(rpc::system_err(x)))
        }
    }
}

/// What a connection's writer is handed: a reply to send now, or one
/// held until the log sync of its ticket has finished.
pub(crate) enum Outgoing {
    Now(Reply),
    Held(Held),
}

impl From<Reply> for Outgoing {
    fn from(reply: Reply) -> Self {
        Self::Now(reply)
    }
}

/// The reply of a call that committed metadata without syncing the log,
/// with what answering it needs.
pub(crate) struct Held {
    /// The [`LogSyncer`] ticket whose sync makes the change durable.
    ticket: u64,
    reply: Reply,
    proc_num: u32,
    /// The call's xid (to answer NFS3ERR_IO instead), if it has one.
    xid: Option<u32>,
    started: std::time::Instant,
    /// The call's place among those in flight, freed once answered.
    _permit: tokio::sync::OwnedSemaphorePermit,
    /// The call's place in the reply cache: the reply is kept once its
    /// sync has succeeded, and forgotten otherwise.
    slot: Option<Slot>,
}

impl Held {
    /// `reply` (of a call that committed metadata without syncing the
    /// log), for the writer to send once the log sync of `ticket` has
    /// finished, or NFS3ERR_IO if it failed; the call's time is counted
    /// then. The ticket must be asked for after that commit: calls
    /// answered on the connection's task get theirs later, in
    /// `ask_sync`, and hold 0 (which no sync settles as a success) until
    /// then. `slot` is the call's place in the reply cache, if it has one.
    fn new(
        reply: Reply,
        ticket: u64,
        proc_num: u32,
        started: std::time::Instant,
        record: &[u8],
        permit: tokio::sync::OwnedSemaphorePermit,
        slot: Option<Slot>,
    ) -> Self {
        Self {
            ticket,
            reply,
            proc_num,
            xid: header_word(record, 0),
            started,
            _permit: permit,
            slot,
        }
    }
}

/// A connection's writer: sends replies as they come, and held ones as
/// the log syncs of their tickets finish (one wake-up per sync, however
/// many replies it releases). It ends when the reader is done and every
/// held reply has been answered.
struct Writer {
    w: ReplyOut,
    zero_copy: Arc<AtomicBool>,
    metrics: Arc<NfsMetrics>,
    /// The syncs' progress; `None` without a syncer (nothing is held then).
    synced: Option<watch::Receiver<Progress>>,
    /// Held replies, in the order they reached the writer. Not ticket
    /// order: a COMMIT takes its ticket before it syncs its chunks, so a
    /// batch of CREATEs may come before it with a later one.
    held: VecDeque<Held>,
    /// The syncer stopped: what it has not settled is not durable.
    syncer_gone: bool,
}

impl Writer {
    async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) -> std::io::Result<()> {
        let out = self.pump(&mut rx).await;
        // A writer that failed (the peer is gone) leaves held replies,
        // here and still queued, whose changes its syncs may yet make
        // durable: their calls are settled in the reply cache then, so a
        // retransmission on a new connection replays them.
        rx.close();
        while let Ok(msg) = rx.try_recv() {
            if let Outgoing::Held(held) = msg {
                self.held.push_back(held);
            }
        }
        settle_detached(std::mem::take(&mut self.held), self.synced.take());
        out
    }

    async fn pump(&mut self, rx: &mut mpsc::Receiver<Outgoing>) -> std::io::Result<()> {
        let mut reading = true;
        while reading || !self.held.is_empty() {
            tokio::select! {
                msg = rx.recv(), if reading => match msg {
                    Some(msg) => {
                        self.take(msg).await?;
                        while let Ok(more) = rx.try_recv() {
                            self.take(more).await?;
                        }
                    }
                    None => reading = false,
                },
                gone = sync_finished(&mut self.synced), if !self.held.is_empty() && !self.syncer_gone => {
                    self.syncer_gone = gone;
                }
                // Not reached: once the syncer is gone, `release` answers
                // every held reply, so some branch is always enabled.
                else => break,
            }
            self.release().await?;
            self.w.flush().await?;
        }
        self.w.shutdown().await
    }

    async fn take(&mut self, msg: Outgoing) -> std::io::Result<()> {
        match msg {
            Outgoing::Now(reply) => self.send(&reply).await,
            Outgoing::Held(held) => {
                self.held.push_back(held);
                Ok(())
            }
        }
    }

    async fn send(&mut self, reply: &Reply) -> std::io::Result<()> {
        write_reply(&mut self.w, &reply.head, &reply.data, &self.zero_copy).await
    }

    /// Answers the held replies whose sync has finished: the reply if it
    /// succeeded, NFS3ERR_IO if it (or a later one) failed or the syncer
    /// is gone, since the change may then not be durable.
    async fn release(&mut self) -> std::io::Result<()> {
        let progress = self.synced.as_mut().map(|rx| *rx.borrow_and_update());
        let mut i = 0;
        while let Some(held) = self.held.get(i) {
            let durable = match progress.and_then(|p| p.outcome(held.ticket)) {
                Some(durable) => durable,
                None if self.syncer_gone => false,
                None => {
                    i += 1;
                    continue;
                }
            };
            let Some(held) = self.held.remove(i) else {
                break;
            };
            self.metrics.nfs_call(held.proc_num, held.started.elapsed());
            if durable {
                // Final now: kept even if it cannot be sent.
                keep_reply(held.slot, &held.reply);
                self.send(&held.reply).await?;
            } else if let Some(xid) = held.xid {
                let mut out = rpc::success(xid);
                let reply = match nfs::not_durable(held.proc_num, &mut out) {
                    Ok(data) => Reply { head: out, data },
                    Err(_) => Reply::head(rpc::system_err(xid)),
                };
                self.send(&reply).await?;
            }
        }
        Ok(())
    }
}

/// Keeps a final reply in the reply cache for the call's slot, if it has
/// one. Answers a retry could change are not kept, and their calls are
/// forgotten: a reply with a separate payload (never one of the cached
/// procedures'), an RPC-level failure (a handler that panicked), and
/// NFS3ERR_IO, SERVERFAULT or JUKEBOX.
fn keep_reply(slot: Option<Slot>, reply: &Reply) {
    if let Some(slot) = slot {
        if reply.data.len() == 0 && drc::is_final(&reply.head) {
            slot.answered(&reply.head);
        }
    }
}

/// Settles held replies whose connection is gone: each call's reply is
/// kept in the reply cache once its log sync succeeds, and forgotten if
/// it fails or the syncer stops. Nothing is sent.
fn settle_detached(held: VecDeque<Held>, synced: Option<watch::Receiver<Progress>>) {
    let held: Vec<Held> = held.into_iter().filter(|h| h.slot.is_some()).collect();
    let Some(mut synced) = synced.filter(|_| !held.is_empty()) else {
        return;
    };
    tokio::spawn(async move {
        for h in held {
            let settled = synced.wait_for(|p| p.outcome(h.ticket).is_some()).await;
            if let Ok(p) = settled {
                if p.outcome(h.ticket) == Some(true) {
                    keep_reply(h.slot, &h.reply);
                }
            }
        }
    });
}

/// Waits for the next published sync; true if the syncer has stopped.
async fn sync_finished(synced: &mut Option<watch::Receiver<Progress>>) -> bool {
    match synced {
        Some(rx) => rx.changed().await.is_err(),
        None => true,
    }
}

/// A procedure name for logs.
fn op_name(prog: u32, proc_num: u32) -> &'static str {
    let table: &[&'static str] = match prog {
        nfs::PROGRAM => &nfs::PROC_NAMES,
        mount::PROGRAM => &mount::PROC_NAMES,
        portmap::PROGRAM => &portmap::PROC_NAMES,
        _ => &[],
    };
    usize::try_from(proc_num)
        .ok()
        .and_then(|i| table.get(i).copied())
        .unwrap_or("unknown")
}
