"""The checksum headers new AWS SDKs send (CRC32, CRC32C, SHA1, SHA256,
CRC64NVME): verified on upload, stored and returned; aws-chunked bodies
with signed chunks or with a checksum trailer."""

import hashlib
import os

import pytest

from harness import error_of
from rawhttp import Signer, checksum_b64

ALGORITHMS = ["crc32", "crc32c", "sha1", "sha256", "crc64nvme"]
PARAM = {"crc32": "CRC32", "crc32c": "CRC32C", "sha1": "SHA1", "sha256": "SHA256", "crc64nvme": "CRC64NVME"}


def test_boto3_default_put_sends_crc32_and_gets_it_back(s3, bucket):
    data = os.urandom(100_000)
    put = s3.put_object(Bucket=bucket, Key="k", Body=data)
    sent = put["ResponseMetadata"]["HTTPHeaders"]
    assert put.get("ChecksumCRC32") == checksum_b64("crc32", data), sent
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get("ChecksumCRC32") == checksum_b64("crc32", data)
    head = s3.head_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert head.get("ChecksumCRC32") == checksum_b64("crc32", data)


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_each_checksum_is_verified_stored_and_returned(s3, bucket, algorithm):
    data = os.urandom(70_000)
    value = checksum_b64(algorithm, data)
    member = "Checksum" + PARAM[algorithm]
    put = s3.put_object(Bucket=bucket, Key="k", Body=data, **{member: value})
    assert put.get(member) == value
    got = s3.get_object(Bucket=bucket, Key="k", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get(member) == value
    assert got["ETag"] == '"' + hashlib.md5(data).hexdigest() + '"', "the ETag stays the MD5"


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_a_wrong_checksum_is_bad_digest_and_stores_nothing(s3, bucket, algorithm):
    data = os.urandom(70_000)
    wrong = checksum_b64(algorithm, b"something else")
    member = "Checksum" + PARAM[algorithm]
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="k", Body=data, **{member: wrong})
    assert (code, status) == ("BadDigest", 400)
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404


def test_a_malformed_checksum_value_is_rejected(s3, bucket):
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="k", Body=b"x", ChecksumSHA256="not base64")
    assert status == 400 and code in ("InvalidRequest", "InvalidArgument", "BadDigest", "InvalidDigest"), code
    assert error_of(s3.head_object, Bucket=bucket, Key="k")[1] == 404


def test_upload_part_checksums_are_verified(s3, bucket):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="k", ChecksumAlgorithm="SHA256")["UploadId"]
    data = os.urandom(10_000)
    good = checksum_b64("sha256", data)
    part = s3.upload_part(Bucket=bucket, Key="k", UploadId=uid, PartNumber=1, Body=data, ChecksumSHA256=good)
    assert part.get("ChecksumSHA256") == good
    code, status, _ = error_of(
        s3.upload_part,
        Bucket=bucket,
        Key="k",
        UploadId=uid,
        PartNumber=2,
        Body=data,
        ChecksumSHA256=checksum_b64("sha256", b"other"),
    )
    assert (code, status) == ("BadDigest", 400)
    s3.complete_multipart_upload(
        Bucket=bucket,
        Key="k",
        UploadId=uid,
        MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"], "ChecksumSHA256": good}]},
    )
    assert s3.get_object(Bucket=bucket, Key="k")["Body"].read() == data


def test_aws_chunked_with_signed_chunks_round_trips(server, s3, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    data = os.urandom(200_000)
    headers, body = signer.chunked_signed(f"/{bucket}/streamed", data, chunk=64 * 1024)
    resp = signer.send_raw("PUT", f"/{bucket}/streamed", headers, body)
    assert resp.status_code == 200, resp.text
    assert resp.headers["etag"] == '"' + hashlib.md5(data).hexdigest() + '"'
    assert s3.get_object(Bucket=bucket, Key="streamed")["Body"].read() == data


def test_aws_chunked_with_a_tampered_chunk_is_rejected_and_stores_nothing(server, s3, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    data = os.urandom(150_000)
    headers, body = signer.chunked_signed(f"/{bucket}/tampered", data, chunk=64 * 1024, corrupt_chunk=1)
    resp = signer.send_raw("PUT", f"/{bucket}/tampered", headers, body)
    assert error_of(s3.head_object, Bucket=bucket, Key="tampered")[1] == 404
    assert resp.status_code == 403, resp.text
    assert "<Code>SignatureDoesNotMatch</Code>" in resp.text


@pytest.mark.parametrize("algorithm", ["crc32", "crc32c", "crc64nvme", "sha256"])
def test_aws_chunked_with_a_checksum_trailer_round_trips(server, s3, bucket, algorithm):
    signer = Signer(server.host, server.access_key, server.secret_key)
    data = os.urandom(150_000)
    value = checksum_b64(algorithm, data)
    headers, body = signer.chunked_trailer(f"/{bucket}/trailer", data, algorithm, value)
    resp = signer.send_raw("PUT", f"/{bucket}/trailer", headers, body)
    assert resp.status_code == 200, resp.text
    got = s3.get_object(Bucket=bucket, Key="trailer", ChecksumMode="ENABLED")
    assert got["Body"].read() == data
    assert got.get("Checksum" + PARAM[algorithm]) == value


def test_aws_chunked_with_a_wrong_trailer_is_bad_digest_and_stores_nothing(server, s3, bucket):
    signer = Signer(server.host, server.access_key, server.secret_key)
    data = os.urandom(100_000)
    headers, body = signer.chunked_trailer(f"/{bucket}/bad", data, "crc32", checksum_b64("crc32", b"nope"))
    resp = signer.send_raw("PUT", f"/{bucket}/bad", headers, body)
    assert resp.status_code == 400, resp.text
    assert "BadDigest" in resp.text
    assert error_of(s3.head_object, Bucket=bucket, Key="bad")[1] == 404
