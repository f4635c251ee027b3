//! Wiring of the KV service: the store under `<data-dir>/kv`, the S3
//! identity table as its authenticator, the transport it is served on.

use crate::config::KvSettings;
use nitrofs_kv::store::{Store, StoreError};
use nitrofs_kv::{Authenticator, KvMetrics, KvService, Principal};
use nitrofs_kv_wire::Routing;
use nitrofs_rdma_transport::{ServerConfig, ServerStats};
use nitrofs_s3::Identities;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;

/// The S3 identities, answering the KV handshake.
struct IdentityAuth(Arc<Identities>);

impl Authenticator for IdentityAuth {
    fn lookup(&self, access_key: &str) -> Option<Principal> {
        self.0.lookup(access_key).map(|i| Principal {
            secret: i.secret_key,
            credentials: i.credentials,
        })
    }
}

/// Opens (creating) the KV store of this data node.
pub fn open_store(data_dir: &Path) -> Result<Arc<Store>, StoreError> {
    Ok(Arc::new(Store::open(&data_dir.join("kv"))?))
}

/// Serves KV requests on `listener` until the process ends, and sweeps
/// expired values once a second.
pub async fn serve(
    listener: TcpListener,
    bound: SocketAddr,
    settings: KvSettings,
    store: Arc<Store>,
    identities: Arc<Identities>,
    metrics: Arc<KvMetrics>,
    stats: Arc<ServerStats>,
) -> std::io::Result<()> {
    let backend = nitrofs_rdma_transport::select_backend("kv server");
    let advertise = settings
        .advertise
        .clone()
        .unwrap_or_else(|| bound.to_string());
    let service = KvService::new(
        store.clone(),
        Arc::new(IdentityAuth(identities)),
        Routing::single(1, advertise),
        metrics,
    );
    // One-sided transfers for clients that ask, when a device answered.
    #[cfg(feature = "rdma")]
    let service = match backend {
        nitrofs_rdma_transport::BackendKind::Verbs => {
            match nitrofs_rdma_transport::verbs::VerbsContext::open_first() {
                Ok(ctx) => service.with_verbs(ctx),
                Err(e) => {
                    tracing::warn!("kv server: cannot open the rdma device ({e}); TCP only");
                    service
                }
            }
        }
        nitrofs_rdma_transport::BackendKind::Tcp => service,
    };
    #[cfg(not(feature = "rdma"))]
    let _ = backend;
    let cfg = ServerConfig {
        idle_timeout: settings.idle_timeout,
        frame_timeout: settings.frame_timeout,
        max_connections: settings.max_connections,
        ..ServerConfig::default()
    };
    tokio::spawn(nitrofs_kv::sweep_expired(store));
    nitrofs_rdma_transport::serve(listener, Arc::new(service), cfg, stats).await
}

/// Appends the KV transport's connection counters in Prometheus text format.
pub fn render_transport(stats: &ServerStats, out: &mut String) {
    use std::fmt::Write as _;
    use std::sync::atomic::Ordering::Relaxed;
    for (name, kind, help, v) in [
        (
            "nitrofs_kv_connections_accepted_total",
            "counter",
            "KV connections accepted.",
            &stats.connections_accepted,
        ),
        (
            "nitrofs_kv_connections_open",
            "gauge",
            "KV connections open now.",
            &stats.connections_open,
        ),
        (
            "nitrofs_kv_connections_refused_total",
            "counter",
            "KV connections refused at the limit.",
            &stats.connections_refused,
        ),
        (
            "nitrofs_kv_connections_dropped_total",
            "counter",
            "KV connections closed for protocol violations or timeouts.",
            &stats.connections_dropped,
        ),
    ] {
        let _ = writeln!(out, "# HELP {name} {help}");
        let _ = writeln!(out, "# TYPE {name} {kind}");
        let _ = writeln!(out, "{name} {}", v.load(Relaxed));
    }
}
