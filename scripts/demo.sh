#!/usr/bin/env bash
# tendril demo: builds everything, creates a small topology in network
# namespaces, runs tendril-agent on the "node", declares a NodePort service
# that the client reaches through socket load balancing (its ClusterIP) and
# through the per-packet path at tc/XDP (its node port), denies the
# attacker's address in the XDP prefilter, and shows that the client still
# gets through while the attacker does not.
#
#   scripts/demo.sh            run the demo, then tear it all down
#   scripts/demo.sh --keep     leave the topology and agent running
#   scripts/demo.sh --down     tear down a kept demo
#   XDP_MODE=generic scripts/demo.sh
#
# Topology (all in namespaces; nothing touches the host's interfaces):
#
#   tdemo-client  10.90.0.10 ─┐
#                              ├─ br0 (tdemo-lan) ── eth0 10.90.0.1  tdemo-node
#   tdemo-attacker 10.90.0.66 ─┘                       (tendril-agent, XDP on eth0,
#                                                       HTTP server on :8080)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

NS_LAN=tdemo-lan NS_NODE=tdemo-node NS_CLIENT=tdemo-client NS_ATTACKER=tdemo-attacker
NS_POD1=tdemo-pod1 NS_POD2=tdemo-pod2
RUN_DIR=/run/tendril-demo
PINS=/sys/fs/bpf/tendril-demo
CGROUP="$(awk '$3 == "cgroup2" {print $2; exit}' /proc/mounts)/tendril-demo"
XDP_MODE=${XDP_MODE:-native}
TENDRIL="$ROOT/build/tendril --api-socket $RUN_DIR/api.sock --bpffs-root $PINS"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

down() {
  if [ -f "$RUN_DIR/agent.pid" ]; then
    kill -TERM "$(cat "$RUN_DIR/agent.pid")" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$(cat "$RUN_DIR/agent.pid")" 2>/dev/null || break; sleep 0.1; done
  fi
  for ns in $NS_NODE $NS_CLIENT $NS_ATTACKER $NS_LAN $NS_POD1 $NS_POD2; do
    for p in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$p" 2>/dev/null || true; done
    ip netns del "$ns" 2>/dev/null || true
  done
  rm -rf "$PINS" "$RUN_DIR"
  rmdir "$CGROUP" 2>/dev/null || true
}

if [ "${1:-}" = "--down" ]; then down; echo "demo torn down"; exit 0; fi
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

if [ "$(id -u)" -ne 0 ]; then echo "demo: run as root (it creates namespaces and loads BPF)" >&2; exit 1; fi

say "Installing dependencies (no-op when present) and building"
./scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2 -- --no-print-directory 2>&1 | grep -Ev '^\[|jobserver' || true

down  # a previous run's leftovers
[ $KEEP -eq 1 ] || trap down EXIT

say "Creating the topology"
for ns in $NS_LAN $NS_NODE $NS_CLIENT $NS_ATTACKER $NS_POD1 $NS_POD2; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip -n $NS_LAN link add br0 type bridge
ip -n $NS_LAN link set br0 up
join() {  # ns port addr
  ip link add eth0 netns "$1" type veth peer name "$2" netns $NS_LAN
  ip -n "$1" addr add "$3" dev eth0
  ip -n "$1" link set eth0 up
  ip -n $NS_LAN link set "$2" master br0 up
}
join $NS_NODE pnode 10.90.0.1/24
join $NS_CLIENT pclient 10.90.0.10/24
join $NS_ATTACKER pattacker 10.90.0.66/24
mkdir -p "$RUN_DIR" "$CGROUP"
cat > "$RUN_DIR/http.sh" <<'SH'
#!/bin/sh
# A one-line HTTP server body for socat: read the request line, answer.
read -r _request
printf 'HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n%s\n' "$1"
SH
chmod +x "$RUN_DIR/http.sh"
for port in 8080 8081; do
  ip netns exec $NS_NODE socat TCP-LISTEN:$port,fork,reuseaddr \
    EXEC:"$RUN_DIR/http.sh backend-$port" >/dev/null 2>&1 &
  disown
done
echo "client 10.90.0.10, attacker 10.90.0.66, node 10.90.0.1 (HTTP on :8080 and :8081)"

say "Starting tendril-agent on the node (XDP $XDP_MODE on eth0)"
cat > "$RUN_DIR/agent.yaml" <<YAML
devices: [eth0]
xdp-mode: $XDP_MODE
bpffs-root: $PINS
state-dir: $RUN_DIR/state
api-socket: $RUN_DIR/api.sock
cgroup-root: $CGROUP
pod-cidrs: [10.200.0.0/16]
YAML
cat "$RUN_DIR/agent.yaml"
"$ROOT/build/tendril-agent" --config "$RUN_DIR/agent.yaml" --netns /run/netns/$NS_NODE \
  >"$RUN_DIR/agent.log" 2>&1 &
echo $! > "$RUN_DIR/agent.pid"
disown
for _ in $(seq 1 100); do $TENDRIL status >/dev/null 2>&1 && break; sleep 0.1; done
if ! $TENDRIL status >/dev/null 2>&1; then cat "$RUN_DIR/agent.log"; echo "agent did not start" >&2; exit 1; fi
sed 's/^/  agent: /' "$RUN_DIR/agent.log"

fetch() {  # ns [url] -> prints the reply or "(no answer)"
  ip netns exec "$1" curl -s --max-time 2 "${2:-http://10.90.0.1:8080/}" || echo "(no answer)"
}
# A client process in the demo's cgroup, where the socket programs are attached.
in_cgroup() { sh -c 'echo $$ > "$0/cgroup.procs" && exec "$@"' "$CGROUP" "$@"; }

say "tendril service add --frontend 10.96.0.10:80/TCP --type NodePort --node-port 30080 --backends 10.90.0.1:8080,10.90.0.1:8081"
$TENDRIL service add --frontend 10.96.0.10:80/TCP --type NodePort --node-port 30080 \
  --backends 10.90.0.1:8080,10.90.0.1:8081
say "The client curls the ClusterIP 6 times (socket LB picks a backend at connect)"
svc_answers=""
for _ in 1 2 3 4 5 6; do
  a=$(in_cgroup nsenter --net=/run/netns/$NS_CLIENT curl -s --max-time 2 http://10.96.0.10/ || echo "(no answer)")
  echo "client -> 10.96.0.10:80: $a"
  svc_answers+="$a "
done
say "The client curls the node port 10.90.0.1:30080 6 times (per packet: tc/XDP DNAT, conntrack)"
np_answers=""
for _ in 1 2 3 4 5 6; do
  a=$(ip netns exec $NS_CLIENT curl -s --max-time 2 http://10.90.0.1:30080/ || echo "(no answer)")
  echo "client -> 10.90.0.1:30080: $a"
  np_answers+="$a "
done
say "tendril bpf lb list"
$TENDRIL bpf lb list
say "tendril bpf ct list"
$TENDRIL bpf ct list

say "Endpoints: tendril endpoint add creates two pods' veths (eBPF host routing)"
$TENDRIL endpoint add --id 1 --netns /run/netns/$NS_POD1 --ifname lxc1 --ip 10.200.1.10
$TENDRIL endpoint add --id 2 --netns /run/netns/$NS_POD2 --ifname lxc2 --ip 10.200.1.11
ip netns exec $NS_POD2 socat TCP-LISTEN:8080,fork,reuseaddr EXEC:"$RUN_DIR/http.sh pod2" >/dev/null 2>&1 &
disown
ip netns exec $NS_CLIENT socat TCP-LISTEN:9090,fork,reuseaddr SYSTEM:'echo "client saw \$SOCAT_PEERADDR"' \
  >/dev/null 2>&1 &
disown
$TENDRIL service add --frontend 10.96.0.20:80/TCP --backends 10.200.1.11:8080 >/dev/null
$TENDRIL endpoint list
$TENDRIL monitor --type trace --timeout 4 > "$RUN_DIR/monitor.txt" 2>&1 &
mon=$!
sleep 0.5
pod_direct=$(fetch $NS_POD1 http://10.200.1.11:8080/)
pod_svc=$(fetch $NS_POD1 http://10.96.0.20/)
pod_out=$(ip netns exec $NS_POD1 socat -T2 - TCP:10.90.0.10:9090 </dev/null 2>/dev/null || echo "(no answer)")
echo "pod1 -> pod2 10.200.1.11:8080:        $pod_direct   (bpf_redirect_peer; the node has IPv4 forwarding off)"
echo "pod1 -> service 10.96.0.20:80:         $pod_svc   (per packet at bpf_lxc)"
echo "pod1 -> client 10.90.0.10:9090:        $pod_out   (masqueraded to the node)"
wait $mon || true
say "tendril monitor --type trace (what the datapath decided for each new flow)"
cat "$RUN_DIR/monitor.txt"
say "tendril bpf endpoint list"
$TENDRIL bpf endpoint list

say "Before: both reach the node"
echo "client:   $(fetch $NS_CLIENT)"
echo "attacker: $(fetch $NS_ATTACKER)"

say "tendril prefilter add 10.90.0.66/32"
$TENDRIL prefilter add 10.90.0.66/32

say "After: the client gets through, the attacker's packets die in XDP"
c=$(fetch $NS_CLIENT); a=$(fetch $NS_ATTACKER)
echo "client:   $c"
echo "attacker: $a"
ip netns exec $NS_ATTACKER ping -c 2 -W 1 10.90.0.1 | grep -E 'transmitted' | sed 's/^/attacker ping: /' || true

say "tendril status"
$TENDRIL status
say "tendril prefilter list"
$TENDRIL prefilter list
say "tendril metrics list"
$TENDRIL metrics list

if [ "$c" != "backend-8080" ] || [ "$a" != "(no answer)" ]; then
  echo "demo: unexpected prefilter result (client: $c, attacker: $a)" >&2
  exit 1
fi
case "$svc_answers" in
  *"no answer"*) echo "demo: a connect through the ClusterIP failed: $svc_answers" >&2; exit 1 ;;
esac
case "$np_answers" in
  *"no answer"*) echo "demo: a connect through the node port failed: $np_answers" >&2; exit 1 ;;
esac
if [ "$pod_direct" != "pod2" ] || [ "$pod_svc" != "pod2" ] || [ "$pod_out" != "client saw 10.90.0.1" ]; then
  echo "demo: unexpected endpoint result ($pod_direct / $pod_svc / $pod_out)" >&2
  exit 1
fi
say "Demo OK"
if [ $KEEP -eq 1 ]; then
  echo "Left running. Try: $TENDRIL status"
  echo "Tear down with: scripts/demo.sh --down"
fi
