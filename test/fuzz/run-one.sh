#!/usr/bin/env bash
# Runs one libFuzzer harness for a bounded time and prints what it did:
#   run-one.sh HARNESS SEED_DIR WORK_DIR SECONDS
# New inputs go to WORK_DIR/corpus (never into the committed seeds); a crash,
# leak, timeout or UB report leaves its input in WORK_DIR and fails.
set -euo pipefail
bin=$1 seeds=$2 work=$3 secs=$4
mkdir -p "$work/corpus"
log="$work/last.log"
set +e
"$bin" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
  -artifact_prefix="$work/" "$work/corpus" "$seeds" >"$log" 2>&1
rc=$?
set -e
name=$(basename "$bin")
execs=$(grep -a 'stat::number_of_executed_units' "$log" | awk '{print $2}' | tail -1 || true)
cov=$(grep -aoE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
echo "[ fuzz ] $name: ${execs:-0} executions in ${secs} s, ${cov:-no coverage line}, corpus $(ls "$work/corpus" | wc -l) + $(ls "$seeds" | wc -l) seeds, exit $rc"
if [ "$rc" -ne 0 ]; then
  grep -aE 'ERROR|SUMMARY|runtime error|Test unit written|==[0-9]+==' "$log" | head -40
  exit 1
fi
