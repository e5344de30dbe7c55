#!/usr/bin/env bash
# The fault-injection tests with a fault at every N instead of CI's sample:
# every map write of an apply of 1,000 services (a third Maglev), every
# write and fsync of its store commit, every map write of an endpoint add
# and of a restart's restore over another state (several minutes; the
# restore sweep is the long one). Run as root, after a build (cmake --preset
# default && cmake --build build -j2).
#
#   scripts/fault-sweep.sh                   all four
#   scripts/fault-sweep.sh '*Apply*'         one (a gtest filter)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then echo "fault-sweep: run as root (the agent runs in a test namespace)" >&2; exit 1; fi
test -x build/test/integration_tests || { echo "fault-sweep: build first (build/test/integration_tests)" >&2; exit 1; }
filter=${1:-*}
test/cleanup-leftovers.sh
TND_FAULT_EVERY=1 build/test/integration_tests --gtest_filter="FaultInjectionTest.${filter}" 2>&1 |
  grep -v '^[0-9T:.-]*Z \(info\|debug\)'
test/cleanup-leftovers.sh
