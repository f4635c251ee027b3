//! Snapshots: the `.snapshot` view, immutability under a random sequence
//! of live changes, O(1) creation (counted in metadata keys written),
//! deletion freeing exactly the unshared chunks, restore, and restart.

#[macro_use]
mod common;

use common::*;
use nitrofs_chunk_store::{ChunkStore, LocalChunkStore};
use nitrofs_core_fs::*;
use nitrofs_metadata::{KvPair, KvResult, MemKv, MetaKv, Txn};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// What a tree shows: path → (kind, mode, uid, size, content or target).
type Tree = BTreeMap<String, (FileType, u32, u32, u64, Vec<u8>)>;

/// Reads a whole tree through the public read calls (as NFS would).
fn dump(fs: &FileSystem, dir: InodeId) -> Tree {
    let mut out = Tree::new();
    walk(fs, dir, "", &mut out);
    out
}

fn walk(fs: &FileSystem, dir: InodeId, path: &str, out: &mut Tree) {
    for (name, ino, _) in list_dir(fs, dir, 7) {
        let p = format!("{path}/{name}");
        let a = fs.getattr(ino).expect("getattr");
        let looked = fs
            .lookup(&root_cred(), dir, name.as_bytes())
            .expect("lookup");
        assert_eq!(looked.ino, ino, "lookup and readdir disagree on {p}");
        let body = match a.kind {
            FileType::Regular => read_all_as(fs, &root_cred(), ino),
            FileType::Symlink => fs.readlink(&root_cred(), ino).expect("readlink").1,
            _ => Vec::new(),
        };
        out.insert(p.clone(), (a.kind, a.mode, a.uid, a.size, body));
        if a.kind == FileType::Directory {
            walk(fs, ino, &p, out);
        }
    }
}

fn snapdir(fx: &Fixture) -> Attr {
    fx.lookup(fx.root(), ".snapshot").expect(".snapshot")
}

fn snap_root(fx: &Fixture, name: &str) -> Attr {
    fx.fs
        .lookup(&root_cred(), snapdir(fx).ino, name.as_bytes())
        .expect("snapshot root")
}

/// A small xorshift generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn populate(fx: &Fixture) {
    let root = fx.root();
    let a = fx.dir(root, "a");
    let b = fx.dir(a.ino, "b");
    let f = fx.file(root, "big");
    fx.write(f.ino, 0, &pattern(1, 3 * CHUNK as usize + 100));
    for i in 0..6 {
        let g = fx.file(if i % 2 == 0 { a.ino } else { b.ino }, &format!("f{i}"));
        fx.write(g.ino, 0, &pattern(i as u8 + 10, 1000 * (i + 1)));
    }
    fx.fs
        .symlink(&root_cred(), root, b"ln", b"a/b/f1", &SetAttr::default())
        .expect("symlink");
}

/// Every live file and directory (not under `.snapshot`), as (dir, name).
fn live_entries(fx: &Fixture) -> Vec<(InodeId, String, Attr)> {
    let mut out = Vec::new();
    let mut dirs = vec![fx.root()];
    while let Some(d) = dirs.pop() {
        for (name, ino, _) in fx.list(d, 100) {
            let a = fx.attr(ino);
            if a.kind == FileType::Directory {
                dirs.push(ino);
            }
            out.push((d, name, a));
        }
    }
    out
}

/// One random change to the live volume. Errors (e.g. rmdir of a
/// non-empty directory) are fine: only what succeeds changes anything.
fn random_change(fx: &Fixture, rng: &mut Rng, n: usize) {
    let entries = live_entries(fx);
    let dirs: Vec<InodeId> = std::iter::once(fx.root())
        .chain(
            entries
                .iter()
                .filter(|e| e.2.kind == FileType::Directory)
                .map(|e| e.2.ino),
        )
        .collect();
    let files: Vec<&(InodeId, String, Attr)> = entries
        .iter()
        .filter(|e| e.2.kind == FileType::Regular)
        .collect();
    let cred = root_cred();
    let dir = dirs[rng.below(dirs.len())];
    let name = format!("n{n}");
    match rng.below(9) {
        0 => {
            let f = fx.file(dir, &name);
            fx.write(f.ino, 0, &pattern(n as u8, rng.below(200_000)));
        }
        1 => {
            fx.dir(dir, &name);
        }
        2 | 3 if !files.is_empty() => {
            let f = files[rng.below(files.len())];
            let off = rng.below(4 * CHUNK as usize) as u64;
            fx.write(
                f.2.ino,
                off,
                &pattern(n as u8 ^ 0x55, 1 + rng.below(100_000)),
            );
        }
        4 if !files.is_empty() => {
            let f = files[rng.below(files.len())];
            let size = rng.below(2 * CHUNK as usize) as u64;
            let set = SetAttr {
                size: Some(size),
                ..SetAttr::default()
            };
            fx.fs.setattr(&cred, f.2.ino, &set, None).expect("truncate");
        }
        5 if !entries.is_empty() => {
            let e = &entries[rng.below(entries.len())];
            let to = dirs[rng.below(dirs.len())];
            let _ = fx
                .fs
                .rename(&cred, e.0, e.1.as_bytes(), to, name.as_bytes());
        }
        6 if !entries.is_empty() => {
            let e = &entries[rng.below(entries.len())];
            let _ = match e.2.kind {
                FileType::Directory => fx.fs.rmdir(&cred, e.0, e.1.as_bytes()),
                _ => fx.fs.remove(&cred, e.0, e.1.as_bytes()),
            };
        }
        7 if !entries.is_empty() => {
            let e = &entries[rng.below(entries.len())];
            let set = SetAttr {
                mode: Some(0o700 | (n as u32 & 0o77)),
                uid: Some(n as u32),
                ..SetAttr::default()
            };
            let _ = fx.fs.setattr(&cred, e.2.ino, &set, None);
        }
        _ if !files.is_empty() => {
            let f = files[rng.below(files.len())];
            let _ = fx.fs.link(&cred, f.2.ino, dir, name.as_bytes());
        }
        _ => {}
    }
}

both_backends! {
    fn a_snapshot_shows_the_tree_as_it_was_under_dot_snapshot(fx) {
        populate(fx);
        let before = dump(&fx.fs, fx.root());
        let s = fx.fs.create_snapshot(DEFAULT_VOLUME, "s1").expect("snapshot");
        assert_eq!(s.name, "s1");
        assert!(!fx.names(fx.root()).contains(&".snapshot".to_string()),
            ".snapshot must be hidden from readdir of the root");
        let names: Vec<String> = fx.list(snapdir(fx).ino, 10).into_iter().map(|e| e.0).collect();
        assert_eq!(names, vec!["s1".to_string()]);
        let sr = snap_root(fx, "s1");
        assert_ne!(sr.ino, fx.root(), "snapshot objects have their own inode numbers");
        assert_eq!(dump(&fx.fs, sr.ino), before);
        // `..` of the snapshot root is `.snapshot`, whose `..` is the root.
        let up = fx.fs.lookup(&root_cred(), sr.ino, b"..").expect("..");
        assert_eq!(up.ino, snapdir(fx).ino);
        let top = fx.fs.lookup(&root_cred(), up.ino, b"..").expect("..");
        assert_eq!(top.ino, fx.root());
        let listed = fx.fs.list_snapshots(DEFAULT_VOLUME).expect("list");
        assert_eq!(listed.len(), 1);
        assert_err!(fx.fs.create_snapshot(DEFAULT_VOLUME, "s1"), FsError::Exists);
        assert_err!(fx.fs.create_snapshot(DEFAULT_VOLUME, "a/b"), FsError::Invalid(_));
    }

    fn a_snapshot_is_read_only(fx) {
        populate(fx);
        fx.fs.create_snapshot(DEFAULT_VOLUME, "ro").expect("snapshot");
        let sr = snap_root(fx, "ro");
        let f = fx.fs.lookup(&root_cred(), sr.ino, b"big").expect("big");
        let cred = root_cred();
        assert_err!(fx.fs.write(&cred, f.ino, 0, b"x", true), FsError::ReadOnly);
        assert_err!(fx.fs.create(&cred, sr.ino, b"new", &CreateHow::Guarded(SetAttr::default())), FsError::ReadOnly);
        assert_err!(fx.fs.mkdir(&cred, sr.ino, b"d", &SetAttr::default()), FsError::ReadOnly);
        assert_err!(fx.fs.remove(&cred, sr.ino, b"big"), FsError::ReadOnly);
        assert_err!(fx.fs.rename(&cred, sr.ino, b"big", fx.root(), b"x"), FsError::ReadOnly);
        let set = SetAttr { size: Some(0), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&cred, f.ino, &set, None), FsError::ReadOnly);
        let (_, granted) = fx.fs.access(&cred, f.ino, 0x3f).expect("access");
        assert_eq!(granted & 0x0c, 0, "ACCESS grants no MODIFY/EXTEND in a snapshot");
        // Nobody can make a real `.snapshot` entry in the root.
        assert_err!(fx.fs.mkdir(&cred, fx.root(), b".snapshot", &SetAttr::default()), FsError::Exists);
        assert_eq!(fx.read_all(f.ino).len(), f.size as usize);
    }

    fn snapshots_never_change_under_a_random_sequence_of_live_changes(fx) {
        populate(fx);
        let first = dump(&fx.fs, fx.root());
        fx.fs.create_snapshot(DEFAULT_VOLUME, "first").expect("snapshot");
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let mut second = None;
        for n in 0..120 {
            random_change(fx, &mut rng, n);
            if n == 50 {
                second = Some(dump(&fx.fs, fx.root()));
                fx.fs.create_snapshot(DEFAULT_VOLUME, "second").expect("snapshot");
            }
            if n % 20 == 19 {
                assert_eq!(dump(&fx.fs, snap_root(fx, "first").ino), first, "after change {n}");
                if let Some(s) = &second {
                    assert_eq!(&dump(&fx.fs, snap_root(fx, "second").ino), s, "after change {n}");
                }
            }
        }
        // Deleting the newer snapshot leaves the older one intact, and the
        // other way round.
        let second = second.expect("second");
        fx.fs.delete_snapshot(DEFAULT_VOLUME, "second").expect("delete");
        assert_err!(fx.fs.lookup(&root_cred(), snapdir(fx).ino, b"second"), FsError::NotFound);
        fx.fs.collect_snapshots().expect("collect");
        assert_eq!(dump(&fx.fs, snap_root(fx, "first").ino), first);
        for n in 120..160 {
            random_change(fx, &mut rng, n);
        }
        assert_eq!(dump(&fx.fs, snap_root(fx, "first").ino), first);
        let _ = second;
    }

    fn deleting_the_older_snapshot_keeps_the_newer_one(fx) {
        populate(fx);
        fx.fs.create_snapshot(DEFAULT_VOLUME, "old").expect("snapshot");
        let mut rng = Rng(42);
        for n in 0..30 {
            random_change(fx, &mut rng, n);
        }
        let newer = dump(&fx.fs, fx.root());
        fx.fs.create_snapshot(DEFAULT_VOLUME, "new").expect("snapshot");
        for n in 30..60 {
            random_change(fx, &mut rng, n);
        }
        fx.fs.delete_snapshot(DEFAULT_VOLUME, "old").expect("delete");
        fx.fs.collect_snapshots().expect("collect");
        assert_eq!(dump(&fx.fs, snap_root(fx, "new").ino), newer);
    }

    fn deleting_every_snapshot_frees_exactly_the_chunks_only_it_held(fx) {
        let root = fx.root();
        let kept = fx.file(root, "kept");
        fx.write(kept.ino, 0, &pattern(3, 2 * CHUNK as usize));
        let gone = fx.file(root, "gone");
        fx.write(gone.ino, 0, &pattern(4, 2 * CHUNK as usize));
        fx.fs.create_snapshot(DEFAULT_VOLUME, "s").expect("snapshot");
        // Overwrite one chunk of `kept` (its old bytes are copied for the
        // snapshot) and remove `gone` (its chunks now belong to the snapshot).
        fx.write(kept.ino, 10, b"changed");
        fx.fs.remove(&root_cred(), root, b"gone").expect("remove");
        assert!(!fx.chunks.indexes(gone.ino).expect("indexes").is_empty(),
            "a removed file's chunks stay while a snapshot holds them");
        let copies = |fx: &Fixture| -> usize {
            fx.chunks
                .inodes()
                .expect("inodes")
                .into_iter()
                .filter(|i| *i >= 1 << 44)
                .map(|i| fx.chunks.indexes(i).expect("indexes").len())
                .sum()
        };
        assert_eq!(copies(fx), 1, "the overwritten chunk was copied once for the snapshot");
        fx.write(kept.ino, 20, b"again");
        assert_eq!(copies(fx), 1, "a second write to the same chunk copies nothing");
        fx.fs.delete_snapshot(DEFAULT_VOLUME, "s").expect("delete");
        fx.fs.collect_snapshots().expect("collect");
        assert!(fx.chunks.indexes(gone.ino).expect("indexes").is_empty(), "gone's chunks freed");
        assert_eq!(copies(fx), 0, "the snapshot's chunk copy was freed");
        assert!(!fx.chunks.indexes(kept.ino).expect("indexes").is_empty(), "live chunks stay");
        let mut want = pattern(3, 2 * CHUNK as usize);
        want[10..17].copy_from_slice(b"changed");
        want[20..25].copy_from_slice(b"again");
        assert_eq!(fx.read_all(kept.ino), want, "live data untouched");
    }

    fn restore_rolls_the_volume_back_and_frees_what_was_created_since(fx) {
        populate(fx);
        let at = dump(&fx.fs, fx.root());
        fx.fs.create_snapshot(DEFAULT_VOLUME, "r").expect("snapshot");
        let mut rng = Rng(7);
        for n in 0..80 {
            random_change(fx, &mut rng, n);
        }
        let extra = fx.file(fx.root(), "created-after");
        fx.write(extra.ino, 0, &pattern(9, 100_000));
        fx.fs.restore_snapshot(DEFAULT_VOLUME, "r").expect("restore");
        assert_eq!(dump(&fx.fs, fx.root()), at);
        assert!(fx.chunks.indexes(extra.ino).expect("indexes").is_empty(),
            "data written after the snapshot is freed");
        assert_err!(fx.fs.getattr(extra.ino), FsError::Stale);
        assert_eq!(dump(&fx.fs, snap_root(fx, "r").ino), at, "the snapshot stays");
        // The restored volume is writable again, and copy-on-write goes on.
        let f = fx.file(fx.root(), "after-restore");
        fx.write(f.ino, 0, b"ok");
        assert_eq!(dump(&fx.fs, snap_root(fx, "r").ino), at);
        fx.fs.create_snapshot(DEFAULT_VOLUME, "newer").expect("snapshot");
        assert_err!(fx.fs.restore_snapshot(DEFAULT_VOLUME, "r"), FsError::Invalid(_));
    }
}

both_backends! {
    fn a_clone_is_a_writable_volume_with_what_the_snapshot_shows(fx) {
        populate(fx);
        let f = fx.lookup(fx.root(), "big").expect("big");
        let a = fx.lookup(fx.root(), "a").expect("a");
        fx.fs.link(&root_cred(), f.ino, a.ino, b"big-link").expect("link");
        fx.fs
            .set_xattrs(&root_cred(), f.ino, &[(b"user.k".to_vec(), Some(b"v".to_vec()))])
            .expect("xattr");
        let at = dump(&fx.fs, fx.root());
        fx.fs.create_snapshot(DEFAULT_VOLUME, "c").expect("snapshot");
        fx.write(f.ino, 0, b"live change");
        let vol = fx.fs.clone_snapshot(DEFAULT_VOLUME, "c", "cloned").expect("clone");
        assert_eq!(dump(&fx.fs, vol.root), at);
        let big = fx.fs.lookup(&root_cred(), vol.root, b"big").expect("big");
        assert_eq!(big.nlink, 2, "hard links stay links");
        // The clone's chunks share storage with the snapshot's: the chunk
        // file of the clone has another name.
        let chunk1 = fx
            .path()
            .join("chunks")
            .join(format!("{:02x}", big.ino % 256))
            .join(format!("{:016x}", big.ino))
            .join(format!("{:016x}", 1));
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&chunk1).expect("chunk file").nlink() >= 2, "chunk 1 is shared");
        assert_eq!(
            fx.fs.get_xattr(&root_cred(), big.ino, b"user.k").expect("xattr"),
            Some(b"v".to_vec())
        );
        fx.fs.write(&root_cred(), big.ino, 0, b"clone change", false).expect("clone is writable");
        assert_eq!(dump(&fx.fs, snap_root(fx, "c").ino), at, "the snapshot is untouched");
        assert_err!(fx.fs.clone_snapshot(DEFAULT_VOLUME, "c", "cloned"), FsError::Exists);
        assert_err!(fx.fs.clone_snapshot(DEFAULT_VOLUME, "nope", "other"), FsError::NotFound);
    }
}

both_backends! {
    fn restore_recounts_quota_usage(fx) {
        let d = fx.dir(fx.root(), "q");
        let f = fx.file(d.ino, "a");
        fx.write(f.ino, 0, &[1; 1000]);
        let target = QuotaTarget::Tree(d.ino);
        let limits = QuotaLimits { bytes: Some(1 << 20), inodes: Some(100) };
        fx.fs.set_quota(target, limits).expect("quota");
        let at = fx.fs.get_quota(target).expect("get").usage;
        fx.fs.create_snapshot(DEFAULT_VOLUME, "q").expect("snapshot");
        let g = fx.file(d.ino, "b");
        fx.write(g.ino, 0, &[2; 5000]);
        fx.fs.remove(&root_cred(), d.ino, b"a").expect("remove");
        assert_ne!(fx.fs.get_quota(target).expect("get").usage, at);
        fx.fs.restore_snapshot(DEFAULT_VOLUME, "q").expect("restore");
        assert_eq!(fx.fs.get_quota(target).expect("get").usage, at);
        assert_eq!(fx.fs.get_quota(target).expect("get").limits, limits);
    }
}

#[test]
fn snapshots_survive_a_restart() {
    let fx = Fixture::new(Backend::Rocks);
    populate(&fx);
    let at = dump(&fx.fs, fx.root());
    fx.fs
        .create_snapshot(DEFAULT_VOLUME, "keep")
        .expect("snapshot");
    let sr = snap_root(&fx, "keep");
    let big = fx.lookup(fx.root(), "big").expect("big");
    fx.write(big.ino, 5, b"after");
    // A file removed after the snapshot keeps its chunks across the
    // restart's orphan scan: the snapshot holds them.
    fx.fs
        .remove(&root_cred(), fx.root(), b"big")
        .expect("remove");
    let fx = fx.restart(small_chunks());
    assert_err!(fx.fs.delete_volume(DEFAULT_VOLUME), FsError::NotEmpty);
    assert_eq!(dump(&fx.fs, snap_root(&fx, "keep").ino), at);
    let again = snap_root(&fx, "keep");
    assert_eq!(
        again.ino, sr.ino,
        "snapshot handles are stable across restarts"
    );
    fx.fs
        .resolve_handle(again.volume, again.ino, again.generation)
        .expect("handle still resolves");
}

/// Counts the keys every committed transaction writes.
struct Counting {
    inner: Arc<MemKv>,
    writes: Arc<AtomicUsize>,
}

struct CountingTxn<'a> {
    inner: Box<dyn Txn + 'a>,
    pending: usize,
    writes: Arc<AtomicUsize>,
}

impl MetaKv for Counting {
    fn begin(&self) -> Box<dyn Txn + '_> {
        Box::new(CountingTxn {
            inner: self.inner.begin(),
            pending: 0,
            writes: self.writes.clone(),
        })
    }
    fn get(&self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn scan(&self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }
    fn log_position(&self) -> u64 {
        self.inner.log_position()
    }
    fn sync_to(&self, upto: u64) -> KvResult<()> {
        self.inner.sync_to(upto)
    }
}

impl Txn for CountingTxn<'_> {
    fn get(&mut self, key: &[u8]) -> KvResult<Option<Vec<u8>>> {
        self.inner.get(key)
    }
    fn put(&mut self, key: &[u8], value: &[u8]) -> KvResult<()> {
        self.pending += 1;
        self.inner.put(key, value)
    }
    fn delete(&mut self, key: &[u8]) -> KvResult<()> {
        self.pending += 1;
        self.inner.delete(key)
    }
    fn scan(&mut self, start: &[u8], end: &[u8], limit: usize) -> KvResult<Vec<KvPair>> {
        self.inner.scan(start, end, limit)
    }
    fn commit(self: Box<Self>, durable: bool) -> KvResult<()> {
        let n = self.pending;
        let writes = self.writes.clone();
        self.inner.commit(durable)?;
        writes.fetch_add(n, Ordering::SeqCst);
        Ok(())
    }
}

/// Keys written by taking a snapshot of a volume holding `files` files.
fn keys_written_by_snapshot(files: usize) -> usize {
    let dir = tempfile::tempdir().expect("tempdir");
    let writes = Arc::new(AtomicUsize::new(0));
    let kv = Arc::new(Counting {
        inner: Arc::new(MemKv::new()),
        writes: writes.clone(),
    });
    let chunks = Arc::new(LocalChunkStore::open(&dir.path().join("c")).expect("chunks"));
    let fs = FileSystem::open(kv, chunks, small_chunks()).expect("open");
    let root = fs.volume(DEFAULT_VOLUME).expect("volume").root;
    let cred = root_cred();
    for d in 0..files.div_ceil(100) {
        let dir = fs
            .mkdir(&cred, root, format!("d{d}").as_bytes(), &SetAttr::default())
            .expect("mkdir")
            .0;
        for f in 0..100.min(files - d * 100) {
            fs.create(
                &cred,
                dir.ino,
                format!("f{f}").as_bytes(),
                &CreateHow::Guarded(SetAttr::default()),
            )
            .expect("create");
        }
    }
    let before = writes.load(Ordering::SeqCst);
    fs.create_snapshot(DEFAULT_VOLUME, "s").expect("snapshot");
    writes.load(Ordering::SeqCst) - before
}

#[test]
fn taking_a_snapshot_writes_the_same_few_keys_whatever_the_volume_holds() {
    let small = keys_written_by_snapshot(100);
    let large = keys_written_by_snapshot(5_000);
    assert_eq!(small, large, "snapshot creation must not walk the tree");
    assert!(small <= 3, "snapshot creation wrote {small} keys");
}
