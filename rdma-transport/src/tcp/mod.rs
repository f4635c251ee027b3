//! The TCP backend: always built, used wherever verbs are not.
//!
//! Frames ([`crate::frame`]) are written with vectored I/O straight from the
//! caller's slices and read from the socket straight into their destination
//! (a pooled buffer or the caller's region). Many requests are in flight on
//! one connection; responses are matched by request id.

mod client;
mod server;

pub use client::TcpConnection;
pub use server::{serve, ByteBudget, Incoming, Outgoing, ServerConfig, ServerStats, Service};

use std::io::{self, IoSlice};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};

/// Bytes each end reads ahead of the frame it is parsing. A small frame
/// (its fixed part, header and a small payload) then costs one `recv`
/// instead of one per part, and frames that arrive together are read
/// together; a read for more than this (a large payload) bypasses the
/// buffer and lands straight in its destination.
const READ_AHEAD: usize = 16 * 1024;

/// The read half of a connection with [`READ_AHEAD`] buffering.
pub(crate) fn read_ahead<R: AsyncRead>(rd: R) -> BufReader<R> {
    BufReader::with_capacity(READ_AHEAD, rd)
}

/// Writes every byte of `bufs`, as few syscalls as the kernel allows.
pub(crate) async fn write_all_vectored<W: AsyncWrite + Unpin>(
    w: &mut W,
    bufs: &mut [IoSlice<'_>],
) -> io::Result<()> {
    let mut bufs = bufs;
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = w.write_vectored(bufs).await?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    w.flush().await
}

/// Reads and throws away `n` bytes (a payload nobody waits for).
pub(crate) async fn discard<R: AsyncRead + Unpin>(r: &mut R, mut n: u64) -> io::Result<()> {
    let mut scratch = [0u8; 8192];
    while n > 0 {
        let want = scratch.len().min(usize::try_from(n).unwrap_or(usize::MAX));
        let got = r.read(&mut scratch[..want]).await?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        n -= got as u64;
    }
    Ok(())
}
