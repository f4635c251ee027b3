//! `/v1/quotas`: directory-tree and per-user / per-group quotas over the
//! admin API, and how `nitrofs admin quota …` prints them.
//!
//! - `GET /v1/quotas` → 200, every quota of every volume and every KV
//!   space's capacity (`kind` `kv-space`), as [`QuotaView`]s
//! - `GET /v1/quotas/{volume}` → 200, the quotas of one volume
//! - `GET|PUT|DELETE /v1/quotas/{volume}/tree/{path…}` — the quota on a
//!   directory (path components percent-encoded; none for the volume root)
//! - `GET|PUT|DELETE /v1/quotas/{volume}/user/{uid}` and `…/group/{gid}`
//!
//! PUT takes `{"bytes": N|null, "inodes": N|null}` (null or absent:
//! unlimited) and answers 200 with the quota once its existing usage is
//! counted; GET answers 200 with the quota; DELETE 204. Errors: 404 no
//! such volume, directory or quota; 400 bad body or a path that is not a
//! directory.

use super::client::{check, request, ClientError};
use super::AdminState;
use super::{blocking, error, json, not_allowed, percent_decode, percent_encode, status_of};
use crate::cli::QuotaCommand;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use nitrofs_core_fs::{
    Credentials, FileSystem, FileType, FsError, QuotaInfo, QuotaLimits, QuotaPhase, QuotaTarget,
};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use tracing::{info, warn};

/// The route prefix.
pub(super) const QUOTAS: &str = "/v1/quotas";

/// A quota (or a KV space's capacity) as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaView {
    /// `tree`, `user`, `group` or `kv-space`.
    pub kind: String,
    /// Volume (none for a KV space).
    pub volume: Option<String>,
    /// Tree quotas: the directory, from the volume root ("" is the root).
    pub path: Option<String>,
    /// User and group quotas: the uid or gid.
    pub id: Option<u32>,
    /// KV spaces: the space name.
    pub name: Option<String>,
    /// Bytes charged (KV spaces: bytes of keys and values held).
    pub bytes: u64,
    /// Byte limit (KV spaces: capacity); none is unlimited.
    pub bytes_limit: Option<u64>,
    /// Inodes charged (KV spaces: values held).
    pub inodes: u64,
    /// Inode limit; none is unlimited.
    pub inodes_limit: Option<u64>,
    /// `ready`, `counting` (existing usage still being counted) or `removing`.
    pub state: String,
}

/// Body of PUT: the hard limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QuotaLimitsBody {
    /// Most bytes; none or absent: unlimited.
    #[serde(default)]
    pub bytes: Option<u64>,
    /// Most inodes; none or absent: unlimited.
    #[serde(default)]
    pub inodes: Option<u64>,
}

/// One line of `nitrofs admin quota get|list`.
pub fn list_line(q: &QuotaView) -> String {
    let of = |n: u64, l: Option<u64>| match l {
        Some(l) => format!("{n}/{l}"),
        None => format!("{n}/unlimited"),
    };
    let what = match (q.kind.as_str(), &q.volume, &q.path, q.id, &q.name) {
        ("tree", Some(v), Some(p), _, _) => format!("tree /{v}/{p}"),
        ("user", Some(v), _, Some(id), _) => format!("user {v} uid={id}"),
        ("group", Some(v), _, Some(id), _) => format!("group {v} gid={id}"),
        ("kv-space", _, _, _, Some(n)) => {
            return format!(
                "kv-space {n} bytes={} keys={}",
                of(q.bytes, q.bytes_limit),
                q.inodes
            )
        }
        (k, ..) => k.to_string(),
    };
    format!(
        "{what} bytes={} inodes={} state={}",
        of(q.bytes, q.bytes_limit),
        of(q.inodes, q.inodes_limit),
        q.state
    )
}

fn view(fs: &FileSystem, volume: &str, q: &QuotaInfo) -> Result<QuotaView, FsError> {
    let (kind, path, id) = match q.target {
        QuotaTarget::Tree(dir) => ("tree", Some(fs.dir_path(dir)?), None),
        QuotaTarget::User { uid, .. } => ("user", None, Some(uid)),
        QuotaTarget::Group { gid, .. } => ("group", None, Some(gid)),
    };
    Ok(QuotaView {
        kind: kind.into(),
        volume: Some(volume.to_string()),
        path: path.map(|p| p.trim_end_matches('/').to_string()),
        id,
        name: None,
        bytes: q.usage.bytes,
        bytes_limit: q.limits.bytes,
        inodes: q.usage.inodes,
        inodes_limit: q.limits.inodes,
        state: match q.phase {
            QuotaPhase::Ready => "ready",
            QuotaPhase::Counting => "counting",
            QuotaPhase::Removing => "removing",
        }
        .into(),
    })
}

fn quota_error(what: &str, target: &str, e: &FsError) -> Response<Full<Bytes>> {
    let status = match e {
        FsError::NotDir | FsError::Invalid(_) => StatusCode::BAD_REQUEST,
        FsError::Stale => StatusCode::NOT_FOUND,
        e => status_of(e),
    };
    if status.is_server_error() {
        warn!(error = %e, target, "{what} failed");
    }
    let message = match e {
        FsError::NotFound | FsError::Stale => {
            format!("{what} {target}: no such volume, directory or quota")
        }
        FsError::NotDir => format!("{what} {target}: not a directory"),
        other => format!("{what} {target}: {other}"),
    };
    error(status, message)
}

/// Finds the quota target a request path names.
fn target_of(
    fs: &FileSystem,
    volume: &str,
    kind: &str,
    rest: &str,
) -> Result<QuotaTarget, FsError> {
    let vol = fs.volume(volume)?;
    let id = || {
        rest.parse::<u32>()
            .map_err(|_| FsError::Invalid("not a numeric id"))
    };
    match kind {
        "tree" => {
            let mut path = String::new();
            for comp in rest.split('/').filter(|c| !c.is_empty()) {
                let c = percent_decode(comp).ok_or(FsError::Invalid("bad percent-encoding"))?;
                path.push_str(&c);
                path.push('/');
            }
            let dir = fs.lookup_path(&Credentials::root(), vol.root, &path)?;
            if dir.kind != FileType::Directory {
                return Err(FsError::NotDir);
            }
            Ok(QuotaTarget::Tree(dir.ino))
        }
        "user" => Ok(QuotaTarget::User {
            volume: vol.id,
            uid: id()?,
        }),
        "group" => Ok(QuotaTarget::Group {
            volume: vol.id,
            gid: id()?,
        }),
        _ => Err(FsError::Invalid("the quota kind is tree, user or group")),
    }
}

/// Routes `/v1/quotas{tail}`.
pub(super) async fn route(
    state: &AdminState,
    method: &Method,
    tail: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let tail = tail.trim_start_matches('/');
    if tail.is_empty() {
        return match *method {
            Method::GET => list_all(state).await,
            _ => not_allowed("GET"),
        };
    }
    let mut parts = tail.splitn(3, '/');
    let raw_volume = parts.next().unwrap_or_default();
    let Some(volume) = percent_decode(raw_volume) else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed percent-encoding in volume",
        );
    };
    let Some(kind) = parts.next().filter(|k| !k.is_empty()) else {
        return match *method {
            Method::GET => list_volume(state, volume).await,
            _ => not_allowed("GET"),
        };
    };
    let (kind, rest) = (
        kind.to_string(),
        parts.next().unwrap_or_default().to_string(),
    );
    let label = format!("{kind} quota /{volume}/{rest}");
    let fs = state.fs.clone();
    match method.clone() {
        Method::GET => {
            let v = volume.clone();
            let got = blocking(move || {
                let q = fs.get_quota(target_of(&fs, &v, &kind, &rest)?)?;
                view(&fs, &v, &q)
            })
            .await;
            match got {
                Ok(q) => json(StatusCode::OK, &q),
                Err(e) => quota_error("get", &label, &e),
            }
        }
        Method::PUT => {
            let limits: QuotaLimitsBody = match serde_json::from_slice(body) {
                Ok(l) => l,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad quota limits: {e}")),
            };
            let v = volume.clone();
            let set = blocking(move || {
                let target = target_of(&fs, &v, &kind, &rest)?;
                let limits = QuotaLimits {
                    bytes: limits.bytes,
                    inodes: limits.inodes,
                };
                let q = fs.set_quota(target, limits)?;
                view(&fs, &v, &q)
            })
            .await;
            match set {
                Ok(q) => {
                    info!(quota = %label, "quota set");
                    json(StatusCode::OK, &q)
                }
                Err(e) => quota_error("set", &label, &e),
            }
        }
        Method::DELETE => {
            let v = volume.clone();
            let removed =
                blocking(move || fs.remove_quota(target_of(&fs, &v, &kind, &rest)?)).await;
            match removed {
                Ok(()) => {
                    info!(quota = %label, "quota removed");
                    super::empty(StatusCode::NO_CONTENT)
                }
                Err(e) => quota_error("remove", &label, &e),
            }
        }
        _ => not_allowed("GET, PUT, DELETE"),
    }
}

fn volume_views(fs: &Arc<FileSystem>, volume: &str) -> Result<Vec<QuotaView>, FsError> {
    let vol = fs.volume(volume)?;
    fs.list_quotas(vol.id)?
        .iter()
        .map(|q| view(fs, volume, q))
        .collect()
}

async fn list_volume(state: &AdminState, volume: String) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let v = volume.clone();
    match blocking(move || volume_views(&fs, &v)).await {
        Ok(list) => json(StatusCode::OK, &list),
        Err(e) => quota_error("list", &format!("quotas of /{volume}"), &e),
    }
}

async fn list_all(state: &AdminState) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let all = blocking(move || {
        let mut out = Vec::new();
        for vol in fs.list_volumes()? {
            out.extend(volume_views(&fs, &vol.name)?);
        }
        Ok(out)
    })
    .await;
    let mut list = match all {
        Ok(l) => l,
        Err(e) => return quota_error("list", "quotas", &e),
    };
    // KV spaces keep their own capacity in the KV store: shown here so
    // one listing covers every limit.
    for space in state.kv.spaces() {
        let st = space.stats();
        list.push(QuotaView {
            kind: "kv-space".into(),
            volume: None,
            path: None,
            id: None,
            name: Some(space.config().name.clone()),
            bytes: st.bytes,
            bytes_limit: Some(st.capacity),
            inodes: st.keys,
            inodes_limit: None,
            state: "ready".into(),
        });
    }
    json(StatusCode::OK, &list)
}

/// Splits the CLI's TARGET (`VOLUME[/PATH]`, a leading `/` allowed) and
/// `--uid`/`--gid` into the request path.
fn target_path(target: &str, uid: Option<u32>, gid: Option<u32>) -> Result<String, ClientError> {
    let t = target.trim_start_matches('/');
    let (volume, path) = t.split_once('/').unwrap_or((t, ""));
    if volume.is_empty() {
        return Err(ClientError::BadResponse(
            "name a volume: VOLUME or VOLUME/PATH".into(),
        ));
    }
    let base = format!("{QUOTAS}/{}", percent_encode(volume));
    match (uid, gid) {
        (Some(_), Some(_)) => Err(ClientError::BadResponse(
            "give --uid or --gid, not both".into(),
        )),
        (Some(_), _) | (_, Some(_)) if !path.trim_matches('/').is_empty() => Err(
            ClientError::BadResponse("with --uid or --gid, TARGET is a volume name".into()),
        ),
        (Some(u), None) => Ok(format!("{base}/user/{u}")),
        (None, Some(g)) => Ok(format!("{base}/group/{g}")),
        (None, None) => {
            let comps: Vec<String> = path
                .split('/')
                .filter(|c| !c.is_empty())
                .map(percent_encode)
                .collect();
            Ok(format!("{base}/tree/{}", comps.join("/")))
        }
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadResponse(e.to_string()))
}

/// Runs `nitrofs admin quota …` against the server at `addr`.
pub(super) async fn run(addr: &str, cmd: QuotaCommand) -> Result<Vec<String>, ClientError> {
    let mut out = Vec::new();
    match cmd {
        QuotaCommand::Set {
            target,
            uid,
            gid,
            bytes,
            inodes,
        } => {
            let path = target_path(&target, uid, gid)?;
            let body = serde_json::to_vec(&QuotaLimitsBody { bytes, inodes })
                .map_err(|e| ClientError::BadResponse(e.to_string()))?;
            let (status, body) = request(addr, Method::PUT, &path, Some(body)).await?;
            check(status, &body)?;
            out.push(list_line(&parse(&body)?));
        }
        QuotaCommand::Get { target, uid, gid } => {
            let path = target_path(&target, uid, gid)?;
            let (status, body) = request(addr, Method::GET, &path, None).await?;
            check(status, &body)?;
            out.push(list_line(&parse(&body)?));
        }
        QuotaCommand::List { volume } => {
            let path = match volume {
                Some(v) => format!("{QUOTAS}/{}", percent_encode(v.trim_matches('/'))),
                None => QUOTAS.to_string(),
            };
            let (status, body) = request(addr, Method::GET, &path, None).await?;
            check(status, &body)?;
            let list: Vec<QuotaView> = parse(&body)?;
            out.extend(list.iter().map(list_line));
        }
        QuotaCommand::Remove { target, uid, gid } => {
            let path = target_path(&target, uid, gid)?;
            let (status, body) = request(addr, Method::DELETE, &path, None).await?;
            check(status, &body)?;
            out.push(format!("removed the quota of {target}"));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_targets_become_request_paths() {
        assert_eq!(
            target_path("default", None, None).ok(),
            Some("/v1/quotas/default/tree/".into())
        );
        assert_eq!(
            target_path("/default/a b/c/", None, None).ok(),
            Some("/v1/quotas/default/tree/a%20b/c".into())
        );
        assert_eq!(
            target_path("vol", Some(7), None).ok(),
            Some("/v1/quotas/vol/user/7".into())
        );
        assert_eq!(
            target_path("vol", None, Some(8)).ok(),
            Some("/v1/quotas/vol/group/8".into())
        );
        assert!(target_path("vol/dir", Some(7), None).is_err());
        assert!(target_path("vol", Some(7), Some(8)).is_err());
        assert!(target_path("/", None, None).is_err());
    }

    /// An admin server on a fresh filesystem; returns its address and the filesystem.
    async fn start(dir: &std::path::Path) -> (String, Arc<FileSystem>) {
        let fs = Arc::new(
            FileSystem::open(
                Arc::new(nitrofs_metadata::MemKv::new()),
                Arc::new(
                    nitrofs_chunk_store::LocalChunkStore::open(&dir.join("chunks"))
                        .expect("chunk store"),
                ),
                nitrofs_core_fs::FsOptions::default(),
            )
            .expect("filesystem"),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("local addr").to_string();
        let state = Arc::new(AdminState {
            fs: fs.clone(),
            identities: Arc::new(nitrofs_s3::Identities::in_memory()),
            metrics: Arc::new(crate::metrics::Metrics::new()),
            nfs_metrics: Arc::default(),
            kv: Arc::new(nitrofs_kv::store::Store::open(&dir.join("kv")).expect("kv store")),
            kv_metrics: Arc::default(),
            kv_stats: Arc::default(),
        });
        tokio::spawn(super::super::serve(listener, state));
        (addr, fs)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn quotas_are_set_read_listed_and_removed_over_http() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (addr, fs) = start(dir.path()).await;
        let root = fs.volume("default").expect("volume").root;
        let cred = Credentials::root();
        let (proj, _) = fs
            .mkdir(&cred, root, b"proj", &Default::default())
            .expect("mkdir");
        let how = nitrofs_core_fs::CreateHow::Guarded(Default::default());
        let (f, _) = fs.create(&cred, proj.ino, b"f", &how).expect("create");
        fs.write(&cred, f.ino, 0, &[7; 100], false).expect("write");

        let set = |t: &str, uid, gid, bytes, inodes| {
            let addr = addr.clone();
            let t = t.to_string();
            async move {
                run(
                    &addr,
                    QuotaCommand::Set {
                        target: t,
                        uid,
                        gid,
                        bytes,
                        inodes,
                    },
                )
                .await
            }
        };
        let out = set("/default/proj", None, None, Some(1000), Some(5))
            .await
            .expect("set");
        assert_eq!(
            out,
            ["tree /default/proj bytes=100/1000 inodes=1/5 state=ready"]
        );
        let out = set("default", Some(0), None, None, Some(50))
            .await
            .expect("set user");
        assert_eq!(
            out,
            ["user default uid=0 bytes=100/unlimited inodes=3/50 state=ready"]
        );
        let err = set("default/proj/f", None, None, Some(1), None)
            .await
            .expect_err("a file");
        assert!(
            matches!(err, ClientError::Server { status: 400, .. }),
            "{err:?}"
        );
        let err = set("nope/x", None, None, Some(1), None)
            .await
            .expect_err("no volume");
        assert!(
            matches!(err, ClientError::Server { status: 404, .. }),
            "{err:?}"
        );

        let list = run(
            &addr,
            QuotaCommand::List {
                volume: Some("default".into()),
            },
        )
        .await
        .expect("list");
        assert_eq!(list.len(), 2, "{list:?}");
        let all = run(&addr, QuotaCommand::List { volume: None })
            .await
            .expect("list all");
        assert_eq!(all.len(), 2, "no KV spaces yet: {all:?}");

        assert!(matches!(
            fs.write(&cred, f.ino, 100, &[1; 901], false),
            Err(FsError::QuotaExceeded)
        ));
        run(
            &addr,
            QuotaCommand::Remove {
                target: "default/proj".into(),
                uid: None,
                gid: None,
            },
        )
        .await
        .expect("remove");
        let err = run(
            &addr,
            QuotaCommand::Get {
                target: "default/proj".into(),
                uid: None,
                gid: None,
            },
        )
        .await
        .expect_err("gone");
        assert!(
            matches!(err, ClientError::Server { status: 404, .. }),
            "{err:?}"
        );
        fs.write(&cred, f.ino, 100, &[1; 901], false)
            .expect("no limit now");
        let (code, _) = request(
            &addr,
            Method::PUT,
            "/v1/quotas/default/tree/proj",
            Some(b"{".to_vec()),
        )
        .await
        .expect("bad body");
        assert_eq!(code, StatusCode::BAD_REQUEST);
        let (code, _) = request(&addr, Method::POST, "/v1/quotas", None)
            .await
            .expect("405");
        assert_eq!(code, StatusCode::METHOD_NOT_ALLOWED);
    }

    #[test]
    fn list_lines_show_usage_against_limits() {
        let q = QuotaView {
            kind: "tree".into(),
            volume: Some("default".into()),
            path: Some("a/b".into()),
            id: None,
            name: None,
            bytes: 5,
            bytes_limit: Some(10),
            inodes: 1,
            inodes_limit: None,
            state: "ready".into(),
        };
        assert_eq!(
            list_line(&q),
            "tree /default/a/b bytes=5/10 inodes=1/unlimited state=ready"
        );
    }
}
