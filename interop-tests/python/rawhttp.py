"""Hand-made S3 requests for what boto3 will not send: AWS Signature V4 by
hand (header auth, presigned URLs with any date, aws-chunked bodies with
signed chunks or trailers), raw sockets for lying Content-Length and
oversized headers, and the checksums (CRC32C, CRC64NVME) that botocore only
computes with awscrt."""

import base64
import datetime
import hashlib
import hmac
import http.client
import socket
import urllib.parse
import xml.etree.ElementTree as ET
import zlib


from harness import REGION

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
TIMEOUT = 60


def quote(s, safe="-_.~"):
    return urllib.parse.quote(s, safe=safe)


def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region=REGION, service="s3"):
    k = _hmac(("AWS4" + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, "aws4_request")


def canonical_uri(path):
    """S3's canonical URI: each segment decoded, then encoded once."""
    return "/".join(quote(urllib.parse.unquote(seg)) for seg in path.split("/"))


def _canonical_query(query):
    pairs = sorted((quote(k), quote(v)) for k, v in query.items())
    return "&".join(f"{k}={v}" for k, v in pairs)


class Signer:
    """SigV4 for one identity against one server (path-style)."""

    def __init__(self, host, access_key, secret_key, region=REGION):
        self.host, self.access_key, self.secret_key, self.region = host, access_key, secret_key, region

    def _scope(self, when):
        return f"{when:%Y%m%d}/{self.region}/s3/aws4_request"

    def sign_headers(self, method, path, query=None, headers=None, payload_hash=EMPTY_SHA256, when=None):
        """Headers (with Authorization) for a request; `path` is already URI-encoded."""
        when = when or datetime.datetime.now(datetime.timezone.utc)
        query = query or {}
        hdrs = {k.lower(): str(v).strip() for k, v in (headers or {}).items()}
        hdrs["host"] = self.host
        hdrs["x-amz-date"] = f"{when:%Y%m%dT%H%M%SZ}"
        hdrs["x-amz-content-sha256"] = payload_hash
        names = sorted(hdrs)
        canonical = "\n".join(
            [
                method,
                canonical_uri(path),
                _canonical_query(query),
                "".join(f"{n}:{hdrs[n]}\n" for n in names),
                ";".join(names),
                payload_hash,
            ]
        )
        scope = self._scope(when)
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", hdrs["x-amz-date"], scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = signing_key(self.secret_key, f"{when:%Y%m%d}", self.region)
        signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        hdrs["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.access_key}/{scope}, "
            f"SignedHeaders={';'.join(names)}, Signature={signature}"
        )
        self.last = {"signature": signature, "when": when, "key": key, "scope": scope}
        return hdrs

    def presign(self, method, path, expires=300, when=None, query=None):
        """A presigned URL; `when` may lie in the past to make it expired."""
        when = when or datetime.datetime.now(datetime.timezone.utc)
        q = dict(query or {})
        q.update(
            {
                "X-Amz-Algorithm": "AWS4-HMAC-SHA256",
                "X-Amz-Credential": f"{self.access_key}/{self._scope(when)}",
                "X-Amz-Date": f"{when:%Y%m%dT%H%M%SZ}",
                "X-Amz-Expires": str(expires),
                "X-Amz-SignedHeaders": "host",
            }
        )
        canonical = "\n".join([method, path, _canonical_query(q), f"host:{self.host}\n", "host", "UNSIGNED-PAYLOAD"])
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", q["X-Amz-Date"], self._scope(when), hashlib.sha256(canonical.encode()).hexdigest()]
        )
        key = signing_key(self.secret_key, f"{when:%Y%m%d}", self.region)
        q["X-Amz-Signature"] = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        return f"http://{self.host}{path}?{_canonical_query(q)}"

    def request(self, method, path, query=None, headers=None, body=b"", sign_payload=True):
        """Signs and sends; returns a `Response`. The path goes out exactly as
        given (no dot-segment or percent normalisation)."""
        payload_hash = hashlib.sha256(body).hexdigest() if sign_payload else "UNSIGNED-PAYLOAD"
        hdrs = self.sign_headers(method, path, query, headers, payload_hash)
        target = path + ("?" + _canonical_query(query) if query else "")
        return self.send_raw(method, target, hdrs, body)

    # -- aws-chunked ---------------------------------------------------------

    def chunked_signed(self, path, data, chunk=64 * 1024, headers=None, corrupt_chunk=None):
        """STREAMING-AWS4-HMAC-SHA256-PAYLOAD: every chunk signed, chained
        from the seed signature. `corrupt_chunk` flips a byte of that chunk
        after signing. Returns (headers, body)."""
        hdrs = dict(headers or {})
        hdrs.update(
            {
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
            }
        )
        pieces = [data[i : i + chunk] for i in range(0, len(data), chunk)] + [b""]
        sizes = [len(p) for p in pieces]
        sig_len = len(";chunk-signature=") + 64 + 4
        hdrs["content-length"] = str(sum(len(f"{s:x}") + sig_len + s for s in sizes))
        signed = self.sign_headers("PUT", path, None, hdrs, "STREAMING-AWS4-HMAC-SHA256-PAYLOAD")
        prev, when = self.last["signature"], self.last["when"]
        body = b""
        for i, piece in enumerate(pieces):
            to_sign = "\n".join(
                [
                    "AWS4-HMAC-SHA256-PAYLOAD",
                    f"{when:%Y%m%dT%H%M%SZ}",
                    self.last["scope"],
                    prev,
                    EMPTY_SHA256,
                    hashlib.sha256(piece).hexdigest(),
                ]
            )
            prev = hmac.new(self.last["key"], to_sign.encode(), hashlib.sha256).hexdigest()
            if corrupt_chunk == i and piece:
                piece = bytes([piece[0] ^ 0xFF]) + piece[1:]
            body += f"{len(piece):x};chunk-signature={prev}\r\n".encode() + piece + b"\r\n"
        return signed, body

    def chunked_trailer(self, path, data, algorithm, checksum_b64, chunk=64 * 1024, headers=None):
        """STREAMING-UNSIGNED-PAYLOAD-TRAILER with an `x-amz-checksum-<algorithm>`
        trailer, as SDKs send over TLS. Returns (headers, body)."""
        name = f"x-amz-checksum-{algorithm}"
        body = b""
        for i in range(0, len(data), chunk):
            piece = data[i : i + chunk]
            body += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
        body += f"0\r\n{name}:{checksum_b64}\r\n\r\n".encode()
        hdrs = dict(headers or {})
        hdrs.update(
            {
                "content-encoding": "aws-chunked",
                "x-amz-decoded-content-length": str(len(data)),
                "x-amz-trailer": name,
                "content-length": str(len(body)),
            }
        )
        return self.sign_headers("PUT", path, None, hdrs, "STREAMING-UNSIGNED-PAYLOAD-TRAILER"), body

    def send_raw(self, method, target, headers, body):
        """Sends one request as given (http.client: no URL normalisation)."""
        host, port = getattr(self, "connect_to", None) or self.host.rsplit(":", 1)
        conn = http.client.HTTPConnection(host, int(port), timeout=TIMEOUT)
        try:
            conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            hdrs = {k.lower(): v for k, v in headers.items()}
            hdrs.setdefault("content-length", str(len(body)))
            for k, v in hdrs.items():
                conn.putheader(k, v)
            conn.endheaders(body)
            resp = conn.getresponse()
            return Response(resp.status, dict(resp.getheaders()), resp.read())
        finally:
            conn.close()


class Response:
    """Status, headers (as sent, case-insensitive lookup by lower-case) and body."""

    def __init__(self, status, headers, content):
        self.status_code = status
        self.headers = {k.lower(): v for k, v in headers.items()}
        self.content = content

    @property
    def text(self):
        return self.content.decode(errors="replace")


def raw_exchange(port, request_bytes, shutdown_write=False, timeout=30):
    """Writes bytes to the S3 port and reads until the server closes or the
    timeout; returns everything read (b"" if the server closed at once)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        try:
            s.sendall(request_bytes)
            if shutdown_write:
                s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass
        out = b""
        try:
            while len(out) < 1 << 20:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        return out


def status_of(raw):
    """The status code of the first HTTP response in `raw`, or None."""
    if not raw.startswith(b"HTTP/1."):
        return None
    return int(raw.split(b" ", 2)[1])


def error_code(xml_bytes):
    """The <Code> of an S3 error document."""
    root = ET.fromstring(xml_bytes)
    code = root.find("Code")
    return None if code is None else code.text


# -- checksums ----------------------------------------------------------------


def _table(poly, bits):
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _table(0x82F63B78, 32)
_CRC64NVME = _table(0x9A6C9329AC4BC9B5, 64)


def _reflected(table, mask, data):
    c = mask
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ mask


def crc32c(data):
    return _reflected(_CRC32C, 0xFFFFFFFF, data)


def crc64nvme(data):
    return _reflected(_CRC64NVME, 0xFFFFFFFFFFFFFFFF, data)


def checksum_b64(algorithm, data):
    """The value of an x-amz-checksum-<algorithm> header for `data`."""
    if algorithm == "crc32":
        raw = zlib.crc32(data).to_bytes(4, "big")
    elif algorithm == "crc32c":
        raw = crc32c(data).to_bytes(4, "big")
    elif algorithm == "crc64nvme":
        raw = crc64nvme(data).to_bytes(8, "big")
    elif algorithm == "sha1":
        raw = hashlib.sha1(data).digest()
    elif algorithm == "sha256":
        raw = hashlib.sha256(data).digest()
    else:
        raise ValueError(algorithm)
    return base64.b64encode(raw).decode()


assert crc32c(b"123456789") == 0xE3069283
assert crc64nvme(b"123456789") == 0xAE8B14860A799888
