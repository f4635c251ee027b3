//! Multipart uploads through the S3 trait.

use super::*;
use crate::meta;
use crate::multipart::MIN_PART;
#[allow(unused_imports)]
use nitrofs_core_fs::Credentials;
use s3s::dto::*;
use s3s::S3;

async fn create(h: &Harness, key: &str, who: &str) -> String {
    let input = CreateMultipartUploadInput {
        bucket: "default".into(),
        key: key.into(),
        content_type: Some("application/x-test".into()),
        ..Default::default()
    };
    h.s3.create_multipart_upload(req(input, who))
        .await
        .unwrap()
        .output
        .upload_id
        .unwrap()
}

async fn part(
    h: &Harness,
    key: &str,
    id: &str,
    n: i32,
    data: &[u8],
    who: &str,
) -> S3Result<String> {
    let input = UploadPartInput {
        bucket: "default".into(),
        key: key.into(),
        upload_id: id.into(),
        part_number: n,
        body: blob(data.to_vec()),
        content_length: Some(data.len() as i64),
        ..Default::default()
    };
    let out = h.s3.upload_part(req(input, who)).await?.output;
    Ok(out.e_tag.unwrap().value().to_string())
}

fn completed(parts: &[(i32, &str)]) -> Option<CompletedMultipartUpload> {
    Some(CompletedMultipartUpload {
        parts: Some(
            parts
                .iter()
                .map(|(n, e)| CompletedPart {
                    part_number: Some(*n),
                    e_tag: Some(ETag::Strong(e.to_string())),
                    ..Default::default()
                })
                .collect(),
        ),
    })
}

async fn complete(
    h: &Harness,
    key: &str,
    id: &str,
    parts: &[(i32, &str)],
    who: &str,
) -> S3Result<String> {
    let input = CompleteMultipartUploadInput {
        bucket: "default".into(),
        key: key.into(),
        upload_id: id.into(),
        multipart_upload: completed(parts),
        ..Default::default()
    };
    let out =
        h.s3.complete_multipart_upload(req(input, who))
            .await?
            .output;
    Ok(out.e_tag.unwrap().value().to_string())
}

async fn uploads(h: &Harness) -> Vec<(String, String)> {
    let input = ListMultipartUploadsInput {
        bucket: "default".into(),
        ..Default::default()
    };
    h.s3.list_multipart_uploads(req(input, ROOT))
        .await
        .unwrap()
        .output
        .uploads
        .unwrap_or_default()
        .into_iter()
        .map(|u| (u.key.unwrap(), u.upload_id.unwrap()))
        .collect()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

#[tokio::test]
async fn a_completed_upload_is_the_parts_in_order_with_the_multipart_etag() {
    let h = Harness::new();
    let id = create(&h, "ckpt/model.bin", ROOT).await;
    assert_eq!(
        uploads(&h).await,
        [("ckpt/model.bin".to_string(), id.clone())]
    );
    let p1 = pattern(MIN_PART as usize, 1);
    let p2 = pattern(MIN_PART as usize + 3, 2);
    let p3 = pattern(1000, 3);
    // Parts arrive out of order; part 2 is uploaded twice (the second wins).
    let e3 = part(&h, "ckpt/model.bin", &id, 3, &p3, ROOT).await.unwrap();
    let _ = part(&h, "ckpt/model.bin", &id, 2, b"stale part", ROOT)
        .await
        .unwrap();
    let e2 = part(&h, "ckpt/model.bin", &id, 2, &p2, ROOT).await.unwrap();
    let e1 = part(&h, "ckpt/model.bin", &id, 1, &p1, ROOT).await.unwrap();
    assert_eq!(e1, md5_hex(&p1));

    let lp = ListPartsInput {
        bucket: "default".into(),
        key: "ckpt/model.bin".into(),
        upload_id: id.clone(),
        ..Default::default()
    };
    let listed =
        h.s3.list_parts(req(lp, ROOT))
            .await
            .unwrap()
            .output
            .parts
            .unwrap();
    let nums: Vec<i32> = listed.iter().filter_map(|p| p.part_number).collect();
    assert_eq!(nums, [1, 2, 3]);
    assert_eq!(listed[1].size, Some(p2.len() as i64));

    // The object is invisible until completion.
    let head = HeadObjectInput {
        bucket: "default".into(),
        key: "ckpt/model.bin".into(),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.head_object(req(head.clone(), ROOT)).await),
        "NoSuchKey"
    );

    let etag = complete(
        &h,
        "ckpt/model.bin",
        &id,
        &[(1, &e1), (2, &e2), (3, &e3)],
        ROOT,
    )
    .await
    .unwrap();
    let md5s: Vec<[u8; 16]> = [&e1, &e2, &e3]
        .iter()
        .map(|e| meta::parse_md5_etag(e).unwrap())
        .collect();
    assert_eq!(etag, meta::multipart_etag(&md5s));
    assert!(etag.ends_with("-3"));

    let got =
        h.s3.get_object(req(
            GetObjectInput {
                bucket: "default".into(),
                key: "ckpt/model.bin".into(),
                ..Default::default()
            },
            ROOT,
        ))
        .await
        .unwrap()
        .output;
    assert_eq!(got.e_tag.as_ref().unwrap().value(), etag);
    assert_eq!(got.content_type.as_deref(), Some("application/x-test"));
    let body = read_all(got.body).await;
    assert_eq!(body.len(), p1.len() + p2.len() + p3.len());
    assert!(
        body[..p1.len()] == p1[..]
            && body[p1.len()..p1.len() + p2.len()] == p2[..]
            && body[p1.len() + p2.len()..] == p3[..]
    );

    // Everything of the upload is gone: no listing entry, no detached files.
    assert!(uploads(&h).await.is_empty());
    assert!(h.fs.detached_of_upload(id.as_bytes()).unwrap().is_empty());
    assert_eq!(
        code(complete(&h, "ckpt/model.bin", &id, &[(1, &e1)], ROOT).await),
        "NoSuchUpload"
    );
}

#[tokio::test]
async fn completion_refuses_bad_part_lists_and_keeps_the_upload() {
    let h = Harness::new();
    let id = create(&h, "k", ROOT).await;
    let small = part(&h, "k", &id, 1, b"tiny", ROOT).await.unwrap();
    let other = part(&h, "k", &id, 2, b"tail", ROOT).await.unwrap();
    assert_eq!(
        code(complete(&h, "k", &id, &[(2, &other), (1, &small)], ROOT).await),
        "InvalidPartOrder"
    );
    assert_eq!(
        code(complete(&h, "k", &id, &[(1, &small), (3, &other)], ROOT).await),
        "InvalidPart"
    );
    assert_eq!(
        code(complete(&h, "k", &id, &[(1, "0123"), (2, &other)], ROOT).await),
        "InvalidPart"
    );
    assert_eq!(
        code(complete(&h, "k", &id, &[(1, &small), (2, &other)], ROOT).await),
        "EntityTooSmall"
    );
    assert_eq!(
        code(complete(&h, "other-key", &id, &[(1, &small)], ROOT).await),
        "NoSuchUpload"
    );
    assert_eq!(
        code(part(&h, "k", &id, 0, b"x", ROOT).await),
        "InvalidArgument"
    );
    assert_eq!(
        code(part(&h, "k", "feedface", 1, b"x", ROOT).await),
        "NoSuchUpload"
    );
    // A single small part is a valid upload.
    let etag = complete(&h, "k", &id, &[(1, &small)], ROOT).await.unwrap();
    assert!(etag.ends_with("-1"));
}

#[tokio::test]
async fn an_aborted_upload_leaves_nothing() {
    let h = Harness::new();
    let id = create(&h, "gone", ROOT).await;
    part(&h, "gone", &id, 1, b"data", ROOT).await.unwrap();
    let abort = AbortMultipartUploadInput {
        bucket: "default".into(),
        key: "gone".into(),
        upload_id: id.clone(),
        ..Default::default()
    };
    let r =
        h.s3.abort_multipart_upload(req(abort.clone(), ROOT))
            .await
            .unwrap();
    assert_eq!(r.status, Some(hyper::StatusCode::NO_CONTENT));
    assert!(h.fs.detached_of_upload(id.as_bytes()).unwrap().is_empty());
    assert!(uploads(&h).await.is_empty());
    assert_eq!(
        code(h.s3.abort_multipart_upload(req(abort, ROOT)).await),
        "NoSuchUpload"
    );
}

#[tokio::test]
async fn an_upload_survives_a_restart() {
    let mut h = Harness::new();
    let id = create(&h, "r", ROOT).await;
    let e1 = part(&h, "r", &id, 1, b"before restart", ROOT)
        .await
        .unwrap();
    h.restart();
    assert_eq!(uploads(&h).await, [("r".to_string(), id.clone())]);
    let e2 = part(&h, "r", &id, 2, b" and after", ROOT).await.unwrap();
    let e1 = e1.as_str();
    let _ = e2;
    // Part 1 is below 5 MiB, so complete with it alone after the restart.
    complete(&h, "r", &id, &[(1, e1)], ROOT).await.unwrap();
    let got =
        h.s3.get_object(req(
            GetObjectInput {
                bucket: "default".into(),
                key: "r".into(),
                ..Default::default()
            },
            ROOT,
        ))
        .await
        .unwrap()
        .output;
    assert_eq!(read_all(got.body).await, b"before restart");
    assert!(
        h.fs.detached_of_upload(id.as_bytes()).unwrap().is_empty(),
        "the unused part 2 is discarded"
    );
}

#[tokio::test]
async fn upload_part_copy_takes_a_byte_range_of_an_object() {
    let h = Harness::new();
    let src = pattern(MIN_PART as usize + 10, 9);
    let put = PutObjectInput {
        bucket: "default".into(),
        key: "src".into(),
        body: blob(src.clone()),
        content_length: Some(src.len() as i64),
        ..Default::default()
    };
    h.s3.put_object(req(put, ROOT)).await.unwrap();
    let id = create(&h, "dst", ROOT).await;
    let copy = |n: i32, range: &str| {
        UploadPartCopyInput::builder()
            .bucket("default".into())
            .key("dst".into())
            .upload_id(id.clone())
            .part_number(n)
            .copy_source(CopySource::Bucket {
                bucket: "default".into(),
                key: "src".into(),
                version_id: None,
            })
            .copy_source_range(Some(range.to_string()))
            .build()
            .unwrap()
    };
    let first = MIN_PART as usize;
    let r1 =
        h.s3.upload_part_copy(req(copy(1, &format!("bytes=0-{}", first - 1)), ROOT))
            .await
            .unwrap();
    let e1 = r1
        .output
        .copy_part_result
        .unwrap()
        .e_tag
        .unwrap()
        .value()
        .to_string();
    let r2 =
        h.s3.upload_part_copy(req(
            copy(2, &format!("bytes={first}-{}", src.len() - 1)),
            ROOT,
        ))
        .await
        .unwrap();
    let e2 = r2
        .output
        .copy_part_result
        .unwrap()
        .e_tag
        .unwrap()
        .value()
        .to_string();
    assert_eq!(e2, md5_hex(&src[first..]));
    assert_eq!(
        code(
            h.s3.upload_part_copy(req(copy(3, &format!("bytes=0-{}", src.len())), ROOT))
                .await
        ),
        "InvalidArgument"
    );
    complete(&h, "dst", &id, &[(1, &e1), (2, &e2)], ROOT)
        .await
        .unwrap();
    let got =
        h.s3.get_object(req(
            GetObjectInput {
                bucket: "default".into(),
                key: "dst".into(),
                ..Default::default()
            },
            ROOT,
        ))
        .await
        .unwrap()
        .output;
    assert_eq!(read_all(got.body).await, src);
}

#[tokio::test]
async fn another_identity_cannot_touch_an_upload() {
    let h = Harness::new();
    h.open_root();
    let id = create(&h, "alice-upload", ALICE).await;
    part(&h, "alice-upload", &id, 1, b"mine", ALICE)
        .await
        .unwrap();
    assert_eq!(
        code(part(&h, "alice-upload", &id, 2, b"yours", BOB).await),
        "AccessDenied"
    );
    let abort = AbortMultipartUploadInput {
        bucket: "default".into(),
        key: "alice-upload".into(),
        upload_id: id.clone(),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.abort_multipart_upload(req(abort, BOB)).await),
        "AccessDenied"
    );
}
