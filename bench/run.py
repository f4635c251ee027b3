#!/usr/bin/env python3
"""NitroFS side by side with the servers users would pick instead (issue 6).

Starts NitroFS and each peer on loopback (own ports, own temp dir), runs the
same client against each, interleaved (A B C, A B C, ...) for --reps
repetitions, and prints medians, ratios and the fraction of the machine's
physical limits (iperf3 loopback, memcpy, fio on the data dir's disk) as a
Markdown table, also written to bench/results/<timestamp>.md.

Run it through scripts/bench.sh, which installs the peers and gives the run a
private network namespace. A peer that cannot run here becomes a row
"n/a (reason)"; it never stops the others."""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from lib import (GiB, MiB, REPO, Procs, Unavailable, block_device, cpu_seconds, cpu_spent, disk_bytes, find_tool, free_port, listening_pids, log,  # noqa: E402
                 median, poll, run, tcp_open)
import peers  # noqa: E402

SECTIONS = ("nfs", "s3", "kv", "smallfiles", "meta")
ARGV_DISPLAY = ["scripts/bench.sh"]


@dataclass
class Sizes:
    ckpt_writers: int
    ckpt_size: int
    native_count: int
    kv: dict
    small_nfs: int
    small_s3: int
    meta_small: int
    meta_large: int
    meta_samples: int
    fio_size: int
    iperf_secs: int


QUICK = Sizes(
    ckpt_writers=4, ckpt_size=32 * MiB, native_count=32,
    kv={"256KiB": (256 << 10, 16, 30), "2MiB": (2 << 20, 4, 20), "4KiB": (4 << 10, 64, 100), "prefix": (4 << 10, 64, 1000)},
    small_nfs=1000, small_s3=200, meta_small=1000, meta_large=10000, meta_samples=500,
    fio_size=512 * MiB, iperf_secs=2,
)
FULL = Sizes(
    ckpt_writers=8, ckpt_size=256 * MiB, native_count=256,
    kv={"256KiB": (256 << 10, 16, 200), "2MiB": (2 << 20, 4, 200), "4KiB": (4 << 10, 64, 1000), "prefix": (4 << 10, 64, 10000)},
    small_nfs=20000, small_s3=3000, meta_small=10000, meta_large=200000, meta_samples=2000,
    fio_size=2 * GiB, iperf_secs=5,
)
KV_CONC = 8
# Mooncake's Python client is slower with more threads in flight (a side test: 256 KiB batch
# gets through batch_get_into at 748 MiB/s with 1 thread, 289 MiB/s with 8), so it runs at
# its best, one batch at a time (its throughput rows are for 1 in flight, the others' for 8).
MOONCAKE_CONC = 1
KV_KEYSPACE = {"256KiB": 256, "2MiB": 128, "4KiB": 4096, "prefix": 4096}


@dataclass
class Row:
    workload: str
    metric: str
    unit: str
    higher_better: bool
    cmd: str
    limit: tuple = None  # (name, bytes/s) for throughput rows
    ceiling: str = None  # a system measured as a limit (the client's own ceiling), not as a peer
    samples: dict = field(default_factory=dict)  # system -> [values]
    errors: dict = field(default_factory=dict)  # system -> reason


class Report:
    def __init__(self):
        self.rows, self.order, self.unavailable, self.notes = [], [], {}, []
        self.machine = {}
        # What each system's server processes spent per repetition of a
        # workload: label -> system -> [CPU seconds].
        self.cpu = {}
        # The block device the servers' data is on (None: not sampled), and
        # what was read from and written to it in the same windows: label ->
        # system -> [(bytes read, bytes written)].
        self.disk = None
        self.io = {}

    def row(self, workload, metric, unit, higher_better, cmd, limit=None, ceiling=None):
        for r in self.rows:
            if r.workload == workload and r.metric == metric:
                return r
        r = Row(workload, metric, unit, higher_better, cmd, limit, ceiling)
        self.rows.append(r)
        return r

    def add(self, row, system, value):
        row.samples.setdefault(system, []).append(value)

    def fail(self, row, system, reason):
        row.errors[system] = reason

    def add_cpu(self, label, system, seconds):
        self.cpu.setdefault(label, {}).setdefault(system, []).append(seconds)

    def add_io(self, label, system, read, written):
        self.io.setdefault(label, {}).setdefault(system, []).append((read, written))


def fmt(v, unit):
    if v is None:
        return "–"
    if unit == "B/s":
        return f"{v / MiB:,.0f} MiB/s" if v < 10 * GiB else f"{v / GiB:,.1f} GiB/s"
    if unit in ("ms", "µs", "s"):
        return f"{v:,.3g} {unit}" if v < 100 else f"{v:,.0f} {unit}"
    return f"{v:,.0f} {unit}"


def short(reason):
    reason = " ".join(str(reason).split())
    return reason if len(reason) < 140 else reason[:137] + "…"


# -- baselines ---------------------------------------------------------------------------


def baselines(procs, work, sizes, report):
    out = {}
    # memcpy: copy a 256 MiB buffer into another (memoryview slice assignment is memcpy).
    n = 256 * MiB
    a, b = bytearray(os.urandom(1 << 20)) * 256, bytearray(n)
    best = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        memoryview(b)[:] = a
        best = max(best, n / (time.perf_counter() - t0))
    out["memcpy"] = best
    del a, b
    report.machine["memcpy (256 MiB, best of 5)"] = fmt(best, "B/s")
    # iperf3 over loopback.
    try:
        iperf = find_tool("iperf3")
        if not iperf:
            raise Unavailable("iperf3 not installed (apt iperf3)")
        port = free_port()
        srv = procs.start("iperf3", [iperf, "-s", "-p", port, "-B", "127.0.0.1"], work / "iperf3.log")
        poll(lambda: tcp_open(port), 20, "iperf3 -s", srv)
        # 4 streams, as the KV client and the parallel NFS/S3 writers use several connections.
        res = json.loads(run([iperf, "-c", "127.0.0.1", "-p", port, "-t", sizes.iperf_secs, "-P", "4", "-J"], timeout=120).stdout)
        procs.stop(srv)
        out["loopback"] = res["end"]["sum_received"]["bits_per_second"] / 8
        report.machine[f"loopback TCP (iperf3 -c 127.0.0.1 -t {sizes.iperf_secs} -P 4, received)"] = fmt(out["loopback"], "B/s")
    except (Unavailable, RuntimeError, KeyError, ValueError) as e:
        report.machine["loopback TCP (iperf3)"] = f"n/a ({short(e)})"
    # fio on the data dir's disk.
    fio = find_tool("fio")
    if fio:
        for rw, key in (("write", "disk_write"), ("read", "disk_read")):
            cmd = [fio, f"--name=seq{rw}", f"--filename={work / 'fio.dat'}", f"--rw={rw}", "--bs=1M",
                   f"--size={sizes.fio_size}", "--ioengine=libaio", "--direct=1", "--iodepth=16",
                   "--output-format=json"] + (["--end_fsync=1"] if rw == "write" else [])
            try:
                res = json.loads(run(cmd, timeout=600).stdout)
                out[key] = res["jobs"][0][rw]["bw_bytes"]
                report.machine[f"disk sequential {rw} (fio {rw} 1M direct iodepth 16, {sizes.fio_size // MiB} MiB)"] = fmt(out[key], "B/s")
            except (RuntimeError, KeyError, ValueError, IndexError) as e:
                report.machine[f"disk sequential {rw} (fio)"] = f"n/a ({short(e)})"
        (work / "fio.dat").unlink(missing_ok=True)
    else:
        report.machine["disk (fio)"] = "n/a (fio not installed: apt fio)"
    return out


def limit_of(base, *names):
    vals = [base[n] for n in names if n in base]
    if not vals:
        return None
    return (" / ".join(names), min(vals))


# -- the workloads ----------------------------------------------------------------------------


def start_peer(report, procs, cls, *args):
    try:
        return cls(procs, *args)
    except Unavailable as e:
        report.unavailable[cls.name] = short(e)
        log(f"{cls.name}: n/a ({e})")
    except Exception as e:  # noqa: BLE001 - one peer never stops the others
        report.unavailable[cls.name] = short(f"{type(e).__name__}: {e}")
        log(f"{cls.name}: n/a ({e})")
    return None


def server_pids(target):
    """The processes serving `target`: whoever listens on an NFS or S3
    target's port (so a peer's worker processes count too), else the
    system's own processes (the KV servers)."""
    if isinstance(target, peers.NfsTarget):
        return listening_pids(target.nfs_port)
    if isinstance(target, peers.S3Target):
        return listening_pids(urllib.parse.urlsplit(target.endpoint).port)
    return set(target.server_pids()) if hasattr(target, "server_pids") else set()


def interleave(report, reps, systems, rows_fn, measure, prepare=None, cpu_label=None, cleanup=None, cpu_work=None):
    """For each repetition, measures every system in turn, the order rotated
    by one each time (A B C, B C A, C A B, ...): no system always runs first,
    right after the previous workload.

    Before each measurement, untimed, `prepare(name, target, rep)` runs if
    given, then the machine's dirty pages are written out (sync(2)): a
    server that leaves its writes to the kernel's writeback would otherwise
    have them land in the next system's timed run (the first NitroFS
    repetition of the S3 small-file phase, right after ganesha's NFS one,
    ran 35-40% below its next two).

    The CPU time the system's server processes spend during each
    measurement is recorded under `cpu_label` (all of the measurement's
    phases: they run in one go), divided by `cpu_work(name)` if given (when
    the systems do different amounts of work). `cleanup(name, target, rep)`,
    if given, runs after it is taken, even when the measurement failed
    (housekeeping the harness imposes, such as SeaweedFS's vacuum, is not
    the workload's cost)."""
    present = [(name, target) for name, target in systems if target is not None]
    for rep in range(reps):
        turn = rep % len(present) if present else 0
        for name, target in present[turn:] + present[:turn]:
            try:
                if prepare:
                    prepare(name, target, rep)
                os.sync()
                pids, cpu0 = sample_cpu(target) if cpu_label else (set(), {})
                io0 = disk_bytes(report.disk) if cpu_label and report.disk else None
                try:
                    results = measure(name, target, rep)
                    if pids:
                        spent = cpu_spent(cpu0, sample_cpu(target, pids)[1])
                        report.add_cpu(cpu_label, name, spent / (cpu_work(name) if cpu_work else 1))
                    if io0:
                        # What the system left in the page cache is its writing too (the next
                        # measurement's sync would write it out anyway); the sync is untimed.
                        os.sync()
                        io1 = disk_bytes(report.disk)
                        if io1:
                            report.add_io(cpu_label, name, io1[0] - io0[0], io1[1] - io0[1])
                finally:
                    if cleanup:
                        try:
                            cleanup(name, target, rep)
                        except Exception as e:  # noqa: BLE001 - the next measurement may still work
                            log(f"{name} rep {rep}: cleanup: {type(e).__name__}: {e}")
                for (row, value) in results:
                    report.add(row, name, value)
            except Exception as e:  # noqa: BLE001 - recorded in the table
                log(f"{name} rep {rep}: {type(e).__name__}: {e}")
                for row in rows_fn():
                    report.fail(row, name, short(f"{type(e).__name__}: {e}"))


def sample_cpu(target, pids=None):
    """(pids, CPU seconds by pid) of `target`'s server processes, those of
    an earlier sample if `pids` is given. A failure to read them costs the
    server-CPU figure only, not the measurement."""
    try:
        pids = server_pids(target) if pids is None else pids
        return pids, cpu_seconds(pids)
    except Exception as e:  # noqa: BLE001 - /proc parsing; the workload's rows do not depend on it
        log(f"server CPU of {target}: {type(e).__name__}: {e}")
        return set(), {}


def checkpoint_nfs(report, sizes, reps, nitro, ganesha, base):
    import nfsload

    w, s = sizes.ckpt_writers, sizes.ckpt_size
    cmd = (f"bench/nfsload.py checkpoint: {w} processes × {s // MiB} MiB, libnfs pwrite 8 MiB + fsync (COMMIT), "
           "then pread 8 MiB")
    rw = report.row("checkpoint NFS", f"write {w}×{s // MiB} MiB + COMMIT", "B/s", True, cmd, limit_of(base, "loopback", "disk_write"))
    rr = report.row("checkpoint NFS", f"read back {w}×{s // MiB} MiB", "B/s", True, cmd, limit_of(base, "loopback"))
    systems = [("NitroFS", nitro.nfs if nitro else None), ("nfs-ganesha", ganesha.nfs if ganesha else None)]

    def measure(name, target, rep):
        r = nfsload.checkpoint(target, w, s, f"r{rep}")
        log(f"checkpoint NFS {name} rep {rep}: write {r['write'] / MiB:.0f} MiB/s read {r['read'] / MiB:.0f} MiB/s")
        return [(rw, r["write"]), (rr, r["read"])]

    interleave(report, reps, systems, lambda: [rw, rr], measure, cpu_label=f"checkpoint NFS: {rw.metric}, then {rr.metric}")


def checkpoint_s3(report, sizes, reps, nitro, seaweed, rclone, null, base):
    """The S3 checkpoint through boto3, then through s5cmd (same servers, same sizes),
    and through the same clients against a null S3 server (nginx reading uploads in full
    and discarding them, sending staged files): the client's own ceiling, shown as a limit beside the
    physical ones."""
    import s3load
    import s5load

    w, s = sizes.ckpt_writers, sizes.ckpt_size
    clients = (
        ("checkpoint S3", s3load,
         f"bench/s3load.py checkpoint: {w} processes × {s // MiB} MiB, boto3 upload_fileobj/download_fileobj, "
         "16 MiB parts, 4 threads each"),
        ("checkpoint S3 (s5cmd)", s5load,
         f"s5cmd --numworkers {w} run: {w} × `cp --concurrency 4 --part-size 16` of {s // MiB} MiB from /dev/shm, "
         "then the same back into /dev/shm (bench/s5load.py)"),
    )
    systems = [("NitroFS", nitro.s3 if nitro else None), ("SeaweedFS", seaweed.s3 if seaweed else None),
               ("rclone serve s3", rclone.s3 if rclone else None)]
    ceiling = None
    if null:
        ceiling = null.name
        systems.append((ceiling, null.s3))
    for workload, mod, cmd in clients:
        rw = report.row(workload, f"multipart PUT {w}×{s // MiB} MiB", "B/s", True, cmd,
                        limit_of(base, "loopback", "disk_write"), ceiling)
        rr = report.row(workload, f"ranged GET {w}×{s // MiB} MiB", "B/s", True, cmd, limit_of(base, "loopback"),
                        ceiling)

        def prepare(name, target, rep, mod=mod):
            if name == ceiling:
                null.stage(mod.keys(w, f"r{rep}"), s)

        def measure(name, target, rep, workload=workload, rw=rw, rr=rr, mod=mod):
            r = mod.checkpoint(target, w, s, f"r{rep}")
            log(f"{workload} {name} rep {rep}: write {r['write'] / MiB:.0f} MiB/s read {r['read'] / MiB:.0f} MiB/s")
            return [(rw, r["write"]), (rr, r["read"])]

        def cleanup(name, target, rep):
            if name == "SeaweedFS":
                seaweed.reclaim(w * s)

        interleave(report, reps, systems, lambda rw=rw, rr=rr: [rw, rr], measure, prepare,
                   cpu_label=f"{workload}: {rw.metric}, then {rr.metric}", cleanup=cleanup)


def checkpoint_native(report, sizes, reps, nitro, base):
    """No native file client exists yet: KV put/get of 4 MiB values in a `disk` space stands in."""
    if nitro is None:
        return
    size, count = 4 * MiB, sizes.native_count
    cmd = (f"nitrofs kv bench --space ckpt --op put|get --size 4MiB --count {count} --concurrency 8 "
           f"--keyspace {count} (space: --durability disk)")
    rw = report.row("checkpoint native (KV stand-in)", f"put {count}×4 MiB, disk space (fsync)", "B/s", True, cmd,
                    limit_of(base, "loopback", "disk_write"))
    rr = report.row("checkpoint native (KV stand-in)", f"get {count}×4 MiB", "B/s", True, cmd, limit_of(base, "loopback"))
    for rep in range(reps):
        try:
            for op, row in (("put", rw), ("get", rr)):
                try:
                    nitro.admin("kv-space", "delete", "ckpt")
                except RuntimeError:
                    pass
                nitro.admin("kv-space", "create", "ckpt", "--capacity", str(4 * count * size), "--durability", "disk")
                c, env = nitro.kv_cmd("bench", "--space", "ckpt", "--op", op, "--size", "4MiB", "--count", str(count),
                                      "--concurrency", "8", "--keyspace", str(count), "--no-progress")
                out = run(c, timeout=900, env=env).stdout
                gib = float(next(ln for ln in out.splitlines() if ln.startswith("GiB/s:")).split()[1])
                report.add(row, "NitroFS", gib * GiB)
            log(f"checkpoint native rep {rep}: put {rw.samples['NitroFS'][-1] / MiB:.0f} MiB/s "
                f"get {rr.samples['NitroFS'][-1] / MiB:.0f} MiB/s")
        except Exception as e:  # noqa: BLE001
            report.fail(rw, "NitroFS", short(e))
            report.fail(rr, "NitroFS", short(e))
    try:
        nitro.admin("kv-space", "delete", "ckpt")
    except RuntimeError:
        pass


REDIS_PIPELINE_NOTE = "redis-benchmark -P times requests inside a pipeline, not its round trip; see the mean row"


def kvcache(report, sizes, reps, nitro, redis, mooncake, base):
    import kvload

    cases = []
    for label, (size, batch, count) in sizes.kv.items():
        if label == "prefix":
            cases.append(("prefix_match", "prefix-match", label, size, batch, count))
        else:
            cases.append((f"batch put {label}", "batch-put", label, size, batch, count))
            cases.append((f"batch get {label}", "batch-get", label, size, batch, count))
    systems = [("NitroFS", nitro), ("Redis", redis), ("Mooncake Store", mooncake)]
    for title, op, label, size, batch, count in cases:
        ks = KV_KEYSPACE[label]
        cap = max(2 * GiB, 2 * count * batch * size)
        keys_cmd = (f"{kvload.nitrofs_cmdline(op, size, count, batch, KV_CONC, ks)}  |  redis-benchmark -c {KV_CONC} "
                    + (f"-n {count} -r {ks} EXISTS key:__rand_int__ ×{batch}" if op == "prefix-match"
                       else f"-n {count * batch} -P {batch} -d {size} -r {count * batch if op == 'batch-put' else ks} "
                            f"-t {'set' if op == 'batch-put' else 'get'}")
                    + f"  |  bench/mooncake_bench.py --op {op} --size {size} --count {count} --batch {batch} "
                      f"--concurrency {MOONCAKE_CONC} --keyspace {ks}")
        name = f"{title}, batch {batch}"
        r_thr = report.row("KVCache", f"{name}: keys/s", "keys/s", True, keys_cmd)
        r_bw = None if op == "prefix-match" else report.row("KVCache", f"{name}: GiB/s", "B/s", True, keys_cmd, limit_of(base, "loopback", "memcpy"))
        # Latency is compared at one round trip in flight (an extra, shorter run for NitroFS and
        # Redis; Mooncake's run is already at 1), so queueing behind other requests is left out.
        r_mean = report.row("KVCache", f"{name}: mean round trip, 1 in flight", "ms", False, keys_cmd + "  (latency rows: --concurrency 1 / -c 1)")
        r_p50 = report.row("KVCache", f"{name}: p50 round trip, 1 in flight", "ms", False, keys_cmd + "  (latency rows: --concurrency 1 / -c 1)")
        r_p99 = report.row("KVCache", f"{name}: p99 round trip, 1 in flight", "ms", False, keys_cmd + "  (latency rows: --concurrency 1 / -c 1)")
        rows = [r for r in (r_thr, r_bw, r_mean, r_p50, r_p99) if r]

        def measure(sysname, target, rep, op=op, size=size, count=count, batch=batch, ks=ks, cap=cap, r_bw=r_bw,
                    r_thr=r_thr, r_mean=r_mean, r_p50=r_p50, r_p99=r_p99, title=title):
            count1 = latency_count(count)
            if sysname == "NitroFS":
                r = kvload.nitrofs(target, op, size, count, batch, KV_CONC, ks, cap)
                r1 = kvload.nitrofs(target, op, size, count1, batch, 1, ks, cap)
            elif sysname == "Redis":
                r = kvload.redis(target, op, size, count, batch, KV_CONC, ks)
                r1 = kvload.redis(target, op, size, count1, batch, 1, ks)
            else:
                r = r1 = kvload.mooncake(target, op, size, count, batch, MOONCAKE_CONC, ks, f"r{rep}")
            mean_ms = 1e3 * batch / r1["keys_s"]  # one in flight: the mean round trip is 1 / round trips per second
            log(f"KV {title} {sysname} rep {rep}: {r['keys_s']:.0f} keys/s; 1 in flight: mean {mean_ms:.3f} ms "
                f"p50 {r1['p50_ms']} ms p99 {r1['p99_ms']} ms")
            out = [(r_thr, r["keys_s"]), (r_mean, mean_ms)]
            if r1["p50_ms"] is None:
                report.fail(r_p50, sysname, REDIS_PIPELINE_NOTE)
                report.fail(r_p99, sysname, REDIS_PIPELINE_NOTE)
            else:
                out += [(r_p50, r1["p50_ms"]), (r_p99, r1["p99_ms"])]
            if r_bw:
                out.append((r_bw, r["gib_s"] * GiB))
            return out

        interleave(report, reps, systems, lambda rows=rows: rows, measure,
                   cpu_label=f"KVCache {name}: per 1,000 keys",
                   cpu_work=lambda sysname, op=op, count=count, batch=batch, ks=ks: kv_keys(
                       sysname, op, count, batch, ks) / 1000)


def latency_count(count):
    """Round trips of the extra run at one in flight (NitroFS, Redis)."""
    return max(10, count // 2)


def kv_keys(sysname, op, count, batch, keyspace):
    """Keys a KV system's server handles in one measurement: the timed ones
    and the unmeasured loads of the key space before a get or prefix_match
    run (its CPU window holds both). NitroFS and Redis run twice, at full
    concurrency and at one round trip in flight; Mooncake's one run is both
    its throughput and its latency sample."""
    runs = [count] if sysname == "Mooncake Store" else [count, latency_count(count)]
    loaded = {"batch-get": keyspace, "prefix-match": (keyspace + 1) // 2}.get(op, 0)
    return sum(n * batch + loaded for n in runs)


ASYNC_NOTE = (f"; NitroFS here: volume /{peers.ASYNC_BUCKET}, exported with async_metadata = true "
              "(CREATE, MKDIR, SETATTR, … answered before their metadata log sync, as ganesha's VFS backend "
              "leaves them to ext4 until COMMIT's fsync; COMMIT still makes the file and its name durable)")


def split_async(report, rows, peer):
    """Moves the samples of NitroFS's `async_metadata` export out of `rows`
    into rows of their own, "<workload> (async_metadata export)", where
    they stand as NitroFS's beside the same samples of `peer`: the default
    (synced) export keeps its rows, and the table shows both."""
    for row in rows:
        samples, err = row.samples.pop(peers.ASYNC_NAME, None), row.errors.pop(peers.ASYNC_NAME, None)
        if samples is None and err is None:
            continue
        derived = report.row(f"{row.workload} (async_metadata export)", row.metric, row.unit,
                             row.higher_better, row.cmd + ASYNC_NOTE, row.limit, row.ceiling)
        if samples is not None:
            derived.samples["NitroFS"] = samples
        if err is not None:
            derived.errors["NitroFS"] = err
        if peer in row.samples:
            derived.samples[peer] = list(row.samples[peer])
        if peer in row.errors:
            derived.errors[peer] = row.errors[peer]


def small_files(report, sizes, reps, nitro, ganesha, seaweed, rclone):
    import nfsload
    import s3load

    fsize, dirs = 16 << 10, 100
    for proto, n, workers, systems, mod in (
        ("NFS", sizes.small_nfs, 4, [("NitroFS", nitro.nfs if nitro else None), ("nfs-ganesha", ganesha.nfs if ganesha else None),
                                     (peers.ASYNC_NAME, nitro.nfs_async if nitro else None)], nfsload),
        ("S3", sizes.small_s3, 4, [("NitroFS", nitro.s3 if nitro else None), ("SeaweedFS", seaweed.s3 if seaweed else None),
                                   ("rclone serve s3", rclone.s3 if rclone else None)], s3load),
    ):
        how = ("libnfs create+pwrite+close / stat / open+pread / opendir+readdir" if proto == "NFS"
               else "boto3 put_object / head_object / get_object / list_objects_v2")
        cmd = f"bench/{mod.__name__}.py small_files: {n} × 16 KiB in {dirs} dirs, {workers} processes, {how}"
        rows = {ph: report.row(f"small files {proto}", f"{label} {n}×16 KiB", "files/s", True, cmd)
                for ph, label in (("create", "create+write"), ("stat", "stat"), ("read", "read"), ("list", "list (entries/s)"))}

        def measure(name, target, rep, mod=mod, n=n, workers=workers, rows=rows, proto=proto):
            # NitroFS serves NFS and S3 from one namespace: each protocol
            # gets a tree of its own, or S3 would overwrite and list the
            # NFS run's files (which the peers, separate stores, never see).
            r = mod.small_files(target, n, dirs, workers, fsize, f"{proto.lower()}-r{rep}")
            log(f"small files {proto} {name} rep {rep}: " + " ".join(f"{k} {v:.0f}/s" for k, v in r.items()))
            return [(rows[ph], r[ph]) for ph in rows]

        interleave(report, reps, systems, lambda rows=rows: list(rows.values()), measure,
                   cpu_label=f"small files {proto}: {n}×16 KiB created, stat, read and listed")
        if proto == "NFS":
            split_async(report, rows.values(), "nfs-ganesha")


def snapshot_create(nitro, name):
    url = f"http://127.0.0.1:{nitro.admin_port}/v1/volumes/{peers.BUCKET}/snapshots/{name}"
    t0 = time.perf_counter()
    with urllib.request.urlopen(urllib.request.Request(url, method="PUT"), timeout=120) as resp:
        resp.read()
    dt = time.perf_counter() - t0
    with urllib.request.urlopen(urllib.request.Request(url, method="DELETE"), timeout=120) as resp:
        resp.read()
    return dt


def metadata(report, sizes, reps, nitro, ganesha):
    import meta

    systems = [("NitroFS", nitro.nfs if nitro else None), ("nfs-ganesha", ganesha.nfs if ganesha else None)]
    # The fills also into NitroFS's async_metadata export (its lookups are the same).
    fill = systems + [(peers.ASYNC_NAME, nitro.nfs_async if nitro else None)]
    have = {name: 0 for name, _ in fill}
    cmd_pop = f"bench/meta.py populate: raw NFSv3 CREATE, {meta.WINDOW} in flight on one connection, {meta.PER_DIR} files per dir"
    for files in (sizes.meta_small, sizes.meta_large):
        label = f"{files:,} files"
        r_pop = report.row("metadata", f"populate to {label} (creates/s)", "files/s", True, cmd_pop)
        for name, target in fill:
            if target is None:
                continue
            os.sync()  # as in `interleave`: no one else's writeback in the timed run
            try:
                rate = meta.populate(target, have[name], files)
                have[name] = files
                report.add(r_pop, name, rate)
                log(f"metadata {name}: populated {files} files at {rate:.0f}/s")
            except Exception as e:  # noqa: BLE001
                report.fail(r_pop, name, short(e))
                have[name] = None
        split_async(report, [r_pop], "nfs-ganesha")
        cmd = f"bench/meta.py measure: {sizes.meta_samples} random files, LOOKUP then GETATTR, one call at a time"
        rows = {k: report.row("metadata", f"{k.replace('_', ' ').replace(' us', '')} @ {label}", "µs", False, cmd)
                for k in ("lookup_p50_us", "lookup_p99_us", "getattr_p50_us", "getattr_p99_us")}

        def measure(name, target, rep, files=files, rows=rows):
            if have.get(name) != files:
                raise RuntimeError("volume was not populated")
            r = meta.measure(target, files, sizes.meta_samples, seed=rep)
            log(f"metadata {name} @ {files} rep {rep}: " + " ".join(f"{k} {v:.0f}" for k, v in r.items()))
            return [(rows[k], r[k]) for k in rows]

        interleave(report, reps, systems, lambda rows=rows: list(rows.values()), measure,
                   cpu_label=f"metadata: {sizes.meta_samples} LOOKUPs and GETATTRs @ {label}")
        if nitro is not None and have.get("NitroFS") == files:
            r_snap = report.row("metadata", f"snapshot create @ {label}", "ms", False,
                                "PUT /v1/volumes/bench/snapshots/NAME on the admin API (nitrofs admin snapshot create), then DELETE")
            for rep in range(reps):
                try:
                    report.add(r_snap, "NitroFS", 1e3 * snapshot_create(nitro, f"b{files}-{rep}"))
                except Exception as e:  # noqa: BLE001
                    report.fail(r_snap, "NitroFS", short(e))
                    break


# -- output -----------------------------------------------------------------------------------


def render(report, args, sizes, started, elapsed):
    lines = [f"# NitroFS benchmark, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(started))}", ""]
    lines.append(f"Mode: {'quick' if args.quick else 'full'}, {args.reps} repetitions interleaved per system, "
                 f"medians shown. Wall time {elapsed / 60:.1f} min. Command: `{' '.join(ARGV_DISPLAY)}`")
    lines.append("")
    lines.append("## Machine and physical limits")
    lines.append("")
    for k, v in report.machine.items():
        lines.append(f"- {k}: {v}")
    lines.append("")
    if report.unavailable:
        lines.append("## Peers that could not run")
        lines.append("")
        for k, v in report.unavailable.items():
            lines.append(f"- {k}: n/a ({v})")
        lines.append("")
    lines.append("## Results")
    lines.append("")
    lines.append("Ratio: NitroFS ÷ peer for throughput, peer ÷ NitroFS for latency, so **> 1 means NitroFS is ahead**. "
                 "Limit: NitroFS's median as a fraction of the physical limit named (min of those listed); "
                 "for the S3 checkpoint also of the client's ceiling: the same client against a null S3 server "
                 "(nginx reading each upload in full and throwing it away, sending staged files with sendfile), "
                 "measured in the same interleave. It is a reference, not a strict bound: the same transfer "
                 "through two servers varies from run to run, so NitroFS may land above it.")
    lines.append("")
    lines.append("| workload | metric | NitroFS | peer | peer value | ratio | NitroFS / limit | cmd |")
    lines.append("|---|---|---|---|---|---|---|---|")
    cmds = []
    worst = []
    for row in report.rows:
        if row.cmd not in cmds:
            cmds.append(row.cmd)
        cref = f"[c{cmds.index(row.cmd) + 1}]"
        n_med = median(row.samples.get("NitroFS", []))
        n_txt = fmt(n_med, row.unit) if n_med is not None else f"n/a ({row.errors.get('NitroFS', 'not run')})"
        lim = ""
        if row.limit and n_med:
            lim = f"{100 * n_med / row.limit[1]:.0f}% of {row.limit[0]}"
        c_samples = row.samples.get(row.ceiling, []) if row.ceiling else []
        c_med = median(c_samples)
        if c_med and n_med:
            spread = f"{fmt(min(c_samples), row.unit)}–{fmt(max(c_samples), row.unit)}"
            c_txt = f"{100 * n_med / c_med:.0f}% of the client's ceiling ({fmt(c_med, row.unit)}; runs {spread})"
            lim = "; ".join(x for x in (lim, c_txt) if x)
        if row.ceiling in row.errors:
            what = "failed in some runs" if c_med else "n/a"
            lim = "; ".join(x for x in (lim, f"client's ceiling {what} ({row.errors[row.ceiling]})") if x)
        peers_here = [s for s in list(row.samples) + list(row.errors) if s not in ("NitroFS", row.ceiling)]
        peers_here += [p for p in report.unavailable if p in PEERS_FOR.get(row.workload, ()) and p not in peers_here]
        if not peers_here:
            lines.append(f"| {row.workload} | {row.metric} | {n_txt} | – | – | – | {lim} | {cref} |")
            continue
        for p in dict.fromkeys(peers_here):
            p_med = median(row.samples.get(p, []))
            if p_med is None:
                reason = row.errors.get(p) or report.unavailable.get(p, "not run")
                lines.append(f"| {row.workload} | {row.metric} | {n_txt} | {p} | n/a ({reason}) | – | {lim} | {cref} |")
                continue
            ratio = None
            if n_med:
                ratio = n_med / p_med if row.higher_better else p_med / n_med
                worst.append((ratio, row.workload, row.metric, p))
            rtxt = f"{ratio:.2f}" if ratio is not None else "–"
            if ratio is not None and ratio < 1:
                rtxt = f"**{rtxt}**"
            lines.append(f"| {row.workload} | {row.metric} | {n_txt} | {p} | {fmt(p_med, row.unit)} | {rtxt} | {lim} | {cref} |")
    lines.append("")
    lines.extend(render_cpu(report))
    lines.append("## Commands")
    lines.append("")
    for i, c in enumerate(cmds):
        lines.append(f"- [c{i + 1}] `{c}`")
    lines.append("")
    worst.sort()
    if worst:
        lines.append("## Worst ratios (where to profile first)")
        lines.append("")
        for ratio, wl, metric, p in worst[:5]:
            lines.append(f"- {ratio:.2f}: {wl} / {metric} vs {p}")
        lines.append("")
    lines.append("## Raw samples")
    lines.append("")
    lines.append("```")
    for row in report.rows:
        for s, v in row.samples.items():
            lines.append(f"{row.workload} | {row.metric} | {s}: " + ", ".join(f"{x:.6g}" for x in v))
    lines.append("```")
    return "\n".join(lines) + "\n"


def num(v):
    """Three significant digits, without exponents."""
    if abs(v) >= 99.5:
        return f"{v:,.0f}"
    if v == 0:
        return "0"
    text = f"{v:.{max(0, 2 - math.floor(math.log10(abs(v))))}f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def render_cpu(report):
    """The server CPU table: what each system's server processes spent on
    the same work, median of the repetitions, and each peer's against
    NitroFS's (> 1: NitroFS spent less, as "ahead" in the main table)."""
    if not report.cpu:
        return []
    lines = ["## Server CPU", "",
             "User plus system CPU time of each system's server processes (whoever listens on its NFS or S3 "
             "port, the KV servers' own processes) while the workload ran, all its phases, median of the "
             "repetitions; the clients' CPU is not in it, nor the kernel's writeback threads (which write "
             "out the pages of a server that leaves them to the page cache). On a machine whose cores the "
             "clients share, what a server spends is what its clients do not get. Each system's figure "
             "includes the background work its server processes did in its window (NitroFS's log syncs, "
             "RocksDB flushes and compactions), some of it left by earlier measurements; background work "
             "that runs on after the window is not counted. KV figures are per 1,000 keys handled, the "
             "unmeasured loads of the key space before a get or prefix_match run included. The kernel "
             "counts in 10 ms ticks. **Peer ÷ NitroFS: > 1 means NitroFS spent less**, as > 1 means ahead "
             "in the main table; a peer's figure is also set against each NitroFS variant measured beside "
             f"it (the `async_metadata` export). Disk read / written: what the data disk (`{report.disk}`) read "
             "and wrote in the same window, whoever did it, followed by a sync that writes out what the "
             "system left in the page cache (median MiB; reads near 0 mean the data came from memory).", "",
             "| work | system | server CPU | peer ÷ NitroFS | runs | disk read / written |",
             "|---|---|---|---|---|---|"]
    for label, by_system in report.cpu.items():
        unit = "ms" if "per 1,000 keys" in label else "s"
        scale = 1e3 if unit == "ms" else 1.0
        mine = median(by_system.get("NitroFS", []))
        variants = [(v.removeprefix("NitroFS").strip(), median(by_system[v])) for v in by_system
                    if v.startswith("NitroFS") and v != "NitroFS"]
        for system in sorted(by_system, key=lambda x: not x.startswith("NitroFS")):
            vals = by_system[system]
            med = median(vals)
            if system.startswith("NitroFS") or not med:
                ratio = "–"
            else:
                ratio = f"{med / mine:.2f}" if mine else "–"
                ratio += "".join(f"; {med / v:.2f} against {name}" for name, v in variants if v)
            runs = ", ".join(num(scale * v) for v in vals)
            io = report.io.get(label, {}).get(system)
            disk = (f"{num(median([r for r, _ in io]) / MiB)} / {num(median([w for _, w in io]) / MiB)} MiB"
                    if io else "–")
            lines.append(f"| {label} | {system} | {num(scale * med)} {unit} | {ratio} | {runs} | {disk} |")
    lines.append("")
    return lines


PEERS_FOR = {
    "checkpoint NFS": ("nfs-ganesha",),
    "small files NFS": ("nfs-ganesha",),
    "small files NFS (async_metadata export)": ("nfs-ganesha",),
    "metadata": ("nfs-ganesha",),
    "metadata (async_metadata export)": ("nfs-ganesha",),
    "checkpoint S3": ("SeaweedFS", "rclone serve s3"),
    "small files S3": ("SeaweedFS", "rclone serve s3"),
    "KVCache": ("Redis", "Mooncake Store"),
}


def machine_info(report, work, binary):
    report.machine["CPU"] = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                report.machine["CPU"] = f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} cores"
                break
        mem = next(ln for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal"))
        report.machine["memory"] = f"{int(mem.split()[1]) // (1 << 20)} GiB"
    except (OSError, StopIteration):
        pass
    report.machine["kernel"] = platform.release()
    try:
        df = run(["df", "-hT", str(work)], timeout=10).stdout.splitlines()[-1].split()
        report.machine["data dir disk"] = f"{df[0]} ({df[1]}), {df[2]} total, {df[4]} free"
    except (RuntimeError, IndexError):
        pass
    try:
        rev = run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], timeout=10).stdout.strip()
    except RuntimeError:
        rev = "?"
    mtime = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(Path(binary).stat().st_mtime)) if Path(binary).exists() else "missing"
    report.machine["NitroFS"] = f"{binary} (built {mtime}; work tree at {rev})"
    report.machine["network"] = ("private network namespace (unshare -n), loopback only" if os.environ.get("NITROBENCH_NETNS") == "1"
                                 else "host loopback")
    versions = {}
    for tool, cmd in (("ganesha", ["dpkg-query", "-W", "-f=${Version}", "nfs-ganesha"]), ("redis", ["redis-server", "--version"]),
                      ("weed", ["weed", "version"]), ("rclone", ["rclone", "version"]), ("s5cmd", ["s5cmd", "version"]),
                      ("nginx", ["dpkg-query", "-W", "-f=${Version}", "nginx"])):
        try:
            versions[tool] = run(cmd, timeout=20).stdout.strip().splitlines()[0][:60]
        except (RuntimeError, IndexError, FileNotFoundError, OSError):
            pass
    try:
        import importlib.metadata as md

        for pkg in ("mooncake-transfer-engine-non-cuda", "libnfs", "boto3"):
            try:
                versions[pkg] = md.version(pkg)
            except md.PackageNotFoundError:
                pass
    except ImportError:
        pass
    report.machine["peer and client versions"] = "; ".join(f"{k} {v}" for k, v in versions.items())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="small sizes (about 2 minutes on 2 cores)")
    ap.add_argument("--only", action="append", choices=SECTIONS, help="run only these workloads (repeatable)")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per system, interleaved (default 3, minimum 3)")
    ap.add_argument("--binary", default=str(REPO / "target/release/nitrofs"))
    ap.add_argument("--workdir", default=None, help="parent of the run's temp dir (default: $TMPDIR or /tmp)")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (server logs and data)")
    ap.add_argument("--out", default=str(REPO / "bench/results"))
    ap.add_argument("--meta-large", type=int, default=None, help="files in the large metadata volume (full default 200,000)")
    ap.add_argument("--small-files", type=int, default=None, help="small-files count for NFS and S3")
    ap.add_argument("--ckpt-size", type=int, default=None, help="MiB per checkpoint writer (full default 256)")
    args = ap.parse_args()
    if args.reps < 3:
        ap.error("--reps must be at least 3")
    ARGV_DISPLAY[:] = ["scripts/bench.sh"] + sys.argv[1:]
    sizes = QUICK if args.quick else FULL
    if args.meta_large:
        sizes.meta_large = args.meta_large
    if args.ckpt_size:
        sizes.ckpt_size = args.ckpt_size * MiB
    if args.small_files:
        sizes.small_nfs = sizes.small_s3 = args.small_files
    only = set(args.only or SECTIONS)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="nitrobench-", dir=args.workdir))
    log(f"work dir {work}")
    report = Report()
    report.disk = block_device(work)
    procs = Procs()
    try:
        machine_info(report, work, args.binary)
        base = baselines(procs, work, sizes, report)
        nitro = start_peer(report, procs, peers.NitroFS, work, args.binary)
        ganesha = seaweed = rclone = null = redis = mooncake = None
        if only & {"nfs", "smallfiles", "meta"}:
            ganesha = start_peer(report, procs, peers.Ganesha, work, os.environ.get("NITROBENCH_NETNS") == "1")
        if only & {"s3", "smallfiles"}:
            seaweed = start_peer(report, procs, peers.SeaweedFS, work)
            rclone = start_peer(report, procs, peers.RcloneS3, work)
        if "s3" in only:
            null = start_peer(report, procs, peers.NullS3, work)
        if "kv" in only:
            redis = start_peer(report, procs, peers.Redis, work)
            pool = max(2 * s * b * c for s, b, c in sizes.kv.values())
            mooncake = start_peer(report, procs, peers.Mooncake, work, max(2 * GiB, pool))
        try:
            import libnfs  # noqa: F401
        except ImportError as e:
            if only & {"nfs", "smallfiles"}:
                report.notes.append(f"python libnfs binding missing ({e}): NFS data workloads skipped")
                only -= {"nfs", "smallfiles"}
        if "nfs" in only:
            checkpoint_nfs(report, sizes, args.reps, nitro, ganesha, base)
        if "s3" in only:
            checkpoint_s3(report, sizes, args.reps, nitro, seaweed, rclone, null, base)
        if "kv" in only:
            checkpoint_native(report, sizes, args.reps, nitro, base)
            kvcache(report, sizes, args.reps, nitro, redis, mooncake, base)
        if "smallfiles" in only:
            small_files(report, sizes, args.reps, nitro, ganesha, seaweed, rclone)
        if "meta" in only:
            metadata(report, sizes, args.reps, nitro, ganesha)
    except KeyboardInterrupt:
        log("interrupted; stopping servers")
        raise
    except Exception:
        traceback.print_exc()
        report.notes.append("the run stopped early with an error (see stderr); the table holds what was measured")
    finally:
        for proc in procs.procs:
            if not proc.alive():
                report.notes.append(f"{proc.name} (pid {proc.pid}) exited during the run with status "
                                    f"{proc.popen.returncode}: its rows after that are n/a")
                log(f"{proc.name} exited early{proc.tail()}")
        procs.stop_all()
        if args.keep:
            log(f"kept {work}")
        else:
            subprocess.run(["rm", "-rf", "--one-file-system", str(work)], check=False, timeout=600)
    elapsed = time.time() - started
    text = render(report, args, sizes, started, elapsed)
    if report.notes:
        text += "\n" + "\n".join(f"Note: {n}" for n in report.notes) + "\n"
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / (time.strftime("%Y%m%d-%H%M%S", time.gmtime(started)) + ("-quick" if args.quick else "") + ".md")
    path.write_text(text)
    print(text)
    log(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
