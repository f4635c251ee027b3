"""Multipart uploads over boto3: parts, listing, completion rules and
their error codes, abort, UploadPartCopy, and md5-of-md5s-N ETags."""

import hashlib
import os

from harness import error_of

MIB = 1024 * 1024


def multipart_etag(parts):
    digests = b"".join(hashlib.md5(p).digest() for p in parts)
    return f'"{hashlib.md5(digests).hexdigest()}-{len(parts)}"'


def upload(s3, bucket, key, parts):
    """Uploads `parts` (bytes) as parts 1..n; returns (upload id, [{ETag, PartNumber}])."""
    uid = s3.create_multipart_upload(Bucket=bucket, Key=key)["UploadId"]
    done = []
    for n, data in enumerate(parts, start=1):
        etag = s3.upload_part(Bucket=bucket, Key=key, UploadId=uid, PartNumber=n, Body=data)["ETag"]
        assert etag == '"' + hashlib.md5(data).hexdigest() + '"', "a part's ETag is its MD5"
        done.append({"ETag": etag, "PartNumber": n})
    return uid, done


def test_complete_joins_parts_with_an_md5_of_md5s_etag(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(MIB + 7)]
    uid, done = upload(s3, bucket, "big.bin", parts)
    resp = s3.complete_multipart_upload(Bucket=bucket, Key="big.bin", UploadId=uid, MultipartUpload={"Parts": done})
    assert resp["ETag"] == multipart_etag(parts)
    assert resp["Key"] == "big.bin" and resp["Bucket"] == bucket
    got = s3.get_object(Bucket=bucket, Key="big.bin")
    assert got["ETag"] == multipart_etag(parts)
    assert hashlib.sha256(got["Body"].read()).digest() == hashlib.sha256(b"".join(parts)).digest()
    assert s3.head_object(Bucket=bucket, Key="big.bin")["ContentLength"] == sum(map(len, parts))
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["ETag"]) for o in listed] == [("big.bin", multipart_etag(parts))]
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == [], "the upload is gone"


def test_a_single_small_part_is_a_valid_upload(s3, bucket):
    uid, done = upload(s3, bucket, "one", [b"tiny"])
    s3.complete_multipart_upload(Bucket=bucket, Key="one", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.get_object(Bucket=bucket, Key="one")["Body"].read() == b"tiny"


def test_parts_are_invisible_until_completion(s3, bucket):
    s3.put_object(Bucket=bucket, Key="ckpt", Body=b"old")
    uid, done = upload(s3, bucket, "ckpt", [os.urandom(5 * MIB), b"tail"])
    assert s3.get_object(Bucket=bucket, Key="ckpt")["Body"].read() == b"old", "the old object stays until completion"
    uid2, _ = upload(s3, bucket, "newkey", [b"x"])
    assert error_of(s3.head_object, Bucket=bucket, Key="newkey")[1] == 404
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["ckpt"]
    s3.complete_multipart_upload(Bucket=bucket, Key="ckpt", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.head_object(Bucket=bucket, Key="ckpt")["ContentLength"] == 5 * MIB + 4
    s3.abort_multipart_upload(Bucket=bucket, Key="newkey", UploadId=uid2)


def test_list_parts_is_sorted_and_the_last_upload_of_a_part_number_wins(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in [3, 1, 2]:
        s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=bytes([n]) * 100)
    again = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=2, Body=b"replaced")["ETag"]
    parts = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid)
    assert [p["PartNumber"] for p in parts["Parts"]] == [1, 2, 3]
    assert [p["Size"] for p in parts["Parts"]] == [100, 8, 100]
    assert parts["Parts"][1]["ETag"] == again
    page = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, MaxParts=2)
    assert [p["PartNumber"] for p in page["Parts"]] == [1, 2] and page["IsTruncated"] is True
    rest = s3.list_parts(Bucket=bucket, Key="k", UploadId=uid, PartNumberMarker=page["NextPartNumberMarker"])
    assert [p["PartNumber"] for p in rest["Parts"]] == [3]


def test_list_multipart_uploads_shows_uploads_in_flight(s3, bucket):
    a = s3.create_multipart_upload(Bucket=bucket, Key="x/a")["UploadId"]
    b = s3.create_multipart_upload(Bucket=bucket, Key="x/b")["UploadId"]
    c = s3.create_multipart_upload(Bucket=bucket, Key="y")["UploadId"]
    uploads = s3.list_multipart_uploads(Bucket=bucket)["Uploads"]
    assert sorted((u["Key"], u["UploadId"]) for u in uploads) == sorted([("x/a", a), ("x/b", b), ("y", c)])
    assert len({a, b, c}) == 3
    only_x = s3.list_multipart_uploads(Bucket=bucket, Prefix="x/")["Uploads"]
    assert sorted(u["Key"] for u in only_x) == ["x/a", "x/b"]


def test_abort_discards_the_upload(s3, bucket):
    uid, _ = upload(s3, bucket, "k", [b"part"])
    assert s3.abort_multipart_upload(Bucket=bucket, Key="k", UploadId=uid)["ResponseMetadata"]["HTTPStatusCode"] == 204
    assert error_of(s3.list_parts, Bucket=bucket, Key="k", UploadId=uid)[:2] == ("NoSuchUpload", 404)
    code, status, _ = error_of(s3.upload_part, Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=b"x")
    assert (code, status) == ("NoSuchUpload", 404)
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_an_unknown_upload_id_is_no_such_upload(s3, bucket):
    code, status, _ = error_of(
        s3.complete_multipart_upload,
        Bucket=bucket,
        Key="k",
        UploadId="does-not-exist",
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]},
    )
    assert (code, status) == ("NoSuchUpload", 404)


def test_a_wrong_or_missing_part_is_invalid_part(s3, bucket):
    uid, done = upload(s3, bucket, "k", [os.urandom(5 * MIB), b"end"])
    wrong_etag = [done[0], {"PartNumber": 2, "ETag": '"' + "0" * 32 + '"'}]
    code, status, _ = error_of(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": wrong_etag}
    )
    assert (code, status) == ("InvalidPart", 400)
    missing = [done[0], {"PartNumber": 3, "ETag": done[1]["ETag"]}]
    code, status, _ = error_of(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": missing}
    )
    assert (code, status) == ("InvalidPart", 400)
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404
    s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": done})
    assert s3.head_object(Bucket=bucket, Key="k")["ContentLength"] == 5 * MIB + 3, "a failed completion keeps the upload"


def test_parts_out_of_order_are_invalid_part_order(s3, bucket):
    uid, done = upload(s3, bucket, "k", [os.urandom(5 * MIB), os.urandom(5 * MIB)])
    for parts in (list(reversed(done)), [done[0], done[0]]):
        code, status, _ = error_of(
            s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": parts}
        )
        assert (code, status) == ("InvalidPartOrder", 400), parts
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404


def test_a_small_part_before_the_last_is_entity_too_small(s3, bucket):
    uid, done = upload(s3, bucket, "k", [b"small", b"last"])
    code, status, _ = error_of(
        s3.complete_multipart_upload, Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": done}
    )
    assert (code, status) == ("EntityTooSmall", 400)
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404


def test_completing_with_a_subset_of_parts_keeps_only_those(s3, bucket):
    parts = [os.urandom(5 * MIB), os.urandom(100), os.urandom(200)]
    uid, done = upload(s3, bucket, "k", parts)
    chosen = [done[0], done[2]]
    resp = s3.complete_multipart_upload(Bucket=bucket, Key="k", UploadId=uid, MultipartUpload={"Parts": chosen})
    assert resp["ETag"] == multipart_etag([parts[0], parts[2]])
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == parts[0] + parts[2]


def test_upload_part_copy_takes_a_byte_range_of_an_object(s3, bucket):
    source = os.urandom(6 * MIB)
    s3.put_object(Bucket=bucket, Key="src", Body=source)
    uid = s3.create_multipart_upload(Bucket=bucket, Key="dst")["UploadId"]
    first = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes=0-{5 * MIB - 1}",
    )["CopyPartResult"]["ETag"]
    assert first == '"' + hashlib.md5(source[: 5 * MIB]).hexdigest() + '"'
    second = s3.upload_part_copy(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        PartNumber=2,
        CopySource=f"{bucket}/src",
        CopySourceRange="bytes=100-199",
    )["CopyPartResult"]["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="dst",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": first}, {"PartNumber": 2, "ETag": second}]},
    )
    assert s3.get_object(Bucket=bucket, Key="dst")["Body"].read() == source[: 5 * MIB] + source[100:200]
    uid2 = s3.create_multipart_upload(Bucket=bucket, Key="bad")["UploadId"]
    code, status, _ = error_of(
        s3.upload_part_copy,
        Bucket=bucket,
        Key="bad",
        UploadId=uid2,
        PartNumber=1,
        CopySource={"Bucket": bucket, "Key": "src"},
        CopySourceRange=f"bytes={6 * MIB}-{6 * MIB + 10}",
    )
    assert (code, status) == ("InvalidRange", 416) or (code, status) == ("InvalidArgument", 400)


def test_part_numbers_outside_1_to_10000_are_rejected(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k")["UploadId"]
    for n in (0, 10001):
        code, status, _ = error_of(s3.upload_part, Bucket=bucket, Key="k", UploadId=uid, PartNumber=n, Body=b"x")
        assert (code, status) == ("InvalidArgument", 400), n


def test_metadata_given_at_create_is_on_the_completed_object(s3, bucket):
    uid = s3.create_multipart_upload(
        Bucket=bucket, Key="m", ContentType="application/x-ckpt", Metadata={"step": "42"}
    )["UploadId"]
    etag = s3.upload_part(Bucket=bucket, Key="m", UploadId=uid, PartNumber=1, Body=b"data")["ETag"]
    s3.complete_multipart_upload(
        Bucket=bucket, Key="m", UploadId=uid, MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]}
    )
    head = s3.head_object(Bucket=bucket, Key="m")
    assert (head["ContentType"], head["Metadata"]) == ("application/x-ckpt", {"step": "42"})
