"""NFS and S3 on one namespace: bytes written by one protocol are read by
the other, directory trees fold into CommonPrefixes, multipart completion
is atomic for NFS readers, and POSIX permissions set over NFS bind S3
identities. NFS clients: libnfs-utils (nfs-cp, nfs-cat, nfs-ls) and a
minimal NFSv3 client (nfs_rpc) for mkdir/chmod/chown."""

import hashlib
import os
import subprocess

import nfs_rpc
from harness import error_of, find_tool

MIB = 1024 * 1024


def nfs_ls_long(server, bucket, path=""):
    """nfs-ls lines as {name: (mode, uid, gid, size)}."""
    out = subprocess.run(
        [find_tool("nfs-ls"), server.nfs_url(bucket, path)], capture_output=True, timeout=60, check=True
    ).stdout.decode()
    entries = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 6:
            entries[parts[-1]] = (parts[0], int(parts[2]), int(parts[3]), int(parts[4]))
    return entries


def test_an_object_put_over_s3_is_read_over_nfs(server, s3, bucket, nfs_tools):
    data = os.urandom(3 * MIB + 17)
    s3.put_object(Bucket=bucket, Key="models/llm/weights.bin", Body=data)
    assert hashlib.sha256(nfs_tools.cat(bucket, "models/llm/weights.bin")).digest() == hashlib.sha256(data).digest()
    assert "models" in nfs_tools.ls(bucket)
    assert nfs_ls_long(server, bucket, "models/llm/")["weights.bin"][3] == len(data)


def test_a_multipart_object_is_read_over_nfs(server, s3, bucket, nfs_tools, tmp_path):
    parts = [os.urandom(5 * MIB), os.urandom(5 * MIB), os.urandom(123)]
    uid = s3.create_multipart_upload(Bucket=bucket, Key="mp.bin")["UploadId"]
    done = []
    for n, p in enumerate(parts, 1):
        etag = s3.upload_part(Bucket=bucket, Key="mp.bin", UploadId=uid, PartNumber=n, Body=p)["ETag"]
        done.append({"PartNumber": n, "ETag": etag})
    assert "mp.bin" not in nfs_tools.ls(bucket), "parts in flight are invisible over NFS"
    s3.complete_multipart_upload(Bucket=bucket, Key="mp.bin", UploadId=uid, MultipartUpload={"Parts": done})
    copy = tmp_path / "mp.bin"
    nfs_tools.cp(nfs_tools.url(bucket, "mp.bin"), copy)
    assert copy.read_bytes() == b"".join(parts)


def test_a_file_written_over_nfs_is_an_object(server, s3, bucket, nfs_tools, tmp_path):
    src = tmp_path / "sample.bin"
    data = os.urandom(700_000)
    src.write_bytes(data)
    nfs_tools.cp(src, nfs_tools.url(bucket, "sample.bin"))
    got = s3.get_object(Bucket=bucket, Key="sample.bin")
    assert got["Body"].read() == data
    assert got["ContentLength"] == len(data)
    ranged = s3.get_object(Bucket=bucket, Key="sample.bin", Range="bytes=1000-1999")["Body"].read()
    assert ranged == data[1000:2000]
    listed = s3.list_objects_v2(Bucket=bucket)["Contents"]
    assert [(o["Key"], o["Size"]) for o in listed] == [("sample.bin", len(data))]


def test_an_nfs_files_etag_is_stable_and_changes_with_its_content(server, s3, bucket, nfs_tools, tmp_path):
    src = tmp_path / "f"
    src.write_bytes(b"version one")
    nfs_tools.cp(src, nfs_tools.url(bucket, "f"))
    first = s3.head_object(Bucket=bucket, Key="f")["ETag"]
    assert s3.head_object(Bucket=bucket, Key="f")["ETag"] == first, "stable while unchanged"
    assert s3.list_objects_v2(Bucket=bucket)["Contents"][0]["ETag"] == first, "listing agrees with HEAD"
    assert s3.get_object(Bucket=bucket, Key="f", IfMatch=first)["Body"].read() == b"version one"
    with nfs_rpc.Client(server.nfs_port) as nfs:
        nfs.write_file(f"/{bucket}", "f", b"version two!")
    second = s3.head_object(Bucket=bucket, Key="f")["ETag"]
    assert second != first, "a content change changes the ETag"
    assert error_of(s3.get_object, Bucket=bucket, Key="f", IfMatch=first)[:2] == ("PreconditionFailed", 412)
    assert s3.get_object(Bucket=bucket, Key="f")["Body"].read() == b"version two!"


def test_a_tree_written_over_nfs_lists_with_the_right_common_prefixes(server, s3, bucket):
    with nfs_rpc.Client(server.nfs_port) as nfs:
        for path in ["train/cam0/0001.jpg", "train/cam0/0002.jpg", "train/cam1/0001.jpg", "val/0001.jpg", "README"]:
            nfs.write_file(f"/{bucket}", path, path.encode())
        nfs.makedirs(f"/{bucket}", "empty/inner")
    top = s3.list_objects_v2(Bucket=bucket, Delimiter="/")
    assert [o["Key"] for o in top["Contents"]] == ["README"]
    assert [p["Prefix"] for p in top["CommonPrefixes"]] == ["empty/", "train/", "val/"]
    train = s3.list_objects_v2(Bucket=bucket, Delimiter="/", Prefix="train/")
    assert [p["Prefix"] for p in train["CommonPrefixes"]] == ["train/cam0/", "train/cam1/"]
    assert "Contents" not in train
    cam0 = s3.list_objects_v2(Bucket=bucket, Prefix="train/cam0/")
    assert [o["Key"] for o in cam0["Contents"]] == ["train/cam0/0001.jpg", "train/cam0/0002.jpg"]
    everything = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]]
    assert everything == [
        "README",
        "empty/inner/",
        "train/cam0/0001.jpg",
        "train/cam0/0002.jpg",
        "train/cam1/0001.jpg",
        "val/0001.jpg",
    ], "an empty directory is listed as a `dir/` marker; a non-empty one is not"
    assert s3.get_object(Bucket=bucket, Key="train/cam1/0001.jpg")["Body"].read() == b"train/cam1/0001.jpg"


def test_a_directory_marker_put_over_s3_is_a_directory_over_nfs(server, s3, bucket, nfs_tools):
    s3.put_object(Bucket=bucket, Key="made/by/s3/", Body=b"")
    assert nfs_ls_long(server, bucket, "made/by/")["s3"][0].startswith("d")
    head = s3.head_object(Bucket=bucket, Key="made/by/s3/")
    assert head["ContentLength"] == 0
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["made/by/s3/"]
    s3.put_object(Bucket=bucket, Key="made/by/s3/file", Body=b"x")
    assert [o["Key"] for o in s3.list_objects_v2(Bucket=bucket)["Contents"]] == ["made/by/s3/file"]


def test_deletes_are_seen_across_protocols(server, s3, bucket, nfs_tools, tmp_path):
    s3.put_object(Bucket=bucket, Key="a", Body=b"a")
    s3.put_object(Bucket=bucket, Key="b", Body=b"b")
    with nfs_rpc.Client(server.nfs_port) as nfs:
        nfs.remove(nfs.mount(f"/{bucket}"), "a")
    assert error_of(s3.get_object, Bucket=bucket, Key="a")[:2] == ("NoSuchKey", 404)
    s3.delete_object(Bucket=bucket, Key="b")
    assert nfs_tools.ls(bucket) == [] or set(nfs_tools.ls(bucket)) <= {".", ".."}


def test_a_bucket_created_over_s3_is_an_nfs_export(server, s3, nfs_tools, tmp_path):
    s3.create_bucket(Bucket="exported")
    src = tmp_path / "x"
    src.write_bytes(b"via nfs into a new bucket")
    nfs_tools.cp(src, nfs_tools.url("exported", "x"))
    assert s3.get_object(Bucket="exported", Key="x")["Body"].read() == b"via nfs into a new bucket"


def test_a_non_owner_identity_is_denied_a_0600_file_written_over_nfs(server, s3, bucket):
    user = server.client(*server.add_user("worker", 1000, 1000))
    with nfs_rpc.Client(server.nfs_port) as nfs:
        nfs.write_file(f"/{bucket}", "secret.bin", b"root only", mode=0o600)
        nfs.write_file(f"/{bucket}", "shared.bin", b"everyone", mode=0o644)
        fh = nfs.write_file(f"/{bucket}", "theirs.bin", b"worker's", mode=0o600)
        nfs.setattr(fh, uid=1000, gid=1000)
        locked = nfs.makedirs(f"/{bucket}", "locked")
        nfs.write_file(f"/{bucket}", "locked/inside.bin", b"hidden", mode=0o644)
        nfs.setattr(locked, mode=0o700)

    assert error_of(user.get_object, Bucket=bucket, Key="secret.bin")[:2] == ("AccessDenied", 403)
    assert error_of(user.head_object, Bucket=bucket, Key="secret.bin")[1] == 403
    assert user.get_object(Bucket=bucket, Key="shared.bin")["Body"].read() == b"everyone"
    assert user.get_object(Bucket=bucket, Key="theirs.bin")["Body"].read() == b"worker's"
    assert error_of(user.get_object, Bucket=bucket, Key="locked/inside.bin")[:2] == ("AccessDenied", 403)
    assert error_of(user.list_objects_v2, Bucket=bucket, Prefix="locked/")[:2] == ("AccessDenied", 403)
    assert error_of(user.put_object, Bucket=bucket, Key="secret.bin", Body=b"overwrite")[:2] == ("AccessDenied", 403)
    assert error_of(user.delete_object, Bucket=bucket, Key="secret.bin")[:2] == ("AccessDenied", 403)
    assert s3.get_object(Bucket=bucket, Key="secret.bin")["Body"].read() == b"root only", "root is unaffected"
    assert s3.get_object(Bucket=bucket, Key="locked/inside.bin")["Body"].read() == b"hidden"


def test_an_identity_writes_files_owned_by_its_uid(server, s3, bucket):
    user = server.client(*server.add_user("writer", 1234, 4321))
    with nfs_rpc.Client(server.nfs_port) as nfs:
        home = nfs.makedirs(f"/{bucket}", "home")
        nfs.setattr(home, uid=1234, gid=4321, mode=0o755)
    user.put_object(Bucket=bucket, Key="home/out.bin", Body=b"written by 1234")
    mode, uid, gid, size = nfs_ls_long(server, bucket, "home/")["out.bin"]
    assert (uid, gid, size) == (1234, 4321, 15)
    assert error_of(user.put_object, Bucket=bucket, Key="elsewhere.bin", Body=b"x")[:2] == ("AccessDenied", 403)
