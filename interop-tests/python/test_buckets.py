"""Buckets over boto3: a bucket is a volume, with S3's names, codes and rules."""

import uuid

import pytest

from harness import REGION, Server, error_of


def fresh_name():
    return f"b-{uuid.uuid4().hex[:12]}"


def test_list_buckets_shows_the_default_volume_and_created_buckets(s3):
    name = fresh_name()
    s3.create_bucket(Bucket=name)
    resp = s3.list_buckets()
    names = [b["Name"] for b in resp["Buckets"]]
    assert "default" in names and name in names
    assert names == sorted(names), "ListBuckets is sorted by name"
    assert all("CreationDate" in b for b in resp["Buckets"])
    assert resp["Owner"]["ID"], "the owner is named"


def test_a_bucket_created_over_s3_is_a_volume(server, s3):
    name = fresh_name()
    s3.create_bucket(Bucket=name)
    out = server.admin("volume", "list").stdout.decode().split()
    assert name in out


def test_a_volume_created_by_admin_is_a_bucket(server, s3):
    name = fresh_name()
    server.admin("volume", "create", name)
    assert name in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    s3.head_bucket(Bucket=name)


def test_creating_an_owned_bucket_again_is_bucket_already_owned_by_you(s3, bucket):
    code, status, _ = error_of(s3.create_bucket, Bucket=bucket)
    assert (code, status) == ("BucketAlreadyOwnedByYou", 409)
    code, status, _ = error_of(s3.create_bucket, Bucket="default")
    assert (code, status) == ("BucketAlreadyOwnedByYou", 409)


def test_creating_another_identitys_bucket_is_bucket_already_exists(server):
    alice = server.client(*server.add_user("alice", 1000, 1000))
    bob = server.client(*server.add_user("bob", 1001, 1001))
    name = fresh_name()
    alice.create_bucket(Bucket=name)
    code, status, _ = error_of(bob.create_bucket, Bucket=name)
    assert (code, status) == ("BucketAlreadyExists", 409)


@pytest.mark.parametrize(
    "name",
    ["ab", "a" * 64, "Uppercase", "under_score", "-leading", "trailing-", "a..b", "192.168.1.1", ".dot"],
)
def test_bad_bucket_names_are_invalid_bucket_name(s3, name):
    code, status, _ = error_of(s3.create_bucket, Bucket=name)
    assert (code, status) == ("InvalidBucketName", 400), name
    names = [b["Name"] for b in s3.list_buckets()["Buckets"]]
    assert name not in names


@pytest.mark.parametrize("name", ["abc", "a" * 63, "with-dash", "with.dot", "0numeric9"])
def test_valid_bucket_names_are_accepted(s3, name):
    s3.create_bucket(Bucket=name)
    s3.head_bucket(Bucket=name)


def test_head_bucket_answers_200_or_404(s3, bucket):
    assert s3.head_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 200
    code, status, _ = error_of(s3.head_bucket, Bucket=fresh_name())
    assert status == 404 and code in ("404", "NoSuchBucket")


def test_delete_bucket_refuses_a_non_empty_bucket_and_deletes_an_empty_one(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    code, status, _ = error_of(s3.delete_bucket, Bucket=bucket)
    assert (code, status) == ("BucketNotEmpty", 409)
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"x", "nothing was deleted"
    s3.delete_object(Bucket=bucket, Key="k")
    assert s3.delete_bucket(Bucket=bucket)["ResponseMetadata"]["HTTPStatusCode"] == 204
    code, status, _ = error_of(s3.head_bucket, Bucket=bucket)
    assert status == 404


def test_a_bucket_holding_only_an_empty_directory_is_not_empty(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/", Body=b"")
    code, _, _ = error_of(s3.delete_bucket, Bucket=bucket)
    assert code == "BucketNotEmpty"


def test_deleting_or_using_a_missing_bucket_is_no_such_bucket(s3):
    name = fresh_name()
    for call, kwargs in [
        (s3.delete_bucket, {}),
        (s3.list_objects_v2, {}),
        (s3.list_objects, {}),
        (s3.get_object, {"Key": "k"}),
        (s3.put_object, {"Key": "k", "Body": b"x"}),
        (s3.get_bucket_location, {}),
        (s3.create_multipart_upload, {"Key": "k"}),
        (s3.list_multipart_uploads, {}),
    ]:
        code, status, _ = error_of(call, Bucket=name, **kwargs)
        assert (code, status) == ("NoSuchBucket", 404), call.__name__


def test_get_bucket_location_of_us_east_1_is_empty(s3, bucket):
    assert s3.get_bucket_location(Bucket=bucket).get("LocationConstraint") in (None, "")
    assert REGION == "us-east-1"


def test_a_configured_region_is_reported_and_signed_for(tmp_path):
    server = Server(tmp_path, extra_args=["--s3-region", "eu-west-3"]).start()
    try:
        from botocore.config import Config
        import boto3

        client = boto3.client(
            "s3",
            endpoint_url=server.endpoint,
            aws_access_key_id=server.access_key,
            aws_secret_access_key=server.secret_key,
            region_name="eu-west-3",
            config=Config(signature_version="s3v4", s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
        )
        client.create_bucket(Bucket="regional", CreateBucketConfiguration={"LocationConstraint": "eu-west-3"})
        assert client.get_bucket_location(Bucket="regional")["LocationConstraint"] == "eu-west-3"
        wrong = server.client()  # signs for us-east-1
        code, status, _ = error_of(wrong.list_objects_v2, Bucket="regional")
        assert status in (400, 403) and code in (
            "AuthorizationHeaderMalformed",
            "SignatureDoesNotMatch",
        ), code
    finally:
        assert server.stop() == 0


def test_bucket_acl_reports_the_owner_with_full_control(s3, bucket):
    acl = s3.get_bucket_acl(Bucket=bucket)
    assert acl["Owner"]["ID"]
    owner_grants = [g for g in acl["Grants"] if g["Grantee"].get("ID") == acl["Owner"]["ID"]]
    assert [g["Permission"] for g in owner_grants] == ["FULL_CONTROL"]


def test_virtual_hosted_style_requests_name_the_bucket_in_the_host(tmp_path):
    from rawhttp import Signer

    server = Server(tmp_path, extra_args=["--s3-domain", "s3.nitro.test"]).start()
    try:
        s3 = server.client()
        s3.create_bucket(Bucket="vhost")
        s3.put_object(Bucket="vhost", Key="dir/obj", Body=b"virtual")
        signer = Signer(f"vhost.s3.nitro.test:{server.s3_port}", server.access_key, server.secret_key)
        signer.connect_to = ("127.0.0.1", server.s3_port)
        resp = signer.request("GET", "/dir/obj")
        assert (resp.status_code, resp.content) == (200, b"virtual"), resp.text
        listing = signer.request("GET", "/", query={"list-type": "2"})
        assert listing.status_code == 200 and b"<Key>dir/obj</Key>" in listing.content, listing.text
        assert s3.get_object(Bucket="vhost", Key="dir/obj")["Body"].read() == b"virtual", "path style still works"
    finally:
        assert server.stop() == 0


def test_bucket_acls_set_the_bucket_directory_mode(server, s3, bucket):
    user = server.client(*server.add_user("ivy", 1400, 1400))
    assert error_of(user.put_object, Bucket=bucket, Key="x", Body=b"x")[:2] == ("AccessDenied", 403)
    s3.put_bucket_acl(Bucket=bucket, ACL="public-read-write")
    user.put_object(Bucket=bucket, Key="x", Body=b"x")
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    everyone = {g["Permission"] for g in grants if g["Grantee"].get("URI", "").endswith("/AllUsers")}
    assert {"READ", "WRITE"} <= everyone
    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert error_of(user.list_objects_v2, Bucket=bucket)[:2] == ("AccessDenied", 403)
    assert error_of(user.put_bucket_acl, Bucket=bucket, ACL="public-read")[:2] == ("AccessDenied", 403)
