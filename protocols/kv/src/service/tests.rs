//! Unit tests of the request handler: permission bits and ACLs, the
//! connection byte budget of GETs, and decode errors mapped to statuses.

use super::*;
use crate::store::{PutMode as StorePutMode, SpaceConfig};
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
        parts: Vec::new(),
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
        acl: None,
        id: 0,
    }
}

/// Whether `who` may `want` in a space of owner `uid`:`gid` and `mode`.
fn permitted(who: &Credentials, uid: u32, gid: u32, mode: u32, want: Access) -> bool {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("store");
    let space = store.create_space(cfg(uid, gid, mode)).expect("space");
    space.permits(who, want as u32)
}

#[test]
fn permissions_follow_owner_group_other_bits() {
    let alice = Credentials {
        uid: 1000,
        gid: 100,
        groups: vec![200],
    };
    assert!(permitted(&alice, 1000, 0, 0o600, Access::Write));
    assert!(!permitted(&alice, 1000, 0, 0o400, Access::Write));
    assert!(
        permitted(&alice, 1, 200, 0o040, Access::Read),
        "supplementary group"
    );
    assert!(
        !permitted(&alice, 1, 200, 0o004, Access::Read),
        "group bits decide for members"
    );
    assert!(permitted(&alice, 1, 1, 0o004, Access::Read));
    assert!(!permitted(&alice, 1, 1, 0o770, Access::Read));
    assert!(permitted(&Credentials::root(), 1, 1, 0, Access::Write));
}

/// A session of `svc` authenticated as `who`.
fn session_as(svc: &KvService, who: Credentials) -> Arc<Session> {
    let session = svc.open_session("127.0.0.1:3".parse().expect("addr"));
    *session.state.lock() = AuthState::Ready { credentials: who };
    Arc::new(session)
}

fn put_op(key: &[u8]) -> Vec<u8> {
    m::Put {
        target: Target {
            routing_version: 1,
            space: "s",
        },
        key,
        mode: m::PutMode::Overwrite,
    }
    .encode()
}

#[tokio::test]
async fn a_named_user_acl_entry_lets_a_non_owner_read_and_the_mask_takes_write_away() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, root) = service(dir.path());
    let store = svc.store();
    // "s" is root's, 0777: make it 0600 with an ACL through the store.
    store.delete_space("s").expect("delete");
    let mut space = cfg(0, 0, 0o600);
    space.capacity = 1 << 20;
    store.create_space(space).expect("space");
    let spec = nitrofs_core_fs::AclSpec::parse("u:1001:rw-,m::r--").expect("spec");
    let set = store.set_acl("s", &spec.access).expect("set acl");
    assert_eq!(set.mode, 0o640, "the mask became the group bits");
    assert_eq!(
        set.acl.as_ref().map(|a| a.to_short_text("")).as_deref(),
        Some("u::rw-,u:1001:rw-,g::---,m::r--,o::---")
    );

    let call = |session: &Arc<Session>, msg_id, header: Vec<u8>| {
        svc.call(
            session.clone(),
            incoming(msg_id, &header, ByteBudget::new(1 << 20)),
        )
    };
    let out = call(&root, msg::PUT, put_op(b"k")).await;
    assert_eq!(out.status, Status::Ok as u16, "the owner writes");

    let named = session_as(&svc, Credentials::new(1001, 1001));
    let out = call(&named, msg::GET, key_op(b"k")).await;
    assert_eq!(out.status, Status::Ok as u16, "u:1001 reads");
    let out = call(&named, msg::PUT, put_op(b"k")).await;
    assert_eq!(
        out.status,
        Status::AccessDenied as u16,
        "u:1001 has w, but the mask r-- removes it"
    );

    let stranger = session_as(&svc, Credentials::new(1002, 1002));
    let out = call(&stranger, msg::GET, key_op(b"k")).await;
    assert_eq!(out.status, Status::AccessDenied as u16, "other:: is ---");
}

fn batch_put_header(space: &str, lens: &[u64]) -> Vec<u8> {
    let keys: Vec<String> = (0..lens.len()).map(|i| format!("k{i}")).collect();
    m::BatchPut {
        target: Target {
            routing_version: 1,
            space,
        },
        mode: m::PutMode::Overwrite,
        items: keys
            .iter()
            .map(|k| k.as_bytes())
            .zip(lens.iter().copied())
            .collect(),
    }
    .encode()
}

fn pooled(bytes: &[u8]) -> PooledBuf {
    let mut b = BufPool::new(0).take(bytes.len());
    b.copy_from_slice(bytes);
    b
}

#[test]
fn large_values_of_a_memory_space_batch_are_asked_for_as_parts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, _) = service(dir.path());
    let big = MIN_SPLIT_VALUE as u64;
    let parts = |space: &str, lens: &[u64]| {
        svc.payload_parts(msg::BATCH_PUT, &batch_put_header(space, lens))
    };
    assert_eq!(parts("s", &[big, big]), Some(vec![big as usize; 2]));
    assert_eq!(
        parts("s", &[2 * big - 1, 1]),
        Some(vec![2 * big as usize - 1, 1]),
        "an average of 64 KiB is enough"
    );
    assert_eq!(
        parts("s", &[2 * big - 2, 1]),
        None,
        "just under the average"
    );
    assert_eq!(parts("s", &[4096; 64]), None, "small values: one read");
    assert_eq!(parts("none", &[big, big]), None, "no such space");
    assert_eq!(svc.payload_parts(msg::PUT, &key_op(b"k")), None);
    assert_eq!(svc.payload_parts(msg::BATCH_PUT, b"garbage"), None);

    let mut disk = cfg(0, 0, 0o777);
    disk.name = "d".into();
    disk.capacity = 64 << 20;
    disk.durability = Durability::Disk;
    svc.store().create_space(disk).expect("disk space");
    assert_eq!(
        parts("d", &[big, big]),
        None,
        "a disk space drops its values"
    );
}

#[tokio::test]
async fn a_batch_put_stores_parts_and_refuses_parts_or_payload_that_do_not_fit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (svc, session) = service(dir.path());
    let call = |lens: &[u64], payload: PooledBuf, parts: Vec<PooledBuf>| {
        let mut req = incoming(
            msg::BATCH_PUT,
            &batch_put_header("s", lens),
            ByteBudget::new(1 << 30),
        );
        req.payload = payload;
        req.parts = parts;
        svc.call(session.clone(), req)
    };
    let (a, b) = (vec![1u8; 70_000], vec![2u8; 5]);
    let out = call(
        &[70_000, 5],
        PooledBuf::empty(),
        vec![pooled(&a), pooled(&b)],
    )
    .await;
    assert_eq!(out.status, Status::Ok as u16);
    let space = svc.store().space("s").expect("space");
    assert_eq!(space.get(b"k0").expect("get").as_deref(), Some(&a[..]));
    assert_eq!(space.get(b"k1").expect("get").as_deref(), Some(&b[..]));

    // Parts that do not match the items, in number or in length.
    for parts in [vec![pooled(&a)], vec![pooled(&b), pooled(&a)]] {
        let out = call(&[70_000, 5], PooledBuf::empty(), parts).await;
        assert_eq!(out.status, Status::BadRequest as u16);
    }
    // An empty batch with a payload, and a payload of the wrong length.
    let out = call(&[], pooled(b"stray"), Vec::new()).await;
    assert_eq!(out.status, Status::BadRequest as u16);
    let out = call(&[3, 3], pooled(b"12345"), Vec::new()).await;
    assert_eq!(out.status, Status::BadRequest as u16);
    assert_eq!(
        space.get(b"k0").expect("get").as_deref(),
        Some(&a[..]),
        "unchanged"
    );
}
