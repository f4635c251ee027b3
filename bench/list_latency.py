"""Server-side latency of S3 calls, without boto3's parsing: signs each
request with botocore's SigV4 and sends it on one kept-alive HTTP/1.1
connection, timing request to last byte of the body.

    python3 bench/list_latency.py HOST PORT ACCESS_KEY SECRET_KEY BUCKET PATH [PATH ...]

PATH is what follows the bucket, e.g. '?list-type=2&prefix=d%2F&max-keys=1000'
or '/some/key'. Prints the median of 20 calls for each."""

import http.client
import sys
import time

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials


def main():
    host, port, ak, sk, bucket, *paths = sys.argv[1:]
    cred = Credentials(ak, sk)
    conn = http.client.HTTPConnection(host, int(port))

    def call(path):
        url = f"http://{host}:{port}/{bucket}{path}"
        r = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        S3SigV4Auth(cred, "s3", "us-east-1").add_auth(r)
        p = r.prepare()
        t = time.monotonic()
        conn.request("GET", p.url.split(f":{port}", 1)[1], headers=dict(p.headers))
        resp = conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise SystemExit(f"{path}: HTTP {resp.status}: {body[:200]!r}")
        return time.monotonic() - t, len(body)

    for path in paths:
        call(path)
        samples = sorted(call(path) for _ in range(20))
        ms, size = samples[len(samples) // 2]
        print(f"{ms * 1000:8.2f} ms  {size:>8} bytes  {path}")


if __name__ == "__main__":
    main()
