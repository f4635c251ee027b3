//! Request bodies that give up on a client that sends nothing.
//!
//! A request body the server waits for fails once its client has sent
//! nothing for the endpoint's stall limit (`[s3] stall_timeout_secs`):
//! reads cannot be guarded on the socket, because hyper keeps a read
//! pending there while a handler runs, but a body's frame is polled only
//! when the handler wants it: uploads, and the XML bodies the front and
//! s3s read whole (DeleteObjects, ACLs, tagging, …). Responses are
//! guarded by [`nitrofs_common::stall::StallGuard`] on the connection.

use nitrofs_common::stall::Clock;
use std::error::Error;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

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

/// A request body whose next frame fails once the client has sent
/// nothing for `limit` while the server waited for it. Whoever reads the
/// body may wrap that error in its own (s3s answers InternalError), so
/// the body also raises a flag for the front to answer RequestTimeout.
pub(crate) struct StallBody<B> {
    inner: B,
    clock: Clock,
    gave_up: Arc<AtomicBool>,
    /// Raised once any of the body, or its end, has come.
    arrived: Option<Arc<AtomicBool>>,
}

impl<B> StallBody<B> {
    /// Must be called inside a Tokio runtime (it makes a timer). `gave_up`
    /// is set when the body fails for a stalled client.
    pub(crate) fn new(inner: B, limit: Duration, gave_up: Arc<AtomicBool>) -> Self {
        Self {
            inner,
            clock: Clock::new(limit),
            gave_up,
            arrived: None,
        }
    }

    /// The same, also raising `arrived` once any of the body, or its end,
    /// has come (the front closes a connection whose held-back body never
    /// came, after answering it).
    pub(crate) fn reporting_arrival(self, arrived: Arc<AtomicBool>) -> Self {
        Self {
            arrived: Some(arrived),
            ..self
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
                let limit = self.clock.limit();
                tracing::info!("request body given up: its client {NO_BODY_BYTES} for {limit:?}");
                self.gave_up.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(BodyStalled(limit)))))
            }
            Poll::Ready(frame) => {
                self.clock.progressed();
                if let Some(flag) = &self.arrived {
                    flag.store(true, Ordering::Relaxed);
                }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::Future;
    use std::io;
    use tokio::time::Sleep;

    const LIMIT: Duration = Duration::from_secs(300);

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
    async fn a_held_back_body_reports_whether_any_of_it_came() {
        let (came, none) = (
            Arc::new(AtomicBool::new(false)),
            Arc::new(AtomicBool::new(false)),
        );
        let flag = Arc::new(AtomicBool::new(false));
        let mut body = StallBody::new(Trickle::new(1, Duration::from_secs(1)), LIMIT, flag.clone())
            .reporting_arrival(came.clone());
        assert!(next_frame(&mut body).await.expect("a frame").is_ok());
        assert!(came.load(Ordering::Relaxed));
        // A body of which nothing comes is given up on, and never arrived.
        let mut silent = StallBody::new(Trickle::new(0, LIMIT), LIMIT, flag.clone())
            .reporting_arrival(none.clone());
        assert!(next_frame(&mut silent).await.expect("an error").is_err());
        assert!(flag.load(Ordering::Relaxed));
        assert!(!none.load(Ordering::Relaxed));
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
