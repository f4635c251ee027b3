//! The transport's behaviour over real sockets on 127.0.0.1: a small test
//! service behind `serve`, real `TcpConnection`s, and raw sockets playing a
//! misbehaving client or a fake server.
//!
//! The `Connection` checks run over every backend that implements it (TCP
//! today; the verbs backend's one-sided transfers are tested in
//! `src/verbs` and skip without a device).

use bytes::Bytes;
use nitrofs_rdma_transport::frame::{FrameHeader, FrameKind, FRAME_LEN};
use nitrofs_rdma_transport::{
    serve, BufPool, Connection, Incoming, Limits, MemoryRegion, Outgoing, Payload, Request,
    ServerConfig, ServerStats, Service, TcpConnection, TransportError,
};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// msg 1: echo header and payload.
const ECHO: u16 = 1;
/// msg 2: header = delay ms (u32 LE) + tag; echo after the delay.
const DELAYED: u16 = 2;
/// msg 3: header = n (u32 LE); reply with `pattern(n)`.
const GENERATE: u16 = 3;
/// msg 4: wait for a permit of the service's `gate`, then echo.
const GATED: u16 = 4;
/// msg 5: header = part lengths (u32 LE each), asked for as separate
/// payload parts; reply with the lengths of the parts received (an empty
/// header if the payload came whole) and the payload's bytes.
const SPLIT: u16 = 5;

struct TestService {
    started: AtomicU64,
    /// Closed until a test adds permits: GATED requests wait here.
    gate: tokio::sync::Semaphore,
}

impl Default for TestService {
    fn default() -> Self {
        Self {
            started: AtomicU64::new(0),
            gate: tokio::sync::Semaphore::new(0),
        }
    }
}

impl Service for TestService {
    type Session = ();

    fn open_session(&self, _peer: SocketAddr) {}

    fn payload_parts(&self, msg: u16, header: &[u8]) -> Option<Vec<usize>> {
        (msg == SPLIT).then(|| {
            (0..header.len() / 4)
                .map(|i| u32_at(header, 4 * i) as usize)
                .collect()
        })
    }

    async fn call(&self, _session: Arc<()>, req: Incoming) -> Outgoing {
        self.started.fetch_add(1, Ordering::SeqCst);
        let header = req.header.to_vec();
        match req.msg {
            ECHO => Outgoing {
                status: 0,
                header,
                payload: vec![req.payload.into_bytes()],
            },
            DELAYED => {
                let ms = u32_at(&header, 0);
                tokio::time::sleep(Duration::from_millis(u64::from(ms))).await;
                Outgoing {
                    status: 0,
                    header,
                    payload: vec![req.payload.into_bytes()],
                }
            }
            GENERATE => {
                let n = u32_at(&header, 0) as usize;
                // Two pieces, to exercise the vectored write.
                let body = pattern(n, 3);
                let (a, b) = body.split_at(n / 3);
                Outgoing {
                    status: 0,
                    header,
                    payload: vec![Bytes::copy_from_slice(a), Bytes::copy_from_slice(b)],
                }
            }
            SPLIT => {
                let lens: Vec<u8> = req
                    .parts
                    .iter()
                    .flat_map(|p| (p.len() as u32).to_le_bytes())
                    .collect();
                let mut payload = vec![req.payload.into_bytes()];
                payload.extend(req.parts.into_iter().map(|p| p.into_bytes()));
                Outgoing {
                    status: 0,
                    header: lens,
                    payload,
                }
            }
            GATED => {
                if let Ok(p) = self.gate.acquire().await {
                    p.forget();
                }
                Outgoing {
                    status: 0,
                    header,
                    payload: vec![req.payload.into_bytes()],
                }
            }
            _ => Outgoing {
                status: 99,
                ..Default::default()
            },
        }
    }
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    b.get(i..i + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .unwrap_or(0)
}

/// Deterministic bytes that differ with position and seed.
fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add((i >> 13) as u8) ^ seed)
        .collect()
}

fn delayed_header(ms: u32, tag: u64) -> Vec<u8> {
    let mut h = ms.to_le_bytes().to_vec();
    h.extend_from_slice(&tag.to_le_bytes());
    h
}

struct Server {
    addr: SocketAddr,
    stats: Arc<ServerStats>,
    svc: Arc<TestService>,
}

async fn start_server(cfg: ServerConfig) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let stats = Arc::new(ServerStats::default());
    let svc = Arc::new(TestService::default());
    tokio::spawn(serve(listener, svc.clone(), cfg, stats.clone()));
    Server { addr, stats, svc }
}

/// Every backend that can carry a `Connection` to `addr` here.
async fn connections(addr: SocketAddr) -> Vec<(&'static str, TcpConnection)> {
    vec![("tcp", connect_tcp(addr).await)]
}

async fn connect_tcp(addr: SocketAddr) -> TcpConnection {
    TcpConnection::connect(addr, Limits::default(), BufPool::new(256 << 20))
        .await
        .expect("connect")
}

/// Polls `done` every few ms until it holds, failing after `limit`.
async fn wait_until(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Reads until EOF or an error; fails if the peer keeps the socket open
/// past `limit`. Returns how long it took.
async fn expect_closed(stream: &mut TcpStream, limit: Duration) -> Duration {
    let start = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at(start + limit, stream.read(&mut buf)).await {
            Err(_) => panic!("the server kept the connection open for {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return start.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

async fn echo_works(conn: &impl Connection) {
    let r = conn
        .call(
            Request {
                msg: ECHO,
                header: b"ping",
                payload: &[b"pong"],
            },
            None,
        )
        .await
        .expect("echo");
    assert_eq!(&r.header[..], b"ping");
    match r.payload {
        Payload::Pooled(p) => assert_eq!(&p[..], b"pong"),
        other => panic!("unexpected payload {other:?}"),
    }
}

#[tokio::test]
async fn header_and_multi_slice_payload_roundtrip_into_region_or_pool() {
    let server = start_server(ServerConfig::default()).await;
    for (backend, conn) in connections(server.addr).await {
        let (a, b, c) = (pattern(1000, 1), pattern(70_000, 2), pattern(5, 3));
        let whole: Vec<u8> = [&a[..], &b[..], &c[..]].concat();
        let req = Request {
            msg: ECHO,
            header: b"the header",
            payload: &[&a, &b, &c],
        };

        // No region: the payload comes in a pooled buffer.
        let r = conn.call(req, None).await.expect(backend);
        assert_eq!((r.msg, r.status), (ECHO, 0), "{backend}");
        assert_eq!(&r.header[..], b"the header", "{backend}");
        match &r.payload {
            Payload::Pooled(p) => assert_eq!(&p[..], &whole[..], "{backend}"),
            other => panic!("{backend}: expected a pooled payload, got {other:?}"),
        }
        assert!(r.region.is_none());

        // A region with room: the bytes land in it.
        let region = MemoryRegion::new(whole.len() + 100);
        let id = region.id();
        let r = conn.call(req, Some(region)).await.expect(backend);
        assert!(
            matches!(r.payload, Payload::InRegion(n) if n == whole.len()),
            "{backend}"
        );
        let region = r.region.expect("region handed back");
        assert_eq!(region.id(), id);
        assert_eq!(&region[..whole.len()], &whole[..], "{backend}");
        assert!(
            region[whole.len()..].iter().all(|&x| x == 0),
            "nothing past the payload"
        );

        // A region too small: pooled instead, and the region still comes back.
        let small = MemoryRegion::new(whole.len() - 1);
        let id = small.id();
        let r = conn.call(req, Some(small)).await.expect(backend);
        match &r.payload {
            Payload::Pooled(p) => assert_eq!(&p[..], &whole[..], "{backend}"),
            other => panic!("{backend}: expected a pooled payload, got {other:?}"),
        }
        let small = r.region.expect("small region handed back");
        assert_eq!(small.id(), id);
        assert!(
            small.iter().all(|&x| x == 0),
            "a too-small region is not written"
        );

        // No payload at all.
        let r = conn
            .call(
                Request {
                    msg: ECHO,
                    header: b"h",
                    payload: &[],
                },
                Some(MemoryRegion::new(10)),
            )
            .await
            .expect(backend);
        assert!(matches!(r.payload, Payload::Empty), "{backend}");
        assert!(r.region.is_some());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_hundred_concurrent_calls_on_one_connection_complete_out_of_order() {
    let server = start_server(ServerConfig::default()).await;
    for (backend, conn) in connections(server.addr).await {
        let conn = Arc::new(conn);
        let finished = Arc::new(AtomicU64::new(0));
        let started_before = server.svc.started.load(Ordering::SeqCst);

        let call = |i: u64, ms: u32| {
            let (conn, finished) = (conn.clone(), finished.clone());
            async move {
                let header = delayed_header(ms, i);
                let body = pattern(64 + (i as usize % 7) * 100, i as u8);
                let r = conn
                    .call(
                        Request {
                            msg: DELAYED,
                            header: &header,
                            payload: &[&body],
                        },
                        None,
                    )
                    .await;
                let order = finished.fetch_add(1, Ordering::SeqCst);
                let r = r.unwrap_or_else(|e| panic!("call {i}: {e}"));
                assert_eq!(&r.header[..], &header[..], "call {i} got another's answer");
                match r.payload {
                    Payload::Pooled(p) => assert_eq!(&p[..], &body[..], "call {i}"),
                    other => panic!("call {i}: {other:?}"),
                }
                order
            }
        };

        // The first request is slow and provably reaches the server first.
        let first = tokio::spawn(call(0, 1000));
        wait_until(
            "the first request to reach the server",
            Duration::from_secs(5),
            || server.svc.started.load(Ordering::SeqCst) > started_before,
        )
        .await;
        let mut rest = tokio::task::JoinSet::new();
        let mut seed = 0x9e37_79b9_u32;
        for i in 1..500u64 {
            seed ^= seed << 13;
            seed ^= seed >> 17;
            seed ^= seed << 5;
            rest.spawn(call(i, seed % 20));
        }
        let mut count = 0;
        while let Some(done) = rest.join_next().await {
            done.expect("call task");
            count += 1;
        }
        assert_eq!(count, 499);
        let first_order = first.await.expect("first call");
        assert!(
            first_order >= 400,
            "{backend}: the slow first call finished {first_order}th; later short calls should overtake it"
        );
        assert_eq!(conn.in_flight(), 0);
    }
}

#[tokio::test]
async fn a_payload_is_read_in_the_parts_the_service_asks_for() {
    let server = start_server(ServerConfig::default()).await;
    let conn = connect_tcp(server.addr).await;
    let lens_header =
        |lens: &[u32]| -> Vec<u8> { lens.iter().flat_map(|l| l.to_le_bytes()).collect() };
    let call = |header: Vec<u8>, body: Vec<u8>| {
        let conn = &conn;
        async move {
            let r = conn
                .call(
                    Request {
                        msg: SPLIT,
                        header: &header,
                        payload: &[&body],
                    },
                    None,
                )
                .await
                .expect("split call");
            let got = match r.payload {
                Payload::Pooled(p) => p.to_vec(),
                other => panic!("unexpected payload {other:?}"),
            };
            assert!(got == body, "the bytes come back in order, whole");
            r.header.to_vec()
        }
    };
    // Parts that add up: one buffer each, an empty part included.
    let lens = [70_000u32, 0, 5, 300_000];
    let body = pattern(lens.iter().sum::<u32>() as usize, 9);
    assert_eq!(call(lens_header(&lens), body).await, lens_header(&lens));
    // Lengths that do not add up to the payload, or a single part: read whole.
    let body = pattern(1000, 4);
    assert_eq!(call(lens_header(&[600, 600]), body.clone()).await, b"");
    assert_eq!(call(lens_header(&[1000]), body.clone()).await, b"");
    // More parts than one per 4 KiB of payload (plus one): read whole.
    assert_eq!(call(lens_header(&[1; 1000]), body).await, b"");
    echo_works(&conn).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_64_mib_payload_travels_both_ways_intact() {
    let server = start_server(ServerConfig::default()).await;
    const N: usize = 64 << 20;
    for (backend, conn) in connections(server.addr).await {
        // Up and back (echo), landing in a region.
        let body = pattern(N, 7);
        let (a, b) = body.split_at(N / 2 + 123);
        let r = conn
            .call(
                Request {
                    msg: ECHO,
                    header: b"big",
                    payload: &[a, b],
                },
                Some(MemoryRegion::new(N)),
            )
            .await
            .expect(backend);
        assert!(
            matches!(r.payload, Payload::InRegion(n) if n == N),
            "{backend}"
        );
        let region = r.region.expect("region");
        assert!(region[..] == body[..], "{backend}: echoed bytes differ");

        // Generated by the server, into a pooled buffer.
        let header = (N as u32).to_le_bytes();
        let r = conn
            .call(
                Request {
                    msg: GENERATE,
                    header: &header,
                    payload: &[],
                },
                None,
            )
            .await
            .expect(backend);
        match r.payload {
            Payload::Pooled(p) => assert!(p[..] == pattern(N, 3)[..], "{backend}: bytes differ"),
            other => panic!("{backend}: {other:?}"),
        }
    }
}

fn request_frame(req_id: u64, header_len: u32, payload_len: u32) -> [u8; FRAME_LEN] {
    frame_of(ECHO, req_id, header_len, payload_len)
}

fn frame_of(msg: u16, req_id: u64, header_len: u32, payload_len: u32) -> [u8; FRAME_LEN] {
    FrameHeader {
        kind: FrameKind::Request,
        msg,
        status: 0,
        req_id,
        header_len,
        payload_len,
    }
    .encode()
}

#[tokio::test]
async fn a_frame_with_bad_magic_closes_only_its_connection() {
    let server = start_server(ServerConfig::default()).await;
    let good = connect_tcp(server.addr).await;
    echo_works(&good).await;

    let mut raw = TcpStream::connect(server.addr).await.expect("raw connect");
    let mut frame = request_frame(1, 4, 4);
    frame[0..4].copy_from_slice(b"HTTP");
    raw.write_all(&frame).await.expect("write");
    raw.write_all(b"hdr!body").await.expect("write");
    expect_closed(&mut raw, Duration::from_secs(5)).await;
    wait_until("the drop to be counted", Duration::from_secs(5), || {
        server.stats.connections_dropped.load(Ordering::SeqCst) == 1
    })
    .await;

    echo_works(&good).await;
    assert!(!good.is_closed());
}

#[tokio::test]
async fn a_lying_payload_length_is_refused_before_allocation() {
    let server = start_server(ServerConfig::default()).await;
    let good = connect_tcp(server.addr).await;
    for (header_len, payload_len) in [(4, u32::MAX), (u32::MAX, 0), (0, (128 << 20) + 1)] {
        let before = server.stats.connections_dropped.load(Ordering::SeqCst);
        let mut raw = TcpStream::connect(server.addr).await.expect("raw connect");
        raw.write_all(&request_frame(1, header_len, payload_len))
            .await
            .expect("write");
        // Had the server believed the length it would wait for 4 GiB; it
        // closes at once instead.
        expect_closed(&mut raw, Duration::from_secs(5)).await;
        wait_until("the drop to be counted", Duration::from_secs(5), || {
            server.stats.connections_dropped.load(Ordering::SeqCst) == before + 1
        })
        .await;
    }
    echo_works(&good).await;
}

fn short_timeouts() -> ServerConfig {
    ServerConfig {
        frame_timeout: Duration::from_millis(300),
        idle_timeout: Duration::from_millis(600),
        ..ServerConfig::default()
    }
}

#[tokio::test]
async fn a_client_stalling_mid_frame_is_closed_after_the_frame_timeout() {
    let server = start_server(short_timeouts()).await;
    let good = connect_tcp(server.addr).await;

    // One stalls inside the fixed header, one inside the payload.
    let mut in_header = TcpStream::connect(server.addr).await.expect("connect");
    in_header
        .write_all(&request_frame(1, 4, 100)[..10])
        .await
        .expect("write");
    let mut in_payload = TcpStream::connect(server.addr).await.expect("connect");
    in_payload
        .write_all(&request_frame(1, 4, 100))
        .await
        .expect("write");
    in_payload.write_all(&[0u8; 50]).await.expect("write");
    let stalled_at = Instant::now();

    // Others are served while they stall.
    for _ in 0..5 {
        echo_works(&good).await;
    }
    for raw in [&mut in_header, &mut in_payload] {
        expect_closed(raw, Duration::from_secs(5)).await;
    }
    let waited = stalled_at.elapsed();
    assert!(
        waited >= Duration::from_millis(250),
        "closed after {waited:?}, before the frame timeout"
    );
    wait_until("the drops to be counted", Duration::from_secs(5), || {
        server.stats.connections_dropped.load(Ordering::SeqCst) == 2
    })
    .await;
    echo_works(&good).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_is_closed_after_the_idle_timeout() {
    let server = start_server(short_timeouts()).await;
    let idle_client = connect_tcp(server.addr).await;
    echo_works(&idle_client).await;
    let mut idle_raw = TcpStream::connect(server.addr).await.expect("connect");
    let since = Instant::now();

    // Meanwhile a busy client (a call every 50 ms) is served and kept.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let busy = {
        let (addr, stop) = (server.addr, stop.clone());
        tokio::spawn(async move {
            let busy = connect_tcp(addr).await;
            let mut calls = 0u32;
            while !stop.load(Ordering::SeqCst) {
                echo_works(&busy).await;
                calls += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            (busy, calls)
        })
    };
    expect_closed(&mut idle_raw, Duration::from_secs(5)).await;
    let waited = since.elapsed();
    assert!(
        waited >= Duration::from_millis(550),
        "closed after {waited:?}, before the idle timeout"
    );
    // The idle TcpConnection notices the server closed it.
    wait_until(
        "the idle client to see the close",
        Duration::from_secs(5),
        || idle_client.is_closed(),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let (busy, calls) = busy.await.expect("busy client");
    assert!(calls >= 5, "only {calls} calls while waiting");
    assert!(!busy.is_closed());
    echo_works(&busy).await;

    let err = idle_client
        .call(
            Request {
                msg: ECHO,
                header: b"",
                payload: &[],
            },
            None,
        )
        .await
        .expect_err("closed connection");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn dropping_a_call_mid_flight_leaves_the_others_working() {
    let server = start_server(ServerConfig::default()).await;
    for (backend, conn) in connections(server.addr).await {
        let answered_before = server.stats.requests.load(Ordering::SeqCst);
        let header = delayed_header(300, 42);
        let body = pattern(200_000, 9);
        let pieces: [&[u8]; 1] = [&body];
        let slow = conn.call(
            Request {
                msg: DELAYED,
                header: &header,
                payload: &pieces,
            },
            None,
        );
        // Give up on it once the server has it.
        let started = server.svc.started.load(Ordering::SeqCst);
        tokio::select! {
            r = slow => panic!("{backend}: the slow call finished early: {r:?}"),
            _ = wait_until("the slow request to arrive", Duration::from_secs(5), || {
                server.svc.started.load(Ordering::SeqCst) > started
            }) => {}
        }
        assert_eq!(
            conn.in_flight(),
            0,
            "{backend}: the dropped call is forgotten"
        );
        echo_works(&conn).await;

        // Its answer (header and 200 KB payload) arrives for nobody and is
        // skipped; the connection carries on.
        wait_until(
            "the abandoned answer to be sent",
            Duration::from_secs(5),
            || server.stats.requests.load(Ordering::SeqCst) >= answered_before + 2,
        )
        .await;
        echo_works(&conn).await;
        assert!(!conn.is_closed(), "{backend}");
    }
}

/// A fake server: accepts one connection and hands it to `script`.
async fn fake_server<F, Fut>(script: F) -> SocketAddr
where
    F: FnOnce(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let (s, _) = listener.accept().await.expect("accept");
        script(s).await;
    });
    addr
}

/// Reads one request frame; returns its header.
async fn read_request(s: &mut TcpStream) -> FrameHeader {
    let mut fixed = [0u8; FRAME_LEN];
    s.read_exact(&mut fixed).await.expect("frame");
    let h = FrameHeader::decode(&fixed, &Limits::default()).expect("valid frame");
    let mut rest = vec![0u8; (h.header_len + h.payload_len) as usize];
    s.read_exact(&mut rest).await.expect("frame body");
    h
}

fn response(req_id: u64, header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = FrameHeader {
        kind: FrameKind::Response,
        msg: ECHO,
        status: 0,
        req_id,
        header_len: header.len() as u32,
        payload_len: payload.len() as u32,
    }
    .encode()
    .to_vec();
    out.extend_from_slice(header);
    out.extend_from_slice(payload);
    out
}

#[tokio::test]
async fn a_server_that_closes_fails_pending_calls_with_a_retryable_error() {
    let addr = fake_server(|mut s| async move {
        // Take both requests, answer neither, hang up.
        read_request(&mut s).await;
        read_request(&mut s).await;
    })
    .await;
    let conn = connect_tcp(addr).await;
    let req = Request {
        msg: ECHO,
        header: b"h",
        payload: &[b"p"],
    };
    let (a, b) = tokio::join!(conn.call(req, None), conn.call(req, None));
    for r in [a, b] {
        let err = r.expect_err("the server hung up");
        assert!(err.is_retryable(), "{err}");
        assert!(matches!(err, TransportError::Closed(_)), "{err}");
    }
    assert!(conn.is_closed());
    let err = conn.call(req, None).await.expect_err("closed");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_response_nobody_asked_for_is_skipped() {
    let addr = fake_server(|mut s| async move {
        let h = read_request(&mut s).await;
        let mut out = response(h.req_id + 1000, b"stray", &pattern(50_000, 1));
        out.extend(response(h.req_id, b"mine", b"payload"));
        s.write_all(&out).await.expect("write");
        // Keep the socket open until the client is done.
        let mut b = [0u8; 1];
        let _ = s.read(&mut b).await;
    })
    .await;
    let conn = connect_tcp(addr).await;
    let r = conn
        .call(
            Request {
                msg: ECHO,
                header: b"h",
                payload: &[],
            },
            None,
        )
        .await
        .expect("the real answer");
    assert_eq!(&r.header[..], b"mine");
    match r.payload {
        Payload::Pooled(p) => assert_eq!(&p[..], b"payload"),
        other => panic!("{other:?}"),
    }
    assert!(!conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_for_the_in_flight_budget_does_not_count_against_the_frame_timeout() {
    // One request at a time, a frame timeout shorter than the service.
    let server = start_server(ServerConfig {
        max_inflight_requests: 1,
        frame_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    let conn = connect_tcp(server.addr).await;
    let slow_header = delayed_header(800, 1);
    let big = pattern(8 << 20, 5);
    let slow = conn.call(
        Request {
            msg: DELAYED,
            header: &slow_header,
            payload: &[],
        },
        None,
    );
    let pieces: [&[u8]; 1] = [&big];
    let large = conn.call(
        Request {
            msg: ECHO,
            header: b"large",
            payload: &pieces,
        },
        None,
    );
    // The large frame waits ~800 ms for the slot; the client is honest and
    // sends it at full speed as soon as the server reads.
    let (slow, large) = tokio::join!(slow, large);
    slow.expect("slow call");
    let large = large.expect("large call behind a busy slot");
    match large.payload {
        Payload::Pooled(p) => assert!(p[..] == big[..]),
        other => panic!("{other:?}"),
    }
    assert_eq!(server.stats.connections_dropped.load(Ordering::SeqCst), 0);
}

/// Polls `fut` once; whether it finished.
async fn finishes_in_one_poll<F: std::future::Future + Unpin>(fut: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = fut => true,
        _ = std::future::ready(()) => false,
    }
}

#[tokio::test]
async fn a_request_cancelled_mid_frame_shuts_the_socket_before_another_frame_can_follow() {
    // The server reads nothing until told, so a large frame stalls in the
    // middle of its write.
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    let (got_tx, got) = tokio::sync::oneshot::channel::<Vec<u8>>();
    let addr = fake_server(|mut s| async move {
        let _ = go_rx.await;
        let mut all = Vec::new();
        let _ = s.read_to_end(&mut all).await;
        let _ = got_tx.send(all);
    })
    .await;
    let conn = connect_tcp(addr).await;
    const BIG: usize = 64 << 20;
    let big = pattern(BIG, 7);
    let pieces: [&[u8]; 1] = [&big];
    let mut first = Box::pin(conn.call(
        Request {
            msg: ECHO,
            header: b"first",
            payload: &pieces,
        },
        None,
    ));
    assert!(
        !finishes_in_one_poll(&mut first).await,
        "a {BIG}-byte frame fit in the socket buffers; the test needs it to stall"
    );
    // The second call queues for the write lock behind the stalled frame.
    const MARKER: &[u8] = b"the-second-frame";
    let mut second = Box::pin(conn.call(
        Request {
            msg: ECHO,
            header: MARKER,
            payload: &[],
        },
        None,
    ));
    assert!(!finishes_in_one_poll(&mut second).await);

    drop(first);
    let _ = go.send(());
    let err = tokio::time::timeout(Duration::from_secs(5), second)
        .await
        .expect("the second call fails fast")
        .expect_err("nothing may be written after a partial frame");
    assert!(matches!(err, TransportError::Closed(_)), "{err}");
    assert!(err.is_retryable(), "{err}");
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert!(conn.is_closed());

    // `conn` is still alive, yet the server sees the stream end right after
    // the partial first frame: the write half was shut down.
    let got = tokio::time::timeout(Duration::from_secs(5), got)
        .await
        .expect("the client shuts its write half down at once")
        .expect("the server's bytes");
    let h = FrameHeader::decode(
        got[..FRAME_LEN].try_into().expect("a whole fixed header"),
        &Limits::default(),
    )
    .expect("the first frame");
    assert_eq!(h.payload_len as usize, BIG);
    let partial = &got[FRAME_LEN..];
    assert!(
        partial.len() < 5 + BIG,
        "only part of the first frame was sent"
    );
    assert_eq!(&partial[..5], b"first");
    assert!(
        partial[5..] == big[..partial.len() - 5],
        "the partial frame holds only its own bytes"
    );

    let err = conn
        .call(
            Request {
                msg: ECHO,
                header: b"",
                payload: &[],
            },
            None,
        )
        .await
        .expect_err("poisoned");
    assert!(err.is_retryable(), "{err}");
}

#[tokio::test]
async fn a_response_cut_short_by_the_write_timeout_is_never_followed_by_another_frame() {
    let server = start_server(ServerConfig {
        write_timeout: Duration::from_millis(300),
        ..ServerConfig::default()
    })
    .await;
    // Three answers larger than the socket buffers, and a client that does
    // not read: the first write times out half done, the others queue.
    const N: u32 = 40 << 20;
    let mut raw = TcpStream::connect(server.addr).await.expect("connect");
    for id in 1..=3 {
        raw.write_all(&frame_of(GENERATE, id, 4, 0))
            .await
            .expect("write");
        raw.write_all(&N.to_le_bytes()).await.expect("write");
    }
    wait_until(
        "a response write to time out",
        Duration::from_secs(10),
        || server.stats.connections_dropped.load(Ordering::SeqCst) == 1,
    )
    .await;

    // Now read everything: whole answers, then at most one partial one,
    // then the end of the stream; never a frame after a partial one.
    let mut all = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut all))
        .await
        .expect("the server closes the connection")
        .expect("read");
    let body = pattern(N as usize, 3);
    let (mut off, mut whole) = (0usize, 0);
    while off < all.len() {
        let rest = &all[off..];
        let Some(fixed) = rest.get(..FRAME_LEN) else {
            break; // a cut fixed header ends the stream
        };
        let h = FrameHeader::decode(fixed.try_into().expect("28 bytes"), &Limits::default())
            .unwrap_or_else(|e| panic!("no frame boundary at byte {off}: {e}"));
        assert_eq!((h.header_len, h.payload_len), (4, N), "at byte {off}");
        let got = &rest[FRAME_LEN..];
        let want_len = 4 + N as usize;
        let n = got.len().min(want_len);
        let mut want = N.to_le_bytes().to_vec();
        want.extend_from_slice(&body);
        assert!(
            got[..n] == want[..n],
            "the frame at byte {off} holds another frame's bytes"
        );
        off += FRAME_LEN + n;
        if n == want_len {
            whole += 1;
        }
    }
    assert!(
        whole < 3,
        "a write timed out, yet all {whole} answers arrived"
    );
}

#[tokio::test]
async fn a_connection_keeps_its_slot_until_its_last_request_is_answered() {
    let server = start_server(ServerConfig {
        max_connections: 1,
        ..ServerConfig::default()
    })
    .await;
    // A request that waits on the gate, then a broken frame: the reader
    // quits while the request still runs.
    let mut first = TcpStream::connect(server.addr).await.expect("connect");
    first
        .write_all(&frame_of(GATED, 1, 4, 0))
        .await
        .expect("write");
    first.write_all(b"gate").await.expect("write");
    wait_until("the gated request to start", Duration::from_secs(5), || {
        server.svc.started.load(Ordering::SeqCst) == 1
    })
    .await;
    let mut bad = request_frame(2, 0, 0);
    bad[0..4].copy_from_slice(b"HTTP");
    first.write_all(&bad).await.expect("write");
    wait_until("the reader to give up", Duration::from_secs(5), || {
        server.stats.connections_dropped.load(Ordering::SeqCst) == 1
    })
    .await;
    assert_eq!(
        server.stats.connections_open.load(Ordering::SeqCst),
        1,
        "the connection counts while its request runs"
    );

    // The slot is still taken: another connection is refused.
    let mut second = TcpStream::connect(server.addr).await.expect("connect");
    expect_closed(&mut second, Duration::from_secs(5)).await;
    assert_eq!(server.stats.connections_refused.load(Ordering::SeqCst), 1);

    // The request ends and is answered; then the slot comes free.
    server.svc.gate.add_permits(1);
    let mut fixed = [0u8; FRAME_LEN];
    first.read_exact(&mut fixed).await.expect("the answer");
    let h = FrameHeader::decode(&fixed, &Limits::default()).expect("a response");
    assert_eq!((h.kind, h.req_id), (FrameKind::Response, 1));
    let mut header = [0u8; 4];
    first.read_exact(&mut header).await.expect("its header");
    assert_eq!(&header, b"gate");
    expect_closed(&mut first, Duration::from_secs(5)).await;
    wait_until("the slot to come free", Duration::from_secs(5), || {
        server.stats.connections_open.load(Ordering::SeqCst) == 0
    })
    .await;
    let third = connect_tcp(server.addr).await;
    echo_works(&third).await;
}
