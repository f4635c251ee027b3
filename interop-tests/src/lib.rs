//! The real `nitrofs` binary on loopback, driven by clients nobody here wrote:
//! Debian's libnfs-utils (`nfs-cp`, `nfs-cat`, `nfs-ls`), the `nfs3_client`
//! crate, and hand-made ONC-RPC bytes for malformed traffic.
//!
//! Everything lives in `tests/`: `common/` is the harness (start, stop,
//! `kill -9` and restart a server on its own temporary data directory;
//! `nfs3_client` helpers; raw RPC encoding), and each file is one area:
//! `libnfs_tools`, `protocol`, `permissions`, `edges`, `exports`, `restart`,
//! `crash`, `concurrency`, `malformed`. Each test starts its own server, so
//! tests are independent and run in parallel. The binary is `$NITROFS_BIN` or
//! `target/debug/nitrofs` (`cargo build -p nitrofs`; `scripts/test.sh` does it).
//!
//! This crate links no NitroFS crate: it may only see what a user sees.
