//! Many clients at once: parallel writers building one file (the checkpoint
//! pattern), parallel creates and renames in one directory (metadata
//! transactions that conflict and must retry), and many WRITEs in flight on
//! one connection.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::nfs::*;
use common::rpc::*;
use common::{block_on, PatternRng, Server};
use nfs3_client::nfs3_types::nfs3::*;

const LIMIT: Duration = Duration::from_secs(600);

#[test]
fn parallel_writers_on_separate_connections_build_one_file() {
    let server = Server::start();
    let writers = 8usize;
    let slice = 2 * 1024 * 1024 + 4099; // slices straddle 4 MiB chunk boundaries
    let data = PatternRng::new(42).bytes(writers * slice);
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "checkpoint", 0o644).await;
        let mut tasks = Vec::new();
        for w in 0..writers {
            let part = data[w * slice..(w + 1) * slice].to_vec();
            let f = f.clone();
            let port = server.nfs_port;
            tasks.push(tokio::spawn(async move {
                let mut c = connect_port(port, 0, 0).await;
                let replies = write_all(
                    &mut c,
                    &f,
                    (w * slice) as u64,
                    &part,
                    256 * 1024,
                    stable_how::UNSTABLE,
                )
                .await;
                let verf = commit(&mut c, &f).await.expect("COMMIT");
                assert!(
                    replies.iter().all(|(v, _)| *v == verf),
                    "writer {w}: verifier"
                );
            }));
        }
        for t in tasks {
            t.await.expect("writer task");
        }
        let a = getattr(&mut c, &f).await.expect("GETATTR");
        assert_eq!(a.size, data.len() as u64, "size after parallel writes");
        let back = read_all(&mut c, &f, data.len()).await;
        if let Some(pos) = back.iter().zip(&data).position(|(a, b)| a != b) {
            panic!("byte {pos} (writer {}) differs", pos / slice);
        }
    });
}

#[test]
fn parallel_creates_and_renames_in_one_directory_all_land() {
    let server = Server::start();
    let clients = 8usize;
    let per = 40usize;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = mkdir(&mut c, &root, "hot", 0o777).await;
        let mut tasks = Vec::new();
        for k in 0..clients {
            let dir = dir.clone();
            let port = server.nfs_port;
            tasks.push(tokio::spawn(async move {
                let mut c = connect_port(port, 0, 0).await;
                for i in 0..per {
                    let n = format!("c{k}-{i:02}");
                    let r = create(&mut c, &dir, &n, createhow3::GUARDED(mode_attr(0o644))).await;
                    assert!(r.is_ok(), "CREATE {n} under contention: {r:?}");
                    if i % 2 == 1 {
                        let to = format!("c{k}-{i:02}-renamed");
                        let r = rename(&mut c, &dir, &n, &dir, &to).await;
                        assert_eq!(r, Ok(()), "RENAME {n} under contention");
                    }
                }
                // Everyone also races for the same name: exactly one GUARDED create wins.
                create(
                    &mut c,
                    &dir,
                    "contended",
                    createhow3::GUARDED(mode_attr(0o644)),
                )
                .await
                .is_ok()
            }));
        }
        let mut winners = 0;
        for t in tasks {
            if t.await.expect("client task") {
                winners += 1;
            }
        }
        assert_eq!(
            winners, 1,
            "exactly one GUARDED create of one name succeeds"
        );

        let mut want = BTreeSet::new();
        for k in 0..clients {
            for i in 0..per {
                want.insert(if i % 2 == 1 {
                    format!("c{k}-{i:02}-renamed")
                } else {
                    format!("c{k}-{i:02}")
                });
            }
        }
        want.insert("contended".to_string());
        let got: BTreeSet<String> = list_names(&mut c, &dir).await.into_iter().collect();
        assert_eq!(got, want, "the directory holds exactly every created name");
        let (plus, _, _) = readdirplus_all(&mut c, &dir, 4096, 32768).await;
        let ids: BTreeSet<u64> = plus.iter().map(|e| e.fileid).collect();
        assert_eq!(ids.len(), want.len(), "every entry is its own inode");
    });
}

#[test]
fn many_writes_in_flight_on_one_connection_all_apply() {
    let server = Server::start();
    let mut fh = Vec::new();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        fh = create_file(&mut c, &root, "burst", 0o644)
            .await
            .data
            .to_vec();
    });
    let n = 32u32;
    let piece = 64 * 1024usize;
    let data = PatternRng::new(99).bytes(n as usize * piece);
    let mut burst = Vec::new();
    // Out of order on purpose: high offsets first.
    for i in (0..n).rev() {
        let mut args = Vec::new();
        put_opaque(&mut args, &fh);
        let off = u64::from(i) * piece as u64;
        put(&mut args, (off >> 32) as u32);
        put(&mut args, off as u32);
        put(&mut args, piece as u32);
        put(&mut args, 0); // UNSTABLE
        put_opaque(
            &mut args,
            &data[i as usize * piece..(i as usize + 1) * piece],
        );
        burst.extend_from_slice(&record(&nfs_call_sys(0xD000 + i, 7, 0, 0, &args)));
    }
    let mut s = raw_connect(&server);
    assert!(send(&mut s, &burst), "server closed during the burst");
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let r = match read_record(&mut s) {
            Incoming::Record(r) => parse_reply(&r).unwrap_or_else(|e| panic!("{e}")),
            other => panic!("after {} replies: {other:?}", seen.len()),
        };
        assert!(seen.insert(r.xid), "xid {:#x} answered twice", r.xid);
        match &r.body {
            Body::Accepted {
                stat: SUCCESS,
                results,
                ..
            } => assert_eq!(
                results.get(..4),
                Some(&[0u8, 0, 0, 0][..]),
                "WRITE xid {:#x} status",
                r.xid
            ),
            other => panic!("xid {:#x}: {other:?}", r.xid),
        }
    }
    let want: BTreeSet<u32> = (0..n).map(|i| 0xD000 + i).collect();
    assert_eq!(seen, want, "every pipelined WRITE got exactly one reply");

    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let f = nfs_fh3 { data: fh.into() };
        commit(&mut c, &f).await.expect("COMMIT");
        assert_eq!(read_all(&mut c, &f, data.len()).await, data);
    });
}
