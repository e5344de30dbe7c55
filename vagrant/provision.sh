#!/usr/bin/env bash
# Provisions one tendril node: dependencies, build, install, the systemd unit,
# the agent, a NodePort service (ClusterIP 10.96.0.10:80, node port 30080)
# with a backend on every node, and a check of its ClusterIP from the node.
# The node port is checked from outside the nodes by the Vagrantfile (from
# the Vagrant host) and by the kernel matrix (from its peer namespace). Used by the Vagrantfile on real VMs, and by the kernel matrix
# (test/vm/run-matrix.sh) inside its qemu guest with --prebuilt --no-systemd.
#
#   provision.sh --node-ip IP [--peer-ip IP]... [--device DEV] [--xdp-mode MODE]
#                [--prebuilt BUILD_DIR] [--no-systemd]
set -euo pipefail
SRC=$(cd "$(dirname "$0")/.." && pwd)
NODE_IP="" DEVICE=eth1 XDP_MODE=generic PREBUILT="" SYSTEMD=1
PEERS=()
while [ $# -gt 0 ]; do
  case "$1" in
    --node-ip) NODE_IP=$2; shift 2 ;;
    --peer-ip) PEERS+=("$2"); shift 2 ;;
    --device) DEVICE=$2; shift 2 ;;
    --xdp-mode) XDP_MODE=$2; shift 2 ;;
    --prebuilt) PREBUILT=$2; shift 2 ;;
    --no-systemd) SYSTEMD=0; shift ;;
    *) echo "provision: unknown argument $1" >&2; exit 2 ;;
  esac
done
[ -n "$NODE_IP" ] || { echo "provision: --node-ip is required" >&2; exit 2; }
step() { printf '\n== provision %s: %s\n' "$NODE_IP" "$*"; }

step "build and install"
if [ -z "$PREBUILT" ]; then
  "$SRC/scripts/setup-deps.sh"
  cmake -S "$SRC" -B "$SRC/build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build "$SRC/build" -j2
  cmake --install "$SRC/build" >/dev/null
  OBJECTS=""
else
  mkdir -p /usr/local/bin
  cp "$PREBUILT/tendril-agent" "$PREBUILT/tendril" /usr/local/bin/
  chmod 0755 /usr/local/bin/tendril-agent /usr/local/bin/tendril
  OBJECTS="bpf-object-dir: $PREBUILT/bpf"
fi

step "configure /etc/tendril/agent.yaml"
mkdir -p /etc/tendril
cat > /etc/tendril/agent.yaml <<YAML
devices: [$DEVICE]
xdp-mode: $XDP_MODE
bpffs-root: /sys/fs/bpf/tendril
state-dir: /var/lib/tendril
api-socket: /run/tendril/tendril.sock
$OBJECTS
YAML
cat /etc/tendril/agent.yaml

step "start the agent"
if [ $SYSTEMD -eq 1 ]; then
  install -m 0644 "$SRC/systemd/tendril-agent.service" /etc/systemd/system/tendril-agent.service
  systemctl daemon-reload
  systemctl enable --now tendril-agent
else
  mkdir -p /run/tendril /var/lib/tendril
  tendril-agent --config /etc/tendril/agent.yaml > /run/tendril/agent.log 2>&1 &
  echo $! > /run/tendril/agent.pid
fi
for _ in $(seq 1 100); do tendril status >/dev/null 2>&1 && break; sleep 0.2; done
tendril status

step "a backend on this node and a NodePort service with a backend on every node"
mkdir -p /run/tendril
cat > /run/tendril/http.sh <<SH
#!/bin/sh
read -r _request
printf 'HTTP/1.0 200 OK\r\n\r\n%s\n' "node $NODE_IP"
SH
chmod +x /run/tendril/http.sh
socat TCP-LISTEN:8080,fork,reuseaddr EXEC:/run/tendril/http.sh >/dev/null 2>&1 &
backends="$NODE_IP:8080"
for p in "${PEERS[@]}"; do backends="$backends,$p:8080"; done
tendril service delete --frontend 10.96.0.10:80/TCP >/dev/null 2>&1 || true
tendril service add --frontend 10.96.0.10:80/TCP --type NodePort --node-port 30080 --backends "$backends"

step "check: curl the ClusterIP from this node"
ok=0
for _ in $(seq 1 20); do
  answer=$(curl -s --max-time 2 http://10.96.0.10/ || true)
  case "$answer" in "node "*) ok=$((ok + 1)); echo "10.96.0.10:80 -> $answer" ;; esac
  [ $ok -ge 4 ] && break
  sleep 0.3
done
tendril bpf lb list
if [ $ok -lt 4 ]; then echo "provision: the ClusterIP did not answer" >&2; exit 1; fi
echo "provision $NODE_IP: OK (check the node port from outside: curl http://$NODE_IP:30080/)"
