//! `/v1/acl/{path}`: POSIX ACLs of any object over the admin API, and
//! `nitrofs admin acl …` (getfacl / setfacl for the administrator).
//!
//! `{path}` is `/<volume>/<path inside it>`, percent-encoded as one
//! segment. The API acts as root: it may read and change every ACL.
//! - `GET /v1/acl/{path}` → 200 with an [`AclInfo`]
//! - `PUT /v1/acl/{path}` with `{"spec": "u:1001:rwx,d:g:20:r-x", "edit":
//!   "set"|"modify"}` → 200 with the new [`AclInfo`]; 400 for a bad
//!   specification (the message names the entry)
//! - `DELETE /v1/acl/{path}` with optional `{"default_only": true}` → 200
//!   with the new [`AclInfo`] (`setfacl -b`, or `-k` for default only)
//!
//! Unknown volume or path: 404; ACLs of symbolic links and default ACLs of
//! non-directories: 400; changes under `.snapshot/`: 403 (read-only).

use super::client::{check, request, ClientError};
use super::AdminState;
use super::{blocking, error, json, not_allowed, percent_decode, percent_encode, status_of};
use crate::cli::AclCommand;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Response, StatusCode};
use nitrofs_core_fs::{AclEdit, AclListing, AclSpec, Credentials, FsError};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// Route prefix.
pub(super) const ACL: &str = "/v1/acl/";

/// An object's ACLs as the admin API shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclInfo {
    /// The path asked for.
    pub path: String,
    /// Owner uid.
    pub uid: u32,
    /// Owning gid.
    pub gid: u32,
    /// Mode bits (the group bits are the mask when there is one).
    pub mode: u32,
    /// The access ACL in short setfacl form (`u::rw-,u:1001:rwx,…`).
    pub access: String,
    /// The default ACL in short form, each entry with `d:`, if any.
    pub default: Option<String>,
    /// The whole listing as getfacl prints it.
    pub getfacl: String,
}

impl AclInfo {
    fn new(path: &str, l: &AclListing) -> Self {
        Self {
            path: path.to_string(),
            uid: l.attr.uid,
            gid: l.attr.gid,
            mode: l.attr.mode,
            access: l.access.to_short_text(""),
            default: l.default.as_ref().map(|d| d.to_short_text("d:")),
            getfacl: l.getfacl(path),
        }
    }
}

/// Body of `PUT /v1/acl/{path}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclChange {
    /// Entries in setfacl syntax.
    pub spec: String,
    /// `set` (replace each named ACL; the default) or `modify` (merge).
    #[serde(default)]
    pub edit: Option<String>,
}

/// Body of `DELETE /v1/acl/{path}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AclRemoval {
    /// Remove only the default ACL (`setfacl -k`).
    #[serde(default)]
    pub default_only: bool,
}

fn acl_error(what: &str, path: &str, e: &FsError) -> Response<Full<Bytes>> {
    let status = match e {
        FsError::NotDir => StatusCode::BAD_REQUEST,
        e => status_of(e),
    };
    if status.is_server_error() {
        warn!(error = %e, path, "{what} failed");
    }
    let message = match e {
        FsError::NotFound => format!("{path}: no such volume, file or directory"),
        FsError::Invalid(why) => format!("{what} {path}: {why}"),
        other => format!("{what} {path}: {other}"),
    };
    error(status, message)
}

/// Routes `/v1/acl/{raw}`.
pub(super) async fn route(
    state: &AdminState,
    method: &Method,
    raw: &str,
    body: &Bytes,
) -> Response<Full<Bytes>> {
    let Some(path) = percent_decode(raw) else {
        return error(
            StatusCode::BAD_REQUEST,
            "malformed percent-encoding in path",
        );
    };
    let fs = state.fs.clone();
    let p = path.clone();
    let result = match *method {
        Method::GET => {
            blocking(move || {
                let root = Credentials::root();
                let ino = fs.resolve_path(&root, &p)?.ino;
                fs.acl_listing(&root, ino)
            })
            .await
        }
        Method::PUT => {
            let change: AclChange = match serde_json::from_slice(body) {
                Ok(c) => c,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad ACL change: {e}")),
            };
            let how = match change.edit.as_deref() {
                None | Some("set") => AclEdit::Set,
                Some("modify") => AclEdit::Modify,
                Some(other) => {
                    return error(
                        StatusCode::BAD_REQUEST,
                        format!("edit must be \"set\" or \"modify\", not {other:?}"),
                    )
                }
            };
            let spec = match AclSpec::parse(&change.spec) {
                Ok(s) if s.is_empty() => {
                    return error(StatusCode::BAD_REQUEST, "empty ACL specification")
                }
                Ok(s) => s,
                Err(e) => return error(StatusCode::BAD_REQUEST, format!("bad ACL: {e}")),
            };
            let r = blocking(move || {
                let root = Credentials::root();
                let ino = fs.resolve_path(&root, &p)?.ino;
                fs.edit_acl(&root, ino, &spec, how)
            })
            .await;
            if r.is_ok() {
                info!(path, spec = change.spec, "acl changed");
            }
            r
        }
        Method::DELETE => {
            let removal: AclRemoval = if body.is_empty() {
                AclRemoval::default()
            } else {
                match serde_json::from_slice(body) {
                    Ok(r) => r,
                    Err(e) => {
                        return error(StatusCode::BAD_REQUEST, format!("bad ACL removal: {e}"))
                    }
                }
            };
            let r = blocking(move || {
                let root = Credentials::root();
                let ino = fs.resolve_path(&root, &p)?.ino;
                fs.remove_acls(&root, ino, removal.default_only)
            })
            .await;
            if r.is_ok() {
                info!(path, default_only = removal.default_only, "acl removed");
            }
            r
        }
        _ => return not_allowed("GET, PUT, DELETE"),
    };
    match result {
        Ok(l) => json(StatusCode::OK, &AclInfo::new(&path, &l)),
        Err(e) => acl_error("acl", &path, &e),
    }
}

fn parse(body: &Bytes) -> Result<AclInfo, ClientError> {
    serde_json::from_slice(body).map_err(|e| ClientError::BadResponse(e.to_string()))
}

fn to_json<T: Serialize>(v: &T) -> Result<Vec<u8>, ClientError> {
    serde_json::to_vec(v).map_err(|e| ClientError::BadResponse(e.to_string()))
}

/// Runs `nitrofs admin acl …` against the server at `addr`; every
/// command prints the object's ACLs afterwards, as getfacl would.
pub(super) async fn run(addr: &str, cmd: AclCommand) -> Result<Vec<String>, ClientError> {
    let (method, path, body) = match cmd {
        AclCommand::Get { path } => (Method::GET, path, None),
        AclCommand::Set { path, spec } => {
            let change = AclChange {
                spec,
                edit: Some("set".into()),
            };
            (Method::PUT, path, Some(to_json(&change)?))
        }
        AclCommand::Modify { path, spec } => {
            let change = AclChange {
                spec,
                edit: Some("modify".into()),
            };
            (Method::PUT, path, Some(to_json(&change)?))
        }
        AclCommand::Remove { path, default } => {
            let removal = AclRemoval {
                default_only: default,
            };
            (Method::DELETE, path, Some(to_json(&removal)?))
        }
    };
    let url = format!("{ACL}{}", percent_encode(&path));
    let (status, body) = request(addr, method, &url, body).await?;
    check(status, &body)?;
    let info = parse(&body)?;
    Ok(info.getfacl.lines().map(str::to_string).collect())
}
