//! Thin helpers over the `nfs3_client` crate: connect with a given AUTH_SYS
//! identity, and one function per NFSv3 call that returns `Result<_, nfsstat3>`
//! (transport errors fail the test: they are never an expected outcome).

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_client::nfs3_types::xdr_codec::Opaque;
use nfs3_client::{Nfs3Client, Nfs3Connection, Nfs3ConnectionBuilder};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use super::Server;

pub type Client = Nfs3Client<Io>;
pub type Conn = Nfs3Connection<Io>;

/// Largest READ/WRITE payload the tests send in one call.
pub const IO_SIZE: usize = 1 << 20;

/// A TCP stream for `nfs3_client` that reports end-of-stream as an error.
///
/// `nfs3_client` 0.9.1's `async_read_exact` loops forever when a read returns
/// 0 bytes, so with its own `TokioIo` a client waiting for a reply from a
/// server that closed the connection (crashed, restarted) spins instead of
/// failing. This wrapper turns that into `UnexpectedEof`.
pub struct Io(TcpStream);

impl nfs3_client::io::AsyncRead for Io {
    async fn async_read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.0.read(buf).await?;
        if n == 0 && !buf.is_empty() {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection",
            ));
        }
        Ok(n)
    }
}

impl nfs3_client::io::AsyncWrite for Io {
    async fn async_write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.write(buf).await
    }
}

/// Connects [`Io`] streams for `Nfs3ConnectionBuilder`.
pub struct Connector;

impl nfs3_client::net::Connector for Connector {
    type Connection = Io;

    async fn connect(&self, addr: SocketAddr) -> std::io::Result<Io> {
        Ok(Io(TcpStream::connect(addr).await?))
    }

    async fn connect_with_port(&self, addr: SocketAddr, local_port: u16) -> std::io::Result<Io> {
        let socket = TcpSocket::new_v4()?;
        socket.bind(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            local_port,
        ))?;
        Ok(Io(socket.connect(addr).await?))
    }
}

/// An AUTH_SYS credential for `uid`/`gid`.
pub fn auth_sys(uid: u32, gid: u32) -> opaque_auth<'static> {
    opaque_auth::auth_unix(&auth_unix {
        stamp: 0x4e49_5452,
        machinename: Opaque::borrowed(b"interop-tests"),
        uid,
        gid,
        gids: vec![gid],
    })
}

/// MOUNTs `/default` over the server's single port and returns the connection.
pub async fn mount(server: &Server, uid: u32, gid: u32) -> Conn {
    mount_path(server, "/default", uid, gid)
        .await
        .unwrap_or_else(|e| panic!("MOUNT /default as {uid}:{gid} failed: {e}"))
}

/// MOUNTs `path`; the error is returned so tests can check refusals.
pub async fn mount_path(
    server: &Server,
    path: &str,
    uid: u32,
    gid: u32,
) -> Result<Conn, nfs3_client::ConnectError> {
    mount_with(server, path, auth_sys(uid, gid)).await
}

/// MOUNTs `path` with an arbitrary credential (e.g. AUTH_NONE).
pub async fn mount_with(
    server: &Server,
    path: &str,
    credential: opaque_auth<'static>,
) -> Result<Conn, nfs3_client::ConnectError> {
    Nfs3ConnectionBuilder::new(Connector, "127.0.0.1", path)
        .connect_from_privileged_port(false)
        .mount_port(server.nfs_port)
        .nfs3_port(server.nfs_port)
        .credential(credential)
        .mount()
        .await
}

/// An NFS client on a new connection with no MOUNT call: what a client that
/// already holds file handles does when it reconnects.
pub async fn connect(server: &Server, uid: u32, gid: u32) -> Client {
    connect_port(server.nfs_port, uid, gid).await
}

/// Like [`connect`], from a port number (for spawned tasks).
pub async fn connect_port(port: u16, uid: u32, gid: u32) -> Client {
    let stream = TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap_or_else(|e| panic!("connect to 127.0.0.1:{port}: {e}"));
    Nfs3Client::new_with_auth(Io(stream), auth_sys(uid, gid), opaque_auth::default())
}

/// A raw stream for the other `nfs3_client` clients (portmap, mount).
pub async fn raw_io(server: &Server) -> Io {
    Io(TcpStream::connect(server.nfs_addr())
        .await
        .expect("connect to the NFS port"))
}

fn name(n: &str) -> filename3<'_> {
    filename3::from(n.as_bytes())
}

fn dirop<'a>(dir: &nfs_fh3, n: &'a str) -> diropargs3<'a> {
    diropargs3 {
        dir: dir.clone(),
        name: name(n),
    }
}

/// `sattr3` with only the mode set.
pub fn mode_attr(mode: u32) -> sattr3 {
    sattr3 {
        mode: Nfs3Option::Some(mode),
        ..Default::default()
    }
}

pub async fn getattr(c: &mut Client, fh: &nfs_fh3) -> Result<fattr3, nfsstat3> {
    let res = c
        .getattr(&GETATTR3args { object: fh.clone() })
        .await
        .expect("GETATTR transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok.obj_attributes),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn lookup(c: &mut Client, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3, nfsstat3> {
    let res = c
        .lookup(&LOOKUP3args {
            what: dirop(dir, n),
        })
        .await
        .expect("LOOKUP transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok.object),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// LOOKUP along a `/`-separated relative path.
pub async fn lookup_path(c: &mut Client, root: &nfs_fh3, path: &str) -> Result<nfs_fh3, nfsstat3> {
    let mut fh = root.clone();
    for part in path.split('/').filter(|p| !p.is_empty()) {
        fh = lookup(c, &fh, part).await?;
    }
    Ok(fh)
}

/// CREATE with the given mode; the handle comes from the reply or, if the
/// server omitted it, from a LOOKUP.
pub async fn create(
    c: &mut Client,
    dir: &nfs_fh3,
    n: &str,
    how: createhow3,
) -> Result<nfs_fh3, nfsstat3> {
    let res = c
        .create(&CREATE3args {
            where_: dirop(dir, n),
            how,
        })
        .await
        .expect("CREATE transport");
    match res {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => lookup(c, dir, n).await,
        },
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// GUARDED create of a new file with `mode`; fails the test on error.
pub async fn create_file(c: &mut Client, dir: &nfs_fh3, n: &str, mode: u32) -> nfs_fh3 {
    create(c, dir, n, createhow3::GUARDED(mode_attr(mode)))
        .await
        .unwrap_or_else(|e| panic!("CREATE {n} (mode {mode:o}): {e}"))
}

pub async fn try_mkdir(
    c: &mut Client,
    dir: &nfs_fh3,
    n: &str,
    attrs: sattr3,
) -> Result<nfs_fh3, nfsstat3> {
    let res = c
        .mkdir(&MKDIR3args {
            where_: dirop(dir, n),
            attributes: attrs,
        })
        .await
        .expect("MKDIR transport");
    match res {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => Ok(fh),
            Nfs3Option::None => lookup(c, dir, n).await,
        },
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// MKDIR with `mode`; fails the test on error.
pub async fn mkdir(c: &mut Client, dir: &nfs_fh3, n: &str, mode: u32) -> nfs_fh3 {
    try_mkdir(c, dir, n, mode_attr(mode))
        .await
        .unwrap_or_else(|e| panic!("MKDIR {n} (mode {mode:o}): {e}"))
}

pub async fn symlink(c: &mut Client, dir: &nfs_fh3, n: &str, target: &str) -> nfs_fh3 {
    let res = c
        .symlink(&SYMLINK3args {
            where_: dirop(dir, n),
            symlink: symlinkdata3 {
                symlink_attributes: mode_attr(0o777),
                symlink_data: nfspath3::from(target.as_bytes()),
            },
        })
        .await
        .expect("SYMLINK transport");
    match res {
        Nfs3Result::Ok(ok) => match ok.obj {
            Nfs3Option::Some(fh) => fh,
            Nfs3Option::None => lookup(c, dir, n)
                .await
                .unwrap_or_else(|e| panic!("LOOKUP new symlink {n}: {e}")),
        },
        Nfs3Result::Err((e, _)) => panic!("SYMLINK {n}: {e}"),
    }
}

pub async fn readlink(c: &mut Client, fh: &nfs_fh3) -> Result<Vec<u8>, nfsstat3> {
    let res = c
        .readlink(&READLINK3args {
            symlink: fh.clone(),
        })
        .await
        .expect("READLINK transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok.data.0.to_vec()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn remove(c: &mut Client, dir: &nfs_fh3, n: &str) -> Result<(), nfsstat3> {
    let res = c
        .remove(&REMOVE3args {
            object: dirop(dir, n),
        })
        .await
        .expect("REMOVE transport");
    match res {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn rename(
    c: &mut Client,
    from_dir: &nfs_fh3,
    from: &str,
    to_dir: &nfs_fh3,
    to: &str,
) -> Result<(), nfsstat3> {
    let res = c
        .rename(&RENAME3args {
            from: dirop(from_dir, from),
            to: dirop(to_dir, to),
        })
        .await
        .expect("RENAME transport");
    match res {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// LINK; returns the file's attributes from the reply, if the server sent them.
pub async fn link(
    c: &mut Client,
    file: &nfs_fh3,
    dir: &nfs_fh3,
    n: &str,
) -> Result<Option<fattr3>, nfsstat3> {
    let res = c
        .link(&LINK3args {
            file: file.clone(),
            link: dirop(dir, n),
        })
        .await
        .expect("LINK transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(match ok.file_attributes {
            Nfs3Option::Some(a) => Some(a),
            Nfs3Option::None => None,
        }),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn access(c: &mut Client, fh: &nfs_fh3, mask: u32) -> Result<u32, nfsstat3> {
    let res = c
        .access(&ACCESS3args {
            object: fh.clone(),
            access: mask,
        })
        .await
        .expect("ACCESS transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok.access),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn setattr(c: &mut Client, fh: &nfs_fh3, attrs: sattr3) -> Result<(), nfsstat3> {
    let res = c
        .setattr(&SETATTR3args {
            object: fh.clone(),
            new_attributes: attrs,
            guard: Nfs3Option::None,
        })
        .await
        .expect("SETATTR transport");
    match res {
        Nfs3Result::Ok(_) => Ok(()),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

pub async fn set_size(c: &mut Client, fh: &nfs_fh3, size: u64) {
    setattr(
        c,
        fh,
        sattr3 {
            size: Nfs3Option::Some(size),
            ..Default::default()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("SETATTR size={size}: {e}"));
}

/// One WRITE call.
pub async fn write(
    c: &mut Client,
    fh: &nfs_fh3,
    offset: u64,
    data: &[u8],
    stable: stable_how,
) -> Result<WRITE3resok, nfsstat3> {
    let res = c
        .write(&WRITE3args {
            file: fh.clone(),
            offset,
            count: u32::try_from(data.len()).expect("write fits u32"),
            stable,
            data: Opaque::borrowed(data),
        })
        .await
        .expect("WRITE transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// Writes all of `data` at `offset` in calls of at most `chunk` bytes, resending
/// the remainder after a short write. Returns every reply's verifier and
/// `committed` level, in order.
pub async fn write_all(
    c: &mut Client,
    fh: &nfs_fh3,
    offset: u64,
    data: &[u8],
    chunk: usize,
    stable: stable_how,
) -> Vec<(writeverf3, stable_how)> {
    let mut done = 0usize;
    let mut replies = Vec::new();
    // Bounded: every reply must write at least one byte.
    for _ in 0..data.len() {
        if done == data.len() {
            break;
        }
        let end = data.len().min(done + chunk);
        let ok = write(c, fh, offset + done as u64, &data[done..end], stable)
            .await
            .unwrap_or_else(|e| panic!("WRITE at {}: {e}", offset + done as u64));
        assert!(
            ok.count as usize <= end - done,
            "WRITE claims {} bytes written of {}",
            ok.count,
            end - done
        );
        assert!(
            ok.count > 0,
            "WRITE made no progress at {}",
            offset + done as u64
        );
        replies.push((ok.verf, ok.committed));
        done += ok.count as usize;
    }
    assert_eq!(done, data.len(), "write_all did not finish");
    replies
}

pub async fn commit(c: &mut Client, fh: &nfs_fh3) -> Result<writeverf3, nfsstat3> {
    let res = c
        .commit(&COMMIT3args {
            file: fh.clone(),
            offset: 0,
            count: 0,
        })
        .await
        .expect("COMMIT transport");
    match res {
        Nfs3Result::Ok(ok) => Ok(ok.verf),
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// One READ call: `(data, eof)`.
pub async fn read(
    c: &mut Client,
    fh: &nfs_fh3,
    offset: u64,
    count: u32,
) -> Result<(Vec<u8>, bool), nfsstat3> {
    let res = c
        .read(&READ3args {
            file: fh.clone(),
            offset,
            count,
        })
        .await
        .expect("READ transport");
    match res {
        Nfs3Result::Ok(ok) => {
            assert_eq!(
                ok.count as usize,
                ok.data.len(),
                "READ count field disagrees with the data length"
            );
            Ok((ok.data.to_vec(), ok.eof))
        }
        Nfs3Result::Err((e, _)) => Err(e),
    }
}

/// Reads the whole file (until EOF), at most `limit` bytes; fails on error.
pub async fn read_all(c: &mut Client, fh: &nfs_fh3, limit: usize) -> Vec<u8> {
    let mut out = Vec::new();
    // Bounded: each non-EOF reply must return data.
    for _ in 0..=(limit + 1) {
        let (data, eof) = read(c, fh, out.len() as u64, IO_SIZE as u32)
            .await
            .unwrap_or_else(|e| panic!("READ at {}: {e}", out.len()));
        out.extend_from_slice(&data);
        assert!(
            out.len() <= limit,
            "file is longer than the expected {limit} bytes"
        );
        if eof {
            return out;
        }
        assert!(
            !data.is_empty(),
            "READ returned no data and no EOF at {}",
            out.len()
        );
    }
    panic!("read_all did not reach EOF");
}

/// One READDIRPLUS entry.
#[derive(Debug, Clone)]
pub struct PlusEntry {
    pub name: String,
    pub fileid: u64,
    pub cookie: u64,
    pub attrs: Option<fattr3>,
    pub handle: Option<nfs_fh3>,
}

/// One READDIRPLUS reply: entries (including `.`/`..` if the server sends
/// them), the cookie verifier and EOF.
pub async fn readdirplus_page(
    c: &mut Client,
    dir: &nfs_fh3,
    cookie: u64,
    verf: cookieverf3,
    dircount: u32,
    maxcount: u32,
) -> Result<(Vec<PlusEntry>, cookieverf3, bool), nfsstat3> {
    let res = c
        .readdirplus(&READDIRPLUS3args {
            dir: dir.clone(),
            cookie,
            cookieverf: verf,
            dircount,
            maxcount,
        })
        .await
        .expect("READDIRPLUS transport");
    let ok = match res {
        Nfs3Result::Ok(ok) => ok,
        Nfs3Result::Err((e, _)) => return Err(e),
    };
    let entries = ok
        .reply
        .entries
        .into_inner()
        .into_iter()
        .map(|e| PlusEntry {
            name: String::from_utf8_lossy(e.name.as_ref()).into_owned(),
            fileid: e.fileid,
            cookie: e.cookie,
            attrs: match e.name_attributes {
                Nfs3Option::Some(a) => Some(a),
                Nfs3Option::None => None,
            },
            handle: match e.name_handle {
                Nfs3Option::Some(h) => Some(h),
                Nfs3Option::None => None,
            },
        })
        .collect();
    Ok((entries, ok.cookieverf, ok.reply.eof))
}

/// Lists a directory with READDIRPLUS, following cookies. Returns the entries
/// in server order without `.`/`..`, the final cookie verifier and the number
/// of replies it took. Fails on duplicates, errors and empty non-EOF pages.
pub async fn readdirplus_all(
    c: &mut Client,
    dir: &nfs_fh3,
    dircount: u32,
    maxcount: u32,
) -> (Vec<PlusEntry>, cookieverf3, usize) {
    let mut out: Vec<PlusEntry> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cookie = 0u64;
    let mut verf = cookieverf3::default();
    for page in 1..=10_000usize {
        let (entries, v, eof) = readdirplus_page(c, dir, cookie, verf, dircount, maxcount)
            .await
            .unwrap_or_else(|e| panic!("READDIRPLUS page {page} (cookie {cookie}): {e}"));
        verf = v;
        assert!(
            eof || !entries.is_empty(),
            "READDIRPLUS page {page} is empty but not at EOF"
        );
        for e in entries {
            cookie = e.cookie;
            if e.name == "." || e.name == ".." {
                continue;
            }
            assert!(
                seen.insert(e.name.clone()),
                "READDIRPLUS returned {:?} twice",
                e.name
            );
            out.push(e);
        }
        if eof {
            return (out, verf, page);
        }
    }
    panic!("READDIRPLUS did not reach EOF in 10000 pages");
}

/// Lists a directory with READDIR, following cookies; returns `(name, fileid)`
/// in server order without `.`/`..`, and the number of replies.
pub async fn readdir_all(c: &mut Client, dir: &nfs_fh3, count: u32) -> (Vec<(String, u64)>, usize) {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut cookie = 0u64;
    let mut verf = cookieverf3::default();
    for page in 1..=10_000usize {
        let res = c
            .readdir(&READDIR3args {
                dir: dir.clone(),
                cookie,
                cookieverf: verf,
                count,
            })
            .await
            .expect("READDIR transport");
        let ok = match res {
            Nfs3Result::Ok(ok) => ok,
            Nfs3Result::Err((e, _)) => panic!("READDIR page {page} (cookie {cookie}): {e}"),
        };
        verf = ok.cookieverf;
        let entries = ok.reply.entries.into_inner();
        let eof = ok.reply.eof;
        assert!(
            eof || !entries.is_empty(),
            "READDIR page {page} is empty but not at EOF"
        );
        for e in entries {
            let n = String::from_utf8_lossy(e.name.as_ref()).into_owned();
            cookie = e.cookie;
            if n == "." || n == ".." {
                continue;
            }
            assert!(seen.insert(n.clone()), "READDIR returned {n:?} twice");
            out.push((n, e.fileid));
        }
        if eof {
            return (out, page);
        }
    }
    panic!("READDIR did not reach EOF in 10000 pages");
}

/// Names in a directory (READDIR), sorted.
pub async fn list_names(c: &mut Client, dir: &nfs_fh3) -> Vec<String> {
    let (entries, _) = readdir_all(c, dir, 64 * 1024).await;
    let mut names: Vec<String> = entries.into_iter().map(|(n, _)| n).collect();
    names.sort();
    names
}
