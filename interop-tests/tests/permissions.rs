//! Permissions over NFS: AUTH_SYS identities reach core-fs and POSIX mode
//! rules (owner/group/other, search permission, sticky bit, setgid
//! directories, suid/sgid clearing, chown/chmod rights, AUTH_NONE mapping) hold,
//! and ACCESS answers the truth.

mod common;

use std::time::Duration;

use common::nfs::*;
use common::{block_on, Server};
use nfs3_client::nfs3_types::nfs3::*;
use nfs3_client::nfs3_types::rpc::opaque_auth;

const LIMIT: Duration = Duration::from_secs(300);

/// ACCESS bits that mean something for a regular file.
const FILE_BITS: u32 = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_EXECUTE;
/// ACCESS bits that mean something for a directory.
const DIR_BITS: u32 =
    ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE;
const RW: u32 = ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND;

/// Creates `/work` (mode 0777, owned by root) so unprivileged users can create files.
async fn shared_workdir(root_conn: &mut Conn) -> nfs_fh3 {
    let root = root_conn.root_nfs_fh3();
    let work = mkdir(root_conn, &root, "work", 0o777).await;
    let a = getattr(root_conn, &work).await.expect("GETATTR work");
    assert_eq!(
        a.mode & 0o7777,
        0o777,
        "MKDIR must apply the requested mode"
    );
    work
}

#[test]
fn uid_1000_is_denied_lookup_create_and_readdir_in_a_root_owned_0700_dir() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let root = admin.root_nfs_fh3();
        let private = mkdir(&mut admin, &root, "private", 0o700).await;
        let a = getattr(&mut admin, &private)
            .await
            .expect("GETATTR private");
        assert_eq!(
            (a.uid, a.gid, a.mode & 0o7777),
            (0, 0, 0o700),
            "a directory made by AUTH_SYS uid 0 is root-owned 0700 (is root squashed by default?)"
        );
        create_file(&mut admin, &private, "secret", 0o644).await;
        lookup(&mut admin, &private, "secret")
            .await
            .expect("root can look up its own file");

        let mut user = mount(&server, 1000, 1000).await;
        let uroot = user.root_nfs_fh3();
        let private_u = lookup(&mut user, &uroot, "private")
            .await
            .expect("uid 1000 may look up 'private' itself in the export root");
        assert_eq!(
            private_u, private,
            "LOOKUP returns the same handle to every user"
        );

        assert_eq!(
            lookup(&mut user, &private, "secret").await,
            Err(nfsstat3::NFS3ERR_ACCES),
            "LOOKUP inside a 0700 root dir needs search permission"
        );
        assert_eq!(
            lookup(&mut user, &private, "missing").await,
            Err(nfsstat3::NFS3ERR_ACCES),
            "a denied LOOKUP must not reveal whether the name exists"
        );
        assert_eq!(
            create(
                &mut user,
                &private,
                "mine",
                createhow3::GUARDED(mode_attr(0o644))
            )
            .await
            .err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "CREATE inside a 0700 root dir needs write+search permission"
        );
        assert_eq!(
            try_mkdir(&mut user, &private, "subdir", mode_attr(0o755))
                .await
                .err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "MKDIR inside a 0700 root dir needs write+search permission"
        );
        assert_eq!(
            remove(&mut user, &private, "secret").await,
            Err(nfsstat3::NFS3ERR_ACCES),
            "REMOVE inside a 0700 root dir needs write+search permission"
        );
        let rd = user
            .readdir(&READDIR3args {
                dir: private.clone(),
                cookie: 0,
                cookieverf: cookieverf3::default(),
                count: 8192,
            })
            .await
            .expect("READDIR transport");
        assert!(
            matches!(rd, Nfs3Result::Err((nfsstat3::NFS3ERR_ACCES, _))),
            "READDIR of a 0700 root dir by uid 1000 must be ACCES, got {rd:?}"
        );

        // Nothing changed behind the refusals.
        assert_eq!(
            lookup(&mut admin, &private, "mine").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT)
        );
        assert_eq!(
            lookup(&mut admin, &private, "subdir").await.err(),
            Some(nfsstat3::NFS3ERR_NOENT)
        );
        lookup(&mut admin, &private, "secret")
            .await
            .expect("secret survives the refused REMOVE");

        // ACCESS tells the truth about the directory.
        assert_eq!(access(&mut user, &private, DIR_BITS).await, Ok(0));
        assert_eq!(access(&mut admin, &private, DIR_BITS).await, Ok(DIR_BITS));
    });
}

#[test]
fn access_reports_exact_bits_for_owner_group_other_and_root() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let work = shared_workdir(&mut admin).await;
        let mut owner = mount(&server, 1000, 1000).await;
        let mut group = mount(&server, 3000, 1000).await;
        let mut other = mount(&server, 2000, 2000).await;

        const X: u32 = ACCESS3_EXECUTE;
        // (mode, owner, group member, other, root)
        let table: [(u32, u32, u32, u32, u32); 6] = [
            (0o644, RW, ACCESS3_READ, ACCESS3_READ, RW),
            (0o600, RW, 0, 0, RW),
            (0o755, RW | X, ACCESS3_READ | X, ACCESS3_READ | X, RW | X),
            (0o640, RW, ACCESS3_READ, 0, RW),
            (0o660, RW, RW, 0, RW),
            (0o750, RW | X, ACCESS3_READ | X, 0, RW | X),
        ];
        for (mode, want_owner, want_group, want_other, want_root) in table {
            let n = format!("f{mode:o}");
            let fh = create_file(&mut owner, &work, &n, mode).await;
            let a = getattr(&mut owner, &fh).await.expect("GETATTR new file");
            assert_eq!(
                (a.uid, a.gid, a.mode & 0o7777),
                (1000, 1000, mode),
                "{n}: CREATE by 1000:1000 with mode {mode:o}"
            );
            for (who, c, want) in [
                ("owner 1000", &mut owner, want_owner),
                ("group member 3000:1000", &mut group, want_group),
                ("other 2000", &mut other, want_other),
                ("root", &mut admin, want_root),
            ] {
                let got = access(c, &fh, FILE_BITS)
                    .await
                    .unwrap_or_else(|e| panic!("ACCESS {n} as {who}: {e}"));
                assert_eq!(
                    got, want,
                    "ACCESS on a {mode:o} file as {who}: got {got:#x}, want {want:#x}"
                );
            }
        }

        // Only requested bits are answered.
        let f755 = lookup(&mut other, &work, "f755")
            .await
            .expect("LOOKUP f755");
        assert_eq!(
            access(&mut other, &f755, ACCESS3_READ).await,
            Ok(ACCESS3_READ)
        );
        let f644 = lookup(&mut owner, &work, "f644")
            .await
            .expect("LOOKUP f644");
        assert_eq!(access(&mut owner, &f644, ACCESS3_EXECUTE).await, Ok(0));

        // ACCESS agrees with what the server then does: other cannot write 0644.
        let denied = write(&mut other, &f644, 0, b"nope", stable_how::FILE_SYNC).await;
        assert_eq!(
            denied.err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "WRITE by other to a 0644 file"
        );
        let f600 = lookup(&mut owner, &work, "f600")
            .await
            .expect("LOOKUP f600");
        assert_eq!(
            read(&mut other, &f600, 0, 16).await.err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "READ by other of a 0600 file"
        );
    });
}

/// Either refusal POSIX allows for a permission failure.
fn is_denied(r: Result<(), nfsstat3>) -> bool {
    matches!(
        r,
        Err(nfsstat3::NFS3ERR_ACCES) | Err(nfsstat3::NFS3ERR_PERM)
    )
}

#[test]
fn sticky_directory_lets_only_owners_and_root_remove_or_rename() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let root = admin.root_nfs_fh3();
        let tmp = mkdir(&mut admin, &root, "tmp", 0o1777).await;
        let a = getattr(&mut admin, &tmp).await.expect("GETATTR tmp");
        assert_eq!(a.mode & 0o7777, 0o1777, "MKDIR keeps the sticky bit");

        let mut alice = mount(&server, 1000, 1000).await;
        let mut bob = mount(&server, 2000, 2000).await;
        create_file(&mut alice, &tmp, "alices", 0o666).await;
        create_file(&mut alice, &tmp, "alices2", 0o666).await;
        create_file(&mut alice, &tmp, "alices3", 0o666).await;

        let r = remove(&mut bob, &tmp, "alices").await;
        assert!(
            is_denied(r),
            "bob removing alice's file in a sticky dir: {r:?}"
        );
        let r = rename(&mut bob, &tmp, "alices", &tmp, "bobs-now").await;
        assert!(
            is_denied(r),
            "bob renaming alice's file in a sticky dir: {r:?}"
        );
        let bobs = create_file(&mut bob, &tmp, "bobs", 0o666).await;
        let r = rename(&mut bob, &tmp, "bobs", &tmp, "alices").await;
        assert!(
            is_denied(r),
            "bob replacing alice's file by rename in a sticky dir: {r:?}"
        );
        lookup(&mut admin, &tmp, "alices")
            .await
            .expect("alice's file survives bob's attempts");
        assert_eq!(lookup(&mut admin, &tmp, "bobs").await, Ok(bobs));

        remove(&mut alice, &tmp, "alices")
            .await
            .expect("the owner may remove her file");
        remove(&mut admin, &tmp, "alices2")
            .await
            .expect("root may remove anyone's file");
        remove(&mut bob, &tmp, "bobs")
            .await
            .expect("bob may remove his own file");

        // Without the sticky bit, write permission on the directory is enough.
        let open = mkdir(&mut admin, &root, "open", 0o777).await;
        create_file(&mut alice, &open, "alices", 0o644).await;
        remove(&mut bob, &open, "alices")
            .await
            .expect("a 0777 directory without sticky bit lets others remove");
    });
}

#[test]
fn setgid_directory_passes_its_group_and_setgid_bit_down() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let root = admin.root_nfs_fh3();
        let shared = mkdir(&mut admin, &root, "shared", 0o777).await;
        setattr(
            &mut admin,
            &shared,
            sattr3 {
                mode: Nfs3Option::Some(0o2777),
                gid: Nfs3Option::Some(500),
                ..Default::default()
            },
        )
        .await
        .expect("SETATTR gid 500 + setgid");
        let a = getattr(&mut admin, &shared).await.expect("GETATTR");
        assert_eq!((a.gid, a.mode & 0o7777), (500, 0o2777));

        let mut user = mount(&server, 1000, 1000).await;
        let f = create_file(&mut user, &shared, "f", 0o644).await;
        let fa = getattr(&mut user, &f).await.expect("GETATTR f");
        assert_eq!(
            (fa.uid, fa.gid),
            (1000, 500),
            "a file in a setgid dir takes the directory's group"
        );
        let d = mkdir(&mut user, &shared, "d", 0o755).await;
        let da = getattr(&mut user, &d).await.expect("GETATTR d");
        assert_eq!(da.gid, 500, "a subdirectory takes the directory's group");
        assert_eq!(
            da.mode & 0o2000,
            0o2000,
            "a subdirectory of a setgid dir is setgid too"
        );

        // Outside the setgid directory the creator's group applies.
        let work = mkdir(&mut admin, &root, "plain", 0o777).await;
        let g = create_file(&mut user, &work, "g", 0o644).await;
        assert_eq!(getattr(&mut user, &g).await.expect("GETATTR g").gid, 1000);
    });
}

#[test]
fn write_by_a_non_owner_clears_setuid_and_setgid() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let work = shared_workdir(&mut admin).await;
        let mut owner = mount(&server, 1000, 1000).await;
        let f = create_file(&mut owner, &work, "prog", 0o777).await;
        setattr(&mut owner, &f, mode_attr(0o6777))
            .await
            .expect("the owner may set suid+sgid on her file (group is hers)");
        let a = getattr(&mut owner, &f).await.expect("GETATTR");
        assert_eq!(a.mode & 0o7777, 0o6777);

        let mut other = mount(&server, 2000, 2000).await;
        write(&mut other, &f, 0, b"patched", stable_how::FILE_SYNC)
            .await
            .expect("0777 file is writable by others");
        let a = getattr(&mut owner, &f).await.expect("GETATTR");
        assert_eq!(
            a.mode & 0o7777,
            0o0777,
            "suid and sgid are cleared by a non-owner's write, the rest stays"
        );
    });
}

#[test]
fn only_root_changes_owners_and_only_owners_change_modes() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let work = shared_workdir(&mut admin).await;
        let mut owner = mount(&server, 1000, 1000).await;
        let mut other = mount(&server, 2000, 2000).await;
        let f = create_file(&mut owner, &work, "f", 0o644).await;
        let uid = |u: u32| sattr3 {
            uid: Nfs3Option::Some(u),
            ..Default::default()
        };
        let gid = |g: u32| sattr3 {
            gid: Nfs3Option::Some(g),
            ..Default::default()
        };

        assert_eq!(
            setattr(&mut owner, &f, uid(2000)).await,
            Err(nfsstat3::NFS3ERR_PERM),
            "an owner may not give her file away"
        );
        assert_eq!(
            setattr(&mut owner, &f, gid(3000)).await,
            Err(nfsstat3::NFS3ERR_PERM),
            "an owner may not chgrp to a group she is not in"
        );
        assert_eq!(
            setattr(&mut other, &f, mode_attr(0o777)).await,
            Err(nfsstat3::NFS3ERR_PERM),
            "a non-owner may not chmod"
        );
        let a = getattr(&mut admin, &f).await.expect("GETATTR");
        assert_eq!((a.uid, a.gid, a.mode & 0o7777), (1000, 1000, 0o644));

        setattr(&mut owner, &f, mode_attr(0o600))
            .await
            .expect("the owner may chmod");
        setattr(&mut admin, &f, uid(2000))
            .await
            .expect("root may chown");
        let a = getattr(&mut admin, &f).await.expect("GETATTR");
        assert_eq!((a.uid, a.mode & 0o7777), (2000, 0o600));
        assert_eq!(
            read(&mut owner, &f, 0, 10).await.err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "the former owner lost access to a 0600 file"
        );
    });
}

#[test]
fn auth_none_callers_act_as_the_anonymous_user() {
    let server = Server::start();
    block_on(LIMIT, async {
        let mut admin = mount(&server, 0, 0).await;
        let work = shared_workdir(&mut admin).await;
        let private = mkdir(&mut admin, &work, "private", 0o700).await;

        let mut anon = mount_with(&server, "/default", opaque_auth::default())
            .await
            .expect("MOUNT with AUTH_NONE");
        let f = create_file(&mut anon, &work, "anon-file", 0o644).await;
        let a = getattr(&mut anon, &f).await.expect("GETATTR");
        assert_eq!(a.uid, 65534, "AUTH_NONE creates files as the anonymous uid");
        assert_eq!(
            lookup(&mut anon, &private, "x").await.err(),
            Some(nfsstat3::NFS3ERR_ACCES),
            "AUTH_NONE is not root"
        );
    });
}
