"""KV-cache load against Mooncake Store through its Python client (TCP transfer engine).

Run as a separate process by kvload.py: prints one JSON line
{"keys_s":…, "gib_s":…, "p50_ms":…, "p99_ms":…}. `--concurrency` threads share
one store client; each operation is one batch call (batch_put_from /
batch_get_into on a registered buffer, batch_is_exist) over `--batch` keys, as
`nitrofs kv bench` does."""

import argparse
import ctypes
import json
import os
import sys
import threading
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--master", required=True)
    ap.add_argument("--metadata", required=True)
    ap.add_argument("--op", choices=["batch-put", "batch-get", "prefix-match"], required=True)
    ap.add_argument("--size", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--concurrency", type=int, required=True)
    ap.add_argument("--keyspace", type=int, required=True)
    ap.add_argument("--tag", default="r")
    a = ap.parse_args()

    from mooncake.store import MooncakeDistributedStore

    store = MooncakeDistributedStore()
    # global_segment_size 0: this client contributes no memory, the store process holds the pool.
    rc = store.setup("127.0.0.1", a.metadata, 0, 512 << 20, "tcp", "", a.master)
    if rc != 0:
        print(f"mooncake setup failed: {rc}", file=sys.stderr)
        return 2
    store.remove_all(True)  # fresh state for every measurement, unmeasured
    value = os.urandom(a.size)
    space = [f"{a.tag}-{a.size}-{i}" for i in range(a.keyspace)]
    if a.op in ("batch-get", "prefix-match"):
        # Loaded first, unmeasured (half of the key space for prefix-match, like nitrofs kv bench).
        load = space if a.op == "batch-get" else space[::2]
        for i in range(0, len(load), 16):
            rc = store.upsert_batch(load[i : i + 16], [value] * len(load[i : i + 16]))
            if rc != 0:
                print(f"mooncake load failed: {rc}", file=sys.stderr)
                return 2

    lat, errors, lock = [], [], threading.Lock()
    next_op = [0]

    def worker():
        # Mooncake's zero-copy path: values go to and from a buffer registered with the
        # transfer engine (batch_put_from / batch_get_into), as its vLLM connector does.
        buf = ctypes.create_string_buffer(a.size * a.batch)
        base = ctypes.addressof(buf)
        if a.op != "prefix-match":
            ctypes.memmove(base, value * a.batch, a.size * a.batch)
            if store.register_buffer(base, a.size * a.batch) != 0:
                with lock:
                    errors.append("register_buffer")
                return
        ptrs, sizes = [base + j * a.size for j in range(a.batch)], [a.size] * a.batch
        mine = []
        for _ in range(a.count):
            with lock:
                i = next_op[0]
                if i >= a.count:
                    break
                next_op[0] += 1
            if a.op == "batch-put":
                keys = [f"{a.tag}-p{a.size}-{i}-{j}" for j in range(a.batch)]
            else:
                keys = [space[(i * a.batch + j) % a.keyspace] for j in range(a.batch)]
            t0 = time.perf_counter()
            if a.op == "batch-put":
                ok = all(r == 0 for r in store.batch_put_from(keys, ptrs, sizes))
            elif a.op == "batch-get":
                ok = all(r == a.size for r in store.batch_get_into(keys, ptrs, sizes))
            else:
                ok = len(store.batch_is_exist(keys)) == a.batch
            mine.append(time.perf_counter() - t0)
            if not ok:
                with lock:
                    errors.append(i)
        with lock:
            lat.extend(mine)
        if a.op != "prefix-match":
            store.unregister_buffer(base)

    threads = [threading.Thread(target=worker) for _ in range(a.concurrency)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    elapsed = time.perf_counter() - t0
    if errors:
        print(f"{len(errors)} operations failed", file=sys.stderr)
        return 3
    lat.sort()
    keys = a.count * a.batch
    out = {
        "keys_s": keys / elapsed,
        "gib_s": keys * a.size / elapsed / (1 << 30) if a.op != "prefix-match" else 0.0,
        "p50_ms": lat[len(lat) // 2] * 1e3,
        "p99_ms": lat[min(len(lat) - 1, int(len(lat) * 0.99))] * 1e3,
    }
    print(json.dumps(out))
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
