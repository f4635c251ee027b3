"""Snapshots through the real binary: `nitrofs admin snapshot`, the
read-only `/<volume>/.snapshot/<name>/` view over NFS (libnfs-utils and raw
NFSv3 calls) and over S3 (keys under `.snapshot/<name>/`), restore and clone."""

import os

import nfs_rpc
import pytest
from harness import error_of, find_tool, run

NFS3ERR_ROFS = 30


def nfs_status(fn, *args, **kwargs):
    """The nfsstat3 of a raw NFS call that must fail."""
    with pytest.raises(nfs_rpc.NfsError) as info:
        fn(*args, **kwargs)
    return info.value.status


def snapshot(server, *args, check=True):
    return server.admin("snapshot", *args, check=check)


def test_a_snapshot_keeps_what_nfs_and_s3_saw(server, s3, bucket, nfs_tools):
    old = os.urandom(2 * 1024 * 1024 + 5)
    s3.put_object(Bucket=bucket, Key="ckpt/step1.bin", Body=old)
    s3.put_object(Bucket=bucket, Key="ckpt/meta.json", Body=b'{"step": 1}')
    out = snapshot(server, "create", bucket, "before").stdout.decode()
    assert "created snapshot before" in out
    assert "before" in snapshot(server, "list", bucket).stdout.decode()

    # Live changes after the snapshot: overwrite, delete, add.
    s3.put_object(Bucket=bucket, Key="ckpt/step1.bin", Body=b"new bytes")
    s3.delete_object(Bucket=bucket, Key="ckpt/meta.json")
    s3.put_object(Bucket=bucket, Key="ckpt/step2.bin", Body=b"later")
    with nfs_rpc.Client(server.nfs_port) as nfs:
        fh = nfs.resolve(f"/{bucket}", "ckpt/step2.bin")
        nfs.write(fh, 0, b"LATER")

    # NFS: hidden from the root listing, reachable by name, old bytes.
    assert ".snapshot" not in nfs_tools.ls(bucket)
    assert nfs_tools.ls(bucket, ".snapshot/") == ["before"]
    assert sorted(nfs_tools.ls(bucket, ".snapshot/before/ckpt/")) == ["meta.json", "step1.bin"]
    assert nfs_tools.cat(bucket, ".snapshot/before/ckpt/step1.bin") == old
    assert nfs_tools.cat(bucket, ".snapshot/before/ckpt/meta.json") == b'{"step": 1}'
    assert nfs_tools.cat(bucket, "ckpt/step1.bin") == b"new bytes"

    # S3: the same view under the `.snapshot/<name>/` prefix.
    got = s3.get_object(Bucket=bucket, Key=".snapshot/before/ckpt/step1.bin")["Body"].read()
    assert got == old
    listed = s3.list_objects_v2(Bucket=bucket, Prefix=".snapshot/before/ckpt/")
    assert sorted(o["Key"] for o in listed.get("Contents", [])) == [
        ".snapshot/before/ckpt/meta.json",
        ".snapshot/before/ckpt/step1.bin",
    ]


def test_writes_into_a_snapshot_are_refused_and_change_nothing(server, s3, bucket, nfs_tools, tmp_path):
    s3.put_object(Bucket=bucket, Key="a.txt", Body=b"original")
    snapshot(server, "create", bucket, "ro")
    with nfs_rpc.Client(server.nfs_port) as nfs:
        fh = nfs.resolve(f"/{bucket}", ".snapshot/ro/a.txt")
        assert nfs_status(nfs.write, fh, 0, b"changed") == NFS3ERR_ROFS
        assert nfs_status(nfs.setattr, fh, size=0) == NFS3ERR_ROFS
        dir_fh = nfs.resolve(f"/{bucket}", ".snapshot/ro")
        assert nfs_status(nfs.create, dir_fh, "new.txt") == NFS3ERR_ROFS
        assert nfs_status(nfs.remove, dir_fh, "a.txt") == NFS3ERR_ROFS
        assert nfs_status(nfs.mkdir, dir_fh, "d") == NFS3ERR_ROFS
    src = tmp_path / "x"
    src.write_bytes(b"x")
    cp = run([find_tool("nfs-cp"), str(src), nfs_tools.url(bucket, ".snapshot/ro/x")], check=False)
    assert cp.returncode != 0 and b"ROFS" in cp.stdout + cp.stderr
    code, status, _ = error_of(s3.put_object, Bucket=bucket, Key=".snapshot/ro/b.txt", Body=b"no")
    assert status == 403, code
    assert nfs_tools.cat(bucket, ".snapshot/ro/a.txt") == b"original"
    assert nfs_tools.ls(bucket, ".snapshot/ro/") == ["a.txt"]


def test_restore_rolls_back_and_clone_makes_a_writable_copy(server, s3, bucket, nfs_tools):
    s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"v1")
    snapshot(server, "create", bucket, "good")
    s3.put_object(Bucket=bucket, Key="keep.txt", Body=b"v2-bad")
    s3.put_object(Bucket=bucket, Key="junk.txt", Body=b"junk")

    out = snapshot(server, "clone", bucket, "good", f"{bucket}-clone").stdout.decode()
    assert f"{bucket}-clone" in out
    clone = f"{bucket}-clone"
    assert s3.get_object(Bucket=clone, Key="keep.txt")["Body"].read() == b"v1"
    s3.put_object(Bucket=clone, Key="keep.txt", Body=b"clone-own")
    assert nfs_tools.cat(bucket, ".snapshot/good/keep.txt") == b"v1"

    snapshot(server, "restore", bucket, "good")
    assert s3.get_object(Bucket=bucket, Key="keep.txt")["Body"].read() == b"v1"
    assert "junk.txt" not in nfs_tools.ls(bucket)
    assert s3.get_object(Bucket=clone, Key="keep.txt")["Body"].read() == b"clone-own"

    snapshot(server, "delete", bucket, "good")
    assert "good" not in snapshot(server, "list", bucket).stdout.decode()
    r = snapshot(server, "delete", bucket, "good", check=False)
    assert r.returncode != 0 and b"no snapshot" in r.stderr
    r = snapshot(server, "restore", bucket, "missing", check=False)
    assert r.returncode != 0
