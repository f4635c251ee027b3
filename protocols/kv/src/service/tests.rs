//! Unit tests of the request handler: permission bits, the connection
//! byte budget of GETs, and decode errors mapped to statuses.

use super::*;
use crate::store::PutMode as StorePutMode;
use nitrofs_rdma_transport::{BufPool, PooledBuf};
use std::future::Future;

struct NoKeys;

impl Authenticator for NoKeys {
    fn lookup(&self, _: &str) -> Option<Principal> {
        None
    }
}

/// Polls `fut` once; whether it finished.
async fn finishes_in_one_poll<F: Future + Unpin>(fut: &mut F) -> bool {
    tokio::select! {
        biased;
        _ = fut => true,
        _ = std::future::ready(()) => false,
    }
}

/// A service over a store with one memory space "s" open to all, and
/// a session authenticated as root.
fn service(dir: &std::path::Path) -> (KvService, Arc<Session>) {
    let store = Arc::new(Store::open(&dir.join("kv")).expect("store"));
    let mut space = cfg(0, 0, 0o777);
    space.capacity = 64 << 20;
    store.create_space(space).expect("space");
    let svc = KvService::new(
        store,
        Arc::new(NoKeys),
        Routing::single(1, "127.0.0.1:1".into()),
        Arc::new(KvMetrics::default()),
    );
    let session = svc.open_session("127.0.0.1:2".parse().expect("addr"));
    *session.state.lock() = AuthState::Ready {
        credentials: Credentials::root(),
    };
    (svc, Arc::new(session))
}

fn incoming(msg_id: u16, header: &[u8], budget: ByteBudget) -> Incoming {
    let mut h = BufPool::new(0).take(header.len());
    h.copy_from_slice(header);
    Incoming {
        msg: msg_id,
        header: h,
        payload: PooledBuf::empty(),
        budget,
    }
}

fn key_op(key: &[u8]) -> Vec<u8> {
    m::KeyOp {
        target: Target {
            routing_version: 1,
            space: "s",
        },
        key,
        max_len: u64::MAX,
    }
    .encode()
}

#[tokio::test]
async fn a_get_waits_for_room_for_its_value_in_the_connection_budget() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, session) = service(dir.path());
    let value = Bytes::from(vec![7u8; 64 << 10]);
    let space = svc.store().space("s").expect("space");
    space
        .put(b"k", value.clone(), StorePutMode::Overwrite)
        .expect("put");

    // 128 KiB per connection, 100 KiB of it held by another request.
    let conn = ByteBudget::new(128 << 10);
    let other = conn.share();
    other.reserve(100 << 10).await;
    let mut get = Box::pin(svc.call(
        session.clone(),
        incoming(msg::GET, &key_op(b"k"), conn.share()),
    ));
    assert!(
        !finishes_in_one_poll(&mut get).await,
        "a 64 KiB value does not fit the 28 KiB left"
    );
    other.release();
    let out = get.await;
    assert_eq!(out.status, Status::Ok as u16);
    assert_eq!(out.payload, vec![value]);

    // A missing key reserves nothing and answers at once.
    other.reserve(128 << 10).await;
    let mut missing =
        Box::pin(svc.call(session, incoming(msg::GET, &key_op(b"none"), conn.share())));
    assert!(finishes_in_one_poll(&mut missing).await);
}

#[tokio::test]
async fn a_key_over_the_limit_answers_key_too_long_in_every_message() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, session) = service(dir.path());
    let long = vec![b'k'; nitrofs_kv_wire::MAX_KEY + 1];
    let target = Target {
        routing_version: 1,
        space: "s",
    };
    let headers = [
        (msg::GET, key_op(&long)),
        (
            msg::PUT,
            m::Put {
                target,
                key: &long,
                mode: m::PutMode::Overwrite,
            }
            .encode(),
        ),
        (
            msg::BATCH_GET,
            m::Keys {
                target,
                keys: vec![b"short", &long],
            }
            .encode(),
        ),
    ];
    for (msg_id, header) in headers {
        let out = svc
            .call(
                session.clone(),
                incoming(msg_id, &header, ByteBudget::new(1 << 20)),
            )
            .await;
        assert_eq!(out.status, Status::KeyTooLong as u16, "message {msg_id}");
    }
    let out = svc
        .call(
            session,
            incoming(msg::GET, b"not a header", ByteBudget::new(1 << 20)),
        )
        .await;
    assert_eq!(out.status, Status::BadRequest as u16);
    assert_eq!(
        decode_status(DecodeError::TooLong {
            field: "space name",
            len: 300,
            max: 255
        }),
        Status::BadRequest
    );
}

fn cfg(uid: u32, gid: u32, mode: u32) -> SpaceConfig {
    SpaceConfig {
        name: "s".into(),
        capacity: 1,
        ttl_secs: None,
        durability: Durability::Memory,
        uid,
        gid,
        mode,
        id: 0,
    }
}

#[test]
fn permissions_follow_owner_group_other_bits() {
    let alice = Credentials {
        uid: 1000,
        gid: 100,
        groups: vec![200],
    };
    assert!(permitted(&alice, &cfg(1000, 0, 0o600), Access::Write));
    assert!(!permitted(&alice, &cfg(1000, 0, 0o400), Access::Write));
    assert!(
        permitted(&alice, &cfg(1, 200, 0o040), Access::Read),
        "supplementary group"
    );
    assert!(
        !permitted(&alice, &cfg(1, 200, 0o004), Access::Read),
        "group bits decide for members"
    );
    assert!(permitted(&alice, &cfg(1, 1, 0o004), Access::Read));
    assert!(!permitted(&alice, &cfg(1, 1, 0o770), Access::Read));
    assert!(permitted(
        &Credentials::root(),
        &cfg(1, 1, 0),
        Access::Write
    ));
}
