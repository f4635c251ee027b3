"""Objects over boto3: PUT/GET/HEAD/DELETE/COPY, ranges, conditions,
metadata, ETags and Content-MD5, with the exact error codes."""

import base64
import datetime
import hashlib
import os

from harness import error_of


def md5_etag(data):
    return '"' + hashlib.md5(data).hexdigest() + '"'


def test_put_then_get_round_trips_bytes_and_etag_is_the_md5(s3, bucket):
    data = os.urandom(300_000)
    put = s3.put_object(Bucket=bucket, Key="blob.bin", Body=data)
    assert put["ETag"] == md5_etag(data)
    got = s3.get_object(Bucket=bucket, Key="blob.bin")
    assert got["Body"].read() == data
    assert got["ETag"] == md5_etag(data)
    assert got["ContentLength"] == len(data)
    assert isinstance(got["LastModified"], datetime.datetime)
    assert got["ResponseMetadata"]["HTTPHeaders"].get("accept-ranges") == "bytes"


def test_an_empty_object_has_the_md5_of_nothing(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="empty", Body=b"")
    assert put["ETag"] == md5_etag(b"")
    got = s3.get_object(Bucket=bucket, Key="empty")
    assert got["Body"].read() == b"" and got["ContentLength"] == 0


def test_overwriting_replaces_content_and_etag(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"first version")
    put = s3.put_object(Bucket=bucket, Key="k", Body=b"second")
    assert put["ETag"] == md5_etag(b"second")
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == b"second"
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 6


def test_keys_with_unicode_spaces_and_symbols_round_trip(s3, bucket):
    keys = ["with space.txt", "ünïcødé/文件.txt", "sym+bols=&@;,$!'()*.bin", "percent%20literal", "tilde~"]
    for i, key in enumerate(keys):
        s3.put_object(Bucket=bucket, Key=key, Body=str(i).encode())
    for i, key in enumerate(keys):
        assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == str(i).encode(), key
    listed = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(listed) == sorted(keys)


def test_missing_key_is_no_such_key_and_head_is_404(s3, bucket):
    code, status, resp = error_of(s3.get_object, Bucket=bucket, Key="absent")
    assert (code, status) == ("NoSuchKey", 404)
    assert resp["Error"].get("Key") in (None, "absent")
    code, status, _ = error_of(s3.head_object, Bucket=bucket, Key="absent")
    assert status == 404


def test_a_directory_is_not_an_object_without_its_slash(s3, bucket):
    s3.put_object(Bucket=bucket, Key="dir/file", Body=b"x")
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="dir")
    assert (code, status) == ("NoSuchKey", 404)
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="dir/file/below")
    assert (code, status) == ("NoSuchKey", 404)


def test_metadata_and_standard_headers_are_stored_and_returned(s3, bucket):
    expires = datetime.datetime(2030, 1, 2, 3, 4, 5, tzinfo=datetime.timezone.utc)
    s3.put_object(
        Bucket=bucket,
        Key="meta",
        Body=b"{}",
        ContentType="application/json",
        ContentEncoding="identity",
        ContentDisposition='attachment; filename="m.json"',
        ContentLanguage="en",
        CacheControl="max-age=60",
        Expires=expires,
        Metadata={"model": "llama", "step": "1200", "mixed-case": "Value With Spaces"},
    )
    for resp in (s3.head_object(Bucket=bucket, Key="meta"), s3.get_object(Bucket=bucket, Key="meta")):
        assert resp["ContentType"] == "application/json"
        assert resp["ContentEncoding"] == "identity"
        assert resp["ContentDisposition"] == 'attachment; filename="m.json"'
        assert resp["ContentLanguage"] == "en"
        assert resp["CacheControl"] == "max-age=60"
        assert resp["Expires"] == expires
        assert resp["Metadata"] == {"model": "llama", "step": "1200", "mixed-case": "Value With Spaces"}


def test_default_content_type_is_binary(s3, bucket):
    s3.put_object(Bucket=bucket, Key="plain", Body=b"x")
    assert s3.head_object(Bucket=bucket, Key="plain")["ContentType"] in (
        "binary/octet-stream",
        "application/octet-stream",
    )


def test_ranges_return_206_with_content_range(s3, bucket):
    data = bytes(range(256)) * 40
    s3.put_object(Bucket=bucket, Key="r", Body=data)
    for header, want, content_range in [
        ("bytes=0-9", data[:10], f"bytes 0-9/{len(data)}"),
        ("bytes=100-", data[100:], f"bytes 100-{len(data) - 1}/{len(data)}"),
        ("bytes=-7", data[-7:], f"bytes {len(data) - 7}-{len(data) - 1}/{len(data)}"),
        ("bytes=5000-999999", data[5000:], f"bytes 5000-{len(data) - 1}/{len(data)}"),
    ]:
        got = s3.get_object(Bucket=bucket, Key="r", Range=header)
        assert got["ResponseMetadata"]["HTTPStatusCode"] == 206, header
        assert got["Body"].read() == want, header
        assert got["ContentRange"] == content_range, header
        assert got["ContentLength"] == len(want), header


def test_a_range_past_the_end_is_invalid_range(s3, bucket):
    s3.put_object(Bucket=bucket, Key="r", Body=b"0123456789")
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="r", Range="bytes=10-20")
    assert (code, status) == ("InvalidRange", 416)
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="r", Range="bytes=100-")
    assert (code, status) == ("InvalidRange", 416)


def test_conditional_get_answers_412_and_304(s3, bucket):
    put = s3.put_object(Bucket=bucket, Key="c", Body=b"content")
    etag = put["ETag"]
    past = datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)
    future = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)

    assert s3.get_object(Bucket=bucket, Key="c", IfMatch=etag)["Body"].read() == b"content"
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="c", IfMatch='"0123"')
    assert (code, status) == ("PreconditionFailed", 412)
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="c", IfNoneMatch=etag)
    assert status == 304 and code in ("304", "NotModified")
    assert s3.get_object(Bucket=bucket, Key="c", IfNoneMatch='"other"')["Body"].read() == b"content"
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="c", IfModifiedSince=future)
    assert status == 304
    assert s3.get_object(Bucket=bucket, Key="c", IfModifiedSince=past)["Body"].read() == b"content"
    code, status, _ = error_of(s3.get_object, Bucket=bucket, Key="c", IfUnmodifiedSince=past)
    assert (code, status) == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="c", IfUnmodifiedSince=future)["Body"].read() == b"content"
    code, status, _ = error_of(s3.head_object, Bucket=bucket, Key="c", IfMatch='"0123"')
    assert status == 412


def test_response_overrides_replace_the_returned_headers(s3, bucket):
    s3.put_object(Bucket=bucket, Key="o", Body=b"x", ContentType="text/plain")
    got = s3.get_object(
        Bucket=bucket,
        Key="o",
        ResponseContentType="application/x-custom",
        ResponseContentDisposition="inline",
        ResponseCacheControl="no-cache",
        ResponseContentEncoding="gzip",
        ResponseContentLanguage="fr",
        ResponseExpires=datetime.datetime(2031, 1, 1, tzinfo=datetime.timezone.utc),
    )
    assert got["ContentType"] == "application/x-custom"
    assert got["ContentDisposition"] == "inline"
    assert got["CacheControl"] == "no-cache"
    assert got["ContentEncoding"] == "gzip"
    assert got["ContentLanguage"] == "fr"
    assert got["Expires"].year == 2031
    assert s3.head_object(Bucket=bucket, Key="o")["ContentType"] == "text/plain", "nothing is stored"


def test_content_md5_is_verified(s3, bucket):
    data = b"checked payload"
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=bucket, Key="md5", Body=data, ContentMD5=good)
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == data
    bad = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="md5", Body=b"replacement", ContentMD5=bad)
    assert (code, status) == ("BadDigest", 400)
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="fresh", Body=b"x", ContentMD5="not-base64!")
    assert (code, status) == ("InvalidDigest", 400)
    assert s3.get_object(Bucket=bucket, Key="md5")["Body"].read() == data, "the old object stays"
    assert error_of(s3.head_object, Bucket=bucket, Key="fresh")[1] == 404


def test_delete_object_is_204_and_idempotent(s3, bucket):
    s3.put_object(Bucket=bucket, Key="gone", Body=b"x")
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(s3.get_object, Bucket=bucket, Key="gone")[0] == "NoSuchKey"
    assert s3.delete_object(Bucket=bucket, Key="gone")["ResponseMetadata"]["HTTPStatusCode"] == 204


def test_deleting_the_last_object_of_a_directory_hides_the_prefix(s3, bucket):
    s3.put_object(Bucket=bucket, Key="a/b/c", Body=b"x")
    s3.delete_object(Bucket=bucket, Key="a/b/c")
    listed = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert listed.get("CommonPrefixes", []) == [] and listed.get("Contents", []) == []


def test_delete_objects_reports_each_key_and_quiet_reports_none(s3, bucket):
    for k in ["a", "b", "c", "d"]:
        s3.put_object(Bucket=bucket, Key=k, Body=k.encode())
    resp = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "a"}, {"Key": "b"}, {"Key": "missing"}]})
    assert sorted(d["Key"] for d in resp["Deleted"]) == ["a", "b", "missing"]
    assert resp.get("Errors", []) == []
    quiet = s3.delete_objects(Bucket=bucket, Delete={"Objects": [{"Key": "c"}], "Quiet": True})
    assert quiet.get("Deleted", []) == [] and quiet.get("Errors", []) == []
    left = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert left == ["d"]


def test_copy_object_copies_or_replaces_metadata(s3, bucket):
    s3.put_object(Bucket=bucket, Key="src", Body=b"payload", ContentType="text/x-src", Metadata={"k": "v"})
    copied = s3.copy_object(Bucket=bucket, Key="copy", CopySource={"Bucket": bucket, "Key": "src"})
    assert copied["CopyObjectResult"]["ETag"] == md5_etag(b"payload")
    head = s3.head_object(Bucket=bucket, Key="copy")
    assert (head["ContentType"], head["Metadata"]) == ("text/x-src", {"k": "v"})

    s3.copy_object(
        Bucket=bucket,
        Key="replaced",
        CopySource={"Bucket": bucket, "Key": "src"},
        MetadataDirective="REPLACE",
        ContentType="text/x-new",
        Metadata={"n": "w"},
    )
    head = s3.head_object(Bucket=bucket, Key="replaced")
    assert (head["ContentType"], head["Metadata"]) == ("text/x-new", {"n": "w"})
    assert s3.get_object(Bucket=bucket, Key="replaced")["Body"].read() == b"payload"


def test_copy_object_across_buckets_and_onto_itself_with_replace(s3, bucket):
    other = bucket + "-2"
    s3.create_bucket(Bucket=other)
    s3.put_object(Bucket=bucket, Key="src", Body=b"across", Metadata={"a": "1"})
    s3.copy_object(Bucket=other, Key="dst/x", CopySource=f"{bucket}/src")
    assert s3.get_object(Bucket=other, Key="dst/x")["Body"].read() == b"across"
    s3.copy_object(
        Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"}, MetadataDirective="REPLACE", Metadata={"a": "2"}
    )
    assert s3.head_object(Bucket=bucket, Key="src")["Metadata"] == {"a": "2"}
    code, status, _ = error_of(s3.copy_object, Bucket=bucket, Key="src", CopySource={"Bucket": bucket, "Key": "src"})
    assert (code, status) == ("InvalidRequest", 400), "copying onto itself without REPLACE changes nothing"


def test_conditional_copy_headers_are_checked(s3, bucket):
    etag = s3.put_object(Bucket=bucket, Key="src", Body=b"v1")["ETag"]
    src = {"Bucket": bucket, "Key": "src"}
    s3.copy_object(Bucket=bucket, Key="ok", CopySource=src, CopySourceIfMatch=etag)
    for kwargs in [
        {"CopySourceIfMatch": '"nope"'},
        {"CopySourceIfNoneMatch": etag},
        {"CopySourceIfUnmodifiedSince": datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc)},
        {"CopySourceIfModifiedSince": datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)},
    ]:
        code, status, _ = error_of(s3.copy_object, Bucket=bucket, Key="no", CopySource=src, **kwargs)
        assert (code, status) == ("PreconditionFailed", 412), kwargs
    assert error_of(s3.head_object, Bucket=bucket, Key="no")[1] == 404


def test_copy_from_a_missing_source_is_no_such_key(s3, bucket):
    code, status, _ = error_of(s3.copy_object, Bucket=bucket, Key="dst", CopySource={"Bucket": bucket, "Key": "nope"})
    assert (code, status) == ("NoSuchKey", 404)


def test_object_acl_names_the_owner(s3, bucket):
    s3.put_object(Bucket=bucket, Key="k", Body=b"x")
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert acl["Owner"]["ID"]
    assert any(g["Permission"] == "FULL_CONTROL" for g in acl["Grants"])
    s3.put_object_acl(Bucket=bucket, Key="k", ACL="private")
    acl = s3.get_object_acl(Bucket=bucket, Key="k")
    assert [g["Permission"] for g in acl["Grants"]] == ["FULL_CONTROL"], "private is owner-only"
