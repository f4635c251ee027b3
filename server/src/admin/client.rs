//! The `nitrofs admin` client: one HTTP/1.1 request per command to the
//! admin API of a running server, results printed to stdout.

use super::kv_spaces::{self, NewSpace, SpaceInfo};
use super::users::{self, NewUser, UserInfo, UserKeys};
use super::{percent_encode, ErrorBody, VolumeInfo, KV_SPACES, USERS, VOLUMES};
use crate::cli::{AdminArgs, AdminCommand, KvSpaceCommand, UserCommand, VolumeCommand};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{CONTENT_TYPE, HOST};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use std::time::Duration;
use tokio::net::TcpStream;

/// Why an admin command failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached.
    #[error("cannot reach the admin API at {addr}: {source} (is `nitrofs serve` running?)")]
    Connect {
        /// Address tried.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP exchange failed.
    #[error("admin API request failed: {0}")]
    Http(#[from] hyper::Error),
    /// The request could not be built.
    #[error("bad request: {0}")]
    Request(#[from] hyper::http::Error),
    /// No answer in time.
    #[error("the admin API at {0} did not answer in time")]
    Timeout(String),
    /// The server answered with an error.
    #[error("{message} (HTTP {status})")]
    Server {
        /// HTTP status.
        status: u16,
        /// The server's message.
        message: String,
    },
    /// The answer could not be understood.
    #[error("unexpected answer from the admin API: {0}")]
    BadResponse(String),
}

/// How long one admin command may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one request (with a JSON body if given) and returns the status and body.
pub(super) async fn request(
    addr: &str,
    method: Method,
    path: &str,
    json_body: Option<Vec<u8>>,
) -> Result<(StatusCode, Bytes), ClientError> {
    let exchange = async {
        let stream = TcpStream::connect(addr)
            .await
            .map_err(|source| ClientError::Connect {
                addr: addr.to_string(),
                source,
            })?;
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
        let conn = tokio::spawn(conn);
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(HOST, addr);
        if json_body.is_some() {
            req = req.header(CONTENT_TYPE, super::JSON);
        }
        let req = req.body(Full::new(Bytes::from(json_body.unwrap_or_default())))?;
        let resp = sender.send_request(req).await?;
        let status = resp.status();
        let body = resp.into_body().collect().await?.to_bytes();
        conn.abort();
        Ok((status, body))
    };
    tokio::time::timeout(CLIENT_TIMEOUT, exchange)
        .await
        .map_err(|_| ClientError::Timeout(addr.to_string()))?
}

/// Turns a non-success answer into the server's error message.
pub(super) fn check(status: StatusCode, body: &Bytes) -> Result<(), ClientError> {
    if status.is_success() {
        return Ok(());
    }
    let message = match serde_json::from_slice::<ErrorBody>(body) {
        Ok(b) => b.error,
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    Err(ClientError::Server {
        status: status.as_u16(),
        message,
    })
}

/// Client calls of the admin API.
pub struct AdminClient {
    addr: String,
}

impl AdminClient {
    /// A client for the server at `addr` (HOST:PORT).
    pub fn new(addr: impl Into<String>) -> Self {
        Self { addr: addr.into() }
    }

    /// Lists volumes.
    pub async fn list_volumes(&self) -> Result<Vec<VolumeInfo>, ClientError> {
        let (status, body) = request(&self.addr, Method::GET, VOLUMES, None).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Creates a volume.
    pub async fn create_volume(&self, name: &str) -> Result<VolumeInfo, ClientError> {
        let path = format!("{VOLUMES}/{}", percent_encode(name));
        let (status, body) = request(&self.addr, Method::PUT, &path, None).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Deletes an empty volume.
    pub async fn delete_volume(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("{VOLUMES}/{}", percent_encode(name));
        let (status, body) = request(&self.addr, Method::DELETE, &path, None).await?;
        check(status, &body)
    }

    /// Lists S3 identities (without secrets).
    pub async fn list_users(&self) -> Result<Vec<UserInfo>, ClientError> {
        let (status, body) = request(&self.addr, Method::GET, USERS, None).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Creates an S3 identity; the answer carries its secret key.
    pub async fn add_user(&self, name: &str, user: &NewUser) -> Result<UserKeys, ClientError> {
        let path = format!("{USERS}/{}", percent_encode(name));
        let json = serde_json::to_vec(user).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let (status, body) = request(&self.addr, Method::PUT, &path, Some(json)).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Lists KV spaces.
    pub async fn list_kv_spaces(&self) -> Result<Vec<SpaceInfo>, ClientError> {
        let (status, body) = request(&self.addr, Method::GET, KV_SPACES, None).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Creates a KV space.
    pub async fn create_kv_space(
        &self,
        name: &str,
        space: &NewSpace,
    ) -> Result<SpaceInfo, ClientError> {
        let path = format!("{KV_SPACES}/{}", percent_encode(name));
        let json =
            serde_json::to_vec(space).map_err(|e| ClientError::BadResponse(e.to_string()))?;
        let (status, body) = request(&self.addr, Method::PUT, &path, Some(json)).await?;
        check(status, &body)?;
        serde_json::from_slice(&body).map_err(|e| ClientError::BadResponse(e.to_string()))
    }

    /// Deletes a KV space and its values.
    pub async fn delete_kv_space(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("{KV_SPACES}/{}", percent_encode(name));
        let (status, body) = request(&self.addr, Method::DELETE, &path, None).await?;
        check(status, &body)
    }

    /// Removes an S3 identity.
    pub async fn remove_user(&self, name: &str) -> Result<(), ClientError> {
        let path = format!("{USERS}/{}", percent_encode(name));
        let (status, body) = request(&self.addr, Method::DELETE, &path, None).await?;
        check(status, &body)
    }
}

/// Runs `nitrofs admin …`, printing results to stdout.
pub fn run_client(args: AdminArgs) -> Result<(), crate::Error> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = AdminClient::new(args.admin_addr);
    let mut out = Vec::new();
    rt.block_on(async {
        match args.command {
            AdminCommand::Volume(VolumeCommand::List) => {
                for v in client.list_volumes().await? {
                    out.push(v.name);
                }
            }
            AdminCommand::Volume(VolumeCommand::Create { name }) => {
                let v = client.create_volume(&name).await?;
                out.push(format!("created volume {} (id {})", v.name, v.id));
            }
            AdminCommand::Volume(VolumeCommand::Delete { name }) => {
                client.delete_volume(&name).await?;
                out.push(format!("deleted volume {name}"));
            }
            AdminCommand::User(UserCommand::Add {
                name,
                uid,
                gid,
                groups,
            }) => {
                let keys = client
                    .add_user(&name, &NewUser { uid, gid, groups })
                    .await?;
                out.extend(users::added_lines(&keys));
            }
            AdminCommand::User(UserCommand::List) => {
                out.extend(client.list_users().await?.iter().map(users::list_line));
            }
            AdminCommand::User(UserCommand::Remove { name }) => {
                client.remove_user(&name).await?;
                out.push(format!("removed user {name}"));
            }
            AdminCommand::KvSpace(KvSpaceCommand::Create {
                name,
                capacity,
                ttl,
                durability,
                owner,
                mode,
            }) => {
                let new = NewSpace {
                    capacity,
                    ttl_secs: ttl,
                    durability: Some(durability),
                    owner,
                    mode,
                };
                let s = client.create_kv_space(&name, &new).await?;
                out.push(format!("created kv space {}", kv_spaces::list_line(&s)));
            }
            AdminCommand::KvSpace(KvSpaceCommand::List) => {
                out.extend(
                    client
                        .list_kv_spaces()
                        .await?
                        .iter()
                        .map(kv_spaces::list_line),
                );
            }
            AdminCommand::Acl(cmd) => {
                out.extend(super::acls::run(&client.addr, cmd).await?);
            }
            AdminCommand::Quota(cmd) => {
                out.extend(super::quotas::run(&client.addr, cmd).await?);
            }
            AdminCommand::Snapshot(cmd) => {
                out.extend(super::snapshots::run(&client.addr, cmd).await?);
            }
            AdminCommand::KvSpace(KvSpaceCommand::Acl(cmd)) => {
                out.extend(kv_spaces::run_acl(&client.addr, cmd).await?);
            }
            AdminCommand::KvSpace(KvSpaceCommand::Delete { name }) => {
                client.delete_kv_space(&name).await?;
                out.push(format!("deleted kv space {name}"));
            }
        }
        Ok::<_, ClientError>(())
    })?;
    crate::print_lines(&out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    #[test]
    fn client_reports_the_server_message() {
        let body = Bytes::from_static(br#"{"error":"volume \"x\" already exists"}"#);
        let err = check(StatusCode::CONFLICT, &body).expect_err("409 is an error");
        assert_eq!(err.to_string(), "volume \"x\" already exists (HTTP 409)");
        assert!(check(StatusCode::NO_CONTENT, &Bytes::new()).is_ok());
    }

    #[tokio::test]
    async fn client_without_server_says_where_it_looked() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        drop(listener);
        let err = AdminClient::new(addr.clone())
            .list_volumes()
            .await
            .expect_err("nothing listens");
        assert!(err.to_string().contains(&addr), "{err}");
    }
}
