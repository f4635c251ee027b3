"""Clients that stop mid-request, against a server whose `[s3]
stall_timeout_secs` is 2: an upload, or an XML request body, fails with
RequestTimeout and changes nothing, the GET's connection is closed short of
its body, and the server keeps serving everyone else. Raw sockets, because
no SDK can be told to stall."""

import os
import socket
import time

import pytest

from harness import Server, error_of
from rawhttp import Signer, _canonical_query, checksum_b64, error_code, status_of

STALL_SECS = 2
# Every wait below is bounded, and far longer than the limit.
WAIT_SECS = 60


@pytest.fixture
def stall_server(tmp_path):
    config = tmp_path / "nitrofs.toml"
    config.write_text(f"[s3]\nstall_timeout_secs = {STALL_SECS}\n")
    root = tmp_path / "srv"
    root.mkdir()
    srv = Server(root, extra_args=["--config", str(config)]).start()
    yield srv
    alive = srv.alive()
    code = srv.stop()
    assert alive, f"nitrofs died during the test{srv.log_tail()}"
    assert code == 0, f"nitrofs exited {code} on SIGTERM{srv.log_tail()}"


def read_until_closed(sock, limit):
    """Everything the server sends until it closes (or resets) the
    connection; fails if it does not within WAIT_SECS."""
    sock.settimeout(WAIT_SECS)
    got = b""
    try:
        while len(got) <= limit:
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            got += chunk
    except ConnectionResetError:
        pass
    except socket.timeout:
        pytest.fail(f"the server kept the connection open for {WAIT_SECS}s after {len(got)} bytes")
    return got


def send_part_of(server, method, path, query, announced, sent):
    """Sends a signed request announcing `announced` body bytes, then only
    `sent`; returns the reply (the server must close the connection) and
    how long it took."""
    signer = Signer(server.host, server.access_key, server.secret_key)
    headers = signer.sign_headers(
        method, path, query, headers={"content-length": str(announced)}, payload_hash="UNSIGNED-PAYLOAD"
    )
    target = path + ("?" + _canonical_query(query) if query else "")
    return send_partial(server, method, target, headers, sent)


def send_partial(server, method, target, headers, sent):
    """Sends a request's headers and `sent`, the start of its body; returns
    the reply (the server must close the connection) and how long it took."""
    server.log_mark = len(server.stderr_path.read_bytes())
    head = f"{method} {target} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
    with socket.create_connection(("127.0.0.1", server.s3_port), timeout=WAIT_SECS) as sock:
        started = time.monotonic()
        sock.sendall(head.encode() + sent)
        reply = read_until_closed(sock, 1 << 20)
        return reply, time.monotonic() - started


def assert_timed_out(server, reply, waited):
    assert status_of(reply) == 400, reply[:300]
    assert error_code(reply.split(b"\r\n\r\n", 1)[1]) == "RequestTimeout", reply
    assert waited >= STALL_SECS, f"gave up after {waited:.1f}s, before the limit"
    # Logged for this request, not an earlier one.
    log = server.stderr_path.read_bytes()[server.log_mark :].decode(errors="replace")
    assert "request body given up: its client sent no body bytes" in log


def test_an_upload_whose_client_stops_sending_fails_and_stores_nothing(stall_server):
    s3 = stall_server.client()
    s3.create_bucket(Bucket="stalls")
    # A tenth of the body, then nothing.
    reply, waited = send_part_of(stall_server, "PUT", "/stalls/stalled", None, 1 << 20, os.urandom(1 << 17))
    assert_timed_out(stall_server, reply, waited)
    code, status, _ = error_of(s3.head_object, Bucket="stalls", Key="stalled")
    assert status == 404, code
    # Nothing else was held up.
    s3.put_object(Bucket="stalls", Key="after", Body=b"fine")
    assert s3.get_object(Bucket="stalls", Key="after")["Body"].read() == b"fine"


def test_an_aws_chunked_upload_whose_client_stops_sending_fails_too(stall_server):
    # What current SDKs send: aws-chunked with a checksum trailer, decoded
    # by s3s before the upload reads it.
    s3 = stall_server.client()
    s3.create_bucket(Bucket="stalls")
    signer = Signer(stall_server.host, stall_server.access_key, stall_server.secret_key)
    data = os.urandom(1 << 20)
    headers, body = signer.chunked_trailer("/stalls/chunked", data, "crc32", checksum_b64("crc32", data))
    reply, waited = send_partial(stall_server, "PUT", "/stalls/chunked", headers, body[: len(body) // 3])
    assert_timed_out(stall_server, reply, waited)
    code, status, _ = error_of(s3.head_object, Bucket="stalls", Key="chunked")
    assert status == 404, code


def test_xml_request_bodies_whose_client_stops_sending_fail_and_change_nothing(stall_server):
    s3 = stall_server.client()
    s3.create_bucket(Bucket="stalls")
    s3.put_object(Bucket="stalls", Key="keep", Body=b"kept")
    # DeleteObjects: the front reads and checks its XML before s3s.
    delete = b'<Delete><Object><Key>keep</Key></Object></Delete>'
    reply, waited = send_part_of(stall_server, "POST", "/stalls", {"delete": ""}, len(delete), delete[:20])
    assert_timed_out(stall_server, reply, waited)
    assert s3.get_object(Bucket="stalls", Key="keep")["Body"].read() == b"kept"
    # CreateBucket with a configuration: s3s reads that body itself.
    config = (
        b'<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
        b"<LocationConstraint>us-east-1</LocationConstraint></CreateBucketConfiguration>"
    )
    reply, waited = send_part_of(stall_server, "PUT", "/stalled-bucket", None, len(config), config[:30])
    assert_timed_out(stall_server, reply, waited)
    code, status, _ = error_of(s3.head_bucket, Bucket="stalled-bucket")
    assert status == 404, code


def test_a_get_whose_client_takes_nothing_is_cut_off(stall_server):
    s3 = stall_server.client()
    s3.create_bucket(Bucket="stalls")
    size = 64 << 20
    data = os.urandom(size)
    s3.put_object(Bucket="stalls", Key="big", Body=data)
    url = Signer(stall_server.host, stall_server.access_key, stall_server.secret_key).presign("GET", "/stalls/big")
    target = url.split(stall_server.host, 1)[1]
    request = f"GET {target} HTTP/1.1\r\nhost: {stall_server.host}\r\n\r\n".encode()
    log = stall_server.stderr_path
    gave_up = ("S3 connection closed: its client took no response bytes", "GET body given up")
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # A small window, so the server's writes wait on this client soon.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 << 10)
        sock.settimeout(WAIT_SECS)
        sock.connect(("127.0.0.1", stall_server.s3_port))
        sock.sendall(request)
        # Read nothing until the server reports that it gave up.
        deadline = time.monotonic() + WAIT_SECS
        while not any(m in log.read_text(errors="replace") for m in gave_up):
            assert time.monotonic() < deadline, f"the server never gave up on the GET{stall_server.log_tail()}"
            time.sleep(0.2)
        got = read_until_closed(sock, size + (1 << 20))
    assert status_of(got) == 200, got[:200]
    body = got.split(b"\r\n\r\n", 1)[1]
    assert len(body) < size, "the whole body was sent to a client that took nothing"
    assert data.startswith(body), "what was sent is the object's start"
    # The object is intact and others are served.
    assert s3.get_object(Bucket="stalls", Key="big")["Body"].read() == data
