# Sourced by test/vm/run-matrix.sh on the host and by the guest's /init: the
# suites that run on every kernel of the matrix. Needs BUILD (the build dir).
# Integration: attach tests (XDP, tc, cgroup), agent lifecycle, and a short
# end to end: the prefilter in both XDP modes and across a restart, and one
# service with real TCP through it; NodePort across two nodes (XDP native
# and tc only).
GTEST_INTEGRATION='AttachTest.*:CgroupAttachTest.*:AgentLifecycleTest.*:XdpModes/PrefilterE2ETest.DeniedSourceIsDroppedEverythingElsePasses/*:XdpModes/PrefilterE2ETest.RestartKeepsTrafficFlowingAndRestoresState/native:ServiceE2ETest.MaglevSpreadsAndAnswersFromBackends:ServiceE2ETest.NoBackendsRefusesAtOnce:ServiceE2ETest.AgentRestartUnderSteadyConnectionsFailsNone:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/XdpNative:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/TcOnly'

# sharded OUTDIR NAME BINARY [ARGS...]: the gtest binary as TND_SHARDS
# (default 2) processes at once (gtest's own sharding; every test makes its
# own namespaces, pin root and cgroup, as under ctest -j2), their output one
# after the other; fails if any shard fails. Under qemu's multi-threaded TCG
# each guest CPU is a host thread, so two shards take about half the time.
sharded() {
  local out=$1 name=$2 n=${TND_SHARDS:-2} i=0 pids="" rc=0 pid
  shift 2
  while [ "$i" -lt "$n" ]; do
    GTEST_TOTAL_SHARDS=$n GTEST_SHARD_INDEX=$i "$@" > "$out/$name.shard$i.log" 2>&1 &
    pids="$pids $!"
    i=$((i + 1))
  done
  i=0
  for pid in $pids; do
    wait "$pid" || rc=1
    cat "$out/$name.shard$i.log"
    i=$((i + 1))
  done
  return $rc
}

# run_suites LABEL OUTDIR [SUITE...]: prints "TND-RESULT LABEL SUITE RC" per
# suite (all four by default).
run_suites() {
  local label=$1 out=$2
  shift 2
  local suites=${*:-unit bpf integration verifier}
  for suite in $suites; do
    case $suite in
      unit) "$BUILD/test/unit_tests" --gtest_brief=1 ;;
      bpf) sharded "$out" bpf "$BUILD/test/bpf_tests" --gtest_brief=1 ;;
      integration) sharded "$out" integration "$BUILD/test/integration_tests" --gtest_brief=1 --gtest_filter="$GTEST_INTEGRATION" ;;
      verifier) "$BUILD/test/bpf_verify_report" "$BUILD/bpf" > "$out/verifier.txt" ;;
    esac
    echo "TND-RESULT $label $suite $?"
  done
}
