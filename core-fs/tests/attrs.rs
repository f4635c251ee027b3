//! SETATTR and the POSIX timestamp rules, on both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;

fn set_mode(mode: u32) -> SetAttr {
    SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    }
}

fn set_size(size: u64) -> SetAttr {
    SetAttr {
        size: Some(size),
        ..SetAttr::default()
    }
}

fn ts(secs: i64) -> Timestamp {
    Timestamp::new(secs, 0)
}

both_backends! {
    // ---- ownership and mode ----

    fn chmod_by_the_owner_changes_the_mode(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        let w = fx.fs.setattr(&user(1000), f.ino, &set_mode(0o600), None).expect("chmod");
        assert_eq!(w.after.mode, 0o600);
        assert_eq!(fx.attr(f.ino).mode, 0o600);
    }

    fn chmod_by_a_non_owner_is_perm(fx) {
        let f = fx.file_with(fx.root(), "f", 0o666, 1000, 1000);
        assert_err!(fx.fs.setattr(&user(1001), f.ino, &set_mode(0o777), None), FsError::Perm);
        assert_eq!(fx.attr(f.ino).mode, 0o666);
    }

    fn chmod_by_root_works_on_any_file(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        fx.fs.setattr(&root_cred(), f.ino, &set_mode(0o4755), None).expect("chmod");
        assert_eq!(fx.attr(f.ino).mode, 0o4755);
    }

    fn chown_by_a_non_root_owner_is_perm(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        let give_away = SetAttr { uid: Some(1001), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&user(1000), f.ino, &give_away, None), FsError::Perm);
        assert_eq!(fx.attr(f.ino).uid, 1000);
        let same = SetAttr { uid: Some(1000), ..SetAttr::default() };
        fx.fs.setattr(&user(1000), f.ino, &same, None).expect("chown to self is allowed");
    }

    fn chown_by_root_changes_the_owner(fx) {
        let f = fx.file(fx.root(), "f");
        let set = SetAttr { uid: Some(42), gid: Some(43), ..SetAttr::default() };
        let w = fx.fs.setattr(&root_cred(), f.ino, &set, None).expect("chown");
        assert_eq!((w.after.uid, w.after.gid), (42, 43));
    }

    fn chgrp_by_the_owner_to_one_of_their_groups_is_allowed(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        let alice = user_in(1000, 1000, &[500]);
        let set = SetAttr { gid: Some(500), ..SetAttr::default() };
        fx.fs.setattr(&alice, f.ino, &set, None).expect("chgrp");
        assert_eq!(fx.attr(f.ino).gid, 500);
    }

    fn chgrp_by_the_owner_to_a_foreign_group_is_perm(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        let alice = user_in(1000, 1000, &[500]);
        let set = SetAttr { gid: Some(600), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&alice, f.ino, &set, None), FsError::Perm);
        assert_eq!(fx.attr(f.ino).gid, 1000);
    }

    fn chgrp_by_a_non_owner_is_perm_even_within_the_group(fx) {
        let f = fx.file_with(fx.root(), "f", 0o666, 1000, 1000);
        let bob = user_in(1001, 1001, &[500, 1000]);
        let set = SetAttr { gid: Some(500), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&bob, f.ino, &set, None), FsError::Perm);
    }

    fn chown_clears_setuid_and_setgid_of_a_regular_file(fx) {
        let f = fx.file_with(fx.root(), "f", 0o6755, 1000, 1000);
        let set = SetAttr { uid: Some(1001), ..SetAttr::default() };
        fx.fs.setattr(&root_cred(), f.ino, &set, None).expect("chown");
        assert_eq!(fx.attr(f.ino).mode, 0o755);
    }

    fn chmod_setgid_by_a_non_member_drops_the_bit(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 500);
        fx.fs.setattr(&user(1000), f.ino, &set_mode(0o2755), None).expect("chmod");
        assert_eq!(fx.attr(f.ino).mode, 0o755);
        let member = user_in(1000, 1000, &[500]);
        fx.fs.setattr(&member, f.ino, &set_mode(0o2755), None).expect("chmod as member");
        assert_eq!(fx.attr(f.ino).mode, 0o2755);
    }

    // ---- guard ----

    fn setattr_with_a_stale_ctime_guard_fails(fx) {
        let f = fx.file(fx.root(), "f");
        let wrong = Timestamp::new(f.ctime.secs - 10, 0);
        assert_err!(fx.fs.setattr(&root_cred(), f.ino, &set_mode(0o600), Some(wrong)), FsError::GuardFailed);
        assert_eq!(fx.attr(f.ino).mode, 0o644);
        fx.fs
            .setattr(&root_cred(), f.ino, &set_mode(0o600), Some(f.ctime))
            .expect("matching guard");
        assert_eq!(fx.attr(f.ino).mode, 0o600);
    }

    // ---- size ----

    fn a_truncate_refused_by_the_ctime_guard_keeps_the_data(fx) {
        let f = fx.file(fx.root(), "f");
        let data = pattern(3, 150_000);
        fx.write(f.ino, 0, &data);
        let wrong = Timestamp::new(1, 0);
        assert_err!(fx.fs.setattr(&root_cred(), f.ino, &set_size(10), Some(wrong)), FsError::GuardFailed);
        assert_eq!(fx.attr(f.ino).size, 150_000);
        assert!(fx.read_all(f.ino) == data, "a refused SETATTR destroyed file data");
    }


    fn truncate_shrinks_and_extending_reads_zeros(fx) {
        let f = fx.file(fx.root(), "f");
        let data = pattern(7, 200_000);
        fx.write(f.ino, 0, &data);
        fx.fs.setattr(&root_cred(), f.ino, &set_size(100_000), None).expect("shrink");
        assert_eq!(fx.attr(f.ino).size, 100_000);
        assert_eq!(fx.read_all(f.ino), &data[..100_000]);
        fx.fs.setattr(&root_cred(), f.ino, &set_size(300_000), None).expect("extend");
        let got = fx.read_all(f.ino);
        assert_eq!(got.len(), 300_000);
        assert_eq!(&got[..100_000], &data[..100_000]);
        assert!(got[100_000..].iter().all(|b| *b == 0), "old bytes came back after truncate");
    }

    fn a_shrink_never_runs_where_waiting_for_the_disk_is_refused_but_an_extension_does(fx) {
        // The NFS server tries SETATTR on its executor inside `memory_only`
        // and `deferring_sync`: cutting chunk data misses before anything
        // changes; growing a file is metadata alone and owes its log sync.
        let f = fx.file(fx.root(), "f");
        let data = pattern(5, 100_000);
        fx.write(f.ino, 0, &data);
        let shrink = set_size(10);
        let tried = memory_only(|| fx.fs.setattr(&root_cred(), f.ino, &shrink, None));
        assert!(tried.is_none(), "the shrink must miss");
        assert_eq!(fx.attr(f.ino).size, 100_000);
        assert!(fx.read_all(f.ino) == data, "a missed SETATTR changed the file");
        let grow = set_size(150_000);
        let (done, owed) = deferring_sync(|| {
            memory_only(|| fx.fs.setattr(&root_cred(), f.ino, &grow, None))
        });
        done.expect("an extension runs in memory").expect("setattr");
        assert!(owed, "a durable SETATTR must leave its sync to the caller");
        assert_eq!(fx.attr(f.ino).size, 150_000);
    }

    fn truncate_to_zero_empties_the_file(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, &pattern(1, 100_000));
        fx.fs.setattr(&root_cred(), f.ino, &set_size(0), None).expect("truncate");
        assert!(fx.read_all(f.ino).is_empty());
        fx.fs.setattr(&root_cred(), f.ino, &set_size(10), None).expect("extend");
        assert_eq!(fx.read_all(f.ino), vec![0u8; 10]);
    }

    fn setattr_size_of_a_directory_is_isdir(fx) {
        let d = fx.dir(fx.root(), "d");
        assert_err!(fx.fs.setattr(&root_cred(), d.ino, &set_size(0), None), FsError::IsDir);
        assert_eq!(fx.attr(d.ino).size, d.size);
    }

    fn setattr_size_of_a_symlink_is_refused(fx) {
        let (l, _) = fx
            .fs
            .symlink(&root_cred(), fx.root(), b"l", b"target", &SetAttr::default())
            .expect("symlink");
        assert!(fx.fs.setattr(&root_cred(), l.ino, &set_size(0), None).is_err());
        assert_eq!(fx.fs.readlink(&root_cred(), l.ino).expect("readlink").1, b"target");
    }

    fn truncate_without_write_permission_is_access(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        fx.write(f.ino, 0, b"keep me");
        assert_err!(fx.fs.setattr(&user(1001), f.ino, &set_size(0), None), FsError::Access);
        assert_eq!(fx.read_all(f.ino), b"keep me");
    }

    fn setattr_of_a_removed_file_is_stale(fx) {
        let f = fx.file(fx.root(), "f");
        fx.fs.remove(&root_cred(), fx.root(), b"f").expect("remove");
        assert_err!(fx.fs.setattr(&root_cred(), f.ino, &set_mode(0o600), None), FsError::Stale);
    }

    // ---- timestamps ----

    fn a_new_file_has_all_three_times_equal(fx) {
        let f = fx.file(fx.root(), "f");
        assert_eq!(f.atime, f.mtime);
        assert_eq!(f.mtime, f.ctime);
        assert!(f.ctime.secs > 1_600_000_000, "times are wall-clock times");
    }

    fn create_updates_the_parent_mtime_and_ctime(fx) {
        let root = fx.root();
        let before = fx.attr(root);
        tick();
        let (_, wcc) = fx
            .fs
            .create(&root_cred(), root, b"f", &CreateHow::Guarded(SetAttr::default()))
            .expect("create");
        let after = fx.attr(root);
        assert!(after.mtime > before.mtime);
        assert!(after.ctime > before.ctime);
        assert_eq!(wcc.before, PreAttr::from(&before));
        assert_eq!(wcc.after, after);
    }

    fn mkdir_symlink_link_remove_and_rmdir_update_the_parent_times(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let f = fx.file(root, "f");
        let cred = root_cred();
        type Op<'a> = Box<dyn Fn() -> FsResult<Wcc> + 'a>;
        let ops: Vec<(&str, Op)> = vec![
            ("mkdir", Box::new(|| fx.fs.mkdir(&cred, d.ino, b"sub", &SetAttr::default()).map(|r| r.1))),
            ("symlink", Box::new(|| fx.fs.symlink(&cred, d.ino, b"l", b"t", &SetAttr::default()).map(|r| r.1))),
            ("link", Box::new(|| fx.fs.link(&cred, f.ino, d.ino, b"h").map(|r| r.1))),
            ("remove", Box::new(|| fx.fs.remove(&cred, d.ino, b"l"))),
            ("rmdir", Box::new(|| fx.fs.rmdir(&cred, d.ino, b"sub"))),
        ];
        for (what, op) in ops {
            let before = fx.attr(d.ino);
            tick();
            let wcc = op().unwrap_or_else(|e| panic!("{what}: {e:?}"));
            let after = fx.attr(d.ino);
            assert!(after.mtime > before.mtime, "{what} did not update mtime");
            assert!(after.ctime > before.ctime, "{what} did not update ctime");
            assert_eq!(wcc.after, after, "{what} wcc");
        }
    }

    fn link_and_unlink_update_the_file_ctime_but_not_its_mtime(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        tick();
        fx.fs.link(&root_cred(), f.ino, root, b"g").expect("link");
        let linked = fx.attr(f.ino);
        assert!(linked.ctime > f.ctime);
        assert_eq!(linked.mtime, f.mtime);
        tick();
        fx.fs.remove(&root_cred(), root, b"g").expect("unlink");
        let unlinked = fx.attr(f.ino);
        assert!(unlinked.ctime > linked.ctime);
        assert_eq!(unlinked.mtime, f.mtime);
    }

    fn write_updates_mtime_and_ctime(fx) {
        let f = fx.file(fx.root(), "f");
        tick();
        let wcc = fx.write(f.ino, 0, b"x");
        assert_eq!(wcc.before.mtime, f.mtime);
        assert!(wcc.after.mtime > f.mtime);
        assert!(wcc.after.ctime > f.ctime);
        assert_eq!(fx.attr(f.ino).mtime, wcc.after.mtime);
    }

    fn setattr_updates_ctime_but_not_mtime(fx) {
        let f = fx.file(fx.root(), "f");
        tick();
        fx.fs.setattr(&root_cred(), f.ino, &set_mode(0o600), None).expect("chmod");
        let a = fx.attr(f.ino);
        assert!(a.ctime > f.ctime);
        assert_eq!(a.mtime, f.mtime);
    }

    fn truncate_updates_mtime_and_ctime(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"abcdef");
        let before = fx.attr(f.ino);
        tick();
        fx.fs.setattr(&root_cred(), f.ino, &set_size(2), None).expect("truncate");
        let a = fx.attr(f.ino);
        assert!(a.mtime > before.mtime);
        assert!(a.ctime > before.ctime);
    }

    fn truncate_to_the_current_size_changes_nothing(fx) {
        // ftruncate(2): the times change only when the size does.
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"abcdef");
        let before = fx.attr(f.ino);
        tick();
        let w = fx.fs.setattr(&root_cred(), f.ino, &set_size(6), None).expect("truncate");
        assert_eq!(w.after, before);
        assert_eq!(fx.attr(f.ino), before);
        let stale = Some(Timestamp::new(1, 0));
        assert_err!(fx.fs.setattr(&root_cred(), f.ino, &set_size(6), stale), FsError::GuardFailed);
    }

    fn truncate_to_the_current_size_still_needs_write_permission(fx) {
        let f = fx.file_with(fx.root(), "f", 0o644, 1000, 1000);
        assert_err!(fx.fs.setattr(&user(1001), f.ino, &set_size(0), None), FsError::Access);
        fx.fs.setattr(&user(1000), f.ino, &set_size(0), None).expect("the owner may");
    }

    fn set_time_exact_stores_the_given_times(fx) {
        let f = fx.file(fx.root(), "f");
        tick();
        let set = SetAttr {
            atime: SetTime::Exact(Timestamp::new(1_000_000, 5)),
            mtime: SetTime::Exact(Timestamp::new(2_000_000, 7)),
            ..SetAttr::default()
        };
        fx.fs.setattr(&root_cred(), f.ino, &set, None).expect("utimes");
        let a = fx.attr(f.ino);
        assert_eq!(a.atime, Timestamp::new(1_000_000, 5));
        assert_eq!(a.mtime, Timestamp::new(2_000_000, 7));
        assert!(a.ctime > f.ctime, "ctime is always the server's time");
    }

    fn set_time_server_now_stores_the_current_time(fx) {
        let f = fx.file(fx.root(), "f");
        let old = SetAttr { atime: SetTime::Exact(ts(1000)), mtime: SetTime::Exact(ts(1000)), ..SetAttr::default() };
        fx.fs.setattr(&root_cred(), f.ino, &old, None).expect("set old times");
        let start = Timestamp::now();
        let now = SetAttr { atime: SetTime::ServerNow, mtime: SetTime::ServerNow, ..SetAttr::default() };
        fx.fs.setattr(&root_cred(), f.ino, &now, None).expect("touch");
        let end = Timestamp::now();
        let a = fx.attr(f.ino);
        for t in [a.atime, a.mtime] {
            assert!(t >= start && t <= end, "{t:?} not within [{start:?}, {end:?}]");
        }
    }

    fn set_time_exact_by_a_non_owner_is_perm(fx) {
        let f = fx.file_with(fx.root(), "f", 0o666, 1000, 1000);
        let set = SetAttr { mtime: SetTime::Exact(ts(5)), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&user(1001), f.ino, &set, None), FsError::Perm);
        assert_ne!(fx.attr(f.ino).mtime, ts(5));
    }

    fn set_time_server_now_needs_ownership_or_write_permission(fx) {
        let writable = fx.file_with(fx.root(), "w", 0o666, 1000, 1000);
        let readonly = fx.file_with(fx.root(), "r", 0o644, 1000, 1000);
        let set = SetAttr { mtime: SetTime::ServerNow, ..SetAttr::default() };
        fx.fs.setattr(&user(1001), writable.ino, &set, None).expect("writer may touch");
        assert_err!(fx.fs.setattr(&user(1001), readonly.ino, &set, None), FsError::Access | FsError::Perm);
        fx.fs.setattr(&user(1000), readonly.ino, &set, None).expect("owner may touch");
    }

    fn read_refreshes_an_atime_not_newer_than_mtime(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"data");
        let old = SetAttr { atime: SetTime::Exact(ts(1000)), ..SetAttr::default() };
        fx.fs.setattr(&root_cred(), f.ino, &old, None).expect("old atime");
        let start = Timestamp::now();
        let r = fx.fs.read(&root_cred(), f.ino, 0, 10).expect("read");
        assert!(r.attr.atime >= start, "read did not update an old atime");
        assert_eq!(fx.attr(f.ino).atime, r.attr.atime);
    }

    fn read_does_not_refresh_a_recent_atime_newer_than_mtime(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"data");
        fx.fs.read(&root_cred(), f.ino, 0, 10).expect("first read");
        let first = fx.attr(f.ino).atime;
        assert!(first > fx.attr(f.ino).mtime);
        tick();
        fx.fs.read(&root_cred(), f.ino, 0, 10).expect("second read");
        assert_eq!(fx.attr(f.ino).atime, first, "relatime: a recent atime is kept");
        tick();
        fx.write(f.ino, 0, b"DATA");
        fx.fs.read(&root_cred(), f.ino, 0, 10).expect("read after write");
        assert!(fx.attr(f.ino).atime > first, "a read after a write refreshes atime");
    }

    fn read_refreshes_an_atime_older_than_a_day(fx) {
        let f = fx.file(fx.root(), "f");
        let now = Timestamp::now();
        let set = SetAttr {
            mtime: SetTime::Exact(ts(1000)),
            atime: SetTime::Exact(Timestamp::new(now.secs - 2 * 24 * 3600, 0)),
            ..SetAttr::default()
        };
        fx.fs.setattr(&root_cred(), f.ino, &set, None).expect("times");
        fx.fs.read(&root_cred(), f.ino, 0, 10).expect("read");
        assert!(fx.attr(f.ino).atime >= now);
    }

    fn read_does_not_change_mtime_or_ctime(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"data");
        let before = fx.attr(f.ino);
        tick();
        fx.fs.read(&root_cred(), f.ino, 0, 10).expect("read");
        let after = fx.attr(f.ino);
        assert_eq!(after.mtime, before.mtime);
        assert_eq!(after.ctime, before.ctime);
    }
}

/// A SETATTR that shrinks a file decides what chunk data to cut from the
/// size it reads before its transaction. Here a second filesystem on the
/// same metadata and chunks extends the file unseen by the first one's
/// cache, so the first reads the old size: the shrink must not commit a
/// size below the new one without cutting the new bytes (they would come
/// back when the file grows again).
#[test]
fn a_shrink_never_keeps_bytes_written_after_the_size_it_read() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kv = std::sync::Arc::new(nitrofs_metadata::MemKv::new());
    let chunks = std::sync::Arc::new(
        nitrofs_chunk_store::LocalChunkStore::open(&dir.path().join("chunks"))
            .expect("chunk store"),
    );
    let open = || FileSystem::open(kv.clone(), chunks.clone(), small_chunks()).expect("open");
    let first = open();
    let root = first.volume("default").expect("volume").root;
    let cred = root_cred();
    let (f, _) = first
        .create(&cred, root, b"f", &CreateHow::Guarded(SetAttr::default()))
        .expect("create");
    first
        .write(&cred, f.ino, 0, &pattern(1, 100), false)
        .expect("write");
    assert_eq!(first.getattr(f.ino).expect("getattr").size, 100);
    let second = open();
    second
        .write(&cred, f.ino, 100, &[0xAB; 100], false)
        .expect("extend");
    let shrunk = first.setattr(&cred, f.ino, &set_size(150), None);
    let grown = second.setattr(&cred, f.ino, &set_size(300), None);
    grown.expect("grow");
    let data = second.read(&cred, f.ino, 0, 300).expect("read").data;
    match shrunk {
        // Cut to 150, then grown: what lay past 150 must read as zeros.
        Ok(_) => assert!(
            data[150..].iter().all(|b| *b == 0),
            "bytes past a shrink came back when the file grew"
        ),
        // Refused after retrying against its stale view: nothing was cut.
        Err(_) => assert_eq!(&data[100..200], &[0xAB; 100][..]),
    }
}
