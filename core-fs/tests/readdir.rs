//! READDIR / READDIRPLUS: `.` and `..`, cookies that page without
//! duplicates or misses and stay valid while the directory changes, and
//! the end-of-directory flag. On both metadata backends.

#[macro_use]
mod common;

use common::*;
use nitrofs_core_fs::*;
use std::collections::BTreeSet;

fn name(i: usize) -> String {
    format!("entry-{i:04}")
}

/// Reads `dir` page by page from `cookie`, checking page-level rules, and
/// returns every entry seen.
fn pages_from(fx: &Fixture, dir: InodeId, mut cookie: u64, max: usize) -> Vec<DirEntry> {
    let mut all = Vec::new();
    loop {
        let page = fx
            .fs
            .readdir(&root_cred(), dir, cookie, max, false)
            .expect("readdir");
        assert!(page.entries.len() <= max, "page larger than max_entries");
        assert_eq!(page.dir.ino, dir);
        for e in &page.entries {
            assert!(
                e.cookie > cookie,
                "cookie {} not after {}",
                e.cookie,
                cookie
            );
            cookie = e.cookie;
        }
        all.extend(page.entries.iter().cloned());
        if page.eof {
            return all;
        }
        assert!(!page.entries.is_empty(), "empty page without eof");
    }
}

both_backends! {
    fn readdir_of_an_empty_directory_lists_dot_and_dotdot_at_cookies_one_and_two(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let page = fx.fs.readdir(&root_cred(), d.ino, 0, 10, false).expect("readdir");
        assert!(page.eof);
        let got: Vec<(u64, &[u8], InodeId)> =
            page.entries.iter().map(|e| (e.cookie, e.name.as_slice(), e.ino)).collect();
        assert_eq!(got, vec![(1, &b"."[..], d.ino), (2, &b".."[..], root)]);
    }

    fn readdir_one_entry_per_page_still_returns_dotdot_of_an_empty_directory(fx) {
        let d = fx.dir(fx.root(), "empty");
        let all = pages_from(fx, d.ino, 0, 1);
        let got: Vec<(u64, &[u8])> = all.iter().map(|e| (e.cookie, e.name.as_slice())).collect();
        assert_eq!(got, vec![(1, &b"."[..]), (2, &b".."[..])]);
    }

    fn readdir_one_entry_per_page_lists_everything(fx) {
        let d = fx.dir(fx.root(), "d");
        fx.file(d.ino, "x");
        fx.file(d.ino, "y");
        let names: Vec<Vec<u8>> = pages_from(fx, d.ino, 0, 1).into_iter().map(|e| e.name).collect();
        assert_eq!(names, vec![b".".to_vec(), b"..".to_vec(), b"x".to_vec(), b"y".to_vec()]);
    }

    fn readdir_after_cookie_two_skips_the_dot_entries(fx) {
        let root = fx.root();
        fx.file(root, "a");
        let page = fx.fs.readdir(&root_cred(), root, 2, 10, false).expect("readdir");
        let names: Vec<&[u8]> = page.entries.iter().map(|e| e.name.as_slice()).collect();
        assert_eq!(names, vec![&b"a"[..]]);
        assert!(page.eof);
        let after_dot = fx.fs.readdir(&root_cred(), root, 1, 10, false).expect("readdir");
        assert_eq!(after_dot.entries[0].name, b"..");
    }

    fn readdir_pages_through_500_entries_without_duplicates_or_misses(fx) {
        let root = fx.root();
        let d = fx.dir(root, "big");
        let mut inos = std::collections::BTreeMap::new();
        for i in 0..500 {
            inos.insert(name(i), fx.file(d.ino, &name(i)).ino);
        }
        let mut pages = 0;
        let mut cookie = 0;
        let mut seen = Vec::new();
        loop {
            let page = fx.fs.readdir(&root_cred(), d.ino, cookie, 7, false).expect("readdir");
            pages += 1;
            assert!(page.entries.len() <= 7);
            for e in &page.entries {
                assert!(e.cookie > cookie);
                cookie = e.cookie;
                seen.push(e.clone());
            }
            if page.eof {
                break;
            }
            assert_eq!(page.entries.len(), 7, "a page short of max_entries must be the last");
        }
        assert_eq!(pages, 502_usize.div_ceil(7));
        assert_eq!(seen[0].name, b".");
        assert_eq!(seen[0].cookie, 1);
        assert_eq!(seen[1].name, b"..");
        assert_eq!(seen[1].cookie, 2);
        let real: Vec<(String, InodeId)> = seen[2..]
            .iter()
            .map(|e| (String::from_utf8(e.name.clone()).expect("utf8"), e.ino))
            .collect();
        assert_eq!(real.len(), 500, "no duplicates and no misses");
        let unique: BTreeSet<&String> = real.iter().map(|(n, _)| n).collect();
        assert_eq!(unique.len(), 500);
        for (n, ino) in &real {
            assert_eq!(inos.get(n), Some(ino), "{n}");
        }
    }

    fn readdir_resumes_from_a_cookie_after_other_entries_were_removed(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        for i in 0..60 {
            fx.file(d.ino, &name(i));
        }
        let first = fx.fs.readdir(&root_cred(), d.ino, 0, 22, false).expect("first page");
        assert!(!first.eof);
        let seen: BTreeSet<Vec<u8>> = first.entries.iter().map(|e| e.name.clone()).collect();
        let resume = first.entries.last().expect("entries").cookie;
        let last_seen = first.entries.last().expect("entries").name.clone();
        // Remove some already-listed entries (including the one the
        // cookie came from) and some not yet listed, and add new ones.
        let mut removed = BTreeSet::new();
        for i in (5..20).chain(30..40) {
            fx.fs.remove(&root_cred(), d.ino, name(i).as_bytes()).expect("remove");
            removed.insert(name(i).into_bytes());
        }
        assert!(removed.contains(&last_seen), "the cookie's own entry is gone too");
        for i in 100..105 {
            fx.file(d.ino, &name(i));
        }
        let rest = pages_from(fx, d.ino, resume, 4);
        let rest_names: Vec<Vec<u8>> = rest.iter().map(|e| e.name.clone()).collect();
        let expected: Vec<Vec<u8>> = (20..60)
            .chain(100..105)
            .map(|i| name(i).into_bytes())
            .filter(|n| !removed.contains(n) && !seen.contains(n))
            .collect();
        assert_eq!(rest_names, expected);
    }

    fn readdir_cookies_stay_the_same_across_calls(fx) {
        let root = fx.root();
        for i in 0..20 {
            fx.file(root, &name(i));
        }
        let once = fx.list(root, 3);
        fx.fs.remove(&root_cred(), root, name(7).as_bytes()).expect("remove");
        let twice = fx.list(root, 5);
        let expected: Vec<_> = once.into_iter().filter(|(n, _, _)| *n != name(7)).collect();
        assert_eq!(twice, expected);
    }

    fn readdir_with_attrs_returns_each_entry_attributes(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        let f = fx.file(d.ino, "f");
        fx.write(f.ino, 0, b"12345");
        let sub = fx.dir(d.ino, "sub");
        let page = fx.fs.readdir(&root_cred(), d.ino, 0, 10, true).expect("readdirplus");
        assert!(page.eof);
        assert_eq!(page.dir.ino, d.ino);
        let by_name = |n: &[u8]| page.entries.iter().find(|e| e.name == n).expect("entry").clone();
        assert_eq!(by_name(b".").attr.expect("attr of .").ino, d.ino);
        assert_eq!(by_name(b"..").attr.expect("attr of ..").ino, root);
        let fe = by_name(b"f").attr.expect("attr of f");
        assert_eq!(fe, fx.attr(f.ino));
        assert_eq!(fe.size, 5);
        assert_eq!(by_name(b"sub").attr.expect("attr of sub").kind, FileType::Directory);
        assert_eq!(by_name(b"sub").ino, sub.ino);
    }

    fn readdir_without_attrs_returns_none(fx) {
        let root = fx.root();
        fx.file(root, "f");
        let page = fx.fs.readdir(&root_cred(), root, 0, 10, false).expect("readdir");
        assert!(page.entries.iter().all(|e| e.attr.is_none()));
    }

    fn readdir_of_a_file_is_not_dir(fx) {
        let f = fx.file(fx.root(), "f");
        assert_err!(fx.fs.readdir(&root_cred(), f.ino, 0, 10, false), FsError::NotDir);
    }

    fn readdir_of_a_removed_directory_is_stale(fx) {
        let root = fx.root();
        let d = fx.dir(root, "d");
        fx.fs.rmdir(&root_cred(), root, b"d").expect("rmdir");
        assert_err!(fx.fs.readdir(&root_cred(), d.ino, 0, 10, false), FsError::Stale);
    }

    fn renamed_entries_appear_once_under_their_new_name(fx) {
        let root = fx.root();
        for i in 0..10 {
            fx.file(root, &name(i));
        }
        fx.fs.rename(&root_cred(), root, name(3).as_bytes(), root, b"renamed").expect("rename");
        let names = fx.names(root);
        assert_eq!(names.len(), 10);
        assert!(names.contains(&"renamed".to_string()));
        assert!(!names.contains(&name(3)));
    }
}
