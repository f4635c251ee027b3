//! Connections that give up on a client that makes no progress.
//!
//! A server whose client stops reading its replies (a hung process, a
//! full receive window that never drains) would otherwise keep the
//! connection's task and socket, and the replies queued for it, for as long
//! as the connection stays open. [`StallGuard`] fails a write (and a
//! flush) that has made no progress for its limit, so the server drops the
//! connection. [`Clock`] is the deadline it keeps, for other kinds of wait.

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Whether `e` (a connection's error) is, or was caused by, a write that
/// [`StallGuard`] gave up.
pub fn gave_up(e: &(dyn Error + 'static)) -> bool {
    caused_by::<GaveUp>(e)
}

/// The error of a write that gave up on its client after `limit` (what
/// [`StallGuard`] fails with; for writes made around it, such as
/// `sendfile` on the same socket, to fail the same way).
pub fn gave_up_after(limit: Duration) -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, GaveUp(limit))
}

/// Whether `e` or an error in its chain of sources is a `T` (also as the
/// payload of an `io::Error`, whose `source` skips its payload).
fn caused_by<T: Error + 'static>(e: &(dyn Error + 'static)) -> bool {
    let mut cause = Some(e);
    // A bounded walk: error chains are short, but never trust a cycle.
    for _ in 0..16 {
        let Some(c) = cause else {
            return false;
        };
        if c.is::<T>() {
            return true;
        }
        if let Some(io) = c.downcast_ref::<io::Error>() {
            if io.get_ref().is_some_and(|inner| inner.is::<T>()) {
                return true;
            }
        }
        cause = c.source();
    }
    false
}

/// The error a write that waited too long fails with.
#[derive(Debug)]
struct GaveUp(Duration);

impl std::fmt::Display for GaveUp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client took no bytes for {:?}", self.0)
    }
}

impl Error for GaveUp {}

/// A deadline that starts when a wait begins and is kept, however often
/// the task wakes meanwhile, until progress ends the wait.
pub struct Clock {
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl Clock {
    /// The limit a wait may last.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Must be called inside a Tokio runtime (it makes a timer).
    pub fn new(limit: Duration) -> Self {
        Self {
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        }
    }

    /// For a poll that found nothing to do: whether the wait it is part
    /// of has now lasted the limit (if not, `cx` wakes when it has).
    pub fn waited_out(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let at = tokio::time::Instant::now() + self.limit;
            self.deadline.as_mut().reset(at);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// A poll made progress (or ended): the next wait starts afresh.
    pub fn progressed(&mut self) {
        self.waiting = false;
    }
}

/// `S`, with writes that fail once they have waited `limit` without
/// progress. Reads pass through: the protocol bounds those (an idle
/// connection's timeout, a request body's own stall limit).
pub struct StallGuard<S> {
    inner: S,
    /// When a pending write or flush gives up.
    clock: Clock,
}

impl<S> StallGuard<S> {
    /// Must be called inside a Tokio runtime (it makes a timer).
    pub fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            clock: Clock::new(limit),
        }
    }

    /// The stream it guards.
    pub fn get_ref(&self) -> &S {
        &self.inner
    }

    /// How long a write may wait.
    pub fn limit(&self) -> Duration {
        self.clock.limit
    }

    /// Passes on a write's or a flush's outcome: one that made progress
    /// (or failed) ends the wait, and one still pending fails once it has
    /// been pending for the limit.
    fn polled<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending if self.clock.waited_out(cx) => {
                Poll::Ready(Err(gave_up_after(self.clock.limit)))
            }
            Poll::Pending => Poll::Pending,
            ready => {
                self.clock.progressed();
                ready
            }
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.polled(cx, r)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.polled(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_flush(cx);
        self.polled(cx, r)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let r = Pin::new(&mut self.inner).poll_shutdown(cx);
        self.polled(cx, r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const LIMIT: Duration = Duration::from_secs(300);

    #[tokio::test(start_paused = true)]
    async fn a_write_the_client_never_takes_fails_after_the_limit() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(server, LIMIT);
        let started = tokio::time::Instant::now();
        // The client reads nothing: the pipe fills, then the write waits.
        let r = tokio::time::timeout(LIMIT * 2, guarded.write_all(&[7u8; 64 * 1024]))
            .await
            .expect("the write gave up within twice the limit");
        let e = r.expect_err("a write nobody takes must give up");
        assert_eq!(e.kind(), io::ErrorKind::TimedOut);
        assert!(
            started.elapsed() >= LIMIT,
            "gave up early: {:?}",
            started.elapsed()
        );
        // The server tells this apart from other errors to log it, also
        // when it comes wrapped (hyper keeps it as the source).
        assert!(gave_up(&e));
        let wrapped = io::Error::other(Wrapped(e));
        assert!(gave_up(&wrapped));
        let other = io::Error::new(io::ErrorKind::TimedOut, "another timeout");
        assert!(!gave_up(&other));
    }

    #[derive(Debug)]
    struct Wrapped(io::Error);

    impl std::fmt::Display for Wrapped {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "wrapped")
        }
    }

    impl std::error::Error for Wrapped {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }

    #[tokio::test(start_paused = true)]
    async fn wake_ups_without_progress_do_not_put_the_limit_off() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(server, LIMIT);
        let started = tokio::time::Instant::now();
        let write = guarded.write_all(&[7u8; 64 * 1024]);
        tokio::pin!(write);
        // Something else wakes the connection's task every third of the
        // limit (as hyper's reads and the body's pieces do); each wake-up
        // polls the stalled write again.
        let mut tick = tokio::time::interval(LIMIT / 3);
        let waited = tokio::time::timeout(LIMIT * 2, async {
            loop {
                tokio::select! {
                    r = &mut write => break r,
                    _ = tick.tick() => {}
                }
            }
        })
        .await
        .expect("the write gave up within twice the limit");
        assert_eq!(waited.expect_err("gave up").kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= LIMIT);
    }

    #[tokio::test(start_paused = true)]
    async fn a_vectored_write_the_client_never_takes_fails_too() {
        let (server, _client) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(server, LIMIT);
        // Fill the pipe, then one more vectored write (hyper's kind) waits.
        let full = [1u8; 1024];
        let n = guarded
            .write_vectored(&[io::IoSlice::new(&full)])
            .await
            .expect("room for the first");
        assert_eq!(n, full.len());
        let more = tokio::time::timeout(
            LIMIT * 2,
            guarded.write_vectored(&[io::IoSlice::new(b"more")]),
        )
        .await
        .expect("the write gave up within twice the limit");
        assert_eq!(more.expect_err("gave up").kind(), io::ErrorKind::TimedOut);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_that_reads_slowly_but_steadily_gets_everything() {
        let (server, mut client) = tokio::io::duplex(1024);
        let mut guarded = StallGuard::new(server, LIMIT);
        let total = 16 * 1024;
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            let mut buf = [0u8; 512];
            loop {
                // Each read comes well within the limit, though the whole
                // transfer takes many times the limit.
                tokio::time::sleep(LIMIT / 2).await;
                match client.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                    Err(e) => panic!("read: {e}"),
                }
            }
            got
        });
        let started = tokio::time::Instant::now();
        guarded
            .write_all(&vec![9u8; total])
            .await
            .expect("a client that keeps reading is not cut off");
        guarded.shutdown().await.expect("shutdown");
        assert!(
            started.elapsed() > LIMIT * 4,
            "the test must outlast the limit"
        );
        let got = reader.await.expect("reader");
        assert_eq!(got, vec![9u8; total]);
    }
}
