//! Connections per data node, authenticated on open, and the routing cache.

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

/// The connections of one data node.
struct NodePool {
    addr: String,
    slots: Vec<tokio::sync::Mutex<Option<Arc<TcpConnection>>>>,
    next: AtomicUsize,
}

/// Every node's pool and the routing table they were built from.
pub(crate) struct Pools {
    cfg: ClientConfig,
    routing: RwLock<Arc<Routing>>,
    nodes: Mutex<HashMap<u32, Arc<NodePool>>>,
    bufs: Arc<BufPool>,
    refresh: tokio::sync::Mutex<()>,
}

impl Pools {
    /// Connects to the bootstrap address and learns the routing table.
    pub(crate) async fn bootstrap(cfg: ClientConfig) -> KvResult<Self> {
        nitrofs_rdma_transport::select_backend("kv client");
        let bufs = BufPool::new(256 * 1024 * 1024);
        let (conn, routing) = open(&cfg, &cfg.addr, &bufs).await?;
        let pools = Self {
            routing: RwLock::new(Arc::new(routing.clone())),
            nodes: Mutex::new(HashMap::new()),
            bufs,
            refresh: tokio::sync::Mutex::new(()),
            cfg,
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

    /// Sends to the node owning `(space, key)`.
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn call(
        &self,
        routing: &Routing,
        space: &str,
        key: &[u8],
        msg_id: u16,
        header: &[u8],
        payload: &[&[u8]],
        region: Option<MemoryRegion>,
    ) -> KvResult<Response> {
        let node = routing
            .node_for(space, key)
            .ok_or_else(|| KvError::Protocol("routing table has no chains".into()))?;
        self.call_node(node.id, msg_id, header, payload, region)
            .await
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
        let call = conn.call(request(msg_id, header, payload), region);
        match tokio::time::timeout(self.cfg.request_timeout, call).await {
            Ok(r) => Ok(r?),
            Err(_) => Err(KvError::Transport(TransportError::TimedOut)),
        }
    }

    /// A live, authenticated connection to `node`, opened if needed.
    async fn connection(&self, node: u32) -> KvResult<Arc<TcpConnection>> {
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
        let (conn, _) = open(&self.cfg, &pool.addr, &self.bufs).await?;
        let conn = Arc::new(conn);
        *slot = Some(conn.clone());
        Ok(conn)
    }
}

/// Opens a connection and authenticates on it; returns the routing table.
async fn open(
    cfg: &ClientConfig,
    addr: &str,
    bufs: &Arc<BufPool>,
) -> KvResult<(TcpConnection, Routing)> {
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
    Ok((conn, routing))
}
