//! The client end of a TCP connection: callers write their own frames
//! (under a lock, so frames never interleave) and one reader task routes
//! each response to the caller waiting for its request id.
//!
//! A frame left half written (its caller cancelled mid-write, or the write
//! failed) would make the server read the next frame's bytes as the rest of
//! this one. So an unfinished write poisons the connection while still
//! holding the write lock: the write half is shut down and the connection
//! marked closed, and every later writer, once it has the lock, sees that
//! and fails with [`TransportError::Closed`] without writing a byte (the
//! pool then opens a new connection).

use super::{discard, read_ahead, write_all_vectored};
use crate::buf::{BufPool, MemoryRegion, PooledBuf};
use crate::frame::{FrameHeader, FrameKind, Limits, FRAME_LEN};
use crate::{Connection, Payload, Request, Response, TransportError};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::io::IoSlice;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpStream, ToSocketAddrs};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

type Reply = Result<Response, TransportError>;

struct Pending {
    tx: oneshot::Sender<Reply>,
    region: Option<MemoryRegion>,
}

struct Inner {
    /// `None` once poisoned: the write half was shut down after a frame
    /// was cut short, and nothing may be written after it.
    writer: tokio::sync::Mutex<Option<OwnedWriteHalf>>,
    pending: Mutex<HashMap<u64, Pending>>,
    closed: AtomicBool,
    reason: Mutex<String>,
    limits: Limits,
    pool: Arc<BufPool>,
}

impl Inner {
    fn close(&self, why: &str) {
        if !self.closed.swap(true, Ordering::SeqCst) {
            *self.reason.lock() = why.to_string();
        }
        let waiting: Vec<Pending> = self.pending.lock().drain().map(|(_, p)| p).collect();
        for p in waiting {
            let _ = p.tx.send(Err(TransportError::Closed(why.to_string())));
        }
    }

    fn closed_error(&self) -> TransportError {
        TransportError::Closed(self.reason.lock().clone())
    }
}

/// A multiplexed client connection over TCP.
pub struct TcpConnection {
    inner: Arc<Inner>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl std::fmt::Debug for TcpConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnection")
            .field("closed", &self.is_closed())
            .finish()
    }
}

impl TcpConnection {
    /// Connects to `addr`. `pool` supplies buffers for response payloads.
    pub async fn connect(
        addr: impl ToSocketAddrs,
        limits: Limits,
        pool: Arc<BufPool>,
    ) -> Result<Self, TransportError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        let (rd, wr) = stream.into_split();
        let inner = Arc::new(Inner {
            writer: tokio::sync::Mutex::new(Some(wr)),
            pending: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
            reason: Mutex::new(String::new()),
            limits,
            pool,
        });
        let reader = tokio::spawn(read_loop(rd, inner.clone()));
        Ok(Self {
            inner,
            next_id: AtomicU64::new(1),
            reader,
        })
    }

    /// Requests currently waiting for their response.
    pub fn in_flight(&self) -> usize {
        self.inner.pending.lock().len()
    }

    async fn call_inner(&self, req: Request<'_>, region: Option<MemoryRegion>) -> Reply {
        if self.is_closed() {
            return Err(self.inner.closed_error());
        }
        let payload_len: usize = req.payload.iter().map(|p| p.len()).sum();
        let header_len = u32::try_from(req.header.len()).ok();
        let payload_len32 = u32::try_from(payload_len).ok();
        let (Some(header_len), Some(payload_len)) = (header_len, payload_len32) else {
            return Err(TransportError::Protocol("request too large".into()));
        };
        if header_len > self.inner.limits.max_header || payload_len > self.inner.limits.max_payload
        {
            return Err(TransportError::Protocol(format!(
                "request of {payload_len} payload bytes exceeds the frame limits"
            )));
        }
        let req_id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.inner
            .pending
            .lock()
            .insert(req_id, Pending { tx, region });
        // If this future is dropped before the answer, forget the request.
        let mut forget = Forget {
            inner: &self.inner,
            req_id,
            armed: true,
        };
        // A close that drained `pending` between the check above and the
        // insert would leave this call waiting forever; `close` sets the
        // flag before draining, so checking again after inserting is enough.
        if self.is_closed() {
            return Err(self.inner.closed_error());
        }
        let frame = FrameHeader {
            kind: FrameKind::Request,
            msg: req.msg,
            status: 0,
            req_id,
            header_len,
            payload_len,
        }
        .encode();
        {
            let mut slices = Vec::with_capacity(2 + req.payload.len());
            slices.push(IoSlice::new(&frame));
            slices.push(IoSlice::new(req.header));
            slices.extend(req.payload.iter().map(|p| IoSlice::new(p)));
            let mut frame_write = FrameWrite {
                writer: self.inner.writer.lock().await,
                inner: &self.inner,
                done: false,
            };
            // Checked again under the lock: a writer cancelled mid-frame
            // while this one waited has poisoned the connection, and
            // nothing may follow its partial frame.
            let half = match frame_write.writer.as_mut() {
                Some(half) if !self.is_closed() => half,
                _ => {
                    frame_write.done = true;
                    return Err(self.inner.closed_error());
                }
            };
            let written = write_all_vectored(half, &mut slices).await;
            frame_write.done = true;
            if let Err(e) = written {
                frame_write.poison(&format!("write failed: {e}"));
                return Err(TransportError::Io(e));
            }
        }
        let reply = rx.await;
        forget.armed = false;
        match reply {
            Ok(r) => r,
            Err(_) => Err(self.inner.closed_error()),
        }
    }
}

struct Forget<'a> {
    inner: &'a Inner,
    req_id: u64,
    armed: bool,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.inner.pending.lock().remove(&self.req_id);
        }
    }
}

/// A frame being written, holding the write lock. Dropped before `done`
/// (the call was cancelled mid-frame), it poisons the connection.
struct FrameWrite<'a> {
    writer: tokio::sync::MutexGuard<'a, Option<OwnedWriteHalf>>,
    inner: &'a Inner,
    done: bool,
}

impl FrameWrite<'_> {
    /// Closes the connection and shuts its write half down (dropping it
    /// sends FIN), still under the write lock, so no later frame can follow
    /// the partial one.
    fn poison(&mut self, why: &str) {
        self.inner.close(why);
        self.writer.take();
    }
}

impl Drop for FrameWrite<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.poison("a request was cancelled in the middle of its frame");
        }
    }
}

impl Connection for TcpConnection {
    fn call<'a>(
        &'a self,
        req: Request<'a>,
        region: Option<MemoryRegion>,
    ) -> impl std::future::Future<Output = Reply> + Send + 'a {
        self.call_inner(req, region)
    }

    fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::SeqCst)
    }
}

impl Drop for TcpConnection {
    fn drop(&mut self) {
        self.reader.abort();
        self.inner.close("connection dropped");
    }
}

async fn read_loop(rd: OwnedReadHalf, inner: Arc<Inner>) {
    let mut rd = read_ahead(rd);
    let why = match read_responses(&mut rd, &inner).await {
        Ok(()) => "closed by the server".to_string(),
        Err(e) => e.to_string(),
    };
    inner.close(&why);
}

async fn read_responses<R: AsyncRead + Unpin>(
    rd: &mut R,
    inner: &Inner,
) -> Result<(), TransportError> {
    let mut fixed = [0u8; FRAME_LEN];
    loop {
        match rd.read_exact(&mut fixed).await {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
            Err(e) => return Err(e.into()),
        }
        let h = FrameHeader::decode(&fixed, &inner.limits)?;
        if h.kind != FrameKind::Response {
            return Err(TransportError::Protocol(
                "server sent a request frame".into(),
            ));
        }
        let mut header = inner.pool.take(h.header_len as usize);
        rd.read_exact(&mut header).await?;
        let pending = inner.pending.lock().remove(&h.req_id);
        let plen = h.payload_len as usize;
        let Some(Pending { tx, mut region }) = pending else {
            // Its caller gave up; skip the bytes.
            discard(rd, h.payload_len as u64).await?;
            continue;
        };
        let payload = if plen == 0 {
            Payload::Empty
        } else if let Some(r) = region.as_mut().filter(|r| r.len() >= plen) {
            rd.read_exact(&mut r[..plen]).await?;
            Payload::InRegion(plen)
        } else {
            let mut buf: PooledBuf = inner.pool.take(plen);
            rd.read_exact(&mut buf).await?;
            Payload::Pooled(buf)
        };
        let _ = tx.send(Ok(Response {
            msg: h.msg,
            status: h.status,
            header,
            payload,
            region,
        }));
    }
}
