//! Whole-object operations for S3: detached files published atomically,
//! multipart concatenation without copying, name-ordered listing, and
//! extended attributes. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;

const C: usize = CHUNK as usize;

fn path(p: &str) -> Vec<Vec<u8>> {
    p.split('/').map(|c| c.as_bytes().to_vec()).collect()
}

/// `publish_new_if` of one byte at `p`, as root.
fn put_small(fx: &Fixture, p: &str) -> FsResult<Attr> {
    let none = |_: &Attr| Vec::new();
    fx.fs.publish_new_if(
        &root_cred(),
        fx.volume().id,
        fx.root(),
        &path(p),
        0o644,
        b"x",
        none,
        PublishIf::Always,
    )
}

fn detached(fx: &Fixture, data: &[u8]) -> Attr {
    let cred = root_cred();
    let a = fx
        .fs
        .create_detached(&cred, fx.volume().id, 0o644, DetachedKind::Transient)
        .expect("create_detached");
    if !data.is_empty() {
        fx.fs.write(&cred, a.ino, 0, data, false).expect("write");
    }
    a
}

both_backends! {
    fn a_detached_file_is_invisible_until_published_then_appears_with_its_xattrs(fx) {
        let cred = root_cred();
        let a = detached(fx, b"hello");
        assert!(fx.names(fx.root()).is_empty());
        let xattrs = vec![(b"user.s3.etag".to_vec(), b"abc".to_vec())];
        let published = fx.fs.publish(&cred, a.ino, fx.root(), &path("x/y/obj"), &xattrs).expect("publish");
        assert_eq!(published.nlink, 1);
        let x = fx.lookup(fx.root(), "x").expect("x created");
        assert_eq!(x.kind, FileType::Directory);
        let y = fx.lookup(x.ino, "y").expect("y created");
        let obj = fx.lookup(y.ino, "obj").expect("obj");
        assert_eq!(obj.ino, a.ino);
        assert_eq!(fx.read_all(obj.ino), b"hello");
        assert_eq!(fx.fs.get_xattr(&cred, obj.ino, b"user.s3.etag").expect("xattr"), Some(b"abc".to_vec()));
        assert_eq!(fx.attr(fx.root()).nlink, 3);
        let implicit = fx.fs.get_xattr(&cred, x.ino, IMPLICIT_DIR_XATTR).expect("xattr");
        assert_eq!(implicit, Some(b"1".to_vec()));
    }

    fn publishing_over_an_existing_object_replaces_it_and_frees_the_old_data(fx) {
        let cred = root_cred();
        let first = detached(fx, &pattern(1, 3 * C));
        fx.fs.publish(&cred, first.ino, fx.root(), &path("k"), &[]).expect("publish 1");
        let second = detached(fx, b"new");
        fx.fs.publish(&cred, second.ino, fx.root(), &path("k"), &[]).expect("publish 2");
        let k = fx.lookup(fx.root(), "k").expect("k");
        assert_eq!(k.ino, second.ino);
        assert_eq!(fx.read_all(k.ino), b"new");
        assert_err!(fx.fs.getattr(first.ino), FsError::Stale);
        use nitrofs_chunk_store::ChunkStore;
        assert!(!fx.chunks.inodes().expect("inodes").contains(&first.ino));
    }

    fn a_reader_opened_before_its_object_is_replaced_reads_the_old_bytes_to_the_end(fx) {
        use nitrofs_chunk_store::ChunkStore;
        let cred = root_cred();
        let old = pattern(3, 3 * C + 17);
        let first = detached(fx, &old);
        fx.fs.publish(&cred, first.ino, fx.root(), &path("k"), &[]).expect("publish 1");
        let reader = FileSystem::open_read(&fx.fs, &cred, first.ino).expect("open");
        let second = detached(fx, b"new");
        fx.fs.publish(&cred, second.ino, fx.root(), &path("k"), &[]).expect("publish 2");
        assert_err!(fx.fs.getattr(first.ino), FsError::Stale);
        // A reader opened now finds the object gone.
        assert_err!(FileSystem::open_read(&fx.fs, &cred, first.ino), FsError::Stale);
        // The one opened before reads every byte, across chunks.
        assert_eq!(reader.attr().size, old.len() as u64);
        let mut got = Vec::new();
        while (got.len() as u64) < reader.attr().size {
            let piece = reader.read(got.len() as u64, 50_000).expect("read");
            assert!(!piece.is_empty(), "short read at {}", got.len());
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, old);
        assert!(reader.read(old.len() as u64, 10).expect("read at the end").is_empty());
        assert!(fx.chunks.inodes().expect("inodes").contains(&first.ino), "freed while read");
        reader.close();
        assert!(!fx.chunks.inodes().expect("inodes").contains(&first.ino), "kept after the read");
        assert_eq!(fx.read_all(second.ino), b"new");
    }

    fn a_removed_file_stays_readable_by_each_reader_until_the_last_closes(fx) {
        use nitrofs_chunk_store::ChunkStore;
        let cred = root_cred();
        let f = fx.file(fx.root(), "f");
        let data = pattern(5, C + 100);
        fx.write(f.ino, 0, &data);
        let a = FileSystem::open_read(&fx.fs, &cred, f.ino).expect("open a");
        let b = FileSystem::open_read(&fx.fs, &cred, f.ino).expect("open b");
        fx.fs.remove(&cred, fx.root(), b"f").expect("remove");
        a.close();
        assert!(fx.chunks.inodes().expect("inodes").contains(&f.ino), "freed with a reader left");
        assert_eq!(b.read(C as u64, 100).expect("read").as_ref(), &data[C..]);
        b.close();
        assert!(!fx.chunks.inodes().expect("inodes").contains(&f.ino), "kept after both closed");
    }

    fn a_reader_whose_file_is_cut_short_fails_instead_of_reading_zeros(fx) {
        let cred = root_cred();
        let f = fx.file(fx.root(), "f");
        let data = pattern(7, 2 * C + 5);
        fx.write(f.ino, 0, &data);
        let reader = FileSystem::open_read(&fx.fs, &cred, f.ino).expect("open");
        assert_eq!(reader.read(0, 100).expect("read").as_ref(), &data[..100]);
        let cut = SetAttr {
            size: Some(10),
            ..SetAttr::default()
        };
        fx.fs.setattr(&cred, f.ino, &cut, None).expect("truncate");
        assert_err!(reader.read(C as u64, 100), FsError::Io(_));
        // Within the new end, the bytes are still the file's.
        assert_eq!(reader.read(0, 10).expect("read").as_ref(), &data[..10]);
    }

    fn a_reader_needs_read_permission_and_a_regular_file(fx) {
        let f = fx.file_with(fx.root(), "secret", 0o600, 1000, 1000);
        fx.write(f.ino, 0, b"x");
        assert_err!(FileSystem::open_read(&fx.fs, &user(2000), f.ino), FsError::Access);
        assert!(FileSystem::open_read(&fx.fs, &user(1000), f.ino).is_ok());
        let d = fx.dir(fx.root(), "d");
        assert_err!(FileSystem::open_read(&fx.fs, &root_cred(), d.ino), FsError::IsDir);
    }

    fn publish_refuses_a_directory_target_and_a_file_in_the_path(fx) {
        let cred = root_cred();
        fx.dir(fx.root(), "d");
        fx.file(fx.root(), "f");
        let a = detached(fx, b"x");
        assert_err!(fx.fs.publish(&cred, a.ino, fx.root(), &path("d"), &[]), FsError::IsDir);
        assert_err!(fx.fs.publish(&cred, a.ino, fx.root(), &path("f/z"), &[]), FsError::NotDir);
        assert_err!(fx.fs.publish(&cred, a.ino, fx.root(), &path("a/../b"), &[]), FsError::Invalid(_));
        // Still detached and publishable.
        fx.fs.publish(&cred, a.ino, fx.root(), &path("ok"), &[]).expect("publish");
    }

    fn conditional_publish_checks_the_name_in_the_same_transaction(fx) {
        let cred = root_cred();
        let first = detached(fx, b"one");
        fx.fs.publish_if(&cred, first.ino, fx.root(), &path("k"), &[], PublishIf::Absent).expect("absent");
        let again = detached(fx, b"two");
        assert_err!(fx.fs.publish_if(&cred, again.ino, fx.root(), &path("k"), &[], PublishIf::Absent), FsError::GuardFailed);
        let seen = fx.attr(first.ino);
        let stale = PublishIf::Unchanged { ino: first.ino, ctime: Timestamp::new(1, 0) };
        assert_err!(fx.fs.publish_if(&cred, again.ino, fx.root(), &path("k"), &[], stale), FsError::GuardFailed);
        let fresh = PublishIf::Unchanged { ino: first.ino, ctime: seen.ctime };
        fx.fs.publish_if(&cred, again.ino, fx.root(), &path("k"), &[], fresh).expect("unchanged");
        assert_eq!(fx.read_all(fx.lookup(fx.root(), "k").expect("k").ino), b"two");
    }

    fn publish_checks_permissions_on_every_directory(fx) {
        let locked = fx.dir_with(fx.root(), "locked", 0o700, 0, 0);
        let _ = locked;
        let u = user(1000);
        let a = fx.fs.create_detached(&u, fx.volume().id, 0o644, DetachedKind::Transient).expect("detached");
        assert_err!(fx.fs.publish(&u, a.ino, fx.root(), &path("locked/obj"), &[]), FsError::Access);
        assert_err!(fx.fs.publish(&u, a.ino, fx.root(), &path("top"), &[]), FsError::Access);
    }

    fn concatenation_links_parts_without_copying_and_reads_back_in_order(fx) {
        let cred = root_cred();
        let vol = fx.volume().id;
        let upload = DetachedKind::Upload(b"u1".to_vec());
        let p1 = pattern(1, C + 100); // not chunk-aligned
        let p2 = pattern(2, 2 * C + 7);
        let p3 = pattern(3, 10);
        let mut parts = Vec::new();
        for data in [&p1, &p2, &p3] {
            let a = fx.fs.create_detached(&cred, vol, 0o644, upload.clone()).expect("part");
            fx.fs.write(&cred, a.ino, 0, data, false).expect("write part");
            parts.push(a.ino);
        }
        assert_eq!(fx.fs.detached_of_upload(b"u1").expect("of upload").len(), 3);
        let target = fx.fs.create_detached(&cred, vol, 0o644, upload).expect("target");
        let t = fx.fs.concat_detached(&cred, target.ino, &parts).expect("concat");
        assert_eq!(t.size as usize, p1.len() + p2.len() + p3.len());
        for p in &parts {
            assert_err!(fx.fs.getattr(*p), FsError::Stale);
        }
        fx.fs.publish(&cred, target.ino, fx.root(), &path("big"), &[]).expect("publish");
        let mut want = p1.clone();
        want.extend_from_slice(&p2);
        want.extend_from_slice(&p3);
        assert_eq!(fx.read_all(target.ino), want);
        // The parts' chunk data is what the object reads: no copy was made.
        use nitrofs_chunk_store::ChunkStore;
        let with_data = fx.chunks.inodes().expect("inodes");
        assert!(parts.iter().all(|p| with_data.contains(p)));
        assert!(!with_data.contains(&target.ino));
        // Overwrite across a segment boundary, then append past the end.
        let at = p1.len() - 5;
        fx.write(target.ino, at as u64, b"0123456789");
        want[at..at + 10].copy_from_slice(b"0123456789");
        let end = want.len();
        fx.write(target.ino, end as u64, b"tail");
        want.extend_from_slice(b"tail");
        assert_eq!(fx.read_all(target.ino), want);
        // Truncate into the first segment, then extend: zeros after.
        fx.fs.setattr(&cred, target.ino, &SetAttr { size: Some(50), ..SetAttr::default() }, None).expect("shrink");
        fx.fs.setattr(&cred, target.ino, &SetAttr { size: Some(80), ..SetAttr::default() }, None).expect("grow");
        let mut short = want[..50].to_vec();
        short.extend_from_slice(&[0; 30]);
        assert_eq!(fx.read_all(target.ino), short);
        // Removing the object frees every part's data.
        fx.fs.remove(&cred, fx.root(), b"big").expect("remove");
        let left = fx.chunks.inodes().expect("inodes");
        assert!(parts.iter().all(|p| !left.contains(p)), "{left:?}");
    }

    fn discarding_a_detached_file_deletes_it_and_its_data(fx) {
        let a = detached(fx, &pattern(4, C + 1));
        fx.fs.discard_detached(a.ino).expect("discard");
        assert_err!(fx.fs.getattr(a.ino), FsError::Stale);
        use nitrofs_chunk_store::ChunkStore;
        assert!(!fx.chunks.inodes().expect("inodes").contains(&a.ino));
        assert_err!(fx.fs.discard_detached(fx.root()), FsError::Invalid(_));
    }

    fn list_by_name_pages_in_byte_order_with_attributes(fx) {
        let names = ["b", "a-b", "a", "a0", "c"];
        for n in names {
            fx.file(fx.root(), n);
        }
        let cred = root_cred();
        let (page, more) = fx.fs.list_by_name(&cred, fx.root(), b"", 2).expect("page 1");
        let got: Vec<_> = page.iter().map(|e| String::from_utf8_lossy(&e.name).to_string()).collect();
        assert_eq!(got, vec!["a", "a-b"]);
        assert!(more);
        assert!(page.iter().all(|e| e.attr.is_some()));
        let (page, more) = fx.fs.list_by_name(&cred, fx.root(), b"a-b", 10).expect("page 2");
        let got: Vec<_> = page.iter().map(|e| String::from_utf8_lossy(&e.name).to_string()).collect();
        assert_eq!(got, vec!["a0", "b", "c"]);
        assert!(!more);
    }

    fn a_small_object_is_made_and_named_in_one_durable_transaction(fx) {
        let cred = root_cred();
        let vol = fx.volume().id;
        let mut seen = None;
        let xattrs = |a: &Attr| {
            seen = Some(a.clone());
            vec![(b"user.s3.stamp".to_vec(), format!("{}:{}", a.size, a.mtime.nanos).into_bytes())]
        };
        let (made, owed) = deferring_sync(|| {
            fx.fs.publish_new_if(&cred, vol, fx.root(), &path("x/y/obj"), 0o640, b"hello", xattrs, PublishIf::Always)
        });
        let made = made.expect("publish_new_if");
        assert!(owed, "the change is durable: its log sync is owed");
        let x = fx.lookup(fx.root(), "x").expect("x created");
        let implicit = fx.fs.get_xattr(&cred, x.ino, IMPLICIT_DIR_XATTR).expect("xattr");
        assert_eq!(implicit, Some(b"1".to_vec()));
        let obj = fx.lookup(fx.lookup(x.ino, "y").expect("y").ino, "obj").expect("obj");
        assert_eq!(obj.ino, made.ino);
        assert_eq!((obj.nlink, obj.size, obj.mode & 0o7777), (1, 5, 0o640));
        assert_eq!(fx.read_all(obj.ino), b"hello");
        // The attributes the xattrs were made from are the file's.
        let seen = seen.expect("xattrs made");
        assert_eq!((seen.ino, seen.size, seen.mtime), (obj.ino, obj.size, obj.mtime));
        let stamp = fx.fs.get_xattr(&cred, obj.ino, b"user.s3.stamp").expect("xattr");
        assert_eq!(stamp, Some(format!("5:{}", obj.mtime.nanos).into_bytes()));
    }

    fn a_small_object_replaces_one_of_chunks_and_frees_them_or_changes_nothing(fx) {
        use nitrofs_chunk_store::ChunkStore;
        let cred = root_cred();
        let vol = fx.volume().id;
        let first = detached(fx, &pattern(1, 3 * C));
        fx.fs.publish(&cred, first.ino, fx.root(), &path("k"), &[]).expect("publish");
        let none = |_: &Attr| Vec::new();
        let put = |cond| fx.fs.publish_new_if(&cred, vol, fx.root(), &path("k"), 0o644, b"new", none, cond);
        assert_err!(put(PublishIf::Absent), FsError::GuardFailed);
        let stale = PublishIf::Unchanged { ino: first.ino, ctime: Timestamp::new(1, 0) };
        assert_err!(put(stale), FsError::GuardFailed);
        assert_eq!(fx.lookup(fx.root(), "k").expect("k").ino, first.ino);
        let too_big = vec![7u8; fx.fs.inline_max() as usize + 1];
        assert_err!(
            fx.fs.publish_new_if(&cred, vol, fx.root(), &path("big"), 0o644, &too_big, none, PublishIf::Always),
            FsError::Invalid(_)
        );
        assert_err!(
            fx.fs.publish_new_if(&user(1000), vol, fx.root(), &path("k"), 0o644, b"x", none, PublishIf::Always),
            FsError::Access
        );
        assert_err!(put_small(fx, "k/under"), FsError::NotDir);
        assert_eq!(fx.names(fx.root()), vec!["k"]);
        assert_eq!(fx.read_all(fx.lookup(fx.root(), "k").expect("k").ino), pattern(1, 3 * C));
        let fresh = PublishIf::Unchanged { ino: first.ino, ctime: fx.attr(first.ino).ctime };
        let k = put(fresh).expect("replace");
        assert_eq!(fx.lookup(fx.root(), "k").expect("k").ino, k.ino);
        assert_eq!(fx.read_all(k.ino), b"new");
        assert_err!(fx.fs.getattr(first.ino), FsError::Stale);
        assert!(!fx.chunks.inodes().expect("inodes").contains(&first.ino));
        // An empty object holds no bytes anywhere.
        let empty = fx.fs.publish_new_if(&cred, vol, fx.root(), &path("e"), 0o644, b"", none, PublishIf::Absent).expect("empty");
        assert_eq!(fx.attr(empty.ino).size, 0);
        assert!(fx.read_all(empty.ino).is_empty());
    }

    fn xattrs_are_set_listed_removed_and_need_permission(fx) {
        let f = fx.file_with(fx.root(), "f", 0o600, 0, 0);
        let cred = root_cred();
        fx.fs.set_xattrs(&cred, f.ino, &[(b"user.a".to_vec(), Some(b"1".to_vec())), (b"user.b".to_vec(), Some(b"2".to_vec()))]).expect("set");
        let all = fx.fs.list_xattrs(&cred, f.ino).expect("list");
        assert_eq!(all, vec![(b"user.a".to_vec(), b"1".to_vec()), (b"user.b".to_vec(), b"2".to_vec())]);
        fx.fs.set_xattrs(&cred, f.ino, &[(b"user.a".to_vec(), None)]).expect("remove");
        assert_eq!(fx.fs.get_xattr(&cred, f.ino, b"user.a").expect("get"), None);
        assert_err!(fx.fs.get_xattr(&user(1000), f.ino, b"user.b"), FsError::Access);
        assert_err!(fx.fs.set_xattrs(&user(1000), f.ino, &[(b"user.c".to_vec(), Some(vec![]))]), FsError::Access);
        assert_err!(fx.fs.set_xattrs(&cred, f.ino, &[(vec![b'x'; 300], Some(vec![]))]), FsError::NameTooLong);
    }
}

#[test]
fn transient_detached_files_are_deleted_at_restart_but_upload_parts_survive() {
    let fx = Fixture::new(Backend::Rocks);
    let cred = root_cred();
    let vol = fx.volume().id;
    let t = detached(&fx, b"in flight");
    let part = fx
        .fs
        .create_detached(&cred, vol, 0o644, DetachedKind::Upload(b"up".to_vec()))
        .expect("part");
    fx.fs
        .write(&cred, part.ino, 0, b"part", true)
        .expect("write");
    let fx = fx.restart(small_chunks());
    assert_err!(fx.fs.getattr(t.ino), FsError::Stale);
    assert_eq!(
        fx.fs.detached_of_upload(b"up").expect("parts"),
        vec![part.ino]
    );
    assert_eq!(fx.read_all(part.ino), b"part");
}

#[test]
fn a_multipart_object_survives_restart_and_orphan_collection() {
    let fx = Fixture::new(Backend::Rocks);
    let cred = root_cred();
    let vol = fx.volume().id;
    let up = DetachedKind::Upload(b"u".to_vec());
    let mut parts = Vec::new();
    for i in 0..2u8 {
        let p = fx
            .fs
            .create_detached(&cred, vol, 0o644, up.clone())
            .expect("part");
        fx.fs
            .write(&cred, p.ino, 0, &pattern(i, C + 3), false)
            .expect("write");
        parts.push(p.ino);
    }
    let t = fx
        .fs
        .create_detached(&cred, vol, 0o644, up)
        .expect("target");
    fx.fs.concat_detached(&cred, t.ino, &parts).expect("concat");
    fx.fs
        .publish(&cred, t.ino, fx.root(), &path("obj"), &[])
        .expect("publish");
    let fx = fx.restart(small_chunks());
    let mut want = pattern(0, C + 3);
    want.extend_from_slice(&pattern(1, C + 3));
    assert_eq!(fx.read_all(t.ino), want);
}
