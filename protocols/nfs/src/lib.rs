//! The NFSv3 front end of NitroFS: NFS (program 100003 v3), MOUNT
//! (100005 v3) and a minimal PORTMAP (100000 v2, GETPORT for those two) on
//! one TCP port, over [`nitrofs_core_fs::FileSystem`].
//!
//! This crate owns the wire: ONC-RPC record marking and headers, XDR
//! decoding of untrusted bytes, file handles, export options (client
//! lists, read-only, id squashing) and the mapping of core errors to NFS
//! status codes. It must not store anything or decide permissions itself:
//! every namespace and data operation goes to core-fs with the caller's
//! (squashed) credentials, which checks them. Malformed input is answered
//! with GARBAGE_ARGS or a closed connection, never a panic. READ data may
//! leave as ranges of chunk files that core-fs handed out after its checks
//! (`FileSystem::read_ranges`), sent with `sendfile`; the crate never opens
//! storage itself.
//!
//! ```no_run
//! # async fn run(fs: std::sync::Arc<nitrofs_core_fs::FileSystem>) -> std::io::Result<()> {
//! use std::sync::Arc;
//! let server = Arc::new(nitrofs_nfs::NfsServer::new(fs, Arc::new(nitrofs_nfs::ExportPolicy::default())));
//! let listener = tokio::net::TcpListener::bind("0.0.0.0:2049").await?;
//! server.serve(listener).await
//! # }
//! ```

mod drc;
mod error;
mod export;
mod handle;
mod logsync;
mod metrics;
mod mount;
mod nfs;
mod portmap;
mod record;
mod rpc;
mod server;
mod xdr;

#[cfg(test)]
mod tests;

pub use error::nfsstat;
pub use export::{ClientSpec, ClientSpecError, ExportOptions, ExportPolicy};
pub use handle::{FileHandle, HANDLE_LEN, HANDLE_VERSION};
pub use metrics::NfsMetrics;
pub use record::MAX_RECORD;
pub use server::{NfsServer, DEFAULT_STALL, IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_IN_FLIGHT};
