#!/usr/bin/env bash
# Installs tendril's build and test dependencies from Debian 12 packages.
# A no-op when everything is already installed.
set -euo pipefail

PKGS=(
  build-essential cmake make pkg-config git
  clang llvm libclang-rt-14-dev libbpf-dev bpftool linux-libc-dev
  libmnl-dev libabsl-dev googletest libgtest-dev libgmock-dev
  nlohmann-json3-dev libcli11-dev libyaml-cpp-dev libsystemd-dev libsqlite3-dev sqlite3 libsimdjson-dev
  libcurl4-openssl-dev openssl python3-prometheus-client
  iproute2 iputils-ping netcat-openbsd socat curl iperf3 sockperf procps psmisc python3 ethtool iptables nftables
  qemu-system-x86 busybox-static cpio dash
)
# The Kubernetes tests build their objects with kubectl (--dry-run=client):
# Debian's, unless a kubectl is installed already (another package's would
# conflict with it).
command -v kubectl >/dev/null 2>&1 || PKGS+=(kubernetes-client)

missing=()
for p in "${PKGS[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "setup-deps: all ${#PKGS[@]} packages present"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "setup-deps: missing packages (${missing[*]}); run as root" >&2
  exit 1
fi

echo "setup-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || true
apt-get install -y -qq --no-install-recommends "${missing[@]}"
