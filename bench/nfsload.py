"""NFSv3 load through libnfs (the PyPI `libnfs` binding over Debian's libnfs 4),
the same client code for NitroFS and nfs-ganesha.

Each worker is a separate process with its own libnfs context (one TCP
connection); libnfs splits a large pread/pwrite into rsize/wsize RPCs that it
keeps in flight together. Workers meet at a barrier before each measured
phase; a phase lasts from the first worker's start to the last one's end."""

import multiprocessing as mp
import os
import time

import libnfs

BLOCK = 8 << 20  # bytes per pread/pwrite call


class NfsError(RuntimeError):
    pass


def _check(nfs, rc, what):
    if rc < 0:
        raise NfsError(f"{what}: {libnfs.nfs_get_error(nfs)} ({rc})")
    return rc


class Ctx:
    def __init__(self, url):
        self.nfs = libnfs.nfs_init_context()
        if self.nfs is None:
            raise NfsError("nfs_init_context failed")
        self.url = libnfs.nfs_parse_url_dir(self.nfs, url)
        if self.url is None:
            raise NfsError(f"bad NFS url {url}: {libnfs.nfs_get_error(self.nfs)}")
        _check(self.nfs, libnfs.nfs_mount(self.nfs, self.url.server, self.url.path), "mount")

    def mkdir(self, path):
        rc = libnfs.nfs_mkdir(self.nfs, path)
        if rc < 0 and rc != -17:  # EEXIST
            _check(self.nfs, rc, f"mkdir {path}")

    def create(self, path):
        fhp = libnfs.new_NFSFileHandle()
        _check(self.nfs, libnfs.nfs_create(self.nfs, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, fhp),
               f"create {path}")
        return libnfs.NFSFileHandle_value(fhp)

    def open_read(self, path):
        fhp = libnfs.new_NFSFileHandle()
        _check(self.nfs, libnfs.nfs_open(self.nfs, path, os.O_RDONLY, fhp), f"open {path}")
        return libnfs.NFSFileHandle_value(fhp)

    def pwrite(self, fh, off, buf):
        n = _check(self.nfs, libnfs.nfs_pwrite(self.nfs, fh, off, len(buf), buf), "pwrite")
        if n != len(buf):
            raise NfsError(f"short write {n} of {len(buf)}")

    def pread(self, fh, off, buf):
        return _check(self.nfs, libnfs.nfs_pread(self.nfs, fh, off, len(buf), buf), "pread")

    def fsync(self, fh):
        _check(self.nfs, libnfs.nfs_fsync(self.nfs, fh), "fsync (COMMIT)")

    def close(self, fh):
        _check(self.nfs, libnfs.nfs_close(self.nfs, fh), "close")

    def stat(self, path):
        st = libnfs.nfs_stat_64()
        _check(self.nfs, libnfs.nfs_stat64(self.nfs, path, st), f"stat {path}")
        return st.nfs_size

    def listdir(self, path):
        dp = libnfs.new_NFSDirHandle()
        _check(self.nfs, libnfs.nfs_opendir(self.nfs, path, dp), f"opendir {path}")
        d = libnfs.NFSDirHandle_value(dp)
        n = 0
        for _ in range(10_000_000):  # bounded
            de = libnfs.nfs_readdir(self.nfs, d)
            if de is None:
                break
            n += 1
        libnfs.nfs_closedir(self.nfs, d)
        return n

    def unlink(self, path):
        libnfs.nfs_unlink(self.nfs, path)

    def close_ctx(self):
        libnfs.nfs_destroy_url(self.url)
        libnfs.nfs_destroy_context(self.nfs)


def _worker(fn, url, arg, barrier, out, idx):
    try:
        ctx = Ctx(url)
        res = fn(ctx, arg, barrier)
        ctx.close_ctx()
        out.put((idx, res, None))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass
        out.put((idx, None, f"{type(e).__name__}: {e}"))


def parallel(fn, url, args, timeout):
    """Runs fn(ctx, arg, barrier) in one process per arg; returns the results in order."""
    mpc = mp.get_context("fork")
    barrier = mpc.Barrier(len(args), timeout=timeout)
    out = mpc.Queue()
    procs = [mpc.Process(target=_worker, args=(fn, url, a, barrier, out, i), daemon=True) for i, a in enumerate(args)]
    for p in procs:
        p.start()
    results, errors = [None] * len(args), []
    deadline = time.monotonic() + timeout
    try:
        for _ in args:
            idx, res, err = out.get(timeout=max(1.0, deadline - time.monotonic()))
            results[idx] = res
            if err:
                errors.append(err)
    finally:
        for p in procs:
            p.join(timeout=10)
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
    if errors:
        raise NfsError("; ".join(sorted(set(errors))[:3]))
    return results


def span(results, phase):
    """Seconds from the first start to the last end of `phase` across workers."""
    return max(r[phase][1] for r in results) - min(r[phase][0] for r in results)


# -- checkpoint: N writers x size, flush, read back ---------------------------------------


def _ckpt(ctx, arg, barrier):
    path, size, seed = arg
    buf = bytearray(os.urandom(BLOCK))
    buf[:8] = seed.to_bytes(8, "little")
    res = {}
    barrier.wait()
    t0 = time.monotonic()
    fh = ctx.create(path)
    for off in range(0, size, BLOCK):
        ctx.pwrite(fh, off, buf if off + BLOCK <= size else buf[: size - off])
    ctx.fsync(fh)
    ctx.close(fh)
    res["write"] = (t0, time.monotonic())
    rbuf = bytearray(BLOCK)
    barrier.wait()
    t0 = time.monotonic()
    fh = ctx.open_read(path)
    got = 0
    for off in range(0, size, BLOCK):
        n = ctx.pread(fh, off, rbuf)
        if n <= 0:
            break
        got += n
    ctx.close(fh)
    res["read"] = (t0, time.monotonic())
    if got != size:
        raise NfsError(f"read back {got} of {size} bytes from {path}")
    ctx.unlink(path)
    return res


def checkpoint(target, writers, size, tag, timeout=1800):
    url = target.url()
    Ctx(url).mkdir("/ckpt")
    args = [(f"/ckpt/{tag}-w{i}.bin", size, i) for i in range(writers)]
    res = parallel(_ckpt, url, args, timeout)
    total = writers * size
    return {"write": total / span(res, "write"), "read": total / span(res, "read")}


# -- small files: create+write, stat, read, list ------------------------------------------


def _small(ctx, arg, barrier):
    root, dirs, per_dir, fsize = arg
    data = bytearray(os.urandom(fsize))
    rbuf = bytearray(fsize)
    for d in dirs:
        ctx.mkdir(f"{root}/d{d:03d}")
    names = [f"{root}/d{d:03d}/f{j:06d}" for d in dirs for j in range(per_dir)]
    res = {}
    barrier.wait()
    t0 = time.monotonic()
    for p in names:
        fh = ctx.create(p)
        ctx.pwrite(fh, 0, data)
        ctx.close(fh)
    res["create"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    for p in names:
        if ctx.stat(p) != fsize:
            raise NfsError(f"stat {p}: wrong size")
    res["stat"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    for p in names:
        fh = ctx.open_read(p)
        if ctx.pread(fh, 0, rbuf) != fsize:
            raise NfsError(f"read {p}: short")
        ctx.close(fh)
    res["read"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    listed = sum(ctx.listdir(f"{root}/d{d:03d}") for d in dirs)
    res["list"] = (t0, time.monotonic())
    if listed < len(names):
        raise NfsError(f"listed {listed} entries, expected at least {len(names)}")
    return res


def small_files(target, files, dirs, workers, fsize, tag, timeout=3600):
    url = target.url()
    root = f"/small-{tag}"
    Ctx(url).mkdir(root)
    per_dir = max(1, files // dirs)
    args = [(root, list(range(w, dirs, workers)), per_dir, fsize) for w in range(workers)]
    res = parallel(_small, url, args, timeout)
    n = per_dir * dirs
    return {ph: n / span(res, ph) for ph in ("create", "stat", "read")} | {"list": n / span(res, "list")}
