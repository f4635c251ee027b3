//! Test harness shared by every interop test binary: starts the real `nitrofs`
//! binary on loopback in a fresh data directory, learns its ports from stdout,
//! stops it (SIGTERM), crashes it (SIGKILL) and restarts it on the same data.
//! The root identity has fixed keys ([`ROOT_ACCESS_KEY`], [`ROOT_SECRET_KEY`])
//! so tests can speak the native KV protocol as root.
//!
//! Every wait is bounded; nothing sleeps to synchronise (the server says
//! `nitrofs ready` on stdout and we read lines until it does).

#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod kv;
pub mod nfs;
pub mod rpc;

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long a server may take from spawn to `nitrofs ready` (debug build, fresh RocksDB).
pub const READY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a server may take to exit after SIGTERM.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// How long one `nitrofs admin` or `nitrofs kv` command may take.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);
/// Access key of the root identity of every test server (uid 0).
pub const ROOT_ACCESS_KEY: &str = "NITROFSROOTKEY00TEST";
/// Secret key of the root identity of every test server (40 characters).
pub const ROOT_SECRET_KEY: &str = "nitrofs-interop-root-secret-0123456789ab";
/// Poll interval while waiting for a process to exit (a bounded poll, not a sync sleep).
const POLL: Duration = Duration::from_millis(20);

/// The workspace root (`interop-tests/..`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("interop-tests has a parent directory")
        .to_path_buf()
}

/// The `nitrofs` binary under test: `$NITROFS_BIN`, else `<workspace>/target/debug/nitrofs`.
pub fn nitrofs_bin() -> PathBuf {
    let path = match std::env::var_os("NITROFS_BIN") {
        Some(p) => PathBuf::from(p),
        None => workspace_root().join("target/debug/nitrofs"),
    };
    assert!(
        path.is_file(),
        "the nitrofs binary was not found at {}: run `cargo build -p nitrofs` first \
         (scripts/test.sh does), or point NITROFS_BIN at a built binary",
        path.display()
    );
    path
}

/// Runs `cmd` to completion with a bounded wait, capturing stdout and stderr.
/// On timeout the process is killed and the test fails, naming the command.
pub fn run_with_timeout(cmd: &mut Command, timeout: Duration) -> Output {
    run_bounded(cmd, None, timeout)
}

/// Like [`run_with_timeout`], feeding `input` to the command's stdin (then
/// closing it).
pub fn run_with_input(cmd: &mut Command, input: &[u8], timeout: Duration) -> Output {
    run_bounded(cmd, Some(input.to_vec()), timeout)
}

fn run_bounded(cmd: &mut Command, input: Option<Vec<u8>>, timeout: Duration) -> Output {
    let desc = format!("{cmd:?}");
    let stdin = if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    };
    let mut child = cmd
        .stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {desc}: {e}"));
    // A thread writes stdin so a child that fills its stdout pipe first
    // cannot deadlock against us; dropping the handle closes the pipe.
    let in_writer = input.map(|data| {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        std::thread::spawn(move || {
            let _ = pipe.write_all(&data);
        })
    });
    let out_reader = drain_in_thread(child.stdout.take().expect("stdout is piped"));
    let err_reader = drain_in_thread(child.stderr.take().expect("stderr is piped"));
    let status = wait_bounded(&mut child, timeout);
    let status = match status {
        Some(s) => s,
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{desc} did not finish within {timeout:?}");
        }
    };
    if let Some(w) = in_writer {
        w.join().expect("stdin writer thread");
    }
    Output {
        status,
        stdout: out_reader.join().expect("stdout reader thread"),
        stderr: err_reader.join().expect("stderr reader thread"),
    }
}

fn drain_in_thread<R: Read + Send + 'static>(mut r: R) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        buf
    })
}

/// Polls `child` until it exits or `timeout` passes; `None` on timeout.
fn wait_bounded(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) => {}
            Err(e) => panic!("waiting for child {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(POLL);
    }
}

/// A running (or stopped) `nitrofs serve` on its own data directory.
pub struct Server {
    /// Holds the data directory and the captured logs; removed on drop.
    root: tempfile::TempDir,
    data_dir: PathBuf,
    child: Option<Child>,
    /// How many times the server has been started (names the log files).
    starts: u32,
    stderr_path: PathBuf,
    /// TOML config passed with `--config` on every start, if any.
    config: Option<PathBuf>,
    /// NFS + MOUNT + PORTMAP port of the current (or last) process.
    pub nfs_port: u16,
    /// Admin API port of the current (or last) process.
    pub admin_port: u16,
    /// Native KV port of the current (or last) process (a new one on every start).
    pub kv_port: u16,
}

impl Server {
    /// Starts a server on a fresh, empty data directory with OS-chosen ports.
    pub fn start() -> Server {
        Self::start_inner(None)
    }

    /// Like [`Server::start`], with `--config` pointing at a file holding `toml`
    /// (the flags still choose the data directory and ports).
    pub fn start_with_config(toml: &str) -> Server {
        Self::start_inner(Some(toml))
    }

    fn start_inner(toml: Option<&str>) -> Server {
        let root = tempfile::Builder::new()
            .prefix("nitrofs-interop-")
            .tempdir()
            .expect("create tempdir");
        let data_dir = root.path().join("data");
        std::fs::create_dir(&data_dir).expect("create data dir");
        let mut server = Server {
            stderr_path: root.path().join("server-0.stderr"),
            root,
            data_dir,
            child: None,
            config: None,
            starts: 0,
            nfs_port: 0,
            admin_port: 0,
            kv_port: 0,
        };
        if let Some(toml) = toml {
            server.write_config(toml);
        }
        if let Err(e) = server.spawn(0) {
            panic!("{e}");
        }
        server
    }

    /// Replaces the config file used from the next (re)start on.
    pub fn write_config(&mut self, toml: &str) {
        let path = self.root.path().join("nitrofs.toml");
        std::fs::write(&path, toml).expect("write config");
        self.config = Some(path);
    }

    /// The data directory the server runs on.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Where the current process's stderr is captured.
    pub fn stderr_path(&self) -> &Path {
        &self.stderr_path
    }

    /// The OS process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// `127.0.0.1:<nfs port>`.
    pub fn nfs_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.nfs_port))
    }

    /// `127.0.0.1:<admin port>`.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.admin_port))
    }

    /// `127.0.0.1:<kv port>`.
    pub fn kv_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.kv_port))
    }

    /// The root identity's `(access key, secret key)`.
    pub fn root_keys(&self) -> (&'static str, &'static str) {
        (ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
    }

    /// libnfs URL for `path` (relative, no leading slash) in volume `default`.
    pub fn nfs_url(&self, path: &str) -> String {
        self.nfs_url_in("default", path)
    }

    /// libnfs URL for `path` (relative, may be empty) in `volume`.
    pub fn nfs_url_in(&self, volume: &str, path: &str) -> String {
        let p = self.nfs_port;
        let slash = if path.is_empty() { "" } else { "/" };
        format!("nfs://127.0.0.1/{volume}{slash}{path}?version=3&nfsport={p}&mountport={p}")
    }

    /// Spawns `nitrofs serve` and waits (bounded) for `nitrofs ready`.
    /// Returns a description of the failure (with the server's stderr) on error.
    fn spawn(&mut self, nfs_port: u16) -> Result<(), String> {
        assert!(self.child.is_none(), "server already running");
        self.stderr_path = self
            .root
            .path()
            .join(format!("server-{}.stderr", self.starts));
        self.starts += 1;
        let stderr = File::create(&self.stderr_path).expect("create stderr log");
        let mut cmd = Command::new(nitrofs_bin());
        cmd.arg("serve");
        if let Some(config) = &self.config {
            cmd.arg("--config").arg(config);
        }
        let mut child = cmd
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--nfs-addr")
            .arg(format!("127.0.0.1:{nfs_port}"))
            .arg("--admin-addr")
            .arg("127.0.0.1:0")
            // Port 0: parallel servers must not all claim the default 9000.
            .arg("--s3-addr")
            .arg("127.0.0.1:0")
            .arg("--kv-addr")
            .arg("127.0.0.1:0")
            .env("NITROFS_ROOT_ACCESS_KEY", ROOT_ACCESS_KEY)
            .env("NITROFS_ROOT_SECRET_KEY", ROOT_SECRET_KEY)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .map_err(|e| format!("cannot spawn nitrofs: {e}"))?;

        // A thread reads stdout for the whole life of the process (so the pipe never
        // fills) and forwards lines; we stop listening once the server is ready.
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel::<String>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let _ = tx.send(line);
            }
        });

        let deadline = Instant::now() + READY_TIMEOUT;
        let mut nfs = None;
        let mut admin = None;
        let mut kv = None;
        let mut seen = Vec::new();
        let outcome = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(a) = line.strip_prefix("nfs listening on ") {
                        nfs = a.trim().parse::<SocketAddr>().ok();
                    } else if let Some(a) = line.strip_prefix("admin listening on ") {
                        admin = a.trim().parse::<SocketAddr>().ok();
                    } else if let Some(a) = line.strip_prefix("kv listening on ") {
                        kv = a.trim().parse::<SocketAddr>().ok();
                    } else if line.trim() == "nitrofs ready" {
                        break Ok(());
                    }
                    seen.push(line);
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    break Err(format!("no `nitrofs ready` within {READY_TIMEOUT:?}"));
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    break Err("stdout closed before `nitrofs ready`".to_string());
                }
            }
        };
        let outcome = outcome.and_then(|()| match (nfs, admin, kv) {
            (Some(n), Some(a), Some(k)) => Ok((n, a, k)),
            _ => Err(
                "`nitrofs ready` came before all of the `nfs listening on`, \
                      `admin listening on` and `kv listening on` lines"
                    .to_string(),
            ),
        });
        match outcome {
            Ok((n, a, k)) => {
                self.nfs_port = n.port();
                self.admin_port = a.port();
                self.kv_port = k.port();
                self.child = Some(child);
                Ok(())
            }
            Err(why) => {
                let _ = child.kill();
                let status = child.wait().ok();
                Err(format!(
                    "nitrofs serve failed to start: {why}; exit status {status:?}\n\
                     stdout so far: {seen:#?}\nstderr ({}):\n{}",
                    self.stderr_path.display(),
                    self.stderr_tail(200)
                ))
            }
        }
    }

    /// The last `lines` lines of the current stderr log.
    pub fn stderr_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.stderr_path).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Fails the test if the server process has exited.
    pub fn assert_alive(&mut self) {
        let child = self.child.as_mut().expect("server was started");
        if let Some(status) = child.try_wait().expect("try_wait") {
            panic!(
                "nitrofs exited unexpectedly with {status}; stderr:\n{}",
                self.stderr_tail(200)
            );
        }
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit; fails the test if the
    /// server does not stop in time or exits unsuccessfully.
    pub fn stop(&mut self) {
        let mut child = self.child.take().expect("server is running");
        signal(child.id(), "-TERM");
        match wait_bounded(&mut child, STOP_TIMEOUT) {
            Some(status) => assert!(
                status.success(),
                "nitrofs did not exit cleanly on SIGTERM: {status}; stderr:\n{}",
                self.stderr_tail(200)
            ),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "nitrofs did not exit within {STOP_TIMEOUT:?} of SIGTERM; stderr:\n{}",
                    self.stderr_tail(200)
                );
            }
        }
    }

    /// Crashes the server with `kill -9` and reaps it.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("server is running");
        signal(child.id(), "-KILL");
        let status = wait_bounded(&mut child, STOP_TIMEOUT).unwrap_or_else(|| {
            let _ = child.kill();
            child.wait().expect("reap nitrofs")
        });
        assert!(
            !status.success(),
            "kill -9 should not look like a clean exit"
        );
    }

    /// Starts the server again on the same data directory (stopping it with
    /// SIGTERM first if it is still running). Re-binds the previous NFS port so
    /// clients can reconnect to the same address; if that port was taken in the
    /// meantime, falls back to a new one.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            self.stop();
        }
        let previous = self.nfs_port;
        if let Err(first) = self.spawn(previous) {
            if !first.contains("in use") {
                panic!("{first}");
            }
            eprintln!("port {previous} was taken; restarting on a new port");
            if let Err(e) = self.spawn(0) {
                panic!("{e}");
            }
        }
    }

    /// Runs `nitrofs admin --admin-addr <this server> ARGS...`.
    pub fn admin(&self, args: &[&str]) -> Output {
        run_with_timeout(
            Command::new(nitrofs_bin())
                .arg("admin")
                .arg("--admin-addr")
                .arg(self.admin_addr().to_string())
                .args(args),
            COMMAND_TIMEOUT,
        )
    }

    /// Runs `nitrofs kv --addr <this server> ARGS...` as root.
    pub fn kv(&self, args: &[&str]) -> Output {
        self.kv_as((ROOT_ACCESS_KEY, ROOT_SECRET_KEY), args)
    }

    /// Runs `nitrofs kv ARGS...` as root with `input` on its stdin.
    pub fn kv_with_input(&self, args: &[&str], input: &[u8]) -> Output {
        run_with_input(
            &mut self.kv_command((ROOT_ACCESS_KEY, ROOT_SECRET_KEY), args),
            input,
            COMMAND_TIMEOUT,
        )
    }

    /// Runs `nitrofs kv ARGS...` with the key pair `keys` (access, secret).
    pub fn kv_as(&self, keys: (&str, &str), args: &[&str]) -> Output {
        run_with_timeout(&mut self.kv_command(keys, args), COMMAND_TIMEOUT)
    }

    fn kv_command(&self, (access, secret): (&str, &str), args: &[&str]) -> Command {
        let mut cmd = Command::new(nitrofs_bin());
        cmd.arg("kv")
            .arg("--addr")
            .arg(self.kv_addr().to_string())
            .arg("--access-key")
            .arg(access)
            .arg("--secret-key")
            .arg(secret)
            .args(args)
            // The flags, not whatever the developer's shell exports, decide.
            .env_remove("NITROFS_KV_ADDR")
            .env_remove("NITROFS_ACCESS_KEY")
            .env_remove("NITROFS_SECRET_KEY");
        cmd
    }
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(sig)
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {sig} {pid} failed");
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!(
                "---- nitrofs stderr ({}), last 100 lines ----\n{}\n----",
                self.stderr_path.display(),
                self.stderr_tail(100)
            );
        }
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-TERM")
                .arg(child.id().to_string())
                .status();
            if wait_bounded(&mut child, STOP_TIMEOUT).is_none() {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Runs an async test body on a fresh multi-threaded runtime with an overall
/// deadline, so a hung server fails the test instead of hanging the suite.
pub fn block_on<F: std::future::Future<Output = ()>>(limit: Duration, body: F) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("build tokio runtime");
    rt.block_on(async {
        if tokio::time::timeout(limit, body).await.is_err() {
            panic!("test did not finish within {limit:?} (server hung?)");
        }
    });
}

/// Deterministic pseudo-random bytes (splitmix64), fast even in a debug build.
pub struct PatternRng(u64);

impl PatternRng {
    pub fn new(seed: u64) -> Self {
        PatternRng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut chunks = buf.chunks_exact_mut(8);
        for c in &mut chunks {
            c.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = chunks.into_remainder();
        let last = self.next_u64().to_le_bytes();
        let n = rest.len();
        rest.copy_from_slice(&last[..n]);
    }

    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.fill(&mut v);
        v
    }
}

/// Hex sha256 of a byte slice.
pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex(&sha2::Sha256::digest(data))
}

/// Hex sha256 of a file's contents, streamed.
pub fn sha256_file(path: &Path) -> (String, u64) {
    use sha2::Digest;
    let mut f = File::open(path).unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
    let mut h = sha2::Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = f.read(&mut buf).expect("read file");
        if n == 0 {
            break;
        }
        total += n as u64;
        h.update(&buf[..n]);
    }
    (hex(&h.finalize()), total)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
