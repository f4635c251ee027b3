//! Connections per data node, authenticated on open (and paired with an
//! RDMA queue pair when both ends have verbs), and the routing cache.

use crate::{request, ClientConfig, KvError, KvResult};
use nitrofs_kv_wire::messages::{decode_routing, Auth, Challenge, Hello};
use nitrofs_kv_wire::{auth, msg, Routing, Status, PROTOCOL_VERSION};
use nitrofs_rdma_transport::{
    BufPool, Connection, Limits, MemoryRegion, Response, TcpConnection, TransportError,
};
use parking_lot::{Mutex, RwLock};
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

#[cfg(feature = "rdma")]
use nitrofs_rdma_transport::verbs::{Endpoint, VerbsContext, VerbsQueuePair};

/// One pooled connection: the framed TCP connection every message travels
/// on and, when RDMA_CONNECT succeeded on it, this client's end of the
/// queue pair the server's one-sided transfers target.
pub(crate) struct KvConn {
    tcp: TcpConnection,
    #[cfg(feature = "rdma")]
    qp: Mutex<Option<VerbsQueuePair>>,
}

impl KvConn {
    fn tcp_only(tcp: TcpConnection) -> Self {
        Self {
            tcp,
            #[cfg(feature = "rdma")]
            qp: Mutex::new(None),
        }
    }

    fn is_closed(&self) -> bool {
        self.tcp.is_closed()
    }

    /// Whether the server may move values of this connection by RDMA.
    pub(crate) fn one_sided(&self) -> bool {
        #[cfg(feature = "rdma")]
        let ready = self.qp.lock().as_ref().is_some_and(|q| !q.is_closed());
        #[cfg(not(feature = "rdma"))]
        let ready = false;
        ready
    }

    /// Destroys this end of the queue pair: from here the server cannot
    /// reach this process's memory through it (its transfers fail), and the
    /// connection carries values over TCP only.
    pub(crate) fn drop_qp(&self, why: &str) {
        #[cfg(feature = "rdma")]
        if let Some(qp) = self.qp.lock().take() {
            tracing::debug!("kv connection leaves rdma: {why}");
            drop(qp);
        }
        #[cfg(not(feature = "rdma"))]
        let _ = why;
    }
}

/// The client's verbs device, if it uses one.
struct Rdma {
    #[cfg(feature = "rdma")]
    ctx: Option<Arc<VerbsContext>>,
    /// Whether "stays on TCP" was logged already (once is enough).
    #[cfg(feature = "rdma")]
    logged: std::sync::atomic::AtomicBool,
}

impl Rdma {
    /// Opens the device when built with `rdma`, allowed by the config and a
    /// device answers.
    fn open(cfg: &ClientConfig) -> Self {
        let backend = nitrofs_rdma_transport::select_backend("kv client");
        #[cfg(feature = "rdma")]
        let ctx = match backend {
            nitrofs_rdma_transport::BackendKind::Verbs if cfg.rdma => {
                match VerbsContext::open_first() {
                    Ok(ctx) => Some(ctx),
                    Err(e) => {
                        tracing::warn!("kv client: cannot open the rdma device ({e}); using TCP");
                        None
                    }
                }
            }
            _ => None,
        };
        #[cfg(not(feature = "rdma"))]
        let _ = (backend, cfg);
        Self {
            #[cfg(feature = "rdma")]
            ctx,
            #[cfg(feature = "rdma")]
            logged: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Pairs a queue pair with `tcp` (authenticated) if this client has
    /// verbs; any refusal leaves the connection on TCP.
    async fn attach(&self, tcp: TcpConnection, cfg: &ClientConfig, addr: &str) -> KvResult<KvConn> {
        #[cfg(feature = "rdma")]
        if let Some(ctx) = &self.ctx {
            let qp = self.connect_qp(ctx, &tcp, cfg, addr).await?;
            return Ok(KvConn {
                tcp,
                qp: Mutex::new(qp),
            });
        }
        #[cfg(not(feature = "rdma"))]
        let _ = (cfg, addr);
        Ok(KvConn::tcp_only(tcp))
    }

    /// RDMA_CONNECT: our endpoint out, the server's (its queue pair ready)
    /// back, then ours made ready before any transfer is asked for.
    #[cfg(feature = "rdma")]
    async fn connect_qp(
        &self,
        ctx: &Arc<VerbsContext>,
        tcp: &TcpConnection,
        cfg: &ClientConfig,
        addr: &str,
    ) -> KvResult<Option<VerbsQueuePair>> {
        use nitrofs_kv_wire::messages::RdmaConnect;
        let prepared = match ctx.prepare() {
            Ok(p) => p,
            Err(e) => {
                self.stay_on_tcp(addr, &format!("queue pair set-up failed: {e}"));
                return Ok(None);
            }
        };
        let header = RdmaConnect {
            endpoint: prepared.endpoint().encode(),
        }
        .encode();
        let call = tcp.call(request(msg::RDMA_CONNECT, &header, &[]), None);
        let r = tokio::time::timeout(cfg.request_timeout, call)
            .await
            .map_err(|_| KvError::Transport(TransportError::TimedOut))??;
        if r.status != Status::Ok as u16 {
            let why = Status::from_u16(r.status)
                .map_or_else(|| format!("status {}", r.status), |s| s.to_string());
            self.stay_on_tcp(
                addr,
                &format!("the server answered RDMA_CONNECT with {why}"),
            );
            return Ok(None);
        }
        let peer = RdmaConnect::decode(&r.header)
            .map_err(|e| e.to_string())
            .and_then(|c| Endpoint::decode(&c.endpoint).map_err(|e| e.to_string()));
        let peer = match peer {
            Ok(p) => p,
            Err(e) => {
                self.stay_on_tcp(addr, &format!("bad RDMA_CONNECT answer: {e}"));
                return Ok(None);
            }
        };
        match prepared.complete(&peer) {
            Ok(qp) => Ok(Some(qp)),
            Err(e) => {
                self.stay_on_tcp(addr, &format!("connecting the queue pair failed: {e}"));
                Ok(None)
            }
        }
    }

    #[cfg(feature = "rdma")]
    fn stay_on_tcp(&self, addr: &str, why: &str) {
        if !self.logged.swap(true, Ordering::Relaxed) {
            tracing::debug!(addr, "kv connection stays on TCP: {why}");
        }
    }

    /// A region the server can reach by RDMA, if this client has verbs
    /// (plain otherwise, or if registration fails).
    fn register(&self, len: usize) -> MemoryRegion {
        #[cfg(feature = "rdma")]
        if let Some(ctx) = &self.ctx {
            match ctx.register(len) {
                Ok(r) => return MemoryRegion::registered(r),
                Err(e) => {
                    if !self.logged.swap(true, Ordering::Relaxed) {
                        tracing::debug!(
                            "kv client: registering {len} bytes failed ({e}); plain region"
                        );
                    }
                }
            }
        }
        MemoryRegion::new(len)
    }
}

/// The connections of one data node.
struct NodePool {
    addr: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<KvConn>>>>,
    next: AtomicUsize,
}

/// Every node's pool and the routing table they were built from.
pub(crate) struct Pools {
    cfg: ClientConfig,
    routing: RwLock<Arc<Routing>>,
    nodes: Mutex<HashMap<u32, Arc<NodePool>>>,
    bufs: Arc<BufPool>,
    refresh: tokio::sync::Mutex<()>,
    rdma: Rdma,
    /// Whether the bootstrap connection got a queue pair: registered
    /// regions are worth handing out.
    one_sided: bool,
}

impl Pools {
    /// Connects to the bootstrap address and learns the routing table.
    pub(crate) async fn bootstrap(cfg: ClientConfig) -> KvResult<Self> {
        let rdma = Rdma::open(&cfg);
        let bufs = BufPool::new(256 * 1024 * 1024);
        let (conn, routing) = open(&cfg, &cfg.addr, &bufs, &rdma).await?;
        let one_sided = conn.one_sided();
        let pools = Self {
            routing: RwLock::new(Arc::new(routing.clone())),
            nodes: Mutex::new(HashMap::new()),
            bufs,
            refresh: tokio::sync::Mutex::new(()),
            cfg,
            rdma,
            one_sided,
        };
        pools.install(&routing);
        // Keep the bootstrap connection as the first slot of its node.
        let home = routing
            .nodes
            .iter()
            .find(|n| pools.resolve(&n.addr) == pools.cfg.addr)
            .or(if routing.nodes.len() == 1 {
                routing.nodes.first()
            } else {
                None
            })
            .map(|n| n.id);
        if let Some(pool) = home.and_then(|id| pools.nodes.lock().get(&id).cloned()) {
            if let Some(slot) = pool.slots.first() {
                *slot.lock().await = Some(Arc::new(conn));
            }
        }
        Ok(pools)
    }

    pub(crate) fn config(&self) -> &ClientConfig {
        &self.cfg
    }

    pub(crate) fn routing(&self) -> Arc<Routing> {
        self.routing.read().clone()
    }

    /// Whether values may move by one-sided RDMA (the bootstrap node
    /// accepted a queue pair).
    pub(crate) fn one_sided(&self) -> bool {
        self.one_sided
    }

    /// A region for `get_into` / `put_from`: registered when values may move
    /// by RDMA, plain otherwise.
    pub(crate) fn register(&self, len: usize) -> MemoryRegion {
        if self.one_sided {
            self.rdma.register(len)
        } else {
            MemoryRegion::new(len)
        }
    }

    /// A node address as this client reaches it: a server listening on the
    /// unspecified address advertises it; use the bootstrap host instead.
    fn resolve(&self, addr: &str) -> String {
        let Some((host, port)) = addr.rsplit_once(':') else {
            return addr.to_string();
        };
        if host == "0.0.0.0" || host == "[::]" {
            let boot_host = self
                .cfg
                .addr
                .rsplit_once(':')
                .map(|(h, _)| h)
                .unwrap_or("127.0.0.1");
            return format!("{boot_host}:{port}");
        }
        addr.to_string()
    }

    /// Creates pools for nodes new in `routing`, keeps existing ones.
    fn install(&self, routing: &Routing) {
        let mut nodes = self.nodes.lock();
        for n in &routing.nodes {
            let addr = self.resolve(&n.addr);
            let stale = nodes.get(&n.id).is_some_and(|p| p.addr != addr);
            if stale || !nodes.contains_key(&n.id) {
                nodes.insert(
                    n.id,
                    Arc::new(NodePool {
                        addr,
                        slots: (0..self.cfg.connections_per_node)
                            .map(|_| tokio::sync::Mutex::new(None))
                            .collect(),
                        next: AtomicUsize::new(0),
                    }),
                );
            }
        }
        nodes.retain(|id, _| routing.nodes.iter().any(|n| n.id == *id));
    }

    /// Fetches the routing table again (after a StaleRouting answer).
    pub(crate) async fn refresh_routing(&self) -> KvResult<()> {
        let seen = self.routing().version;
        let _one = self.refresh.lock().await;
        if self.routing().version != seen {
            return Ok(()); // someone else refreshed meanwhile
        }
        let ids: Vec<u32> = self.routing().nodes.iter().map(|n| n.id).collect();
        let mut last = KvError::Invalid("routing table has no nodes".into());
        for id in ids {
            match self.call_node(id, msg::ROUTING, &[], &[], None).await {
                Ok(r) if r.status == Status::Ok as u16 => {
                    let routing =
                        decode_routing(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
                    tracing::debug!(version = routing.version, "routing table refreshed");
                    self.install(&routing);
                    *self.routing.write() = Arc::new(routing);
                    return Ok(());
                }
                Ok(r) => last = crate::KvClient::fail(r.status, "routing"),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// A pooled connection to the node owning `(space, key)`.
    pub(crate) async fn connection_for(
        &self,
        routing: &Routing,
        space: &str,
        key: &[u8],
    ) -> KvResult<Arc<KvConn>> {
        let node = routing
            .node_for(space, key)
            .ok_or_else(|| KvError::Protocol("routing table has no chains".into()))?;
        self.connection(node.id).await
    }

    /// Sends to one node over one of its pooled connections.
    pub(crate) async fn call_node(
        &self,
        node: u32,
        msg_id: u16,
        header: &[u8],
        payload: &[&[u8]],
        region: Option<MemoryRegion>,
    ) -> KvResult<Response> {
        let conn = self.connection(node).await?;
        self.call_on(&conn, msg_id, header, payload, region).await
    }

    /// Sends on `conn`, bounded by the request timeout.
    pub(crate) async fn call_on(
        &self,
        conn: &KvConn,
        msg_id: u16,
        header: &[u8],
        payload: &[&[u8]],
        region: Option<MemoryRegion>,
    ) -> KvResult<Response> {
        let call = conn.tcp.call(request(msg_id, header, payload), region);
        match tokio::time::timeout(self.cfg.request_timeout, call).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(KvError::Transport(TransportError::TimedOut)),
        }
    }

    /// A live, authenticated connection to `node`, opened if needed.
    pub(crate) async fn connection(&self, node: u32) -> KvResult<Arc<KvConn>> {
        let pool = self
            .nodes
            .lock()
            .get(&node)
            .cloned()
            .ok_or_else(|| KvError::Protocol(format!("routing names unknown node {node}")))?;
        let i = pool.next.fetch_add(1, Ordering::Relaxed) % pool.slots.len().max(1);
        let Some(slot) = pool.slots.get(i) else {
            return Err(KvError::Invalid("no connection slots".into()));
        };
        let mut slot = slot.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (conn, _) = open(&self.cfg, &pool.addr, &self.bufs, &self.rdma).await?;
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Opens a connection, authenticates on it and, if this client has verbs,
/// pairs a queue pair with it; returns the routing table.
async fn open(
    cfg: &ClientConfig,
    addr: &str,
    bufs: &Arc<BufPool>,
    rdma: &Rdma,
) -> KvResult<(KvConn, Routing)> {
    let conn = tokio::time::timeout(
        cfg.request_timeout,
        TcpConnection::connect(addr, Limits::default(), bufs.clone()),
    )
    .await
    .map_err(|_| KvError::Transport(TransportError::TimedOut))??;
    let hello = Hello {
        version: PROTOCOL_VERSION,
        access_key: &cfg.access_key,
    }
    .encode();
    let r = conn.call(request(msg::HELLO, &hello, &[]), None).await?;
    if r.status != Status::Ok as u16 {
        return Err(crate::KvClient::fail(r.status, "hello"));
    }
    let challenge = Challenge::decode(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
    let mac = auth::answer(cfg.secret_key.as_bytes(), &challenge.nonce, &cfg.access_key);
    let r = conn
        .call(request(msg::AUTH, &Auth { mac }.encode(), &[]), None)
        .await?;
    if r.status != Status::Ok as u16 {
        return Err(crate::KvClient::fail(r.status, "authenticate"));
    }
    let routing = decode_routing(&r.header).map_err(|e| KvError::Protocol(e.to_string()))?;
    let conn = rdma.attach(conn, cfg, addr).await?;
    Ok((conn, routing))
}
