# Sourced by test/vm/run-matrix.sh on the host and by the guest's /init: the
# suites that run on every kernel of the matrix. Needs BUILD (the build dir).
# Integration: attach tests (XDP, tc, cgroup), agent lifecycle, and a short
# end to end: the prefilter in both XDP modes and across a restart, and one
# service with real TCP through it; NodePort across two nodes (XDP native
# and tc only) and DSR.
GTEST_INTEGRATION='AttachTest.*:CgroupAttachTest.*:AgentLifecycleTest.*:XdpModes/PrefilterE2ETest.DeniedSourceIsDroppedEverythingElsePasses/*:XdpModes/PrefilterE2ETest.RestartKeepsTrafficFlowingAndRestoresState/native:ServiceE2ETest.MaglevSpreadsAndAnswersFromBackends:ServiceE2ETest.NoBackendsRefusesAtOnce:ServiceE2ETest.AgentRestartUnderSteadyConnectionsFailsNone:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/XdpNative:Modes/NodePortE2ETest.NodePortReachesLocalAndRemoteBackends/TcOnly:Modes/NodePortE2ETest.DsrRepliesComeFromTheBackendsNode/TcOnly'

# run_suites LABEL OUTDIR: prints "TND-RESULT LABEL SUITE RC" per suite.
run_suites() {
  for suite in unit bpf integration verifier; do
    case $suite in
      unit) "$BUILD/test/unit_tests" --gtest_brief=1 ;;
      bpf) "$BUILD/test/bpf_tests" --gtest_brief=1 ;;
      integration) "$BUILD/test/integration_tests" --gtest_brief=1 --gtest_filter="$GTEST_INTEGRATION" ;;
      verifier) "$BUILD/test/bpf_verify_report" "$BUILD/bpf" > "$2/verifier.txt" ;;
    esac
    echo "TND-RESULT $1 $suite $?"
  done
}
