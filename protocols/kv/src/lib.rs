//! KV service of the data role: spaces, values in the chunk engine,
//! eviction, the request handler.
//!
//! A space is a capacity-bounded namespace of keys (KVCache blocks keyed by
//! token-prefix hash); its values live in memory or, for durable spaces, in
//! a chunk engine of their own under `<data-dir>/kv`. This crate must not
//! touch the filesystem namespace or its metadata: KV operations cost zero
//! metadata calls (DESIGN.md, "The one-metadata-round-trip rule"). From
//! core-fs it uses only the pure permission check and ACL type, so a
//! space's owner, mode and ACL are judged exactly as a file's are.

pub mod metrics;
#[cfg(feature = "rdma")]
mod rdma;
pub mod service;
pub mod store;

pub use metrics::KvMetrics;
pub use service::{sweep_expired, Authenticator, KvService, Principal};
