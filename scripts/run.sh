#!/usr/bin/env bash
# Builds nitrofs (release) and runs `nitrofs serve` with the given flags,
# e.g. scripts/run.sh --data-dir /srv/nitrofs --nfs-addr 0.0.0.0:2049
# The default data directory is ./nitrofs-data under the current directory.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$root/scripts/setup.sh"
# cargo reads .cargo/config.toml (the CPU features RocksDB is compiled with) from the
# repository. The first build compiles RocksDB too: about 10 minutes on 2 cores.
(cd "$root" && cargo build --release -p nitrofs)
exec "${CARGO_TARGET_DIR:-$root/target}/release/nitrofs" serve "$@"
