//! The server end: one reader per connection reads frames (bounded sizes,
//! bounded time), each request runs as its own task, responses go back in
//! completion order under a write lock. A connection that breaks the frame
//! protocol, stalls mid-frame or stops reading is closed; nothing it does
//! reaches other connections.
//!
//! Bounds per connection: requests and header/payload bytes in flight (a
//! service may add a response's bytes to the same budget, see
//! [`ByteBudget`]), and a connection keeps its slot of
//! [`ServerConfig::max_connections`] until its last request task has ended.
//! A response left half written (write error or timeout) poisons the
//! writer under its lock: the socket is shut down and later responses are
//! dropped instead of being written after the partial frame.

use super::{read_ahead, write_all_vectored};
use crate::buf::{BufPool, PooledBuf};
use crate::frame::{FrameHeader, FrameKind, Limits, FRAME_LEN};
use bytes::Bytes;
use parking_lot::Mutex as SyncMutex;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;

/// Limits and timeouts of a server.
#[derive(Debug, Clone)]
pub struct ServerConfig {
    /// Frame size limits.
    pub limits: Limits,
    /// Requests one connection may have in flight; more wait (the socket is
    /// not read meanwhile, so TCP flow control pushes back on the client).
    pub max_inflight_requests: usize,
    /// Header and payload bytes one connection may have in flight.
    pub max_inflight_bytes: usize,
    /// A connection with no frame started for this long is closed.
    pub idle_timeout: Duration,
    /// A frame must arrive whole within this time once started.
    pub frame_timeout: Duration,
    /// A response must be written within this time (a client that does not
    /// read is closed).
    pub write_timeout: Duration,
    /// Connections served at once; more are accepted and closed at once.
    pub max_connections: usize,
    /// Idle payload buffers kept for reuse.
    pub pooled_bytes: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            limits: Limits::default(),
            max_inflight_requests: 128,
            max_inflight_bytes: 512 * 1024 * 1024,
            idle_timeout: Duration::from_secs(600),
            frame_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            max_connections: 4096,
            pooled_bytes: 1024 * 1024 * 1024,
        }
    }
}

/// The payload bytes per part [`Service::payload_parts`] may ask for,
/// at the least, on average.
const MIN_PART_BYTES: usize = 4096;

/// A request as the service sees it.
#[derive(Debug)]
pub struct Incoming {
    /// The protocol's message id.
    pub msg: u16,
    /// Encoded request header.
    pub header: PooledBuf,
    /// Payload, read from the socket straight into this buffer; empty
    /// when it was split into `parts`.
    pub payload: PooledBuf,
    /// The payload split as [`Service::payload_parts`] asked, each part
    /// read from the socket into a buffer of its own; empty when it was
    /// read whole into `payload`.
    pub parts: Vec<PooledBuf>,
    /// This request's share of the connection's in-flight byte budget; it
    /// holds the header and payload bytes now, and the service reserves a
    /// large response's bytes here before producing them.
    pub budget: ByteBudget,
}

/// A request's share of its connection's budget of bytes in flight
/// ([`ServerConfig::max_inflight_bytes`]). The server reserves a request's
/// header and payload before reading them; a service reserves its
/// response's bytes with [`ByteBudget::reserve`] before it reads them (a
/// GET's value), so many large answers cannot pile up in memory. Everything
/// a share holds is given back once the response has been written (or the
/// request is dropped).
#[derive(Debug)]
pub struct ByteBudget {
    /// The connection's budget, in KiB permits.
    conn: Arc<Semaphore>,
    /// The budget's size in permits: the most one reservation can get.
    total: u32,
    /// What this request holds; shared with the task that writes the
    /// response, which empties it afterwards.
    held: Arc<SyncMutex<Option<OwnedSemaphorePermit>>>,
}

impl ByteBudget {
    /// A budget of `bytes` of its own, nothing held (a service driven
    /// without [`serve`], or a test).
    pub fn new(bytes: usize) -> Self {
        let total = kib_permits(bytes);
        Self {
            conn: Arc::new(Semaphore::new(total as usize)),
            total,
            held: Arc::default(),
        }
    }

    /// Another request's share of the same connection budget, nothing held.
    pub fn share(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            total: self.total,
            held: Arc::default(),
        }
    }

    /// Reserves `bytes` more for this request, waiting while the
    /// connection's budget is used up; held until the response is written.
    /// A reservation larger than the whole budget is cut to it.
    ///
    /// Waiting while holding part of the budget could deadlock (two
    /// requests each holding a little and waiting for the other's), so the
    /// share gives back what it holds first and waits for the old and the
    /// new bytes together. Meanwhile its header and payload go uncounted,
    /// bounded by the frame limits times the requests in flight.
    pub async fn reserve(&self, bytes: u64) {
        let have = self.lock().take().map_or(0, |p| p.num_permits());
        let want = u64::try_from(have)
            .unwrap_or(u64::MAX)
            .saturating_add(bytes.div_ceil(1024))
            .min(u64::from(self.total));
        let want = u32::try_from(want).unwrap_or(self.total);
        // The semaphore is never closed, so this fails only if it were.
        if let Ok(p) = self.conn.clone().acquire_many_owned(want).await {
            let mut held = self.lock();
            match held.as_mut() {
                Some(h) => h.merge(p),
                None => *held = Some(p),
            }
        }
    }

    /// Bytes this share holds (whole KiB).
    pub fn held(&self) -> u64 {
        self.lock()
            .as_ref()
            .map_or(0, |p| p.num_permits() as u64 * 1024)
    }

    /// Gives back everything this share holds.
    pub fn release(&self) {
        self.lock().take();
    }

    /// A share already holding `permit` (the server's reservation of a
    /// request's header and payload).
    fn holding(&self, permit: OwnedSemaphorePermit) -> Self {
        Self {
            conn: self.conn.clone(),
            total: self.total,
            held: Arc::new(SyncMutex::new(Some(permit))),
        }
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.held.lock()
    }
}

/// A service's answer.
#[derive(Debug, Default)]
pub struct Outgoing {
    /// Protocol status code.
    pub status: u16,
    /// Encoded response header.
    pub header: Vec<u8>,
    /// Payload pieces, written back to back without gathering.
    pub payload: Vec<Bytes>,
}

/// What a protocol plugs into the server.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state (e.g. who authenticated on it).
    type Session: Send + Sync + 'static;

    /// Called once per accepted connection.
    fn open_session(&self, peer: SocketAddr) -> Self::Session;

    /// How the payload of a request with this message id and header
    /// splits into parts the service keeps apart (the values of a batch),
    /// or `None` (the default) to read it into one buffer. Each part is
    /// read into a buffer of its own, so a part the service keeps holds
    /// neither a copy nor its neighbours. Ignored (the payload is read
    /// whole) unless there are at least two parts, at most one per 4 KiB
    /// of payload (plus one), and their lengths add up to the payload's.
    fn payload_parts(&self, _msg: u16, _header: &[u8]) -> Option<Vec<usize>> {
        None
    }

    /// Handles one request. Requests of one connection run concurrently.
    fn call(
        &self,
        session: Arc<Self::Session>,
        req: Incoming,
    ) -> impl Future<Output = Outgoing> + Send;
}

/// Counters of a running server.
#[derive(Debug, Default)]
pub struct ServerStats {
    /// Connections accepted in all.
    pub connections_accepted: AtomicU64,
    /// Connections open now.
    pub connections_open: AtomicU64,
    /// Connections refused because the limit was reached.
    pub connections_refused: AtomicU64,
    /// Connections closed for breaking the frame protocol or timing out.
    pub connections_dropped: AtomicU64,
    /// Requests answered.
    pub requests: AtomicU64,
}

/// Accepts connections on `listener` and serves them until the process
/// ends. Returns only if accepting fails for good.
pub async fn serve<S: Service>(
    listener: TcpListener,
    service: Arc<S>,
    cfg: ServerConfig,
    stats: Arc<ServerStats>,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(cfg.max_connections));
    let pool = BufPool::new(cfg.pooled_bytes);
    let cfg = Arc::new(cfg);
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                // EMFILE and friends: back off briefly, keep serving.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        stats.connections_accepted.fetch_add(1, Ordering::Relaxed);
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            stats.connections_refused.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(%peer, "connection limit reached; closing");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let (service, cfg, pool, stats) =
            (service.clone(), cfg.clone(), pool.clone(), stats.clone());
        tokio::spawn(async move {
            stats.connections_open.fetch_add(1, Ordering::Relaxed);
            let (rd, wr) = stream.into_split();
            let conn = Conn {
                session: Arc::new(service.open_session(peer)),
                service,
                writer: Arc::new(Mutex::new(Writer {
                    half: wr,
                    poisoned: false,
                })),
                closing: Arc::new(Notify::new()),
                requests: Arc::new(Semaphore::new(cfg.max_inflight_requests)),
                budget: ByteBudget::new(cfg.max_inflight_bytes),
                cfg,
                pool,
                stats: stats.clone(),
            };
            let mut tasks = JoinSet::new();
            if let Err(why) = conn.run(rd, &mut tasks).await {
                stats.connections_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "closing connection: {why}");
            }
            // The slot stands for the connection's memory and socket: both
            // live until its last request has been answered (or failed).
            while tasks.join_next().await.is_some() {}
            stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// Byte budgets are kept in KiB permits so any size fits a semaphore.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

/// A whole budget in KiB permits, at most what a semaphore acquire takes.
fn kib_permits(bytes: usize) -> u32 {
    u32::try_from(kib(bytes))
        .unwrap_or(u32::MAX)
        .min(Semaphore::MAX_PERMITS as u32)
}

/// The write half of a connection. `poisoned` once a response was left
/// half written: nothing may be written after it.
struct Writer {
    half: OwnedWriteHalf,
    poisoned: bool,
}

struct Conn<S: Service> {
    service: Arc<S>,
    session: Arc<S::Session>,
    writer: Arc<Mutex<Writer>>,
    closing: Arc<Notify>,
    requests: Arc<Semaphore>,
    budget: ByteBudget,
    cfg: Arc<ServerConfig>,
    pool: Arc<BufPool>,
    stats: Arc<ServerStats>,
}

impl<S: Service> Conn<S> {
    /// Reads frames until the peer leaves (Ok) or misbehaves (Err); each
    /// request runs as a task in `tasks`.
    async fn run(&self, rd: OwnedReadHalf, tasks: &mut JoinSet<()>) -> Result<(), String> {
        let mut rd = read_ahead(rd);
        let mut fixed = [0u8; FRAME_LEN];
        loop {
            // Reap answered requests so the set holds only running ones.
            while tasks.try_join_next().is_some() {}
            // Wait for the first byte of the next frame (idle), then for the
            // rest of it (frame timeout).
            let first = tokio::select! {
                r = tokio::time::timeout(self.cfg.idle_timeout, rd.read(&mut fixed[..1])) => r,
                _ = self.closing.notified() => return Err("response could not be delivered".into()),
            };
            match first {
                Err(_) => return Err("idle timeout".into()),
                Ok(Ok(0)) => return Ok(()),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e.to_string()),
            }
            let deadline = tokio::time::Instant::now() + self.cfg.frame_timeout;
            let h = self
                .timed(deadline, async {
                    rd.read_exact(&mut fixed[1..])
                        .await
                        .map_err(|e| e.to_string())?;
                    FrameHeader::decode(&fixed, &self.cfg.limits).map_err(|e| e.to_string())
                })
                .await?;
            if h.kind != FrameKind::Request {
                return Err("client sent a response frame".into());
            }
            // Budget first, allocation second: a client cannot make us hold
            // more than the connection's in-flight limits.
            let want = h.header_len as usize + h.payload_len as usize;
            let permits = u32::try_from(kib(want))
                .unwrap_or(u32::MAX)
                .min(self.budget.total);
            let req_permit = self
                .requests
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let byte_permit = self
                .budget
                .conn
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|e| e.to_string())?;
            let budget = self.budget.holding(byte_permit);
            let mut header = self.pool.take(h.header_len as usize);
            // Time spent waiting for the budget is ours, not the client's:
            // the rest of the frame gets a full frame timeout.
            let deadline = tokio::time::Instant::now() + self.cfg.frame_timeout;
            self.timed(deadline, async {
                rd.read_exact(&mut header).await.map_err(|e| e.to_string())
            })
            .await?;
            let payload_len = h.payload_len as usize;
            // A part's buffer is rounded up to a size class (at least
            // 4 KiB), memory the budget does not count: few parts per byte.
            let split = self
                .service
                .payload_parts(h.msg, &header)
                .filter(|lens| (2..=payload_len / MIN_PART_BYTES + 1).contains(&lens.len()))
                .filter(|lens| {
                    lens.iter().try_fold(0usize, |a, &l| a.checked_add(l)) == Some(payload_len)
                });
            let (mut payload, mut parts) = match &split {
                Some(lens) => (
                    PooledBuf::empty(),
                    lens.iter()
                        .map(|&l| match l {
                            0 => PooledBuf::empty(),
                            l => self.pool.take(l),
                        })
                        .collect(),
                ),
                None => (self.pool.take(payload_len), Vec::new()),
            };
            self.timed(deadline, async {
                for buf in std::iter::once(&mut payload).chain(parts.iter_mut()) {
                    rd.read_exact(buf).await.map_err(|e| e.to_string())?;
                }
                Ok(())
            })
            .await?;
            let held = budget.held.clone();
            let incoming = Incoming {
                msg: h.msg,
                header,
                payload,
                parts,
                budget,
            };
            let (service, session, writer, closing, stats, timeout) = (
                self.service.clone(),
                self.session.clone(),
                self.writer.clone(),
                self.closing.clone(),
                self.stats.clone(),
                self.cfg.write_timeout,
            );
            let (msg, req_id) = (h.msg, h.req_id);
            let mut job = Box::pin(async move {
                let out = service.call(session, incoming).await;
                let answered = respond(&writer, msg, req_id, out, timeout).await;
                // The request's bytes, and its response's, are gone now.
                held.lock().take();
                drop(req_permit);
                match answered {
                    Ok(()) => {
                        stats.requests.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(()) => closing.notify_one(),
                }
            });
            // Most requests (lookups, memory spaces) finish without waiting
            // for anything: run each here up to its first wait, and make a
            // task only of those that wait. That spares the spawn and the
            // wake-up of another worker thread per request, which were most
            // of the server's CPU time per small request. A request that
            // waits was polled with a no-op waker; its task polls it again
            // with its own waker first thing.
            let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
            // A panicking request ends itself, as it did in a task of its
            // own, not the connection and the other requests on it.
            let polled = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                job.as_mut().poll(&mut cx)
            }));
            match polled {
                Ok(std::task::Poll::Pending) => {
                    tasks.spawn(job);
                }
                Ok(std::task::Poll::Ready(())) => {}
                Err(_) => tracing::error!("request handler panicked"),
            }
        }
    }

    async fn timed<T>(
        &self,
        deadline: tokio::time::Instant,
        f: impl Future<Output = Result<T, String>>,
    ) -> Result<T, String> {
        tokio::select! {
            r = tokio::time::timeout_at(deadline, f) => r.map_err(|_| "frame timeout".to_string())?,
            _ = self.closing.notified() => Err("response could not be delivered".into()),
        }
    }
}

/// Writes one response frame. Fails at once, writing nothing, if an
/// earlier response was left half written; a write that fails or times out
/// poisons the writer and shuts the socket down before the lock is let go.
async fn respond(
    writer: &Mutex<Writer>,
    msg: u16,
    req_id: u64,
    out: Outgoing,
    timeout: Duration,
) -> Result<(), ()> {
    let header_len = u32::try_from(out.header.len()).map_err(|_| ())?;
    let payload_len: usize = out.payload.iter().map(|p| p.len()).sum();
    let payload_len = u32::try_from(payload_len).map_err(|_| ())?;
    let frame = FrameHeader {
        kind: FrameKind::Response,
        msg,
        status: out.status,
        req_id,
        header_len,
        payload_len,
    }
    .encode();
    let mut slices = Vec::with_capacity(2 + out.payload.len());
    slices.push(IoSlice::new(&frame));
    slices.push(IoSlice::new(&out.header));
    slices.extend(out.payload.iter().map(|p| IoSlice::new(p)));
    let mut w = writer.lock().await;
    if w.poisoned {
        return Err(());
    }
    // Should this future be dropped mid-frame, the writer stays poisoned.
    w.poisoned = true;
    let written = tokio::time::timeout(timeout, write_all_vectored(&mut w.half, &mut slices)).await;
    match written {
        Ok(Ok(())) => {
            w.poisoned = false;
            return Ok(());
        }
        Ok(Err(e)) => tracing::debug!("response write failed: {e}"),
        Err(_) => tracing::debug!("response write timed out"),
    }
    let _ = w.half.shutdown().await;
    Err(())
}

#[cfg(test)]
mod tests {
    use super::ByteBudget;
    use std::future::Future;
    use std::time::Duration;

    /// Polls `fut` once; whether it finished.
    async fn finishes_in_one_poll<F: Future + Unpin>(fut: &mut F) -> bool {
        tokio::select! {
            biased;
            _ = fut => true,
            _ = std::future::ready(()) => false,
        }
    }

    #[tokio::test]
    async fn a_reservation_waits_for_room_and_release_gives_it_back() {
        let a = ByteBudget::new(8 << 10);
        let b = a.share();
        a.reserve(6 << 10).await;
        assert_eq!(a.held(), 6 << 10);
        let mut waiting = Box::pin(b.reserve(4 << 10));
        assert!(
            !finishes_in_one_poll(&mut waiting).await,
            "only 2 KiB of 8 are free"
        );
        a.release();
        assert_eq!(a.held(), 0);
        waiting.await;
        assert_eq!(b.held(), 4 << 10);
    }

    #[tokio::test]
    async fn a_reservation_larger_than_the_budget_gets_the_whole_budget() {
        let a = ByteBudget::new(4 << 10);
        a.reserve(1 << 40).await;
        assert_eq!(a.held(), 4 << 10);
    }

    #[tokio::test]
    async fn two_requests_each_holding_bytes_and_wanting_more_do_not_deadlock() {
        // 4 KiB; each holds 1 KiB and asks for 3 more. Holding while
        // waiting would leave both waiting for ever.
        let a = ByteBudget::new(4 << 10);
        let b = a.share();
        a.reserve(1 << 10).await;
        b.reserve(1 << 10).await;
        let both = async {
            tokio::join!(
                async {
                    a.reserve(3 << 10).await;
                    assert_eq!(a.held(), 4 << 10);
                    a.release();
                },
                b.reserve(3 << 10)
            )
        };
        tokio::time::timeout(Duration::from_secs(5), both)
            .await
            .expect("both reservations are granted in turn");
        assert_eq!(b.held(), 4 << 10);
    }
}
