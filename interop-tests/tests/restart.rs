//! A graceful restart (SIGTERM, start again on the same data directory) is
//! invisible to a client that keeps its file handles and directory cookies,
//! except that the write verifier changes so it resends uncommitted data.

mod common;

use std::time::Duration;

use common::nfs::*;
use common::{block_on, PatternRng, Server};
use nfs3_client::nfs3_types::nfs3::*;

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn file_handles_survive_a_restart_and_the_write_verifier_changes() {
    let mut server = Server::start();
    let data = PatternRng::new(5).bytes(300_000);
    let (root, dir, file, before_attrs, verf_before) = {
        let data = data.clone();
        let server = &server;
        let mut out = None;
        block_on(LIMIT, async {
            let mut c = mount(server, 0, 0).await;
            let root = c.root_nfs_fh3();
            let dir = mkdir(&mut c, &root, "keep", 0o750).await;
            let file = create_file(&mut c, &dir, "f", 0o640).await;
            write_all(&mut c, &file, 0, &data, 65536, stable_how::UNSTABLE).await;
            let verf = commit(&mut c, &file).await.expect("COMMIT");
            let attrs = getattr(&mut c, &file).await.expect("GETATTR");
            out = Some((root, dir, file, attrs, verf));
        });
        out.expect("setup ran")
    };

    server.restart();

    block_on(LIMIT, async {
        // A client that held handles reconnects without MOUNTing again.
        let mut c = connect(&server, 0, 0).await;
        let a = getattr(&mut c, &file)
            .await
            .expect("GETATTR with a pre-restart file handle");
        assert_eq!(
            (a.fileid, a.size, a.mode & 0o7777, a.nlink),
            (before_attrs.fileid, data.len() as u64, 0o640, 1)
        );
        assert_eq!(
            lookup(&mut c, &dir, "f").await,
            Ok(file.clone()),
            "LOOKUP in a held directory handle returns the same file handle"
        );
        assert_eq!(read_all(&mut c, &file, data.len()).await, data);
        let names = list_names(&mut c, &root).await;
        assert!(
            names.iter().any(|n| n == "keep"),
            "READDIR of the held root handle after restart: {names:?}"
        );

        let w = write(&mut c, &file, 0, &data[..100], stable_how::UNSTABLE)
            .await
            .expect("WRITE after restart");
        assert_ne!(
            w.verf, verf_before,
            "the write verifier must change across a restart so clients resend uncommitted data"
        );
        assert_eq!(commit(&mut c, &file).await, Ok(w.verf));

        // A fresh MOUNT hands out the same root handle.
        let fresh = mount(&server, 0, 0).await;
        assert_eq!(
            fresh.root_nfs_fh3(),
            root,
            "the export's root handle is stable"
        );
    });
}

#[test]
fn a_directory_listing_started_before_a_restart_continues_after_it() {
    let mut server = Server::start();
    let mut expected = Vec::new();
    let mut first = Vec::new();
    let mut state = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = mkdir(&mut c, &root, "listing", 0o755).await;
        for i in 0..120 {
            let n = format!("entry-{i:03}");
            create_file(&mut c, &dir, &n, 0o644).await;
            expected.push(n);
        }
        let (entries, verf, eof) =
            readdirplus_page(&mut c, &dir, 0, cookieverf3::default(), 512, 2048)
                .await
                .expect("first READDIRPLUS page");
        assert!(!eof, "120 entries do not fit one 2 KiB page");
        let last = entries.last().expect("first page has entries").cookie;
        first = entries
            .into_iter()
            .map(|e| e.name)
            .filter(|n| n != "." && n != "..")
            .collect();
        state = Some((dir, last, verf));
    });
    let (dir, cookie, verf) = state.expect("setup ran");

    server.restart();

    block_on(LIMIT, async {
        let mut c = connect(&server, 0, 0).await;
        let mut names = first.clone();
        let (mut cookie, mut verf) = (cookie, verf);
        for page in 0..1000 {
            let (entries, v, eof) = readdirplus_page(&mut c, &dir, cookie, verf, 512, 2048)
                .await
                .unwrap_or_else(|e| {
                    panic!("READDIRPLUS continuing with a pre-restart cookie (page {page}): {e}")
                });
            verf = v;
            for e in entries {
                cookie = e.cookie;
                if e.name != "." && e.name != ".." {
                    names.push(e.name);
                }
            }
            if eof {
                break;
            }
        }
        let total = names.len();
        names.sort();
        names.dedup();
        assert_eq!(
            names.len(),
            total,
            "no entry is listed twice across the restart"
        );
        assert_eq!(
            names, expected,
            "the continued listing completes the directory"
        );
    });
}

#[test]
fn an_exclusive_create_retransmitted_after_a_restart_finds_its_file() {
    let mut server = Server::start();
    let verf = createverf3(*b"restart!");
    let mut held = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let fh = create(&mut c, &root, "excl", createhow3::EXCLUSIVE(verf))
            .await
            .expect("EXCLUSIVE create");
        held = Some((root, fh));
    });
    let (root, fh) = held.expect("setup ran");
    server.restart();
    block_on(LIMIT, async {
        let mut c = connect(&server, 0, 0).await;
        assert_eq!(
            create(&mut c, &root, "excl", createhow3::EXCLUSIVE(verf)).await,
            Ok(fh),
            "a retransmitted EXCLUSIVE create after a server restart succeeds with the same file"
        );
        assert_eq!(
            create(
                &mut c,
                &root,
                "excl",
                createhow3::EXCLUSIVE(createverf3(*b"another!"))
            )
            .await
            .err(),
            Some(nfsstat3::NFS3ERR_EXIST)
        );
    });
}

#[test]
fn sigterm_stops_promptly_while_clients_stay_connected_and_they_can_reconnect() {
    let mut server = Server::start();
    block_on(LIMIT, async {
        let mut idle = mount(&server, 0, 0).await;
        let root = idle.root_nfs_fh3();
        let f = create_file(&mut idle, &root, "f", 0o644).await;
        write(&mut idle, &f, 0, b"before", stable_how::UNSTABLE)
            .await
            .expect("WRITE");
        let raw = std::net::TcpStream::connect(server.nfs_addr()).expect("raw connect");
        // Both connections stay open (as a kernel client's would) across the stop.
        let started = std::time::Instant::now();
        server.stop();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "SIGTERM took {:?} with idle clients connected",
            started.elapsed()
        );
        drop(raw);
        server.restart();
        let r = idle.getattr(&GETATTR3args { object: f.clone() }).await;
        assert!(
            r.is_err(),
            "the old connection is gone after the restart: {r:?}"
        );
        let mut c = connect(&server, 0, 0).await;
        assert_eq!(
            read_all(&mut c, &f, 64).await,
            b"before",
            "data written UNSTABLE is flushed by a graceful stop"
        );
    });
}
