"""S3 load through boto3, the same client code and settings for every server.

Workers are processes (boto3 signs and hashes in Python, so threads would
share one core's GIL); each has its own client. Large objects go through
boto3's managed transfer (multipart upload, parallel ranged GETs)."""

import multiprocessing as mp
import os
import time

from peers import s3_client

PART = 16 << 20


class _Source:
    """A readable stream of `size` bytes made of one random block, repeated."""

    def __init__(self, size, block):
        self.size, self.block, self.pos = size, block, 0

    def read(self, n=-1):
        left = self.size - self.pos
        if left <= 0:
            return b""
        n = left if n is None or n < 0 else min(n, left)
        out = bytearray()
        while len(out) < n:
            off = (self.pos + len(out)) % len(self.block)
            out += self.block[off : off + (n - len(out))]
        self.pos += n
        return bytes(out)


class _Sink:
    def __init__(self):
        self.n = 0

    def write(self, b):
        self.n += len(b)
        return len(b)


def _worker(fn, target, arg, barrier, out, idx):
    try:
        out.put((idx, fn(s3_client(target), target.bucket, arg, barrier), None))
    except Exception as e:  # noqa: BLE001 - reported to the parent
        try:
            barrier.abort()
        except Exception:  # noqa: BLE001
            pass
        out.put((idx, None, f"{type(e).__name__}: {e}"))


def parallel(fn, target, args, timeout):
    mpc = mp.get_context("fork")
    barrier = mpc.Barrier(len(args), timeout=timeout)
    out = mpc.Queue()
    procs = [mpc.Process(target=_worker, args=(fn, target, a, barrier, out, i), daemon=True) for i, a in enumerate(args)]
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
        raise RuntimeError("; ".join(sorted(set(errors))[:3]))
    return results


def span(results, phase):
    return max(r[phase][1] for r in results) - min(r[phase][0] for r in results)


def _ckpt(c, bucket, arg, barrier):
    from boto3.s3.transfer import TransferConfig

    key, size, threads = arg
    cfg = TransferConfig(multipart_threshold=PART, multipart_chunksize=PART, max_concurrency=threads, use_threads=True)
    block = os.urandom(PART)
    res = {}
    barrier.wait()
    t0 = time.monotonic()
    c.upload_fileobj(_Source(size, block), bucket, key, Config=cfg)
    res["write"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    sink = _Sink()
    c.download_fileobj(bucket, key, sink, Config=cfg)
    res["read"] = (t0, time.monotonic())
    if sink.n != size:
        raise RuntimeError(f"downloaded {sink.n} of {size} bytes of {key}")
    c.delete_object(Bucket=bucket, Key=key)
    return res


def keys(writers, tag):
    """The checkpoint's object keys."""
    return [f"ckpt/{tag}-w{i}.bin" for i in range(writers)]


def checkpoint(target, writers, size, tag, threads=4, timeout=1800):
    args = [(k, size, threads) for k in keys(writers, tag)]
    res = parallel(_ckpt, target, args, timeout)
    total = writers * size
    return {"write": total / span(res, "write"), "read": total / span(res, "read")}


def _small(c, bucket, arg, barrier):
    root, dirs, per_dir, fsize = arg
    data = os.urandom(fsize)
    keys = [f"{root}/d{d:03d}/f{j:06d}" for d in dirs for j in range(per_dir)]
    res = {}
    barrier.wait()
    t0 = time.monotonic()
    for k in keys:
        c.put_object(Bucket=bucket, Key=k, Body=data)
    res["create"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    for k in keys:
        if c.head_object(Bucket=bucket, Key=k)["ContentLength"] != fsize:
            raise RuntimeError(f"HEAD {k}: wrong size")
    res["stat"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    for k in keys:
        if len(c.get_object(Bucket=bucket, Key=k)["Body"].read()) != fsize:
            raise RuntimeError(f"GET {k}: short")
    res["read"] = (t0, time.monotonic())
    barrier.wait()
    t0 = time.monotonic()
    listed = 0
    pager = c.get_paginator("list_objects_v2")
    for d in dirs:
        for page in pager.paginate(Bucket=bucket, Prefix=f"{root}/d{d:03d}/", PaginationConfig={"PageSize": 1000}):
            listed += page.get("KeyCount", 0)
    res["list"] = (t0, time.monotonic())
    if listed != len(keys):
        # More would mean someone else's keys under the prefixes: the rate
        # would then count only part of the work done.
        raise RuntimeError(f"listed {listed} keys, expected {len(keys)}")
    return res


def small_files(target, files, dirs, workers, fsize, tag, timeout=3600):
    per_dir = max(1, files // dirs)
    root = f"small-{tag}"
    args = [(root, list(range(w, dirs, workers)), per_dir, fsize) for w in range(workers)]
    res = parallel(_small, target, args, timeout)
    n = per_dir * dirs
    return {ph: n / span(res, ph) for ph in ("create", "stat", "read", "list")}
