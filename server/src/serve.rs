//! `nitrofs serve`: every role in one process on one data directory.
//!
//! This is the one place that chooses backends: RocksDB metadata in
//! `<data_dir>/meta`, the local chunk engine in `<data_dir>/chunks`, the
//! NFSv3 gateway and the admin API over the same [`FileSystem`].
//!
//! Start-up prints one `<endpoint> listening on <addr>` line per endpoint
//! (the bound address, so port 0 works) and then `nitrofs ready`.
//! SIGTERM or SIGINT stops accepting, ends every connection, closes the
//! metadata store and exits with status 0.

use crate::admin::{self, AdminState};
use crate::cli::ServeArgs;
use crate::config::{self, Config, ConfigError, Settings};
use crate::metrics::Metrics;
use nitrofs_chunk_store::{ChunkError, LocalChunkStore};
use nitrofs_common::crashsafe;
use nitrofs_core_fs::{FileSystem, FsError};
use nitrofs_metadata::{KvError, RocksKv};
use nitrofs_nfs::NfsServer;
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
    let chunks = LocalChunkStore::open(&chunk_dir).map_err(|source| ServeError::Chunks {
        path: chunk_dir,
        source,
    })?;
    Ok(FileSystem::open(
        Arc::new(kv),
        Arc::new(chunks),
        settings.fs.clone(),
    )?)
}

/// Runs `nitrofs serve` until SIGTERM or SIGINT.
pub fn run(args: &ServeArgs) -> Result<(), ServeError> {
    let settings = settings(args)?;
    let fs = Arc::new(open_fs(&settings)?);
    info!(
        data_dir = %settings.data_dir.display(),
        chunk_size = fs.chunk_size(),
        boot_count = fs.boot_count(),
        "filesystem open"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("nitrofs")
        .build()
        .map_err(ServeError::Runtime)?;
    let result = rt.block_on(serve(fs.clone(), settings));
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

async fn serve(fs: Arc<FileSystem>, settings: Settings) -> Result<(), ServeError> {
    // Signal handlers first: a stop signal right after "ready" is honoured.
    let mut sigterm = signal(SignalKind::terminate()).map_err(ServeError::Runtime)?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(ServeError::Runtime)?;

    let nfs_listener = bind("nfs", settings.nfs_addr).await?;
    let admin_listener = bind("admin", settings.admin_addr).await?;
    let nfs_addr = local_addr("nfs", &nfs_listener, settings.nfs_addr);
    let admin_addr = local_addr("admin", &admin_listener, settings.admin_addr);

    let nfs = Arc::new(NfsServer::new(fs.clone(), Arc::new(settings.exports)));
    let mut nfs_task = tokio::spawn(nfs.serve(nfs_listener));
    let admin_state = Arc::new(AdminState {
        fs,
        metrics: Arc::new(Metrics::new()),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state));

    let lines = [
        format!("nfs listening on {nfs_addr}"),
        format!("admin listening on {admin_addr}"),
        "nitrofs ready".to_string(),
    ];
    if let Err(e) = crate::print_lines(&lines) {
        warn!(error = %e, "cannot write the start-up lines to stdout");
    }
    info!(%nfs_addr, %admin_addr, "nitrofs ready");

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
    };
    // Stop accepting: the listeners are dropped with their tasks.
    nfs_task.abort();
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
