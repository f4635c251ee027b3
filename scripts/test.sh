#!/usr/bin/env bash
# Runs every test: unit, conformance, and the real binary driven by real
# NFS clients. Extra arguments go to `cargo test` (e.g. a test name filter).
# One build profile (debug): the interop tests run target/debug/nitrofs.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
cargo build -p nitrofs
cargo test --workspace "$@"
