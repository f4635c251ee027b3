//! Calls from several threads at once: every namespace operation is one
//! transaction, so parallel callers must neither lose updates of a shared
//! directory or inode nor build a state no serial order could produce.
//! On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;
use std::collections::BTreeSet;

const THREADS: usize = 4;

both_backends! {
    fn parallel_creates_in_one_directory_are_all_kept(fx) {
        let d = fx.dir(fx.root(), "d");
        let per_thread = 40;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let fs = &fx.fs;
                s.spawn(move || {
                    for i in 0..per_thread {
                        fs.create(&root_cred(), d.ino, format!("t{t}-{i}").as_bytes(), &CreateHow::Guarded(SetAttr::default()))
                            .unwrap_or_else(|e| panic!("create t{t}-{i}: {e:?}"));
                    }
                });
            }
        });
        let listing = fx.list(d.ino, 7);
        assert_eq!(listing.len(), THREADS * per_thread);
        let names: BTreeSet<&String> = listing.iter().map(|(n, _, _)| n).collect();
        let cookies: BTreeSet<u64> = listing.iter().map(|(_, _, c)| *c).collect();
        assert_eq!(names.len(), THREADS * per_thread, "duplicate names");
        assert_eq!(cookies.len(), THREADS * per_thread, "two entries share a cookie");
        for (name, _, _) in &listing {
            fx.fs.remove(&root_cred(), d.ino, name.as_bytes()).expect("remove");
        }
        fx.fs.rmdir(&root_cred(), fx.root(), b"d").expect("the directory is empty again");
    }

    fn parallel_mkdirs_are_all_counted_in_the_parent_nlink(fx) {
        let d = fx.dir(fx.root(), "d");
        let per_thread = 20;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let fs = &fx.fs;
                s.spawn(move || {
                    for i in 0..per_thread {
                        fs.mkdir(&root_cred(), d.ino, format!("t{t}-{i}").as_bytes(), &SetAttr::default())
                            .unwrap_or_else(|e| panic!("mkdir t{t}-{i}: {e:?}"));
                    }
                });
            }
        });
        assert_eq!(fx.attr(d.ino).nlink, 2 + (THREADS * per_thread) as u32);
        assert_eq!(fx.names(d.ino).len(), THREADS * per_thread);
    }

    fn parallel_creates_of_one_name_make_exactly_one_file(fx) {
        let root = fx.root();
        for round in 0..10 {
            let name = format!("race-{round}");
            let wins: Vec<bool> = std::thread::scope(|s| {
                let handles: Vec<_> = (0..THREADS)
                    .map(|_| {
                        let fs = &fx.fs;
                        let name = name.clone();
                        s.spawn(move || {
                            match fs.create(&root_cred(), root, name.as_bytes(), &CreateHow::Guarded(SetAttr::default())) {
                                Ok(_) => true,
                                Err(FsError::Exists) => false,
                                Err(e) => panic!("create: {e:?}"),
                            }
                        })
                    })
                    .collect();
                handles.into_iter().map(|h| h.join().expect("thread")).collect()
            });
            assert_eq!(wins.iter().filter(|w| **w).count(), 1, "round {round}: {wins:?}");
        }
        assert_eq!(fx.names(root).len(), 10);
    }

    fn parallel_writes_at_disjoint_offsets_all_land(fx) {
        let f = fx.file(fx.root(), "f");
        let piece = 10_000usize;
        let rounds = 12;
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let fs = &fx.fs;
                s.spawn(move || {
                    for r in 0..rounds {
                        let slot = r * THREADS + t;
                        fs.write(&root_cred(), f.ino, (slot * piece) as u64, &pattern(slot as u8, piece), false)
                            .unwrap_or_else(|e| panic!("write slot {slot}: {e:?}"));
                    }
                });
            }
        });
        let all = fx.read_all(f.ino);
        assert_eq!(all.len(), THREADS * rounds * piece);
        for slot in 0..THREADS * rounds {
            assert_eq!(&all[slot * piece..(slot + 1) * piece], &pattern(slot as u8, piece)[..], "slot {slot}");
        }
    }

    fn parallel_link_and_unlink_keep_the_link_count_exact(fx) {
        let root = fx.root();
        let f = fx.file(root, "f");
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let fs = &fx.fs;
                s.spawn(move || {
                    for i in 0..15 {
                        let name = format!("l{t}-{i}");
                        fs.link(&root_cred(), f.ino, root, name.as_bytes()).expect("link");
                        if i % 3 != 0 {
                            fs.remove(&root_cred(), root, name.as_bytes()).expect("unlink");
                        }
                    }
                });
            }
        });
        let names = fx.names(root);
        assert_eq!(names.len(), 1 + THREADS * 5);
        assert_eq!(fx.attr(f.ino).nlink as usize, names.len());
    }

    fn a_create_racing_an_rmdir_never_leaves_a_file_in_a_removed_directory(fx) {
        let root = fx.root();
        for round in 0..30 {
            let d = fx.dir(root, "d");
            let (created, removed) = std::thread::scope(|s| {
                let fs = &fx.fs;
                let c = s.spawn(move || fs.create(&root_cred(), d.ino, b"f", &CreateHow::Guarded(SetAttr::default())));
                let r = s.spawn(move || fs.rmdir(&root_cred(), root, b"d"));
                (c.join().expect("thread"), r.join().expect("thread"))
            });
            match (&created, &removed) {
                (Ok(_), Err(FsError::NotEmpty)) => {
                    assert_eq!(fx.names(d.ino), ["f"]);
                    fx.fs.remove(&root_cred(), d.ino, b"f").expect("remove f");
                    fx.fs.rmdir(&root_cred(), root, b"d").expect("rmdir d");
                }
                (Err(FsError::Stale | FsError::NotFound), Ok(_)) => {
                    assert_err!(fx.fs.getattr(d.ino), FsError::Stale);
                }
                _ => panic!("round {round}: create {created:?}, rmdir {removed:?}"),
            }
            assert!(fx.names(root).is_empty(), "round {round}");
            assert_eq!(fx.attr(root).nlink, 2, "round {round}");
        }
    }

    fn crossed_directory_renames_never_make_a_cycle(fx) {
        let root = fx.root();
        for round in 0..20 {
            let a = fx.dir(root, "a");
            let b = fx.dir(root, "b");
            let results = std::thread::scope(|s| {
                let fs = &fx.fs;
                let one = s.spawn(move || fs.rename(&root_cred(), root, b"a", b.ino, b"a"));
                let two = s.spawn(move || fs.rename(&root_cred(), root, b"b", a.ino, b"b"));
                [one.join().expect("thread"), two.join().expect("thread")]
            });
            for r in &results {
                assert!(
                    matches!(r, Ok(_) | Err(FsError::Invalid(_)) | Err(FsError::NotFound)),
                    "round {round}: {results:?}"
                );
            }
            assert!(results.iter().any(Result::is_ok), "round {round}: neither rename won: {results:?}");
            // Whatever happened, both directories are still reachable from
            // the root and each is the other's parent at most one way round.
            let pa = fx.fs.lookup(&root_cred(), a.ino, b"..").expect("a ..").ino;
            let pb = fx.fs.lookup(&root_cred(), b.ino, b"..").expect("b ..").ino;
            assert!(!(pa == b.ino && pb == a.ino), "round {round}: a and b are inside each other");
            let reachable: BTreeSet<InodeId> = [
                fx.fs.lookup_path(&root_cred(), root, "a"),
                fx.fs.lookup_path(&root_cred(), root, "b"),
                fx.fs.lookup_path(&root_cred(), root, "a/b"),
                fx.fs.lookup_path(&root_cred(), root, "b/a"),
            ]
            .into_iter()
            .filter_map(Result::ok)
            .map(|x| x.ino)
            .collect();
            assert!(reachable.contains(&a.ino) && reachable.contains(&b.ino), "round {round}: detached");
            // Clean up for the next round.
            for path in ["a/b", "b/a"] {
                if let Ok(x) = fx.fs.lookup_path(&root_cred(), root, path) {
                    let parent = if x.ino == b.ino { a.ino } else { b.ino };
                    let name = if x.ino == b.ino { &b"b"[..] } else { &b"a"[..] };
                    fx.fs.rmdir(&root_cred(), parent, name).expect("rmdir inner");
                }
            }
            for name in ["a", "b"] {
                let _ = fx.fs.rmdir(&root_cred(), root, name.as_bytes());
            }
            assert!(fx.names(root).is_empty(), "round {round}: leftovers {:?}", fx.names(root));
            assert_eq!(fx.attr(root).nlink, 2, "round {round}");
        }
    }
}
