#!/usr/bin/env bash
# The sanitizer and fuzz stage of scripts/test.sh: builds the asan preset
# (clang, AddressSanitizer + UndefinedBehaviorSanitizer, libFuzzer) into
# build-asan and runs, there, the unit and BPF suites and every fuzz
# harness for TENDRIL_FUZZ_SECONDS (default 15) each. Run as root.
#
#   scripts/test-sanitizers.sh            what CI runs
#   TENDRIL_FUZZ_SECONDS=600 scripts/test-sanitizers.sh
#   test/fuzz/run.sh                      the harnesses alone, longer
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "test-sanitizers: run as root (BPF tests)" >&2; exit 1; fi
secs=${TENDRIL_FUZZ_SECONDS:-15}
cmake --preset asan -DTENDRIL_FUZZ_SECONDS="$secs" >/dev/null
# Only what this stage runs (the agent and CLI binaries are for the
# integration suite, which runs in the main build).
targets=(bpf_objects unit_tests bpf_tests bpf_verify_report)
for h in test/fuzz/fuzz_*.cc; do targets+=("$(basename "$h" .cc)"); done
cmake --build build-asan -j2 --target "${targets[@]}"
cd build-asan
# Any report fails the run; leaks too.
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:strict_string_checks=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --output-on-failure --timeout 300 -j2 -L 'unit|bpf'
ctest --output-on-failure -j2 -L fuzz
grep -ah '^\[ fuzz \]' Testing/Temporary/LastTest.log || true
