#!/usr/bin/env bash
# Installs what building and testing NitroFS needs, if it is missing.
# Targets Debian 12; idempotent; silent when everything is already there.
#
#   clang, libclang-dev   bindgen for the RocksDB bindings
#   librocksdb-dev        RocksDB 7.8, linked instead of compiled (see README)
#   pkg-config            locating system libraries
#   libnfs-utils          nfs-ls / nfs-cp / nfs-cat, used by the interop tests
#   libnfs-dev            libnfs headers
#   python3-pip           Python test helpers
set -euo pipefail

packages=(clang libclang-dev librocksdb-dev pkg-config libnfs-utils libnfs-dev python3-pip)

if ! command -v dpkg-query >/dev/null 2>&1; then
    echo "setup: dpkg-query not found; this script supports Debian 12 (install these yourself: ${packages[*]})" >&2
    exit 1
fi

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]} > 0)); then
    if [[ $(id -u) -eq 0 ]]; then
        as_root=()
    elif command -v sudo >/dev/null 2>&1; then
        as_root=(sudo)
    else
        echo "setup: missing packages (${missing[*]}) and not root and no sudo: install them and re-run" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}" >&2
    log=$(mktemp)
    trap 'rm -f "$log"' EXIT
    if ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q >"$log" 2>&1 ||
        ! "${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$log" 2>&1; then
        cat "$log" >&2
        echo "setup: apt-get failed (output above)" >&2
        exit 1
    fi
fi

if ! command -v cargo >/dev/null 2>&1 || ! cargo --version >/dev/null 2>&1; then
    echo "setup: cargo not found or not working. Install the Rust toolchain with rustup" >&2
    echo "       (https://rustup.rs; then 'rustup default stable'), open a new shell" >&2
    echo "       (or run: . \"\$HOME/.cargo/env\") and re-run." >&2
    exit 1
fi
