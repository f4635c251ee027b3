//! Objects: PUT/GET/HEAD/DELETE, ETags, conditions, keys, markers.

use super::*;
use crate::meta;
#[allow(unused_imports)]
use nitrofs_core_fs::Credentials;
use nitrofs_core_fs::{CreateHow, FileType, SetAttr};
use s3s::dto::*;
use s3s::S3;

pub(super) fn put(bucket: &str, key: &str, data: &'static [u8]) -> PutObjectInput {
    PutObjectInput {
        bucket: bucket.into(),
        key: key.into(),
        body: blob(data),
        content_length: Some(data.len() as i64),
        ..PutObjectInput::default()
    }
}

pub(super) fn get(key: &str) -> GetObjectInput {
    GetObjectInput {
        bucket: "default".into(),
        key: key.into(),
        ..GetObjectInput::default()
    }
}

pub(super) fn del(bucket: &str, key: &str) -> DeleteObjectInput {
    DeleteObjectInput {
        bucket: bucket.into(),
        key: key.into(),
        ..DeleteObjectInput::default()
    }
}

pub(super) fn head(key: &str) -> HeadObjectInput {
    HeadObjectInput {
        bucket: "default".into(),
        key: key.into(),
        ..HeadObjectInput::default()
    }
}

#[tokio::test]
async fn a_put_object_reads_back_with_its_metadata_and_md5_etag() {
    let h = Harness::new();
    h.open_root();
    let mut input = put("default", "dir/sub/hello.txt", b"hello world");
    input.content_type = Some("text/plain".into());
    input.cache_control = Some("no-cache".into());
    input.content_disposition = Some("attachment".into());
    let mut m = Metadata::new();
    m.insert("color".into(), "blue".into());
    input.metadata = Some(m);
    let out = h.s3.put_object(req(input, ALICE)).await.unwrap().output;
    let want = md5_hex(b"hello world");
    assert_eq!(out.e_tag.unwrap().value(), want);

    let got =
        h.s3.get_object(req(get("dir/sub/hello.txt"), BOB))
            .await
            .unwrap()
            .output;
    assert_eq!(got.e_tag.as_ref().unwrap().value(), want);
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(got.cache_control.as_deref(), Some("no-cache"));
    assert_eq!(got.content_disposition.as_deref(), Some("attachment"));
    assert_eq!(
        got.metadata
            .as_ref()
            .unwrap()
            .get("color")
            .map(String::as_str),
        Some("blue")
    );
    assert_eq!(got.content_length, Some(11));
    assert_eq!(read_all(got.body).await, b"hello world");

    // The same bytes are a file with the owner and default mode of an NFS create.
    let attr =
        h.fs.lookup_path(&Credentials::root(), h.root(), "dir/sub/hello.txt")
            .unwrap();
    assert_eq!((attr.uid, attr.mode & 0o777), (1000, 0o644));
    let dir =
        h.fs.lookup_path(&Credentials::root(), h.root(), "dir")
            .unwrap();
    assert_eq!(
        (dir.kind, dir.uid, dir.mode & 0o777),
        (FileType::Directory, 1000, 0o755)
    );

    let hd =
        h.s3.head_object(req(head("dir/sub/hello.txt"), ALICE))
            .await
            .unwrap()
            .output;
    assert_eq!(hd.e_tag.unwrap().value(), want);
    assert_eq!(hd.content_length, Some(11));
}

#[tokio::test]
async fn a_large_put_streams_in_pieces_and_round_trips() {
    let h = Harness::new();
    // Sent in chunks of 65,537 bytes, so a write piece is 16 chunks
    // (1,048,592 bytes). The ends: a large last piece, a small last piece
    // after a large one (written by the publishing task), no last piece.
    let piece = 16 * 65_537;
    for (i, len) in [3 * 1024 * 1024 + 17, piece + 1000, 2 * piece]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
        let key = format!("big{i}.bin");
        let input = PutObjectInput {
            bucket: "default".into(),
            key: key.clone(),
            body: blob_pieces(&data, 65_537),
            content_length: Some(data.len() as i64),
            ..PutObjectInput::default()
        };
        let out = h.s3.put_object(req(input, ROOT)).await.unwrap().output;
        assert_eq!(out.e_tag.unwrap().value(), md5_hex(&data), "{len}");
        assert_eq!(out.size, Some(len as i64));
        let got = h.s3.get_object(req(get(&key), ROOT)).await.unwrap().output;
        assert_eq!(read_all(got.body).await, data, "{len}");
    }
}

#[tokio::test]
async fn a_wrong_content_md5_is_bad_digest_and_leaves_no_object() {
    let h = Harness::new();
    let mut input = put("default", "x", b"data");
    input.content_md5 = Some(crate::checksum::b64(&[0u8; 16]));
    assert_eq!(code(h.s3.put_object(req(input, ROOT)).await), "BadDigest");
    assert_eq!(
        code(h.s3.head_object(req(head("x"), ROOT)).await),
        "NoSuchKey"
    );
    // A body shorter than its Content-Length is refused too.
    let mut input = put("default", "y", b"data");
    input.content_length = Some(10);
    assert_eq!(
        code(h.s3.put_object(req(input, ROOT)).await),
        "IncompleteBody"
    );
    assert_eq!(
        code(h.s3.head_object(req(head("y"), ROOT)).await),
        "NoSuchKey"
    );
}

/// Detached files left in the volume (PUTs neither published nor discarded).
fn detached_left(h: &Harness) -> usize {
    use nitrofs_metadata::{keys, prefix_end, MetaKv as _};
    let prefix = keys::pending_prefix();
    h.kv.scan(&prefix, &prefix_end(&prefix), usize::MAX)
        .unwrap()
        .len()
}

#[tokio::test]
async fn puts_of_every_size_class_round_trip_and_failed_ones_leave_no_file() {
    let h = Harness::new();
    let inline = h.fs.inline_max() as usize;
    // Empty; kept inline and published from memory; one past inline (its
    // file is made by the publishing task); a last piece large enough for
    // the hashing thread (its file is made while the body streams in);
    // several pieces.
    for len in [0, 5, inline, inline + 1, 65_600, 3 * 1024 * 1024 + 5] {
        let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
        let key = format!("k{len}");
        let input = PutObjectInput {
            bucket: "default".into(),
            key: key.clone(),
            body: blob_pieces(&data, 65_537),
            content_length: Some(len as i64),
            ..PutObjectInput::default()
        };
        let out = h.s3.put_object(req(input, ROOT)).await.unwrap().output;
        assert_eq!(out.e_tag.unwrap().value(), md5_hex(&data), "{len}");
        let got = h.s3.get_object(req(get(&key), ROOT)).await.unwrap().output;
        assert_eq!(got.e_tag.unwrap().value(), md5_hex(&data), "{len}");
        assert_eq!(read_all(got.body).await, data, "{len}");
        // A wrong Content-MD5 fails at the end, whatever was written.
        let input = PutObjectInput {
            bucket: "default".into(),
            key: format!("bad{len}"),
            body: blob_pieces(&data, 65_537),
            content_length: Some(len as i64),
            content_md5: Some(crate::checksum::b64(&[0u8; 16])),
            ..PutObjectInput::default()
        };
        assert_eq!(code(h.s3.put_object(req(input, ROOT)).await), "BadDigest");
        let missing =
            h.s3.head_object(req(head(&format!("bad{len}")), ROOT))
                .await;
        assert_eq!(code(missing), "NoSuchKey", "{len}");
        assert_eq!(detached_left(&h), 0, "{len}");
    }
}

#[tokio::test]
async fn an_upload_whose_finishing_task_panics_leaves_no_file() {
    let h = Harness::new();
    let vol = h.fs.volume("default").unwrap();
    // Past inline_max, so a file is made for the body; then the task
    // that would publish it panics.
    let data = vec![7u8; h.fs.inline_max() as usize + 10];
    let upload = crate::body::Upload::new(
        blob_pieces(&data, 65_537),
        Some(data.len() as i64),
        crate::checksum::Expect::default(),
        None,
    );
    let target = crate::body::Target::New {
        volume: vol.id,
        mode: 0o644,
    };
    let cred = Credentials::root();
    let r = crate::body::write_body(&h.fs, &cred, target, upload, |_, landed, _, _| {
        assert!(matches!(landed, crate::body::Landed::File(_)));
        panic!("injected: the publishing task fails");
        #[allow(unreachable_code)]
        Ok(())
    })
    .await;
    assert!(r.is_err(), "a panicked upload must fail");
    assert_eq!(detached_left(&h), 0, "its file was discarded");
}

#[tokio::test]
async fn checksums_are_verified_stored_and_returned_in_checksum_mode() {
    let h = Harness::new();
    let mut input = put("default", "c", b"hello world");
    input.checksum_crc32 = Some("DUoRhQ==".into());
    let out = h.s3.put_object(req(input, ROOT)).await.unwrap().output;
    assert_eq!(out.checksum_crc32.as_deref(), Some("DUoRhQ=="));
    let mut g = get("c");
    g.checksum_mode = Some(ChecksumMode::from_static(ChecksumMode::ENABLED));
    let got = h.s3.get_object(req(g, ROOT)).await.unwrap().output;
    assert_eq!(got.checksum_crc32.as_deref(), Some("DUoRhQ=="));
    let plain = h.s3.get_object(req(get("c"), ROOT)).await.unwrap().output;
    assert!(plain.checksum_crc32.is_none());

    let mut bad = put("default", "c2", b"hello world");
    bad.checksum_sha256 = Some("AAAA".into());
    assert_eq!(code(h.s3.put_object(req(bad, ROOT)).await), "BadDigest");
}

#[tokio::test]
async fn keys_that_could_escape_or_alias_are_refused() {
    let h = Harness::new();
    for key in ["../etc/passwd", "a/../b", "a//b", "/abs", "a/./b"] {
        let r = h.s3.put_object(req(put("default", key, b"x"), ROOT)).await;
        assert_eq!(code(r), "InvalidArgument", "{key}");
    }
    let long = "x".repeat(256);
    assert_eq!(
        code(
            h.s3.put_object(req(put("default", &long, b"x"), ROOT))
                .await
        ),
        "KeyTooLongError"
    );
    let names =
        h.fs.list_by_name(&Credentials::root(), h.root(), b"", 10)
            .unwrap()
            .0;
    assert!(names.is_empty(), "the bucket is unchanged");
}

#[tokio::test]
async fn ranges_and_suffix_ranges_return_partial_content() {
    let h = Harness::new();
    h.s3.put_object(req(put("default", "r", b"abcdefghij"), ROOT))
        .await
        .unwrap();
    let mut g = get("r");
    g.range = Some(Range::Int {
        first: 2,
        last: Some(4),
    });
    let out = h.s3.get_object(req(g, ROOT)).await.unwrap().output;
    assert_eq!(out.content_range.as_deref(), Some("bytes 2-4/10"));
    assert_eq!(read_all(out.body).await, b"cde");
    let mut g = get("r");
    g.range = Some(Range::Suffix { length: 3 });
    let out = h.s3.get_object(req(g, ROOT)).await.unwrap().output;
    assert_eq!(read_all(out.body).await, b"hij");
    let mut g = get("r");
    g.range = Some(Range::Int {
        first: 7,
        last: None,
    });
    assert_eq!(
        read_all(h.s3.get_object(req(g, ROOT)).await.unwrap().output.body).await,
        b"hij"
    );
    let mut g = get("r");
    g.range = Some(Range::Int {
        first: 10,
        last: None,
    });
    assert_eq!(code(h.s3.get_object(req(g, ROOT)).await), "InvalidRange");
}

#[tokio::test]
async fn small_ranges_read_at_once_match_the_object_across_a_chunk_boundary() {
    let h = Harness::new();
    let cs = u64::from(h.fs.chunk_size());
    let len = cs + 100_000;
    let data: Vec<u8> = (0..len).map(|i| (i * 13 % 251) as u8).collect();
    let input = PutObjectInput {
        bucket: "default".into(),
        key: "big".into(),
        body: blob_pieces(&data, 65_537),
        content_length: Some(len as i64),
        ..PutObjectInput::default()
    };
    h.s3.put_object(req(input, ROOT)).await.unwrap();
    // The largest range read at once (64 KiB) across the chunk boundary,
    // the last byte, the first 100, and one byte more than 64 KiB (read
    // by the streaming body).
    for (first, last) in [
        (cs - 32_768, cs + 32_767),
        (len - 1, len - 1),
        (0, 99),
        (cs - 32_768, cs + 32_768),
    ] {
        let mut g = get("big");
        g.range = Some(Range::Int {
            first,
            last: Some(last),
        });
        let out = h.s3.get_object(req(g, ROOT)).await.unwrap().output;
        assert_eq!(out.content_length, Some((last - first + 1) as i64));
        let got = read_all(out.body).await;
        assert!(
            got == data[first as usize..=last as usize],
            "{first}-{last}"
        );
    }
}

#[tokio::test]
async fn conditional_gets_answer_304_and_412() {
    let h = Harness::new();
    let etag =
        h.s3.put_object(req(put("default", "k", b"v"), ROOT))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    let mut g = get("k");
    g.if_none_match = Some(ETagCondition::ETag(etag.clone()));
    assert_eq!(code(h.s3.get_object(req(g, ROOT)).await), "NotModified");
    let mut g = get("k");
    g.if_match = Some(ETagCondition::ETag(ETag::Strong("nope".into())));
    assert_eq!(
        code(h.s3.get_object(req(g, ROOT)).await),
        "PreconditionFailed"
    );
    let mut g = get("k");
    g.if_match = Some(ETagCondition::ETag(etag));
    assert_eq!(code(h.s3.get_object(req(g, ROOT)).await), "OK");
    let mut g = get("k");
    g.if_modified_since = Some(meta::to_s3_time(nitrofs_core_fs::Timestamp::now()));
    assert_eq!(code(h.s3.get_object(req(g, ROOT)).await), "NotModified");
}

#[tokio::test]
async fn a_file_written_over_nfs_has_a_stable_etag_that_changes_with_its_bytes() {
    let h = Harness::new();
    let cred = Credentials::new(1000, 1000);
    h.open_root();
    let (f, _) =
        h.fs.create(
            &cred,
            h.root(),
            b"nfs.txt",
            &CreateHow::Guarded(SetAttr::default()),
        )
        .unwrap();
    h.fs.write(&cred, f.ino, 0, b"from nfs", true).unwrap();
    let e1 =
        h.s3.head_object(req(head("nfs.txt"), ALICE))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    let e2 =
        h.s3.head_object(req(head("nfs.txt"), ALICE))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    assert_eq!(e1, e2);
    assert!(
        e1.value().ends_with("-1"),
        "derived ETags are not MD5s: {}",
        e1.value()
    );
    std::thread::sleep(std::time::Duration::from_millis(2));
    h.fs.write(&cred, f.ino, 0, b"FROM", true).unwrap();
    let e3 =
        h.s3.head_object(req(head("nfs.txt"), ALICE))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    assert_ne!(e1, e3);
    let got =
        h.s3.get_object(req(get("nfs.txt"), ALICE))
            .await
            .unwrap()
            .output;
    assert_eq!(read_all(got.body).await, b"FROM nfs");

    // An S3 object rewritten in place over NFS loses its stored MD5 ETag.
    let put_etag =
        h.s3.put_object(req(put("default", "s3.txt", b"abc"), ALICE))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    let attr = h.fs.lookup_path(&cred, h.root(), "s3.txt").unwrap();
    h.fs.write(&cred, attr.ino, 0, b"x", true).unwrap();
    let after =
        h.s3.head_object(req(head("s3.txt"), ALICE))
            .await
            .unwrap()
            .output
            .e_tag
            .unwrap();
    assert_ne!(after, put_etag);
}

#[tokio::test]
async fn posix_permissions_apply_to_s3_identities() {
    let h = Harness::new();
    let root = Credentials::root();
    let (f, _) =
        h.fs.create(
            &root,
            h.root(),
            b"secret",
            &CreateHow::Guarded(SetAttr {
                mode: Some(0o600),
                ..SetAttr::default()
            }),
        )
        .unwrap();
    h.fs.write(&root, f.ino, 0, b"top secret", true).unwrap();
    assert_eq!(
        code(h.s3.get_object(req(get("secret"), ALICE)).await),
        "AccessDenied"
    );
    assert_eq!(
        code(h.s3.head_object(req(head("secret"), ALICE)).await),
        "AccessDenied"
    );
    // Alice cannot write into the root-owned 0755 bucket root.
    assert_eq!(
        code(
            h.s3.put_object(req(put("default", "mine", b"x"), ALICE))
                .await
        ),
        "AccessDenied"
    );
    assert_eq!(
        code(
            h.s3.delete_object(req(del("default", "secret"), ALICE))
                .await
        ),
        "AccessDenied"
    );
    // Unsigned requests never reach the core.
    let mut anon = req(get("secret"), ROOT);
    anon.credentials = None;
    assert_eq!(code(h.s3.get_object(anon).await), "AccessDenied");
}

#[tokio::test]
async fn directory_markers_are_directories() {
    let h = Harness::new();
    let out =
        h.s3.put_object(req(put("default", "photos/2024/", b""), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(out.e_tag.unwrap().value(), meta::EMPTY_MD5);
    let d =
        h.fs.lookup_path(&Credentials::root(), h.root(), "photos/2024")
            .unwrap();
    assert_eq!(d.kind, FileType::Directory);
    let got =
        h.s3.get_object(req(get("photos/2024/"), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(got.content_length, Some(0));
    assert_eq!(got.e_tag.unwrap().value(), meta::EMPTY_MD5);
    assert!(read_all(got.body).await.is_empty());
    // The directory is not an object without the slash, and a marker cannot hold data.
    assert_eq!(
        code(h.s3.get_object(req(get("photos/2024"), ROOT)).await),
        "NoSuchKey"
    );
    assert_eq!(
        code(
            h.s3.put_object(req(put("default", "photos/x/", b"data"), ROOT))
                .await
        ),
        "InvalidArgument"
    );
    // A file cannot become a directory, nor a directory a file.
    h.s3.put_object(req(put("default", "file", b"x"), ROOT))
        .await
        .unwrap();
    assert_eq!(
        code(
            h.s3.put_object(req(put("default", "file/child", b"x"), ROOT))
                .await
        ),
        "InvalidArgument"
    );
    assert_eq!(
        code(
            h.s3.put_object(req(put("default", "photos", b"x"), ROOT))
                .await
        ),
        "InvalidArgument"
    );
}

#[tokio::test]
async fn deletes_are_idempotent_and_remove_implicit_parents() {
    let h = Harness::new();
    h.s3.put_object(req(put("default", "a/b/c", b"x"), ROOT))
        .await
        .unwrap();
    let r =
        h.s3.delete_object(req(del("default", "a/b/c"), ROOT))
            .await
            .unwrap();
    assert_eq!(r.status, Some(hyper::StatusCode::NO_CONTENT));
    assert_eq!(
        code(h.s3.head_object(req(head("a/b/c"), ROOT)).await),
        "NoSuchKey"
    );
    assert!(
        h.fs.lookup_path(&Credentials::root(), h.root(), "a")
            .is_err(),
        "parents created for the key go with its last object"
    );
    assert_eq!(
        code(h.s3.delete_object(req(del("default", "a/b/c"), ROOT)).await),
        "OK"
    );
    assert_eq!(
        code(
            h.s3.delete_object(req(del("default", "never/was"), ROOT))
                .await
        ),
        "OK"
    );
    // Deleting the marker of a non-empty directory is a no-op; of an empty one removes it.
    h.s3.put_object(req(put("default", "a/b/c", b"x"), ROOT))
        .await
        .unwrap();
    h.s3.put_object(req(put("default", "a/b/", b""), ROOT))
        .await
        .unwrap();
    assert_eq!(
        code(h.s3.delete_object(req(del("default", "a/"), ROOT)).await),
        "OK"
    );
    assert_eq!(
        code(h.s3.delete_object(req(del("default", "a/b/c"), ROOT)).await),
        "OK"
    );
    assert!(
        h.fs.lookup_path(&Credentials::root(), h.root(), "a/b")
            .is_ok(),
        "an explicit marker keeps its directory"
    );
    assert!(h
        .fs
        .lookup_path(&Credentials::root(), h.root(), "a/b")
        .is_ok());
    assert_eq!(
        code(h.s3.delete_object(req(del("default", "a/b/"), ROOT)).await),
        "OK"
    );
    assert!(h
        .fs
        .lookup_path(&Credentials::root(), h.root(), "a/b")
        .is_err());

    for k in ["m/1", "m/2", "m/3"] {
        h.s3.put_object(req(put("default", k, b"x"), ROOT))
            .await
            .unwrap();
    }
    let ids = |ks: &[&str]| -> Vec<ObjectIdentifier> {
        ks.iter()
            .map(|k| ObjectIdentifier {
                key: k.to_string(),
                ..Default::default()
            })
            .collect()
    };
    let input = DeleteObjectsInput::builder()
        .bucket("default".into())
        .delete(Delete {
            objects: ids(&["m/1", "m/2", "nope", "../bad"]),
            quiet: None,
        })
        .build()
        .unwrap();
    let out = h.s3.delete_objects(req(input, ROOT)).await.unwrap().output;
    assert_eq!(out.deleted.unwrap().len(), 3);
    let errors = out.errors.unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].code.as_deref(), Some("InvalidArgument"));
    let input = DeleteObjectsInput::builder()
        .bucket("default".into())
        .delete(Delete {
            objects: ids(&["m/3"]),
            quiet: Some(true),
        })
        .build()
        .unwrap();
    let out = h.s3.delete_objects(req(input, ROOT)).await.unwrap().output;
    assert!(
        out.deleted.unwrap_or_default().is_empty(),
        "quiet mode lists only errors"
    );
    assert_eq!(
        code(h.s3.head_object(req(head("m/3"), ROOT)).await),
        "NoSuchKey"
    );
}

/// A harness with an 8 MiB object `ckpt` (its bytes returned) and a GET
/// of it answered, its body not read yet.
async fn big_object_get_started() -> (Harness, Vec<u8>, GetObjectOutput) {
    let h = Harness::new();
    let old: Vec<u8> = (0..8 * 1024 * 1024 + 17)
        .map(|i| (i * 7 % 251) as u8)
        .collect();
    let input = PutObjectInput {
        bucket: "default".into(),
        key: "ckpt".into(),
        body: blob_pieces(&old, 65_537),
        content_length: Some(old.len() as i64),
        ..PutObjectInput::default()
    };
    h.s3.put_object(req(input, ROOT)).await.unwrap();
    let got =
        h.s3.get_object(req(get("ckpt"), ROOT))
            .await
            .unwrap()
            .output;
    (h, old, got)
}

#[tokio::test]
async fn a_get_under_way_sends_the_whole_object_it_began_although_the_key_is_replaced() {
    let (h, old, got) = big_object_get_started().await;
    assert_eq!(got.content_length, Some(old.len() as i64));
    // Replaced, then deleted, before the body is read.
    h.s3.put_object(req(put("default", "ckpt", b"new"), ROOT))
        .await
        .unwrap();
    let again =
        h.s3.get_object(req(get("ckpt"), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(read_all(again.body).await, b"new");
    h.s3.delete_object(req(del("default", "ckpt"), ROOT))
        .await
        .unwrap();
    assert!(
        read_all(got.body).await == old,
        "the body is not the object it began"
    );
    assert_eq!(
        code(h.s3.get_object(req(get("ckpt"), ROOT)).await),
        "NoSuchKey"
    );
}

#[tokio::test(start_paused = true)]
async fn an_upload_whose_client_stops_sending_fails_and_leaves_nothing() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let h = Harness::new();
    // One piece, then nothing: the client stalls mid-body. The body is
    // wrapped as the HTTP front wraps every request body.
    let first: Result<Bytes, std::io::Error> = Ok(Bytes::from(vec![1u8; 64 * 1024]));
    let stalled = futures::stream::iter([first]).chain(futures::stream::pending());
    let gave_up = Arc::new(AtomicBool::new(false));
    let body = crate::stall::StallBody::new(
        s3s::Body::from(StreamingBlob::wrap(stalled)),
        crate::body::DEFAULT_STALL,
        gave_up.clone(),
    );
    let input = PutObjectInput {
        bucket: "default".into(),
        key: "stalled".into(),
        body: Some(StreamingBlob::from(s3s::Body::http_body(body))),
        content_length: Some(1 << 20),
        ..PutObjectInput::default()
    };
    let started = tokio::time::Instant::now();
    // The runtime's clock is paused: the wait takes no real time, and the
    // outer timeout only stops a PUT that would wait forever.
    let r = tokio::time::timeout(
        crate::body::DEFAULT_STALL * 2,
        h.s3.put_object(req(input, ROOT)),
    )
    .await
    .expect("a stalled upload must not wait forever");
    // The front answers RequestTimeout once the body raised its flag.
    assert!(r.is_err(), "a stalled upload must fail");
    assert!(gave_up.load(Ordering::Relaxed));
    assert!(started.elapsed() >= crate::body::DEFAULT_STALL);
    assert_eq!(
        code(h.s3.get_object(req(get("stalled"), ROOT)).await),
        "NoSuchKey"
    );
}

#[tokio::test(start_paused = true)]
async fn a_get_whose_client_stops_reading_gives_up_and_lets_go_of_the_object() {
    let (h, old, got) = big_object_get_started().await;
    // Nothing is read for longer than the stall limit (the runtime's
    // clock is paused, so this waits for no real time).
    tokio::time::sleep(crate::body::DEFAULT_STALL * 2).await;
    let sent = read_all(got.body).await;
    assert!(
        sent.len() < old.len(),
        "a body nobody read for {:?} still sent all {} bytes",
        crate::body::DEFAULT_STALL * 2,
        old.len()
    );
    assert_eq!(
        sent[..],
        old[..sent.len()],
        "what was sent is the object's start"
    );
    // Nothing pins the object any more: replacing it frees its chunks at
    // once.
    let ino =
        h.fs.lookup(&Credentials::root(), h.root(), b"ckpt")
            .unwrap()
            .ino;
    h.s3.put_object(req(put("default", "ckpt", b"new"), ROOT))
        .await
        .unwrap();
    use nitrofs_chunk_store::ChunkStore;
    assert!(
        !h.chunks.inodes().unwrap().contains(&ino),
        "the old chunks are kept"
    );
}
