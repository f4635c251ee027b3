#!/usr/bin/env bash
# Runs every test: unit, conformance, the real binary driven by real NFS
# clients and by the KV client and CLI (cargo), the transport with the rdma
# feature, then the real binary driven by real S3 clients (aws CLI,
# boto3, s3cmd) and libnfs-utils across protocols (pytest,
# interop-tests/python). Extra arguments go to `cargo test` (e.g. a test
# name filter). One build profile (debug): the interop tests run
# target/debug/nitrofs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build -p nitrofs
cargo test --workspace "$@"
# The RDMA verbs backend: it must build, and without a device fall back to TCP.
cargo test -p nitrofs-rdma-transport -p nitrofs-kv -p nitrofs-kv-client --features rdma "$@"
# pytest exits 5 when it collects no tests: that is a failure here too, as
# is every other non-zero status (set -e).
python3 -m pytest -q interop-tests/python
