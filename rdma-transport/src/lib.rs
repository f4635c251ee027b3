//! The transport layer: how request and response frames, and the bulk bytes
//! behind them, move between a client and a data node.
//!
//! It owns the frame format ([`frame`]), payload buffers and registered
//! memory regions ([`buf`]), the TCP backend that is always built ([`tcp`])
//! and, behind the `rdma` cargo feature, the verbs backend (`verbs`). It knows
//! nothing of keys, spaces or files: a protocol (the KV service) numbers its
//! messages, encodes its headers and gives them to a [`Connection`].
//!
//! Semantics every backend provides:
//! - **two-sided messages**: a request frame (message id, encoded header,
//!   payload) gets exactly one response frame with the same request id; many
//!   requests may be in flight on one connection and answers may come back
//!   in any order;
//! - **one-sided transfers**: a caller may hand a [`MemoryRegion`] to a call;
//!   the response's bulk bytes are placed straight into it (a GET's value
//!   lands in the caller's buffer without an intermediate copy), and a
//!   request's payload is taken straight from the caller's slices (the
//!   server pulls a PUT's value). On verbs these are RDMA WRITE / READ on
//!   registered memory; on TCP the bytes ride in the frame and are read from
//!   the socket directly into the region or a pooled buffer.
//!
//! This crate alone may contain `unsafe`, and only in the verbs module.

pub mod buf;
pub mod frame;
pub mod tcp;
#[cfg(feature = "rdma")]
pub mod verbs;

pub use buf::{BufPool, MemoryRegion, PooledBuf, RemoteBuf};
pub use frame::Limits;
pub use tcp::{
    serve, ByteBudget, Incoming, Outgoing, ServerConfig, ServerStats, Service, TcpConnection,
};

use std::future::Future;

/// Errors of a transport.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The socket or device failed.
    #[error("transport I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The peer broke the frame protocol; the connection is closed.
    #[error("protocol violation: {0}")]
    Protocol(String),
    /// The connection is closed (by the peer, an error or a timeout).
    #[error("connection closed: {0}")]
    Closed(String),
    /// The peer did not answer in time.
    #[error("timed out")]
    TimedOut,
}

impl TransportError {
    /// Whether the same request may succeed on a new connection.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            TransportError::Io(_) | TransportError::Closed(_) | TransportError::TimedOut
        )
    }
}

/// An outgoing request: the protocol's message id, its encoded header and
/// the bulk payload, given as slices of the caller's memory (sent without
/// being gathered into one buffer).
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The protocol's numbered message.
    pub msg: u16,
    /// Encoded request header.
    pub header: &'a [u8],
    /// Payload pieces, sent back to back.
    pub payload: &'a [&'a [u8]],
}

/// Where a response's bulk bytes went.
#[derive(Debug)]
pub enum Payload {
    /// The response carried none.
    Empty,
    /// Into a pooled buffer (no region was given, or it was too small).
    Pooled(PooledBuf),
    /// Into the first `len` bytes of the caller's region.
    InRegion(usize),
}

/// A response frame.
#[derive(Debug)]
pub struct Response {
    /// The message id echoed by the server.
    pub msg: u16,
    /// The protocol's status code.
    pub status: u16,
    /// Encoded response header.
    pub header: PooledBuf,
    /// The bulk bytes.
    pub payload: Payload,
    /// The caller's region, handed back whatever happened to the payload.
    pub region: Option<MemoryRegion>,
}

/// One client connection to a server, whatever the backend.
pub trait Connection: Send + Sync {
    /// Sends `req` and waits for its response. `region`, if given, receives
    /// the response payload when it fits.
    fn call<'a>(
        &'a self,
        req: Request<'a>,
        region: Option<MemoryRegion>,
    ) -> impl Future<Output = Result<Response, TransportError>> + Send + 'a;

    /// Whether the connection can no longer be used.
    fn is_closed(&self) -> bool;
}

/// Which backend carries a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// TCP sockets (always available).
    Tcp,
    /// RDMA verbs (RC queue pairs).
    Verbs,
}

impl std::fmt::Display for BackendKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BackendKind::Tcp => "tcp",
            BackendKind::Verbs => "rdma",
        })
    }
}

/// Picks the data-path backend for this process and logs the choice in one
/// line: verbs when built with `rdma` and a device answers, TCP otherwise.
/// `who` names the caller in the log line ("kv server", "kv client").
pub fn select_backend(who: &str) -> BackendKind {
    #[cfg(feature = "rdma")]
    let kind = match verbs::probe() {
        Ok(name) => {
            tracing::info!("{who}: rdma device {name} found; using verbs for one-sided transfers");
            BackendKind::Verbs
        }
        Err(why) => {
            tracing::info!("{who}: no usable RDMA device ({why}); using TCP");
            BackendKind::Tcp
        }
    };
    #[cfg(not(feature = "rdma"))]
    let kind = {
        tracing::info!("{who}: built without the rdma feature; using TCP");
        BackendKind::Tcp
    };
    kind
}
