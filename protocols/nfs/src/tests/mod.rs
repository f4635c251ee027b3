//! End-to-end tests: the server on 127.0.0.1:0 over an in-memory metadata
//! store and a local chunk store in a temporary directory, driven with raw
//! ONC-RPC records. This file holds the harness and a small client; the
//! tests are grouped by what they exercise.

mod durability;
mod files;
mod policy;
mod retransmit;
mod wire;

use crate::export::{ClientSpec, ExportOptions, ExportPolicy};
use crate::rpc::tests::{call, sys_cred};
use crate::server::NfsServer;
use nfs3_types::mount::{exports, mountres3};
use nfs3_types::nfs3::*;
use nfs3_types::rpc::opaque_auth;
use nfs3_types::xdr_codec::{Opaque, Pack, Unpack};
use nitrofs_core_fs::{Credentials, FileSystem, FsOptions, SetAttr};
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A filesystem on MemKv + LocalChunkStore in a temp dir.
pub(crate) fn test_fs() -> (tempfile::TempDir, Arc<FileSystem>) {
    test_fs_on(Arc::new(nitrofs_metadata::MemKv::new()))
}

/// A filesystem on `kv` + LocalChunkStore in a temp dir.
pub(crate) fn test_fs_on(
    kv: Arc<dyn nitrofs_metadata::MetaKv>,
) -> (tempfile::TempDir, Arc<FileSystem>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let chunks = nitrofs_chunk_store::LocalChunkStore::open(&dir.path().join("chunks"))
        .expect("chunk store");
    let fs = FileSystem::open(kv, Arc::new(chunks), FsOptions::default()).expect("open fs");
    (dir, Arc::new(fs))
}

/// A running server and what a test needs to reach it.
struct Harness {
    _dir: tempfile::TempDir,
    fs: Arc<FileSystem>,
    addr: SocketAddr,
}

async fn start(policy: ExportPolicy) -> Harness {
    let (dir, fs) = test_fs();
    start_on(dir, fs, policy).await
}

async fn start_on(dir: tempfile::TempDir, fs: Arc<FileSystem>, policy: ExportPolicy) -> Harness {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = Arc::new(NfsServer::new(fs.clone(), Arc::new(policy)));
    tokio::spawn(server.serve(listener));
    Harness {
        _dir: dir,
        fs,
        addr,
    }
}

/// A decoded reply.
#[derive(Debug)]
enum Answer {
    /// MSG_ACCEPTED with its accept_stat and the bytes after it.
    Accepted(u32, Vec<u8>),
    /// MSG_DENIED with the bytes after reply_stat.
    Denied(Vec<u8>),
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn parse_reply(rec: &[u8]) -> (u32, Answer) {
    let xid = be32(rec, 0);
    assert_eq!(be32(rec, 4), 1, "not a REPLY");
    match be32(rec, 8) {
        0 => {
            let verf_len = be32(rec, 16) as usize;
            let at = 20 + verf_len.div_ceil(4) * 4;
            (xid, Answer::Accepted(be32(rec, at), rec[at + 4..].to_vec()))
        }
        _ => (xid, Answer::Denied(rec[12..].to_vec())),
    }
}

struct Client {
    sock: TcpStream,
    next_xid: u32,
    cred: opaque_auth<'static>,
}

/// `record` as one last fragment on the wire (record marking).
fn framed(record: &[u8]) -> Vec<u8> {
    let mut wire = (record.len() as u32 | 0x8000_0000).to_be_bytes().to_vec();
    wire.extend_from_slice(record);
    wire
}

impl Client {
    async fn connect(addr: SocketAddr) -> Self {
        let sock = TcpStream::connect(addr).await.expect("connect");
        Self {
            sock,
            next_xid: 1,
            cred: sys_cred(0, 0, vec![]),
        }
    }

    async fn send_raw(&mut self, record: &[u8]) {
        self.sock.write_all(&framed(record)).await.expect("send");
    }

    async fn recv_raw(&mut self) -> Option<Vec<u8>> {
        let mut rec = Vec::new();
        loop {
            let mut h = [0u8; 4];
            if self.sock.read_exact(&mut h).await.is_err() {
                return None;
            }
            let w = u32::from_be_bytes(h);
            let start = rec.len();
            rec.resize(start + (w & 0x7fff_ffff) as usize, 0);
            self.sock.read_exact(&mut rec[start..]).await.ok()?;
            if w & 0x8000_0000 != 0 {
                return Some(rec);
            }
        }
    }

    fn record(&mut self, prog: u32, vers: u32, proc_num: u32, args: &[u8]) -> (u32, Vec<u8>) {
        let xid = self.next_xid;
        self.next_xid += 1;
        let mut rec = call(xid, prog, vers, proc_num, self.cred.borrow());
        rec.extend_from_slice(args);
        (xid, rec)
    }

    /// An NFSv3 call record of `proc_num` with `args` packed; its xid.
    fn nfs_record<A: Pack>(&mut self, proc_num: u32, args: &A) -> (u32, Vec<u8>) {
        let mut packed = Vec::new();
        args.pack(&mut packed).expect("pack args");
        self.record(PROGRAM, VERSION, proc_num, &packed)
    }

    async fn raw_call(&mut self, prog: u32, vers: u32, proc_num: u32, args: &[u8]) -> Answer {
        let (xid, rec) = self.record(prog, vers, proc_num, args);
        self.send_raw(&rec).await;
        let reply = self.recv_raw().await.expect("reply");
        let (rxid, answer) = parse_reply(&reply);
        assert_eq!(rxid, xid);
        answer
    }

    /// A successful call's results, decoded.
    async fn call<A: Pack, R: Unpack>(&mut self, prog: u32, proc_num: u32, args: &A) -> R {
        let mut buf = Vec::new();
        args.pack(&mut buf).expect("pack args");
        let vers = if prog == 100_000 { 2 } else { 3 };
        match self.raw_call(prog, vers, proc_num, &buf).await {
            Answer::Accepted(0, body) => {
                let (r, n) = R::unpack(&mut &body[..]).expect("decode results");
                assert_eq!(n, body.len(), "trailing bytes in reply");
                r
            }
            other => panic!("call failed: {other:?}"),
        }
    }

    async fn nfs<A: Pack, R: Unpack>(&mut self, proc_num: u32, args: &A) -> R {
        self.call(PROGRAM, proc_num, args).await
    }

    async fn mount(&mut self, path: &str) -> mountres3<'static> {
        let arg = nfs3_types::mount::dirpath(Opaque::owned(path.as_bytes().to_vec()));
        self.call(nfs3_types::mount::PROGRAM, 1, &arg).await
    }

    async fn root(&mut self) -> nfs_fh3 {
        match self.mount("/default").await {
            mountres3::Ok(ok) => nfs_fh3 {
                data: Opaque::owned(ok.fhandle.0.to_vec()),
            },
            mountres3::Err(e) => panic!("mount failed: {e}"),
        }
    }

    async fn create(&mut self, dir: &nfs_fh3, name: &str, how: createhow3) -> CREATE3res {
        self.nfs(8, &create_args(dir, name, how)).await
    }

    async fn mkdir(&mut self, dir: &nfs_fh3, name: &str) -> MKDIR3res {
        let args = MKDIR3args {
            where_: diropargs3 {
                dir: dir.clone(),
                name: name.as_bytes().into(),
            },
            attributes: sattr3::default(),
        };
        self.nfs(9, &args).await
    }

    async fn create_file(&mut self, dir: &nfs_fh3, name: &str) -> nfs_fh3 {
        match self
            .create(dir, name, createhow3::GUARDED(sattr3::default()))
            .await
        {
            Nfs3Result::Ok(ok) => ok.obj.unwrap(),
            Nfs3Result::Err((s, _)) => panic!("create {name}: {s}"),
        }
    }

    async fn getattr(&mut self, fh: &nfs_fh3) -> GETATTR3res {
        self.nfs(1, &GETATTR3args { object: fh.clone() }).await
    }

    async fn write(
        &mut self,
        fh: &nfs_fh3,
        offset: u64,
        data: &[u8],
        stable: stable_how,
    ) -> WRITE3res {
        let args = WRITE3args {
            file: fh.clone(),
            offset,
            count: data.len() as u32,
            stable,
            data: Opaque::borrowed(data),
        };
        self.nfs(7, &args).await
    }

    async fn read(&mut self, fh: &nfs_fh3, offset: u64, count: u32) -> READ3res<'static> {
        let args = READ3args {
            file: fh.clone(),
            offset,
            count,
        };
        self.nfs(6, &args).await
    }
}

/// The arguments of a CREATE of `name` in `dir`.
fn create_args<'a>(dir: &nfs_fh3, name: &'a str, how: createhow3) -> CREATE3args<'a> {
    CREATE3args {
        where_: diropargs3 {
            dir: dir.clone(),
            name: name.as_bytes().into(),
        },
        how,
    }
}

fn stat_of<T, E>(r: &Nfs3Result<T, E>) -> nfsstat3 {
    match r {
        Nfs3Result::Ok(_) => nfsstat3::NFS3_OK,
        Nfs3Result::Err((s, _)) => *s,
    }
}
