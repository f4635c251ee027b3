"""The `aws` CLI against the real server: s3 mb/cp/ls/sync/rm, a 100 MiB
multipart copy with a sha256 round trip, and s3api calls."""

import hashlib
import json
import os

MIB = 1024 * 1024


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(MIB), b""):
            h.update(block)
    return h.hexdigest()


def test_mb_cp_ls_rm_rb(aws, s3, tmp_path):
    aws("s3", "mb", "s3://cli-bucket")
    assert "cli-bucket" in aws("s3", "ls").stdout.decode()
    src = tmp_path / "hello.txt"
    src.write_bytes(b"hello from the aws cli\n")
    aws("s3", "cp", str(src), "s3://cli-bucket/dir/hello.txt")
    listing = aws("s3", "ls", "s3://cli-bucket/dir/").stdout.decode()
    assert "hello.txt" in listing and " 23 " in listing
    top = aws("s3", "ls", "s3://cli-bucket/").stdout.decode()
    assert "PRE dir/" in top
    back = tmp_path / "back.txt"
    aws("s3", "cp", "s3://cli-bucket/dir/hello.txt", str(back))
    assert back.read_bytes() == src.read_bytes()
    aws("s3", "rm", "s3://cli-bucket/dir/hello.txt")
    assert s3.list_objects_v2(Bucket="cli-bucket")["KeyCount"] == 0
    aws("s3", "rb", "s3://cli-bucket")
    assert "cli-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]


def test_a_100_mib_multipart_cp_round_trips_its_sha256(aws, s3, bucket, tmp_path):
    src = tmp_path / "checkpoint.bin"
    with open(src, "wb") as f:
        for _ in range(100):
            f.write(os.urandom(MIB))
    aws("s3", "cp", str(src), f"s3://{bucket}/ckpt/model.bin")
    head = s3.head_object(Bucket=bucket, Key="ckpt/model.bin")
    assert head["ContentLength"] == 100 * MIB
    assert head["ETag"].endswith('-13"'), f"8 MiB parts: {head['ETag']}"
    back = tmp_path / "back.bin"
    aws("s3", "cp", f"s3://{bucket}/ckpt/model.bin", str(back))
    assert sha256_file(back) == sha256_file(src)
    assert s3.list_multipart_uploads(Bucket=bucket).get("Uploads", []) == []


def test_sync_uploads_a_tree_then_only_what_changed_and_deletes(aws, s3, bucket, tmp_path):
    tree = tmp_path / "tree"
    for rel, data in {"a.txt": b"a", "sub/b.txt": b"bb", "sub/deeper/c.txt": b"ccc"}.items():
        p = tree / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
    aws("s3", "sync", str(tree), f"s3://{bucket}/t")
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["t/a.txt", "t/sub/b.txt", "t/sub/deeper/c.txt"]

    again = aws("s3", "sync", str(tree), f"s3://{bucket}/t").stdout.decode()
    assert "upload:" not in again, f"nothing changed, nothing uploaded: {again}"

    (tree / "sub/b.txt").write_bytes(b"changed size")
    (tree / "a.txt").unlink()
    out = aws("s3", "sync", "--delete", str(tree), f"s3://{bucket}/t").stdout.decode()
    assert "upload:" in out and "delete:" in out, out
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert keys == ["t/sub/b.txt", "t/sub/deeper/c.txt"]
    assert s3.get_object(Bucket=bucket, Key="t/sub/b.txt")["Body"].read() == b"changed size"

    down = tmp_path / "down"
    aws("s3", "sync", f"s3://{bucket}/t", str(down))
    assert (down / "sub/deeper/c.txt").read_bytes() == b"ccc"
    assert (down / "sub/b.txt").read_bytes() == b"changed size"


def test_recursive_rm_and_cp(aws, s3, bucket, tmp_path):
    for i in range(5):
        s3.put_object(Bucket=bucket, Key=f"r/{i}/f", Body=str(i).encode())
    aws("s3", "cp", "--recursive", f"s3://{bucket}/r", f"s3://{bucket}/copy")
    assert s3.get_object(Bucket=bucket, Key="copy/3/f")["Body"].read() == b"3"
    aws("s3", "rm", "--recursive", f"s3://{bucket}/r")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert sorted(keys) == [f"copy/{i}/f" for i in range(5)]


def test_s3api_calls(aws, bucket, tmp_path):
    body = tmp_path / "b"
    body.write_bytes(b"s3api body")
    put = json.loads(
        aws(
            "s3api",
            "put-object",
            "--bucket",
            bucket,
            "--key",
            "api/k",
            "--body",
            str(body),
            "--content-type",
            "text/x-api",
            "--metadata",
            "owner=cli",
        ).stdout
    )
    assert put["ETag"] == '"' + hashlib.md5(b"s3api body").hexdigest() + '"'
    head = json.loads(aws("s3api", "head-object", "--bucket", bucket, "--key", "api/k").stdout)
    assert head["ContentType"] == "text/x-api" and head["Metadata"] == {"owner": "cli"}
    listed = json.loads(aws("s3api", "list-objects-v2", "--bucket", bucket, "--prefix", "api/").stdout)
    assert [o["Key"] for o in listed["Contents"]] == ["api/k"]
    missing = aws("s3api", "head-object", "--bucket", bucket, "--key", "nope", check=False)
    assert missing.returncode != 0 and b"404" in missing.stderr
    err = aws("s3api", "get-object", "--bucket", bucket, "--key", "nope", str(tmp_path / "x"), check=False)
    assert err.returncode != 0 and b"NoSuchKey" in err.stderr
    loc = json.loads(aws("s3api", "get-bucket-location", "--bucket", bucket).stdout)
    assert loc.get("LocationConstraint") in (None, "")
    aws("s3api", "delete-object", "--bucket", bucket, "--key", "api/k")
    listed = json.loads(aws("s3api", "list-objects-v2", "--bucket", bucket).stdout or b"{}")
    assert listed.get("KeyCount", 0) == 0


def test_presign_from_the_cli_works_with_urllib(aws, s3, bucket):
    import urllib.request

    s3.put_object(Bucket=bucket, Key="p", Body=b"cli presigned")
    url = aws("s3", "presign", f"s3://{bucket}/p", "--expires-in", "120").stdout.decode().strip()
    with urllib.request.urlopen(url, timeout=30) as resp:
        assert resp.read() == b"cli presigned"
