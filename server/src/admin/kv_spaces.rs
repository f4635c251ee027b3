//! `/v1/kv-spaces`: KV spaces over the admin API, and how
//! `nitrofs admin kv-space …` prints them.
//!
//! A space is a capacity-bounded KV namespace of the data role (KV-cache
//! blocks), with its own TTL and durability, owned by an identity and
//! guarded by mode bits and an optional POSIX.1e access ACL (r:
//! get/exists/scan/stat, w: put/delete), checked by core-fs as for files.
//!
//! - `GET /v1/kv-spaces/{name}/acl` → 200 with a [`SpaceAcl`]; 404 unknown
//! - `PUT /v1/kv-spaces/{name}/acl` with `{"spec": "u:1001:rw-,m::r--"}` →
//!   200 with the new [`SpaceAcl`] (`setfacl --set`: missing `user::`,
//!   `group::`, `other::` keep their value, a missing mask is computed, the
//!   mode's group bits become the mask); 400 for a bad spec, `d:` entries
//!   or `x` bits

use super::client::{check, request, ClientError};
use super::{error, json, not_allowed, percent_encode, AdminState, KV_SPACES};
use crate::cli::KvSpaceAclCommand;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use nitrofs_core_fs::AclSpec;
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
    /// Permission bits (with an ACL, the group bits are its mask).
    pub mode: u32,
    /// The access ACL in short setfacl form, if the space has one.
    #[serde(default)]
    pub acl: Option<String>,
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
        acl: c.acl.as_ref().map(|a| a.to_short_text("")),
        bytes: st.bytes,
        keys: st.keys,
    }
}

/// One line of `nitrofs admin kv-space list`.
pub fn list_line(s: &SpaceInfo) -> String {
    let ttl = s.ttl_secs.map_or("none".to_string(), |t| format!("{t}s"));
    let acl = s
        .acl
        .as_ref()
        .map_or(String::new(), |a| format!(" acl={a}"));
    format!(
        "{} capacity={} durability={} ttl={} owner={}:{} mode={:04o}{acl} bytes={} keys={}",
        s.name, s.capacity, s.durability, ttl, s.uid, s.gid, s.mode, s.bytes, s.keys
    )
}

/// A space's ACL as `GET /v1/kv-spaces/{name}/acl` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpaceAcl {
    /// The space.
    pub name: String,
    /// Owner uid.
    pub uid: u32,
    /// Owning gid.
    pub gid: u32,
    /// Mode bits (the group bits are the mask when there is one).
    pub mode: u32,
    /// The access ACL in short setfacl form (the mode's minimal ACL when
    /// the space has none).
    pub access: String,
    /// The listing as getfacl prints it.
    pub getfacl: String,
}

impl SpaceAcl {
    fn new(c: &SpaceConfig) -> Self {
        let acl = c.access_acl();
        let mut getfacl = format!(
            "# space: {}\n# owner: {}\n# group: {}\n",
            c.name, c.uid, c.gid
        );
        for line in acl.to_getfacl_lines("") {
            getfacl.push_str(&line);
            getfacl.push('\n');
        }
        Self {
            name: c.name.clone(),
            uid: c.uid,
            gid: c.gid,
            mode: c.mode,
            access: acl.to_short_text(""),
            getfacl,
        }
    }
}

/// Body of `PUT /v1/kv-spaces/{name}/acl`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpaceAclChange {
    /// Access ACL entries in setfacl syntax (numeric ids, no `d:`, no `x`).
    pub spec: String,
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
        acl: None,
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

/// `GET` / `PUT /v1/kv-spaces/{name}/acl`.
pub async fn acl(
    state: &AdminState,
    method: &Method,
    name: String,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let store = state.kv.clone();
    match *method {
        Method::GET => match store.space(&name) {
            Some(space) => json(StatusCode::OK, &SpaceAcl::new(&space.config())),
            None => store_error(
                "kv space acl",
                &name,
                &StoreError::NoSuchSpace(name.clone()),
            ),
        },
        Method::PUT => {
            let change: SpaceAclChange = match serde_json::from_slice(body) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad ACL change: {e}")),
            };
            let spec = match AclSpec::parse(&change.spec) {
                Ok(s) if s.access.is_empty() && s.default.is_empty() => {
                    return error(StatusCode::BAD_REQUEST, "empty ACL specification")
                }
                Ok(s) if !s.default.is_empty() => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        "a KV space has no default ACL: drop the d: entries",
                    )
                }
                Ok(s) => s,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad ACL: {e}")),
            };
            let n = name.clone();
            match blocking(move || store.set_acl(&n, &spec.access)).await {
                Ok(cfg) => {
                    info!(space = %name, spec = change.spec, "kv space acl set");
                    json(StatusCode::OK, &SpaceAcl::new(&cfg))
                }
                Err(e) => store_error("set acl of kv space", &name, &e),
            }
        }
        _ => not_allowed("GET, PUT"),
    }
}

/// Runs `nitrofs admin kv-space acl …` against the server at `addr`;
/// both commands print the space's ACL afterwards, as getfacl would.
pub(super) async fn run_acl(
    addr: &str,
    cmd: KvSpaceAclCommand,
) -> Result<Vec<String>, ClientError> {
    let (method, name, body) = match cmd {
        KvSpaceAclCommand::Get { name } => (Method::GET, name, None),
        KvSpaceAclCommand::Set { name, spec } => {
            let body = serde_json::to_vec(&SpaceAclChange { spec })
                .map_err(|e| ClientError::BadResponse(e.to_string()))?;
            (Method::PUT, name, Some(body))
        }
    };
    let url = format!("{KV_SPACES}/{}/acl", percent_encode(&name));
    let (status, body) = request(addr, method, &url, body).await?;
    check(status, &body)?;
    let info: SpaceAcl =
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))?;
    Ok(info.getfacl.lines().map(str::to_string).collect())
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
