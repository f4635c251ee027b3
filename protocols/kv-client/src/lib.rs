//! The "rich client" of the NitroFS native KV protocol.
//!
//! It authenticates once per connection (HMAC challenge, the secret never
//! travels), caches the routing table and sends every request straight to
//! the data node that owns the key — zero metadata calls. Each node gets a
//! small pool of connections; every connection carries many requests at
//! once (pipelining), so concurrent callers share sockets. Batches cost one
//! round trip per node. Transport failures, `Busy` and `StaleRouting`
//! (after refreshing the table) are retried.
//!
//! ## Where the bytes go (TCP and RDMA)
//!
//! Every message travels on a TCP connection. With the `rdma` feature, a
//! usable RDMA device on this host and a server that has one too, each
//! pooled connection also gets a verbs queue pair (RDMA_CONNECT after
//! authentication), and values of the region calls move by one-sided
//! transfers the server issues; everything else is unchanged.
//!
//! | call | over TCP | over RDMA verbs |
//! |---|---|---|
//! | [`KvClient::get_into`] | read from the socket straight into the region (no intermediate buffer) | GET_REMOTE: the server RDMA-WRITEs the value into the region — no copy and no CPU on this side |
//! | [`KvClient::put_from`] | PUT: written to the socket straight from the region | PUT_REMOTE: the server RDMA-READs the value from the region — no copy on this side |
//! | `get`, `batch_get` | into a pooled buffer, handed over as `Bytes` (copied only when the buffer is mostly empty) | same as TCP |
//! | `put`, `put_if_absent`, `batch_put` | written straight from the caller's slices | same as TCP |
//!
//! RDMA needs regions from [`KvClient::register`] (registered with the
//! device when this client does RDMA with the cluster, plain otherwise);
//! any region works over TCP. A connection whose server lacks verbs
//! (`NotSupported` or `UnknownMessage` to RDMA_CONNECT), or whose queue pair
//! fails, carries its values over TCP; a call whose one-sided attempt is
//! refused is sent again as GET / PUT at once. The server copies values
//! between its store and its own registered buffers (one copy per transfer
//! on the server, none on the client).
//!
//! ```no_run
//! # async fn demo() -> Result<(), nitrofs_kv_client::KvError> {
//! use nitrofs_kv_client::{ClientConfig, KvClient};
//! let client = KvClient::connect(ClientConfig::new("127.0.0.1:9100", "AKID", "SECRET")).await?;
//! client.put("cache", b"prefix-hash-1", b"kv block bytes").await?;
//! let stored = client.put_if_absent("cache", b"prefix-hash-1", b"other").await?;
//! assert!(!stored, "KV-cache blocks are immutable");
//! let hits = client.prefix_match("cache", &[b"prefix-hash-1", b"prefix-hash-2"]).await?;
//! assert_eq!(hits, 1);
//! let value = client.get("cache", b"prefix-hash-1").await?;
//! assert_eq!(value.as_deref(), Some(&b"kv block bytes"[..]));
//! # Ok(()) }
//! ```

mod pool;

pub use nitrofs_kv_wire::messages::{PutMode, ScanPage, SpaceStat};
pub use nitrofs_kv_wire::{Routing, Status};
pub use nitrofs_rdma_transport::{MemoryRegion, RemoteBuf, TransportError};

use bytes::Bytes;
use nitrofs_kv_wire::messages::{self as m, KeyOp, Keys, Target};
use nitrofs_kv_wire::{msg, MAX_BATCH};
use nitrofs_rdma_transport::{Payload, Request, Response};
use pool::{KvConn, Pools};
use std::sync::Arc;
use std::time::Duration;

/// Errors of the client.
#[derive(Debug, thiserror::Error)]
pub enum KvError {
    /// The server answered with a failure status.
    #[error("{status} ({context})")]
    Server {
        /// The status.
        status: Status,
        /// What was being done.
        context: String,
    },
    /// The connection failed and retries did not help.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The server's answer did not decode.
    #[error("bad response: {0}")]
    Protocol(String),
    /// The caller asked for something the protocol cannot carry.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl KvError {
    /// The server status, if the server answered.
    pub fn status(&self) -> Option<Status> {
        match self {
            KvError::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    fn retryable(&self) -> bool {
        match self {
            KvError::Server { status, .. } => status.is_retryable(),
            KvError::Transport(t) => t.is_retryable(),
            _ => false,
        }
    }
}

/// Result of a client call.
pub type KvResult<T> = Result<T, KvError>;

/// How to reach and talk to the cluster.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Any data node (`host:port`); the routing table names the rest.
    pub addr: String,
    /// Access key (the same identities as S3).
    pub access_key: String,
    /// Secret key; used only to answer the server's challenge.
    pub secret_key: String,
    /// Connections kept per data node.
    pub connections_per_node: usize,
    /// Attempts per request (1 = no retry).
    pub attempts: u32,
    /// Time allowed for one attempt.
    pub request_timeout: Duration,
    /// Move values of [`KvClient::get_into`] / [`KvClient::put_from`] by
    /// one-sided RDMA when built with `rdma`, a device answers and the
    /// server accepts; `false` keeps every byte on TCP.
    pub rdma: bool,
}

impl ClientConfig {
    /// Defaults: 4 connections per node, 3 attempts, 30 s per attempt.
    pub fn new(addr: &str, access_key: &str, secret_key: &str) -> Self {
        Self {
            addr: addr.to_string(),
            access_key: access_key.to_string(),
            secret_key: secret_key.to_string(),
            connections_per_node: 4,
            attempts: 3,
            request_timeout: Duration::from_secs(30),
            rdma: true,
        }
    }
}

/// A client. Cheap to clone; clones share connections and the routing cache.
#[derive(Clone)]
pub struct KvClient {
    pools: Arc<Pools>,
}

impl std::fmt::Debug for KvClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KvClient")
            .field("routing_version", &self.pools.routing().version)
            .finish()
    }
}

/// One request to send: message, encoded header, payload slices.
struct Call<'a> {
    msg: u16,
    header: Vec<u8>,
    payload: Vec<&'a [u8]>,
}

/// Where a request goes.
#[derive(Debug, Clone, Copy)]
enum Dest<'a> {
    /// The node owning `key` in `space`, looked up in the routing table of
    /// each attempt (a refreshed table may name another node).
    Owner { space: &'a str, key: &'a [u8] },
    /// One node by id (per-node messages: SCAN, STAT).
    Node(u32),
}

/// Whether a message has the server reach into the client's memory.
fn is_one_sided(msg_id: u16) -> bool {
    matches!(msg_id, msg::GET_REMOTE | msg::PUT_REMOTE)
}

/// A one-sided request in flight. Until its response arrives the server
/// may still be writing into (or reading from) the caller's region; if the
/// call ends any other way (timeout, broken connection, the future
/// dropped), the connection's queue pair is destroyed first, so the server
/// cannot touch the region once the caller gets it back (or it is freed
/// or reused: fields drop after `drop`).
struct OneSided<'c> {
    conn: &'c KvConn,
    region: Option<MemoryRegion>,
    armed: bool,
}

impl Drop for OneSided<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.conn
                .drop_qp("a one-sided request ended without its response");
        }
    }
}

fn wire_buf(b: RemoteBuf) -> m::RemoteBuf {
    m::RemoteBuf {
        addr: b.addr,
        len: b.len,
        rkey: b.rkey,
    }
}

impl KvClient {
    /// Connects to `cfg.addr`, authenticates and fetches the routing table.
    /// Fails with `Unauthenticated` on wrong credentials.
    pub async fn connect(cfg: ClientConfig) -> KvResult<Self> {
        if cfg.connections_per_node == 0 || cfg.attempts == 0 {
            return Err(KvError::Invalid(
                "connections_per_node and attempts must be at least 1".into(),
            ));
        }
        let pools = Pools::bootstrap(cfg).await?;
        Ok(Self {
            pools: Arc::new(pools),
        })
    }

    /// The cached routing table.
    pub fn routing(&self) -> Arc<Routing> {
        self.pools.routing()
    }

    /// Whether this client moves values of [`KvClient::get_into`] and
    /// [`KvClient::put_from`] by one-sided RDMA (built with `rdma`, a device
    /// answered, and the bootstrap node accepted a queue pair).
    pub fn rdma_enabled(&self) -> bool {
        self.pools.one_sided()
    }

    /// A region of `len` bytes for [`KvClient::get_into`] and
    /// [`KvClient::put_from`]: registered with the RDMA device when
    /// [`KvClient::rdma_enabled`] (its initial contents are then whatever
    /// an earlier registration of its size held), plain zeroed memory
    /// otherwise. Regions are cached by size class: keep and reuse them.
    pub fn register(&self, len: usize) -> MemoryRegion {
        self.pools.register(len)
    }

    /// Sends `call` to the node owning `(space, route_key)`, retrying what
    /// may be retried. `region` receives the payload when given.
    async fn send<'p>(
        &self,
        space: &str,
        route_key: &[u8],
        build: impl Fn(u64) -> Call<'p>,
        region: Option<MemoryRegion>,
        what: &str,
    ) -> KvResult<Response> {
        let dest = Dest::Owner {
            space,
            key: route_key,
        };
        self.send_on(dest, |rv, _| build(rv), region, what).await
    }

    /// [`KvClient::send`] to one node by id.
    async fn send_to_node<'p>(
        &self,
        node: u32,
        build: impl Fn(u64) -> Call<'p>,
        what: &str,
    ) -> KvResult<Response> {
        self.send_on(Dest::Node(node), |rv, _| build(rv), None, what)
            .await
    }

    /// The one retry loop every request goes through: sends `build`'s call
    /// to `dest`, retrying transport failures, `Busy` and `StaleRouting`
    /// (after refreshing the table). `build` also learns whether the chosen
    /// connection can carry a one-sided message (GET_REMOTE / PUT_REMOTE).
    /// Such a message keeps `region` out of the transport (the server moves
    /// the bytes) and hands it back in the response; one refused with
    /// `NotSupported` drops the connection's queue pair and is built again,
    /// two-sided, without counting as an attempt.
    async fn send_on<'p>(
        &self,
        dest: Dest<'_>,
        build: impl Fn(u64, bool) -> Call<'p>,
        mut region: Option<MemoryRegion>,
        what: &str,
    ) -> KvResult<Response> {
        let attempts = self.pools.config().attempts;
        let mut last: Option<KvError> = None;
        let mut tcp_only = false;
        let mut attempt = 0;
        while attempt < attempts {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(20 << attempt.min(6))).await;
            }
            let routing = self.pools.routing();
            let result = self
                .attempt(&routing, dest, &build, &mut region, tcp_only)
                .await;
            let err = match result {
                Ok((resp, true)) if resp.status == Status::NotSupported as u16 => {
                    // Refused one-sided: the same request over TCP, now.
                    region = resp.region;
                    tcp_only = true;
                    continue;
                }
                Ok((resp, _)) => match Status::from_u16(resp.status) {
                    Some(Status::StaleRouting) => {
                        region = resp.region;
                        self.pools.refresh_routing().await?;
                        KvError::Server {
                            status: Status::StaleRouting,
                            context: what.to_string(),
                        }
                    }
                    Some(Status::Busy) => {
                        region = resp.region;
                        KvError::Server {
                            status: Status::Busy,
                            context: what.to_string(),
                        }
                    }
                    Some(_) => return Ok(resp),
                    None => {
                        return Err(KvError::Protocol(format!("unknown status {}", resp.status)))
                    }
                },
                Err(e) => e,
            };
            if !err.retryable() {
                return Err(err);
            }
            tracing::debug!("{what}: attempt {} failed: {err}", attempt + 1);
            last = Some(err);
            attempt += 1;
        }
        Err(last.unwrap_or_else(|| KvError::Invalid("no attempt made".into())))
    }

    /// One attempt of [`KvClient::send_on`]: the response and whether the
    /// message was one-sided.
    async fn attempt<'p>(
        &self,
        routing: &Routing,
        dest: Dest<'_>,
        build: &impl Fn(u64, bool) -> Call<'p>,
        region: &mut Option<MemoryRegion>,
        tcp_only: bool,
    ) -> KvResult<(Response, bool)> {
        let conn = match dest {
            Dest::Owner { space, key } => self.pools.connection_for(routing, space, key).await?,
            Dest::Node(node) => self.pools.connection(node).await?,
        };
        let call = build(routing.version, !tcp_only && conn.one_sided());
        if !is_one_sided(call.msg) {
            let r = self
                .pools
                .call_on(&conn, call.msg, &call.header, &call.payload, region.take())
                .await?;
            return Ok((r, false));
        }
        let mut guard = OneSided {
            conn: &conn,
            region: region.take(),
            armed: true,
        };
        let mut r = self
            .pools
            .call_on(&conn, call.msg, &call.header, &call.payload, None)
            .await?;
        // Answered: the server is done with the region.
        guard.armed = false;
        r.region = guard.region.take();
        if r.status == Status::NotSupported as u16 {
            conn.drop_qp("the server refused a one-sided transfer");
        }
        Ok((r, true))
    }

    fn fail(status: u16, what: &str) -> KvError {
        KvError::Server {
            status: Status::from_u16(status).unwrap_or(Status::Internal),
            context: what.to_string(),
        }
    }

    /// Stores `value` under `key`, replacing any value.
    pub async fn put(&self, space: &str, key: &[u8], value: &[u8]) -> KvResult<()> {
        match self.put_mode(space, key, value, PutMode::Overwrite).await? {
            true => Ok(()),
            false => Err(Self::fail(Status::Exists as u16, "put")),
        }
    }

    /// Stores `value` only if `key` has no live value. Returns whether it
    /// was stored.
    pub async fn put_if_absent(&self, space: &str, key: &[u8], value: &[u8]) -> KvResult<bool> {
        self.put_mode(space, key, value, PutMode::IfAbsent).await
    }

    async fn put_mode(
        &self,
        space: &str,
        key: &[u8],
        value: &[u8],
        mode: PutMode,
    ) -> KvResult<bool> {
        let build = |rv| Call {
            msg: msg::PUT,
            header: m::Put {
                target: Target {
                    routing_version: rv,
                    space,
                },
                key,
                mode,
            }
            .encode(),
            payload: vec![value],
        };
        let r = self.send(space, key, build, None, "put").await?;
        match Status::from_u16(r.status) {
            Some(Status::Ok) => Ok(true),
            Some(Status::Exists) => Ok(false),
            _ => Err(Self::fail(r.status, "put")),
        }
    }

    /// Reads `key`'s value, `None` if absent or expired.
    pub async fn get(&self, space: &str, key: &[u8]) -> KvResult<Option<Bytes>> {
        let r = self.get_raw(space, key, u64::MAX, None).await?;
        match Status::from_u16(r.status) {
            Some(Status::Ok) => Ok(Some(match r.payload {
                Payload::Pooled(b) => b.into_bytes(),
                Payload::InRegion(_) | Payload::Empty => Bytes::new(),
            })),
            Some(Status::NotFound) => Ok(None),
            _ => Err(Self::fail(r.status, "get")),
        }
    }

    /// Reads `key`'s value straight into `region` (no intermediate copy):
    /// by RDMA WRITE of the server when the region is registered
    /// ([`KvClient::register`]) and the connection has a queue pair, from
    /// the socket otherwise. Returns the region and the value's length
    /// (`None`: absent). A value longer than the region fails with
    /// `BufferTooSmall`.
    pub async fn get_into(
        &self,
        space: &str,
        key: &[u8],
        region: MemoryRegion,
    ) -> KvResult<(MemoryRegion, Option<usize>)> {
        let max = region.len() as u64;
        let remote = region.remote();
        let build = |rv, one_sided: bool| {
            let target = Target {
                routing_version: rv,
                space,
            };
            let header = match remote.filter(|_| one_sided) {
                Some(buf) => {
                    return Call {
                        msg: msg::GET_REMOTE,
                        header: m::GetRemote {
                            target,
                            key,
                            buf: wire_buf(buf),
                        }
                        .encode(),
                        payload: Vec::new(),
                    }
                }
                None => KeyOp {
                    target,
                    key,
                    max_len: max,
                }
                .encode(),
            };
            Call {
                msg: msg::GET,
                header,
                payload: Vec::new(),
            }
        };
        let dest = Dest::Owner { space, key };
        let r = self.send_on(dest, build, Some(region), "get").await?;
        let region = r
            .region
            .ok_or_else(|| KvError::Protocol("region not handed back".into()))?;
        match Status::from_u16(r.status) {
            Some(Status::Ok) if r.msg == msg::GET_REMOTE => {
                let n = m::decode_u64(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
                match usize::try_from(n).ok().filter(|&n| n <= region.len()) {
                    Some(n) => Ok((region, Some(n))),
                    None => Err(KvError::Protocol(format!(
                        "the server wrote {n} bytes into a {}-byte region",
                        region.len()
                    ))),
                }
            }
            Some(Status::Ok) => match r.payload {
                Payload::InRegion(n) => Ok((region, Some(n))),
                Payload::Empty => Ok((region, Some(0))),
                Payload::Pooled(_) => Err(KvError::Protocol("value larger than announced".into())),
            },
            Some(Status::NotFound) => Ok((region, None)),
            _ => Err(Self::fail(r.status, "get")),
        }
    }

    /// Stores the first `len` bytes of `region` under `key`: read by the
    /// server with RDMA READ when the region is registered
    /// ([`KvClient::register`]) and the connection has a queue pair, sent
    /// as a PUT payload straight from the region otherwise. With
    /// [`PutMode::IfAbsent`] returns whether it was stored (`false`: a live
    /// value exists); with `Overwrite`, `true`.
    pub async fn put_from(
        &self,
        space: &str,
        key: &[u8],
        region: &MemoryRegion,
        len: usize,
        mode: PutMode,
    ) -> KvResult<bool> {
        let value = region.get(..len).ok_or_else(|| {
            KvError::Invalid(format!(
                "{len} bytes asked of a {}-byte region",
                region.len()
            ))
        })?;
        let remote = region
            .remote()
            .zip(u32::try_from(len).ok())
            .map(|(b, len)| RemoteBuf { len, ..b });
        let build = |rv, one_sided: bool| {
            let target = Target {
                routing_version: rv,
                space,
            };
            match remote.filter(|_| one_sided) {
                Some(buf) => Call {
                    msg: msg::PUT_REMOTE,
                    header: m::PutRemote {
                        target,
                        key,
                        mode,
                        buf: wire_buf(buf),
                    }
                    .encode(),
                    payload: Vec::new(),
                },
                None => Call {
                    msg: msg::PUT,
                    header: m::Put { target, key, mode }.encode(),
                    payload: vec![value],
                },
            }
        };
        let r = self
            .send_on(Dest::Owner { space, key }, build, None, "put")
            .await?;
        match Status::from_u16(r.status) {
            Some(Status::Ok) => Ok(true),
            Some(Status::Exists) => Ok(false),
            _ => Err(Self::fail(r.status, "put")),
        }
    }

    async fn get_raw(
        &self,
        space: &str,
        key: &[u8],
        max_len: u64,
        region: Option<MemoryRegion>,
    ) -> KvResult<Response> {
        let build = |rv| Call {
            msg: msg::GET,
            header: KeyOp {
                target: Target {
                    routing_version: rv,
                    space,
                },
                key,
                max_len,
            }
            .encode(),
            payload: Vec::new(),
        };
        self.send(space, key, build, region, "get").await
    }

    async fn key_bool(&self, space: &str, key: &[u8], msg_id: u16, what: &str) -> KvResult<bool> {
        let build = |rv| Call {
            msg: msg_id,
            header: KeyOp {
                target: Target {
                    routing_version: rv,
                    space,
                },
                key,
                max_len: 0,
            }
            .encode(),
            payload: Vec::new(),
        };
        let r = self.send(space, key, build, None, what).await?;
        match Status::from_u16(r.status) {
            Some(Status::Ok) => Ok(true),
            Some(Status::NotFound) => Ok(false),
            _ => Err(Self::fail(r.status, what)),
        }
    }

    /// Removes `key`. Returns whether a live value was removed.
    pub async fn delete(&self, space: &str, key: &[u8]) -> KvResult<bool> {
        self.key_bool(space, key, msg::DELETE, "delete").await
    }

    /// Whether `key` has a live value.
    pub async fn exists(&self, space: &str, key: &[u8]) -> KvResult<bool> {
        self.key_bool(space, key, msg::EXISTS, "exists").await
    }

    /// Groups key indexes by the node that owns them, in caller order, and
    /// cuts each group into batches the protocol accepts.
    fn groups<K: AsRef<[u8]>>(&self, space: &str, keys: &[K]) -> Vec<Vec<usize>> {
        let routing = self.pools.routing();
        let mut by_node: Vec<(u32, Vec<usize>)> = Vec::new();
        for (i, k) in keys.iter().enumerate() {
            let node = routing
                .node_for(space, k.as_ref())
                .map(|n| n.id)
                .unwrap_or(0);
            match by_node.iter_mut().find(|(n, _)| *n == node) {
                Some((_, v)) => v.push(i),
                None => by_node.push((node, vec![i])),
            }
        }
        by_node
            .into_iter()
            .flat_map(|(_, idx)| {
                idx.chunks(MAX_BATCH)
                    .map(|c| c.to_vec())
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Sends one keys-only batch message for the keys at `idx`.
    async fn keys_call<K: AsRef<[u8]>>(
        &self,
        space: &str,
        keys: &[K],
        idx: &[usize],
        msg_id: u16,
        what: &str,
    ) -> KvResult<Response> {
        let route = idx.first().map(|&i| keys[i].as_ref()).unwrap_or(b"");
        let build = |rv| Call {
            msg: msg_id,
            header: Keys {
                target: Target {
                    routing_version: rv,
                    space,
                },
                keys: idx.iter().map(|&i| keys[i].as_ref()).collect(),
            }
            .encode(),
            payload: Vec::new(),
        };
        let r = self.send(space, route, build, None, what).await?;
        if r.status != Status::Ok as u16 {
            return Err(Self::fail(r.status, what));
        }
        Ok(r)
    }

    async fn batch_flags<K: AsRef<[u8]>>(
        &self,
        space: &str,
        keys: &[K],
        msg_id: u16,
        what: &str,
    ) -> KvResult<Vec<bool>> {
        let mut out = vec![false; keys.len()];
        let groups = self.groups(space, keys);
        let calls = groups
            .iter()
            .map(|idx| self.keys_call(space, keys, idx, msg_id, what));
        let replies = futures::future::join_all(calls).await;
        for (idx, r) in groups.iter().zip(replies) {
            let flags = m::decode_u16s(&r?.header).map_err(|e| KvError::Protocol(e.to_string()))?;
            if flags.len() != idx.len() {
                return Err(KvError::Protocol(format!(
                    "{what}: {} answers for {} keys",
                    flags.len(),
                    idx.len()
                )));
            }
            for (&i, f) in idx.iter().zip(flags) {
                out[i] = f != 0;
            }
        }
        Ok(out)
    }

    /// Which of `keys` have live values, in one round trip per node.
    pub async fn batch_exists<K: AsRef<[u8]>>(
        &self,
        space: &str,
        keys: &[K],
    ) -> KvResult<Vec<bool>> {
        self.batch_flags(space, keys, msg::BATCH_EXISTS, "batch exists")
            .await
    }

    /// Removes `keys`; per key whether a live value was removed.
    pub async fn batch_delete<K: AsRef<[u8]>>(
        &self,
        space: &str,
        keys: &[K],
    ) -> KvResult<Vec<bool>> {
        self.batch_flags(space, keys, msg::BATCH_DELETE, "batch delete")
            .await
    }

    /// Length of the longest leading run of `keys` that exist: how many
    /// prefix blocks an inference engine can reuse. One round trip when one
    /// node owns them all.
    pub async fn prefix_match<K: AsRef<[u8]>>(&self, space: &str, keys: &[K]) -> KvResult<usize> {
        let groups = self.groups(space, keys);
        if groups.len() == 1 {
            let r = self
                .keys_call(space, keys, &groups[0], msg::PREFIX_MATCH, "prefix match")
                .await?;
            let n = m::decode_u64(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
            return Ok(usize::try_from(n).unwrap_or(usize::MAX).min(keys.len()));
        }
        let flags = self.batch_exists(space, keys).await?;
        Ok(flags.iter().take_while(|&&f| f).count())
    }

    /// Reads `keys`; `None` for absent ones. One round trip per node unless
    /// the values exceed one response, in which case the rest are fetched
    /// in follow-up requests.
    pub async fn batch_get<K: AsRef<[u8]>>(
        &self,
        space: &str,
        keys: &[K],
    ) -> KvResult<Vec<Option<Bytes>>> {
        let mut out: Vec<Option<Bytes>> = vec![None; keys.len()];
        let mut todo = self.groups(space, keys);
        while !todo.is_empty() {
            let calls = todo
                .iter()
                .map(|idx| self.keys_call(space, keys, idx, msg::BATCH_GET, "batch get"));
            let replies = futures::future::join_all(calls).await;
            let mut again = Vec::new();
            for (idx, r) in todo.iter().zip(replies) {
                let r = r?;
                let items =
                    m::decode_batch_get(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
                if items.len() != idx.len() {
                    return Err(KvError::Protocol("batch get: answer count".into()));
                }
                let payload = match r.payload {
                    Payload::Pooled(b) => b.into_bytes(),
                    _ => Bytes::new(),
                };
                let mut off = 0usize;
                let mut retry = Vec::new();
                for (&i, (status, len)) in idx.iter().zip(items) {
                    match Status::from_u16(status) {
                        Some(Status::Ok) => {
                            let len = usize::try_from(len)
                                .map_err(|_| KvError::Protocol("length".into()))?;
                            let end = off
                                .checked_add(len)
                                .filter(|&e| e <= payload.len())
                                .ok_or_else(|| {
                                    KvError::Protocol(
                                        "batch get: values overrun the payload".into(),
                                    )
                                })?;
                            out[i] = Some(payload.slice(off..end));
                            off = end;
                        }
                        Some(Status::NotFound) => {}
                        Some(Status::NotSent) => retry.push(i),
                        _ => return Err(Self::fail(status, "batch get")),
                    }
                }
                if retry.len() == idx.len() {
                    return Err(KvError::Protocol("batch get: server sent no value".into()));
                }
                if !retry.is_empty() {
                    again.push(retry);
                }
            }
            todo = again;
        }
        Ok(out)
    }

    /// Stores many values: one round trip per node (more if the values
    /// exceed one frame). Per item: `Ok` or `Exists` (IfAbsent) or the error
    /// status for that item.
    pub async fn batch_put<K: AsRef<[u8]>, V: AsRef<[u8]>>(
        &self,
        space: &str,
        items: &[(K, V)],
        mode: PutMode,
    ) -> KvResult<Vec<Status>> {
        const FRAME_BUDGET: u64 = 96 * 1024 * 1024;
        let keys: Vec<&[u8]> = items.iter().map(|(k, _)| k.as_ref()).collect();
        let mut out = vec![Status::Internal; items.len()];
        // Cut each node's group further so one frame stays under budget.
        let mut batches: Vec<Vec<usize>> = Vec::new();
        for group in self.groups(space, &keys) {
            let mut cur = Vec::new();
            let mut bytes = 0u64;
            for i in group {
                let len = items[i].1.as_ref().len() as u64;
                if !cur.is_empty() && bytes + len > FRAME_BUDGET {
                    batches.push(std::mem::take(&mut cur));
                    bytes = 0;
                }
                bytes += len;
                cur.push(i);
            }
            if !cur.is_empty() {
                batches.push(cur);
            }
        }
        let keys = &keys;
        let calls = batches.iter().map(|idx| {
            let build = move |rv| Call {
                msg: msg::BATCH_PUT,
                header: m::BatchPut {
                    target: Target {
                        routing_version: rv,
                        space,
                    },
                    mode,
                    items: idx
                        .iter()
                        .map(|&i| (keys[i], items[i].1.as_ref().len() as u64))
                        .collect(),
                }
                .encode(),
                payload: idx.iter().map(|&i| items[i].1.as_ref()).collect(),
            };
            let route = idx.first().map(|&i| keys[i]).unwrap_or(b"");
            self.send(space, route, build, None, "batch put")
        });
        let replies = futures::future::join_all(calls).await;
        for (idx, r) in batches.iter().zip(replies) {
            let r = r?;
            if r.status != Status::Ok as u16 {
                return Err(Self::fail(r.status, "batch put"));
            }
            let st = m::decode_u16s(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
            if st.len() != idx.len() {
                return Err(KvError::Protocol("batch put: answer count".into()));
            }
            for (&i, s) in idx.iter().zip(st) {
                out[i] = Status::from_u16(s).unwrap_or(Status::Internal);
            }
        }
        Ok(out)
    }

    /// One page of keys starting with `prefix`, after `start_after`. With
    /// several nodes each node is asked and the pages merged in key order.
    pub async fn scan(
        &self,
        space: &str,
        prefix: &[u8],
        start_after: Option<&[u8]>,
        limit: u32,
    ) -> KvResult<ScanPage> {
        let routing = self.pools.routing();
        let mut merged = ScanPage::default();
        for node in &routing.nodes {
            let build = |rv| Call {
                msg: msg::SCAN,
                header: m::Scan {
                    target: Target {
                        routing_version: rv,
                        space,
                    },
                    prefix,
                    start_after,
                    limit,
                }
                .encode(),
                payload: Vec::new(),
            };
            let r = self.send_to_node(node.id, build, "scan").await?;
            if r.status != Status::Ok as u16 {
                return Err(Self::fail(r.status, "scan"));
            }
            let page = ScanPage::decode(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
            merged.more |= page.more;
            merged.entries.extend(page.entries);
        }
        merged.entries.sort();
        if merged.entries.len() > limit as usize {
            merged.entries.truncate(limit as usize);
            merged.more = true;
        }
        Ok(merged)
    }

    /// Every key starting with `prefix` (pages through [`KvClient::scan`]).
    pub async fn scan_all(&self, space: &str, prefix: &[u8]) -> KvResult<Vec<(Vec<u8>, u64)>> {
        let mut all: Vec<(Vec<u8>, u64)> = Vec::new();
        loop {
            let after = all.last().map(|(k, _)| k.clone());
            let page = self.scan(space, prefix, after.as_deref(), 1000).await?;
            let more = page.more && !page.entries.is_empty();
            all.extend(page.entries);
            if !more {
                return Ok(all);
            }
        }
    }

    /// A space's settings and counters (summed over nodes).
    pub async fn stat(&self, space: &str) -> KvResult<SpaceStat> {
        let routing = self.pools.routing();
        let mut total = SpaceStat::default();
        for node in &routing.nodes {
            let build = |rv| Call {
                msg: msg::STAT,
                header: m::StatReq {
                    target: Target {
                        routing_version: rv,
                        space,
                    },
                }
                .encode(),
                payload: Vec::new(),
            };
            let r = self.send_to_node(node.id, build, "stat").await?;
            if r.status != Status::Ok as u16 {
                return Err(Self::fail(r.status, "stat"));
            }
            let s = SpaceStat::decode(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
            total.capacity += s.capacity;
            total.bytes += s.bytes;
            total.keys += s.keys;
            total.hits += s.hits;
            total.misses += s.misses;
            total.evictions += s.evictions;
            total.expirations += s.expirations;
            total.puts += s.puts;
            total.deletes += s.deletes;
            total.ttl_secs = s.ttl_secs;
            total.durable = s.durable;
        }
        Ok(total)
    }
}

/// Request building shared by the pool (`Request` is the transport's type).
fn request<'a>(msg: u16, header: &'a [u8], payload: &'a [&'a [u8]]) -> Request<'a> {
    Request {
        msg,
        header,
        payload,
    }
}
