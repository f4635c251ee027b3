//! Connections and request bodies that give up on a client that makes
//! no progress.
//!
//! A GET's body gives up after the endpoint's stall limit (`[s3]
//! stall_timeout_secs`) without taking a piece, but what hyper already queued stays queued: with the client's
//! receive window full, its write waits forever, and so do the
//! connection's task and socket. [`StallGuard`] fails a write (and a
//! flush) that has made no progress for its limit, so hyper drops the
//! connection.
//!
//! A request body the server waits for is bounded the same way
//! ([`StallBody`]): reads cannot be guarded on the socket, because hyper
//! keeps a read pending there while a handler runs, but a body's frame is
//! polled only when the handler wants it: uploads, and the XML bodies the
//! front and s3s read whole (DeleteObjects, ACLs, tagging, …).

use std::error::Error;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// Whether `e` (a connection's error) is, or was caused by, a write that
/// [`StallGuard`] gave up.
pub(crate) fn gave_up(e: &(dyn Error + 'static)) -> bool {
    caused_by::<GaveUp>(e)
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

/// What the message and the log line of a body given up on say.
pub(crate) const NO_BODY_BYTES: &str = "sent no body bytes";

/// The error a request body fails with once its client has sent nothing
/// for the limit.
#[derive(Debug)]
struct BodyStalled(Duration);

impl std::fmt::Display for BodyStalled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client {NO_BODY_BYTES} for {:?}", self.0)
    }
}

impl Error for BodyStalled {}

/// A deadline that starts when a wait begins and is kept, however often
/// the task wakes meanwhile, until progress ends the wait.
struct Clock {
    limit: Duration,
    deadline: Pin<Box<Sleep>>,
    waiting: bool,
}

impl Clock {
    /// Must be called inside a Tokio runtime (it makes a timer).
    fn new(limit: Duration) -> Self {
        Self {
            limit,
            deadline: Box::pin(tokio::time::sleep(limit)),
            waiting: false,
        }
    }

    /// For a poll that found nothing to do: whether the wait it is part
    /// of has now lasted the limit (if not, `cx` wakes when it has).
    fn waited_out(&mut self, cx: &mut Context<'_>) -> bool {
        if !self.waiting {
            self.waiting = true;
            let at = tokio::time::Instant::now() + self.limit;
            self.deadline.as_mut().reset(at);
        }
        self.deadline.as_mut().poll(cx).is_ready()
    }

    /// A poll made progress (or ended): the next wait starts afresh.
    fn progressed(&mut self) {
        self.waiting = false;
    }
}

/// A request body whose next frame fails once the client has sent
/// nothing for `limit` while the server waited for it. Whoever reads the
/// body may wrap that error in its own (s3s answers InternalError), so
/// the body also raises a flag for the front to answer RequestTimeout.
pub(crate) struct StallBody<B> {
    inner: B,
    clock: Clock,
    gave_up: Arc<AtomicBool>,
}

impl<B> StallBody<B> {
    /// Must be called inside a Tokio runtime (it makes a timer). `gave_up`
    /// is set when the body fails for a stalled client.
    pub(crate) fn new(inner: B, limit: Duration, gave_up: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            clock: Clock::new(limit),
            gave_up,
        }
    }
}

impl<B> hyper::body::Body for StallBody<B>
where
    B: hyper::body::Body<Data = bytes::Bytes> + Unpin,
    B::Error: Into<s3s::StdError>,
{
    type Data = bytes::Bytes;
    type Error = s3s::StdError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, s3s::StdError>>> {
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Pending => {
                if !self.clock.waited_out(cx) {
                    return Poll::Pending;
                }
                let limit = self.clock.limit;
                tracing::info!("request body given up: its client {NO_BODY_BYTES} for {limit:?}");
                self.gave_up.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyStalled(limit)))))
            }
            Poll::Ready(frame) => {
                self.clock.progressed();
                Poll::Ready(frame.map(|f| f.map_err(Into::into)))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// `S`, with writes that fail once they have waited `limit` without
/// progress. Reads pass through (hyper's header timeout and the body
/// readers bound those).
pub(crate) struct StallGuard<S> {
    inner: S,
    /// When a pending write or flush gives up.
    clock: Clock,
}

impl<S> StallGuard<S> {
    /// Must be called inside a Tokio runtime (it makes a timer).
    pub(crate) fn new(inner: S, limit: Duration) -> Self {
        Self {
            inner,
            clock: Clock::new(limit),
        }
    }

    /// Passes on a write's or a flush's outcome: one that made progress
    /// (or failed) ends the wait, and one still pending fails once it has
    /// been pending for the limit.
    fn polled<T>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<T>>) -> Poll<io::Result<T>> {
        match r {
            Poll::Pending if self.clock.waited_out(cx) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                GaveUp(self.clock.limit),
            ))),
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

    /// A request body that sends `frames` frames, one every `gap`, then
    /// nothing ever again.
    struct Trickle {
        frames: usize,
        gap: Duration,
        next: Pin<Box<Sleep>>,
    }

    impl Trickle {
        fn new(frames: usize, gap: Duration) -> Self {
            Self {
                frames,
                gap,
                next: Box::pin(tokio::time::sleep(gap)),
            }
        }
    }

    impl hyper::body::Body for Trickle {
        type Data = bytes::Bytes;
        type Error = io::Error;

        fn poll_frame(
            mut self: Pin<&mut Self>,
            cx: &mut Context<'_>,
        ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, io::Error>>> {
            if self.frames == 0 || self.next.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.frames -= 1;
            let at = tokio::time::Instant::now() + self.gap;
            self.next.as_mut().reset(at);
            Poll::Ready(Some(Ok(hyper::body::Frame::data(
                bytes::Bytes::from_static(b"piece"),
            ))))
        }
    }

    async fn next_frame<B: hyper::body::Body + Unpin>(
        body: &mut B,
    ) -> Option<Result<hyper::body::Frame<B::Data>, B::Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *body).poll_frame(cx)).await
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_client_keeps_sending_slowly_arrives_whole() {
        // Each frame comes after most of the limit: the clock restarts.
        let flag = Arc::new(AtomicBool::new(false));
        let mut body = StallBody::new(Trickle::new(6, LIMIT * 3 / 4), LIMIT, flag.clone());
        let started = tokio::time::Instant::now();
        for i in 0..6 {
            let frame = next_frame(&mut body).await.expect("a frame");
            assert!(frame.is_ok(), "frame {i} failed: {frame:?}");
        }
        assert!(
            started.elapsed() > LIMIT * 4,
            "the test must outlast the limit"
        );
        assert!(!flag.load(Ordering::Relaxed));
    }

    #[tokio::test(start_paused = true)]
    async fn a_body_whose_client_stops_sending_fails_after_the_limit() {
        let flag = Arc::new(AtomicBool::new(false));
        let mut body = StallBody::new(Trickle::new(2, Duration::from_secs(1)), LIMIT, flag.clone());
        for _ in 0..2 {
            assert!(next_frame(&mut body).await.expect("a frame").is_ok());
        }
        let started = tokio::time::Instant::now();
        let e = next_frame(&mut body)
            .await
            .expect("an error, not the end")
            .expect_err("a body nobody sends must give up");
        assert!(
            started.elapsed() >= LIMIT,
            "gave up early: {:?}",
            started.elapsed()
        );
        assert!(e.to_string().contains(NO_BODY_BYTES), "{e}");
        assert!(flag.load(Ordering::Relaxed), "the front is told");
    }

    #[tokio::test(start_paused = true)]
    async fn a_server_that_reads_late_does_not_blame_its_client() {
        use hyper::body::Body as _;
        let flag = Arc::new(AtomicBool::new(false));
        let mut body = StallBody::new(Trickle::new(3, LIMIT * 2), LIMIT, flag.clone());
        // The first poll finds nothing and starts the clock; then the
        // server is busy elsewhere while the frame arrives.
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut body).poll_frame(cx)));
        assert!(first.await.is_pending());
        tokio::time::sleep(LIMIT * 3).await;
        assert!(next_frame(&mut body).await.expect("a frame").is_ok());
        // Or it reads nothing for a while after a frame, with the next
        // already there when it comes back.
        tokio::time::sleep(LIMIT * 3).await;
        assert!(next_frame(&mut body).await.expect("a frame").is_ok());
        assert!(!flag.load(Ordering::Relaxed));
    }
}
