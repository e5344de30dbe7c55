#!/usr/bin/env bash
# Longer fuzzing than CI's: every libFuzzer harness for SECONDS each (default
# 600) from its seeds plus the corpus earlier runs grew in build-asan, then
# the frame fuzzer with FRAMES generated frames (default 500000) per seed.
#
#   test/fuzz/run.sh [SECONDS] [FRAMES] [SEEDS...]
#
# A finding leaves its input under build-asan/test/fuzz/work/NAME/ (libFuzzer)
# or prints the seed and frame (frame fuzzer); add the input to
# test/fuzz/corpus/NAME/ with the regression test that fixes it.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-600}
frames=${2:-500000}
shift $(( $# > 2 ? 2 : $# )) || true
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(11 12)
cmake --preset asan >/dev/null
targets=(bpf_objects bpf_tests)
for h in test/fuzz/fuzz_*.cc; do targets+=("$(basename "$h" .cc)"); done
cmake --build build-asan -j2 --target "${targets[@]}"
status=0
for h in test/fuzz/fuzz_*.cc; do
  name=$(basename "$h" .cc)
  short=${name#fuzz_}
  test/fuzz/run-one.sh "build-asan/test/fuzz/$name" "test/fuzz/corpus/$short" "build-asan/test/fuzz/work/$short" \
    "$secs" || status=1
done
if [ "$(id -u)" -eq 0 ]; then
  for seed in "${seeds[@]}"; do
    out=$(TENDRIL_FRAME_FUZZ_SEED=$seed TENDRIL_FRAME_FUZZ_FRAMES=$frames \
      build-asan/test/bpf_tests --gtest_filter='FrameFuzzTest.*' 2>&1) || status=1
    echo "$out" | grep -E '^\[ frame fuzz \]|Failure|seed [0-9]+, frame|FAILED' || true
  done
else
  echo "run.sh: not root, frame fuzzer skipped" >&2
fi
exit $status
