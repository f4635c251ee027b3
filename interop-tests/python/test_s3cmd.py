"""s3cmd against the real server: mb, put, ls, get, del, a multipart put."""

import hashlib
import os


def test_put_ls_get_del(s3cmd, s3, bucket, tmp_path):
    src = tmp_path / "sample.bin"
    src.write_bytes(os.urandom(123_456))
    s3cmd("put", str(src), f"s3://{bucket}/samples/sample.bin")
    listing = s3cmd("ls", f"s3://{bucket}/samples/").stdout.decode()
    assert f"s3://{bucket}/samples/sample.bin" in listing and "123456" in listing
    top = s3cmd("ls", f"s3://{bucket}/").stdout.decode()
    assert any(l.split() == ["DIR", f"s3://{bucket}/samples/"] for l in top.splitlines()), top
    back = tmp_path / "back.bin"
    s3cmd("get", f"s3://{bucket}/samples/sample.bin", str(back))
    assert back.read_bytes() == src.read_bytes()
    s3cmd("del", f"s3://{bucket}/samples/sample.bin")
    assert s3.list_objects_v2(Bucket=bucket)["KeyCount"] == 0


def test_mb_and_bucket_listing(s3cmd, s3):
    s3cmd("mb", "s3://s3cmd-made")
    assert "s3://s3cmd-made" in s3cmd("ls").stdout.decode()
    s3.head_bucket(Bucket="s3cmd-made")
    s3cmd("rb", "s3://s3cmd-made")
    assert "s3cmd-made" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_multipart_put_round_trips(s3cmd, s3, bucket, tmp_path):
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(12 * 1024 * 1024))
    s3cmd("put", "--multipart-chunk-size-mb=5", str(src), f"s3://{bucket}/big.bin")
    head = s3.head_object(Bucket=bucket, Key="big.bin")
    assert head["ContentLength"] == 12 * 1024 * 1024
    assert head["ETag"].endswith('-3"'), head["ETag"]
    back = tmp_path / "back.bin"
    s3cmd("get", f"s3://{bucket}/big.bin", str(back))
    assert hashlib.sha256(back.read_bytes()).digest() == hashlib.sha256(src.read_bytes()).digest()


def test_a_wrong_secret_fails_with_the_s3_error(s3cmd, bucket):
    out = s3cmd("ls", f"s3://{bucket}/", check=False, secret_key="definitely-wrong-secret")
    assert out.returncode != 0
    assert b"SignatureDoesNotMatch" in out.stderr or b"403" in out.stderr, out.stderr
