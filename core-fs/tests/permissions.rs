//! Permission checks with caller credentials: mode bits, search
//! permission along paths, the sticky bit, setgid directories, set-id
//! clearing on write, root, the owner override and ACCESS. On both
//! metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::access::{DELETE, EXECUTE, EXTEND, LOOKUP, MODIFY, READ};
use nitrofs_core_fs::*;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
const CAROL: u32 = 1002;

fn guarded() -> CreateHow {
    CreateHow::Guarded(SetAttr::default())
}

both_backends! {
    fn user_is_denied_lookup_and_create_in_a_0700_root_directory(fx) {
        let root = fx.root();
        let private = fx.dir_with(root, "private", 0o700, 0, 0);
        fx.file(private.ino, "secret");
        let alice = user(ALICE);
        assert_err!(fx.fs.lookup(&alice, private.ino, b"secret"), FsError::Access);
        assert_err!(fx.fs.create(&alice, private.ino, b"mine", &guarded()), FsError::Access);
        assert_err!(fx.fs.mkdir(&alice, private.ino, b"sub", &SetAttr::default()), FsError::Access);
        assert_err!(fx.fs.readdir(&alice, private.ino, 0, 10, false), FsError::Access);
        assert_err!(fx.fs.remove(&alice, private.ino, b"secret"), FsError::Access);
        assert_eq!(fx.names(private.ino), ["secret"]);
    }

    fn lookup_path_needs_search_permission_on_every_component(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir_with(a.ino, "b", 0o700, 0, 0);
        let c = fx.dir(b.ino, "c");
        let f = fx.file(c.ino, "f");
        let alice = user(ALICE);
        assert_eq!(fx.fs.lookup_path(&alice, root, "a/b").expect("b itself is reachable").ino, b.ino);
        assert_err!(fx.fs.lookup_path(&alice, root, "a/b/c/f"), FsError::Access);
        assert_err!(fx.fs.lookup_path(&alice, root, "a/b/c"), FsError::Access);
        // Search (x) without read (r) is enough to walk through.
        fx.fs
            .setattr(&root_cred(), b.ino, &SetAttr { mode: Some(0o711), ..SetAttr::default() }, None)
            .expect("chmod 0711");
        assert_eq!(fx.fs.lookup_path(&alice, root, "a/b/c/f").expect("walk").ino, f.ino);
        assert_err!(fx.fs.readdir(&alice, b.ino, 0, 10, false), FsError::Access);
        // Read without search is not.
        fx.fs
            .setattr(&root_cred(), a.ino, &SetAttr { mode: Some(0o744), ..SetAttr::default() }, None)
            .expect("chmod 0744");
        assert_err!(fx.fs.lookup_path(&alice, root, "a/b/c/f"), FsError::Access);
        assert!(fx.fs.readdir(&alice, a.ino, 0, 10, false).is_ok());
    }

    fn read_and_write_follow_the_owner_group_and_other_bits(fx) {
        let root = fx.root();
        let f = fx.file_with(root, "f", 0o640, ALICE, 500);
        fx.write(f.ino, 0, b"data");
        let member = user_in(BOB, BOB, &[500]);
        let stranger = user(CAROL);
        assert_eq!(&fx.fs.read(&member, f.ino, 0, 10).expect("group read").data[..], b"data");
        assert_err!(fx.fs.write(&member, f.ino, 0, b"x", false), FsError::Access);
        assert_err!(fx.fs.read(&stranger, f.ino, 0, 10), FsError::Access);
        assert_err!(fx.fs.write(&stranger, f.ino, 0, b"x", false), FsError::Access);
        fx.fs.write(&user(ALICE), f.ino, 0, b"D", false).expect("owner write");
        assert_eq!(fx.read_all(f.ino), b"Data");
    }

    fn the_owner_class_applies_even_when_group_bits_are_wider(fx) {
        let f = fx.file_with(fx.root(), "f", 0o066, ALICE, ALICE);
        // The owner override of write()/read() does not apply to ACCESS.
        let (_, granted) = fx.fs.access(&user(ALICE), f.ino, READ | MODIFY).expect("access");
        assert_eq!(granted, 0);
        let (_, granted) = fx.fs.access(&user_in(BOB, ALICE, &[]), f.ino, READ | MODIFY).expect("access");
        assert_eq!(granted, READ | MODIFY);
    }

    fn removing_needs_write_and_search_on_the_directory(fx) {
        let root = fx.root();
        let d = fx.dir_with(root, "d", 0o755, ALICE, ALICE);
        fx.file_with(d.ino, "f", 0o666, BOB, BOB);
        assert_err!(fx.fs.remove(&user(BOB), d.ino, b"f"), FsError::Access);
        assert_err!(fx.fs.rename(&user(BOB), d.ino, b"f", d.ino, b"g"), FsError::Access);
        fx.fs.remove(&user(ALICE), d.ino, b"f").expect("directory owner removes");
    }

    fn link_needs_write_permission_on_the_target_directory(fx) {
        let root = fx.root();
        let open = fx.dir_with(root, "open", 0o777, 0, 0);
        let closed = fx.dir_with(root, "closed", 0o755, 0, 0);
        let f = fx.file_as(&user(ALICE), open.ino, "f");
        assert_err!(fx.fs.link(&user(ALICE), f.ino, closed.ino, b"g"), FsError::Access);
        fx.fs.link(&user(ALICE), f.ino, open.ino, b"g").expect("link in writable dir");
        assert_eq!(fx.attr(f.ino).nlink, 2);
    }

    fn sticky_directory_stops_others_from_removing_or_renaming_a_file(fx) {
        let root = fx.root();
        let tmp = fx.dir_with(root, "tmp", 0o1777, 0, 0);
        let alice = user(ALICE);
        let bob = user(BOB);
        let af = fx.file_as(&alice, tmp.ino, "alice-file");
        fx.file_as(&bob, tmp.ino, "bob-file");
        assert_err!(fx.fs.remove(&bob, tmp.ino, b"alice-file"), FsError::Access | FsError::Perm);
        assert_err!(fx.fs.rename(&bob, tmp.ino, b"alice-file", tmp.ino, b"stolen"), FsError::Access | FsError::Perm);
        assert_err!(
            fx.fs.rename(&bob, tmp.ino, b"bob-file", tmp.ino, b"alice-file"),
            FsError::Access | FsError::Perm
        );
        assert_eq!(fx.lookup(tmp.ino, "alice-file").expect("still alice's").ino, af.ino);
        assert_eq!(fx.names(tmp.ino), ["alice-file", "bob-file"]);
    }

    fn sticky_directory_lets_the_file_owner_remove_and_rename(fx) {
        let tmp = fx.dir_with(fx.root(), "tmp", 0o1777, 0, 0);
        let alice = user(ALICE);
        fx.file_as(&alice, tmp.ino, "a");
        fx.file_as(&alice, tmp.ino, "b");
        fx.fs.rename(&alice, tmp.ino, b"a", tmp.ino, b"a2").expect("owner renames");
        fx.fs.remove(&alice, tmp.ino, b"b").expect("owner removes");
        assert_eq!(fx.names(tmp.ino), ["a2"]);
    }

    fn sticky_directory_lets_the_directory_owner_and_root_remove(fx) {
        let tmp = fx.dir_with(fx.root(), "tmp", 0o1777, CAROL, CAROL);
        let alice = user(ALICE);
        fx.file_as(&alice, tmp.ino, "a");
        fx.file_as(&alice, tmp.ino, "b");
        fx.fs.remove(&user(CAROL), tmp.ino, b"a").expect("directory owner removes");
        fx.fs.remove(&root_cred(), tmp.ino, b"b").expect("root removes");
        assert!(fx.names(tmp.ino).is_empty());
    }

    fn sticky_directory_protects_subdirectories_from_rmdir(fx) {
        let tmp = fx.dir_with(fx.root(), "tmp", 0o1777, 0, 0);
        fx.dir_as(&user(ALICE), tmp.ino, "adir");
        assert_err!(fx.fs.rmdir(&user(BOB), tmp.ino, b"adir"), FsError::Access | FsError::Perm);
        fx.fs.rmdir(&user(ALICE), tmp.ino, b"adir").expect("owner rmdir");
    }

    fn without_the_sticky_bit_anyone_with_write_permission_may_remove(fx) {
        let shared = fx.dir_with(fx.root(), "shared", 0o777, 0, 0);
        fx.file_as(&user(ALICE), shared.ino, "a");
        fx.fs.remove(&user(BOB), shared.ino, b"a").expect("bob removes alice's file");
        assert!(fx.names(shared.ino).is_empty());
    }

    fn setgid_directory_gives_new_files_its_group(fx) {
        let root = fx.root();
        let team = fx.dir_with(root, "team", 0o2777, 0, 500);
        let member = user_in(ALICE, ALICE, &[500]);
        let outsider = user(BOB);
        let f = fx.file_as(&member, team.ino, "by-member");
        let g = fx.file_as(&outsider, team.ino, "by-outsider");
        assert_eq!((f.uid, f.gid), (ALICE, 500));
        assert_eq!((g.uid, g.gid), (BOB, 500));
        let plain = fx.dir_with(root, "plain", 0o777, 0, 500);
        let h = fx.file_as(&member, plain.ino, "h");
        assert_eq!(h.gid, ALICE, "without setgid the creator's group is used");
    }

    fn setgid_directory_passes_its_group_and_bit_to_new_subdirectories(fx) {
        let team = fx.dir_with(fx.root(), "team", 0o2775, 0, 500);
        let member = user_in(ALICE, ALICE, &[500]);
        let sub = fx.dir_as(&member, team.ino, "sub");
        assert_eq!(sub.gid, 500);
        assert_ne!(sub.mode & S_ISGID, 0, "subdirectory inherits S_ISGID");
        let deeper = fx.dir_as(&member, sub.ino, "deeper");
        assert_eq!(deeper.gid, 500);
        assert_ne!(deeper.mode & S_ISGID, 0);
        let f = fx.file_as(&member, team.ino, "f");
        assert_eq!(f.mode & S_ISGID, 0, "regular files do not inherit the bit");
    }

    fn write_by_a_non_owner_clears_setuid_and_setgid(fx) {
        let f = fx.file_with(fx.root(), "f", 0o6777, ALICE, ALICE);
        fx.fs.write(&user(BOB), f.ino, 0, b"x", false).expect("write");
        assert_eq!(fx.attr(f.ino).mode, 0o777);
    }

    fn write_by_the_non_root_owner_clears_setuid_and_setgid(fx) {
        let f = fx.file_with(fx.root(), "f", 0o6755, ALICE, ALICE);
        fx.fs.write(&user(ALICE), f.ino, 0, b"x", false).expect("write");
        assert_eq!(fx.attr(f.ino).mode, 0o755);
    }

    fn write_by_root_keeps_setuid_and_setgid(fx) {
        let f = fx.file_with(fx.root(), "f", 0o6755, ALICE, ALICE);
        fx.fs.write(&root_cred(), f.ino, 0, b"x", false).expect("write");
        assert_eq!(fx.attr(f.ino).mode, 0o6755);
    }

    fn truncate_by_a_non_root_user_clears_setuid_and_setgid(fx) {
        let f = fx.file_with(fx.root(), "f", 0o6777, ALICE, ALICE);
        fx.write(f.ino, 0, b"abc");
        let set = SetAttr { size: Some(1), ..SetAttr::default() };
        fx.fs.setattr(&user(BOB), f.ino, &set, None).expect("truncate");
        assert_eq!(fx.attr(f.ino).mode, 0o777);
    }

    fn root_bypasses_read_write_and_search_bits(fx) {
        let root = fx.root();
        let locked = fx.dir_with(root, "locked", 0o000, ALICE, ALICE);
        let f = fx.file_with(locked.ino, "f", 0o000, ALICE, ALICE);
        let cred = root_cred();
        fx.fs.write(&cred, f.ino, 0, b"root was here", false).expect("root writes 0000 file");
        assert_eq!(&fx.fs.read(&cred, f.ino, 0, 100).expect("root reads").data[..], b"root was here");
        assert_eq!(fx.fs.lookup(&cred, locked.ino, b"f").expect("root looks up").ino, f.ino);
        fx.fs.create(&cred, locked.ino, b"g", &guarded()).expect("root creates");
        assert_eq!(fx.names(locked.ino), ["f", "g"]);
        let (_, granted) = fx.fs.access(&cred, locked.ino, READ | LOOKUP | MODIFY | EXTEND | DELETE).expect("access");
        assert_eq!(granted, READ | LOOKUP | MODIFY | EXTEND | DELETE);
    }

    fn root_may_execute_only_files_with_some_execute_bit(fx) {
        let root = fx.root();
        let plain = fx.file_with(root, "plain", 0o644, ALICE, ALICE);
        let script = fx.file_with(root, "script", 0o700, ALICE, ALICE);
        let (_, g) = fx.fs.access(&root_cred(), plain.ino, EXECUTE).expect("access");
        assert_eq!(g, 0);
        let (_, g) = fx.fs.access(&root_cred(), script.ino, EXECUTE).expect("access");
        assert_eq!(g, EXECUTE);
    }

    fn owner_may_write_their_own_0444_file_but_access_does_not_grant_modify(fx) {
        let open = fx.dir_with(fx.root(), "open", 0o777, 0, 0);
        let alice = user(ALICE);
        let ro = SetAttr { mode: Some(0o444), ..SetAttr::default() };
        let (f, _) = fx.fs.create(&alice, open.ino, b"f", &CreateHow::Guarded(ro)).expect("create 0444");
        assert_eq!(f.mode, 0o444);
        fx.fs.write(&alice, f.ino, 0, b"written anyway", false).expect("owner override");
        assert_eq!(fx.read_all(f.ino), b"written anyway");
        let (_, granted) = fx.fs.access(&alice, f.ino, READ | MODIFY | EXTEND).expect("access");
        assert_eq!(granted, READ);
        assert_err!(fx.fs.write(&user(BOB), f.ino, 0, b"x", false), FsError::Access);
    }

    fn access_reports_what_the_mode_grants_on_a_directory(fx) {
        let d = fx.dir_with(fx.root(), "d", 0o750, ALICE, 500);
        let all = READ | LOOKUP | MODIFY | EXTEND | DELETE;
        let (attr, owner) = fx.fs.access(&user(ALICE), d.ino, all).expect("owner");
        assert_eq!(attr.ino, d.ino);
        assert_eq!(owner, all);
        let (_, member) = fx.fs.access(&user_in(BOB, BOB, &[500]), d.ino, all).expect("member");
        assert_eq!(member, READ | LOOKUP);
        let (_, other) = fx.fs.access(&user(CAROL), d.ino, all).expect("other");
        assert_eq!(other, 0);
    }

    fn access_reports_what_the_mode_grants_on_a_file(fx) {
        let f = fx.file_with(fx.root(), "f", 0o754, ALICE, 500);
        let all = READ | MODIFY | EXTEND | EXECUTE;
        let (_, owner) = fx.fs.access(&user(ALICE), f.ino, all).expect("owner");
        assert_eq!(owner, all);
        let (_, member) = fx.fs.access(&user_in(BOB, 500, &[]), f.ino, all).expect("member");
        assert_eq!(member, READ | EXECUTE);
        let (_, other) = fx.fs.access(&user(CAROL), f.ino, all).expect("other");
        assert_eq!(other, READ);
        let (_, only_asked) = fx.fs.access(&user(ALICE), f.ino, READ).expect("subset");
        assert_eq!(only_asked, READ, "granted bits are a subset of the wanted ones");
    }

    fn moving_a_directory_to_another_parent_needs_write_permission_on_it(fx) {
        let root = fx.root();
        let p = fx.dir_with(root, "p", 0o777, 0, 0);
        let q = fx.dir_with(root, "q", 0o777, 0, 0);
        fx.dir_with(p.ino, "bobs", 0o755, BOB, BOB);
        assert_err!(fx.fs.rename(&user(ALICE), p.ino, b"bobs", q.ino, b"bobs"), FsError::Access);
        fx.fs.rename(&user(BOB), p.ino, b"bobs", q.ino, b"bobs").expect("owner moves it");
        assert_eq!(fx.names(q.ino), ["bobs"]);
    }

    fn rename_needs_write_permission_on_both_directories(fx) {
        let root = fx.root();
        let open = fx.dir_with(root, "open", 0o777, 0, 0);
        let closed = fx.dir_with(root, "closed", 0o755, 0, 0);
        fx.file_as(&user(ALICE), open.ino, "f");
        assert_err!(fx.fs.rename(&user(ALICE), open.ino, b"f", closed.ino, b"f"), FsError::Access);
        fx.file(closed.ino, "g");
        assert_err!(fx.fs.rename(&user(ALICE), closed.ino, b"g", open.ino, b"g"), FsError::Access);
        assert_eq!(fx.names(open.ino), ["f"]);
        assert_eq!(fx.names(closed.ino), ["g"]);
    }
}
