//! Helpers for the native KV protocol tests: spaces and users made with
//! `nitrofs admin`, Rust clients as root or as another identity, and a raw
//! blocking socket that speaks (or breaks) the frame format by hand.

use super::{Server, ROOT_ACCESS_KEY, ROOT_SECRET_KEY};
use nitrofs_kv_client::{ClientConfig, KvClient, KvError, Status};
use nitrofs_kv_wire::{auth, messages as m, msg, PROTOCOL_VERSION};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Output;
use std::time::{Duration, Instant};

/// stdout of a command, as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// stderr of a command, as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Fails the test unless the command exited with `code`.
pub fn assert_exit(o: &Output, code: i32, what: &str) {
    assert_eq!(
        o.status.code(),
        Some(code),
        "{what}: expected exit status {code}, got {}\nstdout: {}\nstderr: {}",
        o.status,
        stdout(o),
        stderr(o)
    );
}

/// Runs `nitrofs admin ARGS...`, fails the test unless it succeeds, returns stdout.
pub fn admin_ok(server: &Server, args: &[&str]) -> String {
    let o = server.admin(args);
    assert_exit(&o, 0, &format!("nitrofs admin {}", args.join(" ")));
    stdout(&o)
}

/// `nitrofs admin kv-space create NAME --capacity CAPACITY EXTRA...`; returns
/// what it printed.
pub fn create_space(server: &Server, name: &str, capacity: &str, extra: &[&str]) -> String {
    let mut args = vec!["kv-space", "create", name, "--capacity", capacity];
    args.extend_from_slice(extra);
    admin_ok(server, &args)
}

/// `nitrofs admin user add NAME --uid UID --gid GID`; returns `(access key, secret key)`
/// parsed from its `access key: …` and `secret key: …` lines.
pub fn add_user(server: &Server, name: &str, uid: u32, gid: u32) -> (String, String) {
    let (uid, gid) = (uid.to_string(), gid.to_string());
    let out = admin_ok(server, &["user", "add", name, "--uid", &uid, "--gid", &gid]);
    let field = |label: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(|v| v.trim().to_string())
            .unwrap_or_else(|| panic!("no `{label}` line in `user add` output:\n{out}"))
    };
    (field("access key:"), field("secret key:"))
}

/// A KV client connected to `server` as root.
pub async fn root_client(server: &Server) -> KvClient {
    client_as(server, ROOT_ACCESS_KEY, ROOT_SECRET_KEY)
        .await
        .expect("root connects to the KV endpoint")
}

/// A KV client connected to `server` with the given keys.
pub async fn client_as(server: &Server, access: &str, secret: &str) -> Result<KvClient, KvError> {
    KvClient::connect(ClientConfig::new(
        &server.kv_addr().to_string(),
        access,
        secret,
    ))
    .await
}

/// The server status of a call that must have failed with one.
pub fn server_status<T: std::fmt::Debug>(r: Result<T, KvError>, what: &str) -> Status {
    match r {
        Ok(v) => panic!("{what}: expected a failure status, got Ok({v:?})"),
        Err(e) => e
            .status()
            .unwrap_or_else(|| panic!("{what}: expected a server status, got {e:?}")),
    }
}

/// A frame as it came off the wire.
#[derive(Debug)]
pub struct RawFrame {
    pub kind: u8,
    pub msg: u16,
    pub status: u16,
    pub req_id: u64,
    pub header: Vec<u8>,
    pub payload: Vec<u8>,
}

/// The 28-byte fixed frame header, built by hand from the documented layout
/// (magic "NTF1", version 1, kind, msg, status, reserved, req_id,
/// header_len, payload_len; little-endian).
pub fn frame_header(kind: u8, msg: u16, req_id: u64, header_len: u32, payload_len: u32) -> Vec<u8> {
    let mut b = Vec::with_capacity(28);
    b.extend_from_slice(b"NTF1");
    b.push(1);
    b.push(kind);
    b.extend_from_slice(&msg.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&0u16.to_le_bytes());
    b.extend_from_slice(&req_id.to_le_bytes());
    b.extend_from_slice(&header_len.to_le_bytes());
    b.extend_from_slice(&payload_len.to_le_bytes());
    b
}

/// A blocking TCP connection to the KV port, driven frame by frame.
pub struct RawConn {
    stream: TcpStream,
    next_id: u64,
}

impl RawConn {
    /// Connects; every read gives up after `read_timeout`.
    pub fn connect(addr: SocketAddr) -> RawConn {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("connect to KV port {addr}: {e}"));
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set read timeout");
        stream
            .set_write_timeout(Some(Duration::from_secs(20)))
            .expect("set write timeout");
        RawConn { stream, next_id: 1 }
    }

    /// Writes bytes as they are (the peer may have closed: errors are returned).
    pub fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)?;
        self.stream.flush()
    }

    /// Sends a well-formed request frame; returns its request id.
    pub fn send_request(&mut self, msg: u16, header: &[u8], payload: &[u8]) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let mut b = frame_header(1, msg, id, header.len() as u32, payload.len() as u32);
        b.extend_from_slice(header);
        b.extend_from_slice(payload);
        self.send_raw(&b).expect("send request frame");
        id
    }

    /// Reads one whole frame.
    pub fn read_frame(&mut self) -> std::io::Result<RawFrame> {
        let mut fixed = [0u8; 28];
        self.stream.read_exact(&mut fixed)?;
        if &fixed[0..4] != b"NTF1" || fixed[4] != 1 {
            return Err(std::io::Error::other(format!(
                "response frame has a bad magic or version: {fixed:?}"
            )));
        }
        let u16_at = |i: usize| u16::from_le_bytes([fixed[i], fixed[i + 1]]);
        let u32_at = |i: usize| u32::from_le_bytes(fixed[i..i + 4].try_into().expect("4 bytes"));
        let req_id = u64::from_le_bytes(fixed[12..20].try_into().expect("8 bytes"));
        let mut header = vec![0u8; u32_at(20) as usize];
        self.stream.read_exact(&mut header)?;
        let mut payload = vec![0u8; u32_at(24) as usize];
        self.stream.read_exact(&mut payload)?;
        Ok(RawFrame {
            kind: fixed[5],
            msg: u16_at(6),
            status: u16_at(8),
            req_id,
            header,
            payload,
        })
    }

    /// Sends a request and reads its response (checking kind, msg and id).
    pub fn call(&mut self, msg: u16, header: &[u8], payload: &[u8]) -> RawFrame {
        let id = self.send_request(msg, header, payload);
        let f = self
            .read_frame()
            .unwrap_or_else(|e| panic!("no response to message {msg}: {e}"));
        assert_eq!(f.kind, 2, "responses have kind 2: {f:?}");
        assert_eq!(f.msg, msg, "the response names the request's message");
        assert_eq!(f.req_id, id, "the response echoes the request id");
        f
    }

    /// HELLO + AUTH by hand; returns the routing version the server sent.
    pub fn authenticate(&mut self, access: &str, secret: &str) -> u64 {
        let hello = m::Hello {
            version: PROTOCOL_VERSION,
            access_key: access,
        }
        .encode();
        let r = self.call(msg::HELLO, &hello, &[]);
        assert_eq!(r.status, 0, "HELLO answers Ok");
        let challenge = m::Challenge::decode(&r.header).expect("HELLO answer is a challenge");
        let mac = auth::answer(secret.as_bytes(), &challenge.nonce, access);
        let r = self.call(msg::AUTH, &m::Auth { mac }.encode(), &[]);
        assert_eq!(r.status, 0, "AUTH with the right secret answers Ok");
        m::decode_routing(&r.header)
            .expect("AUTH answer is a routing table")
            .version
    }

    /// Waits until the server closes the connection (a read returns 0 or a
    /// reset); returns how long it took, or `None` if it is still open at
    /// `within`. Any frames the server sends meanwhile are skipped.
    pub fn wait_closed(&mut self, within: Duration) -> Option<Duration> {
        let closed = self.poll_closed(within);
        self.stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("set read timeout");
        closed
    }

    fn poll_closed(&mut self, within: Duration) -> Option<Duration> {
        let start = Instant::now();
        let deadline = start + within;
        let mut buf = [0u8; 64 * 1024];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.stream
                .set_read_timeout(Some(left.min(Duration::from_millis(200))))
                .expect("set read timeout");
            match self.stream.read(&mut buf) {
                Ok(0) => return Some(start.elapsed()),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(_) => return Some(start.elapsed()),
            }
        }
    }
}
