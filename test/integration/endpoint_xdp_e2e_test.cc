// Native XDP delivering NodePort flows into local pods, end to end: node 1's
// agent runs its XDP program natively on eth0, and the veths it made for its
// pods take XDP frames (GRO on their namespace side), so a NodePort flow to
// a pod on node 1 is translated and redirected into the pod's veth by XDP,
// without an skb before the pod. The cluster is endpoint_cluster.h's.
#include <thread>

#include "test/integration/endpoint_cluster.h"
#include "test/support/churn.h"

namespace tendril::test {
namespace {

class EndpointXdpE2ETest : public EndpointE2ETest {
 protected:
  void SetUp() override {
    EndpointE2ETest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    // A veth hands packets between namespaces with the checksum still to be
    // done (CHECKSUM_PARTIAL); a frame XDP redirects keeps only its bytes.
    // A NIC delivers full checksums: make the outside host's sends do so.
    std::string out;
    ASSERT_EQ(out_->Exec({"ethtool", "-K", "eth0", "tx", "off"}, &out), 0) << out;
    nodes_[0]->agent->Stop();
    StartAgent(0, false, "native");
  }

  // A NodePort on node 1 to pod 1 of node 1 (10.200.1.10 / fd20:1::10).
  void AddNodePort(const std::string& frontend, int node_port, const std::string& backends) {
    CliResult r = Cli(0, {"service", "add", "--frontend", frontend, "--type", "NodePort", "--node-port",
                          std::to_string(node_port), "--backends", backends});
    ASSERT_EQ(r.rc, 0) << r.err;
  }

  // Frames XDP sent into pod 1's veth (the host side's tx_queue_*_xdp_xmit).
  long XdpXmit() {
    std::string out;
    if (nodes_[0]->ns->Exec({"ethtool", "-S", "lxc1"}, &out) != 0) return -1;
    long n = 0;
    for (absl::string_view line : absl::StrSplit(out, '\n')) {
      line = absl::StripAsciiWhitespace(line);
      if (!absl::StartsWith(line, "tx_queue_") || !absl::StrContains(line, "_xdp_xmit:")) continue;
      long v = 0;
      if (absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(line.find(':') + 1)), &v)) n += v;
    }
    return n;
  }

  // Service flows node 1's XDP program created (conntrack flag "xdp"), of
  // one family.
  int XdpServiceFlows(bool v6) {
    int n = 0;
    std::vector<std::string> args = {"bpf", "ct", "list"};
    if (v6) args.push_back("--v6");
    for (const auto& e : Json(0, args)) {
      std::string f = e.value("flags", "");
      n += absl::StrContains(f, "service") && absl::StrContains(f, "xdp");
    }
    return n;
  }
};

TEST_F(EndpointXdpE2ETest, NodePortFlowsToALocalPodAreDeliveredByXdp) {
  // The agent marks the veths it made as XDP's to deliver into.
  json eps = Json(0, {"bpf", "endpoint", "list"});
  ASSERT_EQ(eps.size(), 4u);
  for (const auto& e : eps) {
    EXPECT_EQ(e.value("flags", ""), "xdp-rx") << e.dump();
    EXPECT_EQ(e.value("mtu", 0), 1500) << e.dump();
  }
  AddNodePort("10.96.0.20:80", 30080, "10.200.1.10:8080");
  AddNodePort("[fd96::20]:80", 30080, "[fd20:1::10]:8080");
  const long before = XdpXmit();
  ASSERT_GE(before, 0) << "ethtool -S lxc1 failed";
  EXPECT_EQ(Curl(*out_, "10.0.0.1:30080"), "pod1.1 10.0.0.100");
  EXPECT_TRUE(absl::StartsWith(Curl(*out_, "[fd00::1]:30080"), "pod1.1 "));
  EXPECT_GE(XdpXmit() - before, 4) << "XDP redirected no frames into the pod's veth";
  EXPECT_GE(XdpServiceFlows(false), 1);
  EXPECT_GE(XdpServiceFlows(true), 1);
  // Bulk: iperf3 through the NodePort into the pod.
  AddNodePort("10.96.0.21:5201", 30201, "10.200.1.10:5201");
  std::string out;
  ASSERT_EQ(out_->Exec({"iperf3", "-c", "10.0.0.1", "-p", "30201", "-t", "2", "-J"}, &out), 0) << out;
  json j = json::parse(out, nullptr, false);
  double gbps = j["end"]["sum_received"].value("bits_per_second", 0.0) / 1e9;
  EXPECT_GT(gbps, 0.05) << out;
  std::printf("iperf3 outside -> NodePort -> pod, native XDP delivering: %.2f Gbit/s\n", gbps);
}

// Sustained: short connections from the outside through the NodePort into
// the pod for 4 s while the agent restarts (XDP stays attached, the maps
// pinned): none may fail, and XDP carried them.
TEST_F(EndpointXdpE2ETest, NodePortChurnIntoAPodThroughAnAgentRestartFailsNone) {
  RequestServer server(Pod(0, 1), "10.200.1.10", 9090);
  ASSERT_TRUE(server.ok());
  AddNodePort("10.96.0.30:9090", 30090, "10.200.1.10:9090");
  const long before = XdpXmit();
  ChurnSpec spec;
  spec.sources = {"10.0.0.100"};
  spec.dst = "10.0.0.1";
  spec.dport = 30090;
  spec.seconds = 4;
  std::thread disturb([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    EXPECT_EQ(nodes_[0]->agent->Stop(), 0);
    StartAgent(0, false, "native");
  });
  ChurnResult r = RunChurn(*out_, spec);
  disturb.join();
  EXPECT_EQ(r.failed, 0) << r.Summary();
  EXPECT_GE(r.ok, 5000) << r.Summary();
  EXPECT_GE(XdpXmit() - before, 2 * r.ok) << "each connection's SYN, request and close go by XDP";
  EXPECT_GE(server.answered(), r.ok);
}

}  // namespace
}  // namespace tendril::test
