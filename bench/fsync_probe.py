#!/usr/bin/env python3
"""What making 16 KiB durable costs on a disk, three ways (issue 6, chunk journal).

    python3 bench/fsync_probe.py DIR [COUNT]

Prints the mean time per file of: a new file written and fdatasynced plus an
fsync of its directory (what a chunk file per small file costs), a new file
fdatasynced alone, and 16 KiB overwritten in a preallocated file and
fdatasynced (what a record in the chunk journal costs). DIR should be on the
disk under test; the probe's files stay in DIR/fsync-probe (removing many
files makes ext4 without a journal slow to create new ones for minutes).
"""
import os
import sys
import time


def main():
    if len(sys.argv) < 2 or sys.argv[1].startswith("-"):
        sys.exit(__doc__)
    base = os.path.join(sys.argv[1], "fsync-probe")
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 300
    run = os.path.join(base, str(time.time_ns()))
    os.makedirs(run)
    data = os.urandom(16384)

    def new_files(tag, dir_sync):
        t = time.perf_counter()
        for i in range(count):
            fd = os.open(os.path.join(run, f"{tag}{i}"), os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            os.pwrite(fd, data, 0)
            os.fdatasync(fd)
            os.close(fd)
            if dir_sync:
                dfd = os.open(run, os.O_RDONLY)
                os.fsync(dfd)
                os.close(dfd)
        return (time.perf_counter() - t) / count * 1e6

    print(f"new file + directory fsync: {new_files('d', True):.0f} us")
    print(f"new file fdatasync:         {new_files('f', False):.0f} us")
    fd = os.open(os.path.join(run, "journal"), os.O_CREAT | os.O_RDWR)
    os.pwrite(fd, bytes(count * len(data)), 0)
    os.fsync(fd)
    t = time.perf_counter()
    for i in range(count):
        os.pwrite(fd, data, i * len(data))
        os.fdatasync(fd)
    os.close(fd)
    print(f"overwrite + fdatasync:      {(time.perf_counter() - t) / count * 1e6:.0f} us")


if __name__ == "__main__":
    main()
