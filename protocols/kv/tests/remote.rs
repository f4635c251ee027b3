//! One-sided messages (RDMA_CONNECT, GET_REMOTE, PUT_REMOTE) against a real
//! KV service on 127.0.0.1: without verbs they pass the usual checks and
//! answer `NotSupported`, and the client's region calls fall back to GET /
//! PUT over TCP. The verbs round trips at the end need an RDMA device and
//! skip (with a printed line) without one.

use nitrofs_common::Credentials;
use nitrofs_kv::store::{Durability, SpaceConfig, Store};
use nitrofs_kv::{Authenticator, KvMetrics, KvService, Principal};
use nitrofs_kv_client::{ClientConfig, KvClient, PutMode};
use nitrofs_kv_wire::messages::{
    Auth, Challenge, GetRemote, Hello, KeyOp, Put, PutRemote, RdmaConnect, RemoteBuf, Target,
    ENDPOINT_LEN,
};
use nitrofs_kv_wire::{auth, msg, Routing, Status, MAX_VALUE, PROTOCOL_VERSION};
use nitrofs_rdma_transport::{
    BufPool, Connection, Limits, Payload, Request, Response, ServerConfig, ServerStats,
    TcpConnection,
};
use std::net::SocketAddr;
use std::sync::Arc;

const AK: &str = "AKTEST";
const SECRET: &str = "test-secret";
const SPACE: &str = "blocks";

struct OneKey;

impl Authenticator for OneKey {
    fn lookup(&self, access_key: &str) -> Option<Principal> {
        (access_key == AK).then(|| Principal {
            secret: SECRET.to_string(),
            credentials: Credentials::new(1000, 1000),
        })
    }
}

struct Server {
    addr: SocketAddr,
    metrics: Arc<KvMetrics>,
    _dir: tempfile::TempDir,
}

/// A KV service over a temporary store with one space owned by uid 1000;
/// `verbs` wraps it (the device tests give it a verbs context).
async fn start(verbs: impl FnOnce(KvService) -> KvService) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::open(&dir.path().join("kv")).expect("store"));
    store
        .create_space(SpaceConfig {
            name: SPACE.into(),
            capacity: 256 << 20,
            ttl_secs: None,
            durability: Durability::Memory,
            uid: 1000,
            gid: 1000,
            mode: 0o700,
            acl: None,
            id: 0,
        })
        .expect("space");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let metrics = Arc::new(KvMetrics::default());
    let service = verbs(KvService::new(
        store,
        Arc::new(OneKey),
        Routing::single(1, addr.to_string()),
        metrics.clone(),
    ));
    tokio::spawn(nitrofs_rdma_transport::serve(
        listener,
        Arc::new(service),
        ServerConfig::default(),
        Arc::new(ServerStats::default()),
    ));
    Server {
        addr,
        metrics,
        _dir: dir,
    }
}

async fn call(conn: &TcpConnection, msg_id: u16, header: &[u8], payload: &[&[u8]]) -> Response {
    conn.call(
        Request {
            msg: msg_id,
            header,
            payload,
        },
        None,
    )
    .await
    .expect("call")
}

fn status(r: &Response) -> Option<Status> {
    Status::from_u16(r.status)
}

/// A raw connection; authenticated if `authenticate`.
async fn raw(addr: SocketAddr, authenticate: bool) -> TcpConnection {
    let conn = TcpConnection::connect(addr, Limits::default(), BufPool::new(1 << 20))
        .await
        .expect("connect");
    if authenticate {
        let hello = Hello {
            version: PROTOCOL_VERSION,
            access_key: AK,
        }
        .encode();
        let r = call(&conn, msg::HELLO, &hello, &[]).await;
        let c = Challenge::decode(&r.header).expect("challenge");
        let mac = auth::answer(SECRET.as_bytes(), &c.nonce, AK);
        let r = call(&conn, msg::AUTH, &Auth { mac }.encode(), &[]).await;
        assert_eq!(status(&r), Some(Status::Ok));
    }
    conn
}

/// A well-formed endpoint record (the transport's "NVE1" format).
fn endpoint_record() -> [u8; ENDPOINT_LEN] {
    let mut b = [0u8; ENDPOINT_LEN];
    b[0..4].copy_from_slice(b"NVE1");
    b[4] = 1; // version
    b[5] = 5; // 4096-byte MTU
    b[8] = 1; // QP number 1
    b[12] = 1; // PSN 1
    b
}

fn target(routing_version: u64) -> Target<'static> {
    Target {
        routing_version,
        space: SPACE,
    }
}

const BUF: RemoteBuf = RemoteBuf {
    addr: 0x7f00_0000_0000,
    len: 4096,
    rkey: 42,
};

fn get_remote(routing_version: u64, key: &[u8]) -> Vec<u8> {
    GetRemote {
        target: target(routing_version),
        key,
        buf: BUF,
    }
    .encode()
}

fn put_remote(key: &[u8], len: u32) -> Vec<u8> {
    PutRemote {
        target: target(1),
        key,
        mode: PutMode::Overwrite,
        buf: RemoteBuf { len, ..BUF },
    }
    .encode()
}

#[tokio::test]
async fn one_sided_messages_answer_not_supported_without_verbs() {
    let srv = start(|s| s).await;

    // Before AUTH: refused like any data request.
    let fresh = raw(srv.addr, false).await;
    let connect = RdmaConnect {
        endpoint: endpoint_record(),
    }
    .encode();
    let r = call(&fresh, msg::RDMA_CONNECT, &connect, &[]).await;
    assert_eq!(status(&r), Some(Status::Unauthenticated));
    let r = call(&fresh, msg::GET_REMOTE, &get_remote(1, b"k"), &[]).await;
    assert_eq!(status(&r), Some(Status::Unauthenticated));

    let conn = raw(srv.addr, true).await;
    // RDMA_CONNECT: a malformed header is still a bad request; a good one
    // is refused by a server without verbs.
    let r = call(&conn, msg::RDMA_CONNECT, &connect[..ENDPOINT_LEN - 1], &[]).await;
    assert_eq!(status(&r), Some(Status::BadRequest));
    let r = call(&conn, msg::RDMA_CONNECT, &connect, &[]).await;
    assert_eq!(status(&r), Some(Status::NotSupported));
    assert!(r.header.is_empty());

    // A value to ask for.
    let put = Put {
        target: target(1),
        key: b"k",
        mode: PutMode::Overwrite,
    }
    .encode();
    let r = call(&conn, msg::PUT, &put, &[b"value"]).await;
    assert_eq!(status(&r), Some(Status::Ok));

    // GET_REMOTE: GET's checks first, then NotSupported (no queue pair).
    let r = call(&conn, msg::GET_REMOTE, &get_remote(1, b"k"), &[]).await;
    assert_eq!(status(&r), Some(Status::NotSupported));
    assert!(matches!(r.payload, Payload::Empty));
    let r = call(&conn, msg::GET_REMOTE, &get_remote(7, b"k"), &[]).await;
    assert_eq!(status(&r), Some(Status::StaleRouting));
    let other = GetRemote {
        target: Target {
            routing_version: 1,
            space: "nope",
        },
        key: b"k",
        buf: BUF,
    }
    .encode();
    let r = call(&conn, msg::GET_REMOTE, &other, &[]).await;
    assert_eq!(status(&r), Some(Status::NoSuchSpace));
    let mut padded = get_remote(1, b"k");
    padded.push(0);
    let r = call(&conn, msg::GET_REMOTE, &padded, &[]).await;
    assert_eq!(status(&r), Some(Status::BadRequest));

    // PUT_REMOTE: PUT's checks and size limit, then NotSupported, and
    // nothing is stored.
    let r = call(&conn, msg::PUT_REMOTE, &put_remote(b"new", 5), &[]).await;
    assert_eq!(status(&r), Some(Status::NotSupported));
    let get = KeyOp {
        target: target(1),
        key: b"new",
        max_len: u64::MAX,
    }
    .encode();
    let r = call(&conn, msg::GET, &get, &[]).await;
    assert_eq!(status(&r), Some(Status::NotFound), "nothing stored");
    let too_large = u32::try_from(MAX_VALUE + 1).expect("fits");
    let r = call(&conn, msg::PUT_REMOTE, &put_remote(b"new", too_large), &[]).await;
    assert_eq!(status(&r), Some(Status::TooLarge));
    let mut bad_mode = put_remote(b"new", 5);
    let at = bad_mode.len() - 17;
    bad_mode[at] = 9;
    let r = call(&conn, msg::PUT_REMOTE, &bad_mode, &[]).await;
    assert_eq!(status(&r), Some(Status::BadRequest));

    assert_eq!(srv.metrics.requests(msg::RDMA_CONNECT), 3);
    assert_eq!(srv.metrics.requests(msg::GET_REMOTE), 5);
    assert_eq!(srv.metrics.requests(msg::PUT_REMOTE), 3);
    let mut text = String::new();
    srv.metrics.render(&mut text);
    assert!(
        text.contains("nitrofs_kv_responses_total{status=\"16\"}"),
        "{text}"
    );
}

fn client_config(addr: SocketAddr) -> ClientConfig {
    ClientConfig::new(&addr.to_string(), AK, SECRET)
}

fn pattern(n: usize, seed: u8) -> Vec<u8> {
    (0..n).map(|i| (i as u8).wrapping_mul(31) ^ seed).collect()
}

#[tokio::test]
async fn client_regions_work_over_tcp_without_verbs() {
    let srv = start(|s| s).await;
    let client = KvClient::connect(client_config(srv.addr))
        .await
        .expect("connect");
    assert!(!client.rdma_enabled(), "no verbs on the server here");

    const N: usize = 256 * 1024;
    let mut src = client.register(N);
    assert!(!src.is_registered(), "a plain region without rdma");
    assert_eq!(src.len(), N);
    src.copy_from_slice(&pattern(N, 7));

    // put_from: the region's first `len` bytes, immutable-block semantics.
    let len = N - 1000;
    assert!(client
        .put_from(SPACE, b"blk", &src, len, PutMode::IfAbsent)
        .await
        .expect("put_from"));
    assert!(!client
        .put_from(SPACE, b"blk", &src, len, PutMode::IfAbsent)
        .await
        .expect("put_from again"));
    let err = client
        .put_from(SPACE, b"blk", &src, N + 1, PutMode::Overwrite)
        .await
        .expect_err("longer than the region");
    assert!(err.to_string().contains("region"), "{err}");

    // get_into: straight into a region.
    let dst = client.register(N);
    let (dst, n) = client.get_into(SPACE, b"blk", dst).await.expect("get_into");
    assert_eq!(n, Some(len));
    assert!(dst[..len] == src[..len]);
    let (_dst, n) = client
        .get_into(SPACE, b"absent", dst)
        .await
        .expect("get_into absent");
    assert_eq!(n, None);
    let small = client.register(len - 1);
    let err = client
        .get_into(SPACE, b"blk", small)
        .await
        .expect_err("too small");
    assert_eq!(err.status(), Some(Status::BufferTooSmall));

    // Overwrite replaces; the plain GET sees it.
    src[..3].copy_from_slice(b"new");
    assert!(client
        .put_from(SPACE, b"blk", &src, 3, PutMode::Overwrite)
        .await
        .expect("overwrite"));
    assert_eq!(
        client.get(SPACE, b"blk").await.expect("get").as_deref(),
        Some(&b"new"[..])
    );
    // A zero-length value.
    assert!(client
        .put_from(SPACE, b"empty", &src, 0, PutMode::Overwrite)
        .await
        .expect("empty put"));
    let (_, n) = client
        .get_into(SPACE, b"empty", client.register(16))
        .await
        .expect("empty get");
    assert_eq!(n, Some(0));

    // All of it went over GET / PUT: no one-sided message was even tried.
    assert_eq!(srv.metrics.requests(msg::RDMA_CONNECT), 0);
    assert_eq!(srv.metrics.requests(msg::GET_REMOTE), 0);
    assert_eq!(srv.metrics.requests(msg::PUT_REMOTE), 0);
    assert!(srv.metrics.requests(msg::GET) >= 4);
}

/// Device-only: a server with verbs and a hand-built client queue pair;
/// GET_REMOTE lands the value in the client's registered region and
/// PUT_REMOTE stores the region's bytes.
#[cfg(feature = "rdma")]
#[tokio::test]
async fn one_sided_round_trip_on_a_device() {
    use nitrofs_rdma_transport::verbs::{probe, Endpoint, VerbsContext};
    if let Err(why) = probe() {
        println!("one_sided_round_trip_on_a_device: skipped, no RDMA device ({why})");
        return;
    }
    let ctx = VerbsContext::open_first().expect("device");
    let server_ctx = ctx.clone();
    let srv = start(move |s| s.with_verbs(server_ctx)).await;
    let conn = raw(srv.addr, true).await;
    let prepared = ctx.prepare().expect("prepare");
    let connect = RdmaConnect {
        endpoint: prepared.endpoint().encode(),
    }
    .encode();
    let r = call(&conn, msg::RDMA_CONNECT, &connect, &[]).await;
    assert_eq!(status(&r), Some(Status::Ok));
    let peer = RdmaConnect::decode(&r.header).expect("server endpoint");
    let peer = Endpoint::decode(&peer.endpoint).expect("endpoint record");
    let _qp = prepared.complete(&peer).expect("complete");

    const N: usize = 1 << 20;
    let value = pattern(N, 3);
    let put = Put {
        target: target(1),
        key: b"v",
        mode: PutMode::Overwrite,
    }
    .encode();
    assert_eq!(
        status(&call(&conn, msg::PUT, &put, &[&value]).await),
        Some(Status::Ok)
    );
    let region = ctx.register(N).expect("register");
    let buf = region.remote();
    let header = GetRemote {
        target: target(1),
        key: b"v",
        buf: RemoteBuf {
            addr: buf.addr,
            len: buf.len,
            rkey: buf.rkey,
        },
    }
    .encode();
    let r = call(&conn, msg::GET_REMOTE, &header, &[]).await;
    assert_eq!(status(&r), Some(Status::Ok));
    assert_eq!(
        nitrofs_kv_wire::messages::decode_u64(&r.header),
        Ok(N as u64)
    );
    assert!(region[..] == value[..], "the value landed by RDMA WRITE");

    let mut src = ctx.register(4096).expect("register");
    src.copy_from_slice(&pattern(4096, 9));
    let b = src.remote();
    let header = PutRemote {
        target: target(1),
        key: b"w",
        mode: PutMode::IfAbsent,
        buf: RemoteBuf {
            addr: b.addr,
            len: b.len,
            rkey: b.rkey,
        },
    }
    .encode();
    let r = call(&conn, msg::PUT_REMOTE, &header, &[]).await;
    assert_eq!(status(&r), Some(Status::Ok));
    let r = call(&conn, msg::PUT_REMOTE, &header, &[]).await;
    assert_eq!(status(&r), Some(Status::Exists));
    let get = KeyOp {
        target: target(1),
        key: b"w",
        max_len: u64::MAX,
    }
    .encode();
    let r = call(&conn, msg::GET, &get, &[]).await;
    match r.payload {
        Payload::Pooled(b) => assert!(b[..] == src[..], "stored what RDMA READ took"),
        other => panic!("expected the value, got {other:?}"),
    }

    // The client crate end to end (one-sided when it was built with its
    // `rdma` feature too; over TCP otherwise).
    let client = KvClient::connect(client_config(srv.addr))
        .await
        .expect("client");
    let mut region = client.register(N);
    region.copy_from_slice(&value);
    assert!(client
        .put_from(SPACE, b"c", &region, N, PutMode::Overwrite)
        .await
        .expect("put_from"));
    let (back, n) = client
        .get_into(SPACE, b"c", client.register(N))
        .await
        .expect("get_into");
    assert_eq!(n, Some(N));
    assert!(back[..] == value[..]);
    if client.rdma_enabled() {
        assert!(region.is_registered());
        assert!(srv.metrics.requests(msg::GET_REMOTE) >= 2);
        assert!(srv.metrics.requests(msg::PUT_REMOTE) >= 3);
    } else {
        println!(
            "one_sided_round_trip_on_a_device: kv-client built without rdma; its calls used TCP"
        );
    }
}
