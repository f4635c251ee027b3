//! The real `nitrofs` binary: start-up lines, the admin commands against a
//! running server (volumes and S3 users), the S3 root keys generated once
//! and kept, clean stop on SIGTERM, state kept across a restart, and
//! start-up errors that name what is wrong.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nitrofs");

const ENV_ACCESS: &str = "NITROFS_ROOT_ACCESS_KEY";
const ENV_SECRET: &str = "NITROFS_ROOT_SECRET_KEY";

/// A running `nitrofs serve` with the addresses and lines it printed.
struct Server {
    child: Child,
    nfs: String,
    admin: String,
    s3: String,
    /// Every stdout line up to and including `nitrofs ready`.
    lines: Vec<String>,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Self::start_in(Path::new("."), data_dir)
    }

    /// Starts with `cwd` as working directory (for relative data dirs).
    fn start_in(cwd: &Path, data_dir: &Path) -> Server {
        Self::start_with(cwd, data_dir, None)
    }

    /// Starts with root keys from the environment (or none: the server
    /// finds or generates them).
    fn start_with(cwd: &Path, data_dir: &Path, root_keys: Option<(&str, &str)>) -> Server {
        let mut cmd = Command::new(BIN);
        cmd.env_remove(ENV_ACCESS).env_remove(ENV_SECRET);
        if let Some((access, secret)) = root_keys {
            cmd.env(ENV_ACCESS, access).env(ENV_SECRET, secret);
        }
        let mut child = cmd
            .current_dir(cwd)
            .args([
                "serve",
                "--nfs-addr",
                "127.0.0.1:0",
                "--admin-addr",
                "127.0.0.1:0",
                "--s3-addr",
                "127.0.0.1:0",
                // Every test its own free port: the default 0.0.0.0:9100
                // would make concurrent tests collide.
                "--kv-addr",
                "127.0.0.1:0",
            ])
            .arg("--data-dir")
            .arg(data_dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start nitrofs serve");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (mut nfs, mut admin, mut s3) = (None, None, None);
        let mut lines = Vec::new();
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("nitrofs prints its endpoints and `nitrofs ready`");
            lines.push(line.clone());
            if let Some(a) = line.strip_prefix("nfs listening on ") {
                nfs = Some(a.to_string());
            } else if let Some(a) = line.strip_prefix("admin listening on ") {
                admin = Some(a.to_string());
            } else if let Some(a) = line.strip_prefix("s3 listening on ") {
                s3 = Some(a.to_string());
            } else if line == "nitrofs ready" {
                break;
            }
        }
        Server {
            child,
            nfs: nfs.expect("an nfs line before ready"),
            admin: admin.expect("an admin line before ready"),
            s3: s3.expect("an s3 line before ready"),
            lines,
        }
    }

    /// The value of a `s3 root … key: VALUE` start-up line, if printed.
    fn printed(&self, which: &str) -> Option<String> {
        let prefix = format!("s3 root {which} key: ");
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&prefix).map(str::to_string))
    }

    fn admin(&self, args: &[&str]) -> Output {
        Command::new(BIN)
            .args(["admin", "--admin-addr", &self.admin])
            .args(args)
            .output()
            .expect("run nitrofs admin")
    }

    /// Sends SIGTERM and returns the exit status code.
    fn terminate(mut self) -> Option<i32> {
        let pid = self.child.id().to_string();
        let killed = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(killed.success());
        let status = self.child.wait().expect("wait for nitrofs");
        status.code()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn serve_prints_bound_endpoints_manages_volumes_and_keeps_them_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    assert!(!server.nfs.ends_with(":0"), "the bound port is printed");
    assert!(!server.s3.ends_with(":0"), "the bound S3 port is printed");
    TcpStream::connect(&server.nfs).expect("the NFS port accepts connections");
    TcpStream::connect(&server.s3).expect("the S3 port accepts connections");
    assert_eq!(
        server.lines.last().map(String::as_str),
        Some("nitrofs ready")
    );

    let list = server.admin(&["volume", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    assert_eq!(stdout(&list), "default\n");

    let create = server.admin(&["volume", "create", "scratch"]);
    assert!(create.status.success(), "{}", stderr(&create));
    assert!(stdout(&create).contains("scratch"));

    let again = server.admin(&["volume", "create", "scratch"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let missing = server.admin(&["volume", "delete", "nope"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );

    assert_eq!(server.terminate(), Some(0), "SIGTERM is a clean stop");

    let server = Server::start(&data);
    let list = server.admin(&["volume", "list"]);
    assert_eq!(
        stdout(&list),
        "default\nscratch\n",
        "volumes survive a restart"
    );
    let delete = server.admin(&["volume", "delete", "scratch"]);
    assert!(delete.status.success(), "{}", stderr(&delete));
    assert_eq!(stdout(&server.admin(&["volume", "list"])), "default\n");
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_relative_data_dir_is_created_under_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = Server::start_in(dir.path(), Path::new("nested/data"));
    assert!(dir.path().join("nested/data/meta").is_dir());
    assert!(dir.path().join("nested/data/chunks").is_dir());
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn a_bad_config_stops_start_up_with_the_field_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("nitrofs.toml");
    std::fs::write(&config, "[core]\nchunk_size = 12345\n").expect("write config");
    let out = Command::new(BIN)
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .output()
        .expect("run nitrofs serve");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("core.chunk_size"), "{}", stderr(&out));
    assert!(stdout(&out).is_empty(), "nothing is announced");
}

#[test]
fn admin_without_a_server_fails_with_the_address_it_tried() {
    let out = Command::new(BIN)
        .args(["admin", "--admin-addr", "127.0.0.1:1", "volume", "list"])
        .output()
        .expect("run nitrofs admin");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("127.0.0.1:1"), "{}", stderr(&out));
}

#[test]
fn first_start_generates_root_keys_prints_them_once_and_later_starts_reuse_them() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start(&data);
    let access = server
        .printed("access")
        .expect("access key printed at first start");
    let secret = server
        .printed("secret")
        .expect("secret key printed at first start");
    assert_eq!(access.len(), 20, "{access}");
    assert_eq!(secret.len(), 40);
    let ready = server.lines.iter().position(|l| l == "nitrofs ready");
    let key_line = server.lines.iter().position(|l| l.starts_with("s3 root"));
    assert!(key_line < ready, "keys come before `nitrofs ready`");

    let file = data.join("s3-root-credentials");
    let mode = std::fs::metadata(&file)
        .expect("credentials file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "only the server's user can read it");
    let text = std::fs::read_to_string(&file).expect("read credentials");
    assert!(text.contains(&access) && text.contains(&secret), "{text}");
    assert_eq!(server.terminate(), Some(0));

    let again = Server::start(&data);
    assert_eq!(
        again.printed("access"),
        None,
        "printed once, not at every start"
    );
    assert_eq!(again.printed("secret"), None);
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        text,
        "the same pair is kept"
    );
    assert_eq!(again.terminate(), Some(0));
}

#[test]
fn root_keys_from_the_environment_are_neither_printed_nor_stored() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start_with(
        Path::new("."),
        &data,
        Some(("ENVROOTKEY", "env-root-secret")),
    );
    assert_eq!(server.printed("access"), None);
    assert!(!data.join("s3-root-credentials").exists());
    let ids = std::fs::read_to_string(data.join("s3-identities.json")).unwrap_or_default();
    assert!(
        !ids.contains("env-root-secret"),
        "the secret is not written anywhere"
    );
    assert_eq!(server.terminate(), Some(0));
}

#[test]
fn half_a_root_key_pair_stops_start_up_naming_the_missing_variable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .env(ENV_ACCESS, "ONLYACCESS")
        .env_remove(ENV_SECRET)
        .args([
            "serve",
            "--nfs-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
        ])
        .args([
            "--s3-addr",
            "127.0.0.1:0",
            "--kv-addr",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir.path().join("data"))
        .output()
        .expect("run nitrofs serve");
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains(ENV_SECRET), "{}", stderr(&out));
    assert!(!stdout(&out).contains("nitrofs ready"));
}

#[test]
fn a_bad_s3_flag_stops_start_up_with_the_flag_named() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (flag, value) in [
        ("--s3-addr", "nowhere"),
        ("--s3-region", "Not A Region"),
        ("--s3-domain", "bad_domain"),
    ] {
        let out = Command::new(BIN)
            .args(["serve", flag, value, "--data-dir"])
            .arg(dir.path().join("data"))
            .output()
            .expect("run nitrofs serve");
        assert_eq!(out.status.code(), Some(1), "{flag}");
        assert!(stderr(&out).contains(flag), "{flag}: {}", stderr(&out));
        assert!(stdout(&out).is_empty(), "nothing is announced");
    }
}

#[test]
fn admin_user_commands_add_list_and_remove_identities_across_a_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let server = Server::start_with(Path::new("."), &data, Some(("ROOTKEY", "root-secret")));
    let add = server.admin(&[
        "user", "add", "alice", "--uid", "1000", "--gid", "100", "--groups", "5,6",
    ]);
    assert!(add.status.success(), "{}", stderr(&add));
    let printed = stdout(&add);
    let field = |name: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {name:?} line in {printed:?}"))
    };
    let access = field("access key: ");
    let secret = field("secret key: ");
    assert!(!access.is_empty() && !secret.is_empty());

    let again = server.admin(&["user", "add", "alice", "--uid", "1", "--gid", "1"]);
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let list = stdout(&server.admin(&["user", "list"]));
    let alice = list
        .lines()
        .find(|l| l.starts_with("alice "))
        .unwrap_or_else(|| panic!("alice is listed: {list:?}"));
    assert_eq!(
        alice,
        format!("alice uid=1000 gid=100 groups=5,6 access_key={access}")
    );
    assert!(!list.contains(&secret), "secrets are shown once only");
    assert!(list.lines().any(|l| l.starts_with("root uid=0 ")), "{list}");
    assert_eq!(server.terminate(), Some(0));

    let server = Server::start_with(Path::new("."), &data, Some(("ROOTKEY", "root-secret")));
    let list = stdout(&server.admin(&["user", "list"]));
    assert!(
        list.contains(&access),
        "identities survive a restart: {list}"
    );
    let remove = server.admin(&["user", "remove", "alice"]);
    assert!(remove.status.success(), "{}", stderr(&remove));
    assert_eq!(stdout(&remove), "removed user alice\n");
    assert!(!stdout(&server.admin(&["user", "list"])).contains("alice"));
    let missing = server.admin(&["user", "remove", "alice"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not found"),
        "{}",
        stderr(&missing)
    );
    let root = server.admin(&["user", "remove", "root"]);
    assert!(
        !root.status.success(),
        "the root identity cannot be removed"
    );
    assert_eq!(server.terminate(), Some(0));
}
