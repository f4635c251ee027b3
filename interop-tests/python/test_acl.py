"""POSIX ACLs on the real binary: set with `nitrofs admin acl`, enforced
over NFS for several AUTH_SYS identities (raw NFSv3 calls with any uid:
ACCESS, READ, WRITE, CREATE, MKDIR) and over S3 for several key pairs, by
the one check in core-fs. Covers named users, the mask (chmod of the group
bits narrows it), group-class rules and default ACLs inherited at create."""

import nfs_rpc
from harness import error_of
from nfs_rpc import ACCESS_EXTEND, ACCESS_LOOKUP, ACCESS_MODIFY, ACCESS_READ, NfsError

ALICE, BOB, CAROL, DAVE = 1000, 1001, 1002, 1003
NFS3ERR_ACCES = 13
RW = ACCESS_READ | ACCESS_MODIFY | ACCESS_EXTEND


def nfs_as(server, uid, gid=None, groups=()):
    return nfs_rpc.Client(server.nfs_port, uid=uid, gid=uid if gid is None else gid, groups=groups)


def acl(server, *args):
    """`nitrofs admin acl ARGS`; returns its getfacl-style output."""
    return server.admin("acl", *args).stdout.decode()


def denied(fn, *args):
    try:
        fn(*args)
    except NfsError as e:
        return e.status == NFS3ERR_ACCES
    return False


def test_a_named_user_entry_is_enforced_over_nfs_and_limited_by_the_mask(server, bucket):
    with nfs_as(server, 0) as root:
        fh = root.write_file(f"/{bucket}", "f", b"secret", mode=0o600)
        root.setattr(fh, uid=ALICE, gid=ALICE)
    with nfs_as(server, BOB) as bob:
        fh = bob.resolve(f"/{bucket}", "f")
        assert bob.access(fh) & RW == 0
        assert denied(bob.read, fh)

    out = acl(server, "set", f"/{bucket}/f", "u:1001:rw-")
    assert "# owner: 1000" in out
    assert "user:1001:rw-" in out and "mask::rw-" in out and "group::---" in out, out

    with nfs_as(server, BOB) as bob:
        fh = bob.resolve(f"/{bucket}", "f")
        assert bob.access(fh) & RW == RW
        assert bob.read(fh) == b"secret"
        bob.write(fh, 0, b"SECRET")
        mode, uid, _ = bob.getattr(fh)
        assert (mode & 0o777, uid) == (0o660, ALICE), "the mask is the mode's group bits"
    with nfs_as(server, CAROL) as carol:
        fh = carol.resolve(f"/{bucket}", "f")
        assert carol.access(fh) == 0, "no entry for carol: other::---"
        assert denied(carol.read, fh)
    with nfs_as(server, DAVE, gid=ALICE) as member:
        fh = member.resolve(f"/{bucket}", "f")
        assert member.access(fh) & RW == 0, "group:: is --- although the group bits (mask) are rw"
        assert denied(member.read, fh)

    # chmod g-w by the owner narrows the mask: bob keeps his entry, loses w.
    with nfs_as(server, ALICE) as alice:
        alice.setattr(alice.resolve(f"/{bucket}", "f"), mode=0o640)
    with nfs_as(server, BOB) as bob:
        fh = bob.resolve(f"/{bucket}", "f")
        assert bob.access(fh) & RW == ACCESS_READ
        assert bob.read(fh) == b"SECRET"
        assert denied(bob.write, fh, 0, b"x")
    assert "user:1001:rw-\t#effective:r--" in acl(server, "get", f"/{bucket}/f")

    # An explicit mask widens it again, and the mode follows.
    acl(server, "modify", f"/{bucket}/f", "m::rw")
    with nfs_as(server, BOB) as bob:
        fh = bob.resolve(f"/{bucket}", "f")
        bob.write(fh, 0, b"s")
        assert bob.getattr(fh)[0] & 0o777 == 0o660

    # setfacl -b: back to the mode alone, group:: (---) is the group again.
    out = acl(server, "remove", f"/{bucket}/f")
    assert "user:1001" not in out and "mask" not in out, out
    with nfs_as(server, BOB) as bob:
        fh = bob.resolve(f"/{bucket}", "f")
        assert denied(bob.read, fh)
        assert bob.getattr(fh)[0] & 0o777 == 0o600


def test_group_entries_need_one_entry_holding_every_requested_bit(server, bucket):
    with nfs_as(server, 0) as root:
        fh = root.write_file(f"/{bucket}", "g", b"data", mode=0o600)
        root.setattr(fh, uid=ALICE, gid=100)
    acl(server, "set", f"/{bucket}/g", "g::r--,g:200:-w-,o::rwx")
    with nfs_as(server, BOB, gid=100, groups=[200]) as both:
        fh = both.resolve(f"/{bucket}", "g")
        granted = both.access(fh)
        assert granted & RW == RW, "r from group::, w from group:200"
        assert granted & nfs_rpc.ACCESS_EXECUTE == 0, "a matched group never falls back to other::"
        assert both.read(fh) == b"data"
    with nfs_as(server, CAROL) as stranger:
        fh = stranger.resolve(f"/{bucket}", "g")
        assert stranger.access(fh) & RW == RW, "other::rwx"


def test_default_acls_are_inherited_by_files_and_directories_created_over_nfs(server, bucket):
    with nfs_as(server, 0) as root:
        d = root.makedirs(f"/{bucket}", "shared")
        root.setattr(d, uid=ALICE, gid=ALICE, mode=0o750)
    out = acl(server, "set", f"/{bucket}/shared", "u:1001:rwx,d:u:1001:rwx,d:o::---")
    assert "default:user:1001:rwx" in out and "default:mask::rwx" in out, out

    with nfs_as(server, ALICE) as alice:
        d = alice.resolve(f"/{bucket}", "shared")
        f = alice.create(d, "report", mode=0o640)
        alice.write(f, 0, b"quarterly")
        assert alice.getattr(f)[0] & 0o777 == 0o640, "owner rw, mask rwx&r, other ---"
    got = acl(server, "get", f"/{bucket}/shared/report")
    assert "user:1001:rwx\t#effective:r--" in got and "mask::r--" in got, got
    with nfs_as(server, BOB) as bob:
        d = bob.resolve(f"/{bucket}", "shared")
        f = bob.lookup(d, "report")
        assert bob.access(f) & RW == ACCESS_READ, "the create mode's group bits limit the entry"
        assert bob.read(f) == b"quarterly"
        assert denied(bob.write, f, 0, b"x")
        sub = bob.mkdir(d, "sub", mode=0o777)
        assert bob.getattr(sub)[0] & 0o777 == 0o770
        inner = bob.create(sub, "inner", mode=0o666)
        bob.write(inner, 0, b"bob's")
    sub_acl = acl(server, "get", f"/{bucket}/shared/sub")
    assert "default:user:1001:rwx" in sub_acl, "a new directory inherits the default ACL as its own"
    with nfs_as(server, CAROL) as carol:
        d = carol.resolve(f"/{bucket}", "shared")
        assert carol.access(d) & ACCESS_LOOKUP == 0
        assert denied(carol.lookup, d, "report")


def test_admin_acl_reports_bad_input_clearly_and_reads_snapshots(server, bucket):
    with nfs_as(server, 0) as root:
        root.write_file(f"/{bucket}", "file", b"x")
    bad = server.admin("acl", "set", f"/{bucket}/file", "u:bob:rwx", check=False)
    assert bad.returncode != 0 and b"not a number" in bad.stderr, bad.stderr
    bad = server.admin("acl", "set", f"/{bucket}/file", "d:u:1:r", check=False)
    assert bad.returncode != 0 and b"only directories have a default ACL" in bad.stderr, bad.stderr
    bad = server.admin("acl", "get", f"/{bucket}/missing", check=False)
    assert bad.returncode != 0 and b"404" in bad.stderr, bad.stderr
    bad = server.admin("acl", "get", "/no-such-volume/x", check=False)
    assert bad.returncode != 0 and b"404" in bad.stderr, bad.stderr
    # Inside a snapshot the ACL can be read as it was, never changed.
    acl(server, "modify", f"/{bucket}/file", "u:1001:r")
    server.admin("snapshot", "create", bucket, "s1")
    acl(server, "remove", f"/{bucket}/file")
    assert "user:1001:r--" in acl(server, "get", f"/{bucket}/.snapshot/s1/file")
    bad = server.admin("acl", "set", f"/{bucket}/.snapshot/s1/file", "u:1:r", check=False)
    assert bad.returncode != 0 and b"403" in bad.stderr, bad.stderr


def test_acls_apply_to_s3_identities_through_their_uid_and_gid(server, s3, bucket):
    alice = server.client(*server.add_user("alice", ALICE, ALICE))
    bob = server.client(*server.add_user("bob", BOB, BOB))
    carol = server.client(*server.add_user("carol", CAROL, CAROL))
    dave = server.client(*server.add_user("dave", DAVE, DAVE))
    with nfs_as(server, 0) as root:
        team = root.makedirs(f"/{bucket}", "team")
        root.setattr(team, uid=ALICE, gid=ALICE, mode=0o755)
    alice.put_object(Bucket=bucket, Key="team/plan.txt", Body=b"the plan", ACL="private")

    assert error_of(bob.get_object, Bucket=bucket, Key="team/plan.txt")[:2] == ("AccessDenied", 403)
    acl(server, "modify", f"/{bucket}/team/plan.txt", "u:1001:r")
    assert bob.get_object(Bucket=bucket, Key="team/plan.txt")["Body"].read() == b"the plan"
    assert error_of(carol.get_object, Bucket=bucket, Key="team/plan.txt")[:2] == ("AccessDenied", 403)

    # Writing a key is a change to its directory: bob needs w on team/.
    assert error_of(bob.put_object, Bucket=bucket, Key="team/bob.txt", Body=b"b")[:2] == ("AccessDenied", 403)
    acl(server, "modify", f"/{bucket}/team", "u:1001:rwx,d:u:1002:r,d:o::-")
    bob.put_object(Bucket=bucket, Key="team/bob.txt", Body=b"from bob")
    # The new object inherited team's default ACL: carol has a named entry,
    # dave only other:: (none), although the object was put with mode 0644.
    assert carol.get_object(Bucket=bucket, Key="team/bob.txt")["Body"].read() == b"from bob"
    assert error_of(dave.get_object, Bucket=bucket, Key="team/bob.txt")[:2] == ("AccessDenied", 403)
    got = acl(server, "get", f"/{bucket}/team/bob.txt")
    assert "# owner: 1001" in got and "user:1002:r--" in got and "other::---" in got, got
    # The same entries decide over NFS.
    with nfs_as(server, CAROL) as c:
        fh = c.resolve(f"/{bucket}", "team/bob.txt")
        assert c.read(fh) == b"from bob"
    with nfs_as(server, DAVE) as d:
        fh = d.resolve(f"/{bucket}", "team/bob.txt")
        assert denied(d.read, fh)
