"""A minimal NFSv3 client over ONC-RPC/TCP with AUTH_SYS, for what
libnfs-utils cannot do: MKDIR, SETATTR (chmod/chown), CREATE, WRITE, READ,
ACCESS and GETATTR as a chosen uid/gid. It encodes only the calls the tests
make and decodes only what they check of each reply (RFC 1813, RFC 5531)."""

import socket
import struct

MOUNT_PROG, MOUNT_VERS, MOUNTPROC_MNT = 100005, 3, 1
NFS_PROG, NFS_VERS = 100003, 3
NFSPROC_GETATTR, NFSPROC_SETATTR, NFSPROC_LOOKUP = 1, 2, 3
NFSPROC_ACCESS, NFSPROC_READ, NFSPROC_WRITE = 4, 6, 7
NFSPROC_CREATE, NFSPROC_MKDIR, NFSPROC_REMOVE = 8, 9, 12
FILE_SYNC = 2
# ACCESS3 bits (RFC 1813 3.3.4).
ACCESS_READ, ACCESS_LOOKUP, ACCESS_MODIFY = 0x01, 0x02, 0x04
ACCESS_EXTEND, ACCESS_DELETE, ACCESS_EXECUTE = 0x08, 0x10, 0x20
ACCESS_ALL = 0x3F
FATTR3_LEN = 84
TIMEOUT = 30.0


class NfsError(Exception):
    """A reply with a non-zero nfsstat3 / mountstat3."""

    def __init__(self, proc, status):
        super().__init__(f"NFS procedure {proc} failed with status {status}")
        self.proc = proc
        self.status = status


def _u32(v):
    return struct.pack(">I", v)


def _u64(v):
    return struct.pack(">Q", v)


def _opaque(data):
    pad = (4 - len(data) % 4) % 4
    return _u32(len(data)) + data + b"\0" * pad


def _string(s):
    return _opaque(s.encode())


def _sattr(mode=None, uid=None, gid=None, size=None):
    out = b""
    for value in (mode, uid, gid):
        out += _u32(0) if value is None else _u32(1) + _u32(value)
    out += _u32(0) if size is None else _u32(1) + _u64(size)
    return out + _u32(0) + _u32(0)  # atime, mtime: DONT_CHANGE


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def u32(self):
        if self.pos + 4 > len(self.data):
            raise ValueError("truncated RPC reply")
        (v,) = struct.unpack_from(">I", self.data, self.pos)
        self.pos += 4
        return v

    def opaque(self):
        n = self.u32()
        if n > 1 << 20 or self.pos + n > len(self.data):
            raise ValueError("bad opaque length in RPC reply")
        v = self.data[self.pos : self.pos + n]
        self.pos += n + (4 - n % 4) % 4
        return v


class Client:
    """One TCP connection to the server's NFS+MOUNT port, acting as uid/gid."""

    def __init__(self, port, uid=0, gid=0, groups=()):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.xid = 0x4E46_0000
        stamp, machine = 0, b"pytest"
        body = _u32(stamp) + _opaque(machine) + _u32(uid) + _u32(gid)
        body += _u32(len(groups)) + b"".join(_u32(g) for g in groups)
        self.cred = _u32(1) + _opaque(body)  # AUTH_SYS

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _recv_exact(self, n):
        buf = b""
        while len(buf) < n:
            chunk = self.sock.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("server closed the connection mid-reply")
            buf += chunk
        return buf

    def _call(self, prog, vers, proc, args):
        self.xid += 1
        msg = _u32(self.xid) + _u32(0) + _u32(2) + _u32(prog) + _u32(vers) + _u32(proc)
        msg += self.cred + _u32(0) + _u32(0) + args
        self.sock.sendall(_u32(0x8000_0000 | len(msg)) + msg)
        reply = b""
        for _ in range(1 << 16):  # fragments; bounded
            (mark,) = struct.unpack(">I", self._recv_exact(4))
            reply += self._recv_exact(mark & 0x7FFF_FFFF)
            if mark & 0x8000_0000:
                break
        r = _Reader(reply)
        if r.u32() != self.xid or r.u32() != 1:
            raise ValueError("unexpected RPC reply header")
        if r.u32() != 0:
            raise ValueError("RPC call denied")
        r.u32()
        r.opaque()  # verifier
        if (accept := r.u32()) != 0:
            raise ValueError(f"RPC call not accepted: accept_stat {accept}")
        return r

    def _nfs(self, proc, args):
        r = self._call(NFS_PROG, NFS_VERS, proc, args)
        status = r.u32()
        if status != 0:
            raise NfsError(proc, status)
        return r

    def mount(self, path):
        """MNT: the root handle of an export such as `/bucket`."""
        r = self._call(MOUNT_PROG, MOUNT_VERS, MOUNTPROC_MNT, _string(path))
        status = r.u32()
        if status != 0:
            raise NfsError("MNT", status)
        return r.opaque()

    def lookup(self, dir_fh, name):
        return self._nfs(NFSPROC_LOOKUP, _opaque(dir_fh) + _string(name)).opaque()

    def resolve(self, export, path):
        """Handle of `path` (slash-separated, relative) inside `export`."""
        fh = self.mount(export)
        for part in filter(None, path.split("/")):
            fh = self.lookup(fh, part)
        return fh

    def _skip_post_op_attr(self, r):
        if r.u32():
            r.pos += FATTR3_LEN

    def getattr(self, fh):
        """GETATTR: (mode, uid, gid) of an object."""
        r = self._nfs(NFSPROC_GETATTR, _opaque(fh))
        r.u32()  # type
        mode = r.u32()
        r.u32()  # nlink
        return mode, r.u32(), r.u32()

    def access(self, fh, bits=ACCESS_ALL):
        """ACCESS: the subset of `bits` the server grants this caller."""
        r = self._nfs(NFSPROC_ACCESS, _opaque(fh) + _u32(bits))
        self._skip_post_op_attr(r)
        return r.u32()

    def read(self, fh, offset=0, count=1 << 16):
        """READ: the bytes returned (one call)."""
        r = self._nfs(NFSPROC_READ, _opaque(fh) + _u64(offset) + _u32(count))
        self._skip_post_op_attr(r)
        r.u32()  # count
        r.u32()  # eof
        return r.opaque()

    def _new_fh(self, r):
        if r.u32() != 1:
            raise ValueError("server returned no file handle")
        return r.opaque()

    def mkdir(self, dir_fh, name, mode=0o755):
        r = self._nfs(NFSPROC_MKDIR, _opaque(dir_fh) + _string(name) + _sattr(mode=mode))
        return self._new_fh(r)

    def create(self, dir_fh, name, mode=0o644):
        how = _u32(0) + _sattr(mode=mode)  # UNCHECKED
        r = self._nfs(NFSPROC_CREATE, _opaque(dir_fh) + _string(name) + how)
        return self._new_fh(r)

    def write(self, fh, offset, data):
        args = _opaque(fh) + _u64(offset) + _u32(len(data)) + _u32(FILE_SYNC) + _opaque(data)
        self._nfs(NFSPROC_WRITE, args)

    def setattr(self, fh, mode=None, uid=None, gid=None, size=None):
        self._nfs(NFSPROC_SETATTR, _opaque(fh) + _sattr(mode, uid, gid, size) + _u32(0))

    def remove(self, dir_fh, name):
        self._nfs(NFSPROC_REMOVE, _opaque(dir_fh) + _string(name))

    def makedirs(self, export, path, mode=0o755):
        """mkdir -p inside an export; returns the handle of the last directory."""
        fh = self.mount(export)
        for part in filter(None, path.split("/")):
            try:
                fh = self.lookup(fh, part)
            except NfsError as e:
                if e.status != 2:  # NFS3ERR_NOENT
                    raise
                fh = self.mkdir(fh, part, mode)
        return fh

    def write_file(self, export, path, data, mode=0o644):
        """Creates (or truncates) `path` and writes `data` with FILE_SYNC."""
        parent, _, name = path.rpartition("/")
        dir_fh = self.makedirs(export, parent) if parent else self.mount(export)
        fh = self.create(dir_fh, name, mode)
        self.setattr(fh, size=0)
        step = 512 * 1024
        for off in range(0, len(data), step):
            self.write(fh, off, data[off : off + step])
        return fh
