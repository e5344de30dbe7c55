#!/usr/bin/env bash
# Sets everything up and runs every test: unit tests, BPF packet tests on the
# real kernel, and end-to-end tests in network namespaces. Run as root.
#
#   scripts/test.sh                 all tests, then the sanitizer and fuzz stage
#                                   (scripts/test-sanitizers.sh: unit and bpf
#                                   under ASan+UBSan, each fuzz harness 15 s)
#   scripts/test.sh -L unit         only a CTest label (unit, bpf, integration)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "test: run as root (BPF and network namespaces)" >&2; exit 1; fi
./scripts/setup-deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j2
cd build
# Two tests at a time (each makes its own namespaces, pins and cgroups); the
# kernel matrix runs alone (RUN_SERIAL).
ctest --output-on-failure --timeout 300 -j2 "$@"
cd ..
if [ $# -eq 0 ]; then ./scripts/test-sanitizers.sh; fi
