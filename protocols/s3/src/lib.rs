//! The S3 endpoint of NitroFS: the `s3s` protocol adapter over core-fs.
//!
//! This crate owns the S3 view of the one namespace: a bucket is a volume,
//! key `a/b/c` is the file `a/b/c` in it ([`key`]), object metadata and
//! ETags are xattrs ([`meta`]), listings walk directories in S3 key order
//! ([`walk`]), multipart parts are detached files linked into the object
//! without a copy ([`multipart`]), ACLs are a view of POSIX modes
//! ([`acl`]), access keys map to POSIX credentials ([`identity`]), and
//! unsigned requests may only read buckets made public ([`public`]).
//!
//! It must not store anything outside core-fs (no second storage path, no
//! side files besides the identity table the binary asks it to keep), must
//! not bypass core-fs permission checks (every call carries the caller's
//! credentials; root credentials are used only for the adapter's own
//! bookkeeping after the caller was checked: the per-volume multipart
//! index (see [`multipart`]) and giving a new bucket's root directory to
//! its creator; and to read a bucket's public flag, see [`public`]), and must not choose backends: the binary builds the
//! [`FileSystem`] and calls [`s3_service`] and [`serve`].
//!
//! All core-fs calls block; they run on tokio's blocking pool.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod acl;
mod body;
mod bucket;
pub mod checksum;
mod cond;
mod copy;
pub mod error;
mod hashing;
mod host;
pub mod identity;
pub mod key;
pub mod list;
pub mod meta;
pub mod multipart;
mod ns;
mod object;
pub mod public;
mod service;
mod stall;
pub mod walk;
mod wire;
mod xmlcheck;

#[cfg(test)]
mod tests;

pub use body::DEFAULT_STALL;
pub use identity::{Identities, Identity, IdentityError};
pub use wire::NitroService;

use nitrofs_core_fs::{Credentials, FileSystem};
use s3s::service::S3ServiceBuilder;
use s3s::{S3Request, S3Result};
use std::sync::Arc;

/// The S3 operations over one filesystem.
pub struct NitroS3 {
    fs: Arc<FileSystem>,
    ids: Arc<Identities>,
    region: String,
    /// How long a request body or a GET's client may make no progress.
    stall: std::time::Duration,
}

impl NitroS3 {
    /// An S3 implementation over `fs`, authenticating with `ids`.
    pub fn new(fs: Arc<FileSystem>, ids: Arc<Identities>, region: String) -> Self {
        Self {
            fs,
            ids,
            region,
            stall: body::DEFAULT_STALL,
        }
    }

    /// The same, giving up on a client that makes no progress for
    /// `stall` instead of [`body::DEFAULT_STALL`].
    pub fn with_stall(self, stall: std::time::Duration) -> Self {
        Self { stall, ..self }
    }

    /// The POSIX credentials a request runs with: the identity's for a
    /// signed request; for an unsigned one, those the access check granted
    /// it ([`public::anonymous`]), or `AccessDenied`.
    fn cred<T>(&self, req: &S3Request<T>) -> S3Result<Credentials> {
        match &req.credentials {
            Some(c) => ns::require(self.ids.lookup(&c.access_key).map(|i| i.credentials)),
            None => public::granted(&req.extensions),
        }
    }
}

/// Why the service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// The virtual-host domain is not a valid domain name.
    #[error("invalid S3 domain {0:?}: {1}")]
    Domain(String, String),
}

/// Builds the S3 HTTP service: SigV4/SigV2 (incl. presigned URLs and
/// aws-chunked bodies) checked against `identities`, path-style requests
/// always, virtual-hosted-style (`bucket.<domain>[:port]`) when `domain` is
/// set, `region` reported by GetBucketLocation and required in SigV4
/// credential scopes. A client whose upload sends nothing, or who takes
/// nothing of a response, for `stall` loses its request and connection.
pub fn s3_service(
    fs: Arc<FileSystem>,
    identities: Arc<Identities>,
    domain: Option<String>,
    region: String,
    stall: std::time::Duration,
) -> Result<NitroService, SetupError> {
    let mut b = S3ServiceBuilder::new(
        NitroS3::new(Arc::clone(&fs), Arc::clone(&identities), region.clone()).with_stall(stall),
    );
    b.set_auth(identity::SharedIdentities(identities));
    b.set_access(public::NitroAccess::new(Arc::clone(&fs)));
    let host = match domain {
        Some(d) => Some(host::NitroHost::new(&d).map_err(|e| SetupError::Domain(d.clone(), e))?),
        None => None,
    };
    if let Some(h) = &host {
        b.set_host(h.clone());
    }
    Ok(NitroService::new(b.build(), region, host, stall))
}

/// How long a client may take to send a request's headers (idle
/// keep-alive connections are closed after this too).
const HEADER_READ_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Serves S3 over HTTP/1.1 (keep-alive) on `listener` until the task is
/// dropped or accepting fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: NitroService,
) -> std::io::Result<()> {
    use hyper_util::rt::TokioIo;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) if is_transient(&e) => {
                tracing::warn!(error = %e, "S3 accept failed; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let _ = stream.set_nodelay(true);
        let service = service.clone();
        tokio::spawn(async move {
            // A client that stops taking a response's bytes would
            // otherwise hold the connection forever.
            let limit = service.stall();
            let stream = nitrofs_common::stall::StallGuard::new(stream, limit);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .keep_alive(true)
                .serve_connection(TokioIo::new(stream), service);
            match conn.await {
                Err(e) if nitrofs_common::stall::gave_up(&e) => tracing::info!(
                    %peer,
                    "S3 connection closed: its client took no response bytes for {limit:?}"
                ),
                Err(e) => tracing::debug!(%peer, error = %e, "S3 connection ended with an error"),
                Ok(()) => {}
            }
        });
    }
}

/// Accept errors that do not mean the listener is broken (a client that
/// reset before accept, descriptor exhaustion).
fn is_transient(e: &std::io::Error) -> bool {
    use std::io::ErrorKind as K;
    matches!(
        e.kind(),
        K::ConnectionAborted | K::ConnectionReset | K::Interrupted | K::WouldBlock
    ) || e.raw_os_error() == Some(24)
        || e.raw_os_error() == Some(23)
}
