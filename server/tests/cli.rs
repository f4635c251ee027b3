//! The real `nitrofs` binary: start-up lines, the admin commands against a
//! running server, clean stop on SIGTERM, state kept across a restart, and
//! start-up errors that name what is wrong.

use std::io::{BufRead, BufReader};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_nitrofs");

/// A running `nitrofs serve` with the addresses it printed.
struct Server {
    child: Child,
    nfs: String,
    admin: String,
}

impl Server {
    fn start(data_dir: &Path) -> Server {
        Self::start_in(Path::new("."), data_dir)
    }

    /// Starts with `cwd` as working directory (for relative data dirs).
    fn start_in(cwd: &Path, data_dir: &Path) -> Server {
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .args([
                "serve",
                "--nfs-addr",
                "127.0.0.1:0",
                "--admin-addr",
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
        let (mut nfs, mut admin) = (None, None);
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(60))
                .expect("nitrofs prints its endpoints and `nitrofs ready`");
            if let Some(a) = line.strip_prefix("nfs listening on ") {
                nfs = Some(a.to_string());
            } else if let Some(a) = line.strip_prefix("admin listening on ") {
                admin = Some(a.to_string());
            } else if line == "nitrofs ready" {
                break;
            }
        }
        Server {
            child,
            nfs: nfs.expect("an nfs line before ready"),
            admin: admin.expect("an admin line before ready"),
        }
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
    TcpStream::connect(&server.nfs).expect("the NFS port accepts connections");

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
