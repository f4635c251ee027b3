//! Buckets, copies and ACLs.

use super::objects::{del, get, head, put};
use super::*;
#[allow(unused_imports)]
use nitrofs_core_fs::Credentials;
use s3s::dto::*;
use s3s::S3;

#[tokio::test]
async fn buckets_are_volumes_with_owners() {
    let h = Harness::new();
    let mk = |b: &str| CreateBucketInput {
        bucket: b.into(),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.create_bucket(req(mk("alices"), ALICE)).await),
        "OK"
    );
    assert_eq!(
        code(h.s3.create_bucket(req(mk("alices"), ALICE)).await),
        "BucketAlreadyOwnedByYou"
    );
    assert_eq!(
        code(h.s3.create_bucket(req(mk("alices"), BOB)).await),
        "BucketAlreadyExists"
    );
    assert_eq!(
        code(h.s3.create_bucket(req(mk("Bad_Name"), ALICE)).await),
        "InvalidBucketName"
    );
    // Alice owns her bucket's root and can write in it.
    h.s3.put_object(req(put("alices", "k", b"v"), ALICE))
        .await
        .unwrap();
    let names: Vec<String> =
        h.s3.list_buckets(req(ListBucketsInput::default(), BOB))
            .await
            .unwrap()
            .output
            .buckets
            .unwrap()
            .into_iter()
            .filter_map(|b| b.name)
            .collect();
    assert_eq!(names, ["alices", "default"]);
    let hb = |b: &str| HeadBucketInput {
        bucket: b.into(),
        ..Default::default()
    };
    assert_eq!(code(h.s3.head_bucket(req(hb("alices"), BOB)).await), "OK");
    assert_eq!(
        code(h.s3.head_bucket(req(hb("nope"), BOB)).await),
        "NoSuchBucket"
    );
    let db = |b: &str| DeleteBucketInput {
        bucket: b.into(),
        ..Default::default()
    };
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), BOB)).await),
        "AccessDenied"
    );
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), ALICE)).await),
        "BucketNotEmpty"
    );
    assert_eq!(
        code(
            h.s3.get_object(req(
                GetObjectInput {
                    bucket: "nope".into(),
                    key: "k".into(),
                    ..Default::default()
                },
                ALICE
            ))
            .await
        ),
        "NoSuchBucket"
    );
    h.s3.delete_object(req(del("alices", "k"), ALICE))
        .await
        .unwrap();
    // What is left after deleting every object is implicit directories:
    // empty to S3. Explicit markers (PUT dir/) are objects.
    let put_alice = |k: &str, d: &'static [u8]| req(put("alices", k, d), ALICE);
    let del_alice = |k: &str| req(del("alices", k), ALICE);
    h.s3.put_object(put_alice("d1/d2/k", b"v")).await.unwrap();
    h.s3.put_object(put_alice("d3/", b"")).await.unwrap();
    h.s3.put_object(put_alice("d4/x", b"")).await.unwrap();
    h.s3.put_object(put_alice("d4/", b"")).await.unwrap();
    h.s3.delete_object(del_alice("d1/d2/k")).await.unwrap();
    h.s3.delete_object(del_alice("d4/x")).await.unwrap();
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), ALICE)).await),
        "BucketNotEmpty"
    );
    let alices = h.fs.volume("alices").unwrap().root;
    assert!(
        h.fs.lookup_path(&Credentials::root(), alices, "d1")
            .is_err(),
        "implicit parents of a deleted object go with it"
    );
    assert!(
        h.fs.lookup_path(&Credentials::root(), alices, "d4").is_ok(),
        "an explicit marker keeps its directory"
    );
    h.s3.delete_object(del_alice("d3/")).await.unwrap();
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), ALICE)).await),
        "BucketNotEmpty",
        "d4/ is still a marker"
    );
    h.s3.delete_object(del_alice("d4/")).await.unwrap();
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), ALICE)).await),
        "OK"
    );
    assert_eq!(
        code(h.s3.delete_bucket(req(db("alices"), ALICE)).await),
        "NoSuchBucket"
    );
    let loc =
        h.s3.get_bucket_location(req(
            GetBucketLocationInput {
                bucket: "default".into(),
                ..Default::default()
            },
            ROOT,
        ))
        .await
        .unwrap();
    assert!(
        loc.output.location_constraint.is_none(),
        "us-east-1 is the empty constraint"
    );
}

#[tokio::test]
async fn copies_keep_or_replace_metadata_and_honour_source_conditions() {
    let h = Harness::new();
    let mut input = put("default", "src", b"copy me");
    input.content_type = Some("text/plain".into());
    h.s3.put_object(req(input, ROOT)).await.unwrap();
    let src = CopySource::Bucket {
        bucket: "default".into(),
        key: "src".into(),
        version_id: None,
    };
    let copy = |key: &str| {
        CopyObjectInput::builder()
            .bucket("default".into())
            .key(key.into())
            .copy_source(src.clone())
    };
    let out =
        h.s3.copy_object(req(copy("dst/copy").build().unwrap(), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(
        out.copy_object_result.unwrap().e_tag.unwrap().value(),
        md5_hex(b"copy me")
    );
    let got =
        h.s3.get_object(req(get("dst/copy"), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(got.content_type.as_deref(), Some("text/plain"));
    assert_eq!(read_all(got.body).await, b"copy me");

    let replaced = copy("dst/replaced")
        .metadata_directive(Some(MetadataDirective::from_static(
            MetadataDirective::REPLACE,
        )))
        .content_type(Some("application/json".into()))
        .build()
        .unwrap();
    h.s3.copy_object(req(replaced, ROOT)).await.unwrap();
    let got =
        h.s3.head_object(req(head("dst/replaced"), ROOT))
            .await
            .unwrap()
            .output;
    assert_eq!(got.content_type.as_deref(), Some("application/json"));

    assert_eq!(
        code(
            h.s3.copy_object(req(copy("src").build().unwrap(), ROOT))
                .await
        ),
        "InvalidRequest"
    );
    let self_replace = copy("src")
        .metadata_directive(Some(MetadataDirective::from_static(
            MetadataDirective::REPLACE,
        )))
        .content_type(Some("image/png".into()))
        .build()
        .unwrap();
    let e =
        h.s3.copy_object(req(self_replace, ROOT))
            .await
            .unwrap()
            .output
            .copy_object_result
            .unwrap()
            .e_tag
            .unwrap();
    assert_eq!(
        e.value(),
        md5_hex(b"copy me"),
        "metadata-only copy keeps the ETag"
    );
    assert_eq!(
        h.s3.head_object(req(head("src"), ROOT))
            .await
            .unwrap()
            .output
            .content_type
            .as_deref(),
        Some("image/png")
    );

    let cond = copy("dst/cond")
        .copy_source_if_match(Some(ETagCondition::ETag(ETag::Strong("other".into()))))
        .build()
        .unwrap();
    assert_eq!(
        code(h.s3.copy_object(req(cond, ROOT)).await),
        "PreconditionFailed"
    );
    let missing = CopyObjectInput::builder()
        .bucket("default".into())
        .key("x".into())
        .copy_source(CopySource::Bucket {
            bucket: "default".into(),
            key: "missing".into(),
            version_id: None,
        })
        .build()
        .unwrap();
    assert_eq!(
        code(h.s3.copy_object(req(missing, ROOT)).await),
        "NoSuchKey"
    );
}

#[tokio::test]
async fn acls_read_and_set_posix_modes() {
    let h = Harness::new();
    let mut input = put("default", "p", b"x");
    input.acl = Some(ObjectCannedACL::from_static(ObjectCannedACL::PRIVATE));
    h.s3.put_object(req(input, ROOT)).await.unwrap();
    let attr =
        h.fs.lookup_path(&Credentials::root(), h.root(), "p")
            .unwrap();
    assert_eq!(attr.mode & 0o777, 0o600);
    assert_eq!(
        code(h.s3.get_object(req(get("p"), ALICE)).await),
        "AccessDenied"
    );
    let acl =
        h.s3.get_object_acl(req(
            GetObjectAclInput {
                bucket: "default".into(),
                key: "p".into(),
                ..Default::default()
            },
            ROOT,
        ))
        .await
        .unwrap()
        .output;
    assert_eq!(acl.grants.unwrap().len(), 1);
    let set = PutObjectAclInput {
        bucket: "default".into(),
        key: "p".into(),
        acl: Some(ObjectCannedACL::from_static(ObjectCannedACL::PUBLIC_READ)),
        ..Default::default()
    };
    h.s3.put_object_acl(req(set.clone(), ROOT)).await.unwrap();
    assert_eq!(code(h.s3.get_object(req(get("p"), ALICE)).await), "OK");
    // Only the owner changes an ACL.
    assert_eq!(
        code(h.s3.put_object_acl(req(set, ALICE)).await),
        "AccessDenied"
    );
    let bucket_acl =
        h.s3.get_bucket_acl(req(
            GetBucketAclInput {
                bucket: "default".into(),
                ..Default::default()
            },
            ALICE,
        ))
        .await
        .unwrap()
        .output;
    assert_eq!(bucket_acl.owner.unwrap().id.as_deref(), Some("0"));
}
