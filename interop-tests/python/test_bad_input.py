"""Bad input: malformed XML, keys that try to leave the bucket, a
Content-Length that lies, oversized headers. Each gets the right S3 error
(or the connection is closed) and the store is unchanged; the server keeps
serving."""

import base64
import hashlib

import pytest

from harness import error_of
from rawhttp import EMPTY_SHA256, Signer, error_code, raw_exchange, status_of


def snapshot(s3):
    """Every bucket with every key and ETag."""
    state = {}
    for b in s3.list_buckets()["Buckets"]:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=b["Name"])
        state[b["Name"]] = sorted((o["Key"], o["ETag"]) for p in pages for o in p.get("Contents", []))
    return state


@pytest.fixture
def populated(s3, bucket):
    s3.put_object(Bucket=bucket, Key="keep/me", Body=b"precious")
    s3.put_object(Bucket="default", Key="outside", Body=b"other bucket")
    return snapshot(s3)


@pytest.fixture
def signer(server):
    return Signer(server.host, server.access_key, server.secret_key)


@pytest.mark.parametrize(
    "body",
    [
        b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>",
        b"not xml at all",
        b"<CompleteMultipartUpload><Part><PartNumber>one</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>",
        b"<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><CompleteMultipartUpload>&a;</CompleteMultipartUpload>",
        b"",
    ],
)
def test_malformed_complete_multipart_xml_is_malformed_xml(s3, bucket, signer, populated, body):
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp")["UploadId"]
    s3.upload_part(Bucket=bucket, Key="mp", UploadId=uid, PartNumber=1, Body=b"part")
    resp = signer.request("POST", f"/{bucket}/mp", query={"uploadId": uid}, body=body)
    assert resp.status_code == 400, resp.text
    assert error_code(resp.content) in ("MalformedXML", "InvalidRequest", "InvalidPart"), resp.text
    assert snapshot(s3) == populated
    parts = s3.list_parts(Bucket=bucket, Key="mp", UploadId=uid)["Parts"]
    assert [p["PartNumber"] for p in parts] == [1], "the upload is still there"


@pytest.mark.parametrize(
    "body",
    [
        b"<Delete><Object><Key>keep/me</Key></Object>",
        b"<Delete><Object><Key>keep/me</Key></Object></Delete>trailing",
        b"{}",
        b"<Delete></Delete>",
    ],
)
def test_malformed_delete_objects_xml_deletes_nothing(s3, bucket, signer, populated, body):
    md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
    resp = signer.request("POST", f"/{bucket}", query={"delete": ""}, headers={"content-md5": md5}, body=body)
    assert snapshot(s3) == populated
    assert resp.status_code == 400, resp.text
    assert error_code(resp.content) in ("MalformedXML", "InvalidRequest"), resp.text


def test_delete_objects_with_more_than_1000_keys_is_rejected(s3, bucket, populated):
    objects = [{"Key": f"k{i}"} for i in range(1001)] + [{"Key": "keep/me"}]
    code, status, _ = error_of(s3.delete_objects, Bucket=bucket, Delete={"Objects": objects})
    assert status == 400 and code in ("MalformedXML", "InvalidRequest", "InvalidArgument")
    assert snapshot(s3) == populated


@pytest.mark.parametrize(
    "path",
    [
        "/{b}/../default/outside",
        "/{b}/%2E%2E/default/outside",
        "/{b}/keep/../../default/outside",
        "/{b}/keep/%2e%2e/%2e%2e/default/outside",
        "/{b}/./keep/me",
        "/{b}/keep//me",
        "/{b}/..",
    ],
)
def test_keys_with_dot_segments_never_leave_the_bucket(s3, bucket, signer, populated, path):
    path = path.format(b=bucket)
    put = signer.request("PUT", path, body=b"evil")
    assert put.status_code in (400, 403), (path, put.status_code, put.text)
    assert error_code(put.content) in ("InvalidArgument", "InvalidRequest", "KeyTooLongError", "AccessDenied"), put.text
    get = signer.request("GET", path)
    assert get.status_code in (400, 403, 404), (path, get.status_code)
    assert b"other bucket" not in get.content and b"precious" not in get.content
    delete = signer.request("DELETE", path)
    assert delete.status_code in (204, 400, 403, 404), (path, delete.status_code)
    assert snapshot(s3) == populated


@pytest.mark.parametrize("key", ["../escape", "a/../../escape", "a/./b", "a//b", "./x", ".."])
def test_boto3_keys_with_dot_segments_are_rejected(s3, bucket, populated, key):
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key=key, Body=b"evil")
    assert status == 400 and code in ("InvalidArgument", "InvalidRequest"), (key, code)
    assert snapshot(s3) == populated


def test_a_key_longer_than_1024_bytes_is_keytoolong(s3, bucket, populated):
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="k" * 1025, Body=b"x")
    assert (code, status) == ("KeyTooLongError", 400)
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="d/" + "n" * 300, Body=b"x")
    assert status == 400 and code in ("KeyTooLongError", "InvalidArgument"), code
    assert snapshot(s3) == populated


def test_a_content_length_longer_than_the_body_stores_nothing(server, s3, bucket, signer, populated):
    body = b"x" * 50
    headers = signer.sign_headers("PUT", f"/{bucket}/short", payload_hash="UNSIGNED-PAYLOAD")
    head = f"PUT /{bucket}/short HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "content-length: 100\r\nconnection: close\r\n\r\n"
    raw = raw_exchange(server.s3_port, head.encode() + body, shutdown_write=True)
    status = status_of(raw)
    assert status is None or 400 <= status < 600, raw[:300]
    assert error_of(s3.head_object, Bucket=bucket, Key="short")[1] == 404
    assert snapshot(s3) == populated


def test_a_content_length_shorter_than_the_signed_body_is_rejected(server, s3, bucket, signer, populated):
    body = b"0123456789abcdefghij"
    headers = signer.sign_headers("PUT", f"/{bucket}/lie", payload_hash=hashlib.sha256(body).hexdigest())
    head = f"PUT /{bucket}/lie HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "content-length: 10\r\n\r\n"
    raw = raw_exchange(server.s3_port, head.encode() + body, shutdown_write=True)
    assert error_of(s3.head_object, Bucket=bucket, Key="lie")[1] == 404
    assert snapshot(s3) == populated
    assert status_of(raw) == 400, raw[:400]
    assert b"<Code>XAmzContentSHA256Mismatch</Code>" in raw, raw[:600]


def test_a_declared_md5_for_other_bytes_is_bad_digest(s3, bucket, signer, populated):
    md5 = base64.b64encode(hashlib.md5(b"expected").digest()).decode()
    resp = signer.request("PUT", f"/{bucket}/keep/me", headers={"content-md5": md5}, body=b"received")
    assert resp.status_code == 400 and error_code(resp.content) == "BadDigest", resp.text
    assert snapshot(s3) == populated


def test_oversized_headers_are_refused_and_the_server_keeps_serving(server, s3, bucket, signer, populated):
    headers = signer.sign_headers("PUT", f"/{bucket}/huge", payload_hash=EMPTY_SHA256)
    head = f"PUT /{bucket}/huge HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += "x-amz-meta-big: " + "v" * (1 << 20) + "\r\ncontent-length: 0\r\n\r\n"
    raw = raw_exchange(server.s3_port, head.encode())
    status = status_of(raw)
    assert status is None or status in (400, 431), raw[:300]

    many = f"GET /{bucket} HTTP/1.1\r\nhost: {server.host}\r\n" + "".join(f"x-h{i}: v\r\n" for i in range(500)) + "\r\n"
    raw = raw_exchange(server.s3_port, many.encode())
    status = status_of(raw)
    assert status is None or status in (400, 431), raw[:300]

    assert error_of(s3.head_object, Bucket=bucket, Key="huge")[1] == 404
    assert snapshot(s3) == populated


def test_user_metadata_over_2_kib_is_metadata_too_large(s3, bucket, populated):
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key="m", Body=b"x", Metadata={"big": "v" * 2100})
    assert (code, status) == ("MetadataTooLarge", 400)
    assert snapshot(s3) == populated


def test_garbage_on_the_socket_gets_400_or_a_closed_connection(server, s3, populated):
    for junk in [b"\x00\x01\x02\x03" * 100, b"GET / HTTP/9.9\r\n\r\n", b"PUT /%ZZ HTTP/1.1\r\nhost: x\r\n\r\n"]:
        raw = raw_exchange(server.s3_port, junk, shutdown_write=True)
        status = status_of(raw)
        assert status is None or 400 <= status < 500 or status == 505, (junk[:20], raw[:200])
    assert snapshot(s3) == populated
