"""Metadata scaling over raw NFSv3 (ONC-RPC over TCP, AUTH_SYS root), the same
client for NitroFS and nfs-ganesha.

`populate` fills a volume with empty files, 1,000 per directory, keeping up to
WINDOW CREATE calls in flight on one connection (the interop tests' nfs_rpc
module provides MOUNT and the XDR helpers). `measure` then times LOOKUP of a
random existing name in its directory and GETATTR of the handle it returned,
one call at a time, and reports p50/p99 in microseconds. Directories hold the
same number of entries at every volume size, so only the volume grows."""

import random
import socket
import struct
import time

import nfs_rpc
from nfs_rpc import _opaque, _sattr, _string, _u32

NFS_PROG, NFS_VERS = 100003, 3
GETATTR, LOOKUP, CREATE, MKDIR = 1, 3, 8, 9
PER_DIR = 1000
WINDOW = 32
TIMEOUT = 60.0


class Conn:
    """One NFSv3 connection with many calls in flight."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.f = self.sock.makefile("rb")
        body = _u32(0) + _opaque(b"nitrobench") + _u32(0) + _u32(0) + _u32(0)
        self.cred = _u32(1) + _opaque(body)
        self.xid = random.randrange(1 << 30)

    def close(self):
        self.f.close()
        self.sock.close()

    def send(self, proc, args):
        self.xid = (self.xid + 1) & 0xFFFFFFFF
        msg = _u32(self.xid) + _u32(0) + _u32(2) + _u32(NFS_PROG) + _u32(NFS_VERS) + _u32(proc)
        msg += self.cred + _u32(0) + _u32(0) + args
        self.sock.sendall(_u32(0x8000_0000 | len(msg)) + msg)
        return self.xid

    def recv(self):
        """(xid, nfsstat3, reader positioned after the status)."""
        data = b""
        for _ in range(1 << 12):  # fragments; bounded
            hdr = self.f.read(4)
            if len(hdr) < 4:
                raise ConnectionError("server closed the connection")
            (mark,) = struct.unpack(">I", hdr)
            data += self.f.read(mark & 0x7FFF_FFFF)
            if mark & 0x8000_0000:
                break
        r = nfs_rpc._Reader(data)
        xid = r.u32()
        if r.u32() != 1 or r.u32() != 0:
            raise ValueError("RPC reply denied")
        r.u32()
        r.opaque()
        if r.u32() != 0:
            raise ValueError("RPC call not accepted")
        return xid, r.u32(), r

    def call(self, proc, args):
        xid = self.send(proc, args)
        got, status, r = self.recv()
        if got != xid:
            raise ValueError("out-of-order reply on a sequential call")
        return status, r

    def lookup(self, dir_fh, name):
        status, r = self.call(LOOKUP, _opaque(dir_fh) + _string(name))
        if status != 0:
            raise nfs_rpc.NfsError(LOOKUP, status)
        return r.opaque()

    def getattr(self, fh):
        status, _ = self.call(GETATTR, _opaque(fh))
        if status != 0:
            raise nfs_rpc.NfsError(GETATTR, status)

    def mkdir_p(self, dir_fh, name):
        status, r = self.call(MKDIR, _opaque(dir_fh) + _string(name) + _sattr(mode=0o755))
        if status == 17:  # NFS3ERR_EXIST
            return self.lookup(dir_fh, name)
        if status != 0:
            raise nfs_rpc.NfsError(MKDIR, status)
        if r.u32() != 1:
            return self.lookup(dir_fh, name)
        return r.opaque()


def root_handle(target):
    with nfs_rpc.Client(target.mnt_port) as c:
        return c.mount(target.export)


def populate(target, have, want, deadline_s=3600):
    """Creates files have..want-1 (d<k>/f<j>, PER_DIR per directory) under /meta.
    Returns creates per second."""
    root = root_handle(target)
    conn = Conn(target.nfs_port)
    try:
        top = conn.mkdir_p(root, "meta")
        t0 = time.monotonic()
        inflight = 0
        dir_fh, cur_dir = None, None
        for i in range(have, want):
            d = i // PER_DIR
            if d != cur_dir:
                while inflight:  # finish the previous directory's creates first
                    _, st, _ = conn.recv()
                    inflight -= 1
                    if st != 0:
                        raise nfs_rpc.NfsError(CREATE, st)
                dir_fh, cur_dir = conn.mkdir_p(top, f"d{d:05d}"), d
            how = _u32(0) + _sattr(mode=0o644)  # UNCHECKED
            conn.send(CREATE, _opaque(dir_fh) + _string(f"f{i % PER_DIR:05d}") + how)
            inflight += 1
            if inflight >= WINDOW:
                _, st, _ = conn.recv()
                inflight -= 1
                if st != 0:
                    raise nfs_rpc.NfsError(CREATE, st)
            if time.monotonic() - t0 > deadline_s:
                raise TimeoutError(f"populate did not finish within {deadline_s}s")
        while inflight:
            _, st, _ = conn.recv()
            inflight -= 1
            if st != 0:
                raise nfs_rpc.NfsError(CREATE, st)
        dt = time.monotonic() - t0
    finally:
        conn.close()
    return (want - have) / dt if want > have else 0.0


def measure(target, files, samples, seed):
    """LOOKUP and GETATTR latency (p50/p99 µs) over `samples` random existing files."""
    rng = random.Random(seed)
    root = root_handle(target)
    conn = Conn(target.nfs_port)
    try:
        top = conn.lookup(root, "meta")
        picks = sorted((rng.randrange(files) for _ in range(samples)), key=lambda _: rng.random())
        dirs = {}
        for i in picks:  # directory handles, unmeasured
            d = i // PER_DIR
            if d not in dirs:
                dirs[d] = conn.lookup(top, f"d{d:05d}")
        lk, ga = [], []
        for i in picks:
            t0 = time.perf_counter()
            fh = conn.lookup(dirs[i // PER_DIR], f"f{i % PER_DIR:05d}")
            t1 = time.perf_counter()
            conn.getattr(fh)
            t2 = time.perf_counter()
            lk.append(t1 - t0)
            ga.append(t2 - t1)
    finally:
        conn.close()
    lk.sort()
    ga.sort()

    def pct(xs, q):
        return xs[min(len(xs) - 1, int(len(xs) * q))] * 1e6

    return {"lookup_p50_us": pct(lk, 0.5), "lookup_p99_us": pct(lk, 0.99),
            "getattr_p50_us": pct(ga, 0.5), "getattr_p99_us": pct(ga, 0.99)}
