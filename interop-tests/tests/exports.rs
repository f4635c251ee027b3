//! Exports and volumes: export options from the TOML config (root_squash,
//! all_squash, read_only, async_metadata, allowed clients, per-volume entries), subdirectory
//! mounts, the boundary between volumes, and volume deletion.

mod common;

use std::time::Duration;

use common::nfs::*;
use common::{block_on, Server};
use nfs3_client::nfs3_types::mount::mountstat3;
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::{ConnectError, MountError};

const LIMIT: Duration = Duration::from_secs(300);

/// Prepares `/work` (0777) and `/private` (0700, root) on a plain server, then
/// restarts it with `config`.
fn restart_with(server: &mut Server, config: &str) -> (nfs_fh3, nfs_fh3, nfs_fh3) {
    let mut out = None;
    block_on(LIMIT, async {
        let mut c = mount(server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let work = mkdir(&mut c, &root, "work", 0o777).await;
        let private = mkdir(&mut c, &root, "private", 0o700).await;
        create_file(&mut c, &private, "secret", 0o600).await;
        out = Some((root, work, private));
    });
    server.write_config(config);
    server.restart();
    out.expect("setup ran")
}

fn assert_admin_ok(server: &Server, args: &[&str]) {
    let out = server.admin(args);
    assert!(
        out.status.success(),
        "nitrofs admin {args:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn root_squash_maps_uid_0_to_the_anonymous_user() {
    let mut server = Server::start();
    let (_, work, private) =
        restart_with(&mut server, "[nfs.exports.default]\nroot_squash = true\n");
    block_on(LIMIT, async {
        let mut root = mount(&server, 0, 0).await;
        let f = create_file(&mut root, &work, "by-root", 0o644).await;
        let a = getattr(&mut root, &f).await.expect("GETATTR");
        assert_eq!(
            (a.uid, a.gid),
            (65534, 65534),
            "a squashed root creates files as anonuid:anongid"
        );
        assert_eq!(
            lookup(&mut root, &private, "secret").await.err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "a squashed root has no power over a root-owned 0700 directory"
        );
        let mut user = mount(&server, 1000, 1000).await;
        let g = create_file(&mut user, &work, "by-user", 0o644).await;
        let a = getattr(&mut user, &g).await.expect("GETATTR");
        assert_eq!((a.uid, a.gid), (1000, 1000), "other users are not squashed");
    });
}

#[test]
fn all_squash_maps_every_caller_to_anonuid_and_anongid() {
    let mut server = Server::start();
    let (_, work, _) = restart_with(
        &mut server,
        "[nfs.exports.default]\nall_squash = true\nanonuid = 4242\nanongid = 4343\n",
    );
    block_on(LIMIT, async {
        for (uid, gid) in [(1000, 1000), (0, 0)] {
            let mut c = mount(&server, uid, gid).await;
            let f = create_file(&mut c, &work, &format!("by-{uid}"), 0o644).await;
            let a = getattr(&mut c, &f).await.expect("GETATTR");
            assert_eq!(
                (a.uid, a.gid),
                (4242, 4343),
                "caller {uid}:{gid} is squashed"
            );
        }
    });
}

#[test]
fn a_read_only_export_refuses_every_change_with_rofs() {
    let mut server = Server::start();
    let mut before = None;
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let f = create_file(&mut c, &root, "f", 0o644).await;
        write(&mut c, &f, 0, b"frozen", stable_how::FILE_SYNC)
            .await
            .expect("WRITE");
        let d = mkdir(&mut c, &root, "d", 0o755).await;
        before = Some((root, f, d));
    });
    server.write_config("[nfs.exports.default]\nread_only = true\n");
    server.restart();
    let (root, f, d) = before.expect("setup ran");
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let rofs = Some(nfsstat3::NFS3ERR_ROFS);
        assert_eq!(
            create(&mut c, &root, "new", createhow3::GUARDED(mode_attr(0o644)))
                .await
                .err(),
            rofs,
            "CREATE"
        );
        assert_eq!(
            try_mkdir(&mut c, &root, "newdir", mode_attr(0o755))
                .await
                .err(),
            rofs,
            "MKDIR"
        );
        assert_eq!(
            write(&mut c, &f, 0, b"thawed", stable_how::FILE_SYNC)
                .await
                .err(),
            rofs,
            "WRITE"
        );
        assert_eq!(
            setattr(&mut c, &f, mode_attr(0o600)).await.err(),
            rofs,
            "SETATTR"
        );
        assert_eq!(remove(&mut c, &root, "f").await.err(), rofs, "REMOVE");
        assert_eq!(
            rename(&mut c, &root, "f", &root, "g").await.err(),
            rofs,
            "RENAME"
        );
        assert_eq!(link(&mut c, &f, &d, "l").await.err(), rofs, "LINK");
        let sym = c
            .symlink(&SYMLINK3args {
                where_: diropargs3 {
                    dir: root.clone(),
                    name: b"s".as_slice().into(),
                },
                symlink: symlinkdata3 {
                    symlink_attributes: sattr3::default(),
                    symlink_data: b"f".as_slice().into(),
                },
            })
            .await
            .expect("SYMLINK transport");
        assert!(
            matches!(sym, Nfs3Result::Err((nfsstat3::NFS3ERR_ROFS, _))),
            "SYMLINK: {sym:?}"
        );

        // Reads still work, nothing changed, and ACCESS does not promise writes.
        assert_eq!(read_all(&mut c, &f, 64).await, b"frozen");
        let names = list_names(&mut c, &root).await;
        assert_eq!(names, vec!["d".to_string(), "f".to_string()]);
        let file_bits = access(&mut c, &f, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND)
            .await
            .expect("ACCESS file");
        assert_eq!(
            file_bits, ACCESS3_READ,
            "ACCESS on a read-only export grants only READ"
        );
        let dir_bits = access(
            &mut c,
            &d,
            ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE,
        )
        .await
        .expect("ACCESS dir");
        assert_eq!(
            dir_bits, ACCESS3_LOOKUP,
            "ACCESS on a read-only dir grants only LOOKUP"
        );
    });
}

#[test]
fn clients_outside_the_allowed_networks_are_refused() {
    let mut server = Server::start();
    let mut held = None;
    block_on(LIMIT, async {
        let c = mount(&server, 0, 0).await;
        held = Some(c.root_nfs_fh3());
    });
    server.write_config("[nfs.exports.default]\nclients = [\"10.0.0.0/8\"]\n");
    server.restart();
    let held = held.expect("setup ran");
    block_on(LIMIT, async {
        match mount_path(&server, "/default", 0, 0).await {
            Err(ConnectError::Mount(MountError::Denied(stat))) => assert!(
                matches!(stat, mountstat3::MNT3ERR_ACCES | mountstat3::MNT3ERR_PERM),
                "MOUNT from a refused address: {stat}"
            ),
            Err(e) => panic!("MOUNT from a refused address failed the wrong way: {e}"),
            Ok(_) => panic!("MOUNT from 127.0.0.1 succeeded though only 10.0.0.0/8 may mount"),
        }
        let mut c = connect(&server, 0, 0).await;
        let r = getattr(&mut c, &held).await;
        assert!(
            r.is_err(),
            "a handle used from a refused address must not work, got {r:?}"
        );
    });
}

#[test]
fn a_per_volume_entry_replaces_the_default_options_for_that_volume() {
    let mut server = Server::start();
    assert_admin_ok(&server, &["volume", "create", "datasets"]);
    server.write_config("[nfs.exports.volumes.datasets]\nread_only = true\n");
    server.restart();
    block_on(LIMIT, async {
        let mut rw = mount(&server, 0, 0).await;
        let root = rw.root_nfs_fh3();
        create_file(&mut rw, &root, "fine", 0o644).await;
        let mut ro = mount_path(&server, "/datasets", 0, 0)
            .await
            .unwrap_or_else(|e| panic!("MOUNT /datasets: {e}"));
        let ds = ro.root_nfs_fh3();
        assert_eq!(
            create(&mut ro, &ds, "nope", createhow3::GUARDED(mode_attr(0o644)))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_ROFS),
            "the datasets volume is read-only"
        );
    });
}

#[test]
fn a_subdirectory_mount_returns_the_directory_handle() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let sub = mkdir(&mut c, &root, "sub", 0o755).await;
        let deeper = mkdir(&mut c, &sub, "deeper", 0o755).await;
        create_file(&mut c, &root, "plain", 0o644).await;

        let m = mount_path(&server, "/default/sub/deeper", 0, 0)
            .await
            .unwrap_or_else(|e| panic!("MOUNT /default/sub/deeper: {e}"));
        assert_eq!(
            m.root_nfs_fh3(),
            deeper,
            "a subdirectory mount hands out its handle"
        );
        for (path, what) in [
            ("/default/missing", "a missing path"),
            ("/default/plain", "a file"),
            ("/nope/sub", "a path in a missing volume"),
        ] {
            match mount_path(&server, path, 0, 0).await {
                Err(ConnectError::Mount(MountError::Denied(_))) => {}
                Err(e) => panic!("MOUNT of {what} failed the wrong way: {e}"),
                Ok(_) => panic!("MOUNT of {what} ({path}) succeeded"),
            }
        }
    });
}

#[test]
fn lookup_of_dotdot_at_an_export_root_stays_inside_the_export() {
    let server = Server::start();
    assert_admin_ok(&server, &["volume", "create", "other"]);
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let root_id = getattr(&mut c, &root).await.expect("GETATTR").fileid;
        match lookup(&mut c, &root, "..").await {
            Ok(up) => {
                let a = getattr(&mut c, &up).await.expect("GETATTR ..");
                assert_eq!(a.fileid, root_id, "/default/.. is /default itself");
                let names = list_names(&mut c, &up).await;
                assert!(
                    !names.iter().any(|n| n == "other" || n == "default"),
                    "LOOKUP .. escaped the export into a list of volumes: {names:?}"
                );
            }
            Err(e) => assert!(
                matches!(e, nfsstat3::NFS3ERR_NOENT | nfsstat3::NFS3ERR_ACCES),
                "LOOKUP .. at the export root: {e}"
            ),
        }
    });
}

#[test]
fn rename_and_link_across_volumes_are_xdev() {
    let server = Server::start();
    assert_admin_ok(&server, &["volume", "create", "other"]);
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let a = c.root_nfs_fh3();
        let b = mount_path(&server, "/other", 0, 0)
            .await
            .unwrap_or_else(|e| panic!("MOUNT /other: {e}"))
            .root_nfs_fh3();
        assert_ne!(a, b, "two volumes have different root handles");
        let f = create_file(&mut c, &a, "f", 0o644).await;
        assert_eq!(
            rename(&mut c, &a, "f", &b, "f").await,
            Err(nfsstat3::NFS3ERR_XDEV),
            "RENAME across volumes"
        );
        assert_eq!(
            link(&mut c, &f, &b, "f").await.err(),
            Some(nfsstat3::NFS3ERR_XDEV),
            "LINK across volumes"
        );
        assert!(
            list_names(&mut c, &b).await.is_empty(),
            "nothing landed in /other"
        );
        assert_eq!(lookup(&mut c, &a, "f").await, Ok(f), "f stayed in /default");
    });
}

#[test]
fn deleting_a_volume_makes_its_handles_stale() {
    let server = Server::start();
    assert_admin_ok(&server, &["volume", "create", "doomed"]);
    block_on(LIMIT, async {
        let mut c = mount_path(&server, "/doomed", 0, 0)
            .await
            .unwrap_or_else(|e| panic!("MOUNT /doomed: {e}"));
        let root = c.root_nfs_fh3();
        getattr(&mut c, &root).await.expect("GETATTR before delete");
        assert_admin_ok(&server, &["volume", "delete", "doomed"]);
        assert_eq!(
            getattr(&mut c, &root).await.err(),
            Some(nfsstat3::NFS3ERR_STALE),
            "the root handle of a deleted volume"
        );
    });
}

/// An export that answers metadata changes before their log sync, set in
/// the config file, serves like any other, and what its COMMITs
/// acknowledged (the files' bytes and their names) is there after `kill
/// -9` and a restart. (`kill -9` keeps what the kernel already holds, so
/// this cannot tell a synced log from an unsynced one; the NFS crate's
/// durability tests count the syncs.)
#[test]
fn an_async_metadata_export_keeps_what_commit_acknowledged_across_kill_9() {
    let mut server = Server::start_with_config("[nfs.exports.default]\nasync_metadata = true\n");
    let files: Vec<(String, Vec<u8>)> = (0..40u8)
        .map(|i| (format!("f{i}"), vec![i; 1000 + 500 * usize::from(i)]))
        .collect();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = mkdir(&mut c, &root, "run", 0o755).await;
        for (name, data) in &files {
            let fh = create_file(&mut c, &dir, name, 0o644).await;
            write_all(&mut c, &fh, 0, data, 4096, stable_how::UNSTABLE).await;
            commit(&mut c, &fh).await.expect("COMMIT");
        }
        // A file never written: its COMMIT makes its name durable too.
        let empty = create_file(&mut c, &dir, "empty", 0o600).await;
        commit(&mut c, &empty).await.expect("COMMIT");
    });
    server.kill9();
    server.restart();
    block_on(LIMIT, async {
        let mut c = mount(&server, 0, 0).await;
        let root = c.root_nfs_fh3();
        let dir = lookup(&mut c, &root, "run").await.expect("the directory");
        for (name, data) in &files {
            let fh = lookup(&mut c, &dir, name).await.expect("a committed file");
            assert_eq!(&read_all(&mut c, &fh, data.len() + 1).await, data, "{name}");
        }
        let empty = lookup(&mut c, &dir, "empty").await.expect("the empty file");
        let a = getattr(&mut c, &empty).await.expect("GETATTR");
        assert_eq!((a.size, a.mode & 0o777), (0, 0o600));
    });
}
