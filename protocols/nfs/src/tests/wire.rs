//! RPC-level behaviour: PORTMAP, malformed calls, record marking and
//! pipelining.

use super::*;
use std::time::Duration;

#[tokio::test]
async fn portmap_getport_answers_our_port_for_nfs_and_mount() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let ask = |prog, vers| nfs3_types::portmap::mapping {
        prog,
        vers,
        prot: 6,
        port: 0,
    };
    let port: u32 = c.call(100_000, 3, &ask(100_003, 3)).await;
    assert_eq!(port, u32::from(h.addr.port()));
    let port: u32 = c.call(100_000, 3, &ask(100_005, 3)).await;
    assert_eq!(port, u32::from(h.addr.port()));
    let port: u32 = c.call(100_000, 3, &ask(100_021, 4)).await;
    assert_eq!(port, 0);
    // Portmap is version 2; v3 of this call is a mismatch.
    let mut buf = Vec::new();
    ask(100_003, 3).pack(&mut buf).expect("pack");
    assert!(matches!(
        c.raw_call(100_000, 2, 3, &buf).await,
        Answer::Accepted(0, _)
    ));
    assert!(matches!(
        c.raw_call(100_000, 2, 4, &[]).await,
        Answer::Accepted(3, _)
    ));
}

#[tokio::test]
async fn malformed_calls_get_rpc_errors_and_the_connection_survives() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;

    // Unknown program, wrong versions, unknown procedure.
    assert!(matches!(
        c.raw_call(200_000, 1, 0, &[]).await,
        Answer::Accepted(1, _)
    ));
    let Answer::Accepted(2, range) = c.raw_call(PROGRAM, 2, 0, &[]).await else {
        panic!("NFSv2 not a mismatch");
    };
    assert_eq!(range, [0, 0, 0, 3, 0, 0, 0, 3]);
    let Answer::Accepted(2, range) = c.raw_call(100_005, 1, 0, &[]).await else {
        panic!("MOUNTv1 not a mismatch");
    };
    assert_eq!(range, [0, 0, 0, 3, 0, 0, 0, 3]);
    assert!(matches!(
        c.raw_call(PROGRAM, 3, 99, &[]).await,
        Answer::Accepted(3, _)
    ));

    // Truncated arguments: GARBAGE_ARGS.
    let mut args = Vec::new();
    GETATTR3args {
        object: root.clone(),
    }
    .pack(&mut args)
    .expect("pack");
    assert!(matches!(
        c.raw_call(PROGRAM, 3, 1, &args[..args.len() - 2]).await,
        Answer::Accepted(4, _)
    ));
    // A WRITE whose count exceeds its data.
    let mut w = Vec::new();
    WRITE3args {
        file: root.clone(),
        offset: 0,
        count: 100,
        stable: stable_how::UNSTABLE,
        data: Opaque::borrowed(b"abc"),
    }
    .pack(&mut w)
    .expect("pack");
    assert!(matches!(
        c.raw_call(PROGRAM, 3, 7, &w).await,
        Answer::Accepted(4, _)
    ));

    // A handle that is not ours: BADHANDLE.
    let bogus = nfs_fh3 {
        data: Opaque::owned(vec![9; 17]),
    };
    assert_eq!(
        stat_of(&c.getattr(&bogus).await),
        nfsstat3::NFS3ERR_BADHANDLE
    );

    // Unsupported credential flavor: AUTH_TOOWEAK; garbled AUTH_SYS: AUTH_BADCRED.
    let saved = c.cred.clone();
    c.cred = opaque_auth {
        flavor: nfs3_types::rpc::auth_flavor::AUTH_DES,
        body: Opaque::owned(vec![]),
    };
    let Answer::Denied(why) = c.raw_call(PROGRAM, 3, 1, &args).await else {
        panic!("DES accepted")
    };
    assert_eq!(why, [0, 0, 0, 1, 0, 0, 0, 5]);
    c.cred = opaque_auth {
        flavor: nfs3_types::rpc::auth_flavor::AUTH_UNIX,
        body: Opaque::owned(vec![0, 0, 0, 1, 0, 0]),
    };
    let Answer::Denied(why) = c.raw_call(PROGRAM, 3, 1, &args).await else {
        panic!("bad cred accepted")
    };
    assert_eq!(why, [0, 0, 0, 1, 0, 0, 0, 1]);
    c.cred = saved;

    // RPC version 3: RPC_MISMATCH.
    let (_, mut rec) = c.record(PROGRAM, 3, 0, &[]);
    rec[11] = 3;
    c.send_raw(&rec).await;
    let (_, answer) = parse_reply(&c.recv_raw().await.expect("reply"));
    let Answer::Denied(why) = answer else {
        panic!("rpc v3 accepted")
    };
    assert_eq!(why, [0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 2]);

    // Still serving.
    assert_eq!(stat_of(&c.getattr(&root).await), nfsstat3::NFS3_OK);
}

#[tokio::test]
async fn calls_split_into_fragments_are_reassembled() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let mut args = Vec::new();
    GETATTR3args { object: root }.pack(&mut args).expect("pack");
    let (xid, rec) = c.record(PROGRAM, 3, 1, &args);
    let mut wire = Vec::new();
    for (i, part) in rec.chunks(10).enumerate() {
        let last = (i + 1) * 10 >= rec.len();
        let word = part.len() as u32 | if last { 0x8000_0000 } else { 0 };
        wire.extend_from_slice(&word.to_be_bytes());
        wire.extend_from_slice(part);
    }
    c.sock.write_all(&wire).await.expect("send");
    let (rxid, answer) = parse_reply(&c.recv_raw().await.expect("reply"));
    assert_eq!(rxid, xid);
    assert!(matches!(answer, Answer::Accepted(0, _)));
}

#[tokio::test]
async fn an_oversize_record_closes_the_connection() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let word = (crate::record::MAX_RECORD as u32 + 1) | 0x8000_0000;
    c.sock.write_all(&word.to_be_bytes()).await.expect("send");
    let mut buf = [0u8; 1];
    let n = c.sock.read(&mut buf).await.unwrap_or(0);
    assert_eq!(n, 0, "connection still open");
    // The server itself is fine.
    let mut other = Client::connect(h.addr).await;
    assert!(matches!(
        other.raw_call(PROGRAM, 3, 0, &[]).await,
        Answer::Accepted(0, _)
    ));
}

#[tokio::test]
async fn many_pipelined_calls_all_get_their_replies() {
    let h = start(ExportPolicy::default()).await;
    let mut c = Client::connect(h.addr).await;
    let root = c.root().await;
    let f = c.create_file(&root, "p").await;
    let w = c.write(&f, 0, &[5u8; 100_000], stable_how::FILE_SYNC).await;
    assert_eq!(stat_of(&w), nfsstat3::NFS3_OK);
    // More calls than the in-flight limit, sent without waiting.
    let mut sent = HashMap::new();
    let mut wire = Vec::new();
    for i in 0..(crate::server::MAX_IN_FLIGHT as u32 * 3) {
        let (proc_num, args) = if i % 2 == 0 {
            let mut a = Vec::new();
            READ3args {
                file: f.clone(),
                offset: u64::from(i) * 100,
                count: 50_000,
            }
            .pack(&mut a)
            .expect("pack");
            (6, a)
        } else {
            let mut a = Vec::new();
            GETATTR3args { object: f.clone() }
                .pack(&mut a)
                .expect("pack");
            (1, a)
        };
        let (xid, rec) = c.record(PROGRAM, 3, proc_num, &args);
        sent.insert(xid, proc_num);
        wire.extend_from_slice(&(rec.len() as u32 | 0x8000_0000).to_be_bytes());
        wire.extend_from_slice(&rec);
    }
    let (mut rd, mut wr) = c.sock.into_split();
    let writer = tokio::spawn(async move { wr.write_all(&wire).await.map(|_| wr) });
    let mut seen = HashSet::new();
    while seen.len() < sent.len() {
        let mut h4 = [0u8; 4];
        rd.read_exact(&mut h4).await.expect("reply header");
        let mut rec = vec![0u8; (u32::from_be_bytes(h4) & 0x7fff_ffff) as usize];
        rd.read_exact(&mut rec).await.expect("reply body");
        let (xid, answer) = parse_reply(&rec);
        let proc_num = sent.get(&xid).copied().expect("known xid");
        let Answer::Accepted(0, body) = answer else {
            panic!("call {xid} failed")
        };
        if proc_num == 6 {
            let (res, _) = READ3res::unpack(&mut &body[..]).expect("decode");
            let Nfs3Result::Ok(r) = res else {
                panic!("read failed")
            };
            assert!(r.data.iter().all(|b| *b == 5));
        }
        assert!(seen.insert(xid), "duplicate reply {xid}");
    }
    writer.await.expect("join").expect("write");
}

/// Sends an NFS NULL call and waits for its reply; `None` if the server
/// closed the connection instead.
async fn null_call(c: &mut Client) -> Option<u32> {
    let (_, rec) = c.record(PROGRAM, 3, 0, &[]);
    c.send_raw(&rec).await;
    let reply = c.recv_raw().await?;
    match parse_reply(&reply).1 {
        Answer::Accepted(stat, _) => Some(stat),
        Answer::Denied(_) => None,
    }
}

#[tokio::test]
async fn connections_past_the_limit_are_closed_and_idle_ones_are_let_go() {
    let (dir, fs) = test_fs();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = NfsServer::new(fs, Arc::new(ExportPolicy::default()))
        .with_limits(1, Duration::from_millis(300));
    tokio::spawn(Arc::new(server).serve(listener));

    let mut first = Client::connect(addr).await;
    assert_eq!(null_call(&mut first).await, Some(0));
    // The second connection is over the limit: closed without an answer.
    let mut second = Client::connect(addr).await;
    assert_eq!(null_call(&mut second).await, None);
    // The first one, idle, is closed by the server within a bounded wait.
    let closed = tokio::time::timeout(Duration::from_secs(10), first.recv_raw()).await;
    assert!(matches!(closed, Ok(None)), "idle connection not closed");
    // Its slot is free again (bounded retries while the server notices).
    let mut served = false;
    for _ in 0..50 {
        let mut third = Client::connect(addr).await;
        if null_call(&mut third).await == Some(0) {
            served = true;
            break;
        }
        tokio::task::yield_now().await;
    }
    assert!(served, "a freed connection slot was not reused");
    drop(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_no_replies_is_let_go_after_the_stall_limit() {
    // READ replies sent from the page cache with sendfile.
    client_that_takes_no_replies(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_takes_no_copied_replies_is_let_go_after_the_stall_limit() {
    // READ replies copied through the connection's buffered writer.
    client_that_takes_no_replies(false).await;
}

/// With one connection slot and a 500 ms stall limit, a client that asks
/// for 64 MiB of READ replies and reads none loses its connection, and
/// another client is served in its slot.
async fn client_that_takes_no_replies(zero_copy: bool) {
    let (dir, fs) = test_fs();
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    // One connection at a time: a stalled one that were kept would shut
    // everyone else out.
    let server = NfsServer::new(fs, Arc::new(ExportPolicy::default()))
        .with_limits(1, Duration::from_secs(600))
        .with_stall(Duration::from_millis(500));
    server
        .zero_copy
        .store(zero_copy, std::sync::atomic::Ordering::Relaxed);
    tokio::spawn(Arc::new(server).serve(listener));

    // A client with a small receive window, so the server's writes wait on
    // it soon.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(64 << 10).expect("SO_RCVBUF");
    let mut stalled = Client {
        sock: socket.connect(addr).await.expect("connect"),
        next_xid: 1,
        cred: sys_cred(0, 0, vec![]),
    };
    let root = stalled.root().await;
    let f = stalled.create_file(&root, "big").await;
    let data = vec![7u8; 1 << 20];
    let w = stalled.write(&f, 0, &data, stable_how::FILE_SYNC).await;
    assert!(matches!(w, Nfs3Result::Ok(_)), "write failed");
    // 64 READs of the whole MiB, and then nothing is read.
    let calls = 64;
    let mut wire = Vec::new();
    for _ in 0..calls {
        let args = READ3args {
            file: f.clone(),
            offset: 0,
            count: 1 << 20,
        };
        let (_, rec) = stalled.nfs_record(6, &args);
        wire.extend_from_slice(&framed(&rec));
    }
    stalled.sock.write_all(&wire).await.expect("send");

    // The server lets the stalled connection go, so its slot serves
    // another client (bounded retries while it notices).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let mut other = Client::connect(addr).await;
        if null_call(&mut other).await == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "a client that reads nothing kept its connection"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // What reached the stalled client is cut short, then the connection ends.
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(60), stalled.sock.read(&mut buf))
            .await
            .expect("the server kept the stalled connection open");
        match n {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
    }
    assert!(
        got < calls * data.len(),
        "all {got} bytes of the replies were sent to a client that read nothing"
    );
    drop(dir);
}
