//! Quotas: directory-tree and per-user / per-group limits on bytes and
//! inodes, charged in the transaction of every operation. Usage follows
//! creates, writes, truncation, removal, renames between quota trees, hard
//! links and ownership changes; an operation that would pass a limit fails
//! with `QuotaExceeded` and changes nothing; quotas set on populated trees
//! count what is there, even while other threads keep changing it; and
//! parallel writers never pass a limit by one byte. On both backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};

fn limits(bytes: Option<u64>, inodes: Option<u64>) -> QuotaLimits {
    QuotaLimits { bytes, inodes }
}

fn tree_usage(fx: &Fixture, dir: InodeId) -> QuotaUsage {
    fx.fs
        .get_quota(QuotaTarget::Tree(dir))
        .expect("get quota")
        .usage
}

/// An S3 PUT of `data` at `path` under the volume root.
type Put = dyn Fn(&Fixture, &[Vec<u8>], &[u8]) -> FsResult<Attr>;

/// Objects count against a tree quota once named; a PUT past it fails
/// and changes nothing; replacing an object frees the old one first.
fn objects_count_and_over_quota_puts_fail(fx: &Fixture, put: &Put) {
    let p = fx.dir(fx.root(), "bucketdir");
    fx.fs
        .set_quota(QuotaTarget::Tree(p.ino), limits(Some(1000), Some(10)))
        .expect("set");
    let put = |name: &str, len: usize| {
        let path = vec![
            b"bucketdir".to_vec(),
            b"sub".to_vec(),
            name.as_bytes().to_vec(),
        ];
        put(fx, &path, &pattern(1, len))
    };
    put("a", 600).expect("put");
    assert_eq!(
        tree_usage(fx, p.ino),
        usage(600, 2),
        "object and its implicit directory"
    );
    assert_err!(put("b", 401), FsError::QuotaExceeded);
    assert_eq!(fx.names(fx.lookup(p.ino, "sub").expect("sub").ino), ["a"]);
    assert_eq!(tree_usage(fx, p.ino), usage(600, 2));
    put("a", 1000).expect("replacing an object frees the old one first");
    assert_eq!(tree_usage(fx, p.ino), usage(1000, 2));
    let sub = fx.lookup(p.ino, "sub").expect("sub");
    fx.fs.remove(&root_cred(), sub.ino, b"a").expect("delete");
    assert_eq!(tree_usage(fx, p.ino), usage(0, 1));
}

fn usage(bytes: u64, inodes: u64) -> QuotaUsage {
    QuotaUsage { bytes, inodes }
}

/// What a tree quota on `dir` must show: every inode below it once, and
/// the sizes of its regular files.
fn counted(fx: &Fixture, dir: InodeId) -> QuotaUsage {
    let mut seen = HashSet::new();
    let mut out = usage(0, 0);
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        for (_, ino, _) in list_dir(&fx.fs, d, 500) {
            let Ok(a) = fx.fs.getattr(ino) else { continue };
            if !seen.insert(ino) {
                continue;
            }
            out.inodes += 1;
            match a.kind {
                FileType::Regular => out.bytes += a.size,
                FileType::Directory => stack.push(ino),
                _ => {}
            }
        }
    }
    out
}

fn truncate(fx: &Fixture, ino: InodeId, size: u64) -> FsResult<Wcc> {
    let set = SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    fx.fs.setattr(&root_cred(), ino, &set, None)
}

fn chown(fx: &Fixture, ino: InodeId, uid: Option<u32>, gid: Option<u32>) -> FsResult<Wcc> {
    let set = SetAttr {
        uid,
        gid,
        ..SetAttr::default()
    };
    fx.fs.setattr(&root_cred(), ino, &set, None)
}

both_backends! {
    fn tree_usage_follows_creates_writes_truncation_and_removal(fx) {
        let p = fx.dir(fx.root(), "p");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(None, None)).expect("set");
        assert_eq!(tree_usage(fx, p.ino), usage(0, 0), "the root itself is not counted");
        let f = fx.file(p.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 1000));
        assert_eq!(tree_usage(fx, p.ino), usage(1000, 1));
        fx.write(f.ino, 100, &pattern(2, 100));
        assert_eq!(tree_usage(fx, p.ino), usage(1000, 1), "an overwrite adds nothing");
        let sub = fx.dir(p.ino, "sub");
        fx.fs.symlink(&root_cred(), sub.ino, b"l", b"../f", &SetAttr::default()).expect("symlink");
        fx.fs.mknod(&root_cred(), sub.ino, b"fifo", NodeKind::Fifo, &SetAttr::default()).expect("mknod");
        assert_eq!(tree_usage(fx, p.ino), usage(1000, 4));
        truncate(fx, f.ino, 10).expect("truncate");
        assert_eq!(tree_usage(fx, p.ino), usage(10, 4));
        truncate(fx, f.ino, 5000).expect("extend");
        assert_eq!(tree_usage(fx, p.ino), usage(5000, 4), "bytes are the logical size");
        fx.fs.create(&root_cred(), p.ino, b"f", &CreateHow::Unchecked(SetAttr { size: Some(0), ..SetAttr::default() }))
            .expect("create truncating");
        assert_eq!(tree_usage(fx, p.ino), usage(0, 4));
        fx.write(f.ino, 0, &pattern(3, 300));
        fx.fs.remove(&root_cred(), p.ino, b"f").expect("remove");
        fx.fs.remove(&root_cred(), sub.ino, b"l").expect("remove link");
        fx.fs.remove(&root_cred(), sub.ino, b"fifo").expect("remove fifo");
        fx.fs.rmdir(&root_cred(), p.ino, b"sub").expect("rmdir");
        assert_eq!(tree_usage(fx, p.ino), usage(0, 0));
        // Outside the tree nothing is charged.
        let g = fx.file(fx.root(), "g");
        fx.write(g.ino, 0, &pattern(4, 77));
        assert_eq!(tree_usage(fx, p.ino), usage(0, 0));
    }

    fn unlinking_a_file_still_in_use_releases_its_usage_at_once(fx) {
        let p = fx.dir(fx.root(), "p");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(1000), None)).expect("set");
        let f = fx.file(p.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 1000));
        // A client keeps writing through its handle (NFSv3 has no open
        // state): after the unlink the space is free and the handle stale.
        fx.fs.remove(&root_cred(), p.ino, b"f").expect("remove");
        assert_eq!(tree_usage(fx, p.ino), usage(0, 0));
        assert_err!(fx.fs.write(&root_cred(), f.ino, 1000, b"late", false), FsError::Stale);
        assert_eq!(tree_usage(fx, p.ino), usage(0, 0));
        let g = fx.file(p.ino, "g");
        fx.write(g.ino, 0, &pattern(2, 1000));
        assert_eq!(tree_usage(fx, p.ino), usage(1000, 1));
    }

    fn a_write_past_the_byte_limit_fails_and_changes_nothing(fx) {
        let p = fx.dir(fx.root(), "p");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(1000), None)).expect("set");
        let f = fx.file(p.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 600));
        assert_err!(fx.fs.write(&root_cred(), f.ino, 590, &pattern(2, 411), true), FsError::QuotaExceeded);
        assert_eq!(fx.attr(f.ino).size, 600);
        assert_eq!(fx.read_all(f.ino), pattern(1, 600), "not even the overlapping bytes changed");
        assert_eq!(tree_usage(fx, p.ino), usage(600, 1));
        fx.write(f.ino, 590, &pattern(2, 410));
        assert_eq!(tree_usage(fx, p.ino), usage(1000, 1), "up to the limit exactly");
        fx.write(f.ino, 0, &pattern(5, 1000));
        assert_eq!(fx.read_all(f.ino), pattern(5, 1000), "overwrites at the limit succeed");
        assert_err!(fx.fs.write(&root_cred(), f.ino, 1000, b"x", false), FsError::QuotaExceeded);
        assert_err!(truncate(fx, f.ino, 1001), FsError::QuotaExceeded);
        assert_eq!(fx.attr(f.ino).size, 1000);
        truncate(fx, f.ino, 400).expect("shrinking is always allowed");
        assert_eq!(tree_usage(fx, p.ino), usage(400, 1));
        // Lowering a limit below usage keeps the data and refuses growth.
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(100), None)).expect("lower");
        assert_eq!(tree_usage(fx, p.ino), usage(400, 1));
        assert_err!(fx.fs.write(&root_cred(), f.ino, 400, b"y", false), FsError::QuotaExceeded);
        truncate(fx, f.ino, 300).expect("shrink while over");
    }

    fn the_inode_limit_refuses_creates_of_every_kind(fx) {
        let p = fx.dir(fx.root(), "p");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(None, Some(2))).expect("set");
        fx.file(p.ino, "a");
        let d = fx.dir(p.ino, "d");
        let guarded = CreateHow::Guarded(SetAttr::default());
        assert_err!(fx.fs.create(&root_cred(), d.ino, b"b", &guarded), FsError::QuotaExceeded);
        assert_err!(fx.fs.mkdir(&root_cred(), p.ino, b"e", &SetAttr::default()), FsError::QuotaExceeded);
        assert_err!(fx.fs.symlink(&root_cred(), p.ino, b"s", b"a", &SetAttr::default()), FsError::QuotaExceeded);
        assert_err!(fx.fs.mknod(&root_cred(), p.ino, b"n", NodeKind::Socket, &SetAttr::default()), FsError::QuotaExceeded);
        assert_eq!(fx.names(p.ino), ["a", "d"]);
        assert!(fx.names(d.ino).is_empty());
        assert_eq!(tree_usage(fx, p.ino), usage(0, 2));
        fx.fs.remove(&root_cred(), p.ino, b"a").expect("remove");
        fx.file(d.ino, "b");
    }

    fn nested_quotas_all_charge_and_the_tightest_refuses(fx) {
        let outer = fx.dir(fx.root(), "outer");
        let inner = fx.dir(outer.ino, "inner");
        fx.fs.set_quota(QuotaTarget::Tree(outer.ino), limits(Some(10_000), None)).expect("outer");
        fx.fs.set_quota(QuotaTarget::Tree(inner.ino), limits(Some(500), None)).expect("inner");
        assert_eq!(tree_usage(fx, outer.ino), usage(0, 1), "inner itself is in outer");
        let f = fx.file(inner.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 500));
        assert_eq!(tree_usage(fx, inner.ino), usage(500, 1));
        assert_eq!(tree_usage(fx, outer.ino), usage(500, 2));
        assert_err!(fx.fs.write(&root_cred(), f.ino, 500, b"z", false), FsError::QuotaExceeded);
        let g = fx.file(outer.ino, "g");
        fx.write(g.ino, 0, &pattern(2, 9500));
        assert_eq!(tree_usage(fx, outer.ino), usage(10_000, 3));
        assert_err!(fx.fs.write(&root_cred(), g.ino, 9500, b"z", false), FsError::QuotaExceeded);
        fx.fs.remove(&root_cred(), inner.ino, b"f").expect("remove");
        assert_eq!(tree_usage(fx, outer.ino), usage(9500, 2));
    }

    fn rename_between_quota_trees_moves_usage_or_is_refused(fx) {
        let a = fx.dir(fx.root(), "a");
        let b = fx.dir(fx.root(), "b");
        fx.fs.set_quota(QuotaTarget::Tree(a.ino), limits(None, None)).expect("a");
        fx.fs.set_quota(QuotaTarget::Tree(b.ino), limits(Some(1000), None)).expect("b");
        let f = fx.file(a.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 900));
        // A directory tree moves with everything in it.
        let t = fx.dir(a.ino, "t");
        let t2 = fx.dir(t.ino, "t2");
        let g = fx.file(t2.ino, "g");
        fx.write(g.ino, 0, &pattern(2, 200));
        assert_eq!(tree_usage(fx, a.ino), usage(1100, 4));
        fx.fs.rename(&root_cred(), a.ino, b"t", b.ino, b"t").expect("move tree");
        assert_eq!(tree_usage(fx, a.ino), usage(900, 1));
        assert_eq!(tree_usage(fx, b.ino), usage(200, 3));
        // Too big for b: refused, nothing moves.
        assert_err!(fx.fs.rename(&root_cred(), a.ino, b"f", t2.ino, b"f"), FsError::QuotaExceeded);
        assert_eq!(fx.names(a.ino), ["f"]);
        assert_eq!(tree_usage(fx, a.ino), usage(900, 1));
        assert_eq!(tree_usage(fx, b.ino), usage(200, 3));
        truncate(fx, f.ino, 300).expect("truncate");
        fx.fs.rename(&root_cred(), a.ino, b"f", t2.ino, b"f").expect("fits now");
        assert_eq!(tree_usage(fx, a.ino), usage(0, 0));
        assert_eq!(tree_usage(fx, b.ino), usage(500, 4));
        // Writes follow the file to its new tree.
        fx.write(f.ino, 300, &pattern(3, 100));
        assert_eq!(tree_usage(fx, b.ino), usage(600, 4));
        // Out of every quota: released.
        fx.fs.rename(&root_cred(), b.ino, b"t", fx.root(), b"t").expect("out");
        assert_eq!(tree_usage(fx, b.ino), usage(0, 0));
        // Replacing a file by rename releases the one replaced.
        let x = fx.file(b.ino, "x");
        fx.write(x.ino, 0, &pattern(4, 900));
        let y = fx.file(b.ino, "y");
        fx.write(y.ino, 0, &pattern(5, 50));
        fx.fs.rename(&root_cred(), b.ino, b"y", b.ino, b"x").expect("replace");
        assert_eq!(tree_usage(fx, b.ino), usage(50, 1));
        // A quota root moves whole, with its own usage.
        let q = fx.dir(fx.root(), "q");
        fx.fs.set_quota(QuotaTarget::Tree(q.ino), limits(None, None)).expect("q");
        let h = fx.file(q.ino, "h");
        fx.write(h.ino, 0, &pattern(6, 400));
        fx.fs.rename(&root_cred(), fx.root(), b"q", b.ino, b"q").expect("move root");
        assert_eq!(tree_usage(fx, b.ino), usage(450, 3));
        assert_eq!(tree_usage(fx, q.ino), usage(400, 1));
        fx.write(h.ino, 400, &pattern(7, 550));
        assert_eq!(tree_usage(fx, b.ino), usage(1000, 3));
        assert_eq!(counted(fx, b.ino), usage(1000, 3));
    }

    fn a_hard_linked_file_counts_once_and_stays_in_its_tree(fx) {
        let a = fx.dir(fx.root(), "a");
        let b = fx.dir(fx.root(), "b");
        fx.fs.set_quota(QuotaTarget::Tree(a.ino), limits(None, None)).expect("a");
        fx.fs.set_quota(QuotaTarget::Tree(b.ino), limits(None, None)).expect("b");
        let f = fx.file(a.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 100));
        let sub = fx.dir(a.ino, "sub");
        fx.fs.link(&root_cred(), f.ino, sub.ino, b"f2").expect("link in the same tree");
        assert_eq!(tree_usage(fx, a.ino), usage(100, 2), "one inode for two names");
        assert_err!(fx.fs.link(&root_cred(), f.ino, b.ino, b"f3"), FsError::CrossDevice);
        assert_err!(fx.fs.link(&root_cred(), f.ino, fx.root(), b"f3"), FsError::CrossDevice);
        assert_err!(fx.fs.rename(&root_cred(), a.ino, b"f", b.ino, b"f"), FsError::CrossDevice);
        fx.fs.rename(&root_cred(), a.ino, b"f", sub.ino, b"f").expect("rename inside the tree");
        fx.fs.remove(&root_cred(), sub.ino, b"f").expect("unlink one name");
        assert_eq!(tree_usage(fx, a.ino), usage(100, 2), "still linked");
        fx.fs.rename(&root_cred(), sub.ino, b"f2", b.ino, b"f").expect("single link moves");
        assert_eq!(tree_usage(fx, a.ino), usage(0, 1));
        assert_eq!(tree_usage(fx, b.ino), usage(100, 1));
        fx.fs.remove(&root_cred(), b.ino, b"f").expect("last unlink");
        assert_eq!(tree_usage(fx, b.ino), usage(0, 0));
    }

    fn chown_and_chgrp_move_user_and_group_usage(fx) {
        let vol = fx.volume().id;
        let alice = QuotaTarget::User { volume: vol, uid: 1000 };
        let bob = QuotaTarget::User { volume: vol, uid: 2000 };
        let staff = QuotaTarget::Group { volume: vol, gid: 50 };
        fx.fs.set_quota(alice, limits(None, Some(10))).expect("alice");
        fx.fs.set_quota(bob, limits(Some(150), None)).expect("bob");
        fx.fs.set_quota(staff, limits(None, None)).expect("staff");
        let home = fx.dir_with(fx.root(), "home", 0o777, 0, 0);
        let f = fx.file_as(&user_in(1000, 50, &[]), home.ino, "f");
        fx.fs.write(&user(1000), f.ino, 0, &pattern(1, 100), false).expect("write");
        let d = fx.dir_as(&user_in(1000, 7, &[]), home.ino, "d");
        let q = |t| fx.fs.get_quota(t).expect("get").usage;
        assert_eq!(q(alice), usage(100, 2));
        assert_eq!(q(staff), usage(100, 1));
        chown(fx, f.ino, Some(2000), None).expect("chown");
        assert_eq!(q(alice), usage(0, 1));
        assert_eq!(q(bob), usage(100, 1));
        chown(fx, f.ino, None, Some(7)).expect("chgrp");
        assert_eq!(q(staff), usage(0, 0));
        let g = fx.file_as(&user(1000), home.ino, "g");
        fx.fs.write(&user(1000), g.ino, 0, &pattern(2, 60), false).expect("write");
        assert_err!(chown(fx, g.ino, Some(2000), None), FsError::QuotaExceeded);
        assert_eq!(fx.attr(g.ino).uid, 1000, "refused chown changed nothing");
        assert_eq!(q(alice), usage(60, 2));
        chown(fx, d.ino, Some(2000), None).expect("a directory has no bytes");
        assert_eq!(q(bob), usage(100, 2));
        assert_eq!(fx.fs.list_quotas(vol).expect("list").len(), 3);
        fx.fs.remove_quota(staff).expect("remove");
        assert_err!(fx.fs.get_quota(staff), FsError::NotFound);
        assert_eq!(fx.fs.list_quotas(vol).expect("list").len(), 2);
    }

    fn quotas_set_on_populated_trees_count_what_is_there(fx) {
        let p = fx.dir(fx.root(), "p");
        let mut expect = usage(0, 0);
        for i in 0..5 {
            let d = fx.dir(p.ino, &format!("d{i}"));
            expect.inodes += 1;
            for j in 0..60 {
                let f = fx.file(d.ino, &format!("f{j}"));
                let len = 10 * i + j;
                fx.write(f.ino, 0, &pattern(1, len as usize));
                expect.inodes += 1;
                expect.bytes += len;
            }
        }
        let d0 = fx.lookup(p.ino, "d0").expect("d0");
        let f0 = fx.lookup(d0.ino, "f5").expect("f5");
        fx.fs.link(&root_cred(), f0.ino, p.ino, b"link").expect("link");
        // A link from outside the tree to a file inside.
        fx.fs.link(&root_cred(), f0.ino, fx.root(), b"outside").expect("link");
        let inner = fx.lookup(p.ino, "d3").expect("d3");
        let set = fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(1 << 20), None)).expect("set");
        assert_eq!(set.phase, QuotaPhase::Ready);
        assert_eq!(set.usage, expect);
        assert_eq!(counted(fx, p.ino), expect);
        // A nested quota counts its part; the outer one is unchanged.
        let inner_q = fx.fs.set_quota(QuotaTarget::Tree(inner.ino), limits(None, None)).expect("inner");
        assert_eq!(inner_q.usage, counted(fx, inner.ino));
        assert_eq!(tree_usage(fx, p.ino), expect);
        let f = fx.file(inner.ino, "new");
        fx.write(f.ino, 0, &pattern(2, 5));
        assert_eq!(tree_usage(fx, inner.ino).inodes, 61);
        assert_eq!(tree_usage(fx, p.ino), usage(expect.bytes + 5, expect.inodes + 1));
        // Removing the outer quota and setting it again counts afresh,
        // nested quota included.
        fx.fs.remove_quota(QuotaTarget::Tree(p.ino)).expect("remove");
        fx.write(f.ino, 5, &pattern(3, 5));
        let again = fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(None, None)).expect("again");
        assert_eq!(again.usage, counted(fx, p.ino));
        fx.fs.remove_quota(QuotaTarget::Tree(inner.ino)).expect("remove inner");
        fx.write(f.ino, 10, &pattern(4, 5));
        assert_eq!(tree_usage(fx, p.ino), counted(fx, p.ino));
        assert_err!(fx.fs.get_quota(QuotaTarget::Tree(inner.ino)), FsError::NotFound);
    }

    fn user_quotas_set_on_a_populated_volume_count_what_is_there(fx) {
        let vol = fx.volume().id;
        let home = fx.dir_with(fx.root(), "home", 0o777, 0, 0);
        for i in 0..700u64 {
            let who = if i.is_multiple_of(3) { user(1000) } else { user(2000) };
            let f = fx.file_as(&who, home.ino, &format!("f{i}"));
            fx.fs.write(&who, f.ino, 0, &pattern(1, (i % 50) as usize), false).expect("write");
        }
        let bytes: u64 = (0..700u64).filter(|i| i.is_multiple_of(3)).map(|i| i % 50).sum();
        let q = fx.fs.set_quota(QuotaTarget::User { volume: vol, uid: 1000 }, limits(None, None)).expect("set");
        assert_eq!(q.usage, usage(bytes, 234));
        let g = fx.fs.set_quota(QuotaTarget::Group { volume: vol, gid: 2000 }, limits(None, None)).expect("set");
        assert_eq!(g.usage.inodes, 466);
        // Another volume's files are not counted.
        let other = fx.fs.create_volume("other").expect("volume");
        let o = fx.fs.set_quota(QuotaTarget::User { volume: other.id, uid: 1000 }, limits(None, None)).expect("set");
        assert_eq!(o.usage, usage(0, 0));
    }

    fn s3_objects_count_when_published_and_over_quota_puts_fail(fx) {
        objects_count_and_over_quota_puts_fail(fx, &|fx, path, data| {
            let d = fx.fs.create_detached(&root_cred(), fx.volume().id, 0o644, DetachedKind::Transient)?;
            fx.fs.write(&root_cred(), d.ino, 0, data, false)?;
            fx.fs.publish(&root_cred(), d.ino, fx.root(), path, &[]).inspect_err(|_| {
                fx.fs.discard_detached(d.ino).expect("discard");
            })
        });
    }

    fn small_s3_objects_made_in_one_transaction_count_and_over_quota_puts_fail(fx) {
        objects_count_and_over_quota_puts_fail(fx, &|fx, path, data| {
            let (cred, vol, none) = (root_cred(), fx.volume().id, |_: &Attr| Vec::new());
            fx.fs.publish_new_if(&cred, vol, fx.root(), path, 0o644, data, none, PublishIf::Always)
        });
    }

    fn fsstat_under_a_quota_root_reports_the_quota(fx) {
        let p = fx.dir(fx.root(), "p");
        let (_, device) = fx.fs.fsstat(fx.root()).expect("fsstat");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(1 << 20), Some(100))).expect("set");
        let sub = fx.dir(p.ino, "sub");
        let f = fx.file(sub.ino, "f");
        fx.write(f.ino, 0, &pattern(1, 1000));
        for ino in [p.ino, sub.ino, f.ino] {
            let (_, st) = fx.fs.fsstat(ino).expect("fsstat");
            assert_eq!(st.total_bytes, 1 << 20);
            assert_eq!(st.free_bytes, (1 << 20) - 1000);
            assert_eq!(st.avail_bytes, (1 << 20) - 1000);
            assert_eq!((st.total_files, st.free_files, st.avail_files), (100, 98, 98));
        }
        let (_, outside) = fx.fs.fsstat(fx.root()).expect("fsstat");
        assert_eq!(outside.total_bytes, device.total_bytes);
    }

    fn parallel_writers_never_pass_a_limit(fx) {
        const THREADS: usize = 6;
        const LIMIT: u64 = 300_007;
        let p = fx.dir(fx.root(), "p");
        fx.fs.set_quota(QuotaTarget::Tree(p.ino), limits(Some(LIMIT), None)).expect("set");
        let files: Vec<Attr> = (0..THREADS).map(|t| fx.file(p.ino, &format!("f{t}"))).collect();
        std::thread::scope(|s| {
            for (t, f) in files.iter().enumerate() {
                let fs = &fx.fs;
                s.spawn(move || {
                    let mut off = 0u64;
                    let len = 1000 + 97 * t;
                    loop {
                        match fs.write(&root_cred(), f.ino, off, &pattern(t as u8, len), false) {
                            Ok(_) => off += len as u64,
                            Err(FsError::QuotaExceeded) => break,
                            Err(e) => panic!("write: {e:?}"),
                        }
                    }
                });
            }
        });
        let used = tree_usage(fx, p.ino);
        let sizes: u64 = files.iter().map(|f| fx.attr(f.ino).size).sum();
        assert_eq!(used.bytes, sizes, "usage is exactly the sum of the sizes");
        assert!(used.bytes <= LIMIT, "{} > {LIMIT}", used.bytes);
        // What is left can be written, and not one byte more.
        let last = fx.file(p.ino, "last");
        fx.write(last.ino, 0, &pattern(9, (LIMIT - used.bytes) as usize));
        assert_err!(fx.fs.write(&root_cred(), last.ino, LIMIT - used.bytes, b"!", false), FsError::QuotaExceeded);
        assert_eq!(tree_usage(fx, p.ino).bytes, LIMIT);
    }

    fn a_quota_set_while_the_tree_changes_counts_exactly(fx) {
        let p = fx.dir(fx.root(), "p");
        let dirs: Vec<Attr> = (0..4).map(|i| fx.dir(p.ino, &format!("d{i}"))).collect();
        for d in &dirs {
            for j in 0..150 {
                let f = fx.file(d.ino, &format!("pre{j}"));
                fx.write(f.ino, 0, &pattern(1, j % 37));
            }
        }
        let stop = AtomicBool::new(false);
        std::thread::scope(|s| {
            for (t, d) in dirs.iter().enumerate() {
                let fs = &fx.fs;
                let stop = &stop;
                let other = dirs[(t + 1) % dirs.len()].ino;
                s.spawn(move || {
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("t{t}-{i}");
                        let how = CreateHow::Guarded(SetAttr::default());
                        let (a, _) = fs.create(&root_cred(), d.ino, name.as_bytes(), &how).expect("create");
                        fs.write(&root_cred(), a.ino, 0, &pattern(2, 1 + i % 50), false).expect("write");
                        match i % 4 {
                            0 => { fs.remove(&root_cred(), d.ino, name.as_bytes()).expect("remove"); }
                            1 => { fs.rename(&root_cred(), d.ino, name.as_bytes(), other, name.as_bytes()).expect("rename"); }
                            2 => { fs.remove(&root_cred(), d.ino, format!("pre{}", i / 4).as_bytes()).ok(); }
                            _ => { fs.write(&root_cred(), a.ino, 60, b"more", false).expect("extend"); }
                        }
                        i += 1;
                    }
                });
            }
            let fs = &fx.fs;
            let stop = &stop;
            s.spawn(move || {
                fs.set_quota(QuotaTarget::Tree(p.ino), limits(None, None)).expect("set");
                stop.store(true, Ordering::Relaxed);
            });
        });
        assert_eq!(tree_usage(fx, p.ino), counted(fx, p.ino));
        fx.fs.remove_quota(QuotaTarget::Tree(p.ino)).expect("remove");
    }

    fn a_user_quota_set_while_files_come_and_go_counts_exactly(fx) {
        let vol = fx.volume().id;
        let home = fx.dir_with(fx.root(), "home", 0o777, 0, 0);
        let dirs: Vec<Attr> = (0..3).map(|i| fx.dir_as(&user(1000), home.ino, &format!("d{i}"))).collect();
        for d in &dirs {
            for j in 0..200 {
                let f = fx.file_as(&user(1000), d.ino, &format!("pre{j}"));
                fx.fs.write(&user(1000), f.ino, 0, &pattern(1, j % 41), false).expect("write");
            }
        }
        let stop = AtomicBool::new(false);
        let target = QuotaTarget::User { volume: vol, uid: 1000 };
        std::thread::scope(|s| {
            for (t, d) in dirs.iter().enumerate() {
                let fs = &fx.fs;
                let stop = &stop;
                s.spawn(move || {
                    let me = user(1000);
                    let mut i = 0usize;
                    while !stop.load(Ordering::Relaxed) {
                        let name = format!("t{t}-{i}");
                        let how = CreateHow::Guarded(SetAttr::default());
                        let (a, _) = fs.create(&me, d.ino, name.as_bytes(), &how).expect("create");
                        fs.write(&me, a.ino, 0, &pattern(2, 1 + i % 30), false).expect("write");
                        if i.is_multiple_of(3) {
                            fs.remove(&me, d.ino, format!("pre{}", i / 3).as_bytes()).ok();
                        }
                        i += 1;
                    }
                });
            }
            let fs = &fx.fs;
            let stop = &stop;
            s.spawn(move || {
                fs.set_quota(target, limits(None, None)).expect("set");
                stop.store(true, Ordering::Relaxed);
            });
        });
        // Every inode below home (not home itself) belongs to uid 1000.
        assert_eq!(fx.fs.get_quota(target).expect("get").usage, counted(fx, home.ino));
    }
}

#[test]
fn quotas_and_usage_survive_a_restart() {
    let fx = Fixture::new(Backend::Rocks);
    let p = fx.dir(fx.root(), "p");
    fx.fs
        .set_quota(QuotaTarget::Tree(p.ino), limits(Some(5000), Some(9)))
        .expect("set");
    let f = fx.file(p.ino, "f");
    fx.write(f.ino, 0, &pattern(1, 1234));
    fx.fs.sync_all().expect("sync");
    let fx = fx.restart(small_chunks());
    let q = fx.fs.get_quota(QuotaTarget::Tree(p.ino)).expect("get");
    assert_eq!(q.limits, limits(Some(5000), Some(9)));
    assert_eq!(q.usage, usage(1234, 1));
    fx.write(f.ino, 1234, &pattern(2, 100));
    assert_eq!(tree_usage(&fx, p.ino), usage(1334, 1));
    assert_err!(
        fx.fs
            .write(&root_cred(), f.ino, 0, &pattern(3, 5001), false),
        FsError::QuotaExceeded
    );
}
