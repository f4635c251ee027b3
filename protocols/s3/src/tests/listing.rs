//! Listing in S3 key order, checked against a model: every key of the
//! tree sorted as bytes, rolled up by the delimiter, paged by max-keys.

use super::*;
use crate::list::{self, Query};
#[allow(unused_imports)]
use nitrofs_core_fs::Credentials;
use nitrofs_core_fs::{CreateHow, FileSystem, SetAttr};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use s3s::dto::*;
use s3s::S3;
use std::collections::BTreeSet;

/// Builds `paths` (files; `x/` = directory) under the root and returns
/// every key the bucket has: files, and `d/` for empty directories.
fn build(fs: &FileSystem, root: u64, paths: &[&str]) -> Vec<String> {
    let cred = Credentials::root();
    for p in paths {
        let (dirs, file) = match p.strip_suffix('/') {
            Some(d) => (d, None),
            None => match p.rsplit_once('/') {
                Some((d, f)) => (d, Some(f)),
                None => ("", Some(*p)),
            },
        };
        // Paths that would turn a file into a directory are skipped.
        let mut cur = Some(root);
        for c in dirs.split('/').filter(|c| !c.is_empty()) {
            let Some(dir) = cur else { break };
            cur = match fs.lookup(&cred, dir, c.as_bytes()) {
                Ok(a) if a.kind == nitrofs_core_fs::FileType::Directory => Some(a.ino),
                Ok(_) => None,
                Err(_) => Some(
                    fs.mkdir(&cred, dir, c.as_bytes(), &SetAttr::default())
                        .unwrap()
                        .0
                        .ino,
                ),
            };
        }
        let Some(cur) = cur else { continue };
        if let Some(f) = file {
            if fs.lookup(&cred, cur, f.as_bytes()).is_err() {
                fs.create(
                    &cred,
                    cur,
                    f.as_bytes(),
                    &CreateHow::Guarded(SetAttr::default()),
                )
                .unwrap();
            }
        }
    }
    model_keys(fs, root, "")
}

/// All keys under a directory, by walking it completely (the model).
fn model_keys(fs: &FileSystem, dir: u64, prefix: &str) -> Vec<String> {
    let cred = Credentials::root();
    let (entries, _) = fs.list_by_name(&cred, dir, b"", 100_000).unwrap();
    let mut out = Vec::new();
    if entries.is_empty() && !prefix.is_empty() {
        out.push(prefix.to_string());
    }
    for e in entries {
        let name = String::from_utf8(e.name).unwrap();
        let attr = e.attr.unwrap();
        if attr.kind == nitrofs_core_fs::FileType::Directory {
            out.extend(model_keys(fs, attr.ino, &format!("{prefix}{name}/")));
        } else {
            out.push(format!("{prefix}{name}"));
        }
    }
    out.sort();
    out
}

/// What a full listing must return: (key or prefix, is_prefix).
fn model(
    keys: &[String],
    prefix: &str,
    delimiter: Option<&str>,
    start: Option<&str>,
) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = Vec::new();
    for k in keys {
        if !k.starts_with(prefix) || start.is_some_and(|s| k.as_str() <= s) {
            continue;
        }
        if let Some(d) = delimiter {
            if let Some(i) = k[prefix.len()..].find(d) {
                let cp = k[..prefix.len() + i + d.len()].to_string();
                if start.is_some_and(|s| cp.as_str() <= s) || out.last().is_some_and(|l| l.0 == cp)
                {
                    continue;
                }
                out.push((cp, true));
                continue;
            }
        }
        out.push((k.clone(), false));
    }
    out
}

/// Lists everything page by page through `list::list`.
fn list_all(
    fs: &FileSystem,
    root: u64,
    prefix: &str,
    delimiter: Option<&str>,
    start: Option<&str>,
    max: usize,
) -> Vec<(String, bool)> {
    let cred = Credentials::root();
    let mut start = start.map(str::to_string);
    let mut out = Vec::new();
    for round in 0..10_000 {
        if round > 200 {
            panic!("no progress: prefix {prefix:?} delim {delimiter:?} start {start:?} max {max} so far {:?}", &out[out.len().saturating_sub(5)..]);
        }
        let q = Query {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            start_after: start.clone(),
            max_keys: max,
        };
        let page = list::list(fs, &cred, root, &q).unwrap();
        assert!(page.objects.len() + page.prefixes.len() <= max);
        // Objects and prefixes of one page, merged in order.
        let mut items: Vec<(String, bool)> = page
            .objects
            .iter()
            .map(|o| (o.key.clone().unwrap(), false))
            .chain(page.prefixes.iter().map(|p| (p.clone(), true)))
            .collect();
        items.sort();
        if page.truncated {
            assert_eq!(items.last().map(|i| i.0.clone()), page.last.clone());
        }
        out.extend(items);
        if !page.truncated {
            return out;
        }
        start = page.last;
    }
    panic!("listing did not end");
}

const TREE: &[&str] = &[
    "a-b", "a.txt", "a/x", "a/y/z", "a/y-1", "a0", "b/", "c/d/", "c/e", "d-/f", "d/g", "d.",
    "e/f/g/h", "e/f-", "é/ü",
];

#[test]
fn keys_come_in_s3_order_with_directories_sorted_as_name_slash() {
    let h = Harness::new();
    let keys = build(&h.fs, h.root(), TREE);
    let all = list_all(&h.fs, h.root(), "", None, None, 1000);
    let got: Vec<&str> = all.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        got,
        [
            "a-b", "a.txt", "a/x", "a/y-1", "a/y/z", "a0", "b/", "c/d/", "c/e", "d-/f", "d.",
            "d/g", "e/f-", "e/f/g/h", "é/ü"
        ]
    );
    assert_eq!(got, keys.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn the_delimiter_rolls_directories_up_into_common_prefixes() {
    let h = Harness::new();
    build(&h.fs, h.root(), TREE);
    let top = list_all(&h.fs, h.root(), "", Some("/"), None, 1000);
    let want: Vec<(String, bool)> = [
        ("a-b", false),
        ("a.txt", false),
        ("a/", true),
        ("a0", false),
        ("b/", true),
        ("c/", true),
        ("d-/", true),
        ("d.", false),
        ("d/", true),
        ("e/", true),
        ("é/", true),
    ]
    .iter()
    .map(|(k, p)| (k.to_string(), *p))
    .collect();
    assert_eq!(top, want);
    // An empty directory listed as a prefix is its own marker object.
    assert_eq!(
        list_all(&h.fs, h.root(), "b/", Some("/"), None, 1000),
        [("b/".to_string(), false)]
    );
    assert_eq!(
        list_all(&h.fs, h.root(), "c/", Some("/"), None, 1000),
        [("c/d/".to_string(), true), ("c/e".to_string(), false)]
    );
    // A prefix that ends inside a name.
    assert_eq!(
        list_all(&h.fs, h.root(), "a/y", Some("/"), None, 1000),
        [("a/y-1".to_string(), false), ("a/y/".to_string(), true)]
    );
    assert!(list_all(&h.fs, h.root(), "zzz", Some("/"), None, 1000).is_empty());
    assert!(
        list_all(&h.fs, h.root(), "a/x/", None, None, 1000).is_empty(),
        "a file is not a directory"
    );
}

#[test]
fn every_page_size_prefix_delimiter_and_start_agree_with_the_model() {
    let h = Harness::new();
    let keys = build(&h.fs, h.root(), TREE);
    let mut prefixes: BTreeSet<String> = BTreeSet::new();
    for k in &keys {
        for i in 0..=k.len() {
            if k.is_char_boundary(i) {
                prefixes.insert(k[..i].to_string());
            }
        }
    }
    for prefix in &prefixes {
        for delim in [None, Some("/"), Some("-"), Some("y/")] {
            for start in [
                None,
                Some("a/y"),
                Some("a/"),
                Some("c/d/"),
                Some("d"),
                Some("zzz"),
            ] {
                for max in [1, 2, 3, 1000] {
                    let want = model(&keys, prefix, delim, start);
                    let got = list_all(&h.fs, h.root(), prefix, delim, start, max);
                    // With '/', a start key inside a rolled-up directory skips it.
                    assert_eq!(
                        got, want,
                        "prefix {prefix:?} delimiter {delim:?} start {start:?} max {max}"
                    );
                }
            }
        }
    }
}

#[test]
fn random_trees_list_like_the_model() {
    let alphabet = ["a", "b", "-", ".", "0", "~", " ", "ab", "a-", "a.", "a0"];
    for seed in 0..12u64 {
        let h = Harness::new();
        let mut rng = StdRng::seed_from_u64(seed);
        let mut paths = Vec::new();
        for _ in 0..40 {
            let depth = rng.gen_range(1..=3);
            let mut p = String::new();
            for d in 0..depth {
                let mut name = String::new();
                for _ in 0..rng.gen_range(1..=2) {
                    name.push_str(alphabet[rng.gen_range(0..alphabet.len())]);
                }
                if name == "." || name == ".." {
                    name.push('x');
                }
                p.push_str(&name);
                if d + 1 < depth {
                    p.push('/');
                }
            }
            if rng.gen_bool(0.2) {
                p.push('/');
            }
            paths.push(p);
        }
        let kept = paths;
        let refs: Vec<&str> = kept.iter().map(String::as_str).collect();
        let keys = build(&h.fs, h.root(), &refs);
        for prefix in ["", "a", "a-", "a/", "ab/", "-"] {
            for delim in [None, Some("/")] {
                for max in [1, 4, 1000] {
                    let want = model(&keys, prefix, delim, None);
                    let got = list_all(&h.fs, h.root(), prefix, delim, None, max);
                    assert_eq!(
                        got, want,
                        "seed {seed} prefix {prefix:?} delim {delim:?} max {max} tree {kept:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn a_large_directory_pages_by_max_keys() {
    let h = Harness::new();
    let cred = Credentials::root();
    for i in 0..2500 {
        h.fs.create(
            &cred,
            h.root(),
            format!("f{i:05}").as_bytes(),
            &CreateHow::Guarded(SetAttr::default()),
        )
        .unwrap();
    }
    let q = Query {
        prefix: String::new(),
        delimiter: None,
        start_after: None,
        max_keys: 1000,
    };
    let p1 = list::list(&h.fs, &cred, h.root(), &q).unwrap();
    assert!(p1.truncated);
    assert_eq!(p1.objects.len(), 1000);
    assert_eq!(p1.last.as_deref(), Some("f00999"));
    let all = list_all(&h.fs, h.root(), "", None, None, 1000);
    assert_eq!(all.len(), 2500);
}

#[tokio::test]
async fn list_objects_v2_uses_opaque_tokens_key_counts_and_url_encoding() {
    let h = Harness::new();
    build(&h.fs, h.root(), &["x/a b", "x/c+d", "x/e", "y/"]);
    let mut input = ListObjectsV2Input {
        bucket: "default".into(),
        prefix: Some("x/".into()),
        max_keys: Some(2),
        encoding_type: Some(EncodingType::from_static(EncodingType::URL)),
        ..Default::default()
    };
    let out =
        h.s3.list_objects_v2(req(input.clone(), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(out.key_count, Some(2));
    assert_eq!(out.is_truncated, Some(true));
    let keys: Vec<String> = out
        .contents
        .unwrap()
        .into_iter()
        .filter_map(|o| o.key)
        .collect();
    assert_eq!(keys, ["x/a%20b", "x/c%2Bd"]);
    let token = out.next_continuation_token.unwrap();
    assert!(!token.contains("x/"), "tokens are opaque");
    input.continuation_token = Some(token);
    let out = h.s3.list_objects_v2(req(input, ROOT)).await.unwrap().output;
    assert_eq!(out.key_count, Some(1));
    assert_eq!(out.is_truncated, Some(false));
    assert!(out.next_continuation_token.is_none());

    let bad = ListObjectsV2Input {
        bucket: "default".into(),
        continuation_token: Some("!!!".into()),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.list_objects_v2(req(bad, ROOT)).await),
        "InvalidArgument"
    );
    let v1 = ListObjectsInput {
        bucket: "default".into(),
        delimiter: Some("/".into()),
        max_keys: Some(1),
        ..Default::default()
    };
    let out = h.s3.list_objects(req(v1, ROOT)).await.unwrap().output;
    assert_eq!(out.is_truncated, Some(true));
    assert_eq!(out.next_marker.as_deref(), Some("x/"));
    assert_eq!(
        out.common_prefixes.unwrap()[0].prefix.as_deref(),
        Some("x/")
    );
    let missing = ListObjectsV2Input {
        bucket: "nope".into(),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.list_objects_v2(req(missing, ROOT)).await),
        "NoSuchBucket"
    );
}

#[test]
fn start_keys_with_dot_components_never_reenter_a_directory() {
    let h = Harness::new();
    let keys = build(&h.fs, h.root(), &[". ", ".-", "a/b", "a/.c", "a/c/d"]);
    for start in [
        ".", ". ", "./", "../", "..", "a/./", "a/../a/b", "a/.", "a/..", "a/c/../",
    ] {
        for max in [1, 1000] {
            for delim in [None, Some("/")] {
                let want = model(&keys, "", delim, Some(start));
                let got = list_all(&h.fs, h.root(), "", delim, Some(start), max);
                assert_eq!(got, want, "start {start:?} max {max} delim {delim:?}");
            }
        }
    }
}

/// The scale check: 100,000 keys in one directory list completely,
/// once each and in order, through 1,000-key pages, each page answered from
/// a bounded directory read (the walk never asks the core for a whole
/// directory).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_thousand_keys_list_in_pages_in_order() {
    const N: usize = 100_000;
    let h = Harness::new();
    let root = h.root();
    let fs = h.fs.clone();
    tokio::task::spawn_blocking(move || {
        let cred = Credentials::root();
        for i in 0..N {
            let name = format!("k{i:06}");
            fs.create(
                &cred,
                root,
                name.as_bytes(),
                &CreateHow::Guarded(SetAttr::default()),
            )
            .unwrap();
        }
    })
    .await
    .unwrap();
    let mut input = ListObjectsV2Input {
        bucket: "default".into(),
        max_keys: Some(1000),
        ..Default::default()
    };
    let mut seen = 0usize;
    let mut pages = 0usize;
    loop {
        let out =
            h.s3.list_objects_v2(req(input.clone(), ROOT))
                .await
                .unwrap()
                .output;
        let contents = out.contents.unwrap_or_default();
        assert!(contents.len() <= 1000);
        for obj in &contents {
            assert_eq!(obj.key.as_deref(), Some(format!("k{seen:06}").as_str()));
            seen += 1;
        }
        pages += 1;
        assert!(pages <= N / 1000 + 1, "pagination does not end");
        match out.next_continuation_token {
            Some(t) if out.is_truncated == Some(true) => input.continuation_token = Some(t),
            _ => break,
        }
    }
    assert_eq!(seen, N);
    assert_eq!(pages, N / 1000);
}
