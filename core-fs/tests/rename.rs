//! RENAME: within and across directories, replacing targets as POSIX
//! says, refusing what POSIX refuses, and keeping link counts and `..`
//! right. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;

fn rename(
    fx: &Fixture,
    from_dir: InodeId,
    from: &str,
    to_dir: InodeId,
    to: &str,
) -> FsResult<(Wcc, Wcc)> {
    fx.fs.rename(
        &root_cred(),
        from_dir,
        from.as_bytes(),
        to_dir,
        to.as_bytes(),
    )
}

both_backends! {
    fn rename_within_a_directory_moves_the_name(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, b"content");
        rename(fx, root, "f", root, "g").expect("rename");
        assert_err!(fx.lookup(root, "f"), FsError::NotFound);
        let g = fx.lookup(root, "g").expect("g");
        assert_eq!(g.ino, f.ino);
        assert_eq!(g.generation, f.generation);
        assert_eq!(g.nlink, 1);
        assert_eq!(fx.read_all(g.ino), b"content");
        assert_eq!(fx.names(root), ["g"]);
    }

    fn rename_across_directories_moves_the_name(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(root, "b");
        let f = fx.file(a.ino, "f");
        rename(fx, a.ino, "f", b.ino, "f2").expect("rename");
        assert!(fx.names(a.ino).is_empty());
        assert_eq!(fx.names(b.ino), ["f2"]);
        assert_eq!(fx.lookup(b.ino, "f2").expect("f2").ino, f.ino);
        assert_eq!(fx.attr(a.ino).nlink, 2, "moving a file does not change nlink");
        assert_eq!(fx.attr(b.ino).nlink, 2);
    }

    fn rename_of_a_missing_name_is_not_found(fx) {
        let root = fx.root();
        assert_err!(rename(fx, root, "nope", root, "x"), FsError::NotFound);
        assert!(fx.names(root).is_empty());
    }

    fn rename_onto_itself_changes_nothing(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        rename(fx, root, "f", root, "f").expect("rename onto itself");
        assert_eq!(fx.lookup(root, "f").expect("f").ino, f.ino);
        assert_eq!(fx.attr(f.ino).nlink, 1);
    }

    fn rename_replaces_an_existing_file(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let src = fx.file(root, "src");
        let dst = fx.file(d.ino, "dst");
        fx.write(src.ino, 0, b"new");
        fx.write(dst.ino, 0, b"old contents");
        rename(fx, root, "src", d.ino, "dst").expect("rename over file");
        assert_eq!(fx.lookup(d.ino, "dst").expect("dst").ino, src.ino);
        assert_eq!(fx.read_all(src.ino), b"new");
        assert_err!(fx.fs.getattr(dst.ino), FsError::Stale);
        assert_err!(fx.fs.resolve_handle(dst.volume, dst.ino, dst.generation), FsError::Stale);
        assert_eq!(fx.names(root), ["d"]);
        assert_eq!(fx.names(d.ino), ["dst"]);
    }

    fn rename_over_a_hard_linked_file_keeps_its_other_name(fx) {
        let root = fx.root();
        let src = fx.file(root, "src");
        let dst = fx.file(root, "dst");
        fx.write(dst.ino, 0, b"kept");
        fx.fs.link(&root_cred(), dst.ino, root, b"other").expect("link");
        rename(fx, root, "src", root, "dst").expect("rename over file");
        assert_eq!(fx.lookup(root, "dst").expect("dst").ino, src.ino);
        let other = fx.lookup(root, "other").expect("other");
        assert_eq!(other.ino, dst.ino);
        assert_eq!(other.nlink, 1);
        assert_eq!(fx.read_all(other.ino), b"kept");
    }

    fn rename_onto_a_hard_link_of_itself_is_a_no_op(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let f = fx.file(root, "f");
        fx.fs.link(&root_cred(), f.ino, root, b"g").expect("link g");
        fx.fs.link(&root_cred(), f.ino, d.ino, b"h").expect("link h");
        rename(fx, root, "f", root, "g").expect("same-dir rename onto own link");
        rename(fx, root, "f", d.ino, "h").expect("cross-dir rename onto own link");
        assert_eq!(fx.lookup(root, "f").expect("f still there").ino, f.ino);
        assert_eq!(fx.lookup(root, "g").expect("g").ino, f.ino);
        assert_eq!(fx.lookup(d.ino, "h").expect("h").ino, f.ino);
        assert_eq!(fx.attr(f.ino).nlink, 3);
    }

    fn rename_replaces_an_empty_directory_in_the_same_parent(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(root, "b");
        fx.file(a.ino, "inside");
        assert_eq!(fx.attr(root).nlink, 4);
        rename(fx, root, "a", root, "b").expect("rename dir over empty dir");
        assert_eq!(fx.lookup(root, "b").expect("b").ino, a.ino);
        assert_err!(fx.fs.getattr(b.ino), FsError::Stale);
        assert_eq!(fx.attr(root).nlink, 3, "one subdirectory left");
        assert_eq!(fx.names(root), ["b"]);
        assert_eq!(fx.names(a.ino), ["inside"]);
    }

    fn rename_replaces_an_empty_directory_in_another_parent(fx) {
        let root = fx.root();
        let p = fx.dir(root, "p");
        let q = fx.dir(root, "q");
        let a = fx.dir(p.ino, "a");
        let b = fx.dir(q.ino, "b");
        rename(fx, p.ino, "a", q.ino, "b").expect("rename dir over empty dir");
        assert_eq!(fx.lookup(q.ino, "b").expect("b").ino, a.ino);
        assert_err!(fx.fs.getattr(b.ino), FsError::Stale);
        assert_eq!(fx.attr(p.ino).nlink, 2);
        assert_eq!(fx.attr(q.ino).nlink, 3);
        assert_eq!(fx.lookup(a.ino, "..").expect("..").ino, q.ino);
    }

    fn rename_of_a_directory_onto_a_non_empty_directory_is_not_empty(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(root, "b");
        fx.file(b.ino, "x");
        assert_err!(rename(fx, root, "a", root, "b"), FsError::NotEmpty);
        assert_eq!(fx.lookup(root, "a").expect("a").ino, a.ino);
        assert_eq!(fx.names(b.ino), ["x"]);
        assert_eq!(fx.attr(root).nlink, 4);
    }

    fn rename_of_a_file_onto_a_directory_is_isdir(fx) {
        let root = fx.root();
        fx.file(root, "f");
        let d = fx.dir(root, "d");
        assert_err!(rename(fx, root, "f", root, "d"), FsError::IsDir);
        assert_eq!(fx.lookup(root, "d").expect("d").ino, d.ino);
        assert!(fx.lookup(root, "f").is_ok());
    }

    fn rename_of_a_directory_onto_a_file_is_not_dir(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.dir(root, "d");
        assert_err!(rename(fx, root, "d", root, "f"), FsError::NotDir);
        assert_eq!(fx.lookup(root, "f").expect("f").ino, f.ino);
        assert!(fx.lookup(root, "d").is_ok());
    }

    fn rename_of_a_directory_into_its_own_subtree_is_invalid(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(a.ino, "b");
        let c = fx.dir(b.ino, "c");
        assert_err!(rename(fx, root, "a", c.ino, "a"), FsError::Invalid(_));
        assert_err!(rename(fx, root, "a", a.ino, "x"), FsError::Invalid(_));
        assert_err!(rename(fx, a.ino, "b", c.ino, "b"), FsError::Invalid(_));
        assert_eq!(fx.names(root), ["a"]);
        assert_eq!(fx.lookup(a.ino, "b").expect("b").ino, b.ino);
        assert_eq!(fx.lookup(c.ino, "..").expect("..").ino, b.ino);
    }

    fn rename_of_a_directory_onto_its_own_ancestor_fails(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(a.ino, "b");
        assert!(rename(fx, a.ino, "b", root, "a").is_err());
        assert_eq!(fx.lookup(root, "a").expect("a").ino, a.ino);
        assert_eq!(fx.lookup(a.ino, "b").expect("b").ino, b.ino);
    }

    fn rename_of_a_directory_across_parents_moves_one_link(fx) {
        let root = fx.root();
        let p = fx.dir(root, "p");
        let q = fx.dir(root, "q");
        let c = fx.dir(p.ino, "c");
        fx.dir(c.ino, "grandchild");
        assert_eq!(fx.attr(p.ino).nlink, 3);
        rename(fx, p.ino, "c", q.ino, "c").expect("rename");
        assert_eq!(fx.attr(p.ino).nlink, 2);
        assert_eq!(fx.attr(q.ino).nlink, 3);
        assert_eq!(fx.attr(c.ino).nlink, 3, "the moved directory keeps its own count");
        assert_eq!(fx.attr(root).nlink, 4);
    }

    fn moved_directory_dotdot_points_to_the_new_parent(fx) {
        let root = fx.root();
        let p = fx.dir(root, "p");
        let q = fx.dir(root, "q");
        let c = fx.dir(p.ino, "c");
        rename(fx, p.ino, "c", q.ino, "c").expect("rename");
        assert_eq!(fx.lookup(c.ino, "..").expect("..").ino, q.ino);
        let page = fx.fs.readdir(&root_cred(), c.ino, 0, 10, false).expect("readdir");
        let dotdot = page.entries.iter().find(|e| e.name == b"..").expect("'..' entry");
        assert_eq!(dotdot.ino, q.ino);
        // And the old parent can now be removed: it is empty.
        fx.fs.rmdir(&root_cred(), root, b"p").expect("rmdir old parent");
    }

    fn rename_of_a_directory_within_its_parent_keeps_nlink(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        rename(fx, root, "d", root, "e").expect("rename");
        assert_eq!(fx.attr(root).nlink, 3);
        assert_eq!(fx.lookup(d.ino, "..").expect("..").ino, root);
    }

    fn rename_of_dot_or_dotdot_is_refused(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        assert!(rename(fx, d.ino, ".", root, "x").is_err());
        assert!(rename(fx, d.ino, "..", root, "x").is_err());
        fx.file(root, "f");
        assert!(rename(fx, root, "f", d.ino, "..").is_err());
        assert_eq!(fx.names(root), ["d", "f"]);
        assert!(fx.names(d.ino).is_empty());
    }

    fn rename_reports_both_directories_in_its_wcc(fx) {
        let root = fx.root();
        let a = fx.dir(root, "a");
        let b = fx.dir(root, "b");
        fx.file(a.ino, "f");
        let a_before = fx.attr(a.ino);
        let b_before = fx.attr(b.ino);
        tick();
        let (from, to) = rename(fx, a.ino, "f", b.ino, "f").expect("rename");
        assert_eq!(from.after.ino, a.ino);
        assert_eq!(to.after.ino, b.ino);
        assert_eq!(from.before.mtime, a_before.mtime);
        assert_eq!(to.before.mtime, b_before.mtime);
        assert!(from.after.mtime > a_before.mtime);
        assert!(to.after.mtime > b_before.mtime);
        assert_eq!(from.after, fx.attr(a.ino));
        assert_eq!(to.after, fx.attr(b.ino));
    }
}
