//! `/v1/users`: the S3 identity table over the admin API, and how
//! `nitrofs admin user …` prints identities.
//!
//! An identity is an access key pair that S3 requests sign with, acting as
//! a uid, gid and supplementary groups in core-fs. The secret key is shown
//! once, in the answer to the request that created it.

use super::{error, json, percent_encode, AdminState};
use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use nitrofs_common::Credentials;
use nitrofs_s3::{Identity, IdentityError};
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

/// An identity as `GET /v1/users` shows it: never the secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserInfo {
    /// Unique name.
    pub name: String,
    /// User id requests act as.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// Access key id.
    pub access_key: String,
}

/// Body of `PUT /v1/users/{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// User id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// Supplementary group ids.
    #[serde(default)]
    pub groups: Vec<u32>,
}

/// Answer to `PUT /v1/users/{name}`: the identity and its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserKeys {
    /// The identity.
    #[serde(flatten)]
    pub user: UserInfo,
    /// Secret access key; not retrievable later.
    pub secret_key: String,
}

impl From<&Identity> for UserInfo {
    fn from(id: &Identity) -> Self {
        Self {
            name: id.name.clone(),
            uid: id.credentials.uid,
            gid: id.credentials.gid,
            groups: id.credentials.groups.clone(),
            access_key: id.access_key.clone(),
        }
    }
}

/// The lines `nitrofs admin user add` prints.
pub fn added_lines(keys: &UserKeys) -> Vec<String> {
    let u = &keys.user;
    vec![
        format!("created user {} (uid {}, gid {})", u.name, u.uid, u.gid),
        format!("access key: {}", u.access_key),
        format!("secret key: {}", keys.secret_key),
    ]
}

/// One line of `nitrofs admin user list`: name, ids, groups, access key.
pub fn list_line(u: &UserInfo) -> String {
    let groups = if u.groups.is_empty() {
        "-".to_string()
    } else {
        u.groups
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(",")
    };
    format!(
        "{} uid={} gid={} groups={} access_key={}",
        u.name, u.uid, u.gid, groups, u.access_key
    )
}

/// The one mapping from identity-table errors to admin HTTP statuses.
fn status_of(e: &IdentityError) -> StatusCode {
    match e {
        IdentityError::Exists(_) => StatusCode::CONFLICT,
        IdentityError::NotFound(_) => StatusCode::NOT_FOUND,
        IdentityError::Invalid(_) => StatusCode::BAD_REQUEST,
        IdentityError::Io { .. } | IdentityError::Corrupt { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn identity_error(what: &str, name: &str, e: &IdentityError) -> Response<Full<Bytes>> {
    let status = status_of(e);
    if status.is_server_error() {
        warn!(error = %e, user = name, "{what} failed");
    }
    let message = match e {
        IdentityError::Exists(_) => format!("user {name:?} already exists"),
        IdentityError::NotFound(_) => format!("user {name:?} not found"),
        other => format!("{what} {name:?}: {other}"),
    };
    error(status, message)
}

/// Runs an identity-table change (it writes the file) on the blocking pool.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, IdentityError> + Send + 'static,
) -> Result<T, IdentityError> {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| {
        Err(IdentityError::Io {
            path: "identity table".into(),
            source: std::io::Error::other(format!("task failed: {e}")),
        })
    })
}

/// `GET /v1/users`.
pub async fn list(state: &AdminState) -> Response<Full<Bytes>> {
    let users: Vec<UserInfo> = state.identities.list().iter().map(UserInfo::from).collect();
    json(StatusCode::OK, &users)
}

/// `PUT /v1/users/{name}` with a [`NewUser`] body.
pub async fn add(state: &AdminState, name: String, body: &Bytes) -> Response<Full<Bytes>> {
    let new: NewUser = match serde_json::from_slice(body) {
        Ok(n) => n,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("the body must be {{\"uid\": N, \"gid\": N, \"groups\": [N, …]}}: {e}"),
            )
        }
    };
    let ids = state.identities.clone();
    let n = name.clone();
    let credentials = Credentials {
        uid: new.uid,
        gid: new.gid,
        groups: new.groups,
    };
    match blocking(move || ids.add_user(&n, credentials)).await {
        Ok(id) => {
            info!(user = %id.name, uid = id.credentials.uid, access_key = %id.access_key, "S3 identity created");
            let keys = UserKeys {
                user: UserInfo::from(&id),
                secret_key: id.secret_key.clone(),
            };
            let mut resp = json(StatusCode::CREATED, &keys);
            if let Ok(v) = format!("/v1/users/{}", percent_encode(&id.name)).parse() {
                resp.headers_mut().insert(hyper::header::LOCATION, v);
            }
            resp
        }
        Err(e) => identity_error("add user", &name, &e),
    }
}

/// `DELETE /v1/users/{name}`.
pub async fn remove(state: &AdminState, name: String) -> Response<Full<Bytes>> {
    let ids = state.identities.clone();
    let n = name.clone();
    match blocking(move || ids.remove_user(&n)).await {
        Ok(id) => {
            info!(user = %id.name, access_key = %id.access_key, "S3 identity removed");
            super::empty(StatusCode::NO_CONTENT)
        }
        Err(e) => identity_error("remove user", &name, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(groups: Vec<u32>) -> UserInfo {
        UserInfo {
            name: "alice".into(),
            uid: 1000,
            gid: 100,
            groups,
            access_key: "AKEXAMPLE".into(),
        }
    }

    #[test]
    fn add_prints_both_keys_on_labelled_lines() {
        let lines = added_lines(&UserKeys {
            user: info(vec![]),
            secret_key: "s3cr3t".into(),
        });
        assert_eq!(
            lines,
            [
                "created user alice (uid 1000, gid 100)",
                "access key: AKEXAMPLE",
                "secret key: s3cr3t"
            ]
        );
    }

    #[test]
    fn list_lines_name_ids_groups_and_the_access_key_only() {
        assert_eq!(
            list_line(&info(vec![5, 6])),
            "alice uid=1000 gid=100 groups=5,6 access_key=AKEXAMPLE"
        );
        assert_eq!(
            list_line(&info(vec![])),
            "alice uid=1000 gid=100 groups=- access_key=AKEXAMPLE"
        );
    }

    #[test]
    fn identity_errors_map_to_the_documented_statuses() {
        assert_eq!(
            status_of(&IdentityError::Exists("x".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_of(&IdentityError::NotFound("x".into())),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_of(&IdentityError::Invalid("x")),
            StatusCode::BAD_REQUEST
        );
    }

    #[test]
    fn the_add_body_rejects_unknown_fields_and_needs_both_ids() {
        let ok: NewUser = serde_json::from_str(r#"{"uid":1,"gid":2}"#).expect("groups optional");
        assert!(ok.groups.is_empty());
        for bad in [
            r#"{"uid":1}"#,
            r#"{"uid":1,"gid":2,"admin":true}"#,
            r#"{"uid":-1,"gid":2}"#,
        ] {
            assert!(serde_json::from_str::<NewUser>(bad).is_err(), "{bad}");
        }
    }
}
