#!/usr/bin/env bash
# From outside the nodes (the Vagrant host, or the kernel matrix's peer
# namespace): curl the NodePort service on the given nodes; each must answer,
# and together the answers must come from the backends of BACKENDS nodes
# (default: as many as were given), local ones by DNAT, remote ones by SNAT
# through the node.
#   check-nodeport.sh NODE_IP... [--port 30080] [--backends N]
set -uo pipefail
PORT=30080
NODES=()
WANT=""
while [ $# -gt 0 ]; do
  case "$1" in
    --port) PORT=$2; shift 2 ;;
    --backends) WANT=$2; shift 2 ;;
    *) NODES+=("$1"); shift ;;
  esac
done
WANT=${WANT:-${#NODES[@]}}
declare -A seen
fail=0
for n in "${NODES[@]}"; do
  got=0
  for _ in $(seq 1 16); do
    a=$(curl -s --max-time 2 "http://$n:$PORT/" || true)
    case "$a" in "node "*) got=$((got + 1)); seen["$a"]=1 ;; esac
  done
  echo "$n:$PORT answered $got of 16"
  [ $got -ge 12 ] || fail=1
done
echo "backends seen: ${!seen[*]}"
[ "${#seen[@]}" -eq "$WANT" ] || { echo "check-nodeport: answers from ${#seen[@]} backends, expected $WANT" >&2; fail=1; }
[ $fail -eq 0 ] && echo "check-nodeport: OK"
exit $fail
