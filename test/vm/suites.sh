# Sourced by test/vm/run-matrix.sh on the host and by the guest's /init: the
# suites that run on every kernel of the matrix. Needs BUILD (the build dir).
# Integration: attach tests (XDP, tc, cgroup), agent lifecycle, and a short
# end to end: the prefilter in both XDP modes and across a restart, and one
# service with real TCP through it; NodePort across two nodes (XDP native
# and tc only).
GTEST_INTEGRATION='AttachTest.*:CgroupAttachTest.*:AgentLifecycleTest.*:XdpModes/PrefilterE2ETest.DeniedSourceIsDroppedEverythingElsePasses/*:XdpModes/PrefilterE2ETest.RestartKeepsTrafficFlowingAndRestoresState/native:ServiceE2ETest.MaglevSpreadsAndAnswersFromBackends:ServiceE2ETest.NoBackendsRefusesAtOnce:ServiceE2ETest.AgentRestartUnderSteadyConnectionsFailsNone:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/XdpNative:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/TcOnly'

# run_suites LABEL OUTDIR [SUITE...]: prints "TND-RESULT LABEL SUITE RC" per
# suite (all four by default).
run_suites() {
  local label=$1 out=$2
  shift 2
  local suites=${*:-unit bpf integration verifier}
  for suite in $suites; do
    case $suite in
      unit) "$BUILD/test/unit_tests" --gtest_brief=1 ;;
      bpf) "$BUILD/test/bpf_tests" --gtest_brief=1 ;;
      integration) "$BUILD/test/integration_tests" --gtest_brief=1 --gtest_filter="$GTEST_INTEGRATION" ;;
      verifier) "$BUILD/test/bpf_verify_report" "$BUILD/bpf" > "$out/verifier.txt" ;;
    esac
    echo "TND-RESULT $label $suite $?"
  done
}
