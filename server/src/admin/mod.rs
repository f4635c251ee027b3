//! The admin HTTP API (server side); the `nitrofs admin` client is in
//! [`client`], the S3 identity routes in [`users`].
//!
//! Routes (JSON bodies, errors as `{"error": "..."}`):
//! - `GET /v1/volumes` → 200, `[{"name","id","root","created_unix"}, …]`
//! - `PUT /v1/volumes/{name}` → 201 with the volume; 409 exists; 400 bad name
//! - `DELETE /v1/volumes/{name}` → 204; 404 unknown; 409 not empty
//! - `GET /v1/users` → 200, `[{"name","uid","gid","groups","access_key"}, …]`
//! - `PUT /v1/users/{name}` with `{"uid","gid","groups"}` → 201 with the
//!   identity and its `secret_key` (the only time it is shown); 409 exists;
//!   400 bad name or body
//! - `DELETE /v1/users/{name}` → 204; 404 unknown; 400 for `root`
//! - `GET /v1/kv-spaces` → 200, `[{"name","capacity","ttl_secs","durability",
//!   "uid","gid","mode","acl"?,"bytes","keys"}, …]`
//! - `PUT /v1/kv-spaces/{name}` with `{"capacity","ttl_secs"?,"durability"?,
//!   "owner"?,"mode"?}` → 201 with the space; 409 exists; 400 bad name or body
//! - `DELETE /v1/kv-spaces/{name}` → 204 (its values are deleted); 404 unknown
//! - `GET /v1/kv-spaces/{name}/acl` → 200, `{"name","uid","gid","mode",
//!   "access","getfacl"}`; 404 unknown
//! - `PUT /v1/kv-spaces/{name}/acl` with `{"spec"}` (setfacl syntax, access
//!   entries without x) → 200 with the new ACL; 400 bad spec (see [`kv_spaces`])
//! - snapshots under `/v1/volumes/{name}/snapshots` (see [`snapshots`])
//! - POSIX ACLs of any object under `/v1/acl/{path}` (see [`acls`])
//! - quotas under `/v1/quotas` (see [`quotas`])
//! - `GET /health` → 200 `ok`
//! - `GET /metrics` → Prometheus text
//!
//! The API has no authentication: it listens on loopback by default.
//! Core calls and identity-file writes block, so they run on the blocking pool.

mod acls;
mod client;
pub mod kv_spaces;
mod quotas;
mod snapshots;
mod users;

pub use client::run_client;

use crate::metrics::{Metrics, Snapshot};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use nitrofs_core_fs::{FileSystem, FsError, Volume};
use nitrofs_s3::Identities;
use serde::{Deserialize, Serialize};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tracing::{debug, info, warn, Instrument};

const VOLUMES: &str = "/v1/volumes";
const USERS: &str = "/v1/users";
const KV_SPACES: &str = "/v1/kv-spaces";
/// Largest request body the API reads (a user's ids fit in far less).
const MAX_BODY: usize = 64 * 1024;
const JSON: &str = "application/json";
const PROMETHEUS: &str = "text/plain; version=0.0.4; charset=utf-8";

/// A volume as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInfo {
    /// Name: NFS export `/<name>`.
    pub name: String,
    /// Volume id (NFS fsid).
    pub id: u32,
    /// Root directory inode.
    pub root: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: i64,
}

impl From<&Volume> for VolumeInfo {
    fn from(v: &Volume) -> Self {
        Self {
            name: v.name.clone(),
            id: v.id,
            root: v.root,
            created_unix: v.created.secs,
        }
    }
}

/// Error body of every failed request.
#[derive(Debug, Serialize, Deserialize)]
struct ErrorBody {
    error: String,
}

/// What the admin server needs.
pub struct AdminState {
    /// The filesystem.
    pub fs: Arc<FileSystem>,
    /// The S3 identity table (shared with the S3 endpoint, so changes
    /// take effect at once).
    pub identities: Arc<Identities>,
    /// Process metrics.
    pub metrics: Arc<Metrics>,
    /// NFS call counters, appended to `/metrics`.
    pub nfs_metrics: Arc<nitrofs_nfs::NfsMetrics>,
    /// The KV spaces of this data node.
    pub kv: Arc<nitrofs_kv::store::Store>,
    /// KV request counters, appended to `/metrics`.
    pub kv_metrics: Arc<nitrofs_kv::KvMetrics>,
    /// KV connection counters, appended to `/metrics`.
    pub kv_stats: Arc<nitrofs_rdma_transport::ServerStats>,
}

/// Accepts admin connections forever. Accept errors (e.g. out of file
/// descriptors) are logged and retried after a pause.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                warn!(error = %e, "admin accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let state = state.clone();
        let span = tracing::info_span!("admin", client = %peer);
        tokio::spawn(
            async move {
                let service = hyper::service::service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(handle(&state, req).await) }
                });
                if let Err(e) = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await
                {
                    debug!(error = %e, "admin connection ended with an error");
                }
            }
            .instrument(span),
        );
    }
}

async fn handle(state: &AdminState, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let response = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => route(state, &method, &path, body.to_bytes()).await,
        Err(e) => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("cannot read the request body (at most {MAX_BODY} bytes): {e}"),
        ),
    };
    state.metrics.admin_response(response.status().as_u16());
    debug!(%method, %path, status = response.status().as_u16(), "admin request");
    response
}

async fn route(
    state: &AdminState,
    method: &Method,
    path: &str,
    body: Bytes,
) -> Response<Full<Bytes>> {
    if path == "/health" {
        return match *method {
            Method::GET => text(StatusCode::OK, "text/plain", "ok\n".to_string()),
            _ => not_allowed("GET"),
        };
    }
    if path == "/metrics" {
        return match *method {
            Method::GET => metrics(state).await,
            _ => not_allowed("GET"),
        };
    }
    if path == VOLUMES || path == "/v1/volumes/" {
        return match *method {
            Method::GET => list_volumes(state).await,
            _ => not_allowed("GET"),
        };
    }
    if let Some(rest) = path.strip_prefix("/v1/volumes/") {
        if let Some((volume, tail)) = rest.split_once("/snapshots") {
            if tail.is_empty() || tail.starts_with('/') {
                return snapshots::route(state, method, volume, tail, &body).await;
            }
        }
    }
    if let Some(raw) = path.strip_prefix("/v1/volumes/") {
        let Some(name) = percent_decode(raw) else {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed percent-encoding in name",
            );
        };
        return match *method {
            Method::PUT => create_volume(state, name).await,
            Method::DELETE => delete_volume(state, name).await,
            _ => not_allowed("PUT, DELETE"),
        };
    }
    if let Some(raw) = path.strip_prefix(acls::ACL) {
        return acls::route(state, method, raw, &body).await;
    }
    if let Some(tail) = path.strip_prefix(quotas::QUOTAS) {
        if tail.is_empty() || tail.starts_with('/') {
            return quotas::route(state, method, tail, &body).await;
        }
    }
    if path == USERS || path == "/v1/users/" {
        return match *method {
            Method::GET => users::list(state).await,
            _ => not_allowed("GET"),
        };
    }
    if let Some(raw) = path.strip_prefix("/v1/users/") {
        let Some(name) = percent_decode(raw) else {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed percent-encoding in name",
            );
        };
        return match *method {
            Method::PUT => users::add(state, name, &body).await,
            Method::DELETE => users::remove(state, name).await,
            _ => not_allowed("PUT, DELETE"),
        };
    }
    if path == KV_SPACES || path == "/v1/kv-spaces/" {
        return match *method {
            Method::GET => kv_spaces::list(state).await,
            _ => not_allowed("GET"),
        };
    }
    if let Some(raw) = path.strip_prefix("/v1/kv-spaces/") {
        if let Some(raw) = raw.strip_suffix("/acl") {
            let Some(name) = percent_decode(raw) else {
                return error(
                    StatusCode::BAD_REQUEST,
                    "malformed percent-encoding in name",
                );
            };
            return kv_spaces::acl(state, method, name, &body).await;
        }
        let Some(name) = percent_decode(raw) else {
            return error(
                StatusCode::BAD_REQUEST,
                "malformed percent-encoding in name",
            );
        };
        return match *method {
            Method::PUT => kv_spaces::create(state, name, &body).await,
            Method::DELETE => kv_spaces::delete(state, name).await,
            _ => not_allowed("PUT, DELETE"),
        };
    }
    error(StatusCode::NOT_FOUND, format!("no such endpoint: {path}"))
}

/// Runs a blocking core call on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, FsError> + Send + 'static,
) -> Result<T, FsError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(FsError::Io(format!("core task failed: {e}"))))
}

/// The one mapping from core errors to admin HTTP statuses.
fn status_of(e: &FsError) -> StatusCode {
    match e {
        FsError::Exists | FsError::NotEmpty => StatusCode::CONFLICT,
        FsError::NotFound => StatusCode::NOT_FOUND,
        FsError::Invalid(_) | FsError::NameTooLong => StatusCode::BAD_REQUEST,
        FsError::Access | FsError::Perm | FsError::ReadOnly => StatusCode::FORBIDDEN,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn fs_error(what: &str, name: &str, e: &FsError) -> Response<Full<Bytes>> {
    let status = status_of(e);
    if status.is_server_error() {
        warn!(error = %e, volume = name, "{what} failed");
    }
    let message = match e {
        FsError::Exists => format!("volume {name:?} already exists"),
        FsError::NotFound => format!("volume {name:?} not found"),
        FsError::NotEmpty => format!("volume {name:?} is not empty"),
        FsError::Invalid(why) => format!("invalid volume name {name:?}: {why}"),
        FsError::NameTooLong => format!("invalid volume name {name:?}: too long"),
        other => format!("{what} {name:?}: {other}"),
    };
    error(status, message)
}

async fn list_volumes(state: &AdminState) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    match blocking(move || fs.list_volumes()).await {
        Ok(vols) => json(
            StatusCode::OK,
            &vols.iter().map(VolumeInfo::from).collect::<Vec<_>>(),
        ),
        Err(e) => fs_error("list volumes", "", &e),
    }
}

async fn create_volume(state: &AdminState, name: String) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let n = name.clone();
    match blocking(move || fs.create_volume(&n)).await {
        Ok(vol) => {
            info!(volume = %vol.name, id = vol.id, "volume created");
            json(StatusCode::CREATED, &VolumeInfo::from(&vol))
        }
        Err(e) => fs_error("create volume", &name, &e),
    }
}

async fn delete_volume(state: &AdminState, name: String) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let n = name.clone();
    match blocking(move || fs.delete_volume(&n)).await {
        Ok(()) => {
            info!(volume = %name, "volume deleted");
            empty(StatusCode::NO_CONTENT)
        }
        Err(e) => fs_error("delete volume", &name, &e),
    }
}

async fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let snap = blocking(move || {
        Ok(Snapshot {
            volumes: fs.list_volumes()?.len(),
            chunk_size: fs.chunk_size(),
            boot_count: fs.boot_count(),
        })
    })
    .await;
    match snap {
        Ok(snap) => {
            let mut body = state.metrics.render(&snap);
            state.nfs_metrics.render(&mut body);
            state.kv_metrics.render(&mut body);
            crate::kv::render_transport(&state.kv_stats, &mut body);
            text(StatusCode::OK, PROMETHEUS, body)
        }
        Err(e) => fs_error("metrics", "", &e),
    }
}

fn response(status: StatusCode, content_type: &str, body: Bytes) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    if let Ok(v) = HeaderValue::from_str(content_type) {
        resp.headers_mut().insert(CONTENT_TYPE, v);
    }
    resp
}

fn text(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    response(status, content_type, Bytes::from(body))
}

fn empty(status: StatusCode) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(mut body) => {
            body.push(b'\n');
            response(status, JSON, Bytes::from(body))
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn error(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    let body = ErrorBody {
        error: message.into(),
    };
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    response(status, JSON, Bytes::from(bytes))
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut resp = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    resp.headers_mut()
        .insert(ALLOW, HeaderValue::from_static(allow));
    resp
}

/// Encodes every byte outside RFC 3986 "unreserved" as `%XX`.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes; `None` for a malformed escape or non-UTF-8 result.
fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::client::{request, AdminClient, ClientError};
    use super::*;

    #[test]
    fn percent_encoding_round_trips() {
        for name in ["default", "a b", "x/y", "ü%", "..", ""] {
            let enc = percent_encode(name);
            assert!(!enc.contains('/') && !enc.contains(' '), "{enc}");
            assert_eq!(percent_decode(&enc).as_deref(), Some(name));
        }
        assert_eq!(percent_decode("%"), None);
        assert_eq!(percent_decode("%zz"), None);
        assert_eq!(percent_decode("%ff"), None, "not UTF-8");
    }

    #[test]
    fn core_errors_map_to_the_documented_statuses() {
        assert_eq!(status_of(&FsError::Exists), StatusCode::CONFLICT);
        assert_eq!(status_of(&FsError::NotEmpty), StatusCode::CONFLICT);
        assert_eq!(status_of(&FsError::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(status_of(&FsError::Invalid("x")), StatusCode::BAD_REQUEST);
        assert_eq!(
            status_of(&FsError::Io("disk".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    async fn start_admin(dir: &std::path::Path) -> String {
        let fs = FileSystem::open(
            Arc::new(nitrofs_metadata::MemKv::new()),
            Arc::new(
                nitrofs_chunk_store::LocalChunkStore::open(&dir.join("chunks"))
                    .expect("chunk store"),
            ),
            nitrofs_core_fs::FsOptions::default(),
        )
        .expect("filesystem");
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new(AdminState {
            fs: Arc::new(fs),
            identities: Arc::new(Identities::in_memory()),
            metrics: Arc::new(Metrics::new()),
            nfs_metrics: Arc::default(),
            kv: Arc::new(nitrofs_kv::store::Store::open(&dir.join("kv")).expect("kv store")),
            kv_metrics: Arc::default(),
            kv_stats: Arc::default(),
        });
        tokio::spawn(serve(listener, state));
        addr
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn users_are_added_listed_and_removed_over_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = start_admin(dir.path()).await;
        let client = AdminClient::new(addr.clone());
        assert!(client.list_users().await.expect("list").is_empty());

        let new = users::NewUser {
            uid: 1000,
            gid: 100,
            groups: vec![5, 6],
        };
        let keys = client.add_user("alice", &new).await.expect("add");
        assert_eq!(
            (keys.user.name.as_str(), keys.user.uid, keys.user.gid),
            ("alice", 1000, 100)
        );
        assert_eq!(keys.user.groups, [5, 6]);
        assert!(!keys.user.access_key.is_empty() && !keys.secret_key.is_empty());

        let listed = client.list_users().await.expect("list");
        assert_eq!(listed, std::slice::from_ref(&keys.user));
        let (_, raw) = request(&addr, Method::GET, USERS, None)
            .await
            .expect("raw list");
        assert!(
            !String::from_utf8_lossy(&raw).contains(&keys.secret_key),
            "listing never shows a secret"
        );

        let status = |r: Result<(), ClientError>| match r {
            Err(ClientError::Server { status, .. }) => status,
            other => panic!("expected a server error, got {other:?}"),
        };
        assert_eq!(
            status(client.add_user("alice", &new).await.map(|_| ())),
            409
        );
        assert_eq!(
            status(client.add_user("bad name", &new).await.map(|_| ())),
            400
        );
        let (code, _) = request(&addr, Method::PUT, "/v1/users/bob", Some(b"{".to_vec()))
            .await
            .expect("bad body");
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, _) = request(
            &addr,
            Method::PUT,
            "/v1/users/bob",
            Some(vec![b' '; MAX_BODY + 1]),
        )
        .await
        .expect("huge body");
        assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);

        client.remove_user("alice").await.expect("remove");
        assert!(client.list_users().await.expect("list").is_empty());
        assert_eq!(status(client.remove_user("alice").await), 404);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn volumes_are_created_listed_and_deleted_over_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        let addr = start_admin(dir.path()).await;
        let client = AdminClient::new(addr.clone());

        let names = |vols: Vec<VolumeInfo>| vols.into_iter().map(|v| v.name).collect::<Vec<_>>();
        let before = client.list_volumes().await.expect("list");
        assert_eq!(names(before), ["default"]);

        let created = client.create_volume("scratch").await.expect("create");
        assert_eq!(created.name, "scratch");
        let mut now = names(client.list_volumes().await.expect("list"));
        now.sort();
        assert_eq!(now, ["default", "scratch"]);

        let status = |r: Result<_, ClientError>| match r {
            Err(ClientError::Server { status, .. }) => status,
            other => panic!("expected a server error, got {other:?}"),
        };
        assert_eq!(
            status(client.create_volume("scratch").await.map(|_| ())),
            409
        );
        assert_eq!(
            status(client.create_volume("Bad Name!").await.map(|_| ())),
            400
        );
        assert_eq!(status(client.delete_volume("missing").await), 404);

        client.delete_volume("scratch").await.expect("delete");
        assert_eq!(
            names(client.list_volumes().await.expect("list")),
            ["default"]
        );

        let (code, body) = request(&addr, Method::GET, "/health", None)
            .await
            .expect("health");
        assert_eq!((code, &body[..]), (StatusCode::OK, &b"ok\n"[..]));
        let (code, body) = request(&addr, Method::GET, "/metrics", None)
            .await
            .expect("metrics");
        assert_eq!(code, StatusCode::OK);
        let text = String::from_utf8_lossy(&body);
        assert!(text.contains("\nnitrofs_volumes 1\n"), "{text}");
        assert!(
            text.contains("nitrofs_nfs_calls_total{proc=\"READ\"} 0"),
            "{text}"
        );
        assert!(text.contains("nitrofs_build_info{"), "{text}");
        assert!(text.contains("nitrofs_uptime_seconds "), "{text}");

        let (code, _) = request(&addr, Method::GET, "/nope", None)
            .await
            .expect("404");
        assert_eq!(code, StatusCode::NOT_FOUND);
        let (code, _) = request(&addr, Method::POST, "/v1/volumes", None)
            .await
            .expect("405");
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    }
}
