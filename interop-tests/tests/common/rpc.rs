//! Hand-rolled ONC-RPC over raw TCP (RFC 5531 record marking and reply
//! parsing), for traffic a normal client library would never send.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use super::Server;

pub const NFS_PROG: u32 = 100_003;
pub const MOUNT_PROG: u32 = 100_005;
pub const PMAP_PROG: u32 = 100_000;

pub const SUCCESS: u32 = 0;
pub const PROG_UNAVAIL: u32 = 1;
pub const PROG_MISMATCH: u32 = 2;
pub const PROC_UNAVAIL: u32 = 3;
pub const GARBAGE_ARGS: u32 = 4;

pub const RPC_MISMATCH: u32 = 0;
pub const AUTH_ERROR: u32 = 1;

/// How long we wait for a reply or a close before calling the server silent.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

pub fn put(buf: &mut Vec<u8>, v: u32) {
    buf.extend_from_slice(&v.to_be_bytes());
}

/// XDR opaque<>: length, bytes, zero padding to 4.
pub fn put_opaque(buf: &mut Vec<u8>, data: &[u8]) {
    put(buf, data.len() as u32);
    buf.extend_from_slice(data);
    buf.resize(buf.len() + (4 - data.len() % 4) % 4, 0);
}

/// An RPC CALL message body (no record mark) with AUTH_NONE and `args` appended.
pub fn call(xid: u32, rpcvers: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    let mut b = Vec::new();
    for v in [xid, 0, rpcvers, prog, vers, proc_, 0, 0, 0, 0] {
        put(&mut b, v);
    }
    b.extend_from_slice(args);
    b
}

pub fn nfs_call(xid: u32, proc_: u32, args: &[u8]) -> Vec<u8> {
    call(xid, 2, NFS_PROG, 3, proc_, args)
}

/// An NFSv3 CALL with an AUTH_SYS credential for `uid`/`gid`.
pub fn nfs_call_sys(xid: u32, proc_: u32, uid: u32, gid: u32, args: &[u8]) -> Vec<u8> {
    let mut cred = Vec::new();
    put(&mut cred, 0); // stamp
    put_opaque(&mut cred, b"raw");
    put(&mut cred, uid);
    put(&mut cred, gid);
    put(&mut cred, 0); // no supplementary groups
    let mut b = Vec::new();
    for v in [xid, 0, 2, NFS_PROG, 3, proc_, 1] {
        put(&mut b, v);
    }
    put_opaque(&mut b, &cred);
    put(&mut b, 0);
    put(&mut b, 0);
    b.extend_from_slice(args);
    b
}

pub fn null_call(xid: u32) -> Vec<u8> {
    nfs_call(xid, 0, &[])
}

/// One record, one fragment, last-fragment bit set.
pub fn record(body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + 4);
    put(&mut r, 0x8000_0000 | body.len() as u32);
    r.extend_from_slice(body);
    r
}

pub fn raw_connect(server: &Server) -> TcpStream {
    let s = TcpStream::connect(server.nfs_addr()).expect("connect to the NFS port");
    s.set_read_timeout(Some(REPLY_TIMEOUT))
        .expect("set_read_timeout");
    s.set_write_timeout(Some(REPLY_TIMEOUT))
        .expect("set_write_timeout");
    s.set_nodelay(true).expect("nodelay");
    s
}

#[derive(Debug)]
pub enum Incoming {
    Record(Vec<u8>),
    Closed,
    Silent,
}

pub fn classify(e: &std::io::Error) -> Incoming {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::TimedOut => Incoming::Silent,
        _ => Incoming::Closed, // EOF, reset, broken pipe: the server dropped us
    }
}

/// Sends bytes; a failure to send means the server already closed the connection.
pub fn send(s: &mut TcpStream, bytes: &[u8]) -> bool {
    s.write_all(bytes).is_ok()
}

/// Reads one record (all its fragments), bounded in size and fragment count.
pub fn read_record(s: &mut TcpStream) -> Incoming {
    let mut out = Vec::new();
    for _ in 0..1024 {
        let mut mark = [0u8; 4];
        if let Err(e) = s.read_exact(&mut mark) {
            return classify(&e);
        }
        let mark = u32::from_be_bytes(mark);
        let len = (mark & 0x7fff_ffff) as usize;
        assert!(len <= 16 << 20, "server sent a {len}-byte reply fragment");
        let start = out.len();
        out.resize(start + len, 0);
        if let Err(e) = s.read_exact(&mut out[start..]) {
            return classify(&e);
        }
        if mark & 0x8000_0000 != 0 {
            return Incoming::Record(out);
        }
    }
    panic!("reply with more than 1024 fragments");
}

#[derive(Debug, PartialEq, Eq)]
pub enum Body {
    /// MSG_ACCEPTED: accept_stat, mismatch range for PROG_MISMATCH, results.
    Accepted {
        stat: u32,
        range: Option<(u32, u32)>,
        results: Vec<u8>,
    },
    /// MSG_DENIED: reject_stat and its two (or one) following words.
    Denied { reject: u32, detail: Vec<u32> },
}

#[derive(Debug)]
pub struct Reply {
    pub xid: u32,
    pub body: Body,
}

struct Cursor<'a> {
    b: &'a [u8],
    at: usize,
}

impl Cursor<'_> {
    fn u32(&mut self) -> Option<u32> {
        let w = self.b.get(self.at..self.at + 4)?;
        self.at += 4;
        Some(u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
    }
}

/// Parses an RPC reply per RFC 5531; `Err` describes what is malformed.
pub fn parse_reply(rec: &[u8]) -> Result<Reply, String> {
    let mut c = Cursor { b: rec, at: 0 };
    let short = || format!("reply too short: {rec:02x?}");
    let xid = c.u32().ok_or_else(short)?;
    let mtype = c.u32().ok_or_else(short)?;
    if mtype != 1 {
        return Err(format!("msg_type {mtype} is not REPLY(1)"));
    }
    let rstat = c.u32().ok_or_else(short)?;
    match rstat {
        0 => {
            let _flavor = c.u32().ok_or_else(short)?;
            let vlen = c.u32().ok_or_else(short)? as usize;
            if vlen > 400 {
                return Err(format!("verifier length {vlen} > 400"));
            }
            c.at += vlen.div_ceil(4) * 4;
            let stat = c.u32().ok_or_else(short)?;
            let range = if stat == PROG_MISMATCH {
                Some((c.u32().ok_or_else(short)?, c.u32().ok_or_else(short)?))
            } else {
                None
            };
            let results = rec.get(c.at..).unwrap_or_default().to_vec();
            Ok(Reply {
                xid,
                body: Body::Accepted {
                    stat,
                    range,
                    results,
                },
            })
        }
        1 => {
            let reject = c.u32().ok_or_else(short)?;
            let mut detail = Vec::new();
            while let Some(w) = c.u32() {
                detail.push(w);
            }
            Ok(Reply {
                xid,
                body: Body::Denied { reject, detail },
            })
        }
        other => Err(format!("reply_stat {other} is neither ACCEPTED nor DENIED")),
    }
}

/// Sends `body` as one record and returns the server's reply, which must come
/// (no close, no silence) and must carry `xid`.
pub fn must_reply(s: &mut TcpStream, body: &[u8]) -> Reply {
    let xid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
    assert!(
        send(s, &record(body)),
        "server closed the connection before the call"
    );
    match read_record(s) {
        Incoming::Record(r) => {
            let reply = parse_reply(&r).unwrap_or_else(|e| panic!("malformed reply: {e}"));
            assert_eq!(reply.xid, xid, "reply xid matches the call");
            reply
        }
        other => panic!("expected a reply to xid {xid:#x}, got {other:?}"),
    }
}

pub fn accept_stat(r: &Reply) -> u32 {
    match &r.body {
        Body::Accepted { stat, .. } => *stat,
        Body::Denied { .. } => panic!("expected MSG_ACCEPTED, got {r:?}"),
    }
}

/// A NULL call on this connection succeeds.
pub fn null_works_on(s: &mut TcpStream, xid: u32) {
    let r = must_reply(s, &null_call(xid));
    assert_eq!(accept_stat(&r), SUCCESS, "NULL call: {r:?}");
}
