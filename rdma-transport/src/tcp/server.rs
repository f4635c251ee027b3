//! The server end: one reader per connection reads frames (bounded sizes,
//! bounded time), each request runs as its own task, responses go back in
//! completion order under a write lock. A connection that breaks the frame
//! protocol, stalls mid-frame or stops reading is closed; nothing it does
//! reaches other connections.

use super::write_all_vectored;
use crate::buf::{BufPool, PooledBuf};
use crate::frame::{FrameHeader, FrameKind, Limits, FRAME_LEN};
use bytes::Bytes;
use std::future::Future;
use std::io::IoSlice;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpListener;
use tokio::sync::{Mutex, Notify, Semaphore};

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

/// A request as the service sees it.
#[derive(Debug)]
pub struct Incoming {
    /// The protocol's message id.
    pub msg: u16,
    /// Encoded request header.
    pub header: PooledBuf,
    /// Payload, read from the socket straight into this buffer.
    pub payload: PooledBuf,
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
                writer: Arc::new(Mutex::new(wr)),
                closing: Arc::new(Notify::new()),
                requests: Arc::new(Semaphore::new(cfg.max_inflight_requests)),
                bytes: Arc::new(Semaphore::new(kib(cfg.max_inflight_bytes))),
                cfg,
                pool,
                stats: stats.clone(),
            };
            if let Err(why) = conn.run(rd).await {
                stats.connections_dropped.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%peer, "closing connection: {why}");
            }
            stats.connections_open.fetch_sub(1, Ordering::Relaxed);
            drop(slot);
        });
    }
}

/// Byte budgets are kept in KiB permits so any size fits a semaphore.
fn kib(bytes: usize) -> usize {
    bytes.div_ceil(1024).max(1)
}

struct Conn<S: Service> {
    service: Arc<S>,
    session: Arc<S::Session>,
    writer: Arc<Mutex<OwnedWriteHalf>>,
    closing: Arc<Notify>,
    requests: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    cfg: Arc<ServerConfig>,
    pool: Arc<BufPool>,
    stats: Arc<ServerStats>,
}

impl<S: Service> Conn<S> {
    /// Reads frames until the peer leaves (Ok) or misbehaves (Err).
    async fn run(&self, mut rd: OwnedReadHalf) -> Result<(), String> {
        let mut fixed = [0u8; FRAME_LEN];
        loop {
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
            let permits = u32::try_from(kib(want).min(kib(self.cfg.max_inflight_bytes)))
                .map_err(|_| "frame too large".to_string())?;
            let req_permit = self
                .requests
                .clone()
                .acquire_owned()
                .await
                .map_err(|e| e.to_string())?;
            let byte_permit = self
                .bytes
                .clone()
                .acquire_many_owned(permits)
                .await
                .map_err(|e| e.to_string())?;
            let mut header = self.pool.take(h.header_len as usize);
            let mut payload = self.pool.take(h.payload_len as usize);
            // Time spent waiting for the budget is ours, not the client's:
            // the rest of the frame gets a full frame timeout.
            let deadline = tokio::time::Instant::now() + self.cfg.frame_timeout;
            self.timed(deadline, async {
                rd.read_exact(&mut header)
                    .await
                    .map_err(|e| e.to_string())?;
                rd.read_exact(&mut payload)
                    .await
                    .map_err(|e| e.to_string())?;
                Ok(())
            })
            .await?;
            let incoming = Incoming {
                msg: h.msg,
                header,
                payload,
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
            tokio::spawn(async move {
                let out = service.call(session, incoming).await;
                let _permits = (req_permit, byte_permit);
                if respond(&writer, msg, req_id, out, timeout).await.is_err() {
                    closing.notify_one();
                    let mut w = writer.lock().await;
                    let _ = w.shutdown().await;
                } else {
                    stats.requests.fetch_add(1, Ordering::Relaxed);
                }
            });
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

async fn respond(
    writer: &Mutex<OwnedWriteHalf>,
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
    match tokio::time::timeout(timeout, write_all_vectored(&mut *w, &mut slices)).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::debug!("response write failed: {e}");
            Err(())
        }
        Err(_) => {
            tracing::debug!("response write timed out");
            Err(())
        }
    }
}
