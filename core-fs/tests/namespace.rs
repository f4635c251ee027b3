//! Namespace operations: lookup, getattr, create, mkdir, symlink, mknod,
//! link, remove, rmdir and name limits, on both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;

fn guarded() -> CreateHow {
    CreateHow::Guarded(SetAttr::default())
}

both_backends! {
    fn default_volume_root_is_an_empty_root_owned_directory(fx) {
        let a = fx.attr(fx.root());
        assert_eq!(a.kind, FileType::Directory);
        assert_eq!(a.nlink, 2);
        assert_eq!(a.mode, 0o755);
        assert_eq!((a.uid, a.gid), (0, 0));
        assert_eq!(a.volume, fx.volume().id);
        assert!(fx.names(fx.root()).is_empty());
    }

    fn lookup_returns_what_create_returned_and_getattr_agrees(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        let found = fx.lookup(root, "f").expect("lookup");
        assert_eq!(found, f);
        assert_eq!(fx.attr(f.ino), f);
        assert_eq!(f.kind, FileType::Regular);
        assert_eq!(f.nlink, 1);
        assert_eq!(f.size, 0);
        assert_eq!(f.mode, 0o644);
        assert_eq!(f.volume, fx.volume().id);
    }

    fn lookup_of_a_missing_name_is_not_found(fx) {
        assert_err!(fx.lookup(fx.root(), "nope"), FsError::NotFound);
    }

    fn lookups_follow_every_change_of_a_name_at_once(fx) {
        // Lookups are answered from a cache of entries that changes fill
        // and replace: absent, created, renamed away, replaced, removed.
        let root = fx.root();
        assert_err!(fx.lookup(root, "a"), FsError::NotFound);
        let a = fx.file(root, "a");
        assert_eq!(fx.lookup(root, "a").expect("created").ino, a.ino);
        assert_err!(fx.lookup(root, "b"), FsError::NotFound);
        fx.fs.rename(&root_cred(), root, b"a", root, b"b").expect("rename");
        assert_err!(fx.lookup(root, "a"), FsError::NotFound);
        assert_eq!(fx.lookup(root, "b").expect("renamed").ino, a.ino);
        let c = fx.file(root, "c");
        fx.fs.rename(&root_cred(), root, b"c", root, b"b").expect("replace");
        assert_eq!(fx.lookup(root, "b").expect("replaced").ino, c.ino);
        assert_err!(fx.fs.getattr(a.ino), FsError::Stale);
        fx.fs.remove(&root_cred(), root, b"b").expect("remove");
        assert_err!(fx.lookup(root, "b"), FsError::NotFound);
        let again = fx.file(root, "b");
        assert_ne!(again.ino, c.ino);
        assert_eq!(fx.lookup(root, "b").expect("created again").ino, again.ino);
    }

    fn lookup_of_dot_and_dotdot(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert_eq!(fx.lookup(root, ".").expect("root .").ino, root);
        assert_eq!(fx.lookup(root, "..").expect("root ..").ino, root);
        assert_eq!(fx.lookup(d.ino, ".").expect("d .").ino, d.ino);
        assert_eq!(fx.lookup(d.ino, "..").expect("d ..").ino, root);
    }

    fn lookup_inside_a_file_is_not_dir(fx) {
        let f = fx.file(fx.root(), "f");
        assert_err!(fx.lookup(f.ino, "x"), FsError::NotDir);
    }

    fn getattr_of_an_unknown_inode_is_stale(fx) {
        assert_err!(fx.fs.getattr(987_654_321), FsError::Stale);
    }

    fn lookup_path_walks_components(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(a.ino, "b");
        let f = fx.file(b.ino, "f");
        let cred = root_cred();
        assert_eq!(fx.fs.lookup_path(&cred, root, "a/b/f").expect("a/b/f").ino, f.ino);
        assert_eq!(fx.fs.lookup_path(&cred, root, "/a//b/").expect("/a//b/").ino, b.ino);
        assert_eq!(fx.fs.lookup_path(&cred, root, "").expect("empty").ino, root);
        assert_eq!(fx.fs.lookup_path(&cred, a.ino, "b/f").expect("from a").ino, f.ino);
        assert_err!(fx.fs.lookup_path(&cred, root, "a/x/f"), FsError::NotFound);
        assert_err!(fx.fs.lookup_path(&cred, root, "a/b/f/g"), FsError::NotDir);
        assert_err!(fx.fs.lookup_path(&cred, root, "a/../a"), FsError::Invalid(_));
    }

    fn create_unchecked_reuses_an_existing_file_and_truncates_only_on_size_zero(fx) {
        let root = fx.root();
        let cred = root_cred();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, b"hello");
        let again = fx
            .fs
            .create(&cred, root, b"f", &CreateHow::Unchecked(SetAttr::default()))
            .expect("unchecked on existing");
        assert_eq!(again.0.ino, f.ino);
        assert_eq!(again.0.size, 5);
        assert_eq!(fx.read_all(f.ino), b"hello");
        let zero = SetAttr { size: Some(0), ..SetAttr::default() };
        let truncated = fx
            .fs
            .create(&cred, root, b"f", &CreateHow::Unchecked(zero))
            .expect("unchecked size 0");
        assert_eq!(truncated.0.ino, f.ino);
        assert_eq!(truncated.0.size, 0);
        assert_eq!(fx.attr(f.ino).size, 0);
        assert!(fx.read_all(f.ino).is_empty());
    }

    fn a_truncating_create_never_runs_where_waiting_for_the_disk_is_refused(fx) {
        // The NFS server tries CREATE on its executor inside `memory_only`;
        // one that must cut chunk data misses before changing anything and
        // runs again where it may wait.
        let root = fx.root();
        let cred = root_cred();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, b"hello");
        let zero = SetAttr { size: Some(0), ..SetAttr::default() };
        let how = CreateHow::Unchecked(zero);
        let tried = memory_only(|| fx.fs.create(&cred, root, b"f", &how));
        assert!(tried.is_none(), "the attempt must miss");
        assert_eq!(fx.attr(f.ino).size, 5);
        assert_eq!(fx.read_all(f.ino), b"hello");
        let (a, _) = fx.fs.create(&cred, root, b"f", &how).expect("create where it may wait");
        assert_eq!(a.size, 0);
        assert!(fx.read_all(f.ino).is_empty());
    }

    fn a_create_inside_deferring_sync_is_committed_and_owes_the_log_sync(fx) {
        let root = fx.root();
        let how = CreateHow::Guarded(SetAttr::default());
        let (made, owed) = deferring_sync(|| fx.fs.create(&root_cred(), root, b"f", &how));
        let (a, _) = made.expect("create");
        assert!(owed, "a durable create must leave its sync to the caller");
        assert_eq!(fx.lookup(root, "f").expect("visible at once").ino, a.ino);
        fx.fs.sync_metadata().expect("sync");
        // Reads owe nothing.
        let (_, owed) = deferring_sync(|| fx.fs.lookup(&root_cred(), root, b"f"));
        assert!(!owed);
    }

    fn create_unchecked_applies_the_requested_mode_to_a_new_file(fx) {
        let set = SetAttr { mode: Some(0o600), ..SetAttr::default() };
        let (a, _) = fx
            .fs
            .create(&root_cred(), fx.root(), b"f", &CreateHow::Unchecked(set))
            .expect("create");
        assert_eq!(a.mode, 0o600);
    }

    fn create_guarded_on_an_existing_name_is_exists(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.dir(root, "d");
        assert_err!(fx.fs.create(&root_cred(), root, b"f", &guarded()), FsError::Exists);
        assert_err!(fx.fs.create(&root_cred(), root, b"d", &guarded()), FsError::Exists);
        assert_eq!(fx.lookup(root, "f").expect("still there").ino, f.ino);
    }

    fn create_unchecked_on_a_directory_fails(fx) {
        let root = fx.root();
        fx.dir(root, "d");
        let r = fx.fs.create(&root_cred(), root, b"d", &CreateHow::Unchecked(SetAttr::default()));
        assert_err!(r, FsError::Exists | FsError::IsDir);
    }

    fn create_exclusive_retry_with_the_same_verifier_returns_the_same_inode(fx) {
        let root = fx.root();
        let cred = root_cred();
        let (first, _) = fx
            .fs
            .create(&cred, root, b"x", &CreateHow::Exclusive(*b"verifier"))
            .expect("exclusive");
        let (retry, _) = fx
            .fs
            .create(&cred, root, b"x", &CreateHow::Exclusive(*b"verifier"))
            .expect("exclusive retry");
        assert_eq!(retry.ino, first.ino);
        assert_eq!(retry.generation, first.generation);
        assert_eq!(fx.names(root), ["x"]);
    }

    fn create_exclusive_with_another_verifier_is_exists(fx) {
        let root = fx.root();
        let cred = root_cred();
        fx.fs
            .create(&cred, root, b"x", &CreateHow::Exclusive(*b"verifier"))
            .expect("exclusive");
        assert_err!(
            fx.fs.create(&cred, root, b"x", &CreateHow::Exclusive(*b"another!")),
            FsError::Exists
        );
        let plain = fx.file(root, "plain");
        assert_err!(
            fx.fs.create(&cred, root, b"plain", &CreateHow::Exclusive(*b"verifier")),
            FsError::Exists
        );
        assert_eq!(fx.lookup(root, "plain").expect("plain").ino, plain.ino);
    }

    fn create_exclusive_verifier_is_forgotten_after_setattr(fx) {
        let root = fx.root();
        let cred = root_cred();
        let (a, _) = fx
            .fs
            .create(&cred, root, b"x", &CreateHow::Exclusive(*b"verifier"))
            .expect("exclusive");
        let set = SetAttr { mode: Some(0o600), ..SetAttr::default() };
        fx.fs.setattr(&cred, a.ino, &set, None).expect("setattr");
        assert_err!(
            fx.fs.create(&cred, root, b"x", &CreateHow::Exclusive(*b"verifier")),
            FsError::Exists
        );
    }

    fn mkdir_makes_an_empty_directory_with_nlink_two(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert_eq!(d.kind, FileType::Directory);
        assert_eq!(d.nlink, 2);
        assert_eq!(d.mode, 0o755);
        assert!(fx.names(d.ino).is_empty());
        let set = SetAttr { mode: Some(0o700), ..SetAttr::default() };
        let (p, _) = fx.fs.mkdir(&root_cred(), root, b"private", &set).expect("mkdir 0700");
        assert_eq!(p.mode, 0o700);
    }

    fn mkdir_counts_subdirectories_in_the_parent_nlink(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        fx.dir(root, "b");
        fx.file(root, "f");
        assert_eq!(fx.attr(root).nlink, 4, "2 + two subdirectories; files do not count");
        fx.dir(a.ino, "c");
        assert_eq!(fx.attr(a.ino).nlink, 3);
        assert_eq!(fx.attr(root).nlink, 4, "grandchildren do not count");
        fx.fs.rmdir(&root_cred(), a.ino, b"c").expect("rmdir c");
        assert_eq!(fx.attr(a.ino).nlink, 2);
        fx.fs.rmdir(&root_cred(), root, b"b").expect("rmdir b");
        assert_eq!(fx.attr(root).nlink, 3);
    }

    fn mkdir_on_an_existing_name_is_exists(fx) {
        let root = fx.root();
        fx.dir(root, "d");
        fx.file(root, "f");
        assert_err!(fx.fs.mkdir(&root_cred(), root, b"d", &SetAttr::default()), FsError::Exists);
        assert_err!(fx.fs.mkdir(&root_cred(), root, b"f", &SetAttr::default()), FsError::Exists);
        assert_eq!(fx.attr(root).nlink, 3);
    }

    fn new_objects_belong_to_the_caller(fx) {
        let root = fx.root();
        let open = fx.dir_with(root, "open", 0o777, 0, 0);
        let alice = user(1000);
        let f = fx.file_as(&alice, open.ino, "f");
        let d = fx.dir_as(&alice, open.ino, "d");
        assert_eq!((f.uid, f.gid), (1000, 1000));
        assert_eq!((d.uid, d.gid), (1000, 1000));
    }

    fn symlink_stores_its_target_and_readlink_returns_it(fx) {
        let root = fx.root();
        let target = b"../some/where/else";
        let (l, _) = fx
            .fs
            .symlink(&root_cred(), root, b"l", target, &SetAttr::default())
            .expect("symlink");
        assert_eq!(l.kind, FileType::Symlink);
        assert_eq!(l.size, target.len() as u64);
        assert_eq!(l.mode, 0o777);
        assert_eq!(fx.lookup(root, "l").expect("lookup").ino, l.ino);
        let (attr, got) = fx.fs.readlink(&root_cred(), l.ino).expect("readlink");
        assert_eq!(got, target);
        assert_eq!(attr.ino, l.ino);
    }

    fn symlink_refuses_an_existing_name_and_an_empty_target(fx) {
        let root = fx.root();
        fx.file(root, "f");
        assert_err!(
            fx.fs.symlink(&root_cred(), root, b"f", b"x", &SetAttr::default()),
            FsError::Exists
        );
        assert_err!(
            fx.fs.symlink(&root_cred(), root, b"l", b"", &SetAttr::default()),
            FsError::Invalid(_)
        );
        let too_long = vec![b'x'; PATH_MAX + 1];
        assert_err!(
            fx.fs.symlink(&root_cred(), root, b"l", &too_long, &SetAttr::default()),
            FsError::NameTooLong
        );
        assert_eq!(fx.names(root), ["f"]);
    }

    fn readlink_of_a_regular_file_is_invalid(fx) {
        let f = fx.file(fx.root(), "f");
        assert_err!(fx.fs.readlink(&root_cred(), f.ino), FsError::Invalid(_));
    }

    fn mknod_makes_fifos_and_sockets_for_ordinary_users(fx) {
        let open = fx.dir_with(fx.root(), "open", 0o777, 0, 0);
        let alice = user(1000);
        let (p, _) = fx
            .fs
            .mknod(&alice, open.ino, b"pipe", NodeKind::Fifo, &SetAttr::default())
            .expect("fifo");
        assert_eq!(p.kind, FileType::Fifo);
        assert_eq!(p.uid, 1000);
        let (s, _) = fx
            .fs
            .mknod(&alice, open.ino, b"sock", NodeKind::Socket, &SetAttr::default())
            .expect("socket");
        assert_eq!(s.kind, FileType::Socket);
        assert_eq!(fx.lookup(open.ino, "pipe").expect("lookup pipe").kind, FileType::Fifo);
        assert_err!(
            fx.fs.mknod(&alice, open.ino, b"pipe", NodeKind::Fifo, &SetAttr::default()),
            FsError::Exists
        );
    }

    fn mknod_of_a_device_is_perm_for_non_root(fx) {
        let open = fx.dir_with(fx.root(), "open", 0o777, 0, 0);
        assert_err!(
            fx.fs.mknod(&user(1000), open.ino, b"null", NodeKind::CharDevice(1, 3), &SetAttr::default()),
            FsError::Perm
        );
        assert_err!(
            fx.fs.mknod(&user(1000), open.ino, b"sda", NodeKind::BlockDevice(8, 0), &SetAttr::default()),
            FsError::Perm
        );
        assert_err!(fx.lookup(open.ino, "null"), FsError::NotFound);
    }

    fn mknod_of_devices_by_root_records_the_device_numbers(fx) {
        let root = fx.root();
        let (c, _) = fx
            .fs
            .mknod(&root_cred(), root, b"null", NodeKind::CharDevice(1, 3), &SetAttr::default())
            .expect("char device");
        assert_eq!(c.kind, FileType::CharDevice);
        assert_eq!(c.rdev, (1, 3));
        let (b, _) = fx
            .fs
            .mknod(&root_cred(), root, b"sda", NodeKind::BlockDevice(8, 1), &SetAttr::default())
            .expect("block device");
        assert_eq!(b.kind, FileType::BlockDevice);
        assert_eq!(fx.attr(b.ino).rdev, (8, 1));
    }

    fn hard_links_share_one_inode_and_count_names(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, b"shared bytes");
        let (after, _) = fx.fs.link(&root_cred(), f.ino, d.ino, b"g").expect("link");
        assert_eq!(after.ino, f.ino);
        assert_eq!(after.nlink, 2);
        let g = fx.lookup(d.ino, "g").expect("lookup g");
        assert_eq!(g.ino, f.ino);
        assert_eq!(fx.read_all(g.ino), b"shared bytes");
        fx.fs.link(&root_cred(), f.ino, root, b"h").expect("second link");
        assert_eq!(fx.attr(f.ino).nlink, 3);
        fx.write(g.ino, 0, b"SHARED");
        assert_eq!(fx.read_all(f.ino), b"SHARED bytes");
        fx.fs.remove(&root_cred(), root, b"f").expect("remove f");
        assert_eq!(fx.attr(g.ino).nlink, 2);
        assert_eq!(fx.read_all(g.ino), b"SHARED bytes");
    }

    fn link_onto_an_existing_name_is_exists(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.file(root, "g");
        assert_err!(fx.fs.link(&root_cred(), f.ino, root, b"g"), FsError::Exists);
        assert_err!(fx.fs.link(&root_cred(), f.ino, root, b"f"), FsError::Exists);
        assert_eq!(fx.attr(f.ino).nlink, 1);
    }

    fn link_to_a_directory_is_perm(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert_err!(fx.fs.link(&root_cred(), d.ino, root, b"alias"), FsError::Perm);
        assert_eq!(fx.attr(d.ino).nlink, 2);
        assert_err!(fx.lookup(root, "alias"), FsError::NotFound);
    }

    fn remove_of_the_last_link_makes_the_inode_stale(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, b"data");
        fx.fs
            .resolve_handle(f.volume, f.ino, f.generation)
            .expect("handle resolves before remove");
        fx.fs.remove(&root_cred(), root, b"f").expect("remove");
        assert_err!(fx.fs.getattr(f.ino), FsError::Stale);
        assert_err!(fx.fs.resolve_handle(f.volume, f.ino, f.generation), FsError::Stale);
        assert_err!(fx.lookup(root, "f"), FsError::NotFound);
        assert_err!(fx.fs.read(&root_cred(), f.ino, 0, 10), FsError::Stale);
        assert_err!(fx.fs.remove(&root_cred(), root, b"f"), FsError::NotFound);
    }

    fn remove_of_one_of_two_links_keeps_the_inode(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.fs.link(&root_cred(), f.ino, root, b"g").expect("link");
        fx.fs.remove(&root_cred(), root, b"f").expect("remove f");
        let a = fx.fs.resolve_handle(f.volume, f.ino, f.generation).expect("still live");
        assert_eq!(a.nlink, 1);
        fx.fs.remove(&root_cred(), root, b"g").expect("remove g");
        assert_err!(fx.fs.resolve_handle(f.volume, f.ino, f.generation), FsError::Stale);
    }

    fn resolve_handle_with_a_wrong_generation_or_volume_is_stale(fx) {
        let f = fx.file(fx.root(), "f");
        assert_eq!(fx.fs.resolve_handle(f.volume, f.ino, f.generation).expect("ok").ino, f.ino);
        assert_err!(
            fx.fs.resolve_handle(f.volume, f.ino, f.generation.wrapping_add(1)),
            FsError::Stale
        );
        assert_err!(fx.fs.resolve_handle(f.volume + 1, f.ino, f.generation), FsError::Stale);
    }

    fn remove_of_a_directory_is_isdir(fx) {
        let root = fx.root();
        fx.dir(root, "d");
        assert_err!(fx.fs.remove(&root_cred(), root, b"d"), FsError::IsDir);
        assert!(fx.lookup(root, "d").is_ok());
    }

    fn remove_of_dot_or_dotdot_fails(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert!(fx.fs.remove(&root_cred(), d.ino, b".").is_err());
        assert!(fx.fs.remove(&root_cred(), d.ino, b"..").is_err());
        assert_eq!(fx.attr(d.ino).nlink, 2);
        assert_eq!(fx.lookup(root, "d").expect("d").ino, d.ino);
    }

    fn symlinks_fifos_and_devices_can_be_removed(fx) {
        let root = fx.root();
        let (l, _) = fx.fs.symlink(&root_cred(), root, b"l", b"t", &SetAttr::default()).expect("symlink");
        let (p, _) = fx.fs.mknod(&root_cred(), root, b"p", NodeKind::Fifo, &SetAttr::default()).expect("fifo");
        fx.fs.remove(&root_cred(), root, b"l").expect("remove symlink");
        fx.fs.remove(&root_cred(), root, b"p").expect("remove fifo");
        assert_err!(fx.fs.getattr(l.ino), FsError::Stale);
        assert_err!(fx.fs.getattr(p.ino), FsError::Stale);
        assert!(fx.names(root).is_empty());
    }

    fn rmdir_removes_an_empty_directory(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        fx.fs.rmdir(&root_cred(), root, b"d").expect("rmdir");
        assert_err!(fx.fs.getattr(d.ino), FsError::Stale);
        assert_err!(fx.fs.resolve_handle(d.volume, d.ino, d.generation), FsError::Stale);
        assert_err!(fx.lookup(root, "d"), FsError::NotFound);
        assert_eq!(fx.attr(root).nlink, 2);
        assert_err!(fx.fs.rmdir(&root_cred(), root, b"d"), FsError::NotFound);
    }

    fn calls_on_a_removed_directory_are_stale(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        fx.fs.rmdir(&root_cred(), root, b"d").expect("rmdir");
        let cred = root_cred();
        assert_err!(fx.fs.create(&cred, d.ino, b"f", &CreateHow::Guarded(SetAttr::default())), FsError::Stale);
        assert_err!(fx.fs.mkdir(&cred, d.ino, b"sub", &SetAttr::default()), FsError::Stale);
        assert_err!(fx.fs.lookup(&cred, d.ino, b"x"), FsError::Stale);
        assert_err!(fx.fs.lookup(&cred, d.ino, b".."), FsError::Stale);
        let other = fx.file(root, "other");
        assert_err!(fx.fs.link(&cred, other.ino, d.ino, b"l"), FsError::Stale);
        assert_err!(fx.fs.rename(&cred, root, b"other", d.ino, b"moved"), FsError::Stale);
        assert_eq!(fx.names(root), ["other"]);
    }

    fn rmdir_of_a_non_empty_directory_is_not_empty(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        fx.file(d.ino, "f");
        assert_err!(fx.fs.rmdir(&root_cred(), root, b"d"), FsError::NotEmpty);
        let e = fx.dir(root, "e");
        fx.dir(e.ino, "sub");
        assert_err!(fx.fs.rmdir(&root_cred(), root, b"e"), FsError::NotEmpty);
        fx.fs.remove(&root_cred(), d.ino, b"f").expect("empty d");
        fx.fs.rmdir(&root_cred(), root, b"d").expect("rmdir once empty");
    }

    fn rmdir_of_a_file_is_not_dir(fx) {
        let root = fx.root();
        fx.file(root, "f");
        assert_err!(fx.fs.rmdir(&root_cred(), root, b"f"), FsError::NotDir);
        assert!(fx.lookup(root, "f").is_ok());
    }

    fn rmdir_of_dot_and_dotdot_fails_and_removes_nothing(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert_err!(fx.fs.rmdir(&root_cred(), d.ino, b"."), FsError::Invalid(_));
        assert_err!(fx.fs.rmdir(&root_cred(), d.ino, b".."), FsError::NotEmpty | FsError::Invalid(_));
        assert_eq!(fx.lookup(root, "d").expect("d").ino, d.ino);
        assert_eq!(fx.attr(root).nlink, 3);
    }

    fn a_255_byte_name_is_accepted(fx) {
        let root = fx.root();
        let name = "n".repeat(NAME_MAX);
        let f = fx.file(root, &name);
        assert_eq!(fx.lookup(root, &name).expect("lookup").ino, f.ino);
        assert_eq!(fx.names(root), [name]);
    }

    fn a_256_byte_name_is_name_too_long_everywhere(fx) {
        let root = fx.root();
        let cred = root_cred();
        let long = vec![b'n'; NAME_MAX + 1];
        let f = fx.file(root, "f");
        assert_err!(fx.fs.create(&cred, root, &long, &guarded()), FsError::NameTooLong);
        assert_err!(fx.fs.mkdir(&cred, root, &long, &SetAttr::default()), FsError::NameTooLong);
        assert_err!(fx.fs.symlink(&cred, root, &long, b"t", &SetAttr::default()), FsError::NameTooLong);
        assert_err!(fx.fs.mknod(&cred, root, &long, NodeKind::Fifo, &SetAttr::default()), FsError::NameTooLong);
        assert_err!(fx.fs.link(&cred, f.ino, root, &long), FsError::NameTooLong);
        assert_err!(fx.fs.rename(&cred, root, b"f", root, &long), FsError::NameTooLong);
        assert_err!(fx.fs.lookup(&cred, root, &long), FsError::NameTooLong);
        assert_eq!(fx.names(root), ["f"]);
    }

    fn names_with_a_slash_nul_or_nothing_are_invalid(fx) {
        let root = fx.root();
        let cred = root_cred();
        let f = fx.file(root, "f");
        for bad in [&b"a/b"[..], b"/", b"a\0b", b""] {
            assert_err!(fx.fs.create(&cred, root, bad, &guarded()), FsError::Invalid(_));
            assert_err!(fx.fs.mkdir(&cred, root, bad, &SetAttr::default()), FsError::Invalid(_));
            assert_err!(fx.fs.symlink(&cred, root, bad, b"t", &SetAttr::default()), FsError::Invalid(_));
            assert_err!(fx.fs.link(&cred, f.ino, root, bad), FsError::Invalid(_));
            assert_err!(fx.fs.rename(&cred, root, b"f", root, bad), FsError::Invalid(_));
        }
        assert_eq!(fx.names(root), ["f"]);
    }

    fn creating_dot_or_dotdot_is_refused(fx) {
        let root = fx.root();
        let cred = root_cred();
        assert!(fx.fs.create(&cred, root, b".", &guarded()).is_err());
        assert!(fx.fs.mkdir(&cred, root, b"..", &SetAttr::default()).is_err());
        assert!(fx.names(root).is_empty());
        assert_eq!(fx.attr(root).nlink, 2);
    }
}
