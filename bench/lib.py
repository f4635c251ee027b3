"""Process, port and statistics helpers shared by the benchmark harness.

Every server the harness starts goes through `Procs`: it is started in its own
process group, remembered by PID, and stopped by that PID (SIGTERM, then
SIGKILL after a bounded wait) when the run ends, also on failure. Readiness is
always polled against a deadline; nothing waits a fixed time and hopes."""

import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import sysconfig
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STOP_TIMEOUT = 20.0


class Unavailable(Exception):
    """A peer or tool that cannot run on this machine; the row shows the reason."""


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def find_tool(name):
    """A command on PATH or in this Python's script directory (pip installs)."""
    found = shutil.which(name)
    if found:
        return found
    for scheme in (None, f"{os.name}_user"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:
            continue
        candidate = Path(scripts) / name
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    return None


def need_tool(name, hint):
    path = find_tool(name)
    if not path:
        raise Unavailable(f"`{name}` not installed ({hint})")
    return path


_HANDED_OUT = set()


def free_port():
    """A port the kernel just handed out on 127.0.0.1, never the same one twice in a run
    (the run owns its own network namespace when scripts/bench.sh could make one, so
    nothing else races for it there)."""
    for _ in range(100):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no free port")


def poll(pred, timeout, what, proc=None):
    """Calls pred() until it returns a true value or `timeout` seconds pass. Returns that value.
    Fails early when `proc` (a Proc) has exited."""
    deadline = time.monotonic() + timeout
    delay = 0.01
    last_err = None
    while True:
        try:
            value = pred()
            if value:
                return value
        except Exception as e:  # noqa: BLE001 - readiness probes fail until ready
            last_err = e
        if proc is not None and not proc.alive():
            raise Unavailable(f"{what}: process exited with {proc.popen.returncode}{proc.tail()}")
        if time.monotonic() >= deadline:
            raise Unavailable(f"{what}: not ready within {timeout:.0f}s (last error: {last_err}){proc.tail() if proc else ''}")
        time.sleep(delay)  # poll interval, not synchronisation: the loop re-checks the condition
        delay = min(delay * 2, 0.2)


def tcp_open(port, host="127.0.0.1"):
    with socket.create_connection((host, port), timeout=1.0):
        return True


class Proc:
    def __init__(self, name, popen, log_path):
        self.name, self.popen, self.log_path = name, popen, Path(log_path)

    @property
    def pid(self):
        return self.popen.pid

    def alive(self):
        return self.popen.poll() is None

    def tail(self, lines=15):
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- " + self.name + " log (tail) ---\n" + "\n".join(text)

    def stop(self):
        if not self.alive():
            return self.popen.returncode
        try:
            os.killpg(self.pid, signal.SIGTERM)  # its own group: the PID we started, and its children
        except ProcessLookupError:
            return self.popen.poll()
        try:
            return self.popen.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(self.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            return self.popen.wait(timeout=STOP_TIMEOUT)


class Procs:
    """The servers this run started; `stop_all` ends each by its PID, newest first."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, log_path, env=None, cwd=None, stdout=None):
        log_path = Path(log_path)
        log_path.parent.mkdir(parents=True, exist_ok=True)
        out = open(log_path, "ab")
        try:
            popen = subprocess.Popen(
                [str(c) for c in cmd],
                stdin=subprocess.DEVNULL,
                stdout=stdout if stdout is not None else out,
                stderr=out,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        finally:
            out.close()
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc):
        proc.stop()
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self):
        for proc in reversed(self.procs):
            try:
                proc.stop()
            except Exception as e:  # noqa: BLE001 - keep stopping the others
                log(f"stopping {proc.name} (pid {proc.pid}): {e}")
        self.procs.clear()


def run(cmd, timeout, env=None, check=True, cwd=None):
    """Runs a command to completion with a bounded wait; returns CompletedProcess (text)."""
    try:
        out = subprocess.run(
            [str(c) for c in cmd], capture_output=True, text=True, timeout=timeout, env=env, cwd=cwd, check=False
        )
    except subprocess.TimeoutExpired as e:
        raise RuntimeError(f"{cmd[0]} did not finish within {timeout}s") from e
    if check and out.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd))} exited {out.returncode}: {out.stderr.strip()[-800:]}")
    return out


def write_sized(path, size, block):
    """Writes `size` bytes to `path`: `block` over and over, the last copy cut short."""
    with open(path, "wb") as f:
        for off in range(0, size, len(block)):
            f.write(block[: min(len(block), size - off)])


def median(xs):
    return statistics.median(xs) if xs else None


def percentile(sorted_xs, q):
    """Nearest-rank percentile of an already sorted list (q in 0..100)."""
    if not sorted_xs:
        return None
    k = max(0, min(len(sorted_xs) - 1, int(round(q / 100.0 * len(sorted_xs) + 0.5)) - 1))
    return sorted_xs[k]


def listening_pids(port):
    """The processes holding a socket that listens on TCP `port` (any
    address, IPv4 or IPv6): a server's own process, or all of its worker
    processes when they share the socket (nginx). Read from /proc, so it
    sees this network namespace's sockets and needs to be able to read the
    other processes' fd tables (the harness runs as root in its namespace)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            f = line.split()
            # local address "HEX_IP:HEX_PORT", state 0A = LISTEN, inode in column 10
            if len(f) > 9 and f[3] == "0A" and int(f[1].rsplit(":", 1)[1], 16) == int(port):
                inodes.add(f"socket:[{f[9]}]")
    pids = set()
    if not inodes:
        return pids
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                    pids.add(int(pid))
                    break
            except OSError:
                continue
    return pids


def cpu_seconds(pids):
    """User plus system CPU time used so far by every thread of each of
    `pids`, by pid (a process that has exited, or cannot be read, is left
    out). The kernel counts it in clock ticks (10 ms here)."""
    out = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        # The fields after the command name, which may hold spaces: utime and stime are 14 and 15.
        f = stat.rsplit(")", 1)[1].split()
        out[pid] = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
    return out


def cpu_spent(before, after):
    """CPU seconds spent between two `cpu_seconds` samples by the
    processes present in both (one that exited in between counts nothing
    rather than a negative amount)."""
    return sum(after[pid] - before[pid] for pid in before.keys() & after.keys())


def block_device(path):
    """The name of the block device (or partition) holding `path`, as
    /proc/diskstats names it; None if it has none (tmpfs, overlay)."""
    try:
        dev = os.stat(path).st_dev
        uevent = Path(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/uevent").read_text()
    except OSError:
        return None
    for line in uevent.splitlines():
        if line.startswith("DEVNAME="):
            return line.split("=", 1)[1]
    return None


def disk_bytes(dev):
    """(bytes read, bytes written) so far on block device `dev`, all
    processes and the kernel's writeback together; None if not found."""
    try:
        lines = Path("/proc/diskstats").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        f = line.split()
        # major minor name reads merged sectors_read ms writes merged sectors_written ...
        if len(f) > 9 and f[2] == dev:
            return int(f[5]) * 512, int(f[9]) * 512
    return None


MiB = 1 << 20
GiB = 1 << 30
