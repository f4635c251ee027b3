"""Fixtures of the S3 interop tests: a fresh `nitrofs serve` per test (so
tests are independent), boto3 clients, a fresh bucket, and runners for the
`aws` CLI, s3cmd and libnfs-utils against that server."""

import os
import uuid

import pytest

from harness import REGION, Server, find_tool, run


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"report_{report.when}", report)


@pytest.fixture
def server(request, tmp_path):
    """A running server with root keys from the environment; stopped (and
    required to exit 0 on SIGTERM: no crash, no panic) at teardown."""
    srv = Server(tmp_path).start()
    yield srv
    failed = getattr(request.node, "report_call", None)
    alive = srv.alive()
    code = srv.stop()
    if failed is not None and failed.failed:
        print(srv.log_tail(80))
    assert alive, f"nitrofs died during the test{srv.log_tail()}"
    assert code == 0, f"nitrofs exited {code} on SIGTERM{srv.log_tail()}"


@pytest.fixture
def s3(server):
    """boto3 client of the root identity."""
    return server.client()


@pytest.fixture
def bucket(s3):
    """A new, empty bucket owned by root."""
    name = f"t-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def aws(server, tmp_path):
    """Runs the `aws` CLI (v1, pip's awscli) against the server as root."""
    exe = find_tool("aws")
    config = tmp_path / "aws-config"
    config.write_text(
        "[default]\n"
        f"region = {REGION}\n"
        "s3 =\n"
        "    addressing_style = path\n"
        "    signature_version = s3v4\n"
        "    multipart_threshold = 8MB\n"
        "    multipart_chunksize = 8MB\n"
    )
    env = dict(os.environ)
    env.update(
        AWS_ACCESS_KEY_ID=server.access_key,
        AWS_SECRET_ACCESS_KEY=server.secret_key,
        AWS_CONFIG_FILE=str(config),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "no-credentials"),
        AWS_DEFAULT_REGION=REGION,
        AWS_EC2_METADATA_DISABLED="true",
        AWS_MAX_ATTEMPTS="1",
        AWS_PAGER="",
    )

    def call(*args, check=True, timeout=600):
        return run([exe, "--endpoint-url", server.endpoint, *args], env=env, check=check, timeout=timeout)

    return call


@pytest.fixture
def s3cmd(server, tmp_path):
    """Runs s3cmd against the server as root (path-style, plain HTTP)."""
    exe = find_tool("s3cmd")
    cfg = tmp_path / "s3cfg"
    cfg.write_text("[default]\n")

    def call(*args, check=True, access_key=None, secret_key=None):
        cmd = [
            exe,
            "-c",
            str(cfg),
            f"--host={server.host}",
            f"--host-bucket={server.host}",
            "--no-ssl",
            f"--region={REGION}",
            f"--access_key={access_key or server.access_key}",
            f"--secret_key={secret_key or server.secret_key}",
            *args,
        ]
        return run(cmd, check=check, timeout=300)

    return call


@pytest.fixture
def nfs_tools(server):
    """libnfs-utils against the server, as uid 0: cp, cat, ls."""
    tools = {name: find_tool(f"nfs-{name}") for name in ("cp", "cat", "ls")}

    class Nfs:
        def url(self, bucket, path=""):
            return server.nfs_url(bucket, path)

        def cp(self, src, dst):
            return run([tools["cp"], str(src), str(dst)], timeout=300)

        def cat(self, bucket, path):
            return run([tools["cat"], server.nfs_url(bucket, path)], timeout=300).stdout

        def ls(self, bucket, path=""):
            out = run([tools["ls"], server.nfs_url(bucket, path)], timeout=60).stdout.decode()
            return [line.split()[-1] for line in out.splitlines() if line.strip()]

    return Nfs()
