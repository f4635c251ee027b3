//! File data: writes and reads across chunk boundaries (64 KiB chunks),
//! holes, end of file, stable writes and COMMIT, and chunks freed by
//! truncate and remove. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_chunk_store::{ChunkId, ChunkResult, ChunkStore, LocalChunkStore, SpaceStats};
use nitrofs_core_fs::*;
use std::sync::{Arc, Mutex};

const C: u64 = CHUNK as u64;

fn read(fx: &Fixture, ino: InodeId, offset: u64, count: u32) -> ReadResult {
    fx.fs.read(&root_cred(), ino, offset, count).expect("read")
}

fn has_chunks(fx: &Fixture, ino: InodeId) -> bool {
    fx.chunks.inodes().expect("chunk inodes").contains(&ino)
}

fn stored_len(fx: &Fixture, ino: InodeId, index: u64) -> usize {
    fx.chunks
        .read(ChunkId { ino, index }, 0, CHUNK as usize)
        .expect("chunk read")
        .len()
}

both_backends! {
    fn the_fixture_uses_small_chunks(fx) {
        assert_eq!(fx.fs.chunk_size(), CHUNK);
    }

    fn a_cached_read_is_answered_inside_memory_only_and_ranges_are_not(fx) {
        let f = fx.file(fx.root(), "hot");
        let data = pattern(4, C as usize + 500);
        fx.write(f.ino, 0, &data);
        if !fx.fs.reads_cached() {
            eprintln!("skipped: this kernel or file system has no reads that do not wait");
            return;
        }
        let read = |offset: u64, count: u32| {
            memory_only(|| fx.fs.read(&root_cred(), f.ino, offset, count).map(|r| r.data))
        };
        // Across a chunk boundary, from the page cache: no miss.
        let got = read(C - 100, 700).expect("answered from memory").expect("read");
        assert_eq!(&got[..], &data[C as usize - 100..C as usize + 500]);
        // Past the end of the data the file is a hole: the usual read.
        fx.fs.setattr(&root_cred(), f.ino, &SetAttr { size: Some(2 * C), ..SetAttr::default() }, None)
            .expect("extend");
        assert!(read(C, 4096).is_none(), "a hole is read where reads may wait");
        // Ranges are sent where sending may wait.
        let ranges = memory_only(|| fx.fs.read_ranges(&root_cred(), f.ino, 0, 4096).is_ok());
        assert_eq!(ranges, None);
        assert_eq!(read(0, 100).expect("answered").expect("read")[..], data[..100]);
    }

    fn write_then_read_across_chunk_boundaries_returns_the_same_bytes(fx) {
        let f = fx.file(fx.root(), "f");
        let data = pattern(3, 3 * C as usize + 123);
        let offset = C - 1000;
        let wcc = fx.write(f.ino, offset, &data);
        assert_eq!(wcc.after.size, offset + data.len() as u64);
        assert_eq!(wcc.before.size, 0);
        let all = fx.read_all(f.ino);
        assert!(all[..offset as usize].iter().all(|b| *b == 0));
        assert_eq!(&all[offset as usize..], &data[..]);
        // A read that straddles a boundary in the middle of the data.
        let r = read(fx, f.ino, 2 * C - 10, 20);
        let start = (2 * C - 10 - offset) as usize;
        assert_eq!(&r.data[..], &data[start..start + 20]);
        assert!(!r.eof);
    }

    fn many_small_writes_assemble_a_file(fx) {
        let f = fx.file(fx.root(), "f");
        let data = pattern(9, 200_000);
        for (i, piece) in data.chunks(7_777).enumerate() {
            fx.write(f.ino, (i * 7_777) as u64, piece);
        }
        assert_eq!(fx.read_all(f.ino), data);
    }

    fn overwriting_in_the_middle_keeps_the_size_and_the_rest(fx) {
        let f = fx.file(fx.root(), "f");
        let mut data = pattern(1, 150_000);
        fx.write(f.ino, 0, &data);
        let patch = pattern(200, 10_000);
        fx.write(f.ino, C - 5_000, &patch);
        data[(C - 5_000) as usize..(C + 5_000) as usize].copy_from_slice(&patch);
        assert_eq!(fx.attr(f.ino).size, 150_000);
        assert_eq!(fx.read_all(f.ino), data);
    }

    fn holes_read_as_zeros(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"abc");
        fx.write(f.ino, 100, b"def");
        fx.write(f.ino, 5 * C + 7, b"far");
        let all = fx.read_all(f.ino);
        assert_eq!(all.len() as u64, 5 * C + 10);
        assert_eq!(&all[..3], b"abc");
        assert!(all[3..100].iter().all(|b| *b == 0));
        assert_eq!(&all[100..103], b"def");
        assert!(all[103..(5 * C + 7) as usize].iter().all(|b| *b == 0));
        assert_eq!(&all[(5 * C + 7) as usize..], b"far");
        // A read entirely inside a never-written chunk.
        let r = read(fx, f.ino, 2 * C, 1000);
        assert_eq!(r.data.len(), 1000);
        assert!(r.data.iter().all(|b| *b == 0));
    }

    fn a_file_extended_by_a_far_write_reads_zeros_before_it(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 1_000_000, b"tail");
        assert_eq!(fx.attr(f.ino).size, 1_000_004);
        let r = read(fx, f.ino, 0, 1_000_004);
        assert!(r.eof);
        assert!(r.data[..1_000_000].iter().all(|b| *b == 0));
        assert_eq!(&r.data[1_000_000..], b"tail");
    }

    fn read_at_or_after_eof_is_empty_with_eof(fx) {
        let f = fx.file(fx.root(), "f");
        let empty = read(fx, f.ino, 0, 10);
        assert!(empty.eof);
        assert!(empty.data.is_empty());
        fx.write(f.ino, 0, b"0123456789");
        for offset in [10, 11, 1_000_000] {
            let r = read(fx, f.ino, offset, 5);
            assert!(r.eof, "offset {offset}");
            assert!(r.data.is_empty(), "offset {offset}");
        }
    }

    fn read_reports_eof_exactly_when_it_reaches_the_end(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"0123456789");
        let partial = read(fx, f.ino, 0, 5);
        assert_eq!(&partial.data[..], b"01234");
        assert!(!partial.eof);
        let exact = read(fx, f.ino, 5, 5);
        assert_eq!(&exact.data[..], b"56789");
        assert!(exact.eof);
        let short = read(fx, f.ino, 7, 100);
        assert_eq!(&short.data[..], b"789");
        assert!(short.eof);
        assert_eq!(short.attr.size, 10);
    }

    fn read_with_count_zero_returns_nothing(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"abc");
        let r = read(fx, f.ino, 0, 0);
        assert!(r.data.is_empty());
    }

    fn a_zero_length_write_past_the_end_does_not_change_the_file(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, b"abc");
        let before = fx.attr(f.ino);
        tick();
        fx.fs.write(&root_cred(), f.ino, 1000, b"", false).expect("empty write");
        let after = fx.attr(f.ino);
        assert_eq!(after.size, 3, "POSIX: a write of 0 bytes has no other results");
        assert_eq!(after.mtime, before.mtime);
        assert_eq!(fx.read_all(f.ino), b"abc");
    }

    fn stable_write_and_commit_succeed_and_report_the_size(fx) {
        let f = fx.file(fx.root(), "f");
        let data = pattern(5, 100_000);
        let w = fx.fs.write(&root_cred(), f.ino, 0, &data, true).expect("stable write");
        assert_eq!(w.after.size, 100_000);
        fx.fs.write(&root_cred(), f.ino, 100_000, b"unstable", false).expect("unstable write");
        let c = fx.fs.commit(f.ino).expect("commit");
        assert_eq!(c.after.size, 100_008);
        assert_eq!(c.after.ino, f.ino);
        let all = fx.read_all(f.ino);
        assert_eq!(&all[..100_000], &data[..]);
        assert_eq!(&all[100_000..], b"unstable");
    }

    fn commit_of_a_removed_file_is_stale(fx) {
        let f = fx.file(fx.root(), "f");
        fx.fs.remove(&root_cred(), fx.root(), b"f").expect("remove");
        assert_err!(fx.fs.commit(f.ino), FsError::Stale);
        assert_err!(fx.fs.write(&root_cred(), f.ino, 0, b"x", true), FsError::Stale);
    }

    fn data_calls_on_a_directory_are_isdir(fx) {
        let d = fx.dir(fx.root(), "d");
        assert_err!(fx.fs.write(&root_cred(), d.ino, 0, b"x", false), FsError::IsDir);
        assert_err!(fx.fs.read(&root_cred(), d.ino, 0, 10), FsError::IsDir);
    }

    fn data_calls_on_a_symlink_are_refused(fx) {
        let (l, _) = fx.fs.symlink(&root_cred(), fx.root(), b"l", b"t", &SetAttr::default()).expect("symlink");
        assert!(fx.fs.write(&root_cred(), l.ino, 0, b"x", false).is_err());
        assert!(fx.fs.read(&root_cred(), l.ino, 0, 10).is_err());
        assert_eq!(fx.fs.readlink(&root_cred(), l.ino).expect("readlink").1, b"t");
    }

    fn a_write_past_the_largest_file_size_is_too_big(fx) {
        let f = fx.file(fx.root(), "f");
        assert_err!(fx.fs.write(&root_cred(), f.ino, FILE_SIZE_MAX, b"x", false), FsError::TooBig);
        assert_err!(fx.fs.write(&root_cred(), f.ino, u64::MAX - 1, b"xyz", false), FsError::TooBig);
        assert_eq!(fx.attr(f.ino).size, 0);
    }

    fn a_write_at_a_terabyte_offset_makes_a_sparse_file(fx) {
        let f = fx.file(fx.root(), "f");
        let offset = 1u64 << 40;
        fx.write(f.ino, offset, b"far away");
        assert_eq!(fx.attr(f.ino).size, offset + 8);
        let tail = read(fx, f.ino, offset - 4, 100);
        assert_eq!(&tail.data[..], b"\0\0\0\0far away");
        assert!(tail.eof);
        let head = read(fx, f.ino, 0, 4096);
        assert_eq!(head.data.len(), 4096);
        assert!(head.data.iter().all(|b| *b == 0));
    }

    fn setattr_size_beyond_the_largest_file_size_is_too_big(fx) {
        let f = fx.file(fx.root(), "f");
        let set = SetAttr { size: Some(FILE_SIZE_MAX + 1), ..SetAttr::default() };
        assert_err!(fx.fs.setattr(&root_cred(), f.ino, &set, None), FsError::TooBig);
        assert_eq!(fx.attr(f.ino).size, 0);
    }

    fn truncate_frees_the_chunks_past_the_new_end(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, &pattern(2, 3 * C as usize));
        assert_eq!(stored_len(fx, f.ino, 2), C as usize);
        fx.fs
            .setattr(&root_cred(), f.ino, &SetAttr { size: Some(10), ..SetAttr::default() }, None)
            .expect("truncate");
        assert!(stored_len(fx, f.ino, 0) <= 10);
        assert_eq!(stored_len(fx, f.ino, 1), 0);
        assert_eq!(stored_len(fx, f.ino, 2), 0);
        fx.fs
            .setattr(&root_cred(), f.ino, &SetAttr { size: Some(0), ..SetAttr::default() }, None)
            .expect("truncate to 0");
        assert!(!has_chunks(fx, f.ino));
    }

    fn bytes_cut_by_truncate_never_come_back(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, &[b'x'; 100]);
        fx.fs
            .setattr(&root_cred(), f.ino, &SetAttr { size: Some(10), ..SetAttr::default() }, None)
            .expect("truncate");
        fx.write(f.ino, 50, b"y");
        let all = fx.read_all(f.ino);
        assert_eq!(all.len(), 51);
        assert_eq!(&all[..10], &[b'x'; 10]);
        assert!(all[10..50].iter().all(|b| *b == 0), "stale bytes reappeared: {:?}", &all[10..50]);
        assert_eq!(all[50], b'y');
    }

    fn create_unchecked_with_size_zero_discards_the_old_bytes(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, &pattern(4, 100_000));
        let zero = SetAttr { size: Some(0), ..SetAttr::default() };
        fx.fs.create(&root_cred(), root, b"f", &CreateHow::Unchecked(zero)).expect("truncating create");
        fx.write(f.ino, 90_000, b"z");
        let all = fx.read_all(f.ino);
        assert_eq!(all.len(), 90_001);
        assert!(all[..90_000].iter().all(|b| *b == 0), "old bytes reappeared");
    }

    fn removing_the_last_link_deletes_the_chunks(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        fx.write(f.ino, 0, &pattern(6, 2 * C as usize));
        fx.fs.link(&root_cred(), f.ino, root, b"g").expect("link");
        assert!(has_chunks(fx, f.ino));
        fx.fs.remove(&root_cred(), root, b"f").expect("remove f");
        assert!(has_chunks(fx, f.ino), "another link still needs the data");
        fx.fs.remove(&root_cred(), root, b"g").expect("remove g");
        assert!(!has_chunks(fx, f.ino));
    }

    fn rename_over_a_file_deletes_the_replaced_chunks(fx) {
        let root = fx.root();
        let src = fx.file(root, "src");
        let dst = fx.file(root, "dst");
        // Past the inline limit: the bytes are in chunks.
        fx.write(dst.ino, 0, &pattern(8, DEFAULT_INLINE_MAX as usize + 1000));
        assert!(has_chunks(fx, dst.ino));
        fx.fs.rename(&root_cred(), root, b"src", root, b"dst").expect("rename");
        assert!(!has_chunks(fx, dst.ino));
        assert_eq!(fx.lookup(root, "dst").expect("dst").ino, src.ino);
    }

    fn used_bytes_cover_the_size(fx) {
        let f = fx.file(fx.root(), "f");
        fx.write(f.ino, 0, &pattern(1, 5000));
        let a = fx.attr(f.ino);
        assert!(a.used >= a.size);
    }

    fn fsstat_reports_the_device_capacity(fx) {
        let (attr, st) = fx.fs.fsstat(fx.root()).expect("fsstat");
        assert_eq!(attr.ino, fx.root());
        assert!(st.total_bytes > 0);
        assert!(st.free_bytes <= st.total_bytes);
        assert!(st.avail_bytes <= st.free_bytes);
        assert!(st.total_files > 0);
        assert!(st.free_files <= st.total_files);
    }
}

#[test]
fn open_refuses_a_chunk_size_that_is_not_a_power_of_two_from_64k_to_64m() {
    use std::sync::Arc;
    let dir = tempfile::tempdir().expect("tempdir");
    for bad in [0, 1000, 32 * 1024, 100_000, 128 << 20] {
        let chunks = Arc::new(
            nitrofs_chunk_store::LocalChunkStore::open(&dir.path().join("c")).expect("chunks"),
        );
        let r = FileSystem::open(
            Arc::new(nitrofs_metadata::MemKv::new()),
            chunks,
            FsOptions {
                chunk_size: bad,
                ..FsOptions::default()
            },
        );
        assert!(
            matches!(r, Err(FsError::Invalid(_))),
            "chunk size {bad} was accepted"
        );
    }
}

/// A chunk store that records which chunks the filesystem said were filled.
struct RecordsFilled {
    inner: LocalChunkStore,
    filled: Mutex<Vec<ChunkId>>,
}

impl ChunkStore for RecordsFilled {
    fn read(&self, id: ChunkId, offset: u64, len: usize) -> ChunkResult<bytes::Bytes> {
        self.inner.read(id, offset, len)
    }
    fn write(&self, id: ChunkId, offset: u64, data: &[u8]) -> ChunkResult<()> {
        self.inner.write(id, offset, data)
    }
    fn filled(&self, id: ChunkId) {
        self.filled.lock().expect("not poisoned").push(id);
    }
    fn truncate(&self, id: ChunkId, len: u64) -> ChunkResult<()> {
        self.inner.truncate(id, len)
    }
    fn remove_from(&self, ino: u64, from_index: u64) -> ChunkResult<()> {
        self.inner.remove_from(ino, from_index)
    }
    fn remove(&self, id: ChunkId) -> ChunkResult<()> {
        self.inner.remove(id)
    }
    fn indexes(&self, ino: u64) -> ChunkResult<Vec<u64>> {
        self.inner.indexes(ino)
    }
    fn sync(&self, ino: u64) -> ChunkResult<()> {
        self.inner.sync(ino)
    }
    fn sync_all(&self) -> ChunkResult<()> {
        self.inner.sync_all()
    }
    fn inodes(&self) -> ChunkResult<Vec<u64>> {
        self.inner.inodes()
    }
    fn space(&self) -> ChunkResult<SpaceStats> {
        self.inner.space()
    }
}

#[test]
fn unstable_writes_that_reach_a_chunk_end_tell_the_store_it_is_filled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(RecordsFilled {
        inner: LocalChunkStore::open(&dir.path().join("chunks")).expect("chunk store"),
        filled: Default::default(),
    });
    let kv = Arc::new(nitrofs_metadata::MemKv::new());
    let fs = FileSystem::open(kv, store.clone(), small_chunks()).expect("open filesystem");
    let root = fs.volume(DEFAULT_VOLUME).expect("default volume").root;
    let cred = root_cred();
    let how = CreateHow::Guarded(SetAttr::default());
    let ino = fs.create(&cred, root, b"ckpt", &how).expect("create").0.ino;
    let filled = || std::mem::take(&mut *store.filled.lock().expect("not poisoned"));
    let at = |index| ChunkId { ino, index };

    // Half of chunk 0, then the rest of it and half of chunk 1.
    fs.write(&cred, ino, 0, &pattern(1, C as usize / 2), false)
        .expect("write");
    assert_eq!(filled(), [], "chunk 0 is not full yet");
    fs.write(&cred, ino, C / 2, &pattern(2, C as usize), false)
        .expect("write");
    assert_eq!(filled(), [at(0)]);
    // One write across chunks 1, 2 and 3 fills 1 and 2, not 3.
    fs.write(&cred, ino, C + C / 2, &pattern(3, 2 * C as usize), false)
        .expect("write");
    assert_eq!(filled(), [at(1), at(2)]);
    // A stable write syncs its chunks itself: no head start asked.
    fs.write(&cred, ino, 3 * C + C / 2, &pattern(4, C as usize / 2), true)
        .expect("write");
    assert_eq!(filled(), []);
    // The data is what was written, whatever the store did with the hint.
    let mut want = pattern(1, C as usize / 2);
    want.extend(pattern(2, C as usize));
    want.extend(pattern(3, 2 * C as usize));
    want.extend(pattern(4, C as usize / 2));
    assert_eq!(read_all_as(&fs, &cred, ino), want);
}
