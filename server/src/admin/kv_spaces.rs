//! `/v1/kv-spaces`: KV spaces over the admin API, and how
//! `nitrofs admin kv-space …` prints them.
//!
//! A space is a capacity-bounded KV namespace of the data role (KV-cache
//! blocks), with its own TTL and durability, owned by an identity and
//! guarded by POSIX-style mode bits (r: get/exists/scan/stat, w: put/delete).

use super::{error, json, AdminState};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use nitrofs_kv::store::{Durability, SpaceConfig, StoreError};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// A space as `GET /v1/kv-spaces` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceInfo {
    /// Name.
    pub name: String,
    /// Capacity in bytes (keys + values).
    pub capacity: u64,
    /// Seconds values live; none: until evicted.
    pub ttl_secs: Option<u64>,
    /// `memory` or `disk`.
    pub durability: String,
    /// Owner uid.
    pub uid: u32,
    /// Owner gid.
    pub gid: u32,
    /// Permission bits.
    pub mode: u32,
    /// Bytes held now.
    pub bytes: u64,
    /// Keys held now.
    pub keys: u64,
}

/// Body of `PUT /v1/kv-spaces/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewSpace {
    /// Capacity in bytes.
    pub capacity: u64,
    /// Seconds values live (omit: no expiry).
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// `memory` (default) or `disk`.
    #[serde(default)]
    pub durability: Option<String>,
    /// Owning identity's name (default `root`).
    #[serde(default)]
    pub owner: Option<String>,
    /// Permission bits (default 0o600: the owner reads and writes).
    #[serde(default)]
    pub mode: Option<u32>,
}

fn info_of(space: &nitrofs_kv::store::Space) -> SpaceInfo {
    let c = space.config();
    let st = space.stats();
    SpaceInfo {
        name: c.name.clone(),
        capacity: c.capacity,
        ttl_secs: c.ttl_secs,
        durability: c.durability.to_string(),
        uid: c.uid,
        gid: c.gid,
        mode: c.mode,
        bytes: st.bytes,
        keys: st.keys,
    }
}

/// One line of `nitrofs admin kv-space list`.
pub fn list_line(s: &SpaceInfo) -> String {
    let ttl = s.ttl_secs.map_or("none".to_string(), |t| format!("{t}s"));
    format!(
        "{} capacity={} durability={} ttl={} owner={}:{} mode={:04o} bytes={} keys={}",
        s.name, s.capacity, s.durability, ttl, s.uid, s.gid, s.mode, s.bytes, s.keys
    )
}

/// The one mapping from KV store errors to admin HTTP statuses.
fn status_of(e: &StoreError) -> StatusCode {
    match e {
        StoreError::SpaceExists(_) => StatusCode::CONFLICT,
        StoreError::NoSuchSpace(_) => StatusCode::NOT_FOUND,
        StoreError::InvalidName(_)
        | StoreError::InvalidConfig(_)
        | StoreError::TooLarge { .. }
        | StoreError::NoSpace { .. }
        | StoreError::KeyTooLong { .. } => StatusCode::BAD_REQUEST,
        StoreError::Io(_) | StoreError::Chunk(_) | StoreError::Corrupt(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn store_error(what: &str, name: &str, e: &StoreError) -> Response<Full<Bytes>> {
    let status = status_of(e);
    if status.is_server_error() {
        warn!(error = %e, space = name, "{what} failed");
    }
    error(status, format!("{what} {name:?}: {e}"))
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(StoreError::Io(std::io::Error::other(format!(
            "task failed: {e}"
        ))))
    })
}

/// `GET /v1/kv-spaces`.
pub async fn list(state: &AdminState) -> Response<Full<Bytes>> {
    let spaces: Vec<SpaceInfo> = state.kv.spaces().iter().map(|s| info_of(s)).collect();
    json(StatusCode::OK, &spaces)
}

/// `PUT /v1/kv-spaces/{name}` with a [`NewSpace`] body.
pub async fn create(state: &AdminState, name: String, body: &Bytes) -> Response<Full<Bytes>> {
    let new: NewSpace = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("bad space definition: {e}"),
            )
        }
    };
    let durability = match new
        .durability
        .as_deref()
        .unwrap_or("memory")
        .parse::<Durability>()
    {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let owner = new
        .owner
        .as_deref()
        .unwrap_or(nitrofs_s3::identity::ROOT_NAME);
    let Some(who) = state
        .identities
        .list()
        .into_iter()
        .find(|i| i.name == owner)
    else {
        return error(
            StatusCode::BAD_REQUEST,
            format!("owner {owner:?}: no such user"),
        );
    };
    let cfg = SpaceConfig {
        name: name.clone(),
        capacity: new.capacity,
        ttl_secs: new.ttl_secs,
        durability,
        uid: who.credentials.uid,
        gid: who.credentials.gid,
        mode: new.mode.unwrap_or(0o600),
        id: 0,
    };
    let store = state.kv.clone();
    match blocking(move || store.create_space(cfg)).await {
        Ok(space) => {
            info!(space = %name, "kv space created");
            json(StatusCode::CREATED, &info_of(&space))
        }
        Err(e) => store_error("create kv space", &name, &e),
    }
}

/// `DELETE /v1/kv-spaces/{name}`.
pub async fn delete(state: &AdminState, name: String) -> Response<Full<Bytes>> {
    let store = state.kv.clone();
    let n = name.clone();
    match blocking(move || store.delete_space(&n)).await {
        Ok(()) => {
            info!(space = %name, "kv space deleted");
            super::empty(StatusCode::NO_CONTENT)
        }
        Err(e) => store_error("delete kv space", &name, &e),
    }
}

/// Parses a byte count: plain digits or with a unit (K, M, G, T for
/// powers of 1000 with B, or KiB, MiB, GiB, TiB for powers of 1024;
/// a bare K/M/G/T means the binary unit).
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a byte count (e.g. 1048576, 64MiB, 1G)"))?;
    let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kib" => 1 << 10,
        "m" | "mib" => 1 << 20,
        "g" | "gib" => 1 << 30,
        "t" | "tib" => 1 << 40,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use KiB, MiB, GiB, TiB, KB, MB, GB, TB)"
            ))
        }
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_counts_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("4096"), Ok(4096));
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1G"), Ok(1 << 30));
        assert_eq!(parse_bytes("10MB"), Ok(10_000_000));
        for bad in ["", "MiB", "1.5G", "-1", "1 furlong", "99999999999999999999"] {
            assert!(parse_bytes(bad).is_err(), "{bad:?}");
        }
        assert!(parse_bytes("20000000T").is_err(), "overflow");
    }
}
