//! POSIX.1e ACLs through the filesystem API: named users and groups, the
//! mask and its identity with the mode's group bits, group-class rules,
//! default ACLs inherited at create (NFS and S3 paths), who may change an
//! ACL, removal, and snapshots keeping the ACL they saw. On both metadata
//! backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::access::{EXECUTE, EXTEND, LOOKUP, MODIFY, READ};
use nitrofs_core_fs::*;

const ALICE: u32 = 1000;
const BOB: u32 = 1001;
const CAROL: u32 = 1002;

fn spec(text: &str) -> AclSpec {
    AclSpec::parse(text).unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// Applies `text` with `setfacl -m` semantics as `cred`.
fn setfacl(fx: &Fixture, cred: &Credentials, ino: InodeId, text: &str) -> AclListing {
    fx.fs
        .edit_acl(cred, ino, &spec(text), AclEdit::Modify)
        .unwrap_or_else(|e| panic!("setfacl -m {text}: {e:?}"))
}

fn chmod(fx: &Fixture, cred: &Credentials, ino: InodeId, mode: u32) {
    let set = SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    };
    fx.fs.setattr(cred, ino, &set, None).expect("chmod");
}

fn access(fx: &Fixture, cred: &Credentials, ino: InodeId) -> u32 {
    let all = READ | LOOKUP | MODIFY | EXTEND | EXECUTE;
    fx.fs.access(cred, ino, all).expect("access").1
}

fn can_read(fx: &Fixture, cred: &Credentials, ino: InodeId) -> bool {
    match fx.fs.read(cred, ino, 0, 10) {
        Ok(_) => true,
        Err(FsError::Access) => false,
        Err(e) => panic!("read: {e:?}"),
    }
}

fn can_write(fx: &Fixture, cred: &Credentials, ino: InodeId) -> bool {
    match fx.fs.write(cred, ino, 0, b"x", false) {
        Ok(_) => true,
        Err(FsError::Access) => false,
        Err(e) => panic!("write: {e:?}"),
    }
}

fn create_with_mode(fx: &Fixture, cred: &Credentials, dir: InodeId, name: &str, mode: u32) -> Attr {
    let how = CreateHow::Guarded(SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    });
    fx.fs
        .create(cred, dir, name.as_bytes(), &how)
        .expect("create")
        .0
}

fn mkdir_with_mode(fx: &Fixture, cred: &Credentials, dir: InodeId, name: &str, mode: u32) -> Attr {
    let set = SetAttr {
        mode: Some(mode),
        ..SetAttr::default()
    };
    fx.fs
        .mkdir(cred, dir, name.as_bytes(), &set)
        .expect("mkdir")
        .0
}

both_backends! {
    fn a_named_user_entry_grants_what_the_mode_denies_up_to_the_mask(fx) {
        let f = fx.file_with(fx.root(), "f", 0o600, ALICE, ALICE);
        let (alice, bob, carol) = (user(ALICE), user(BOB), user(CAROL));
        assert!(!can_read(fx, &bob, f.ino));

        let l = setfacl(fx, &alice, f.ino, "u:1001:rw-");
        assert_eq!(l.attr.mode & 0o777, 0o660, "the mask (rw) became the group bits");
        assert_eq!(fx.attr(f.ino).mode & 0o777, 0o660);
        assert!(can_read(fx, &bob, f.ino) && can_write(fx, &bob, f.ino));
        assert_eq!(access(fx, &bob, f.ino), READ | MODIFY | EXTEND);
        assert!(!can_read(fx, &carol, f.ino), "no entry: other::---");
        assert_eq!(access(fx, &carol, f.ino), 0);

        // chmod g-w narrows the mask: bob keeps his entry but loses w.
        chmod(fx, &alice, f.ino, 0o640);
        assert!(can_read(fx, &bob, f.ino));
        assert!(!can_write(fx, &bob, f.ino));
        assert_eq!(access(fx, &bob, f.ino), READ);
        let l = fx.fs.acl_listing(&root_cred(), f.ino).expect("getfacl");
        assert_eq!(l.access.get(AclTag::User(BOB)), Some(6), "the entry itself is unchanged");
        assert_eq!(l.access.get(AclTag::Mask), Some(4));
        assert!(l.getfacl("/default/f").contains("user:1001:rw-\t#effective:r--"), "{}", l.getfacl("f"));

        // chmod back widens it again.
        chmod(fx, &alice, f.ino, 0o660);
        assert!(can_write(fx, &bob, f.ino));
    }

    fn the_owning_group_entry_is_limited_by_the_mask_not_the_mode(fx) {
        let f = fx.file_with(fx.root(), "f", 0o640, ALICE, 100);
        let member = user_in(CAROL, 100, &[]);
        assert!(can_read(fx, &member, f.ino));
        // group:: keeps r, a named group gets rwx: the mask (group bits) is rwx.
        setfacl(fx, &root_cred(), f.ino, "g:200:rwx");
        assert_eq!(fx.attr(f.ino).mode & 0o070, 0o070);
        assert!(can_read(fx, &member, f.ino));
        assert!(!can_write(fx, &member, f.ino), "group:: is r-- whatever the group bits say");
        let other_group = user_in(BOB, 200, &[]);
        assert!(can_write(fx, &other_group, f.ino));
    }

    fn a_caller_matching_a_group_entry_never_falls_back_to_other(fx) {
        let f = fx.file_with(fx.root(), "f", 0o600, ALICE, 100);
        setfacl(fx, &root_cred(), f.ino, "g::r--,g:200:-w-,o::rwx");
        let both = user_in(BOB, 100, &[200]);
        // Each bit alone is held by one of the caller's group entries...
        assert_eq!(access(fx, &both, f.ino), READ | MODIFY | EXTEND);
        // ...execute by none of them: denied, although other:: has it.
        assert_eq!(access(fx, &both, f.ino) & EXECUTE, 0);
        let stranger = user(CAROL);
        assert_eq!(access(fx, &stranger, f.ino), READ | MODIFY | EXTEND | EXECUTE);
    }

    fn directory_acls_govern_lookup_listing_and_creating(fx) {
        let d = fx.dir_with(fx.root(), "d", 0o700, ALICE, ALICE);
        let (alice, bob, carol) = (user(ALICE), user(BOB), user(CAROL));
        fx.file_as(&alice, d.ino, "inside");
        assert_err!(fx.fs.lookup(&bob, d.ino, b"inside"), FsError::Access);
        setfacl(fx, &alice, d.ino, "u:1001:r-x");
        fx.fs.lookup(&bob, d.ino, b"inside").expect("bob may search");
        assert!(fx.fs.readdir(&bob, d.ino, 0, 10, false).is_ok());
        assert_eq!(access(fx, &bob, d.ino), READ | LOOKUP);
        assert_err!(fx.fs.create(&bob, d.ino, b"b", &CreateHow::Guarded(SetAttr::default())), FsError::Access);
        assert_err!(fx.fs.lookup(&carol, d.ino, b"inside"), FsError::Access);
        setfacl(fx, &alice, d.ino, "u:1001:rwx");
        assert_eq!(access(fx, &bob, d.ino) & MODIFY, MODIFY);
        fx.file_as(&bob, d.ino, "bobs");
        fx.fs.remove(&bob, d.ino, b"inside").expect("bob may remove");
        fx.fs
            .rename(&bob, d.ino, b"bobs", d.ino, b"renamed")
            .expect("bob may rename");
    }

    fn new_files_inherit_the_default_acl_masked_by_their_create_mode(fx) {
        let d = fx.dir_with(fx.root(), "shared", 0o750, ALICE, ALICE);
        let (alice, bob) = (user(ALICE), user(BOB));
        let l = setfacl(fx, &alice, d.ino, "d:u:1001:rwx,d:o::---");
        let def = l.default.expect("default ACL");
        assert_eq!(def.to_string(), "u::rwx,u:1001:rwx,g::r-x,m::rwx,o::---",
            "base entries come from the access ACL, the mask is the group-class union");
        assert!(l.access.is_minimal(), "a default-only change leaves the access ACL alone");

        let f = create_with_mode(fx, &alice, d.ino, "f", 0o644);
        assert_eq!(f.mode & 0o777, 0o640, "owner rw, mask r (rwx & 4), other --- (--- & 4)");
        let acl = fx.fs.get_acl(&alice, f.ino, AclKind::Access).expect("get").expect("inherited");
        assert_eq!(acl.to_string(), "u::rw-,u:1001:rwx,g::r-x,m::r--,o::---");
        assert_eq!(fx.fs.get_acl(&alice, f.ino, AclKind::Default).expect("get"), None);
        assert!(can_read(fx, &bob, f.ino));
        assert!(!can_write(fx, &bob, f.ino), "the create mode's group bits limit bob");

        let sub = mkdir_with_mode(fx, &alice, d.ino, "sub", 0o777);
        assert_eq!(sub.mode & 0o777, 0o770);
        assert_eq!(fx.fs.get_acl(&alice, sub.ino, AclKind::Default).expect("get"), Some(def.clone()),
            "a new directory also inherits the default ACL as its own");
        let deep = create_with_mode(fx, &bob, sub.ino, "deep", 0o666);
        assert_eq!(deep.mode & 0o777, 0o660);
        assert!(can_write(fx, &bob, deep.ino));

        let link = fx.fs.symlink(&alice, d.ino, b"ln", b"f", &SetAttr::default()).expect("symlink").0;
        assert_eq!(fx.fs.get_acl(&alice, link.ino, AclKind::Access).expect("get"), None,
            "symbolic links have no ACL");
        assert_eq!(link.mode & 0o777, 0o777);
    }

    fn a_minimal_default_acl_only_narrows_the_mode(fx) {
        let d = fx.dir_with(fx.root(), "d", 0o755, ALICE, ALICE);
        fx.fs
            .edit_acl(&user(ALICE), d.ino, &spec("d:u::rwx,d:g::r-x,d:o::---"), AclEdit::Set)
            .expect("set default");
        let f = create_with_mode(fx, &user(ALICE), d.ino, "f", 0o666);
        assert_eq!(f.mode & 0o777, 0o640);
        assert_eq!(fx.fs.get_acl(&root_cred(), f.ino, AclKind::Access).expect("get"), None);
    }

    fn s3_objects_published_into_a_directory_inherit_its_default_acl(fx) {
        let d = fx.dir_with(fx.root(), "bucketdir", 0o755, ALICE, ALICE);
        setfacl(fx, &user(ALICE), d.ino, "d:u:1001:rw-");
        let alice = user(ALICE);
        let a = fx.fs
            .create_detached(&alice, fx.volume().id, 0o644, DetachedKind::Transient)
            .expect("detached");
        fx.fs.write(&alice, a.ino, 0, b"object", false).expect("write");
        let obj = fx.fs
            .publish(&alice, a.ino, fx.root(), &[b"bucketdir".to_vec(), b"new".to_vec(), b"obj".to_vec()], &[])
            .expect("publish");
        let acl = fx.fs.get_acl(&alice, obj.ino, AclKind::Access).expect("get").expect("inherited");
        assert_eq!(acl.get(AclTag::User(BOB)), Some(6));
        assert!(can_read(fx, &user(BOB), obj.ino));
        let implicit = fx.lookup(d.ino, "new").expect("implicit directory");
        assert!(fx.fs.get_acl(&alice, implicit.ino, AclKind::Default).expect("get").is_some());
    }

    fn small_s3_objects_made_in_one_transaction_inherit_the_default_acl_too(fx) {
        let d = fx.dir_with(fx.root(), "bucketdir", 0o755, ALICE, ALICE);
        setfacl(fx, &user(ALICE), d.ino, "d:u:1001:rw-");
        let alice = user(ALICE);
        let path = [b"bucketdir".to_vec(), b"new".to_vec(), b"obj".to_vec()];
        let none = |_: &Attr| Vec::new();
        let obj = fx.fs
            .publish_new_if(&alice, fx.volume().id, fx.root(), &path, 0o644, b"object", none, PublishIf::Always)
            .expect("publish_new_if");
        let acl = fx.fs.get_acl(&alice, obj.ino, AclKind::Access).expect("get").expect("inherited");
        assert_eq!(acl.get(AclTag::User(BOB)), Some(6));
        assert!(can_read(fx, &user(BOB), obj.ino));
        assert_eq!(read_all_as(&fx.fs, &user(BOB), obj.ino), b"object");
        let implicit = fx.lookup(d.ino, "new").expect("implicit directory");
        assert!(fx.fs.get_acl(&alice, implicit.ino, AclKind::Default).expect("get").is_some());
    }

    fn only_the_owner_or_root_may_change_an_acl(fx) {
        let f = fx.file_with(fx.root(), "f", 0o666, ALICE, ALICE);
        let bob = user(BOB);
        assert!(can_write(fx, &bob, f.ino), "write permission is not ownership");
        assert_err!(fx.fs.edit_acl(&bob, f.ino, &spec("u:1001:rwx"), AclEdit::Modify), FsError::Perm);
        assert_err!(fx.fs.set_acl(&bob, f.ino, AclKind::Access, None), FsError::Perm);
        setfacl(fx, &root_cred(), f.ino, "u:1001:r");
        assert_err!(fx.fs.edit_acl(&user(ALICE), f.ino, &spec("d:u:1:r"), AclEdit::Modify), FsError::Invalid(_));
        assert_err!(fx.fs.set_acl(&user(ALICE), f.ino, AclKind::Default, Some(Acl::from_mode(0o700))), FsError::Invalid(_));
    }

    fn setting_an_acl_sets_the_mode_and_clears_setgid_for_outsiders(fx) {
        let f = fx.file_with(fx.root(), "f", 0o2770, ALICE, 100);
        let acl = Acl::new(spec("u::r,u:7:rwx,g::r,m::r-x,o::-").access).expect("valid");
        let a = fx.fs.set_acl(&user(ALICE), f.ino, AclKind::Access, Some(acl)).expect("set");
        assert_eq!(a.mode, 0o450, "owner r, mask r-x, other none; alice is not in group 100");
        let back = fx.fs.get_acl(&root_cred(), f.ino, AclKind::Access).expect("get").expect("stored");
        assert_eq!(back.to_string(), "u::r--,u:7:rwx,g::r--,m::r-x,o::---");
    }

    fn removing_the_acl_gives_the_group_bits_back_to_the_owning_group(fx) {
        let f = fx.file_with(fx.root(), "f", 0o640, ALICE, ALICE);
        setfacl(fx, &user(ALICE), f.ino, "u:1001:rwx");
        assert_eq!(fx.attr(f.ino).mode & 0o777, 0o670);
        let l = fx.fs.remove_acls(&user(ALICE), f.ino, false).expect("setfacl -b");
        assert!(!l.is_extended());
        assert_eq!(l.attr.mode & 0o777, 0o640, "group:: (r) is the group again, not the old mask");
        assert!(!can_read(fx, &user(BOB), f.ino));
        assert_eq!(fx.fs.get_acl(&root_cred(), f.ino, AclKind::Access).expect("get"), None);
    }

    fn edits_set_replaces_and_modify_merges(fx) {
        let f = fx.file_with(fx.root(), "f", 0o640, ALICE, ALICE);
        let alice = user(ALICE);
        setfacl(fx, &alice, f.ino, "u:1001:r,g:300:rw");
        let l = fx.fs.edit_acl(&alice, f.ino, &spec("u:1002:rwx"), AclEdit::Set).expect("set");
        assert_eq!(l.access.to_string(), "u::rw-,u:1002:rwx,g::r--,m::rwx,o::---");
        let l = setfacl(fx, &alice, f.ino, "u:1001:r");
        assert_eq!(l.access.to_string(), "u::rw-,u:1001:r--,u:1002:rwx,g::r--,m::rwx,o::---");
        assert_err!(fx.fs.edit_acl(&alice, f.ino, &AclSpec::default(), AclEdit::Set), FsError::Invalid(_));
    }

    fn paths_name_a_volume_and_an_object_inside_it(fx) {
        let d = fx.dir(fx.root(), "a");
        let f = fx.file(d.ino, "b");
        assert_eq!(fx.fs.resolve_path(&root_cred(), "/default/a/b").expect("resolve").ino, f.ino);
        assert_eq!(fx.fs.resolve_path(&root_cred(), "/default").expect("root").ino, fx.root());
        assert_err!(fx.fs.resolve_path(&root_cred(), "/nope/a"), FsError::NotFound);
        assert_err!(fx.fs.resolve_path(&root_cred(), "/"), FsError::Invalid(_));
    }

    fn a_snapshot_keeps_the_acl_it_saw(fx) {
        let f = fx.file_with(fx.root(), "f", 0o600, ALICE, ALICE);
        fx.write(f.ino, 0, b"data");
        setfacl(fx, &user(ALICE), f.ino, "u:1001:r");
        fx.fs.create_snapshot(DEFAULT_VOLUME, "s").expect("snapshot");
        fx.fs.remove_acls(&user(ALICE), f.ino, false).expect("remove live ACL");
        let bob = user(BOB);
        assert!(!can_read(fx, &bob, f.ino), "live: no entry any more");
        let snapdir = fx.lookup(fx.root(), ".snapshot").expect(".snapshot");
        let sroot = fx.fs.lookup(&bob, snapdir.ino, b"s").expect("snapshot root");
        let old = fx.fs.lookup(&bob, sroot.ino, b"f").expect("snapshot copy");
        assert_eq!(fx.fs.read(&bob, old.ino, 0, 10).expect("bob's entry in the snapshot").data.as_ref(), b"data");
        assert_eq!(fx.fs.access(&bob, old.ino, READ | MODIFY).expect("access").1, READ);
        assert_err!(fx.fs.set_acl(&user(ALICE), old.ino, AclKind::Access, None), FsError::ReadOnly);
        let listing = fx.fs.acl_listing(&root_cred(), old.ino).expect("getfacl in a snapshot");
        assert_eq!(listing.access.get(AclTag::User(BOB)), Some(4));
    }

    fn a_clone_of_a_snapshot_has_exactly_the_acls_the_snapshot_saw(fx) {
        let d = fx.dir_with(fx.root(), "d", 0o750, ALICE, ALICE);
        // Made before the default ACL: it has none and must not get one.
        let plain = fx.file_with(d.ino, "plain", 0o640, ALICE, ALICE);
        setfacl(fx, &user(ALICE), d.ino, "u:1001:rwx,d:u:1001:r-x");
        let inherited = create_with_mode(fx, &user(ALICE), d.ino, "inherited", 0o644);
        let sub = mkdir_with_mode(fx, &user(ALICE), d.ino, "sub", 0o755);
        fx.fs.create_snapshot(DEFAULT_VOLUME, "s").expect("snapshot");
        fx.fs.clone_snapshot(DEFAULT_VOLUME, "s", "copy").expect("clone");

        let root = fx.fs.volume("copy").expect("clone volume").root;
        let path = |p: &str| fx.fs.lookup_path(&root_cred(), root, p).expect(p);
        for (orig, p) in [(d.ino, "d"), (plain.ino, "d/plain"), (inherited.ino, "d/inherited"), (sub.ino, "d/sub")] {
            let a = fx.fs.acl_listing(&root_cred(), orig).expect("original");
            let b = fx.fs.acl_listing(&root_cred(), path(p).ino).expect("clone");
            assert_eq!((b.access, b.default, b.attr.mode), (a.access, a.default, a.attr.mode), "{p}");
        }
        assert!(fx.fs.get_acl(&root_cred(), path("d/plain").ino, AclKind::Access).expect("get").is_none());
    }
}

#[test]
fn an_acl_survives_a_restart() {
    for backend in [Backend::Mem, Backend::Rocks] {
        let fx = Fixture::new(backend);
        let f = fx.file_with(fx.root(), "f", 0o600, ALICE, ALICE);
        setfacl(&fx, &user(ALICE), f.ino, "u:1001:r");
        let fx = fx.restart(small_chunks());
        assert!(can_read(&fx, &user(BOB), f.ino), "{backend:?}");
    }
}
