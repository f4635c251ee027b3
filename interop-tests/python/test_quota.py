"""Quotas through the real binary: a directory-tree quota set with
`nitrofs admin quota` holds exactly while NFS clients (a minimal NFSv3
client over ONC-RPC) and S3 clients (boto3) write into the tree at the same
time; exceeding it is NFS3ERR_DQUOT over NFS and 403 QuotaExceeded over S3;
FSSTAT under the quota root reports the quota as the filesystem size (what
`df` shows); per-user quotas bind S3 identities; and the admin CLI sets,
shows, lists and removes quotas."""

import os
import re
import threading

import pytest
from botocore.exceptions import ClientError

import nfs_rpc
from harness import error_of

KIB = 1024
MIB = 1024 * KIB
NFS3ERR_DQUOT = 69
NFSPROC_FSSTAT = 18


def quota_of(server, *target):
    """(bytes, bytes limit, inodes, inodes limit) from `nitrofs admin quota get`."""
    out = server.admin("quota", "get", *target).stdout.decode()
    m = re.search(r"bytes=(\d+)/(\w+) inodes=(\d+)/(\w+) state=ready", out)
    assert m, f"quota get printed: {out!r}"
    num = lambda s: None if s == "unlimited" else int(s)  # noqa: E731
    return int(m[1]), num(m[2]), int(m[3]), num(m[4])


def fsstat(nfs, fh):
    """FSSTAT (RFC 1813 3.3.18): (tbytes, fbytes, abytes, tfiles, ffiles, afiles)."""
    r = nfs._nfs(NFSPROC_FSSTAT, nfs_rpc._opaque(fh))
    if r.u32():  # post_op_attr: attributes follow
        r.pos += 84  # fattr3
    return tuple((r.u32() << 32) | r.u32() for _ in range(6))


def object_bytes(s3, bucket, prefix):
    total, count = 0, 0
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for o in page.get("Contents", []):
            total += o["Size"]
            count += 1
    return total, count


def test_nfs_and_s3_writers_together_cannot_pass_a_tree_quota(server, s3, bucket):
    limit = 16 * MIB + 12345
    with nfs_rpc.Client(server.nfs_port) as nfs:
        nfs.makedirs(f"/{bucket}", "proj")
    server.admin("quota", "set", f"/{bucket}/proj", "--bytes", str(limit))
    failures, refusals = [], []

    def nfs_writer(i):
        try:
            with nfs_rpc.Client(server.nfs_port) as nfs:
                fh = nfs.create(nfs.resolve(f"/{bucket}", "proj"), f"nfs-{i}")
                off, piece = 0, os.urandom(64 * KIB + 7 * i)
                while True:
                    try:
                        nfs.write(fh, off, piece)
                    except nfs_rpc.NfsError as e:
                        if e.status != NFS3ERR_DQUOT:
                            raise
                        refusals.append(("nfs", i))
                        return
                    off += len(piece)
        except Exception as e:  # reported by the main thread
            failures.append(("nfs", i, repr(e)))

    def s3_writer(j):
        try:
            client = server.client()
            body = os.urandom(200 * KIB + 13 * j)
            for k in range(1000):
                try:
                    client.put_object(Bucket=bucket, Key=f"proj/s3-{j}-{k}", Body=body)
                except ClientError as e:
                    err = e.response["Error"].get("Code"), e.response["ResponseMetadata"]["HTTPStatusCode"]
                    if err != ("QuotaExceeded", 403):
                        raise
                    refusals.append(("s3", j))
                    return
            failures.append(("s3", j, "never refused"))
        except Exception as e:
            failures.append(("s3", j, repr(e)))

    threads = [threading.Thread(target=nfs_writer, args=(i,)) for i in range(3)]
    threads += [threading.Thread(target=s3_writer, args=(j,)) for j in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    assert not any(t.is_alive() for t in threads), "a writer hung"
    assert not failures, failures
    assert len(refusals) == 6, "every writer was stopped by the quota"

    used, lim, inodes, _ = quota_of(server, f"/{bucket}/proj")
    assert lim == limit
    assert used <= limit, f"usage {used} passed the limit {limit}"
    listed, count = object_bytes(s3, bucket, "proj/")
    assert (used, inodes) == (listed, count), "usage is exactly what the tree holds"

    # What is left can be written, and not one byte more.
    left = limit - used
    with nfs_rpc.Client(server.nfs_port) as nfs:
        fh = nfs.create(nfs.resolve(f"/{bucket}", "proj"), "last")
        if left:
            nfs.write(fh, 0, os.urandom(left))
        with pytest.raises(nfs_rpc.NfsError) as info:
            nfs.write(fh, left, b"!")
        assert info.value.status == NFS3ERR_DQUOT
    assert quota_of(server, f"/{bucket}/proj")[0] == limit
    code, status, resp = error_of(s3.put_object, Bucket=bucket, Key="proj/one-more", Body=b"x")
    assert (code, status) == ("QuotaExceeded", 403)
    assert "quota" in resp["Error"]["Message"].lower()

    # Deleting over S3 frees room for NFS.
    listed = s3.list_objects_v2(Bucket=bucket, Prefix="proj/")["Contents"]
    victim = next(o for o in listed if o["Key"] != "proj/last")
    s3.delete_object(Bucket=bucket, Key=victim["Key"])
    assert quota_of(server, f"/{bucket}/proj")[0] == limit - victim["Size"]
    with nfs_rpc.Client(server.nfs_port) as nfs:
        fh = nfs.resolve(f"/{bucket}", "proj/last")
        nfs.write(fh, left, os.urandom(min(victim["Size"], 64 * KIB)))


def test_fsstat_under_a_quota_root_reports_the_quota_as_the_filesystem_size(server, s3, bucket):
    with nfs_rpc.Client(server.nfs_port) as nfs:
        nfs.makedirs(f"/{bucket}", "proj/sub")
        server.admin("quota", "set", f"{bucket}/proj", "--bytes", "10MiB", "--inodes", "100")
        s3.put_object(Bucket=bucket, Key="proj/sub/weights.bin", Body=os.urandom(MIB))
        for path in ("proj", "proj/sub", "proj/sub/weights.bin"):
            tbytes, fbytes, abytes, tfiles, ffiles, afiles = fsstat(nfs, nfs.resolve(f"/{bucket}", path))
            assert (tbytes, fbytes, abytes) == (10 * MIB, 9 * MIB, 9 * MIB), path
            assert (tfiles, ffiles, afiles) == (100, 98, 98), path
        outside = fsstat(nfs, nfs.mount(f"/{bucket}"))
        assert outside[0] != 10 * MIB, "outside the tree: the device"


def test_an_inode_quota_refuses_nfs_creates_with_dquot(server, bucket):
    with nfs_rpc.Client(server.nfs_port) as nfs:
        few = nfs.makedirs(f"/{bucket}", "few")
        server.admin("quota", "set", f"/{bucket}/few", "--inodes", "2")
        nfs.mkdir(few, "a")
        nfs.create(few, "b")
        for make in (lambda: nfs.mkdir(few, "c"), lambda: nfs.create(few, "d")):
            with pytest.raises(nfs_rpc.NfsError) as info:
                make()
            assert info.value.status == NFS3ERR_DQUOT
        nfs.remove(few, "b")
        nfs.create(few, "d")
    assert quota_of(server, f"/{bucket}/few")[2:] == (2, 2)


def test_a_user_quota_binds_an_s3_identity_and_the_cli_lists_and_removes_it(server, tmp_path):
    access, secret = server.add_user("alice", 1000, 1000)
    alice = server.client(access, secret)
    bucket = "alice-data"
    alice.create_bucket(Bucket=bucket)
    server.admin("quota", "set", bucket, "--uid", "1000", "--bytes", "300000")
    body = os.urandom(100_000)
    for k in range(3):
        alice.put_object(Bucket=bucket, Key=f"k{k}", Body=body)
    code, status, _ = error_of(alice.put_object, Bucket=bucket, Key="k3", Body=body)
    assert (code, status) == ("QuotaExceeded", 403)
    assert [o["Key"] for o in alice.list_objects_v2(Bucket=bucket)["Contents"]] == ["k0", "k1", "k2"]
    # The bucket's root directory is alice's too: 4 inodes.
    assert quota_of(server, bucket, "--uid", "1000") == (300_000, 300_000, 4, None)

    listing = server.admin("quota", "list", bucket).stdout.decode().splitlines()
    assert listing == [f"user {bucket} uid=1000 bytes=300000/300000 inodes=4/unlimited state=ready"]
    server.admin("kv-space", "create", "cache", "--capacity", "1MiB")
    everything = server.admin("quota", "list").stdout.decode()
    assert "kv-space cache bytes=0/1048576 keys=0" in everything, everything

    server.admin("quota", "remove", bucket, "--uid", "1000")
    alice.put_object(Bucket=bucket, Key="k3", Body=body)
    missing = server.admin("quota", "get", bucket, "--uid", "1000", check=False)
    assert missing.returncode != 0 and b"404" in missing.stderr


def test_a_quota_set_on_a_populated_tree_counts_it_and_renames_move_usage(server, s3, bucket):
    for i in range(40):
        s3.put_object(Bucket=bucket, Key=f"data/part{i % 4}/f{i}", Body=b"x" * (1000 + i))
    server.admin("quota", "set", f"/{bucket}/data")
    expected = sum(1000 + i for i in range(40))
    assert quota_of(server, f"/{bucket}/data") == (expected, None, 44, None)
    part = lambda n: sum(1000 + i for i in range(40) if i % 4 == n)  # noqa: E731
    with nfs_rpc.Client(server.nfs_port) as nfs:
        root = nfs.mount(f"/{bucket}")
        other = nfs.mkdir(root, "other")
        server.admin("quota", "set", f"/{bucket}/other", "--bytes", str(part(0) + 5))
        data = nfs.lookup(root, "data")
        # part1 is too big for `other`: refused, nothing moves.
        with pytest.raises(nfs_rpc.NfsError) as info:
            rename(nfs, data, "part1", other, "part1")
        assert info.value.status == NFS3ERR_DQUOT
        rename(nfs, data, "part0", other, "part0")
        with pytest.raises(nfs_rpc.NfsError) as info:
            rename(nfs, nfs.lookup(data, "part1"), "f1", other, "f1")
        assert info.value.status == NFS3ERR_DQUOT
    assert quota_of(server, f"/{bucket}/data") == (expected - part(0), None, 33, None)
    assert quota_of(server, f"/{bucket}/other") == (part(0), part(0) + 5, 11, None)
    assert len(s3.list_objects_v2(Bucket=bucket, Prefix="other/part0/")["Contents"]) == 10


def rename(nfs, from_fh, from_name, to_fh, to_name):
    """NFSPROC_RENAME (14)."""
    args = nfs_rpc._opaque(from_fh) + nfs_rpc._string(from_name)
    args += nfs_rpc._opaque(to_fh) + nfs_rpc._string(to_name)
    nfs._nfs(14, args)
