//! Restart: stop the filesystem and open it again on the same metadata and
//! chunks. For RocksDB the database is closed and reopened from disk; the
//! in-memory backend keeps its map. Everything must still be there, and
//! handles given out before the restart must still resolve.

#[macro_use]
mod common;

use common::*;
use nitrofs_chunk_store::{ChunkId, ChunkStore};
use nitrofs_core_fs::*;

/// Runs `body` once per backend, each on its own fresh fixture.
macro_rules! restart_tests {
    ($( fn $name:ident($backend:ident) $body:block )*) => {
        $(
            mod $name {
                use super::*;

                fn body($backend: Backend) $body

                #[test]
                fn mem() {
                    body(Backend::Mem);
                }

                #[test]
                fn rocks() {
                    body(Backend::Rocks);
                }
            }
        )*
    };
}

/// What a test built before the restart, to check after it.
struct Built {
    root: Attr,
    dir: Attr,
    file: Attr,
    big: Attr,
    big_data: Vec<u8>,
    link: Attr,
    fifo: Attr,
    removed: Attr,
    listing: Vec<(String, InodeId, u64)>,
}

fn build(fx: &Fixture) -> Built {
    let root = fx.root();
    let cred = root_cred();
    let dir = fx.dir_with(root, "dir", 0o2750, 1000, 500);
    let file = fx.file_with(dir.ino, "file", 0o640, 1000, 500);
    fx.fs
        .write(&cred, file.ino, 0, b"small file", true)
        .expect("write");
    let times = SetAttr {
        atime: SetTime::Exact(Timestamp::new(1_111_111, 1)),
        mtime: SetTime::Exact(Timestamp::new(2_222_222, 2)),
        ..SetAttr::default()
    };
    fx.fs.setattr(&cred, file.ino, &times, None).expect("times");
    let big = fx.file(root, "big");
    let big_data = pattern(42, 3 * CHUNK as usize + 999);
    fx.fs
        .write(&cred, big.ino, 10, &big_data, false)
        .expect("write big");
    fx.fs.commit(big.ino).expect("commit");
    let (link, _) = fx
        .fs
        .symlink(&cred, root, b"link", b"dir/file", &SetAttr::default())
        .expect("symlink");
    let (fifo, _) = fx
        .fs
        .mknod(&cred, dir.ino, b"fifo", NodeKind::Fifo, &SetAttr::default())
        .expect("fifo");
    fx.fs
        .link(&cred, file.ino, root, b"hardlink")
        .expect("link");
    let removed = fx.file(root, "removed");
    fx.fs.remove(&cred, root, b"removed").expect("remove");
    for i in 0..30 {
        fx.file(dir.ino, &format!("n{i:02}"));
    }
    for i in (0..30).step_by(3) {
        fx.fs
            .remove(&cred, dir.ino, format!("n{i:02}").as_bytes())
            .expect("remove n");
    }
    Built {
        root: fx.attr(root),
        dir: fx.attr(dir.ino),
        file: fx.attr(file.ino),
        big: fx.attr(big.ino),
        big_data,
        link: fx.attr(link.ino),
        fifo: fx.attr(fifo.ino),
        removed,
        listing: fx.list(dir.ino, 1000),
    }
}

restart_tests! {
    fn everything_survives_a_restart(backend) {
        let fx = Fixture::new(backend);
        let b = build(&fx);
        let fx = fx.restart(small_chunks());
        let root = fx.root();
        assert_eq!(root, b.root.ino);
        assert_eq!(fx.attr(root), b.root);
        assert_eq!(fx.names(root), ["big", "dir", "hardlink", "link"]);
        // Attributes, all of them, unchanged.
        assert_eq!(fx.attr(b.dir.ino), b.dir);
        assert_eq!(fx.attr(b.file.ino), b.file);
        assert_eq!(fx.attr(b.big.ino), b.big);
        assert_eq!(fx.attr(b.link.ino), b.link);
        assert_eq!(fx.attr(b.fifo.ino), b.fifo);
        assert_eq!(b.file.nlink, 2);
        assert_eq!(b.file.mtime, Timestamp::new(2_222_222, 2));
        // Names and bytes.
        let cred = root_cred();
        assert_eq!(fx.fs.lookup_path(&cred, root, "dir/file").expect("path").ino, b.file.ino);
        assert_eq!(fx.lookup(root, "hardlink").expect("hardlink").ino, b.file.ino);
        assert_eq!(fx.read_all(b.file.ino), b"small file");
        let big = fx.read_all(b.big.ino);
        assert_eq!(&big[..10], &[0u8; 10]);
        assert_eq!(&big[10..], &b.big_data[..]);
        assert_eq!(fx.fs.readlink(&cred, b.link.ino).expect("readlink").1, b"dir/file");
        assert_eq!(fx.lookup(b.dir.ino, "..").expect("..").ino, root);
        // Readdir cookies are the same as before.
        assert_eq!(fx.list(b.dir.ino, 4), b.listing);
        // Permissions still apply.
        assert_err!(fx.fs.read(&user(2000), b.file.ino, 0, 10), FsError::Access);
    }

    fn handles_from_before_a_restart_still_resolve(backend) {
        let fx = Fixture::new(backend);
        let b = build(&fx);
        let vol = fx.volume();
        let fx = fx.restart(small_chunks());
        assert_eq!(fx.volume(), vol);
        for a in [&b.dir, &b.file, &b.big, &b.link, &b.fifo] {
            let got = fx.fs.resolve_handle(a.volume, a.ino, a.generation).expect("handle");
            assert_eq!(&got, a);
        }
        let root = fx.attr(vol.root);
        fx.fs.resolve_handle(vol.id, vol.root, root.generation).expect("root handle");
    }

    fn a_handle_to_a_removed_file_stays_stale_after_a_restart(backend) {
        let fx = Fixture::new(backend);
        let b = build(&fx);
        let fx = fx.restart(small_chunks());
        assert_err!(fx.fs.resolve_handle(b.removed.volume, b.removed.ino, b.removed.generation), FsError::Stale);
        assert_err!(fx.fs.getattr(b.removed.ino), FsError::Stale);
    }

    fn inode_numbers_are_not_reused_after_a_restart(backend) {
        let fx = Fixture::new(backend);
        let root = fx.root();
        let mut used: Vec<InodeId> = vec![root];
        for i in 0..10 {
            used.push(fx.file(root, &format!("f{i}")).ino);
        }
        for i in 0..10 {
            fx.fs.remove(&root_cred(), root, format!("f{i}").as_bytes()).expect("remove");
        }
        let fx = fx.restart(small_chunks());
        for i in 0..10 {
            let a = fx.file(fx.root(), &format!("g{i}"));
            assert!(!used.contains(&a.ino), "inode {} reused", a.ino);
            used.push(a.ino);
        }
    }

    fn boot_count_increases_at_every_start(backend) {
        let fx = Fixture::new(backend);
        let first = fx.fs.boot_count();
        let fx = fx.restart(small_chunks());
        let second = fx.fs.boot_count();
        let fx = fx.restart(small_chunks());
        let third = fx.fs.boot_count();
        assert!(second > first, "{second} > {first}");
        assert!(third > second, "{third} > {second}");
    }

    fn the_default_volume_is_not_recreated_on_restart(backend) {
        let fx = Fixture::new(backend);
        let before = fx.volume();
        fx.file(before.root, "marker");
        let other = fx.fs.create_volume("other").expect("create");
        let fx = fx.restart(small_chunks());
        assert_eq!(fx.volume(), before);
        assert_eq!(fx.fs.volume("other").expect("other"), other);
        assert_eq!(fx.names(before.root), ["marker"]);
    }

    fn files_keep_their_chunk_size_when_the_default_changes(backend) {
        let fx = Fixture::new(backend);
        let f = fx.file(fx.root(), "f");
        let data = pattern(11, 5 * CHUNK as usize + 17);
        fx.fs.write(&root_cred(), f.ino, 0, &data, true).expect("write");
        let fx = fx.restart(FsOptions::default());
        assert_eq!(fx.fs.chunk_size(), DEFAULT_CHUNK_SIZE);
        assert_eq!(fx.read_all(f.ino), data);
        // Appending after the restart still goes to the file's own chunks.
        fx.write(f.ino, data.len() as u64, b"more");
        let all = fx.read_all(f.ino);
        assert_eq!(&all[..data.len()], &data[..]);
        assert_eq!(&all[data.len()..], b"more");
        let g = fx.file(fx.root(), "g");
        let big = pattern(12, CHUNK as usize + 5);
        fx.write(g.ino, 0, &big);
        assert_eq!(fx.read_all(g.ino), big);
    }

    fn chunks_of_unknown_inodes_are_collected_at_start(backend) {
        let fx = Fixture::new(backend);
        let f = fx.file(fx.root(), "kept");
        // Past the inline limit: the bytes are in chunks.
        let keep = pattern(3, DEFAULT_INLINE_MAX as usize + 7);
        fx.write(f.ino, 0, &keep);
        let orphan = 999_999_999;
        fx.chunks.write(ChunkId { ino: orphan, index: 0 }, 0, b"orphan").expect("orphan chunk");
        fx.chunks.sync_all().expect("sync");
        assert!(fx.chunks.inodes().expect("inodes").contains(&orphan));
        let fx = fx.restart(small_chunks());
        let inodes = fx.chunks.inodes().expect("inodes");
        assert!(!inodes.contains(&orphan), "orphan chunk data was not collected");
        assert!(inodes.contains(&f.ino));
        assert_eq!(fx.read_all(f.ino), keep);
    }

    fn writes_after_a_restart_land_in_the_same_files(backend) {
        let fx = Fixture::new(backend);
        let b = build(&fx);
        let fx = fx.restart(small_chunks());
        fx.write(b.file.ino, 0, b"SMALL");
        let n = fx.file(b.dir.ino, "new");
        let fx = fx.restart(small_chunks());
        assert_eq!(fx.read_all(b.file.ino), b"SMALL file");
        assert_eq!(fx.lookup(b.dir.ino, "new").expect("new").ino, n.ino);
        let listed: Vec<String> = fx.list(b.dir.ino, 100).into_iter().map(|(n, _, _)| n).collect();
        assert_eq!(listed.last().map(String::as_str), Some("new"), "new entries get later cookies");
    }
}
