//! `nitrofs serve`: every role in one process on one data directory.
//!
//! This is the one place that chooses backends: RocksDB metadata in
//! `<data_dir>/meta`, the local chunk engine in `<data_dir>/chunks`, the
//! NFSv3 gateway, the S3 gateway and the admin API over the same
//! [`FileSystem`], with the S3 identity table shared by the S3 gateway and
//! the admin API.
//!
//! Start-up prints one `<endpoint> listening on <addr>` line per endpoint
//! (the bound address, so port 0 works), the S3 root keys when they were
//! just generated (once, ever), and then `nitrofs ready`.
//! SIGTERM or SIGINT stops accepting, ends every connection, closes the
//! metadata store and exits with status 0.

use crate::admin::{self, AdminState};
use crate::cli::ServeArgs;
use crate::config::{self, Config, ConfigError, Settings};
use crate::metrics::Metrics;
use crate::s3::{self as s3_wiring, RootKeyError, RootKeySource};
use nitrofs_chunk_store::{ChunkError, LocalChunkStore};
use nitrofs_common::crashsafe;
use nitrofs_core_fs::{FileSystem, FsError};
use nitrofs_metadata::{KvError, RocksKv};
use nitrofs_nfs::NfsServer;
use nitrofs_s3::{Identities, IdentityError};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::signal::unix::{signal, SignalKind};
use tracing::{error, info, warn};

/// How long in-flight core calls may run after a stop signal.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// Why the server could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration is unusable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be created.
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metadata store could not be opened.
    #[error("cannot open metadata store {path}: {source}")]
    Metadata {
        /// The RocksDB directory.
        path: PathBuf,
        /// Why (another `nitrofs serve` on the same data directory holds its lock).
        source: KvError,
    },
    /// The chunk store could not be opened.
    #[error("cannot open chunk store {path}: {source}")]
    Chunks {
        /// The chunk directory.
        path: PathBuf,
        /// Why.
        source: ChunkError,
    },
    /// The filesystem could not be opened on its stores.
    #[error("cannot open the filesystem: {0}")]
    Fs(#[from] FsError),
    /// A listener could not be bound.
    #[error("cannot listen for {endpoint} on {addr}: {source}")]
    Bind {
        /// Which endpoint.
        endpoint: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why (address in use, permission…).
        source: std::io::Error,
    },
    /// The async runtime or signal handling could not be set up.
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// The NFS server stopped on its own.
    #[error("the NFS server stopped: {0}")]
    NfsStopped(String),
    /// The S3 root keys could not be found or stored.
    #[error(transparent)]
    RootKeys(#[from] RootKeyError),
    /// The S3 identity table could not be loaded or set up.
    #[error("cannot set up S3 identities: {0}")]
    Identities(#[from] IdentityError),
    /// The S3 service could not be built.
    #[error("cannot start the S3 endpoint: {0}")]
    S3(String),
    /// The S3 server stopped on its own.
    #[error("the S3 server stopped: {0}")]
    S3Stopped(String),
    /// The KV store could not be opened.
    #[error("cannot open the KV store: {0}")]
    Kv(#[from] nitrofs_kv::store::StoreError),
    /// The KV server stopped on its own.
    #[error("the KV server stopped: {0}")]
    KvStopped(String),
}

/// Config file, then flags on top, then validation.
pub fn settings(args: &ServeArgs) -> Result<Settings, ConfigError> {
    let mut cfg = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(dir) = &args.data_dir {
        cfg.data_dir = dir.clone();
    }
    if let Some(addr) = &args.nfs_addr {
        // Validate under the flag's name so the error points at the flag.
        config::socket_addr("--nfs-addr", addr)?;
        cfg.nfs.addr = addr.clone();
    }
    if let Some(addr) = &args.admin_addr {
        config::socket_addr("--admin-addr", addr)?;
        cfg.admin.addr = addr.clone();
    }
    if let Some(addr) = &args.s3_addr {
        config::socket_addr("--s3-addr", addr)?;
        cfg.s3.addr = addr.clone();
    }
    if let Some(domain) = &args.s3_domain {
        config::check_domain("--s3-domain", domain)?;
        cfg.s3.domain = Some(domain.clone());
    }
    if let Some(addr) = &args.kv_addr {
        config::socket_addr("--kv-addr", addr)?;
        cfg.kv.addr = addr.clone();
    }
    if let Some(region) = &args.s3_region {
        config::check_region("--s3-region", region)?;
        cfg.s3.region = region.clone();
    }
    cfg.validate()
}

/// Opens the stores under the data directory and the filesystem on them.
fn open_fs(settings: &Settings) -> Result<FileSystem, ServeError> {
    let data_dir_error = |source| ServeError::DataDir {
        path: settings.data_dir.clone(),
        source,
    };
    // Absolute, so every parent of a relative path can be fsynced.
    let dir = std::path::absolute(&settings.data_dir).map_err(data_dir_error)?;
    crashsafe::create_dir_all_durable(&dir).map_err(data_dir_error)?;
    let meta_dir = dir.join("meta");
    let kv = RocksKv::open(&meta_dir).map_err(|source| ServeError::Metadata {
        path: meta_dir,
        source,
    })?;
    let chunk_dir = dir.join("chunks");
    let chunks = LocalChunkStore::open_journaled(&chunk_dir, settings.chunk_journal_bytes)
        .map_err(|source| ServeError::Chunks {
            path: chunk_dir,
            source,
        })?;
    Ok(FileSystem::open(
        Arc::new(kv),
        Arc::new(chunks),
        settings.fs.clone(),
    )?)
}

/// The S3 identity table with its root identity, and the lines announcing
/// root keys generated just now (empty on every later start).
fn open_identities(settings: &Settings) -> Result<(Arc<Identities>, Vec<String>), ServeError> {
    let dir = &settings.data_dir;
    let (root, source) =
        s3_wiring::root_keys(s3_wiring::process_env, settings.s3.root.clone(), dir)?;
    let identities = Identities::load(&dir.join(s3_wiring::IDENTITIES_FILE))?;
    identities.ensure_root(Some((root.access_key.clone(), root.secret_key.clone())))?;
    info!(access_key = %root.access_key, source = ?source, "S3 root identity");
    let lines = match source {
        RootKeySource::Generated => vec![
            format!("s3 root access key: {}", root.access_key),
            format!("s3 root secret key: {}", root.secret_key),
        ],
        _ => Vec::new(),
    };
    Ok((Arc::new(identities), lines))
}

/// Runs `nitrofs serve` until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> Result<(), ServeError> {
    let settings = settings(args)?;
    let fs = Arc::new(open_fs(&settings)?);
    let (identities, key_lines) = open_identities(&settings)?;
    let kv_store = crate::kv::open_store(&settings.data_dir)?;
    info!(
        data_dir = %settings.data_dir.display(),
        chunk_size = fs.chunk_size(),
        cache_entries = settings.fs.cache_entries,
        inline_cache_bytes = settings.fs.inline_cache_bytes,
        boot_count = fs.boot_count(),
        "filesystem open"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nitrofs")
        .build()
        .map_err(ServeError::Runtime)?;
    let result = rt.block_on(serve(fs.clone(), identities, kv_store, settings, key_lines));
    // Dropping the runtime's tasks drops every connection and with it every
    // other reference to the filesystem; blocking core calls in flight get
    // a grace period to finish.
    rt.shutdown_timeout(SHUTDOWN_GRACE);
    close(fs);
    result
}

/// Makes unstable writes durable, then drops the last reference to the
/// filesystem, which closes RocksDB.
fn close(fs: Arc<FileSystem>) {
    if let Err(e) = fs.sync_all() {
        warn!(error = %e, "could not flush unstable writes at shutdown");
    }
    match Arc::try_unwrap(fs) {
        Ok(fs) => {
            drop(fs);
            info!("filesystem closed");
        }
        Err(fs) => warn!(
            references = Arc::strong_count(&fs),
            "core calls still running after the grace period; exiting without closing \
             (stable writes are already durable)"
        ),
    }
}

async fn bind(endpoint: &'static str, addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            endpoint,
            addr,
            source,
        })
}

fn local_addr(endpoint: &'static str, listener: &TcpListener, asked: SocketAddr) -> SocketAddr {
    listener.local_addr().unwrap_or_else(|e| {
        warn!(endpoint, error = %e, "cannot read the bound address");
        asked
    })
}

async fn serve(
    fs: Arc<FileSystem>,
    identities: Arc<Identities>,
    kv_store: Arc<nitrofs_kv::store::Store>,
    settings: Settings,
    key_lines: Vec<String>,
) -> Result<(), ServeError> {
    // Signal handlers first: a stop signal right after "ready" is honoured.
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;

    let nfs_listener = bind("nfs", settings.nfs_addr).await?;
    let admin_listener = bind("admin", settings.admin_addr).await?;
    let s3_listener = bind("s3", settings.s3.addr).await?;
    let kv_listener = bind("kv", settings.kv.addr).await?;
    let nfs_addr = local_addr("nfs", &nfs_listener, settings.nfs_addr);
    let admin_addr = local_addr("admin", &admin_listener, settings.admin_addr);
    let s3_addr = local_addr("s3", &s3_listener, settings.s3.addr);
    let kv_addr = local_addr("kv", &kv_listener, settings.kv.addr);

    let nfs = Arc::new(
        NfsServer::new(fs.clone(), Arc::new(settings.exports))
            .with_limits(
                settings.nfs_limits.max_connections,
                settings.nfs_limits.idle_timeout,
            )
            .with_stall(settings.nfs_limits.stall_timeout),
    );
    let nfs_metrics = nfs.metrics();
    let mut nfs_task = tokio::spawn(nfs.serve(nfs_listener));
    let s3_service = nitrofs_s3::s3_service(
        fs.clone(),
        identities.clone(),
        settings.s3.domain.clone(),
        settings.s3.region.clone(),
        settings.s3.stall_timeout,
    )
    .map_err(|e| ServeError::S3(e.to_string()))?;
    let mut s3_task = tokio::spawn(nitrofs_s3::serve(s3_listener, s3_service));
    let kv_metrics = Arc::new(nitrofs_kv::KvMetrics::default());
    let kv_stats = Arc::new(nitrofs_rdma_transport::ServerStats::default());
    let mut kv_task = tokio::spawn(crate::kv::serve(
        kv_listener,
        kv_addr,
        settings.kv.clone(),
        kv_store.clone(),
        identities.clone(),
        kv_metrics.clone(),
        kv_stats.clone(),
    ));
    let admin_state = Arc::new(AdminState {
        fs,
        identities,
        metrics: Arc::new(Metrics::new()),
        nfs_metrics,
        kv: kv_store,
        kv_metrics,
        kv_stats,
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state));

    let mut lines = vec![
        format!("nfs listening on {nfs_addr}"),
        format!("admin listening on {admin_addr}"),
        format!("s3 listening on {s3_addr}"),
        format!("kv listening on {kv_addr}"),
    ];
    lines.extend(key_lines);
    lines.push("nitrofs ready".to_string());
    if let Err(e) = crate::print_lines(&lines) {
        warn!(error = %e, "cannot write the start-up lines to stdout");
    }
    info!(%nfs_addr, %admin_addr, %s3_addr, %kv_addr, "nitrofs ready");

    let outcome = tokio::select! {
        _ = sigterm.recv() => {
            info!("SIGTERM received, shutting down");
            Ok(())
        }
        _ = sigint.recv() => {
            info!("SIGINT received, shutting down");
            Ok(())
        }
        ended = &mut nfs_task => {
            let why = match ended {
                Ok(Ok(())) => "it returned without an error".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("its task failed: {e}"),
            };
            error!(%why, "NFS server stopped");
            Err(ServeError::NfsStopped(why))
        }
        ended = &mut s3_task => {
            let why = match ended {
                Ok(Ok(())) => "it returned without an error".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("its task failed: {e}"),
            };
            error!(%why, "S3 server stopped");
            Err(ServeError::S3Stopped(why))
        }
        ended = &mut kv_task => {
            let why = match ended {
                Ok(Ok(())) => "it returned without an error".to_string(),
                Ok(Err(e)) => e.to_string(),
                Err(e) => format!("its task failed: {e}"),
            };
            error!(%why, "KV server stopped");
            Err(ServeError::KvStopped(why))
        }
    };
    // Stop accepting: the listeners are dropped with their tasks.
    nfs_task.abort();
    s3_task.abort();
    kv_task.abort();
    admin_task.abort();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(config: Option<PathBuf>) -> ServeArgs {
        ServeArgs {
            config,
            data_dir: None,
            nfs_addr: None,
            admin_addr: None,
            s3_addr: None,
            s3_domain: None,
            s3_region: None,
            kv_addr: None,
        }
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nitrofs.toml");
        std::fs::write(
            &file,
            "data_dir = '/from/file'\n[nfs]\naddr = '127.0.0.1:1111'\n\
             [admin]\naddr = '127.0.0.1:2222'\n[core]\nchunk_size = 1048576\n",
        )
        .expect("write config");

        let from_file = settings(&args(Some(file.clone()))).expect("file is valid");
        assert_eq!(from_file.data_dir, PathBuf::from("/from/file"));
        assert_eq!(from_file.nfs_addr.port(), 1111);
        assert_eq!(from_file.admin_addr.port(), 2222);
        assert_eq!(from_file.fs.chunk_size, 1 << 20);

        let mut a = args(Some(file));
        a.data_dir = Some(PathBuf::from("/from/flag"));
        a.nfs_addr = Some("127.0.0.1:0".into());
        a.admin_addr = Some("127.0.0.1:3333".into());
        let merged = settings(&a).expect("flags are valid");
        assert_eq!(merged.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(merged.nfs_addr.port(), 0);
        assert_eq!(merged.admin_addr.port(), 3333);
        assert_eq!(
            merged.fs.chunk_size,
            1 << 20,
            "unflagged fields keep the file's value"
        );
    }

    #[test]
    fn a_bad_flag_is_named_in_the_error() {
        let mut a = args(None);
        a.nfs_addr = Some("nowhere".into());
        let err = settings(&a).expect_err("bad address");
        assert!(err.to_string().contains("--nfs-addr"), "{err}");
        for (flag, set) in [
            (
                "--s3-addr",
                (|a: &mut ServeArgs| a.s3_addr = Some("nowhere".into())) as fn(&mut _),
            ),
            ("--s3-domain", |a| a.s3_domain = Some("bad_domain".into())),
            ("--s3-region", |a| a.s3_region = Some("Not A Region".into())),
        ] {
            let mut a = args(None);
            set(&mut a);
            let err = settings(&a).expect_err(flag);
            assert!(err.to_string().contains(flag), "{flag}: {err}");
        }
    }

    #[test]
    fn s3_flags_override_the_config_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("nitrofs.toml");
        std::fs::write(
            &file,
            "[s3]\naddr = '127.0.0.1:1111'\ndomain = 'file.example'\nregion = 'eu-west-1'\n",
        )
        .expect("write config");
        let from_file = settings(&args(Some(file.clone()))).expect("file is valid");
        assert_eq!(from_file.s3.addr.port(), 1111);
        assert_eq!(from_file.s3.domain.as_deref(), Some("file.example"));
        assert_eq!(from_file.s3.region, "eu-west-1");

        let mut a = args(Some(file));
        a.s3_addr = Some("127.0.0.1:0".into());
        a.s3_domain = Some("flag.example".into());
        a.s3_region = Some("ap-south-1".into());
        let merged = settings(&a).expect("flags are valid");
        assert_eq!(merged.s3.addr.port(), 0);
        assert_eq!(merged.s3.domain.as_deref(), Some("flag.example"));
        assert_eq!(merged.s3.region, "ap-south-1");
    }

    #[test]
    fn a_missing_config_file_is_a_clear_error() {
        let err = settings(&args(Some(PathBuf::from("/nonexistent/nitrofs.toml"))))
            .expect_err("missing file");
        assert!(
            err.to_string().contains("/nonexistent/nitrofs.toml"),
            "{err}"
        );
    }
}
