"""KV-cache workloads: `nitrofs kv bench`, redis-benchmark and the Mooncake
Python client, with the same value size, batch, concurrency and key counts.

A "batch" is one round trip carrying `batch` keys: a BATCH_PUT/BATCH_GET/
PREFIX_MATCH frame for NitroFS, a pipeline of `batch` SET/GET commands
(`-P batch`) or one EXISTS over 64 keys for Redis, one put_batch/get_batch/
batch_is_exist call for Mooncake. Latency is per round trip. Every result is
{keys_s, gib_s, p50_ms, p99_ms}. Each server's state is reset (space
recreated, FLUSHALL, remove_all) before each measurement, unmeasured."""

import csv
import io
import json
import re
import sys
from pathlib import Path

from lib import find_tool, run

HERE = Path(__file__).resolve().parent
SPACE = "bench"


def _ms(text):
    v, unit = text.split()
    return float(v) * {"ms": 1.0, "us": 1e-3, "s": 1e3}[unit]


def nitrofs(n, op, size, count, batch, conc, keyspace, capacity):
    try:
        n.admin("kv-space", "delete", SPACE)
    except RuntimeError:
        pass
    n.admin("kv-space", "create", SPACE, "--capacity", str(capacity), "--durability", "memory")
    cmd, env = n.kv_cmd("bench", "--space", SPACE, "--op", op, "--size", str(size), "--count", str(count),
                        "--concurrency", str(conc), "--batch", str(batch), "--keyspace", str(keyspace),
                        "--no-progress")
    out = run(cmd, timeout=900, env=env).stdout
    f = dict(re.findall(r"^([\w/]+): (.+)$", out, re.M))
    return {"keys_s": float(f["keys/s"]), "gib_s": float(f["GiB/s"]), "p50_ms": _ms(f["p50"]), "p99_ms": _ms(f["p99"])}


def nitrofs_cmdline(op, size, count, batch, conc, keyspace):
    return (f"nitrofs kv bench --space {SPACE} --op {op} --size {size} --count {count} "
            f"--concurrency {conc} --batch {batch} --keyspace {keyspace}")


def redis_cmd(r, op, size, count, batch, conc, keyspace):
    bench = find_tool("redis-benchmark")
    base = [bench, "-h", "127.0.0.1", "-p", str(r.port), "-c", str(conc), "--csv"]
    if op == "batch-put":
        return base + ["-n", str(count * batch), "-P", str(batch), "-d", str(size), "-r", str(count * batch), "-t", "set"]
    if op == "batch-get":
        return base + ["-n", str(count * batch), "-P", str(batch), "-d", str(size), "-r", str(keyspace), "-t", "get"]
    # prefix-match: one EXISTS over `batch` keys per round trip
    return base + ["-n", str(count), "-r", str(keyspace), "EXISTS", *(["key:__rand_int__"] * batch)]


def redis(r, op, size, count, batch, conc, keyspace):
    cli = find_tool("redis-cli")
    run([cli, "-p", str(r.port), "flushall"], timeout=120)
    if op in ("batch-get", "prefix-match"):
        # Load the key space, unmeasured: key:<12 digits> as redis-benchmark names them
        # (the even ones only for prefix-match, as nitrofs kv bench does).
        step = 2 if op == "prefix-match" else 1
        _redis_load(r.port, keyspace, step, size)
    out = run(redis_cmd(r, op, size, count, batch, conc, keyspace), timeout=900).stdout
    rows = list(csv.DictReader(io.StringIO(out)))
    if not rows:
        raise RuntimeError(f"redis-benchmark printed no result: {out[-300:]}")
    row = rows[-1]
    rps = float(row["rps"])
    keys_s = rps if op != "prefix-match" else rps * batch
    # With -P, redis-benchmark's latencies are per request inside a pipeline (they do not add
    # up to the round trips it completes: Little's law gives several times more), so only the
    # unpipelined EXISTS over 64 keys reports a round-trip latency.
    pipelined = op != "prefix-match"
    return {"keys_s": keys_s, "gib_s": keys_s * size / (1 << 30) if op != "prefix-match" else 0.0,
            "p50_ms": None if pipelined else float(row["p50_latency_ms"]),
            "p99_ms": None if pipelined else float(row["p99_latency_ms"])}


def _redis_load(port, keyspace, step, size):
    import socket

    value = b"v" * size
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        f = s.makefile("rb")
        sent = 0
        for k in range(0, keyspace, step):
            key = f"key:{k:012d}".encode()
            s.sendall(b"*3\r\n$3\r\nSET\r\n$%d\r\n%s\r\n$%d\r\n" % (len(key), key, size) + value + b"\r\n")
            sent += 1
        for _ in range(sent):
            line = f.readline()
            if not line.startswith(b"+OK"):
                raise RuntimeError(f"redis load: {line!r}")


def mooncake(m, op, size, count, batch, conc, keyspace, tag):
    cmd = [sys.executable, HERE / "mooncake_bench.py", "--master", m.master_addr, "--metadata", m.metadata,
           "--op", op, "--size", str(size), "--count", str(count), "--batch", str(batch),
           "--concurrency", str(conc), "--keyspace", str(keyspace), "--tag", tag]
    out = run(cmd, timeout=900, env=m.env)
    line = [ln for ln in out.stdout.splitlines() if ln.startswith("{")]
    if not line:
        raise RuntimeError(f"mooncake bench printed no result: {out.stderr[-400:]}")
    return json.loads(line[-1])
