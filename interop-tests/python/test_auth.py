"""Authentication and authorisation: signatures, unknown keys, anonymous
requests, presigned URLs, and identities made with `nitrofs admin user`
acting with their uid/gid under POSIX permissions."""

import datetime
import hashlib

import requests

from harness import error_of
from rawhttp import Signer, error_code


def test_a_wrong_secret_is_signature_does_not_match(server, s3, bucket):
    bad = server.client(secret_key="wrong-secret-wrong-secret")
    code, status, _ = error_of(bad.put_object, Bucket=bucket, Key="k", Body=b"x")
    assert (code, status) == ("SignatureDoesNotMatch", 403)
    assert error_of(bad.list_buckets)[:2] == ("SignatureDoesNotMatch", 403)
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404, "nothing was stored"


def test_an_unknown_access_key_is_invalid_access_key_id(server, bucket):
    bad = server.client(access_key="AKIDOESNOTEXIST", secret_key="whatever-secret")
    assert error_of(bad.list_objects_v2, Bucket=bucket)[:2] == ("InvalidAccessKeyId", 403)


def test_a_tampered_signed_request_is_rejected(server, s3, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    headers = signer.sign_headers("PUT", f"/{bucket}/k", payload_hash=hashlib.sha256(b"signed").hexdigest())
    resp = signer.send_raw("PUT", f"/{bucket}/k", headers, b"tampered")
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404, "nothing was stored"
    assert resp.status_code == 400, resp.text
    assert error_code(resp.content) == "XAmzContentSHA256Mismatch", resp.text
    headers = signer.sign_headers("GET", f"/{bucket}/k")
    resp = signer.send_raw("GET", f"/{bucket}/other", headers, b"")
    assert resp.status_code == 403 and error_code(resp.content) == "SignatureDoesNotMatch"
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404


def test_a_request_signed_long_ago_is_refused(server, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    old = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)
    headers = signer.sign_headers("GET", f"/{bucket}", when=old)
    resp = signer.send_raw("GET", f"/{bucket}", headers, b"")
    assert resp.status_code == 403
    assert error_code(resp.content) in ("RequestTimeTooSkewed", "AccessDenied", "SignatureDoesNotMatch")


def test_anonymous_requests_are_access_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"secret")
    for method, path in [("GET", f"/{bucket}/k"), ("GET", f"/{bucket}"), ("GET", "/"), ("PUT", f"/{bucket}/new")]:
        resp = requests.request(method, f"{server.endpoint}{path}", data=b"x" if method == "PUT" else None, timeout=30)
        assert resp.status_code == 403, (method, path, resp.status_code)
        assert error_code(resp.content) == "AccessDenied", (method, path, resp.text)
    assert error_of(s3.head_object, Bucket=bucket, Key="new")[1] == 404


def test_presigned_get_and_put_work_with_plain_http(server, s3, bucket):
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    resp = requests.put(put_url, data=b"presigned body", timeout=30)
    assert resp.status_code == 200, resp.text
    get_url = s3.generate_presigned_url("get_object", Params={"Bucket": bucket, "Key": "pre"}, ExpiresIn=300)
    resp = requests.get(get_url, timeout=30)
    assert (resp.status_code, resp.content) == (200, b"presigned body")
    flipped = get_url[:-1] + ("0" if get_url[-1] != "0" else "1")
    resp = requests.get(flipped, timeout=30)
    assert resp.status_code == 403 and error_code(resp.content) == "SignatureDoesNotMatch"
    resp = requests.get(get_url.replace("/pre?", "/other?"), timeout=30)
    assert resp.status_code == 403 and error_code(resp.content) == "SignatureDoesNotMatch"


def test_an_expired_presigned_url_is_access_denied(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    signer = Signer(server.host, server.access_key, server.secret_key)
    issued = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(minutes=10)
    url = signer.presign("GET", f"/{bucket}/k", expires=60, when=issued)
    resp = requests.get(url, timeout=30)
    assert resp.status_code == 403 and error_code(resp.content) == "AccessDenied", resp.text
    assert "expired" in resp.text.lower()
    fresh = signer.presign("GET", f"/{bucket}/k", expires=60)
    assert requests.get(fresh, timeout=30).content == b"x", "the same signer's fresh URL works"
    put = signer.presign("PUT", f"/{bucket}/late", expires=60, when=issued)
    assert requests.put(put, data=b"late", timeout=30).status_code == 403
    assert error_of(s3.head_object, Bucket=bucket, Key="late")[1] == 404


def test_presigned_url_with_an_overlong_expiry_is_rejected(server, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    url = signer.presign("GET", f"/{bucket}", expires=604801)
    resp = requests.get(url, timeout=30)
    assert resp.status_code in (400, 403), resp.text


def test_admin_users_are_listed_and_removed_keys_stop_working(server, bucket):
    access, secret = server.add_user("carol", 1500, 1500, groups=[10, 20])
    listing = server.admin("user", "list").stdout.decode()
    line = next(l for l in listing.splitlines() if l.split()[0] == "carol")
    assert "1500" in line and access in line and "10,20" in line
    assert secret not in listing, "secrets are shown only once"
    carol = server.client(access, secret)
    carol.list_buckets()
    server.admin("user", "remove", "carol")
    assert "carol" not in server.admin("user", "list").stdout.decode()
    assert error_of(carol.list_buckets)[:2] == ("InvalidAccessKeyId", 403)
    again = server.admin("user", "remove", "carol", check=False)
    assert again.returncode != 0 and b"carol" in again.stderr


def test_adding_a_user_twice_fails_and_keeps_the_first_keys(server):
    access, secret = server.add_user("dave", 1600, 1600)
    again = server.admin("user", "add", "dave", "--uid", "1", "--gid", "1", check=False)
    assert again.returncode != 0 and b"exists" in again.stderr
    server.client(access, secret).list_buckets()


def test_user_identities_survive_a_restart(server):
    access, secret = server.add_user("erin", 1700, 1700)
    assert server.stop() == 0
    server.start()
    server.client(access, secret).list_buckets()
    assert "erin" in server.admin("user", "list").stdout.decode()


def test_a_non_owner_is_denied_a_private_object_but_reads_a_public_one(server, s3, bucket):
    s3.put_object(Bucket=bucket, Key="private", Body=b"p")
    s3.put_object_acl(Bucket=bucket, Key="private", ACL="private")
    s3.put_object(Bucket=bucket, Key="shared", Body=b"s")
    s3.put_object_acl(Bucket=bucket, Key="shared", ACL="public-read")
    user = server.client(*server.add_user("frank", 1000, 1000))
    assert error_of(user.get_object, Bucket=bucket, Key="private")[:2] == ("AccessDenied", 403)
    assert user.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    assert error_of(user.put_object, Bucket=bucket, Key="mine", Body=b"x")[:2] == ("AccessDenied", 403)
    assert error_of(user.delete_object, Bucket=bucket, Key="shared")[:2] == ("AccessDenied", 403)
    assert s3.get_object(Bucket=bucket, Key="shared")["Body"].read() == b"s"
    assert error_of(user.delete_bucket, Bucket=bucket)[:2] == ("AccessDenied", 403)


def test_a_users_own_bucket_is_theirs(server, s3):
    user = server.client(*server.add_user("gina", 1200, 1200))
    user.create_bucket(Bucket="gina-bucket")
    user.put_object(Bucket="gina-bucket", Key="k", Body=b"mine")
    assert user.get_object(Bucket="gina-bucket", Key="k")["Body"].read() == b"mine"
    assert s3.get_object(Bucket="gina-bucket", Key="k")["Body"].read() == b"mine", "root reads everything"
    other = server.client(*server.add_user("hank", 1300, 1300))
    assert error_of(other.put_object, Bucket="gina-bucket", Key="x", Body=b"x")[:2] == ("AccessDenied", 403)


def test_a_public_read_bucket_is_readable_anonymously_as_nobody(server, s3, bucket):
    import boto3
    from botocore import UNSIGNED
    from botocore.config import Config

    from harness import REGION

    anon = boto3.client(
        "s3",
        endpoint_url=server.endpoint,
        region_name=REGION,
        config=Config(signature_version=UNSIGNED, s3={"addressing_style": "path"}, retries={"max_attempts": 1}),
    )
    s3.put_object(Bucket=bucket, Key="open", Body=b"public bytes")
    s3.put_object(Bucket=bucket, Key="closed", Body=b"secret")
    s3.put_object_acl(Bucket=bucket, Key="closed", ACL="private")
    assert error_of(anon.get_object, Bucket=bucket, Key="open")[:2] == ("AccessDenied", 403)
    assert error_of(anon.list_objects_v2, Bucket=bucket)[:2] == ("AccessDenied", 403)

    s3.put_bucket_acl(Bucket=bucket, ACL="public-read")
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert any(
        g["Grantee"].get("URI", "").endswith("/AllUsers") and g["Permission"] == "READ" for g in grants
    ), grants
    assert anon.get_object(Bucket=bucket, Key="open")["Body"].read() == b"public bytes"
    assert anon.head_object(Bucket=bucket, Key="open")["ContentLength"] == 12
    assert [o["Key"] for o in anon.list_objects_v2(Bucket=bucket)["Contents"]] == ["closed", "open"]
    assert [o["Key"] for o in anon.list_objects(Bucket=bucket)["Contents"]] == ["closed", "open"]
    anon.head_bucket(Bucket=bucket)
    assert error_of(anon.get_object, Bucket=bucket, Key="closed")[:2] == ("AccessDenied", 403), "0600 stays private"
    assert error_of(anon.put_object, Bucket=bucket, Key="new", Body=b"x")[:2] == ("AccessDenied", 403)
    assert error_of(anon.delete_object, Bucket=bucket, Key="open")[:2] == ("AccessDenied", 403)
    assert error_of(anon.get_bucket_acl, Bucket=bucket)[:2] == ("AccessDenied", 403)
    assert error_of(anon.list_buckets)[:2] == ("AccessDenied", 403)
    assert error_of(anon.get_object, Bucket="default", Key="open")[:2] == ("AccessDenied", 403)
    assert error_of(s3.head_object, Bucket=bucket, Key="new")[1] == 404, "nothing was stored"
    assert s3.get_object(Bucket=bucket, Key="open")["Body"].read() == b"public bytes"

    s3.put_bucket_acl(Bucket=bucket, ACL="private")
    assert error_of(anon.get_object, Bucket=bucket, Key="open")[:2] == ("AccessDenied", 403)
    assert error_of(anon.list_objects_v2, Bucket=bucket)[:2] == ("AccessDenied", 403)
    grants = s3.get_bucket_acl(Bucket=bucket)["Grants"]
    assert not any(g["Grantee"].get("URI", "").endswith("/AllUsers") for g in grants), grants
