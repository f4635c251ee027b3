//! `/v1/volumes/{volume}/snapshots`: snapshots over the admin API, and
//! how `nitrofs admin snapshot …` prints them.
//!
//! - `GET …/snapshots` → 200, `[{"name","volume","epoch","created_unix"}, …]` oldest first
//! - `PUT …/snapshots/{name}` → 201 with the snapshot; 409 exists
//! - `DELETE …/snapshots/{name}` → 204; the snapshot is gone at once and
//!   its history is freed in the background
//! - `POST …/snapshots/{name}/restore` → 200; 400 unless it is the newest
//! - `POST …/snapshots/{name}/clone` with `{"volume": NEW}` → 201 with the
//!   new volume

use super::client::{check, request, ClientError};
use super::{blocking, error, json, not_allowed, percent_decode, percent_encode, status_of};
use super::{AdminState, VolumeInfo, VOLUMES};
use crate::cli::SnapshotCommand;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use nitrofs_core_fs::{FsError, Snapshot};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// A snapshot as the admin API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotInfo {
    /// Name.
    pub name: String,
    /// Volume.
    pub volume: String,
    /// Epoch (creation order).
    pub epoch: u64,
    /// Creation time, seconds since the Unix epoch.
    pub created_unix: i64,
}

impl From<&Snapshot> for SnapshotInfo {
    fn from(s: &Snapshot) -> Self {
        Self {
            name: s.name.clone(),
            volume: s.volume.clone(),
            epoch: s.epoch,
            created_unix: s.created.secs,
        }
    }
}

/// Body of `POST …/clone`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloneRequest {
    /// Name of the new volume.
    pub volume: String,
}

fn snap_error(what: &str, volume: &str, name: &str, e: &FsError) -> Response<Full<Bytes>> {
    let status = status_of(e);
    if status.is_server_error() {
        warn!(error = %e, volume, snapshot = name, "{what} failed");
    }
    let message = match e {
        FsError::Exists if what == "clone snapshot" => {
            "the volume for the clone already exists".to_string()
        }
        FsError::Exists => format!("snapshot {name:?} of volume {volume:?} already exists"),
        FsError::NotFound => {
            format!("volume {volume:?} has no snapshot {name:?} (or no such volume)")
        }
        FsError::Invalid(why) => format!("{what} {name:?}: {why}"),
        other => format!("{what} {name:?} of volume {volume:?}: {other}"),
    };
    error(status, message)
}

/// Routes `/v1/volumes/{volume}/snapshots{tail}`.
pub(super) async fn route(
    state: &AdminState,
    method: &Method,
    volume: &str,
    tail: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let Some(volume) = percent_decode(volume) else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed percent-encoding in volume",
        );
    };
    let tail = tail.trim_start_matches('/');
    if tail.is_empty() {
        return match *method {
            Method::GET => list(state, volume).await,
            _ => not_allowed("GET"),
        };
    }
    let (raw, action) = match tail.split_once('/') {
        Some((n, a)) => (n, Some(a)),
        None => (tail, None),
    };
    let Some(name) = percent_decode(raw) else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed percent-encoding in name",
        );
    };
    let fs = state.fs.clone();
    match (action, method.clone()) {
        (None, Method::PUT) => {
            let (v, n) = (volume.clone(), name.clone());
            match blocking(move || fs.create_snapshot(&v, &n)).await {
                Ok(s) => json(StatusCode::CREATED, &SnapshotInfo::from(&s)),
                Err(e) => snap_error("create snapshot", &volume, &name, &e),
            }
        }
        (None, Method::DELETE) => {
            let (v, n) = (volume.clone(), name.clone());
            match blocking(move || fs.delete_snapshot(&v, &n)).await {
                Ok(()) => {
                    collect_in_background(state);
                    Response::builder()
                        .status(StatusCode::NO_CONTENT)
                        .body(Full::new(Bytes::new()))
                        .unwrap_or_default()
                }
                Err(e) => snap_error("delete snapshot", &volume, &name, &e),
            }
        }
        (None, _) => not_allowed("PUT, DELETE"),
        (Some("restore"), Method::POST) => {
            let (v, n) = (volume.clone(), name.clone());
            match blocking(move || fs.restore_snapshot(&v, &n)).await {
                Ok(()) => {
                    info!(volume, snapshot = name, "volume restored");
                    json(StatusCode::OK, &serde_json::json!({"restored": name}))
                }
                Err(e) => snap_error("restore snapshot", &volume, &name, &e),
            }
        }
        (Some("clone"), Method::POST) => {
            let req: CloneRequest = match serde_json::from_slice(body) {
                Ok(r) => r,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad clone request: {e}")),
            };
            let (v, n) = (volume.clone(), name.clone());
            match blocking(move || fs.clone_snapshot(&v, &n, &req.volume)).await {
                Ok(vol) => json(StatusCode::CREATED, &VolumeInfo::from(&vol)),
                Err(e) => snap_error("clone snapshot", &volume, &name, &e),
            }
        }
        (Some("restore" | "clone"), _) => not_allowed("POST"),
        (Some(other), _) => error(
            StatusCode::NOT_FOUND,
            format!("no such snapshot action: {other}"),
        ),
    }
}

async fn list(state: &AdminState, volume: String) -> Response<Full<Bytes>> {
    let fs = state.fs.clone();
    let v = volume.clone();
    match blocking(move || fs.list_snapshots(&v)).await {
        Ok(s) => json(
            StatusCode::OK,
            &s.iter().map(SnapshotInfo::from).collect::<Vec<_>>(),
        ),
        Err(e) => snap_error("list snapshots", &volume, "", &e),
    }
}

/// Frees deleted snapshots' history on the blocking pool; the next
/// start resumes it if the server stops first.
fn collect_in_background(state: &AdminState) {
    let fs = state.fs.clone();
    tokio::task::spawn_blocking(move || match fs.collect_snapshots() {
        Ok(n) => info!(snapshots = n, "deleted snapshots freed"),
        Err(e) => warn!(error = %e, "freeing deleted snapshots failed; will retry at next start"),
    });
}

/// One line of `nitrofs admin snapshot list`.
pub fn list_line(s: &SnapshotInfo) -> String {
    format!(
        "{} epoch={} created_unix={}",
        s.name, s.epoch, s.created_unix
    )
}

fn base(volume: &str) -> String {
    format!("{VOLUMES}/{}/snapshots", percent_encode(volume))
}

fn parse<T: serde::de::DeserializeOwned>(body: &Bytes) -> Result<T, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadResponse(e.to_string()))
}

/// Runs `nitrofs admin snapshot …` against the server at `addr`.
pub(super) async fn run(addr: &str, cmd: SnapshotCommand) -> Result<Vec<String>, ClientError> {
    let mut out = Vec::new();
    match cmd {
        SnapshotCommand::Create { volume, name } => {
            let path = format!("{}/{}", base(&volume), percent_encode(&name));
            let (status, body) = request(addr, Method::PUT, &path, None).await?;
            check(status, &body)?;
            let s: SnapshotInfo = parse(&body)?;
            out.push(format!(
                "created snapshot {} of volume {}",
                s.name, s.volume
            ));
        }
        SnapshotCommand::List { volume } => {
            let (status, body) = request(addr, Method::GET, &base(&volume), None).await?;
            check(status, &body)?;
            let list: Vec<SnapshotInfo> = parse(&body)?;
            out.extend(list.iter().map(list_line));
        }
        SnapshotCommand::Delete { volume, name } => {
            let path = format!("{}/{}", base(&volume), percent_encode(&name));
            let (status, body) = request(addr, Method::DELETE, &path, None).await?;
            check(status, &body)?;
            out.push(format!("deleted snapshot {name} of volume {volume}"));
        }
        SnapshotCommand::Restore { volume, name } => {
            let path = format!("{}/{}/restore", base(&volume), percent_encode(&name));
            let (status, body) = request(addr, Method::POST, &path, None).await?;
            check(status, &body)?;
            out.push(format!("restored volume {volume} to snapshot {name}"));
        }
        SnapshotCommand::Clone {
            volume,
            name,
            new_volume,
        } => {
            let path = format!("{}/{}/clone", base(&volume), percent_encode(&name));
            let req = serde_json::to_vec(&CloneRequest { volume: new_volume })
                .map_err(|e| ClientError::BadResponse(e.to_string()))?;
            let (status, body) = request(addr, Method::POST, &path, Some(req)).await?;
            check(status, &body)?;
            let v: VolumeInfo = parse(&body)?;
            out.push(format!(
                "cloned snapshot {name} of {volume} into volume {}",
                v.name
            ));
        }
    }
    Ok(out)
}
