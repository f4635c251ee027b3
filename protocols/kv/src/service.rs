//! The request handler: decodes a message, checks the session and the
//! space's permissions, runs the operation on the store and encodes the
//! answer. Plugged into the transport as its [`Service`].
//!
//! Rules every message follows: a header that does not decode answers
//! `BadRequest` (`KeyTooLong` if a key in it is over the limit) and changes
//! nothing; anything but HELLO/AUTH on a session
//! that has not authenticated answers `Unauthenticated`; a request routed
//! with another routing version answers `StaleRouting`; reads need the
//! space's `r` permission and writes its `w` permission for the caller's
//! uid/gid/groups, as core-fs's check decides from the space's owner, mode
//! bits and POSIX.1e ACL: the check NFS and S3 requests go through (root
//! may do anything). Store errors map to a status in
//! [`status_of`] and header decode errors in [`decode_status`], nowhere
//! else. GET and BATCH_GET reserve their values' bytes in the connection's
//! in-flight budget before reading them (released once the response is
//! written), so large answers cannot pile up in memory.
//!
//! One-sided transfers: RDMA_CONNECT (after AUTH) gives the session a verbs
//! queue pair when the service has a device (`KvService::with_verbs`, the
//! `rdma` feature); GET_REMOTE / PUT_REMOTE then pass the same checks as GET
//! / PUT and move the value by RDMA WRITE / READ (see `rdma.rs`). Without a
//! device, the feature, or a session queue pair they answer `NotSupported`
//! after the checks, and the client falls back to GET / PUT.

use crate::metrics::KvMetrics;
use crate::store::{Durability, PutMode, PutOutcome, Space, Store, StoreError};
use bytes::Bytes;
use nitrofs_common::Credentials;
use nitrofs_kv_wire::messages::{self as m, Target};
use nitrofs_kv_wire::{auth, msg, DecodeError, Routing, Status, MAX_VALUE, PROTOCOL_VERSION};
use nitrofs_rdma_transport::{ByteBudget, Incoming, Outgoing, PooledBuf, Service};
use parking_lot::{Mutex, RwLock};
use std::net::SocketAddr;
use std::sync::Arc;

/// Budget of value bytes in one BATCH_GET response; the rest is `NotSent`.
const BATCH_GET_BUDGET: u64 = 96 * 1024 * 1024;

/// Who an access key belongs to (the same identities as S3).
#[derive(Clone)]
pub struct Principal {
    /// The shared secret the client proves it knows.
    pub secret: String,
    /// The POSIX identity its requests run as.
    pub credentials: Credentials,
}

impl std::fmt::Debug for Principal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Principal")
            .field("secret", &"[hidden]")
            .field("credentials", &self.credentials)
            .finish()
    }
}

/// Looks up access keys; the binary wires the S3 identity table in.
pub trait Authenticator: Send + Sync + 'static {
    /// The principal of `access_key`, if any.
    fn lookup(&self, access_key: &str) -> Option<Principal>;
}

/// Per-connection state.
#[derive(Debug)]
pub struct Session {
    pub(crate) peer: SocketAddr,
    state: Mutex<AuthState>,
    /// The queue pair RDMA_CONNECT set up (one-sided transfers with the
    /// client of this connection); dropped with the session.
    #[cfg(feature = "rdma")]
    pub(crate) qp: Mutex<Option<Arc<nitrofs_rdma_transport::verbs::VerbsQueuePair>>>,
}

#[derive(Debug)]
enum AuthState {
    Fresh,
    Challenged {
        access_key: String,
        nonce: [u8; auth::NONCE_LEN],
    },
    Ready {
        credentials: Credentials,
    },
}

/// The KV service of one data node.
pub struct KvService {
    store: Arc<Store>,
    auth: Arc<dyn Authenticator>,
    routing: RwLock<Arc<Routing>>,
    pub(crate) metrics: Arc<KvMetrics>,
    /// The device one-sided transfers use; `None`: TCP only.
    #[cfg(feature = "rdma")]
    pub(crate) verbs: Option<Arc<nitrofs_rdma_transport::verbs::VerbsContext>>,
}

/// What an operation needs of the space: the `r` or the `w` bit of
/// core-fs's permission check.
#[derive(Clone, Copy)]
#[repr(u32)]
pub(crate) enum Access {
    Read = nitrofs_core_fs::R,
    Write = nitrofs_core_fs::W,
}

/// The one place store errors become protocol statuses.
pub fn status_of(e: &StoreError) -> Status {
    match e {
        StoreError::NoSuchSpace(_) => Status::NoSuchSpace,
        StoreError::TooLarge { .. } => Status::TooLarge,
        StoreError::NoSpace { .. } => Status::NoSpace,
        StoreError::KeyTooLong { .. } => Status::KeyTooLong,
        StoreError::InvalidName(_) | StoreError::InvalidConfig(_) => Status::BadRequest,
        StoreError::SpaceExists(_) => Status::Exists,
        StoreError::Io(_) | StoreError::Chunk(_) | StoreError::Corrupt(_) => {
            tracing::error!("kv store failure: {e}");
            Status::Internal
        }
    }
}

/// The one place header decode errors become protocol statuses: a key
/// (or a key prefix) over the length limit is `KeyTooLong`, as the store
/// would have said; anything else malformed is `BadRequest`.
pub fn decode_status(e: DecodeError) -> Status {
    match e {
        DecodeError::TooLong {
            field: "key" | "prefix" | "start_after",
            ..
        } => Status::KeyTooLong,
        _ => Status::BadRequest,
    }
}

pub(crate) fn reply(status: Status) -> Outgoing {
    Outgoing {
        status: status as u16,
        ..Outgoing::default()
    }
}

pub(crate) fn ok(header: Vec<u8>, payload: Vec<Bytes>) -> Outgoing {
    Outgoing {
        status: Status::Ok as u16,
        header,
        payload,
    }
}

/// Runs `f` on the space: inline for memory spaces, on the blocking pool
/// for disk spaces (their calls fsync).
pub(crate) async fn on_space<T: Send + 'static>(
    space: &Arc<Space>,
    f: impl FnOnce(&Space) -> T + Send + 'static,
) -> Result<T, Status> {
    if space.durability() == Durability::Memory {
        return Ok(f(space));
    }
    let space = space.clone();
    tokio::task::spawn_blocking(move || f(&space))
        .await
        .map_err(|_| Status::Internal)
}

impl KvService {
    /// A service over `store`, authenticating through `auth`, advertising
    /// `routing`.
    pub fn new(
        store: Arc<Store>,
        auth: Arc<dyn Authenticator>,
        routing: Routing,
        metrics: Arc<KvMetrics>,
    ) -> Self {
        Self {
            store,
            auth,
            routing: RwLock::new(Arc::new(routing)),
            metrics,
            #[cfg(feature = "rdma")]
            verbs: None,
        }
    }

    /// The same service doing one-sided transfers on `ctx`'s device for
    /// sessions that ask (RDMA_CONNECT).
    #[cfg(feature = "rdma")]
    pub fn with_verbs(mut self, ctx: Arc<nitrofs_rdma_transport::verbs::VerbsContext>) -> Self {
        self.verbs = Some(ctx);
        self
    }

    /// Whether sessions may set up one-sided transfers.
    pub fn has_verbs(&self) -> bool {
        #[cfg(feature = "rdma")]
        let has = self.verbs.is_some();
        #[cfg(not(feature = "rdma"))]
        let has = false;
        has
    }

    /// Replaces the routing table (requests with the old version then get
    /// `StaleRouting`).
    pub fn set_routing(&self, routing: Routing) {
        *self.routing.write() = Arc::new(routing);
    }

    /// The store served.
    pub fn store(&self) -> &Arc<Store> {
        &self.store
    }

    fn hello(&self, session: &Session, header: &[u8]) -> Outgoing {
        let Ok(h) = m::Hello::decode(header) else {
            return reply(Status::BadRequest);
        };
        if h.version != PROTOCOL_VERSION {
            return reply(Status::BadRequest);
        }
        // A nonce for every key, known or not: HELLO does not reveal which
        // access keys exist.
        let nonce: [u8; auth::NONCE_LEN] = rand::random();
        *session.state.lock() = AuthState::Challenged {
            access_key: h.access_key.to_string(),
            nonce,
        };
        ok(
            m::Challenge {
                version: PROTOCOL_VERSION,
                nonce,
            }
            .encode(),
            Vec::new(),
        )
    }

    fn authenticate(&self, session: &Session, header: &[u8]) -> Outgoing {
        let Ok(a) = m::Auth::decode(header) else {
            return reply(Status::BadRequest);
        };
        let mut state = session.state.lock();
        let AuthState::Challenged { access_key, nonce } = &*state else {
            return reply(Status::Unauthenticated);
        };
        let principal = self
            .auth
            .lookup(access_key)
            .filter(|p| auth::verify(p.secret.as_bytes(), nonce, access_key, &a.mac));
        match principal {
            Some(p) => {
                tracing::debug!(peer = %session.peer, access_key, "kv session authenticated");
                *state = AuthState::Ready {
                    credentials: p.credentials,
                };
                ok(m::encode_routing(&self.routing.read()), Vec::new())
            }
            None => {
                tracing::info!(peer = %session.peer, access_key, "kv authentication failed");
                self.metrics.auth_failures.inc();
                *state = AuthState::Fresh;
                reply(Status::Unauthenticated)
            }
        }
    }

    fn credentials(session: &Session) -> Option<Credentials> {
        match &*session.state.lock() {
            AuthState::Ready { credentials } => Some(credentials.clone()),
            _ => None,
        }
    }

    /// Checks routing version, space and permission for a data request.
    pub(crate) fn open(
        &self,
        who: &Credentials,
        target: &Target<'_>,
        want: Access,
    ) -> Result<Arc<Space>, Status> {
        if target.routing_version != self.routing.read().version {
            return Err(Status::StaleRouting);
        }
        let space = self.store.space(target.space).ok_or(Status::NoSuchSpace)?;
        if !space.permits(who, want as u32) {
            return Err(Status::AccessDenied);
        }
        Ok(space)
    }

    async fn handle(&self, session: &Session, req: Incoming) -> Outgoing {
        let header: &[u8] = &req.header;
        match req.msg {
            msg::HELLO => return self.hello(session, header),
            msg::AUTH => return self.authenticate(session, header),
            _ => {}
        }
        let Some(who) = Self::credentials(session) else {
            return reply(Status::Unauthenticated);
        };
        let r = match req.msg {
            msg::ROUTING => Ok(ok(m::encode_routing(&self.routing.read()), Vec::new())),
            msg::PUT => self.put(&who, header, req.payload.into_bytes()).await,
            msg::GET => self.get(&who, header, &req.budget).await,
            msg::DELETE => self.delete(&who, header).await,
            msg::EXISTS => self.exists(&who, header),
            msg::RDMA_CONNECT => self.rdma_connect(session, header),
            msg::GET_REMOTE => self.get_remote(session, &who, header).await,
            msg::PUT_REMOTE => self.put_remote(session, &who, header).await,
            msg::BATCH_PUT => self.batch_put(&who, header, req.payload, req.parts).await,
            msg::BATCH_GET => self.batch_get(&who, header, &req.budget).await,
            msg::BATCH_EXISTS | msg::PREFIX_MATCH => self.lookup_many(&who, header, req.msg),
            msg::BATCH_DELETE => self.batch_delete(&who, header).await,
            msg::SCAN => self.scan(&who, header),
            msg::STAT => self.stat(&who, header),
            _ => Err(Status::UnknownMessage),
        };
        r.unwrap_or_else(reply)
    }

    async fn put(
        &self,
        who: &Credentials,
        header: &[u8],
        value: Bytes,
    ) -> Result<Outgoing, Status> {
        let p = m::Put::decode(header).map_err(decode_status)?;
        let space = self.open(who, &p.target, Access::Write)?;
        if value.len() as u64 > MAX_VALUE {
            return Err(Status::TooLarge);
        }
        let key = Bytes::copy_from_slice(p.key);
        let mode = store_mode(p.mode);
        self.metrics.bytes_in.add(value.len() as u64);
        let outcome = on_space(&space, move |s| s.put(&key, value, mode)).await?;
        match outcome.map_err(|e| status_of(&e))? {
            PutOutcome::Stored => Ok(reply(Status::Ok)),
            PutOutcome::Exists => Ok(reply(Status::Exists)),
        }
    }

    async fn get(
        &self,
        who: &Credentials,
        header: &[u8],
        budget: &ByteBudget,
    ) -> Result<Outgoing, Status> {
        let k = m::KeyOp::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Read)?;
        let len = space.value_len(k.key);
        if let Some(len) = len.filter(|&l| l > k.max_len) {
            return Ok(Outgoing {
                status: Status::BufferTooSmall as u16,
                header: m::encode_u64(len),
                payload: Vec::new(),
            });
        }
        // Room for the value in the connection's budget before it is read;
        // it stays reserved until the response has been written.
        if let Some(len) = len {
            budget.reserve(len).await;
        }
        let key = Bytes::copy_from_slice(k.key);
        let max_len = k.max_len;
        match on_space(&space, move |s| s.get(&key))
            .await?
            .map_err(|e| status_of(&e))?
        {
            // The value may have been replaced by a longer one meanwhile.
            Some(v) if v.len() as u64 > max_len => Ok(Outgoing {
                status: Status::BufferTooSmall as u16,
                header: m::encode_u64(v.len() as u64),
                payload: Vec::new(),
            }),
            Some(v) => {
                self.metrics.bytes_out.add(v.len() as u64);
                Ok(ok(m::encode_u64(v.len() as u64), vec![v]))
            }
            None => Err(Status::NotFound),
        }
    }

    /// RDMA_CONNECT: pairs a queue pair with the session.
    fn rdma_connect(&self, session: &Session, header: &[u8]) -> Result<Outgoing, Status> {
        let req = m::RdmaConnect::decode(header).map_err(decode_status)?;
        remote::connect(self, session, &req)
    }

    /// GET_REMOTE: GET's checks, then an RDMA WRITE into the client's buffer.
    async fn get_remote(
        &self,
        session: &Session,
        who: &Credentials,
        header: &[u8],
    ) -> Result<Outgoing, Status> {
        let g = m::GetRemote::decode(header).map_err(decode_status)?;
        let space = self.open(who, &g.target, Access::Read)?;
        remote::get(self, session, space, &g).await
    }

    /// PUT_REMOTE: PUT's checks, then an RDMA READ from the client's buffer.
    async fn put_remote(
        &self,
        session: &Session,
        who: &Credentials,
        header: &[u8],
    ) -> Result<Outgoing, Status> {
        let p = m::PutRemote::decode(header).map_err(decode_status)?;
        let space = self.open(who, &p.target, Access::Write)?;
        if u64::from(p.buf.len) > MAX_VALUE {
            return Err(Status::TooLarge);
        }
        remote::put(self, session, space, &p).await
    }

    async fn delete(&self, who: &Credentials, header: &[u8]) -> Result<Outgoing, Status> {
        let k = m::KeyOp::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Write)?;
        let key = Bytes::copy_from_slice(k.key);
        match on_space(&space, move |s| s.delete(&key))
            .await?
            .map_err(|e| status_of(&e))?
        {
            true => Ok(reply(Status::Ok)),
            false => Err(Status::NotFound),
        }
    }

    fn exists(&self, who: &Credentials, header: &[u8]) -> Result<Outgoing, Status> {
        let k = m::KeyOp::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Read)?;
        match space.exists(k.key) {
            true => Ok(reply(Status::Ok)),
            false => Err(Status::NotFound),
        }
    }

    /// BATCH_PUT. Large values bound for a memory space arrive as `parts`,
    /// a buffer each ([`KvService::payload_parts`]): the space keeps a
    /// part that fills its buffer (a power-of-two value, like a KV cache's
    /// blocks) without copying it, and no live value pins the others.
    /// Otherwise the payload came whole and is cut into values here.
    async fn batch_put(
        &self,
        who: &Credentials,
        header: &[u8],
        payload: PooledBuf,
        parts: Vec<PooledBuf>,
    ) -> Result<Outgoing, Status> {
        let b = m::BatchPut::decode(header).map_err(decode_status)?;
        let space = self.open(who, &b.target, Access::Write)?;
        let total = b
            .items
            .iter()
            .try_fold(0u64, |acc, (_, len)| acc.checked_add(*len))
            .ok_or(Status::BadRequest)?;
        let values: Vec<Bytes> = if !parts.is_empty() {
            let fits = parts.len() == b.items.len()
                && parts
                    .iter()
                    .zip(&b.items)
                    .all(|(p, (_, len))| p.len() as u64 == *len);
            if !fits {
                return Err(Status::BadRequest);
            }
            parts.into_iter().map(PooledBuf::into_bytes).collect()
        } else {
            if total != payload.len() as u64 {
                return Err(Status::BadRequest);
            }
            let payload = payload.into_bytes();
            // A memory space keeps its values: give each its own
            // allocation, or one live value would pin the whole payload.
            let own = space.durability() == Durability::Memory && b.items.len() > 1;
            let mut off = 0usize;
            b.items
                .iter()
                .map(|(_, len)| {
                    // `total` fits the payload, so every length fits usize.
                    let value = payload.slice(off..off + *len as usize);
                    off += *len as usize;
                    if own {
                        Bytes::copy_from_slice(&value)
                    } else {
                        value
                    }
                })
                .collect()
        };
        self.metrics.bytes_in.add(total);
        let items: Vec<(Bytes, Bytes)> = b
            .items
            .iter()
            .zip(values)
            .map(|((key, _), value)| (Bytes::copy_from_slice(key), value))
            .collect();
        let mode = store_mode(b.mode);
        let statuses = on_space(&space, move |s| {
            items
                .into_iter()
                .map(|(k, v)| match s.put(&k, v, mode) {
                    Ok(PutOutcome::Stored) => Status::Ok as u16,
                    Ok(PutOutcome::Exists) => Status::Exists as u16,
                    Err(e) => status_of(&e) as u16,
                })
                .collect::<Vec<u16>>()
        })
        .await?;
        Ok(ok(m::encode_u16s(&statuses), Vec::new()))
    }

    async fn batch_get(
        &self,
        who: &Credentials,
        header: &[u8],
        budget: &ByteBudget,
    ) -> Result<Outgoing, Status> {
        let k = m::Keys::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Read)?;
        // As GET: room for what the response can carry, before reading.
        let expected = k
            .keys
            .iter()
            .filter_map(|key| space.value_len(key))
            .fold(0u64, u64::saturating_add)
            .min(BATCH_GET_BUDGET);
        if expected > 0 {
            budget.reserve(expected).await;
        }
        let keys: Vec<Bytes> = k.keys.iter().map(|k| Bytes::copy_from_slice(k)).collect();
        let (items, values) = on_space(&space, move |s| {
            let mut items = Vec::with_capacity(keys.len());
            let mut values = Vec::new();
            let mut used = 0u64;
            for key in &keys {
                let fits = |len: u64| values.is_empty() || used + len <= BATCH_GET_BUDGET;
                match s.value_len(key) {
                    None => items.push((Status::NotFound as u16, 0)),
                    Some(len) if !fits(len) => items.push((Status::NotSent as u16, len)),
                    Some(_) => match s.get(key) {
                        Ok(Some(v)) if fits(v.len() as u64) => {
                            used += v.len() as u64;
                            items.push((Status::Ok as u16, v.len() as u64));
                            values.push(v);
                        }
                        Ok(Some(v)) => items.push((Status::NotSent as u16, v.len() as u64)),
                        Ok(None) => items.push((Status::NotFound as u16, 0)),
                        Err(e) => items.push((status_of(&e) as u16, 0)),
                    },
                }
            }
            (items, values)
        })
        .await?;
        self.metrics
            .bytes_out
            .add(values.iter().map(|v| v.len() as u64).sum());
        Ok(ok(m::encode_batch_get(&items), values))
    }

    fn lookup_many(
        &self,
        who: &Credentials,
        header: &[u8],
        msg_id: u16,
    ) -> Result<Outgoing, Status> {
        let k = m::Keys::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Read)?;
        if msg_id == msg::PREFIX_MATCH {
            let n = space.prefix_match(&k.keys);
            return Ok(ok(m::encode_u64(n as u64), Vec::new()));
        }
        let flags: Vec<u16> = k
            .keys
            .iter()
            .map(|key| u16::from(space.exists(key)))
            .collect();
        Ok(ok(m::encode_u16s(&flags), Vec::new()))
    }

    async fn batch_delete(&self, who: &Credentials, header: &[u8]) -> Result<Outgoing, Status> {
        let k = m::Keys::decode(header).map_err(decode_status)?;
        let space = self.open(who, &k.target, Access::Write)?;
        let keys: Vec<Bytes> = k.keys.iter().map(|k| Bytes::copy_from_slice(k)).collect();
        let flags = on_space(&space, move |s| {
            keys.iter()
                .map(|key| s.delete(key).map(u16::from).map_err(|e| status_of(&e)))
                .collect::<Result<Vec<u16>, Status>>()
        })
        .await??;
        Ok(ok(m::encode_u16s(&flags), Vec::new()))
    }

    fn scan(&self, who: &Credentials, header: &[u8]) -> Result<Outgoing, Status> {
        let s = m::Scan::decode(header).map_err(decode_status)?;
        let space = self.open(who, &s.target, Access::Read)?;
        let limit = s.limit as usize;
        let mut entries = space.scan(s.prefix, s.start_after, limit + 1);
        let more = entries.len() > limit;
        entries.truncate(limit);
        let page = m::ScanPage {
            entries: entries
                .into_iter()
                .map(|(k, len)| (k.to_vec(), len))
                .collect(),
            more,
        };
        Ok(ok(page.encode(), Vec::new()))
    }

    fn stat(&self, who: &Credentials, header: &[u8]) -> Result<Outgoing, Status> {
        let s = m::StatReq::decode(header).map_err(decode_status)?;
        let space = self.open(who, &s.target, Access::Read)?;
        let st = space.stats();
        let stat = m::SpaceStat {
            capacity: st.capacity,
            bytes: st.bytes,
            keys: st.keys,
            hits: st.hits,
            misses: st.misses,
            evictions: st.evictions,
            expirations: st.expirations,
            puts: st.puts,
            deletes: st.deletes,
            ttl_secs: space.ttl_secs().unwrap_or(0),
            durable: space.durability() == Durability::Disk,
        };
        Ok(ok(stat.encode(), Vec::new()))
    }
}

/// One-sided transfers: the verbs implementation with the feature.
#[cfg(feature = "rdma")]
use crate::rdma as remote;

/// One-sided transfers without the `rdma` feature: the request passed its
/// checks, but this build cannot move the value that way.
#[cfg(not(feature = "rdma"))]
mod remote {
    use super::{KvService, Outgoing, Session, Space, Status};
    use nitrofs_kv_wire::messages as m;
    use std::sync::Arc;

    pub(super) fn connect(
        _: &KvService,
        _: &Session,
        _: &m::RdmaConnect,
    ) -> Result<Outgoing, Status> {
        Err(Status::NotSupported)
    }

    pub(super) async fn get(
        _: &KvService,
        _: &Session,
        _: Arc<Space>,
        _: &m::GetRemote<'_>,
    ) -> Result<Outgoing, Status> {
        Err(Status::NotSupported)
    }

    pub(super) async fn put(
        _: &KvService,
        _: &Session,
        _: Arc<Space>,
        _: &m::PutRemote<'_>,
    ) -> Result<Outgoing, Status> {
        Err(Status::NotSupported)
    }
}

/// The least average value size of a BATCH_PUT whose values are read
/// into buffers of their own ([`KvService::payload_parts`]).
const MIN_SPLIT_VALUE: usize = 64 << 10;

pub(crate) fn store_mode(mode: m::PutMode) -> PutMode {
    match mode {
        m::PutMode::Overwrite => PutMode::Overwrite,
        m::PutMode::IfAbsent => PutMode::IfAbsent,
    }
}

impl Service for KvService {
    type Session = Session;

    /// A BATCH_PUT's values, each in a buffer of its own, when a memory
    /// space will keep them and they are large: copying a 2 MiB value out
    /// of the batch's buffer was a fifth of the server's CPU in 2 MiB
    /// batch puts (perf: the copy and the page faults of its
    /// destination), while reading 64 values of 4 KiB one by one was
    /// 10-20% slower than one read and 64 copies. A disk space writes its
    /// values out and drops them: slices of one buffer cost it nothing.
    fn payload_parts(&self, msg_id: u16, header: &[u8]) -> Option<Vec<usize>> {
        if msg_id != msg::BATCH_PUT {
            return None;
        }
        let b = m::BatchPut::decode(header).ok()?;
        let space = self.store.space(b.target.space)?;
        if space.durability() != Durability::Memory {
            return None;
        }
        let lens: Vec<usize> = b
            .items
            .iter()
            .map(|(_, len)| usize::try_from(*len).ok())
            .collect::<Option<_>>()?;
        let total = lens.iter().try_fold(0usize, |a, &l| a.checked_add(l))?;
        (total >= lens.len().saturating_mul(MIN_SPLIT_VALUE)).then_some(lens)
    }

    fn open_session(&self, peer: SocketAddr) -> Session {
        self.metrics.sessions.inc();
        Session {
            peer,
            state: Mutex::new(AuthState::Fresh),
            #[cfg(feature = "rdma")]
            qp: Mutex::new(None),
        }
    }

    async fn call(&self, session: Arc<Session>, req: Incoming) -> Outgoing {
        let op = req.msg;
        let out = self.handle(&session, req).await;
        self.metrics.record(op, out.status);
        out
    }
}

/// Drops expired values of every space once a second, for ever.
pub async fn sweep_expired(store: Arc<Store>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        for space in store.spaces() {
            if space.ttl_secs().is_none() {
                continue;
            }
            if on_space(&space, |s| s.expire_now()).await.is_err() {
                tracing::warn!(space = space.name(), "expiry sweep failed");
            }
        }
    }
}

#[cfg(test)]
mod tests;
