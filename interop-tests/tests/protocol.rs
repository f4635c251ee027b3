//! NFSv3 namespace and data semantics checked with a client nobody here wrote
//! (`nfs3_client`), against the real `nitrofs` binary on loopback.
//! Each test starts its own server, so tests are independent and parallel.

mod common;

use std::time::Duration;

use common::nfs::*;
use common::{block_on, PatternRng, Server};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::{MountClient, MountError, PortmapperClient};

const LIMIT: Duration = Duration::from_secs(300);

#[test]
fn guarded_create_conflicts_unchecked_reuses_and_exclusive_is_idempotent_per_verifier() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "f", 0o644).await;
        write(&mut c, &f, 0, b"hello", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");
        let id = getattr(&mut c, &f).await.expect("GETATTR").fileid;

        assert_eq!(
            create(&mut c, &root, "f", createhow3::GUARDED(mode_attr(0o600)))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_EXIST),
            "GUARDED create of an existing name"
        );
        let again = create(&mut c, &root, "f", createhow3::UNCHECKED(sattr3::default()))
            .await
            .expect("UNCHECKED create of an existing name succeeds");
        let a = getattr(&mut c, &again).await.expect("GETATTR");
        assert_eq!(a.fileid, id, "UNCHECKED create returns the existing file");
        assert_eq!(
            read_all(&mut c, &f, 1024).await,
            b"hello",
            "UNCHECKED create without a size leaves the data alone"
        );

        let v1 = createverf3(*b"verf-one");
        let v2 = createverf3(*b"verf-two");
        let e1 = create(&mut c, &root, "x", createhow3::EXCLUSIVE(v1))
            .await
            .expect("EXCLUSIVE create of a new name");
        let e2 = create(&mut c, &root, "x", createhow3::EXCLUSIVE(v1))
            .await
            .expect("EXCLUSIVE create retransmitted with the same verifier succeeds");
        assert_eq!(e1, e2, "same verifier returns the same file handle");
        assert_eq!(
            create(&mut c, &root, "x", createhow3::EXCLUSIVE(v2))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_EXIST),
            "EXCLUSIVE create with a different verifier"
        );
        assert_eq!(
            create(&mut c, &root, "f", createhow3::EXCLUSIVE(v1))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_EXIST),
            "EXCLUSIVE create over a file that was not created exclusively"
        );
        // The exclusively created file is an ordinary file the client can then set up.
        setattr(&mut c, &e1, mode_attr(0o640))
            .await
            .expect("SETATTR after EXCLUSIVE create");
        let a = getattr(&mut c, &e1).await.expect("GETATTR x");
        assert_eq!(
            (a.type_, a.mode & 0o7777, a.size),
            (ftype3::NF3REG, 0o640, 0)
        );
    });
}

#[test]
fn rename_replaces_an_existing_file_atomically() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let src = create_file(&mut c, &root, "src", 0o644).await;
        write(&mut c, &src, 0, b"source-content", stable_how::FILE_SYNC)
            .await
            .expect("WRITE src");
        let dst = create_file(&mut c, &root, "dst", 0o600).await;
        write(
            &mut c,
            &dst,
            0,
            b"old target, longer than the source",
            stable_how::FILE_SYNC,
        )
        .await
        .expect("WRITE dst");
        let src_id = getattr(&mut c, &src).await.expect("GETATTR src").fileid;

        rename(&mut c, &root, "src", &root, "dst")
            .await
            .expect("RENAME src over dst");

        assert_eq!(
            lookup(&mut c, &root, "src").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT),
            "the source name is gone"
        );
        let now = lookup(&mut c, &root, "dst").await.expect("LOOKUP dst");
        let a = getattr(&mut c, &now).await.expect("GETATTR dst");
        assert_eq!(a.fileid, src_id, "dst now names the source inode");
        assert_eq!((a.size, a.mode & 0o7777, a.nlink), (14, 0o644, 1));
        assert_eq!(read_all(&mut c, &now, 1024).await, b"source-content");
        assert_eq!(
            read_all(&mut c, &src, 1024).await,
            b"source-content",
            "the source's handle still works after the rename"
        );
        assert_eq!(
            getattr(&mut c, &dst).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "the replaced target's inode is gone"
        );
        let names = list_names(&mut c, &root).await;
        assert!(
            names.iter().any(|n| n == "dst") && !names.iter().any(|n| n == "src"),
            "READDIR after the rename shows dst and not src: {names:?}"
        );
    });
}

#[test]
fn rename_moves_entries_across_directories() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let a = mkdir(&mut c, &root, "a", 0o755).await;
        let b = mkdir(&mut c, &root, "b", 0o755).await;
        let f = create_file(&mut c, &a, "x", 0o644).await;
        let sub = mkdir(&mut c, &a, "sub", 0o755).await;
        rename(&mut c, &a, "x", &b, "y")
            .await
            .expect("RENAME a/x -> b/y");
        rename(&mut c, &a, "sub", &b, "sub2")
            .await
            .expect("RENAME a/sub -> b/sub2");
        assert_eq!(lookup(&mut c, &b, "y").await, Ok(f));
        assert_eq!(lookup(&mut c, &b, "sub2").await, Ok(sub.clone()));
        assert!(
            list_names(&mut c, &a).await.is_empty(),
            "a is empty afterwards"
        );
        let parent = lookup(&mut c, &sub, "..").await.expect("LOOKUP sub2/..");
        let pa = getattr(&mut c, &parent).await.expect("GETATTR ..");
        let ba = getattr(&mut c, &b).await.expect("GETATTR b");
        assert_eq!(
            pa.fileid, ba.fileid,
            "a moved directory's .. is its new parent"
        );
    });
}

#[test]
fn rename_of_a_directory_onto_a_non_empty_directory_is_notempty() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let d1 = mkdir(&mut c, &root, "d1", 0o755).await;
        create_file(&mut c, &d1, "inside-d1", 0o644).await;
        let d2 = mkdir(&mut c, &root, "d2", 0o755).await;
        create_file(&mut c, &d2, "inside-d2", 0o644).await;
        let empty = mkdir(&mut c, &root, "empty", 0o755).await;
        let f = create_file(&mut c, &root, "file", 0o644).await;

        assert_eq!(
            rename(&mut c, &root, "d1", &root, "d2").await,
            Err(nfsstat3::NFS3ERR_NOTEMPTY),
            "RENAME dir onto a non-empty dir"
        );
        assert_eq!(list_names(&mut c, &d2).await, vec!["inside-d2".to_string()]);
        assert_eq!(lookup(&mut c, &root, "d1").await, Ok(d1.clone()));

        assert_eq!(
            rename(&mut c, &root, "file", &root, "d2").await,
            Err(nfsstat3::NFS3ERR_ISDIR),
            "RENAME a file onto a directory (POSIX EISDIR)"
        );
        assert_eq!(
            rename(&mut c, &root, "d1", &root, "file").await,
            Err(nfsstat3::NFS3ERR_NOTDIR),
            "RENAME a directory onto a file (POSIX ENOTDIR)"
        );
        assert_eq!(lookup(&mut c, &root, "file").await, Ok(f));

        rename(&mut c, &root, "d1", &root, "empty")
            .await
            .expect("RENAME a directory onto an empty directory replaces it");
        assert_eq!(lookup(&mut c, &root, "empty").await, Ok(d1.clone()));
        assert_eq!(
            lookup(&mut c, &root, "d1").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT)
        );
        assert_eq!(
            getattr(&mut c, &empty).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "the replaced empty directory is gone"
        );
        assert_eq!(list_names(&mut c, &d1).await, vec!["inside-d1".to_string()]);
    });
}

#[test]
fn rename_of_a_directory_into_its_own_subtree_is_inval() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let a = mkdir(&mut c, &root, "a", 0o755).await;
        let b = mkdir(&mut c, &a, "b", 0o755).await;
        let deep = mkdir(&mut c, &b, "c", 0o755).await;

        assert_eq!(
            rename(&mut c, &root, "a", &b, "moved").await,
            Err(nfsstat3::NFS3ERR_INVAL),
            "RENAME a into its child a/b"
        );
        assert_eq!(
            rename(&mut c, &root, "a", &deep, "moved").await,
            Err(nfsstat3::NFS3ERR_INVAL),
            "RENAME a into its grandchild a/b/c"
        );
        assert_eq!(
            rename(&mut c, &root, "a", &a, "self").await,
            Err(nfsstat3::NFS3ERR_INVAL),
            "RENAME a into itself"
        );
        assert_eq!(lookup(&mut c, &root, "a").await, Ok(a.clone()));
        assert_eq!(lookup(&mut c, &a, "b").await, Ok(b.clone()));
        assert!(list_names(&mut c, &deep).await.is_empty());
    });
}

#[test]
fn hard_links_count_names_and_keep_data_until_the_last_one_goes() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = mkdir(&mut c, &root, "d", 0o755).await;
        let f = create_file(&mut c, &root, "orig", 0o644).await;
        write(&mut c, &f, 0, b"linked data", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");

        let reply_attrs = link(&mut c, &f, &dir, "alias").await.expect("LINK");
        if let Some(a) = reply_attrs {
            assert_eq!(a.nlink, 2, "LINK reply carries the new link count");
        }
        assert_eq!(getattr(&mut c, &f).await.expect("GETATTR").nlink, 2);
        let alias = lookup(&mut c, &dir, "alias").await.expect("LOOKUP alias");
        assert_eq!(
            getattr(&mut c, &alias).await.expect("GETATTR alias").fileid,
            getattr(&mut c, &f).await.expect("GETATTR orig").fileid,
            "both names are one inode"
        );
        assert_eq!(
            link(&mut c, &f, &dir, "alias").await.err(),
            Some(nfsstat3::NFS3ERR_EXIST),
            "LINK onto an existing name"
        );
        assert!(
            link(&mut c, &dir, &root, "dirlink").await.is_err(),
            "LINK of a directory must be refused"
        );

        remove(&mut c, &root, "orig").await.expect("REMOVE orig");
        let a = getattr(&mut c, &f)
            .await
            .expect("the inode lives on under its other name");
        assert_eq!(a.nlink, 1);
        assert_eq!(read_all(&mut c, &alias, 1024).await, b"linked data");

        remove(&mut c, &dir, "alias").await.expect("REMOVE alias");
        assert_eq!(
            getattr(&mut c, &f).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "after the last name goes the handle is stale"
        );
    });
}

#[test]
fn rename_between_two_links_of_one_file_and_over_a_linked_file() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "one", 0o644).await;
        write(&mut c, &f, 0, b"shared", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");
        link(&mut c, &f, &root, "two").await.expect("LINK");

        // POSIX: renaming one link of a file onto another link of it does nothing.
        rename(&mut c, &root, "one", &root, "two")
            .await
            .expect("RENAME between links of one file");
        assert_eq!(
            lookup(&mut c, &root, "one").await,
            Ok(f.clone()),
            "one stays"
        );
        assert_eq!(
            lookup(&mut c, &root, "two").await,
            Ok(f.clone()),
            "two stays"
        );
        assert_eq!(getattr(&mut c, &f).await.expect("GETATTR").nlink, 2);

        // Renaming onto itself is a no-op too.
        rename(&mut c, &root, "one", &root, "one")
            .await
            .expect("RENAME onto the same name");
        assert_eq!(lookup(&mut c, &root, "one").await, Ok(f.clone()));

        // Replacing one link of a two-link file keeps the inode alive via the other.
        let g = create_file(&mut c, &root, "other", 0o600).await;
        rename(&mut c, &root, "other", &root, "one")
            .await
            .expect("RENAME over one link of a linked file");
        assert_eq!(lookup(&mut c, &root, "one").await, Ok(g));
        let a = getattr(&mut c, &f)
            .await
            .expect("the replaced inode lives on under 'two'");
        assert_eq!(a.nlink, 1, "replacing one of two links drops nlink to 1");
        assert_eq!(read_all(&mut c, &f, 64).await, b"shared");
    });
}

#[test]
fn handles_of_removed_files_and_directories_are_stale() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "doomed", 0o644).await;
        write(&mut c, &f, 0, b"bytes", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");
        let d = mkdir(&mut c, &root, "doomed-dir", 0o755).await;

        remove(&mut c, &root, "doomed").await.expect("REMOVE");
        assert_eq!(
            getattr(&mut c, &f).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "GETATTR on a removed file's handle"
        );
        assert_eq!(
            read(&mut c, &f, 0, 16).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "READ on a removed file's handle"
        );
        assert_eq!(
            write(&mut c, &f, 0, b"x", stable_how::FILE_SYNC)
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "WRITE on a removed file's handle"
        );
        assert_eq!(
            lookup(&mut c, &root, "doomed").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT)
        );

        let rm = c
            .rmdir(&RMDIR3args {
                object: diropargs3 {
                    dir: root.clone(),
                    name: b"doomed-dir".as_slice().into(),
                },
            })
            .await
            .expect("RMDIR transport");
        assert!(matches!(rm, Nfs3Result::Ok(_)), "RMDIR: {rm:?}");
        assert_eq!(
            getattr(&mut c, &d).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "GETATTR on a removed directory's handle"
        );
        assert_eq!(
            lookup(&mut c, &d, "anything").await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "LOOKUP in a removed directory's handle"
        );
        // A new file with the old name is a different inode (generation or id differs).
        let f2 = create_file(&mut c, &root, "doomed", 0o644).await;
        assert_ne!(f2, f, "a recreated name must not reuse the stale handle");
        assert_eq!(
            getattr(&mut c, &f).await.err(),
            Some(nfsstat3::NFS3ERR_STALE)
        );
    });
}

#[test]
fn unstable_writes_and_commit_share_one_verifier_within_a_server_life() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "v", 0o644).await;
        let data = PatternRng::new(7).bytes(3 * 65536 + 100);
        let replies = write_all(&mut c, &f, 0, &data, 65536, stable_how::UNSTABLE).await;
        assert!(replies.len() >= 4);
        let first = replies[0].0;
        for (i, (verf, _)) in replies.iter().enumerate() {
            assert_eq!(*verf, first, "WRITE {i} returned a different verifier");
        }
        let committed = commit(&mut c, &f).await.expect("COMMIT");
        assert_eq!(
            committed, first,
            "COMMIT verifier equals the WRITE verifier"
        );
        let sync = write(&mut c, &f, 0, &data[..10], stable_how::FILE_SYNC)
            .await
            .expect("FILE_SYNC WRITE");
        assert_eq!(
            sync.committed,
            stable_how::FILE_SYNC,
            "FILE_SYNC is honoured"
        );
        assert_eq!(
            sync.verf, first,
            "FILE_SYNC reply carries the same verifier"
        );

        // A second client on a new connection sees the same server instance.
        let mut other = mount(&server, 0, 0).await;
        let again = write(&mut other, &f, 0, &data[..10], stable_how::UNSTABLE)
            .await
            .expect("WRITE from a second client");
        assert_eq!(
            again.verf, first,
            "the verifier is per server life, not per connection"
        );
        assert_eq!(read_all(&mut c, &f, data.len()).await, data);
        let a = getattr(&mut c, &f).await.expect("GETATTR");
        assert_eq!(a.size, data.len() as u64);
    });
}

#[test]
fn readdirplus_pages_through_300_entries_with_stable_cookies() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = mkdir(&mut c, &root, "many", 0o755).await;
        let mut expected = Vec::new();
        for i in 0..300 {
            let n = format!("file-{i:03}");
            create_file(&mut c, &dir, &n, 0o644).await;
            expected.push(n);
        }

        let (entries, verf, pages) = readdirplus_all(&mut c, &dir, 1024, 4096).await;
        let mut names: Vec<String> = entries.iter().map(|e| e.name.clone()).collect();
        names.sort();
        assert_eq!(names, expected, "READDIRPLUS lists exactly the 300 files");
        assert!(
            pages >= 3,
            "300 entries with attributes cannot fit one 4 KiB reply; took {pages} pages"
        );
        for e in &entries {
            let a = e
                .attrs
                .as_ref()
                .unwrap_or_else(|| panic!("READDIRPLUS omitted attributes for {}", e.name));
            assert_eq!(a.fileid, e.fileid, "{}: attributes are the entry's", e.name);
            assert_eq!(a.type_, ftype3::NF3REG);
            let h = e
                .handle
                .as_ref()
                .unwrap_or_else(|| panic!("READDIRPLUS omitted the handle for {}", e.name));
            let via_lookup = lookup(&mut c, &dir, &e.name).await.expect("LOOKUP");
            assert_eq!(
                *h, via_lookup,
                "{}: READDIRPLUS handle = LOOKUP handle",
                e.name
            );
        }

        // Resuming from a cookie in the middle continues right after that entry.
        let mid = &entries[149];
        let (next, _, _) = readdirplus_page(&mut c, &dir, mid.cookie, verf, 1024, 4096)
            .await
            .expect("READDIRPLUS from a mid cookie");
        let first = next
            .iter()
            .find(|e| e.name != "." && e.name != "..")
            .expect("entries after the middle");
        assert_eq!(
            first.name, entries[150].name,
            "cookie resumes after its entry"
        );

        // Cookies are stable: a second full listing gives every name the same cookie.
        let (again, _, _) = readdirplus_all(&mut c, &dir, 1024, 4096).await;
        let a: Vec<(String, u64)> = entries.iter().map(|e| (e.name.clone(), e.cookie)).collect();
        let b: Vec<(String, u64)> = again.iter().map(|e| (e.name.clone(), e.cookie)).collect();
        assert_eq!(
            a, b,
            "a second listing returns the same names and cookies in order"
        );

        // Plain READDIR agrees.
        let (plain, plain_pages) = readdir_all(&mut c, &dir, 1024).await;
        let mut plain_names: Vec<String> = plain.into_iter().map(|(n, _)| n).collect();
        plain_names.sort();
        assert_eq!(plain_names, expected, "READDIR lists exactly the 300 files");
        assert!(
            plain_pages >= 2,
            "300 names cannot fit one 1 KiB READDIR reply"
        );
    });
}

#[test]
fn setattr_truncate_then_extend_reads_zeros_across_chunks() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "t", 0o644).await;
        let data = PatternRng::new(11).bytes(5 * 1024 * 1024);
        write_all(&mut c, &f, 0, &data, IO_SIZE, stable_how::FILE_SYNC).await;
        assert_eq!(
            getattr(&mut c, &f).await.expect("GETATTR").size,
            data.len() as u64
        );

        let keep = 1024 * 1024 + 3;
        set_size(&mut c, &f, keep as u64).await;
        assert_eq!(
            getattr(&mut c, &f).await.expect("GETATTR").size,
            keep as u64
        );
        assert_eq!(read_all(&mut c, &f, data.len()).await, &data[..keep]);

        let extended = 6 * 1024 * 1024;
        set_size(&mut c, &f, extended as u64).await;
        assert_eq!(
            getattr(&mut c, &f).await.expect("GETATTR").size,
            extended as u64
        );
        let back = read_all(&mut c, &f, extended).await;
        assert_eq!(back.len(), extended);
        assert_eq!(&back[..keep], &data[..keep], "bytes before the cut survive");
        if let Some(pos) = back[keep..].iter().position(|&b| b != 0) {
            panic!(
                "byte {} after truncate+extend is {:#x}, not zero (old data resurrected?)",
                keep + pos,
                back[keep + pos]
            );
        }

        // Truncating to zero and writing past EOF leaves a hole of zeros.
        set_size(&mut c, &f, 0).await;
        write(
            &mut c,
            &f,
            4 * 1024 * 1024 + 5,
            b"tail",
            stable_how::FILE_SYNC,
        )
        .await
        .expect("WRITE past EOF");
        let back = read_all(&mut c, &f, extended).await;
        assert_eq!(back.len(), 4 * 1024 * 1024 + 9);
        assert!(
            back[..4 * 1024 * 1024 + 5].iter().all(|&b| b == 0),
            "hole reads as zeros"
        );
        assert_eq!(&back[4 * 1024 * 1024 + 5..], b"tail");
    });
}

#[test]
fn portmap_getport_and_mount_export_describe_the_single_port() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut pm = PortmapperClient::new(raw_io(&server).await);
        for (prog, what) in [(100_003, "NFS v3"), (100_005, "MOUNT v3")] {
            let port = pm
                .getport(prog, 3, 6)
                .await
                .unwrap_or_else(|e| panic!("PORTMAP GETPORT {what}: {e}"));
            assert_eq!(port, server.nfs_port, "{what} is served on the one port");
        }

        // A client that knows only the portmapper's port finds everything else.
        let conn = nfs3_client::Nfs3ConnectionBuilder::new(Connector, "127.0.0.1", "/default")
            .connect_from_privileged_port(false)
            .portmapper_port(server.nfs_port)
            .credential(auth_sys(0, 0))
            .mount()
            .await
            .expect("MOUNT via PORTMAP discovery");
        let mut conn = conn;
        let root = conn.root_nfs_fh3();
        let a = getattr(&mut conn, &root)
            .await
            .expect("GETATTR export root");
        assert_eq!(a.type_, ftype3::NF3DIR);

        let mut mnt = MountClient::new_with_auth(
            raw_io(&server).await,
            auth_sys(0, 0),
            nfs3_client::nfs3_types::rpc::opaque_auth::default(),
        );
        let exports = mnt.export().await.expect("MOUNT EXPORT");
        let dirs: Vec<String> = exports
            .into_inner()
            .into_iter()
            .map(|e| String::from_utf8_lossy(e.ex_dir.0.as_ref()).into_owned())
            .collect();
        assert!(
            dirs.iter().any(|d| d == "/default"),
            "MOUNT EXPORT lists /default, got {dirs:?}"
        );

        match mount_path(&server, "/no-such-volume", 0, 0).await {
            Err(nfs3_client::ConnectError::Mount(MountError::Denied(stat))) => assert!(
                matches!(
                    stat,
                    nfs3_client::nfs3_types::mount::mountstat3::MNT3ERR_NOENT
                        | nfs3_client::nfs3_types::mount::mountstat3::MNT3ERR_ACCES
                ),
                "MOUNT of a missing export should be NOENT (or ACCES), got {stat}"
            ),
            Err(e) => panic!("MOUNT of a missing export failed the wrong way: {e}"),
            Ok(_) => panic!("MOUNT of a missing export succeeded"),
        }
    });
}
