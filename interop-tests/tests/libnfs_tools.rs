//! Debian's libnfs-utils (`nfs-cp`, `nfs-cat`, `nfs-ls`) against the real
//! binary: files of many sizes, up to 256 MiB, round-trip byte-identical.
//!
//! libnfs-utils 4.0 ships only these three tools (no mkdir), so directories
//! are made with the `nfs3_client` crate. `nfs-cp` mounts the URL's parent
//! directory, so copying into `sub/file` also exercises mounting a subdirectory.

mod common;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use common::{block_on, run_with_timeout, sha256_file, PatternRng, Server};

const TOOL_TIMEOUT: Duration = Duration::from_secs(1200);
const MIB: usize = 1024 * 1024;

/// Fails (never skips) if the tools are missing.
fn tool(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/bin"] {
        let p = Path::new(dir).join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!("`{name}` (Debian package libnfs-utils) is not installed: run scripts/setup.sh");
}

fn run_tool(name: &str, args: &[&str]) -> Output {
    let out = run_with_timeout(Command::new(tool(name)).args(args), TOOL_TIMEOUT);
    assert!(
        out.status.success(),
        "{name} {args:?} failed with {}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Writes `len` deterministic pseudo-random bytes to `path` in 1 MiB pieces;
/// returns their sha256.
fn make_file(path: &Path, len: usize, seed: u64) -> String {
    use sha2::Digest;
    let mut rng = PatternRng::new(seed);
    let mut f = File::create(path).expect("create local file");
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; MIB];
    let mut left = len;
    while left > 0 {
        let n = left.min(MIB);
        rng.fill(&mut buf[..n]);
        f.write_all(&buf[..n]).expect("write local file");
        h.update(&buf[..n]);
        left -= n;
    }
    f.sync_all().expect("sync local file");
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// One `nfs-ls` line: permissions, nlink, uid, gid, size, name.
#[derive(Debug, Clone)]
struct LsEntry {
    perms: String,
    uid: u32,
    size: u64,
}

fn nfs_ls(url: &str) -> BTreeMap<String, LsEntry> {
    let out = run_tool("nfs-ls", &[url]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let mut map = BTreeMap::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split_whitespace().collect();
        assert!(f.len() >= 6, "unexpected nfs-ls line: {line:?}");
        let entry = LsEntry {
            perms: f[0].to_string(),
            uid: f[2].parse().unwrap_or_else(|_| panic!("uid in {line:?}")),
            size: f[4].parse().unwrap_or_else(|_| panic!("size in {line:?}")),
        };
        map.insert(f[5..].join(" "), entry);
    }
    map
}

/// Copies a local file into the export and back out, comparing sha256.
fn round_trip(server: &Server, local: &Path, remote: &str, want_sha: &str, len: usize) {
    let url = server.nfs_url(remote);
    run_tool("nfs-cp", &[local.to_str().expect("utf-8 path"), &url]);
    let back = local.with_extension("back");
    run_tool("nfs-cp", &[&url, back.to_str().expect("utf-8 path")]);
    let (sha, n) = sha256_file(&back);
    assert_eq!(n, len as u64, "{remote}: size read back by nfs-cp");
    assert_eq!(sha, want_sha, "{remote}: sha256 read back by nfs-cp");
    std::fs::remove_file(&back).expect("remove read-back copy");
}

#[test]
fn nfs_cp_round_trips_files_of_many_sizes_and_nfs_ls_lists_them() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let sizes = [0usize, 1, 4095, MIB + 7, 5 * MIB];
    let mut want = BTreeMap::new();
    for (i, &len) in sizes.iter().enumerate() {
        let name = format!("size-{len}.bin");
        let local = tmp.path().join(&name);
        let sha = make_file(&local, len, 100 + i as u64);
        round_trip(&server, &local, &name, &sha, len);
        want.insert(name, (len, local));
    }

    // nfs-cat returns exactly the bytes of the small files.
    for name in ["size-1.bin", "size-4095.bin"] {
        let out = run_tool("nfs-cat", &[&server.nfs_url(name)]);
        let local = std::fs::read(&want[name].1).expect("read local copy");
        assert_eq!(out.stdout.len(), local.len(), "nfs-cat {name}: length");
        assert!(out.stdout == local, "nfs-cat {name}: content differs");
    }

    let listing = nfs_ls(&server.nfs_url(""));
    for (name, (len, _)) in &want {
        let e = listing
            .get(name)
            .unwrap_or_else(|| panic!("nfs-ls does not list {name}: {listing:?}"));
        assert_eq!(e.size, *len as u64, "nfs-ls size of {name}");
        assert_eq!(
            e.perms, "-rw-rw----",
            "{name}: nfs-cp creates with mode 0660 and the server keeps it"
        );
        assert_eq!(e.uid, 0, "{name}: created by root over AUTH_SYS");
    }
}

#[test]
fn nfs_cp_round_trips_a_256_mib_file() {
    let server = Server::start();
    let tmp = tempfile::tempdir().expect("tempdir");
    let len = 256 * MIB;
    let local = tmp.path().join("big.bin");
    let sha = make_file(&local, len, 256);
    round_trip(&server, &local, "big.bin", &sha, len);
    let listing = nfs_ls(&server.nfs_url(""));
    assert_eq!(
        listing.get("big.bin").map(|e| e.size),
        Some(len as u64),
        "nfs-ls shows the full size"
    );
}

#[test]
fn a_subdirectory_made_over_nfs3_is_listed_and_usable_by_libnfs() {
    let server = Server::start();
    block_on(Duration::from_secs(120), async {
        use common::nfs::*;
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let sub = mkdir(&mut c, &root, "sub", 0o755).await;
        mkdir(&mut c, &sub, "deeper", 0o700).await;
    });
    let listing = nfs_ls(&server.nfs_url(""));
    let e = listing
        .get("sub")
        .unwrap_or_else(|| panic!("nfs-ls does not list sub: {listing:?}"));
    assert_eq!(e.perms, "drwxr-xr-x", "sub is a 0755 directory");

    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("inner.bin");
    let sha = make_file(&local, 3 * MIB + 1, 7);
    round_trip(&server, &local, "sub/inner.bin", &sha, 3 * MIB + 1);

    let inner = nfs_ls(&server.nfs_url("sub"));
    let names: Vec<&String> = inner.keys().collect();
    assert_eq!(names, ["deeper", "inner.bin"], "nfs-ls of sub");
    assert_eq!(inner["inner.bin"].size, (3 * MIB + 1) as u64);
    assert_eq!(inner["deeper"].perms, "drwx------");
}

#[test]
fn admin_volume_create_list_delete_drives_the_exports() {
    let server = Server::start();
    let out = server.admin(&["volume", "create", "extra"]);
    assert!(
        out.status.success(),
        "volume create extra: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = server.admin(&["volume", "create", "scratch"]);
    assert!(out.status.success(), "volume create scratch");

    let listed = |server: &Server| -> Vec<String> {
        let out = server.admin(&["volume", "list"]);
        assert!(out.status.success(), "volume list");
        String::from_utf8_lossy(&out.stdout)
            .split(|c: char| !(c.is_alphanumeric() || "-_.".contains(c)))
            .filter(|w| !w.is_empty())
            .map(str::to_string)
            .collect()
    };
    let words = listed(&server);
    for v in ["default", "extra", "scratch"] {
        assert!(
            words.iter().any(|w| w == v),
            "volume list shows {v}: {words:?}"
        );
    }

    // The new volume is its own export.
    let tmp = tempfile::tempdir().expect("tempdir");
    let local = tmp.path().join("in-extra.bin");
    let sha = make_file(&local, 12345, 9);
    let url = server.nfs_url_in("extra", "in-extra.bin");
    run_tool("nfs-cp", &[local.to_str().expect("utf-8"), &url]);
    let back = tmp.path().join("back.bin");
    run_tool("nfs-cp", &[&url, back.to_str().expect("utf-8")]);
    assert_eq!(sha256_file(&back), (sha, 12345));
    assert!(nfs_ls(&server.nfs_url_in("extra", "")).contains_key("in-extra.bin"));
    assert!(
        !nfs_ls(&server.nfs_url("")).contains_key("in-extra.bin"),
        "volumes are separate namespaces"
    );

    let out = server.admin(&["volume", "delete", "scratch"]);
    assert!(
        out.status.success(),
        "volume delete scratch: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let words = listed(&server);
    assert!(
        !words.iter().any(|w| w == "scratch"),
        "deleted volume still listed: {words:?}"
    );
    let ls = run_with_timeout(
        Command::new(tool("nfs-ls")).arg(server.nfs_url_in("scratch", "")),
        TOOL_TIMEOUT,
    );
    assert!(
        !ls.status.success(),
        "a deleted volume can no longer be mounted"
    );
}
