"""The real `nitrofs` binary on loopback for the Python interop tests.

`Server` starts `nitrofs serve` on a fresh data directory with OS-chosen
ports, reads the bound addresses from its stdout (bounded wait for
`nitrofs ready`, no sleeps), runs `nitrofs admin` against it, hands out
boto3 clients and stops it with SIGTERM. Tools that are missing fail the
test with a pointer to scripts/setup.sh: nothing is skipped."""

import os
import queue
import secrets
import shutil
import signal
import subprocess
import sysconfig
import threading
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
READY_TIMEOUT = 90.0
STOP_TIMEOUT = 30.0
TOOL_TIMEOUT = 300.0
REGION = "us-east-1"
ROOT_ACCESS_KEY = "NITROFSTESTROOT"


def nitrofs_bin():
    path = Path(os.environ.get("NITROFS_BIN") or REPO / "target/debug/nitrofs")
    if not path.is_file():
        pytest.fail(
            f"the nitrofs binary was not found at {path}: run `cargo build -p nitrofs` "
            "(scripts/test.sh does) or set NITROFS_BIN"
        )
    return path


def find_tool(name):
    """A command on PATH or in this Python's script directories (pip --user)."""
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
    pytest.fail(f"`{name}` is not installed: run scripts/setup.sh")


def run(cmd, *, env=None, timeout=TOOL_TIMEOUT, check=True, input=None):
    """Runs a command with a bounded wait; on failure the test fails with its output."""
    try:
        out = subprocess.run(
            cmd, env=env, capture_output=True, timeout=timeout, input=input, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{cmd!r} did not finish within {timeout}s")
    if check and out.returncode != 0:
        pytest.fail(
            f"{cmd!r} exited {out.returncode}\nstdout:\n{out.stdout.decode(errors='replace')}"
            f"\nstderr:\n{out.stderr.decode(errors='replace')}"
        )
    return out


def error_of(fn, *args, **kwargs):
    """Calls a boto3 operation that must fail; returns (code, HTTP status, response)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        fn(*args, **kwargs)
    resp = info.value.response
    return resp["Error"].get("Code"), resp["ResponseMetadata"]["HTTPStatusCode"], resp


class Server:
    """One `nitrofs serve` process on its own data directory."""

    def __init__(self, root, env_keys=True, extra_args=()):
        self.root = Path(root)
        self.data_dir = self.root / "data"
        self.extra_args = list(extra_args)
        self.env_keys = env_keys
        # With env_keys=False the server finds its own root keys; a test
        # reads them from stdout or the credentials file and sets these.
        self.access_key = ROOT_ACCESS_KEY if env_keys else None
        self.secret_key = secrets.token_urlsafe(30) if env_keys else None
        self.starts = 0
        self.proc = None
        self.stdout_lines = []
        self.nfs_port = self.admin_port = self.s3_port = None

    # -- lifecycle ---------------------------------------------------------

    def start(self):
        env = dict(os.environ)
        env.pop("NITROFS_ROOT_ACCESS_KEY", None)
        env.pop("NITROFS_ROOT_SECRET_KEY", None)
        if self.env_keys:
            env["NITROFS_ROOT_ACCESS_KEY"] = self.access_key
            env["NITROFS_ROOT_SECRET_KEY"] = self.secret_key
        env.setdefault("RUST_LOG", "info")
        self.starts += 1
        self.stderr_path = self.root / f"server-{self.starts}.stderr"
        cmd = [
            str(nitrofs_bin()),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--nfs-addr",
            "127.0.0.1:0",
            "--admin-addr",
            "127.0.0.1:0",
            "--s3-addr",
            "127.0.0.1:0",
            "--kv-addr",
            "127.0.0.1:0",
            *self.extra_args,
        ]
        with open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err, env=env
            )
        lines = queue.Queue()

        def pump(stream):
            for raw in stream:
                lines.put(raw.decode(errors="replace").rstrip("\n"))
            lines.put(None)

        threading.Thread(target=pump, args=(self.proc.stdout,), daemon=True).start()
        self.stdout_lines = []
        ports = {}
        while True:
            try:
                line = lines.get(timeout=READY_TIMEOUT)
            except queue.Empty:
                self.kill()
                pytest.fail(f"nitrofs did not print `nitrofs ready` within {READY_TIMEOUT}s{self.log_tail()}")
            if line is None:
                code = self.proc.wait(timeout=STOP_TIMEOUT)
                pytest.fail(f"nitrofs exited ({code}) before `nitrofs ready`{self.log_tail()}")
            self.stdout_lines.append(line)
            for endpoint in ("nfs", "admin", "s3"):
                prefix = f"{endpoint} listening on "
                if line.startswith(prefix):
                    ports[endpoint] = int(line[len(prefix) :].rsplit(":", 1)[1])
            if line == "nitrofs ready":
                break
        missing = {"nfs", "admin", "s3"} - ports.keys()
        assert not missing, f"no `listening on` line for {missing}: {self.stdout_lines}"
        self.nfs_port, self.admin_port, self.s3_port = ports["nfs"], ports["admin"], ports["s3"]
        return self

    def stop(self):
        """SIGTERM; returns the exit status."""
        if self.proc is None or self.proc.poll() is not None:
            return None if self.proc is None else self.proc.returncode
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"nitrofs did not exit within {STOP_TIMEOUT}s of SIGTERM")

    def kill(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, lines=40):
        try:
            text = Path(self.stderr_path).read_text(errors="replace")
        except OSError:
            return ""
        return "\n--- server stderr (tail) ---\n" + "\n".join(text.splitlines()[-lines:])

    # -- endpoints -----------------------------------------------------------

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.s3_port}"

    @property
    def host(self):
        return f"127.0.0.1:{self.s3_port}"

    def nfs_url(self, bucket, path=""):
        p = self.nfs_port
        return f"nfs://127.0.0.1/{bucket}/{path}?version=3&nfsport={p}&mountport={p}&uid=0&gid=0"

    def client(self, access_key=None, secret_key=None, **config):
        import boto3
        from botocore.config import Config

        cfg = Config(
            signature_version="s3v4",
            region_name=REGION,
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=10,
            read_timeout=120,
            **config,
        )
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
            region_name=REGION,
            config=cfg,
        )

    # -- admin ------------------------------------------------------------------

    def admin(self, *args, check=True):
        cmd = [str(nitrofs_bin()), "admin", "--admin-addr", f"127.0.0.1:{self.admin_port}", *args]
        return run(cmd, timeout=60, check=check)

    def add_user(self, name, uid, gid, groups=()):
        """`nitrofs admin user add`; returns (access key, secret key)."""
        args = ["user", "add", name, "--uid", str(uid), "--gid", str(gid)]
        if groups:
            args += ["--groups", ",".join(str(g) for g in groups)]
        out = self.admin(*args).stdout.decode()
        keys = {}
        for line in out.splitlines():
            for field in ("access key", "secret key"):
                if line.startswith(f"{field}: "):
                    keys[field] = line.split(": ", 1)[1].strip()
        assert keys.keys() == {"access key", "secret key"}, f"user add printed: {out!r}"
        return keys["access key"], keys["secret key"]

