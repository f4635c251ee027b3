//! Export options: who may use a volume over NFS, whether it is writable,
//! and how callers' ids are squashed.
//!
//! Options are typed config (serde) validated when they are loaded: a bad
//! client entry is an error naming it. They are applied on every NFS call
//! and on MOUNT, never cached per connection.

use crate::rpc::Auth;
use nitrofs_common::{Credentials, NOBODY};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

/// One allowed client entry: anyone, or an IP network.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum ClientSpec {
    /// `*`: every client.
    Any,
    /// An address with a prefix length; a plain address is a full-length
    /// prefix (`/32` or `/128`).
    Net {
        /// Network address (host bits zero).
        addr: IpAddr,
        /// Prefix length in bits.
        prefix: u8,
    },
}

/// A client entry that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid export client {entry:?}: {reason} (use \"*\", an IP address, or a CIDR network like \"10.0.0.0/8\")")]
pub struct ClientSpecError {
    /// The entry as written.
    pub entry: String,
    /// What is wrong with it.
    pub reason: String,
}

fn mask(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(a) => {
            let bits = u32::from(a);
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((bits & m).into())
        }
        IpAddr::V6(a) => {
            let bits = u128::from(a);
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((bits & m).into())
        }
    }
}

impl FromStr for ClientSpec {
    type Err = ClientSpecError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: &str| ClientSpecError {
            entry: s.to_string(),
            reason: reason.to_string(),
        };
        let t = s.trim();
        if t == "*" {
            return Ok(ClientSpec::Any);
        }
        let (addr_s, prefix_s) = match t.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (t, None),
        };
        let addr: IpAddr = addr_s
            .parse()
            .map_err(|_| err("not an IP address (host names are not supported)"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix_s {
            None => max,
            Some(p) => {
                let n: u8 = p
                    .parse()
                    .map_err(|_| err("prefix length is not a number"))?;
                if n > max {
                    return Err(err(&format!("prefix length {n} exceeds {max}")));
                }
                n
            }
        };
        let net = mask(addr, prefix);
        if net != addr {
            return Err(err(&format!(
                "host bits are set; the network is {net}/{prefix}"
            )));
        }
        Ok(ClientSpec::Net { addr, prefix })
    }
}

impl TryFrom<String> for ClientSpec {
    type Error = ClientSpecError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ClientSpec> for String {
    fn from(c: ClientSpec) -> Self {
        c.to_string()
    }
}

impl fmt::Display for ClientSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientSpec::Any => f.write_str("*"),
            ClientSpec::Net { addr, prefix } => {
                let full = if addr.is_ipv4() { 32 } else { 128 };
                if *prefix == full {
                    write!(f, "{addr}")
                } else {
                    write!(f, "{addr}/{prefix}")
                }
            }
        }
    }
}

impl ClientSpec {
    /// Whether `ip` falls in this entry. IPv4 clients reaching an IPv6
    /// socket (`::ffff:a.b.c.d`) match as IPv4.
    pub fn matches(&self, ip: IpAddr) -> bool {
        match self {
            ClientSpec::Any => true,
            ClientSpec::Net { addr, prefix } => {
                let ip = ip.to_canonical();
                ip.is_ipv4() == addr.is_ipv4() && mask(ip, *prefix) == *addr
            }
        }
    }
}

/// Options of one export (volume).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportOptions {
    /// Client addresses allowed to use the export: "*" (anyone), an IP
    /// address ("127.0.0.1") or a CIDR network ("10.0.0.0/8").
    pub clients: Vec<ClientSpec>,
    /// Refuse every modifying procedure with NFS3ERR_ROFS.
    pub read_only: bool,
    /// Map uid 0 to `anonuid` and gid 0 (primary or supplementary) to `anongid`.
    pub root_squash: bool,
    /// Map every caller to `anonuid`/`anongid` with no supplementary groups.
    pub all_squash: bool,
    /// User id of anonymous (AUTH_NONE) and squashed callers.
    pub anonuid: u32,
    /// Group id of anonymous (AUTH_NONE) and squashed callers.
    pub anongid: u32,
    /// Answer CREATE, MKDIR, SYMLINK, MKNOD, LINK and SETATTR once their
    /// change is committed, before the metadata log is synced, instead of
    /// after (RFC 1813 asks for the latter; this is the trade Linux
    /// knfsd's `async` export makes, and what a server that leaves its
    /// namespace to a local filesystem until an fsync does). Such a change
    /// becomes durable with the next log sync: a COMMIT on this export
    /// (which syncs everything committed before it, so a file is durable
    /// with its name once COMMIT answers), any FILE_SYNC WRITE or other
    /// synced change on the server, or the background sync at most about a
    /// second later. A crash in between loses it. Data keeps its
    /// guarantees: an UNSTABLE WRITE is durable once COMMIT answers, a
    /// FILE_SYNC WRITE when it is answered; REMOVE, RMDIR and RENAME (which
    /// free data after their change is durable) and calls that had to
    /// wait for the disk are still answered after their sync.
    pub async_metadata: bool,
}

impl Default for ExportOptions {
    fn default() -> Self {
        Self {
            clients: vec![ClientSpec::Any],
            read_only: false,
            root_squash: false,
            all_squash: false,
            anonuid: NOBODY,
            anongid: NOBODY,
            async_metadata: false,
        }
    }
}

impl ExportOptions {
    /// Whether a client at `ip` may use the export.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.clients.iter().any(|c| c.matches(ip))
    }

    /// The anonymous identity.
    pub fn anonymous(&self) -> Credentials {
        Credentials::new(self.anonuid, self.anongid)
    }

    /// The identity core-fs sees for a caller, after squashing.
    pub fn credentials(&self, auth: &Auth) -> Credentials {
        match auth {
            Auth::None | Auth::Unsupported(_) => self.anonymous(),
            Auth::Sys { .. } if self.all_squash => self.anonymous(),
            Auth::Sys { uid, gid, gids } => {
                if !self.root_squash {
                    return Credentials {
                        uid: *uid,
                        gid: *gid,
                        groups: gids.clone(),
                    };
                }
                let squash_gid = |g: u32| if g == 0 { self.anongid } else { g };
                Credentials {
                    uid: if *uid == 0 { self.anonuid } else { *uid },
                    gid: squash_gid(*gid),
                    groups: gids.iter().map(|g| squash_gid(*g)).collect(),
                }
            }
        }
    }

    /// The MOUNT EXPORT group list: the allowed clients, or empty when
    /// everyone is allowed.
    pub fn group_names(&self) -> Vec<String> {
        if self.clients.contains(&ClientSpec::Any) {
            return Vec::new();
        }
        self.clients.iter().map(|c| c.to_string()).collect()
    }
}

/// Export options for every volume.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExportPolicy {
    /// Options of every volume without an entry in `volumes`.
    pub default: ExportOptions,
    /// Per-volume options by volume name; an entry replaces `default`
    /// entirely for that volume.
    pub volumes: HashMap<String, ExportOptions>,
}

impl ExportPolicy {
    /// The options that apply to `volume`.
    pub fn options_for(&self, volume: &str) -> &ExportOptions {
        self.volumes.get(volume).unwrap_or(&self.default)
    }

    /// Whether any export answers metadata changes before their log sync.
    pub fn any_async_metadata(&self) -> bool {
        self.default.async_metadata || self.volumes.values().any(|o| o.async_metadata)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    fn spec(s: &str) -> ClientSpec {
        s.parse().expect("spec")
    }

    #[test]
    fn star_matches_everyone() {
        assert!(spec("*").matches(ip("192.0.2.1")));
        assert!(spec("*").matches(ip("2001:db8::1")));
    }

    #[test]
    fn cidr_matches_only_its_network() {
        let net = spec("10.0.0.0/8");
        assert!(net.matches(ip("10.0.0.1")));
        assert!(net.matches(ip("10.255.255.255")));
        assert!(!net.matches(ip("11.0.0.1")));
        assert!(!net.matches(ip("9.255.255.255")));
        let narrow = spec("192.168.1.128/25");
        assert!(narrow.matches(ip("192.168.1.200")));
        assert!(!narrow.matches(ip("192.168.1.127")));
        assert!(spec("0.0.0.0/0").matches(ip("203.0.113.9")));
        let v6 = spec("2001:db8::/32");
        assert!(v6.matches(ip("2001:db8:1::5")));
        assert!(!v6.matches(ip("2001:db9::5")));
        assert!(!v6.matches(ip("10.0.0.1")));
    }

    #[test]
    fn a_plain_address_matches_only_itself() {
        let one = spec("127.0.0.1");
        assert!(one.matches(ip("127.0.0.1")));
        assert!(!one.matches(ip("127.0.0.2")));
        assert_eq!(one.to_string(), "127.0.0.1");
    }

    #[test]
    fn ipv4_clients_on_an_ipv6_socket_match_ipv4_entries() {
        assert!(spec("10.0.0.0/8").matches(ip("::ffff:10.1.2.3")));
    }

    #[test]
    fn bad_entries_are_errors_naming_them() {
        for bad in [
            "10.0.0.0/33",
            "host.example",
            "10.0.0.1/8",
            "1.2.3.4/x",
            "",
            "::1/129",
        ] {
            let err = bad.parse::<ClientSpec>().expect_err(bad);
            assert_eq!(err.entry, bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn config_parses_with_defaults_and_rejects_unknown_fields() {
        let p: ExportPolicy = toml::from_str(
            r#"
            [default]
            clients = ["10.0.0.0/8", "127.0.0.1"]
            [volumes.archive]
            read_only = true
            "#,
        )
        .expect("valid policy");
        assert_eq!(p.default.clients.len(), 2);
        assert!(!p.default.read_only);
        assert_eq!(p.default.anonuid, NOBODY);
        let archive = p.options_for("archive");
        assert!(archive.read_only);
        assert_eq!(archive.clients, vec![ClientSpec::Any]);
        assert_eq!(p.options_for("other"), &p.default);

        let unknown = toml::from_str::<ExportPolicy>("[default]\nread_onyl = true\n");
        assert!(unknown.is_err());
        let bad = toml::from_str::<ExportPolicy>("[default]\nclients = [\"10.0.0.0/40\"]\n")
            .expect_err("bad client");
        assert!(bad.to_string().contains("10.0.0.0/40"), "{bad}");
    }

    #[test]
    fn allows_checks_every_entry() {
        let o = ExportOptions {
            clients: vec![spec("10.0.0.0/8"), spec("127.0.0.1")],
            ..ExportOptions::default()
        };
        assert!(o.allows(ip("127.0.0.1")));
        assert!(o.allows(ip("10.9.9.9")));
        assert!(!o.allows(ip("192.168.0.1")));
        assert_eq!(o.group_names(), vec!["10.0.0.0/8", "127.0.0.1"]);
        assert!(ExportOptions::default().group_names().is_empty());
        let nobody = ExportOptions {
            clients: vec![],
            ..ExportOptions::default()
        };
        assert!(!nobody.allows(ip("127.0.0.1")));
    }

    fn sys(uid: u32, gid: u32, gids: Vec<u32>) -> Auth {
        Auth::Sys { uid, gid, gids }
    }

    #[test]
    fn without_squashing_ids_pass_through() {
        let o = ExportOptions::default();
        let c = o.credentials(&sys(0, 0, vec![0, 5]));
        assert_eq!((c.uid, c.gid, c.groups), (0, 0, vec![0, 5]));
    }

    #[test]
    fn root_squash_maps_root_ids_to_anonymous() {
        let o = ExportOptions {
            root_squash: true,
            anonuid: 9999,
            anongid: 8888,
            ..ExportOptions::default()
        };
        let root = o.credentials(&sys(0, 0, vec![0, 5]));
        assert_eq!(
            (root.uid, root.gid, root.groups),
            (9999, 8888, vec![8888, 5])
        );
        let user = o.credentials(&sys(1000, 100, vec![5]));
        assert_eq!((user.uid, user.gid, user.groups), (1000, 100, vec![5]));
    }

    #[test]
    fn all_squash_maps_everyone_to_anonymous() {
        let o = ExportOptions {
            all_squash: true,
            ..ExportOptions::default()
        };
        let c = o.credentials(&sys(1000, 100, vec![5]));
        assert_eq!((c.uid, c.gid), (NOBODY, NOBODY));
        assert!(c.groups.is_empty());
    }

    #[test]
    fn auth_none_is_anonymous() {
        let o = ExportOptions {
            anonuid: 42,
            anongid: 43,
            ..ExportOptions::default()
        };
        let c = o.credentials(&Auth::None);
        assert_eq!((c.uid, c.gid), (42, 43));
    }
}
