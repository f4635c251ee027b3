//! Small files whose bytes are kept with their metadata (`inline_max`):
//! no chunk file while they stay small, the move to chunks when they
//! grow, truncation, removal, snapshots, restart, multipart parts and
//! pinned reads. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_chunk_store::ChunkStore;
use nitrofs_core_fs::*;

/// The fixture's inline limit (the default).
const LIMIT: usize = DEFAULT_INLINE_MAX as usize;

fn has_chunks(fx: &Fixture, ino: InodeId) -> bool {
    fx.chunks.inodes().expect("chunk inodes").contains(&ino)
}

fn set_size(fx: &Fixture, ino: InodeId, size: u64) {
    let set = SetAttr {
        size: Some(size),
        ..SetAttr::default()
    };
    fx.fs
        .setattr(&root_cred(), ino, &set, None)
        .expect("setattr size");
}

both_backends! {
    fn a_small_file_keeps_its_bytes_without_a_chunk_file(fx) {
        let f = fx.file(fx.root(), "small");
        let data = pattern(1, 16 * 1024);
        fx.write(f.ino, 0, &data);
        assert_eq!(fx.read_all(f.ino), data);
        assert_eq!(fx.attr(f.ino).size, data.len() as u64);
        assert!(!has_chunks(fx, f.ino), "a small file must not get a chunk file");
        // COMMIT of an inline file syncs the metadata log only.
        fx.fs.commit(f.ino).expect("commit");
        assert!(!has_chunks(fx, f.ino));
    }

    fn writes_at_offsets_overwrite_and_leave_zeros_in_gaps(fx) {
        let f = fx.file(fx.root(), "gappy");
        fx.write(f.ino, 0, b"abcdef");
        fx.write(f.ino, 100, b"XYZ");
        fx.write(f.ino, 2, b"12");
        let mut want = b"ab12ef".to_vec();
        want.resize(100, 0);
        want.extend_from_slice(b"XYZ");
        assert_eq!(fx.read_all(f.ino), want);
        let r = fx.fs.read(&root_cred(), f.ino, 4, 100).expect("read");
        assert_eq!(&r.data[..], &want[4..]);
        assert!(r.eof);
        assert!(!has_chunks(fx, f.ino));
    }

    fn growing_past_the_limit_moves_the_bytes_to_chunks_once(fx) {
        let f = fx.file(fx.root(), "grows");
        let head = pattern(2, LIMIT - 10);
        fx.write(f.ino, 0, &head);
        assert!(!has_chunks(fx, f.ino));
        let tail = pattern(3, 3 * CHUNK as usize);
        fx.write(f.ino, head.len() as u64, &tail);
        assert!(has_chunks(fx, f.ino), "a file past the limit is in chunks");
        let mut want = head.clone();
        want.extend_from_slice(&tail);
        assert_eq!(fx.read_all(f.ino), want);
        // Cut back under the limit, it stays in chunks.
        set_size(fx, f.ino, 10);
        fx.write(f.ino, 5, b"zz");
        assert!(has_chunks(fx, f.ino));
        let mut want = head[..10].to_vec();
        want[5..7].copy_from_slice(b"zz");
        assert_eq!(fx.read_all(f.ino), want);
    }

    fn a_first_write_past_the_limit_goes_straight_to_chunks(fx) {
        let f = fx.file(fx.root(), "big");
        let data = pattern(4, LIMIT + 1);
        fx.write(f.ino, 0, &data);
        assert!(has_chunks(fx, f.ino));
        assert_eq!(fx.read_all(f.ino), data);
    }

    fn truncation_cuts_inline_bytes_and_growth_reads_zeros(fx) {
        let f = fx.file(fx.root(), "cut");
        let data = pattern(5, 5000);
        fx.write(f.ino, 0, &data);
        set_size(fx, f.ino, 100);
        assert_eq!(fx.read_all(f.ino), data[..100].to_vec());
        set_size(fx, f.ino, 3000);
        let mut want = data[..100].to_vec();
        want.resize(3000, 0);
        assert_eq!(fx.read_all(f.ino), want, "cut bytes must not come back");
        // A write past the old bytes but inside the size.
        fx.write(f.ino, 2000, b"mid");
        want[2000..2003].copy_from_slice(b"mid");
        assert_eq!(fx.read_all(f.ino), want);
        assert!(!has_chunks(fx, f.ino));
    }

    fn an_unchecked_create_over_an_inline_file_empties_it(fx) {
        let root = fx.root();
        let f = fx.file(root, "again");
        fx.write(f.ino, 0, &pattern(6, 4000));
        let set = SetAttr { size: Some(0), ..SetAttr::default() };
        let again = fx.fs.create(&root_cred(), root, b"again", &CreateHow::Unchecked(set)).expect("create");
        assert_eq!(again.0.ino, f.ino);
        assert_eq!(fx.attr(f.ino).size, 0);
        set_size(fx, f.ino, 4000);
        assert_eq!(fx.read_all(f.ino), vec![0; 4000]);
    }

    fn a_removed_file_takes_its_bytes_and_a_new_file_starts_empty(fx) {
        let root = fx.root();
        let f = fx.file(root, "gone");
        fx.write(f.ino, 0, &pattern(7, 3000));
        let g = fx.file(root, "keep");
        fx.write(g.ino, 0, b"keep");
        fx.fs.rename(&root_cred(), root, b"keep", root, b"gone").expect("rename over");
        assert_err!(fx.fs.read(&root_cred(), f.ino, 0, 10), FsError::Stale | FsError::NotFound);
        assert_eq!(fx.read_all(g.ino), b"keep".to_vec());
        fx.fs.remove(&root_cred(), root, b"gone").expect("remove");
        let h = fx.file(root, "fresh");
        set_size(fx, h.ino, 3000);
        assert_eq!(fx.read_all(h.ino), vec![0; 3000]);
    }

    fn a_snapshot_keeps_inline_bytes_through_overwrite_growth_and_removal(fx) {
        let root = fx.root();
        let f = fx.file(root, "snapped");
        let old = pattern(8, 20_000);
        fx.write(f.ino, 0, &old);
        fx.fs.create_snapshot(&fx.volume().name, "s1").expect("snapshot");
        fx.write(f.ino, 0, b"new bytes");
        let snapdir = fx.lookup(root, ".snapshot").expect(".snapshot");
        let s1 = fx.fs.lookup(&root_cred(), snapdir.ino, b"s1").expect("s1");
        let seen = fx.fs.lookup(&root_cred(), s1.ino, b"snapped").expect("snapshot file");
        assert_eq!(read_all_as(&fx.fs, &root_cred(), seen.ino), old);
        // Past the limit: the live bytes move to chunks; the snapshot keeps its copy.
        fx.write(f.ino, 0, &pattern(9, LIMIT + 5));
        assert_eq!(read_all_as(&fx.fs, &root_cred(), seen.ino), old);
        fx.fs.remove(&root_cred(), root, b"snapped").expect("remove");
        assert_eq!(read_all_as(&fx.fs, &root_cred(), seen.ino), old);
    }

    fn restoring_a_snapshot_brings_back_inline_bytes(fx) {
        let root = fx.root();
        let f = fx.file(root, "restored");
        let old = pattern(10, 9000);
        fx.write(f.ino, 0, &old);
        let vol = fx.volume().name;
        fx.fs.create_snapshot(&vol, "s").expect("snapshot");
        fx.write(f.ino, 0, &pattern(11, 100));
        fx.write(f.ino, LIMIT as u64, b"past the limit");
        let born = fx.file(root, "born");
        fx.write(born.ino, 0, b"created after the snapshot");
        fx.fs.restore_snapshot(&vol, "s").expect("restore");
        assert_eq!(fx.read_all(f.ino), old);
        assert!(fx.lookup(root, "born").is_err());
    }

    fn a_pinned_read_keeps_the_inline_bytes_it_opened(fx) {
        let root = fx.root();
        let f = fx.file(root, "obj");
        let old = pattern(13, 30_000);
        fx.write(f.ino, 0, &old);
        let pinned = FileSystem::open_read(&fx.fs, &root_cred(), f.ino).expect("open");
        let g = fx.file(root, "other");
        fx.write(g.ino, 0, b"replacement");
        fx.fs.rename(&root_cred(), root, b"other", root, b"obj").expect("replace");
        let mut got = Vec::new();
        for _ in 0..100 {
            let piece = pinned.read(got.len() as u64, 7000).expect("pinned read");
            if piece.is_empty() {
                break;
            }
            got.extend_from_slice(&piece);
        }
        assert_eq!(got, old);
        pinned.close();
    }

}

#[test]
fn a_huge_sparse_inline_file_reads_in_pieces_without_holding_its_size() {
    let fx = Fixture::new(Backend::Rocks);
    let f = fx.file(fx.root(), "sparse");
    fx.write(f.ino, 0, b"head");
    set_size(&fx, f.ino, 1 << 40);
    let pinned = FileSystem::open_read(&fx.fs, &root_cred(), f.ino).expect("open");
    assert_eq!(&pinned.read(0, 8).expect("read head")[..], b"head\0\0\0\0");
    let far = pinned.read((1 << 40) - 3, 10).expect("read the end");
    assert_eq!(&far[..], &[0, 0, 0]);
    assert!(pinned.read(1 << 40, 10).expect("read past").is_empty());
    pinned.close();
    let r = fx.fs.read(&root_cred(), f.ino, 1 << 39, 16).expect("read");
    assert_eq!(&r.data[..], &[0; 16]);
}

#[test]
fn reads_of_inline_files_written_or_read_lately_are_answered_from_memory() {
    let fx = Fixture::new(Backend::Rocks);
    let hot = fx.file(fx.root(), "hot");
    let cold = fx.file(fx.root(), "cold");
    fx.write(hot.ino, 0, &pattern(3, 16 * 1024));
    fx.write(cold.ino, 0, &pattern(4, 16 * 1024));
    // Reopened: the bytes are in RocksDB's files, in no cache.
    let fx = fx.restart(small_chunks());
    let from_memory = |ino| memory_only(|| fx.fs.read(&root_cred(), ino, 0, 1 << 20));
    for f in [&hot, &cold] {
        // The record itself from memory, so only the bytes can miss; and
        // one read for atime, so the reads below commit nothing.
        fx.attr(f.ino);
        fx.read_all(f.ino);
    }
    fx.write(hot.ino, 0, b"new");
    let mut want = pattern(3, 16 * 1024);
    want[..3].copy_from_slice(b"new");
    for (f, want) in [(&hot, want), (&cold, pattern(4, 16 * 1024))] {
        let r = from_memory(f.ino)
            .expect("a file written or read lately is read from memory")
            .expect("read");
        assert_eq!(r.data.to_vec(), want);
    }
    // Without the bytes cached, the same read needs the disk.
    let fx = fx.restart(FsOptions {
        inline_cache_bytes: 0,
        ..small_chunks()
    });
    fx.attr(cold.ino);
    fx.read_all(cold.ino);
    assert!(
        memory_only(|| fx.fs.read(&root_cred(), cold.ino, 0, 1 << 20)).is_none(),
        "the bytes are in a blob file that no cache holds"
    );
}

#[test]
fn inline_bytes_survive_a_restart() {
    for backend in [Backend::Mem, Backend::Rocks] {
        let fx = Fixture::new(backend);
        let f = fx.file(fx.root(), "durable");
        let data = pattern(12, 12_345);
        fx.fs
            .write(&root_cred(), f.ino, 0, &data, true)
            .expect("stable write");
        let fx = fx.restart(small_chunks());
        assert_eq!(fx.read_all(f.ino), data, "{backend:?}");
        assert!(!has_chunks(&fx, f.ino), "{backend:?}");
    }
}

#[test]
fn with_inline_off_new_files_are_in_chunks_and_old_inline_files_still_read() {
    for backend in [Backend::Mem, Backend::Rocks] {
        let fx = Fixture::new(backend);
        let old = fx.file(fx.root(), "inline");
        fx.write(old.ino, 0, b"kept inline");
        let fx = fx.restart(FsOptions {
            inline_max: 0,
            ..small_chunks()
        });
        let f = fx.file(fx.root(), "plain");
        fx.write(f.ino, 0, b"tiny");
        assert!(has_chunks(&fx, f.ino), "{backend:?}");
        assert_eq!(fx.read_all(f.ino), b"tiny".to_vec());
        assert_eq!(fx.read_all(old.ino), b"kept inline".to_vec());
        // A write to the old inline file moves it to chunks (limit 0).
        fx.write(old.ino, 0, b"K");
        assert!(has_chunks(&fx, old.ino), "{backend:?}");
        assert_eq!(fx.read_all(old.ino), b"Kept inline".to_vec());
    }
}

#[test]
fn concurrent_small_writes_and_the_move_to_chunks_lose_no_byte() {
    let fx = Fixture::new(Backend::Rocks);
    let f = fx.file(fx.root(), "shared");
    let writers = 4usize;
    let block = 1000usize;
    let rounds = 30usize; // 4 × 30 × 1000 bytes: past the limit midway
    std::thread::scope(|s| {
        for w in 0..writers {
            let fs = &fx.fs;
            let ino = f.ino;
            s.spawn(move || {
                for r in 0..rounds {
                    let at = ((r * writers + w) * block) as u64;
                    let data = vec![(w * 31 + r) as u8 | 1; block];
                    fs.write(&root_cred(), ino, at, &data, false)
                        .expect("write");
                }
            });
        }
    });
    let all = fx.read_all(f.ino);
    assert_eq!(all.len(), writers * rounds * block);
    for r in 0..rounds {
        for w in 0..writers {
            let at = (r * writers + w) * block;
            let want = (w * 31 + r) as u8 | 1;
            assert!(
                all[at..at + block].iter().all(|b| *b == want),
                "block of writer {w} round {r} lost"
            );
        }
    }
    assert!(has_chunks(&fx, f.ino));
}

/// A write or COMMIT as the NFS server tries it on a connection's task:
/// reads from memory only, and the log sync left to the caller.
fn on_task<T>(f: impl FnOnce() -> FsResult<T>) -> Option<(T, bool)> {
    memory_only(|| deferring_sync(f)).map(|(r, owed)| (r.expect("the call"), owed))
}

#[test]
fn writes_and_commits_of_inline_files_run_in_memory_and_others_miss_untouched() {
    let fx = Fixture::new(Backend::Rocks);
    let f = fx.file(fx.root(), "small");
    let write =
        |off, data: &[u8], stable| on_task(|| fx.fs.write(&root_cred(), f.ino, off, data, stable));
    let mut want = pattern(5, 16 * 1024);
    // UNSTABLE: nothing is owed, the reply goes at once.
    let (_, owed) = write(0, &want, false).expect("an inline write runs in memory");
    assert!(!owed, "an unstable write owes no log sync");
    // FILE_SYNC: its data is in the log, whose sync the caller owes.
    let (_, owed) = write(want.len() as u64, b"tail", true).expect("a stable inline write");
    assert!(owed, "a stable write must be answered after a log sync");
    want.extend_from_slice(b"tail");
    let (_, owed) = on_task(|| fx.fs.commit(f.ino)).expect("COMMIT of an inline file");
    assert!(owed, "COMMIT of an inline file is its log sync");
    // Past the inline limit it needs chunk I/O: a miss, with nothing done.
    let before = fx.attr(f.ino);
    assert!(write(0, &pattern(6, LIMIT + 1), false).is_none());
    assert_eq!(fx.attr(f.ino), before);
    assert!(!has_chunks(&fx, f.ino));
    assert_eq!(fx.read_all(f.ino), want);
    // Where it may wait, the same write moves the file to chunks; then
    // neither a small write nor a COMMIT of it runs in memory.
    let big = pattern(6, LIMIT + 1);
    fx.write(f.ino, 0, &big);
    assert!(has_chunks(&fx, f.ino));
    let before = fx.attr(f.ino);
    assert!(write(0, b"x", false).is_none());
    assert!(on_task(|| fx.fs.commit(f.ino)).is_none());
    assert_eq!(fx.attr(f.ino), before);
    assert_eq!(fx.read_all(f.ino), big);
}

#[test]
fn a_commit_owes_a_log_sync_only_for_writes_no_sync_has_covered() {
    let fx = Fixture::new(Backend::Rocks);
    let f = fx.file(fx.root(), "f");
    let g = fx.file(fx.root(), "g");
    let write = |ino, data: &[u8]| on_task(|| fx.fs.write(&root_cred(), ino, 0, data, false));
    let commit = |ino| on_task(|| fx.fs.commit(ino)).expect("COMMIT runs in memory");
    write(f.ino, b"one").expect("write");
    assert!(commit(f.ino).1, "an unsynced write owes a sync");
    fx.fs.sync_metadata().expect("sync");
    assert!(!commit(f.ino).1, "a sync after the write covered it");
    // Another file's write does not make this one's COMMIT wait.
    write(g.ino, b"two").expect("write");
    let after_g = fx.fs.log_position();
    assert!(!commit(f.ino).1, "f's writes are synced");
    let (r, owed) = deferring_sync_to(|| fx.fs.commit(g.ino));
    r.expect("commit");
    assert_eq!(owed, Some(after_g), "g owes the log up to its write");
    // The same for a file whose bytes are in chunks.
    let big = pattern(7, LIMIT + 1);
    fx.write(f.ino, 0, &big);
    fx.fs
        .write(&root_cred(), f.ino, 1, b"x", false)
        .expect("write");
    let (r, owed) = deferring_sync_to(|| fx.fs.commit(f.ino));
    r.expect("commit");
    assert!(owed.is_some(), "its size change is not synced yet");
    fx.fs.sync_metadata().expect("sync");
    let (r, owed) = deferring_sync_to(|| fx.fs.commit(f.ino));
    r.expect("commit");
    assert_eq!(owed, None, "a sync covered it: only its chunks are synced");
}
