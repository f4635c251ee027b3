//! Malformed and unusual ONC-RPC traffic on raw TCP to the NFS port.
//!
//! Replies are parsed by hand per RFC 5531 (xid, REPLY=1, MSG_ACCEPTED=0 with
//! verifier and accept_stat, or MSG_DENIED=1 with reject_stat). Where the RFC
//! requires a reply the test requires it; where the server may either answer
//! GARBAGE_ARGS or drop the connection, both are accepted, but silence is not.
//! Afterwards the server must still be alive and serve a real client.

mod common;

use std::net::TcpStream;
use std::time::Duration;

use common::rpc::*;
use common::{block_on, Server};
use rand::{Rng, RngCore, SeedableRng};

const LIMIT: Duration = Duration::from_secs(300);

/// After abuse: the process lives, a raw NULL works on a new connection and a
/// real client can MOUNT, create, write and read.
fn server_still_serves(server: &mut Server) {
    server.assert_alive();
    null_works_on(&mut raw_connect(server), 0x0bad_f00d);
    let server = &*server;
    block_on(LIMIT, async {
        use common::nfs::*;
        use nfs3_client::nfs3_types::nfs3::stable_how;
        let mut c = mount(server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "still-alive", 0o644).await;
        write(&mut c, &f, 0, b"ok", stable_how::FILE_SYNC)
            .await
            .expect("WRITE after abuse");
        assert_eq!(read_all(&mut c, &f, 16).await, b"ok");
    });
}

/// After sending something odd on `s`, a NULL call follows on the same
/// connection. The server may answer the odd record first (`check` judges that
/// reply) or close the connection; it must not go silent, and if the connection
/// stays open the NULL call must succeed.
fn then_null_or_closed(s: &mut TcpStream, null_xid: u32, check: &dyn Fn(&Reply)) -> &'static str {
    if !send(s, &record(&null_call(null_xid))) {
        return "closed";
    }
    for _ in 0..4 {
        match read_record(s) {
            Incoming::Closed => return "closed",
            Incoming::Silent => panic!(
                "server neither answered nor closed within {REPLY_TIMEOUT:?} (NULL xid {null_xid:#x})"
            ),
            Incoming::Record(r) => {
                let reply = parse_reply(&r).unwrap_or_else(|e| panic!("malformed reply: {e}"));
                if reply.xid == null_xid {
                    assert_eq!(accept_stat(&reply), SUCCESS, "NULL after garbage: {reply:?}");
                    return "answered";
                }
                check(&reply);
            }
        }
    }
    panic!("more than 3 unexpected replies before the NULL reply");
}

#[test]
fn random_garbage_records_do_not_harm_the_server() {
    let mut server = Server::start();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed_0bad);
    for case in 0..48u32 {
        let kind = case % 4;
        let xid = 0x1000_0000 + case;
        let mut junk = vec![0u8; rng.gen_range(0..300)];
        rng.fill_bytes(&mut junk);
        let body = match kind {
            // Pure noise.
            0 => junk,
            // A valid NFSv3 call header, then random arguments.
            1 => nfs_call(xid, rng.gen_range(0..22), &junk),
            // A valid MOUNT v3 call header, then random arguments.
            2 => call(xid, 2, MOUNT_PROG, 3, rng.gen_range(0..6), &junk),
            // NFS NULL with an AUTH_SYS credential whose body is noise.
            _ => {
                let mut b = Vec::new();
                for v in [xid, 0, 2, NFS_PROG, 3, 0, 1] {
                    put(&mut b, v);
                }
                junk.truncate(200);
                put_opaque(&mut b, &junk);
                put(&mut b, 0);
                put(&mut b, 0);
                b
            }
        };
        let mut s = raw_connect(&server);
        if !send(&mut s, &record(&body)) {
            continue; // closed already: acceptable
        }
        let check = |r: &Reply| {
            if kind == 0 {
                return; // any well-formed reply to noise is fine
            }
            assert_eq!(
                r.xid, xid,
                "case {case}: reply to the garbage call carries its xid"
            );
            let ok = matches!(
                &r.body,
                Body::Accepted { stat, .. } if [SUCCESS, PROC_UNAVAIL, GARBAGE_ARGS].contains(stat)
            ) || matches!(&r.body, Body::Denied { reject, .. } if *reject == AUTH_ERROR && kind == 3);
            assert!(ok, "case {case} (kind {kind}): unexpected reply {r:?}");
        };
        then_null_or_closed(&mut s, 0xC0DE_0000 + case, &check);
        server.assert_alive();
    }
    server_still_serves(&mut server);
}

#[test]
fn truncated_and_oversized_arguments_get_garbage_args_or_a_close() {
    let mut server = Server::start();
    let fh8 = |b: &mut Vec<u8>| {
        put(b, 8);
        b.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
    };
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    cases.push(("GETATTR with no arguments", nfs_call(0x2001, 1, &[])));
    let mut a = Vec::new();
    put(&mut a, 8);
    a.extend_from_slice(&[9, 9, 9, 9]);
    cases.push((
        "GETATTR with a truncated file handle",
        nfs_call(0x2002, 1, &a),
    ));
    let mut a = Vec::new();
    put(&mut a, 0xFFFF_FFF0);
    a.extend_from_slice(&[0; 8]);
    cases.push((
        "GETATTR with a 4 GiB file handle length",
        nfs_call(0x2003, 1, &a),
    ));
    let mut a = Vec::new();
    fh8(&mut a);
    put(&mut a, 0);
    put(&mut a, 0); // offset
    put(&mut a, 1 << 30); // count
    put(&mut a, 2); // FILE_SYNC
    put(&mut a, 1 << 30); // data length: 1 GiB, but 16 bytes follow
    a.extend_from_slice(&[0xAB; 16]);
    cases.push(("WRITE claiming 1 GiB of data", nfs_call(0x2004, 7, &a)));
    let mut a = Vec::new();
    fh8(&mut a);
    put(&mut a, 0x7FFF_FFFF);
    a.extend_from_slice(b"name");
    cases.push(("LOOKUP with a 2 GiB name length", nfs_call(0x2005, 3, &a)));
    let mut a = Vec::new();
    put(&mut a, 0xFFFF_FFFF);
    cases.push((
        "MOUNT MNT with a 4 GiB path length",
        call(0x2006, 2, MOUNT_PROG, 3, 1, &a),
    ));
    let mut a = Vec::new();
    for v in [NFS_PROG, 3] {
        put(&mut a, v);
    }
    cases.push((
        "PORTMAP GETPORT missing two words",
        call(0x2007, 2, PMAP_PROG, 2, 3, &a),
    ));

    let mut outcomes = Vec::new();
    for (i, (what, body)) in cases.iter().enumerate() {
        let xid = u32::from_be_bytes([body[0], body[1], body[2], body[3]]);
        let mut s = raw_connect(&server);
        let sent = send(&mut s, &record(body));
        let outcome = if !sent {
            "closed".to_string()
        } else {
            match read_record(&mut s) {
                Incoming::Closed => "closed".to_string(),
                Incoming::Silent => {
                    panic!("{what}: server neither answered nor closed within {REPLY_TIMEOUT:?}")
                }
                Incoming::Record(r) => {
                    let reply = parse_reply(&r).unwrap_or_else(|e| panic!("{what}: {e}"));
                    assert_eq!(reply.xid, xid, "{what}: reply xid");
                    assert_eq!(
                        accept_stat(&reply),
                        GARBAGE_ARGS,
                        "{what}: expected GARBAGE_ARGS, got {reply:?}"
                    );
                    // The connection stays usable after a GARBAGE_ARGS reply.
                    null_works_on(&mut s, 0x3000 + i as u32);
                    "GARBAGE_ARGS".to_string()
                }
            }
        };
        outcomes.push(format!("{what}: {outcome}"));
        server.assert_alive();
    }
    eprintln!("outcomes:\n  {}", outcomes.join("\n  "));
    server_still_serves(&mut server);
}

#[test]
fn absurd_fragment_lengths_close_the_connection() {
    let mut server = Server::start();
    for (what, mark) in [
        ("last fragment of 2 GiB - 1", 0xFFFF_FFFFu32),
        ("non-last fragment of 2 GiB - 1", 0x7FFF_FFFF),
        ("last fragment of 1 GiB", 0x8000_0000 | (1 << 30)),
    ] {
        let mut s = raw_connect(&server);
        let mut bytes = mark.to_be_bytes().to_vec();
        bytes.extend_from_slice(&null_call(0x4000)); // the start of the promised record
        if send(&mut s, &bytes) {
            match read_record(&mut s) {
                Incoming::Closed => {}
                Incoming::Silent => panic!(
                    "{what}: server kept the connection open for {REPLY_TIMEOUT:?} waiting \
                     for an absurd record instead of rejecting the fragment length"
                ),
                Incoming::Record(r) => panic!("{what}: unexpected reply {r:02x?}"),
            }
        }
        server.assert_alive();
    }
    server_still_serves(&mut server);
}

#[test]
fn zero_length_records_are_ignored_or_close_the_connection() {
    let mut server = Server::start();
    // An empty record.
    let mut s = raw_connect(&server);
    if send(&mut s, &0x8000_0000u32.to_be_bytes()) {
        let how = then_null_or_closed(&mut s, 0x5001, &|r| {
            assert!(
                matches!(&r.body, Body::Accepted { stat, .. } if *stat == GARBAGE_ARGS),
                "reply to an empty record: {r:?}"
            )
        });
        eprintln!("empty record: {how}");
    }
    server.assert_alive();
    // Many empty records in a row must not spin or grow anything.
    let mut s = raw_connect(&server);
    let many: Vec<u8> = std::iter::repeat_n(0x8000_0000u32.to_be_bytes(), 10_000)
        .flatten()
        .collect();
    if send(&mut s, &many) {
        then_null_or_closed(&mut s, 0x5002, &|_| {});
    }
    server_still_serves(&mut server);
}

#[test]
fn unknown_programs_get_prog_unavail_and_the_connection_stays_usable() {
    let mut server = Server::start();
    let mut s = raw_connect(&server);
    for (i, prog) in [0x2000_1234u32, 400_000, 0].into_iter().enumerate() {
        let r = must_reply(&mut s, &call(0x6000 + i as u32, 2, prog, 1, 0, &[]));
        assert_eq!(accept_stat(&r), PROG_UNAVAIL, "program {prog}: {r:?}");
    }
    null_works_on(&mut s, 0x6100);
    server_still_serves(&mut server);
}

#[test]
fn unknown_procedures_get_proc_unavail_and_the_connection_stays_usable() {
    let mut server = Server::start();
    let mut s = raw_connect(&server);
    let cases = [
        ("NFS proc 22", NFS_PROG, 3, 22),
        ("NFS proc 0xFFFF", NFS_PROG, 3, 0xFFFF),
        ("MOUNT proc 6", MOUNT_PROG, 3, 6),
        ("MOUNT proc 99", MOUNT_PROG, 3, 99),
        ("PORTMAP proc 99", PMAP_PROG, 2, 99),
    ];
    for (i, (what, prog, vers, proc_)) in cases.into_iter().enumerate() {
        let r = must_reply(&mut s, &call(0x7000 + i as u32, 2, prog, vers, proc_, &[]));
        assert_eq!(accept_stat(&r), PROC_UNAVAIL, "{what}: {r:?}");
    }
    null_works_on(&mut s, 0x7100);
    server_still_serves(&mut server);
}

#[test]
fn unsupported_nfs_versions_get_prog_mismatch_naming_version_3() {
    let mut server = Server::start();
    let mut s = raw_connect(&server);
    for vers in [2u32, 4] {
        let r = must_reply(&mut s, &call(0x8000 + vers, 2, NFS_PROG, vers, 0, &[]));
        match &r.body {
            Body::Accepted {
                stat: PROG_MISMATCH,
                range: Some((low, high)),
                ..
            } => assert_eq!(
                (*low, *high),
                (3, 3),
                "NFS v{vers}: supported range names v3 only"
            ),
            other => panic!("NFS v{vers}: expected PROG_MISMATCH, got {other:?}"),
        }
    }
    null_works_on(&mut s, 0x8100);
    server_still_serves(&mut server);
}

#[test]
fn wrong_rpc_version_gets_rpc_mismatch() {
    let mut server = Server::start();
    let mut s = raw_connect(&server);
    let r = must_reply(&mut s, &call(0x9001, 3, NFS_PROG, 3, 0, &[]));
    match &r.body {
        Body::Denied { reject, detail } => {
            assert_eq!(*reject, RPC_MISMATCH, "reject_stat: {r:?}");
            assert_eq!(
                detail.get(..2),
                Some(&[2u32, 2][..]),
                "RPC_MISMATCH names version 2 as the only supported one"
            );
        }
        other => panic!("RPC version 3: expected MSG_DENIED/RPC_MISMATCH, got {other:?}"),
    }
    server_still_serves(&mut server);
}

/// MOUNTs `/default` with a real client and returns the root handle's bytes.
fn root_handle(server: &Server) -> Vec<u8> {
    let mut fh = Vec::new();
    block_on(LIMIT, async {
        let c = common::nfs::mount(server, 0, 0).await;
        fh = c.root_nfs_fh3().data.to_vec();
    });
    fh
}

fn getattr_args(fh: &[u8]) -> Vec<u8> {
    let mut a = Vec::new();
    put_opaque(&mut a, fh);
    a
}

#[test]
fn pipelined_calls_on_one_connection_all_get_answers() {
    let mut server = Server::start();
    let fh = root_handle(&server);
    let mut s = raw_connect(&server);
    let n = 64u32;
    let mut burst = Vec::new();
    for i in 0..n {
        let xid = 0xA000 + i;
        let body = if i % 2 == 0 {
            null_call(xid)
        } else {
            nfs_call(xid, 1, &getattr_args(&fh))
        };
        burst.extend_from_slice(&record(&body));
    }
    assert!(send(&mut s, &burst), "server closed during the burst");
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..n {
        let r = match read_record(&mut s) {
            Incoming::Record(r) => parse_reply(&r).unwrap_or_else(|e| panic!("{e}")),
            other => panic!("after {} replies: {other:?}", seen.len()),
        };
        assert!(
            (0xA000..0xA000 + n).contains(&r.xid),
            "unknown xid {:#x}",
            r.xid
        );
        assert!(seen.insert(r.xid), "xid {:#x} answered twice", r.xid);
        match &r.body {
            Body::Accepted {
                stat: SUCCESS,
                results,
                ..
            } => {
                if (r.xid - 0xA000) % 2 == 1 {
                    assert_eq!(
                        results.get(..4),
                        Some(&[0u8, 0, 0, 0][..]),
                        "GETATTR of the root returns NFS3_OK"
                    );
                }
            }
            other => panic!("xid {:#x}: {other:?}", r.xid),
        }
    }
    assert_eq!(seen.len(), n as usize);
    server_still_serves(&mut server);
}

#[test]
fn a_call_split_across_fragments_is_reassembled() {
    let mut server = Server::start();
    let fh = root_handle(&server);
    let body = nfs_call(0xB001, 1, &getattr_args(&fh));
    let (a, rest) = body.split_at(10);
    let (b, c) = rest.split_at(rest.len() / 2);
    let mut bytes = Vec::new();
    for (frag, last) in [(a, false), (&[][..], false), (b, false), (c, true)] {
        let mark = frag.len() as u32 | if last { 0x8000_0000 } else { 0 };
        bytes.extend_from_slice(&mark.to_be_bytes());
        bytes.extend_from_slice(frag);
    }
    let mut s = raw_connect(&server);
    assert!(send(&mut s, &bytes));
    match read_record(&mut s) {
        Incoming::Record(r) => {
            let reply = parse_reply(&r).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(reply.xid, 0xB001);
            match &reply.body {
                Body::Accepted {
                    stat: SUCCESS,
                    results,
                    ..
                } => assert_eq!(results.get(..4), Some(&[0u8, 0, 0, 0][..]), "NFS3_OK"),
                other => panic!("fragmented GETATTR: {other:?}"),
            }
        }
        other => panic!("fragmented GETATTR got no reply: {other:?}"),
    }
    null_works_on(&mut s, 0xB002);
    server_still_serves(&mut server);
}

#[test]
fn the_nfs_connection_limits_come_from_the_config() {
    let server = Server::start_with_config("[nfs]\nmax_connections = 1\nidle_timeout_secs = 1\n");
    let mut first = raw_connect(&server);
    null_works_on(&mut first, 1);
    // A second connection is over the limit: closed without an answer.
    let mut second = raw_connect(&server);
    let _ = send(&mut second, &record(&null_call(2)));
    let refused = read_record(&mut second);
    assert!(
        matches!(refused, Incoming::Closed),
        "a connection over [nfs] max_connections = 1 was served: {refused:?}"
    );
    // The first one, idle past [nfs] idle_timeout_secs = 1, is closed by the
    // server well within the read timeout (10 s).
    let idle = read_record(&mut first);
    assert!(
        matches!(idle, Incoming::Closed),
        "an idle connection was kept: {idle:?}"
    );
    // Its slot serves a new connection (bounded retries while the server
    // notices the close).
    let mut served = false;
    for xid in 10..60 {
        let mut again = raw_connect(&server);
        if send(&mut again, &record(&null_call(xid)))
            && matches!(read_record(&mut again), Incoming::Record(_))
        {
            served = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(served, "the freed connection slot was not reused");
}
