#!/usr/bin/env bash
# Installs what building and testing NitroFS needs, if it is missing.
# Targets Debian 12; idempotent; silent when everything is already there.
#
#   clang, libclang-dev   bindgen for the RocksDB bindings
#   g++                   RocksDB's C++, compiled by librocksdb-sys (see README)
#   pkg-config            locating system libraries
#   libnfs-utils          nfs-ls / nfs-cp / nfs-cat, used by the interop tests
#   libnfs-dev            libnfs headers
#   python3-pip           pip, for the Python packages below
#   cmake, libnl-3-dev, libnl-route-3-dev, libibverbs-dev, ibverbs-providers,
#   rdma-core             the RDMA verbs backend (`--features rdma`): ibverbs-sys
#                         builds rdma-core's headers with cmake; libibverbs at run time
#
# and, with `python3 -m pip` when missing, the S3 clients the Python interop
# tests drive (interop-tests/python): awscli boto3 s3cmd pytest requests.
set -euo pipefail

packages=(clang libclang-dev g++ pkg-config libnfs-utils libnfs-dev python3-pip
    cmake libnl-3-dev libnl-route-3-dev libibverbs-dev ibverbs-providers rdma-core)

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

# Python packages of the S3 interop tests, checked by module name.
declare -A py_modules=([awscli]=awscli [boto3]=boto3 [s3cmd]=S3 [pytest]=pytest [requests]=requests)
py_missing=()
for p in awscli boto3 s3cmd pytest requests; do
    if ! python3 -c "import ${py_modules[$p]}" >/dev/null 2>&1; then
        py_missing+=("$p")
    fi
done
if ((${#py_missing[@]} > 0)); then
    pip_flags=(--quiet --disable-pip-version-check)
    # Debian 12's system Python refuses pip outside a venv (PEP 668) unless
    # told otherwise; a pyenv or venv Python has no such marker.
    if python3 - <<'PY'
import os, sys, sysconfig
marker = os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
sys.exit(0 if os.path.exists(marker) and sys.prefix == sys.base_prefix else 1)
PY
    then
        pip_flags+=(--break-system-packages)
    fi
    echo "setup: installing Python packages ${py_missing[*]}" >&2
    if ! python3 -m pip install "${pip_flags[@]}" "${py_missing[@]}" >&2; then
        echo "setup: pip install ${py_missing[*]} failed (output above)" >&2
        exit 1
    fi
fi
