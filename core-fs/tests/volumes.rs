//! Volumes: the default volume, create / list / delete, name rules, and
//! the boundary between volumes. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;

fn names(fx: &Fixture) -> Vec<String> {
    fx.fs
        .list_volumes()
        .expect("list")
        .into_iter()
        .map(|v| v.name)
        .collect()
}

both_backends! {
    fn the_default_volume_exists_after_open(fx) {
        let v = fx.fs.volume(DEFAULT_VOLUME).expect("default");
        assert_eq!(v.name, "default");
        assert_eq!(names(fx), ["default"]);
        assert_eq!(fx.fs.volume_by_id(v.id).expect("by id"), v);
        let root = fx.attr(v.root);
        assert_eq!(root.kind, FileType::Directory);
        assert_eq!(root.volume, v.id);
    }

    fn create_volume_makes_an_empty_root_and_lists_it(fx) {
        let v = fx.fs.create_volume("photos").expect("create");
        assert_eq!(v.name, "photos");
        assert_ne!(v.id, fx.volume().id);
        assert_eq!(names(fx), ["default", "photos"]);
        assert_eq!(fx.fs.volume("photos").expect("by name"), v);
        assert_eq!(fx.fs.volume_by_id(v.id).expect("by id"), v);
        let root = fx.fs.resolve_handle(v.id, v.root, fx.attr(v.root).generation).expect("root handle");
        assert_eq!(root.kind, FileType::Directory);
        assert_eq!(root.nlink, 2);
        assert_eq!(root.mode, 0o755);
        assert_eq!(root.uid, 0);
        assert!(fx.names(v.root).is_empty());
        let f = fx.file(v.root, "f");
        assert_eq!(f.volume, v.id, "objects carry their volume id");
    }

    fn create_volume_twice_is_exists(fx) {
        fx.fs.create_volume("photos").expect("create");
        assert_err!(fx.fs.create_volume("photos"), FsError::Exists);
        assert_err!(fx.fs.create_volume("default"), FsError::Exists);
        assert_eq!(names(fx), ["default", "photos"]);
    }

    fn volume_names_that_are_not_bucket_names_are_invalid(fx) {
        for bad in ["", "ab", "Photos", "-photos", "photos-", "a..b", "a_b", "a/b", "192.168.0.1", &"x".repeat(64)] {
            assert_err!(fx.fs.create_volume(bad), FsError::Invalid(_));
        }
        assert_eq!(names(fx), ["default"]);
        fx.fs.create_volume(&"x".repeat(63)).expect("63 characters is the limit");
        fx.fs.create_volume("my-data.v2").expect("dots and dashes inside");
    }

    fn delete_volume_removes_it_and_its_root(fx) {
        let v = fx.fs.create_volume("scratch").expect("create");
        let gen = fx.attr(v.root).generation;
        fx.fs.delete_volume("scratch").expect("delete");
        assert_eq!(names(fx), ["default"]);
        assert_err!(fx.fs.volume("scratch"), FsError::NotFound);
        assert_err!(fx.fs.volume_by_id(v.id), FsError::NotFound);
        assert_err!(fx.fs.resolve_handle(v.id, v.root, gen), FsError::Stale);
    }

    fn delete_of_a_non_empty_volume_is_not_empty(fx) {
        let v = fx.fs.create_volume("busy").expect("create");
        fx.file(v.root, "f");
        assert_err!(fx.fs.delete_volume("busy"), FsError::NotEmpty);
        assert_eq!(names(fx), ["busy", "default"]);
        fx.fs.remove(&root_cred(), v.root, b"f").expect("remove");
        fx.fs.delete_volume("busy").expect("delete once empty");
    }

    fn delete_of_an_unknown_volume_is_not_found(fx) {
        assert_err!(fx.fs.delete_volume("ghost"), FsError::NotFound);
        assert_err!(fx.fs.volume("ghost"), FsError::NotFound);
        assert_err!(fx.fs.volume_by_id(9999), FsError::NotFound);
    }

    fn a_deleted_volume_id_is_not_given_to_a_new_volume(fx) {
        let old = fx.fs.create_volume("first").expect("create");
        fx.fs.delete_volume("first").expect("delete");
        let new = fx.fs.create_volume("first").expect("recreate");
        assert_ne!(new.id, old.id, "old handles must not resolve into the new volume");
        assert_ne!(new.root, old.root);
    }

    fn links_and_renames_across_volumes_are_refused(fx) {
        let other = fx.fs.create_volume("other").expect("create");
        let root = fx.root();
        let f = fx.file(root, "f");
        assert_err!(fx.fs.link(&root_cred(), f.ino, other.root, b"g"), FsError::CrossDevice);
        assert_err!(fx.fs.rename(&root_cred(), root, b"f", other.root, b"g"), FsError::CrossDevice);
        assert_eq!(fx.names(root), ["f"]);
        assert!(fx.names(other.root).is_empty());
    }

    fn the_same_name_in_two_volumes_is_two_files(fx) {
        let other = fx.fs.create_volume("other").expect("create");
        let a = fx.file(fx.root(), "same");
        let b = fx.file(other.root, "same");
        assert_ne!(a.ino, b.ino);
        fx.write(a.ino, 0, b"in default");
        fx.write(b.ino, 0, b"in other");
        assert_eq!(fx.read_all(a.ino), b"in default");
        assert_eq!(fx.read_all(b.ino), b"in other");
    }
}
