//! Public buckets: unsigned requests may read a bucket made public with
//! the canned ACL `public-read`, as `nobody`, and nothing else.

use super::http::{exchange, start};
use super::objects::put;
use super::*;
use crate::public::{anonymous, AnonymousGrant};
use s3s::dto::*;
use s3s::S3;

/// An unsigned request, after the access check decided it (with the grant
/// it left in the extensions when it allowed it).
fn anon<T>(h: &Harness, input: T, op: &str, bucket: &str) -> S3Request<T> {
    let mut r = req(input, ROOT);
    r.credentials = None;
    if let Ok(cred) = anonymous(&h.fs, op, Some(bucket)) {
        r.extensions.insert(AnonymousGrant(cred));
    }
    r
}

fn get_in(bucket: &str, key: &str) -> GetObjectInput {
    GetObjectInput {
        bucket: bucket.into(),
        key: key.into(),
        ..Default::default()
    }
}

fn bucket_acl(acl: &'static str) -> PutBucketAclInput {
    PutBucketAclInput {
        bucket: "pub".into(),
        acl: Some(BucketCannedACL::from_static(acl)),
        ..Default::default()
    }
}

async fn all_users_read(h: &Harness) -> bool {
    let acl =
        h.s3.get_bucket_acl(req(
            GetBucketAclInput {
                bucket: "pub".into(),
                ..Default::default()
            },
            ALICE,
        ))
        .await
        .unwrap()
        .output;
    acl.grants.unwrap().iter().any(|g| {
        g.grantee.as_ref().and_then(|x| x.uri.as_deref())
            == Some("http://acs.amazonaws.com/groups/global/AllUsers")
            && g.permission.as_ref().map(|p| p.as_str()) == Some("READ")
    })
}

#[tokio::test]
async fn anonymous_reads_need_a_public_bucket_and_posix_read() {
    let h = Harness::new();
    let mk = CreateBucketInput {
        bucket: "pub".into(),
        acl: Some(BucketCannedACL::from_static(BucketCannedACL::PRIVATE)),
        ..Default::default()
    };
    h.s3.create_bucket(req(mk, ALICE)).await.unwrap();
    h.s3.put_object(req(put("pub", "open", b"hello"), ALICE))
        .await
        .unwrap();
    let mut secret = put("pub", "secret", b"s");
    secret.acl = Some(ObjectCannedACL::from_static(ObjectCannedACL::PRIVATE));
    h.s3.put_object(req(secret, ALICE)).await.unwrap();

    // Not public: every anonymous request is denied.
    let r = anon(&h, get_in("pub", "open"), "GetObject", "pub");
    assert_eq!(code(h.s3.get_object(r).await), "AccessDenied");
    assert!(!all_users_read(&h).await);

    // Only the owner makes it public.
    let public = bucket_acl(BucketCannedACL::PUBLIC_READ);
    assert_eq!(
        code(h.s3.put_bucket_acl(req(public.clone(), BOB)).await),
        "AccessDenied"
    );
    h.s3.put_bucket_acl(req(public, ALICE)).await.unwrap();
    assert!(all_users_read(&h).await);

    let r = anon(&h, get_in("pub", "open"), "GetObject", "pub");
    let out = h.s3.get_object(r).await.unwrap().output;
    assert_eq!(read_all(out.body).await, b"hello");
    let list = ListObjectsV2Input {
        bucket: "pub".into(),
        ..Default::default()
    };
    let r = anon(&h, list.clone(), "ListObjectsV2", "pub");
    let keys: Vec<String> =
        h.s3.list_objects_v2(r)
            .await
            .unwrap()
            .output
            .contents
            .unwrap_or_default()
            .into_iter()
            .filter_map(|o| o.key)
            .collect();
    assert_eq!(keys, ["open", "secret"]);
    let hb = HeadBucketInput {
        bucket: "pub".into(),
        ..Default::default()
    };
    let r = anon(&h, hb, "HeadBucket", "pub");
    assert_eq!(code(h.s3.head_bucket(r).await), "OK");
    // POSIX still decides: a 0600 object stays private (nobody is uid 65534).
    let r = anon(&h, get_in("pub", "secret"), "GetObject", "pub");
    assert_eq!(code(h.s3.get_object(r).await), "AccessDenied");
    // Writes, ACL reads and ListBuckets are never anonymous.
    let r = anon(&h, put("pub", "new", b"x"), "PutObject", "pub");
    assert_eq!(code(h.s3.put_object(r).await), "AccessDenied");
    assert!(anonymous(&h.fs, "GetBucketAcl", Some("pub")).is_err());
    assert!(anonymous(&h.fs, "ListBuckets", None).is_err());
    assert!(anonymous(&h.fs, "GetObject", Some("nosuch")).is_err());
    // The default bucket is not public.
    assert!(anonymous(&h.fs, "GetObject", Some("default")).is_err());

    // `private` makes it private again.
    h.s3.put_bucket_acl(req(bucket_acl(BucketCannedACL::PRIVATE), ALICE))
        .await
        .unwrap();
    assert!(!all_users_read(&h).await);
    let r = anon(&h, get_in("pub", "open"), "GetObject", "pub");
    assert_eq!(code(h.s3.get_object(r).await), "AccessDenied");
}

#[tokio::test]
async fn create_bucket_with_public_read_is_public_over_http() {
    let h = Harness::new();
    let mk = CreateBucketInput {
        bucket: "pub".into(),
        acl: Some(BucketCannedACL::from_static(BucketCannedACL::PUBLIC_READ)),
        ..Default::default()
    };
    h.s3.create_bucket(req(mk, ALICE)).await.unwrap();
    h.s3.put_object(req(put("pub", "k", b"public bytes"), ALICE))
        .await
        .unwrap();
    h.s3.put_object(req(put("default", "k", b"private"), ROOT))
        .await
        .unwrap();
    let addr = start(&h, None).await;
    let get =
        |path: &str| format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
    let r = exchange(addr, &get("/pub/k")).await;
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
    assert!(r.ends_with("public bytes"), "{r}");
    let r = exchange(addr, &get("/pub?list-type=2")).await;
    assert!(r.contains("<Key>k</Key>"), "{r}");
    for denied in [
        get("/default/k"),
        get("/"),
        get("/pub?acl"),
        "PUT /pub/new HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx"
            .to_string(),
    ] {
        let r = exchange(addr, &denied).await;
        assert!(r.starts_with("HTTP/1.1 403"), "{denied}: {r}");
        assert!(r.contains("<Code>AccessDenied</Code>"), "{denied}: {r}");
    }
}
