//! The typed configuration of `nitrofs serve`.
//!
//! Every field has a doc line and a default, unknown keys are rejected, and
//! [`Config::validate`] turns the file into [`Settings`] or an error that
//! names the offending field. `deploy/nitrofs.example.toml` documents the
//! same fields with their defaults (a test keeps the two in step).

use crate::memory::memory_bytes;
use nitrofs_chunk_store::DEFAULT_JOURNAL_BYTES;
use nitrofs_core_fs::{
    cache_entries_for_memory, inline_cache_bytes_for_memory, FsOptions, DEFAULT_CACHE_ENTRIES,
    DEFAULT_CHUNK_SIZE, DEFAULT_INLINE_CACHE_BYTES, DEFAULT_INLINE_MAX, INLINE_MAX_LIMIT,
    MIN_CACHE_ENTRIES,
};
use nitrofs_nfs::ExportPolicy;
use serde::Deserialize;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

/// Default data directory, relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./nitrofs-data";
/// Default NFS (and MOUNT, PORTMAP) address.
pub const DEFAULT_NFS_ADDR: &str = "0.0.0.0:2049";
/// Default admin API address: loopback only, the API has no authentication.
pub const DEFAULT_ADMIN_ADDR: &str = "127.0.0.1:7070";
/// Default S3 endpoint address.
pub const DEFAULT_S3_ADDR: &str = "0.0.0.0:9000";
/// Default S3 region.
pub const DEFAULT_S3_REGION: &str = "us-east-1";
/// Default native KV endpoint address.
pub const DEFAULT_KV_ADDR: &str = "0.0.0.0:9100";
/// Smallest accepted chunk size.
pub const MIN_CHUNK_SIZE: u64 = 64 * 1024;
/// Largest accepted chunk size.
pub const MAX_CHUNK_SIZE: u64 = 64 * 1024 * 1024;

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message (names the key and the line).
        message: String,
    },
    /// A field has an unusable value.
    #[error("invalid config: `{field}`: {message}")]
    Invalid {
        /// Dotted path of the field, as written in the file.
        field: String,
        /// What is wrong with it.
        message: String,
    },
}

fn invalid(field: &str, message: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        field: field.to_string(),
        message: message.into(),
    }
}

/// The whole configuration file.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Directory holding all state: metadata in `meta/`, chunks in `chunks/`.
    pub data_dir: PathBuf,
    /// The NFSv3 endpoint and its exports.
    pub nfs: NfsConfig,
    /// The admin HTTP API.
    pub admin: AdminConfig,
    /// The S3 endpoint.
    pub s3: S3Config,
    /// The native KV endpoint.
    pub kv: KvConfig,
    /// Tunables of the filesystem core.
    pub core: CoreConfig,
}

/// `[nfs]`: NFSv3, MOUNT v3 and PORTMAP on one TCP port.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsConfig {
    /// Listen address, HOST:PORT (port 0 picks a free port).
    pub addr: String,
    /// Export options: `[nfs.exports.default]` for every volume and
    /// `[nfs.exports.volumes.<name>]` overrides for one volume.
    pub exports: ExportPolicy,
    /// Seconds a client may take none of a reply's bytes before its
    /// connection (and the calls in flight on it) is closed.
    pub stall_timeout_secs: u64,
    /// Seconds a connection with no call in flight may stay silent before
    /// it is closed (clients reconnect by themselves).
    pub idle_timeout_secs: u64,
    /// Connections served at once; more are closed at once.
    pub max_connections: usize,
}

/// `[admin]`: the HTTP admin API (volumes, health, Prometheus metrics).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Listen address, HOST:PORT. Keep it on loopback: the API has no authentication.
    pub addr: String,
}

/// `[s3]`: the S3 endpoint over the same namespace (bucket = volume).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct S3Config {
    /// Listen address, HOST:PORT (port 0 picks a free port).
    pub addr: String,
    /// Base domain of virtual-hosted-style requests (`<bucket>.<domain>`);
    /// unset: path-style requests only.
    pub domain: Option<String>,
    /// Region the endpoint reports and expects in request signatures.
    pub region: String,
    /// Access key of the root identity (uid 0). Set both keys or neither;
    /// the environment (`NITROFS_ROOT_ACCESS_KEY`) takes precedence.
    pub root_access_key: Option<String>,
    /// Secret key of the root identity (`NITROFS_ROOT_SECRET_KEY` takes precedence).
    pub root_secret_key: Option<String>,
    /// Seconds a client may send no bytes of a request body (an upload or
    /// an XML document), or take no response bytes, before its request
    /// fails and its connection is closed.
    pub stall_timeout_secs: u64,
}

/// `[kv]`: the native KV protocol (KV-cache spaces) of the data role.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KvConfig {
    /// Listen address, HOST:PORT (port 0 picks a free port).
    pub addr: String,
    /// Address clients are told to use for this node in the routing table;
    /// unset: the bound address (clients replace 0.0.0.0 with the host
    /// they bootstrapped from).
    pub advertise: Option<String>,
    /// Seconds a started frame may take to arrive whole before its
    /// connection is closed (slow or stalled clients).
    pub frame_timeout_secs: u64,
    /// Seconds a connection may stay silent before it is closed.
    pub idle_timeout_secs: u64,
    /// Connections served at once; more are refused.
    pub max_connections: usize,
}

/// `[core]`: the filesystem core.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreConfig {
    /// Chunk size in bytes for files created from now on: a power of two
    /// from 64 KiB to 64 MiB. Existing files keep the size they were created with.
    pub chunk_size: u64,
    /// Most entries each metadata cache (inode records, directory
    /// entries) keeps in memory (at least 1024). Unset: sized from the
    /// memory the process may use ([`cache_entries_for_memory`] of
    /// [`memory_bytes`]), or [`DEFAULT_CACHE_ENTRIES`] when that is unknown.
    pub cache_entries: Option<usize>,
    /// Bytes of the chunk store's journal of small syncs, when it is
    /// created (1 MiB to 1 GiB; an existing journal keeps its size).
    pub chunk_journal_bytes: u64,
    /// Files created from now on keep their bytes in the metadata store
    /// while they are at most this long (0 to 1 MiB; 0: never).
    pub inline_max: u64,
    /// Most bytes of inline files kept in memory for reads. Unset: sized
    /// from the memory the process may use ([`inline_cache_bytes_for_memory`]
    /// of [`memory_bytes`]), or [`DEFAULT_INLINE_CACHE_BYTES`] when that
    /// is unknown; 0 keeps none.
    pub inline_cache_bytes: Option<u64>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            nfs: NfsConfig::default(),
            admin: AdminConfig::default(),
            s3: S3Config::default(),
            kv: KvConfig::default(),
            core: CoreConfig::default(),
        }
    }
}

impl Default for NfsConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_NFS_ADDR.to_string(),
            exports: ExportPolicy::default(),
            stall_timeout_secs: nitrofs_nfs::DEFAULT_STALL.as_secs(),
            idle_timeout_secs: nitrofs_nfs::IDLE_TIMEOUT.as_secs(),
            max_connections: nitrofs_nfs::MAX_CONNECTIONS,
        }
    }
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_ADMIN_ADDR.to_string(),
        }
    }
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            addr: DEFAULT_S3_ADDR.to_string(),
            domain: None,
            region: DEFAULT_S3_REGION.to_string(),
            root_access_key: None,
            root_secret_key: None,
            stall_timeout_secs: nitrofs_s3::DEFAULT_STALL.as_secs(),
        }
    }
}

impl Default for KvConfig {
    fn default() -> Self {
        Self {
            addr: DEFAULT_KV_ADDR.to_string(),
            advertise: None,
            frame_timeout_secs: 30,
            idle_timeout_secs: 600,
            max_connections: 4096,
        }
    }
}

impl Default for CoreConfig {
    fn default() -> Self {
        Self {
            chunk_size: u64::from(DEFAULT_CHUNK_SIZE),
            cache_entries: None,
            chunk_journal_bytes: DEFAULT_JOURNAL_BYTES,
            inline_max: u64::from(DEFAULT_INLINE_MAX),
            inline_cache_bytes: None,
        }
    }
}

/// A validated configuration, ready to start the server with.
#[derive(Debug)]
pub struct Settings {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Resolved NFS listen address.
    pub nfs_addr: SocketAddr,
    /// Resolved admin listen address.
    pub admin_addr: SocketAddr,
    /// NFS export policy.
    pub exports: ExportPolicy,
    /// NFS connection limits (stall, idle, count).
    pub nfs_limits: NfsLimits,
    /// The S3 endpoint.
    pub s3: S3Settings,
    /// The KV endpoint.
    pub kv: KvSettings,
    /// Core options.
    pub fs: FsOptions,
    /// Bytes of a new chunk journal.
    pub chunk_journal_bytes: u64,
}

/// The validated connection limits of `[nfs]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NfsLimits {
    /// How long a reply may wait for a client that reads nothing.
    pub stall_timeout: std::time::Duration,
    /// How long an idle connection is kept.
    pub idle_timeout: std::time::Duration,
    /// Connections served at once.
    pub max_connections: usize,
}

/// The validated `[s3]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// Resolved S3 listen address.
    pub addr: SocketAddr,
    /// Base domain of virtual-hosted-style requests, if any.
    pub domain: Option<String>,
    /// Region.
    pub region: String,
    /// Root key pair from the config file, if given.
    pub root: Option<KeyPair>,
    /// How long a client may make no progress.
    pub stall_timeout: std::time::Duration,
}

/// The validated `[kv]` section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvSettings {
    /// Resolved listen address.
    pub addr: SocketAddr,
    /// Advertised address, if set.
    pub advertise: Option<String>,
    /// Frame timeout.
    pub frame_timeout: std::time::Duration,
    /// Idle timeout.
    pub idle_timeout: std::time::Duration,
    /// Connection limit.
    pub max_connections: usize,
}

impl KvConfig {
    fn validate(self) -> Result<KvSettings, ConfigError> {
        let addr = socket_addr("kv.addr", &self.addr)?;
        if let Some(a) = &self.advertise {
            if a.rsplit_once(':')
                .and_then(|(_, p)| p.parse::<u16>().ok())
                .is_none()
            {
                return Err(invalid("kv.advertise", format!("{a:?} is not HOST:PORT")));
            }
        }
        let frame_timeout = timeout_secs("kv.frame_timeout_secs", self.frame_timeout_secs)?;
        let idle_timeout = timeout_secs("kv.idle_timeout_secs", self.idle_timeout_secs)?;
        Ok(KvSettings {
            addr,
            advertise: self.advertise,
            frame_timeout,
            idle_timeout,
            max_connections: connections("kv.max_connections", self.max_connections)?,
        })
    }
}

/// An S3 access key and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// Access key id (sent in every request).
    pub access_key: String,
    /// Secret key (never sent; signs requests).
    pub secret_key: String,
}

impl std::fmt::Debug for KeyPair {
    /// Never prints the secret (settings end up in logs and panics).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .finish()
    }
}

impl KeyPair {
    /// Checks both keys; `access_field`/`secret_field` name them in errors.
    pub fn new(
        access_key: String,
        secret_key: String,
        access_field: &str,
        secret_field: &str,
    ) -> Result<Self, ConfigError> {
        check_key(access_field, &access_key, MIN_ACCESS_KEY_LEN, |b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
        })?;
        check_key(secret_field, &secret_key, MIN_SECRET_KEY_LEN, |b| {
            b.is_ascii_graphic()
        })?;
        Ok(Self {
            access_key,
            secret_key,
        })
    }
}

/// Shortest accepted access key.
pub const MIN_ACCESS_KEY_LEN: usize = 3;
/// Shortest accepted secret key.
pub const MIN_SECRET_KEY_LEN: usize = 8;
/// Longest accepted key of either kind.
pub const MAX_KEY_LEN: usize = 128;

fn check_key(
    field: &str,
    value: &str,
    min: usize,
    allowed: impl Fn(u8) -> bool,
) -> Result<(), ConfigError> {
    if !(min..=MAX_KEY_LEN).contains(&value.len()) {
        return Err(invalid(
            field,
            format!("must be {min} to {MAX_KEY_LEN} characters long"),
        ));
    }
    if !value.bytes().all(allowed) {
        return Err(invalid(field, "contains a character that is not allowed"));
    }
    Ok(())
}

impl Config {
    /// Parses a configuration from TOML text; `path` only labels errors.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::from_toml(&text, path)
    }

    /// Checks every field and resolves addresses.
    pub fn validate(self) -> Result<Settings, ConfigError> {
        if self.data_dir.as_os_str().is_empty() {
            return Err(invalid("data_dir", "must not be empty"));
        }
        let nfs_addr = socket_addr("nfs.addr", &self.nfs.addr)?;
        let nfs_limits = NfsLimits {
            stall_timeout: timeout_secs("nfs.stall_timeout_secs", self.nfs.stall_timeout_secs)?,
            idle_timeout: timeout_secs("nfs.idle_timeout_secs", self.nfs.idle_timeout_secs)?,
            max_connections: connections("nfs.max_connections", self.nfs.max_connections)?,
        };
        let admin_addr = socket_addr("admin.addr", &self.admin.addr)?;
        let chunk_size = self.core.chunk_size;
        if !chunk_size.is_power_of_two() || !(MIN_CHUNK_SIZE..=MAX_CHUNK_SIZE).contains(&chunk_size)
        {
            return Err(invalid(
                "core.chunk_size",
                format!(
                    "{chunk_size} must be a power of two from {MIN_CHUNK_SIZE} (64 KiB) \
                     to {MAX_CHUNK_SIZE} (64 MiB)"
                ),
            ));
        }
        let chunk_size = u32::try_from(chunk_size)
            .map_err(|_| invalid("core.chunk_size", "does not fit in 32 bits"))?;
        let cache_entries = self.core.cache_entries.unwrap_or_else(|| {
            memory_bytes().map_or(DEFAULT_CACHE_ENTRIES, cache_entries_for_memory)
        });
        if cache_entries < MIN_CACHE_ENTRIES {
            return Err(invalid(
                "core.cache_entries",
                format!("{cache_entries} is below the least, {MIN_CACHE_ENTRIES}"),
            ));
        }
        let chunk_journal_bytes = self.core.chunk_journal_bytes;
        if !(1 << 20..=1 << 30).contains(&chunk_journal_bytes) {
            return Err(invalid(
                "core.chunk_journal_bytes",
                format!("{chunk_journal_bytes} must be from 1048576 (1 MiB) to 1073741824 (1 GiB)"),
            ));
        }
        let inline_max = u32::try_from(self.core.inline_max)
            .ok()
            .filter(|n| *n <= INLINE_MAX_LIMIT)
            .ok_or_else(|| {
                invalid(
                    "core.inline_max",
                    format!(
                        "{} must be from 0 to {INLINE_MAX_LIMIT} (1 MiB)",
                        self.core.inline_max
                    ),
                )
            })?;
        let inline_cache_bytes = match self.core.inline_cache_bytes {
            Some(n) => usize::try_from(n).map_err(|_| {
                invalid(
                    "core.inline_cache_bytes",
                    format!("{n} does not fit in memory"),
                )
            })?,
            None => {
                memory_bytes().map_or(DEFAULT_INLINE_CACHE_BYTES, inline_cache_bytes_for_memory)
            }
        };
        let s3 = self.s3.validate()?;
        let kv = self.kv.validate()?;
        Ok(Settings {
            data_dir: self.data_dir,
            nfs_addr,
            admin_addr,
            exports: self.nfs.exports,
            nfs_limits,
            s3,
            kv,
            fs: FsOptions {
                chunk_size,
                cache_entries,
                inline_max,
                inline_cache_bytes,
            },
            chunk_journal_bytes,
        })
    }
}

impl S3Config {
    fn validate(self) -> Result<S3Settings, ConfigError> {
        let addr = socket_addr("s3.addr", &self.addr)?;
        if let Some(domain) = &self.domain {
            check_domain("s3.domain", domain)?;
        }
        check_region("s3.region", &self.region)?;
        let root = match (self.root_access_key, self.root_secret_key) {
            (None, None) => None,
            (Some(access), Some(secret)) => Some(KeyPair::new(
                access,
                secret,
                "s3.root_access_key",
                "s3.root_secret_key",
            )?),
            (Some(_), None) => {
                return Err(invalid(
                    "s3.root_secret_key",
                    "missing: set both root keys or neither",
                ))
            }
            (None, Some(_)) => {
                return Err(invalid(
                    "s3.root_access_key",
                    "missing: set both root keys or neither",
                ))
            }
        };
        Ok(S3Settings {
            addr,
            domain: self.domain,
            region: self.region,
            root,
            stall_timeout: timeout_secs("s3.stall_timeout_secs", self.stall_timeout_secs)?,
        })
    }
}

/// A connection count setting: at least 1.
fn connections(field: &str, n: usize) -> Result<usize, ConfigError> {
    if n == 0 {
        return Err(invalid(field, "must be at least 1"));
    }
    Ok(n)
}

/// A timeout setting of `secs` seconds: from 1 second to a day.
fn timeout_secs(field: &str, secs: u64) -> Result<std::time::Duration, ConfigError> {
    if secs == 0 || secs > 86_400 {
        return Err(invalid(
            field,
            format!("{secs} must be from 1 to 86400 seconds"),
        ));
    }
    Ok(std::time::Duration::from_secs(secs))
}

/// A base domain for virtual-hosted-style requests: dot-separated labels of
/// letters, digits and `-`, with an optional `:PORT` (the rule s3s applies).
pub fn check_domain(field: &str, value: &str) -> Result<(), ConfigError> {
    let (host, port) = match value.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (value, None),
    };
    let port_ok = port.is_none_or(|p| p.parse::<u16>().is_ok());
    let labels_ok = !host.is_empty()
        && host.split('.').all(|label| {
            !label.is_empty()
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if port_ok && labels_ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a domain name (e.g. s3.example.com)"),
        ))
    }
}

/// A region name: 1 to 64 of `a-z`, `0-9` and `-` (e.g. `us-east-1`).
pub fn check_region(field: &str, value: &str) -> Result<(), ConfigError> {
    let ok = (1..=64).contains(&value.len())
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("{value:?} is not a region name (1 to 64 of a-z, 0-9, '-')"),
        ))
    }
}

/// Parses `HOST:PORT`: an IP literal (`0.0.0.0:2049`, `[::1]:2049`) or a
/// host name that resolves (`localhost:7070`, first address wins).
pub fn socket_addr(field: &str, value: &str) -> Result<SocketAddr, ConfigError> {
    if let Ok(addr) = value.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let bad = |why: String| {
        invalid(
            field,
            format!("{value:?} is not a usable HOST:PORT ({why})"),
        )
    };
    match value.to_socket_addrs() {
        Ok(mut addrs) => addrs
            .next()
            .ok_or_else(|| bad("the host name has no address".to_string())),
        Err(e) => Err(bad(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = include_str!("../../deploy/nitrofs.example.toml");

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::from_toml(text, Path::new("test.toml"))
    }

    fn invalid_field(text: &str) -> String {
        let err = parse(text)
            .and_then(Config::validate)
            .expect_err("config should be rejected");
        match err {
            ConfigError::Invalid { ref field, .. } => {
                assert!(err.to_string().contains(field.as_str()), "{err}");
                field.clone()
            }
            other => panic!("expected a validation error, got {other}"),
        }
    }

    #[test]
    fn example_file_parses_and_documents_the_defaults() {
        let example = parse(EXAMPLE).expect("example parses");
        assert_eq!(example, Config::default());
        let settings = example.validate().expect("example validates");
        assert_eq!(settings.data_dir, PathBuf::from(DEFAULT_DATA_DIR));
        assert_eq!(settings.nfs_addr.to_string(), DEFAULT_NFS_ADDR);
        assert_eq!(settings.admin_addr.to_string(), DEFAULT_ADMIN_ADDR);
        assert_eq!(settings.s3.addr.to_string(), DEFAULT_S3_ADDR);
        assert_eq!(settings.s3.region, DEFAULT_S3_REGION);
        assert_eq!((settings.s3.domain, settings.s3.root), (None, None));
        assert_eq!(settings.s3.stall_timeout, nitrofs_s3::DEFAULT_STALL);
        assert_eq!(
            settings.nfs_limits,
            NfsLimits {
                stall_timeout: nitrofs_nfs::DEFAULT_STALL,
                idle_timeout: nitrofs_nfs::IDLE_TIMEOUT,
                max_connections: nitrofs_nfs::MAX_CONNECTIONS,
            }
        );
        assert_eq!(settings.fs.chunk_size, DEFAULT_CHUNK_SIZE);
    }

    #[test]
    fn example_file_spells_out_every_section_and_field() {
        let table: toml::Table = toml::from_str(EXAMPLE).expect("example is TOML");
        assert!(table.contains_key("data_dir"));
        let get = |section: &str, key: &str| table.get(section).and_then(|s| s.get(key)).is_some();
        assert!(get("nfs", "addr"), "nfs.addr");
        for key in ["stall_timeout_secs", "idle_timeout_secs", "max_connections"] {
            assert!(get("nfs", key), "nfs.{key}");
        }
        assert!(get("admin", "addr"), "admin.addr");
        assert!(get("s3", "addr"), "s3.addr");
        assert!(get("s3", "region"), "s3.region");
        assert!(get("s3", "stall_timeout_secs"), "s3.stall_timeout_secs");
        for key in ["domain", "root_access_key", "root_secret_key"] {
            assert!(
                EXAMPLE
                    .lines()
                    .any(|l| l.starts_with(&format!("# {key} = "))),
                "s3.{key} is shown (commented out: it has no default)"
            );
        }
        for key in ["chunk_size", "chunk_journal_bytes", "inline_max"] {
            assert!(get("core", key), "core.{key}");
        }
        assert!(
            EXAMPLE.lines().any(|l| l.starts_with("# cache_entries = ")),
            "core.cache_entries is shown (commented out: its default depends on the machine)"
        );
        assert!(
            EXAMPLE
                .lines()
                .any(|l| l.starts_with("# inline_cache_bytes = ")),
            "core.inline_cache_bytes is shown (commented out: its default depends on the machine)"
        );
        for key in [
            "addr",
            "frame_timeout_secs",
            "idle_timeout_secs",
            "max_connections",
        ] {
            assert!(get("kv", key), "kv.{key}");
        }
        assert!(
            EXAMPLE.lines().any(|l| l.starts_with("# advertise = ")),
            "kv.advertise"
        );
        let default_export = table
            .get("nfs")
            .and_then(|n| n.get("exports"))
            .and_then(|e| e.get("default"))
            .and_then(|d| d.as_table());
        assert!(
            default_export.is_some_and(|d| !d.is_empty()),
            "[nfs.exports.default] lists its options"
        );
    }

    #[test]
    fn example_volume_override_parses_when_uncommented() {
        let override_section: String = EXAMPLE
            .lines()
            .skip_while(|l| !l.starts_with("# [nfs.exports.volumes."))
            .take_while(|l| l.starts_with("# "))
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        assert!(
            !override_section.is_empty(),
            "the example shows an override"
        );
        let cfg = parse(&override_section).expect("override parses");
        assert_eq!(cfg.nfs.exports.volumes.len(), 1);
        cfg.validate().expect("override validates");
    }

    #[test]
    fn example_s3_options_parse_when_uncommented() {
        let section: String = EXAMPLE
            .lines()
            .skip_while(|l| *l != "[s3]")
            .skip(1)
            .take_while(|l| !l.starts_with('['))
            .filter(|l| {
                [
                    "# domain = ",
                    "# root_access_key = ",
                    "# root_secret_key = ",
                ]
                .iter()
                .any(|p| l.starts_with(p))
            })
            .map(|l| format!("{}\n", &l[2..]))
            .collect();
        let cfg = parse(&format!("[s3]\n{section}")).expect("uncommented [s3] parses");
        let s3 = cfg.validate().expect("uncommented [s3] validates").s3;
        assert!(s3.domain.is_some());
        assert!(s3.root.is_some());
    }

    #[test]
    fn s3_section_sets_address_domain_region_and_root_keys() {
        let text = "[s3]\naddr = '127.0.0.1:9999'\ndomain = 's3.example.com'\n\
                    region = 'eu-west-3'\nroot_access_key = 'ROOTKEY'\n\
                    root_secret_key = 'root-secret-123'\n";
        let s3 = parse(text)
            .and_then(Config::validate)
            .expect("valid [s3]")
            .s3;
        assert_eq!(s3.addr.to_string(), "127.0.0.1:9999");
        assert_eq!(s3.domain.as_deref(), Some("s3.example.com"));
        assert_eq!(s3.region, "eu-west-3");
        let root = s3.root.expect("root keys");
        assert_eq!(root.access_key, "ROOTKEY");
        assert_eq!(root.secret_key, "root-secret-123");
        assert!(
            !format!("{root:?}").contains("root-secret-123"),
            "Debug never shows the secret"
        );
    }

    #[test]
    fn bad_s3_values_name_their_field() {
        for (text, field) in [
            ("[s3]\naddr = 'nowhere'", "s3.addr"),
            ("[s3]\ndomain = ''", "s3.domain"),
            ("[s3]\ndomain = 'a..b'", "s3.domain"),
            ("[s3]\ndomain = 's3.example.com:http'", "s3.domain"),
            ("[s3]\ndomain = 'bad_domain.com'", "s3.domain"),
            ("[s3]\nregion = ''", "s3.region"),
            ("[s3]\nregion = 'US East'", "s3.region"),
            ("[s3]\nroot_access_key = 'ROOTKEY'", "s3.root_secret_key"),
            (
                "[s3]\nroot_secret_key = 'root-secret'",
                "s3.root_access_key",
            ),
            (
                "[s3]\nroot_access_key = 'a/b'\nroot_secret_key = 'root-secret'",
                "s3.root_access_key",
            ),
            (
                "[s3]\nroot_access_key = 'ROOTKEY'\nroot_secret_key = 'short'",
                "s3.root_secret_key",
            ),
            (
                "[s3]\nroot_access_key = 'ROOTKEY'\nroot_secret_key = 'has space'",
                "s3.root_secret_key",
            ),
            ("[s3]\nstall_timeout_secs = 0", "s3.stall_timeout_secs"),
            ("[nfs]\nstall_timeout_secs = 0", "nfs.stall_timeout_secs"),
            ("[nfs]\nidle_timeout_secs = 0", "nfs.idle_timeout_secs"),
            ("[nfs]\nmax_connections = 0", "nfs.max_connections"),
            (
                "[nfs]\nstall_timeout_secs = 86401",
                "nfs.stall_timeout_secs",
            ),
            ("[s3]\nstall_timeout_secs = 86401", "s3.stall_timeout_secs"),
        ] {
            assert_eq!(invalid_field(text), field, "{text}");
        }
        assert!(check_domain("d", "localhost:9000").is_ok());
        let s3 = parse("[s3]\nstall_timeout_secs = 2")
            .and_then(Config::validate)
            .expect("a short stall limit is valid")
            .s3;
        assert_eq!(s3.stall_timeout, std::time::Duration::from_secs(2));
    }

    #[test]
    fn empty_file_means_defaults() {
        let settings = parse("")
            .and_then(Config::validate)
            .expect("defaults are valid");
        assert_eq!(settings.nfs_addr.port(), 2049);
        assert_eq!(settings.admin_addr.port(), 7070);
        assert_eq!(settings.s3.addr.port(), 9000);
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        for (text, key) in [
            ("colour = 'blue'", "colour"),
            ("[nfs]\nadress = '0.0.0.0:2049'", "adress"),
            ("[core]\nchunksize = 65536", "chunksize"),
            ("[admin]\nport = 7070", "port"),
            ("[s3]\nsecret = 'x'", "secret"),
            ("[metrics]\nenabled = true", "metrics"),
        ] {
            let err = parse(text).expect_err(text);
            assert!(matches!(err, ConfigError::Parse { .. }), "{text}: {err}");
            assert!(err.to_string().contains(key), "{text}: {err}");
        }
    }

    #[test]
    fn bad_addresses_name_their_field() {
        assert_eq!(invalid_field("[nfs]\naddr = 'not an address'"), "nfs.addr");
        assert_eq!(invalid_field("[nfs]\naddr = '127.0.0.1'"), "nfs.addr");
        assert_eq!(
            invalid_field("[admin]\naddr = '127.0.0.1:99999'"),
            "admin.addr"
        );
    }

    #[test]
    fn inline_max_is_at_most_one_mebibyte() {
        for bad in [(1u64 << 20) + 1, 1 << 32, 1 << 40] {
            let text = format!("[core]\ninline_max = {bad}");
            assert_eq!(invalid_field(&text), "core.inline_max", "{bad}");
        }
        for good in [0, 4096, 64 << 10, 1 << 20] {
            let text = format!("[core]\ninline_max = {good}");
            let settings = parse(&text).and_then(Config::validate).expect("valid");
            assert_eq!(u64::from(settings.fs.inline_max), good);
        }
    }

    #[test]
    fn chunk_size_must_be_a_power_of_two_in_range() {
        for bad in [0, 4096, 65535, 100_000, 3 << 20, 128 << 20] {
            let text = format!("[core]\nchunk_size = {bad}");
            assert_eq!(invalid_field(&text), "core.chunk_size", "{bad}");
        }
        for good in [64 << 10, 1 << 20, 4 << 20, 64 << 20] {
            let text = format!("[core]\nchunk_size = {good}");
            let settings = parse(&text).and_then(Config::validate).expect("valid");
            assert_eq!(u64::from(settings.fs.chunk_size), good);
        }
    }

    #[test]
    fn cache_and_journal_sizes_are_checked_and_reach_the_settings() {
        assert_eq!(
            invalid_field("[core]\ncache_entries = 100"),
            "core.cache_entries"
        );
        for bad in [0, 4096, (1u64 << 30) + 1] {
            let text = format!("[core]\nchunk_journal_bytes = {bad}");
            assert_eq!(invalid_field(&text), "core.chunk_journal_bytes", "{bad}");
        }
        let text = "[core]\ncache_entries = 2048\nchunk_journal_bytes = 8388608\n\
                    inline_cache_bytes = 0";
        let settings = parse(text).and_then(Config::validate).expect("valid");
        assert_eq!(settings.fs.cache_entries, 2048);
        assert_eq!(settings.chunk_journal_bytes, 8 << 20);
        assert_eq!(settings.fs.inline_cache_bytes, 0);
        let defaults = parse("").and_then(Config::validate).expect("valid");
        assert_eq!(
            defaults.fs.cache_entries,
            memory_bytes().map_or(DEFAULT_CACHE_ENTRIES, cache_entries_for_memory)
        );
        assert_eq!(
            defaults.fs.inline_cache_bytes,
            memory_bytes().map_or(DEFAULT_INLINE_CACHE_BYTES, inline_cache_bytes_for_memory)
        );
        if let Some(memory) = memory_bytes() {
            let bytes = defaults.fs.cache_entries as u64 * nitrofs_core_fs::CACHED_PAIR_BYTES;
            assert!(bytes <= memory / 16 || defaults.fs.cache_entries == MIN_CACHE_ENTRIES);
        }
        assert_eq!(defaults.chunk_journal_bytes, DEFAULT_JOURNAL_BYTES);
    }

    #[test]
    fn empty_data_dir_is_rejected() {
        assert_eq!(invalid_field("data_dir = ''"), "data_dir");
    }

    #[test]
    fn host_names_resolve() {
        let addr = socket_addr("admin.addr", "localhost:7070").expect("localhost resolves");
        assert!(addr.ip().is_loopback());
    }
}
