// Native XDP delivering NodePort flows into local pods, end to end: node 1's
// agent runs its XDP program natively on eth0, and the veths it made for its
// pods take XDP frames (GRO on their namespace side), so a NodePort flow to
// a pod on node 1 is translated and redirected into the pod's veth by XDP,
// without an skb before the pod. The cluster is endpoint_cluster.h's.
#include <thread>
#include <utility>

#include "absl/strings/str_format.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

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

  // Clears the XDP flag of node 1's endpoint entries behind the agent's
  // back (the benchmark's "XDP passing to tc"): new flows go by tc.
  void ClearXdpRx() {
    auto m = Map<tnd_ep_key, tnd_endpoint>::OpenPin(nodes_[0]->pins.path() + "/" TND_MAP_ENDPOINTS,
                                                   TND_MAP_ENDPOINTS);
    ASSERT_TRUE(m.ok()) << m.status();
    std::vector<std::pair<tnd_ep_key, tnd_endpoint>> all;
    ASSERT_TRUE(m->ForEach([&](const tnd_ep_key& k, const tnd_endpoint& v) { all.push_back({k, v}); }).ok());
    for (auto& [k, v] : all) {
      v.flags &= ~TND_EP_F_XDP_RX;
      ASSERT_TRUE(m->Update(k, v).ok());
    }
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

// Benchmark (test/bench/run): from the outside through a NodePort into a pod
// on node 1, alternating in the same run: native XDP delivering into the
// pod's veth; native XDP handing the packets to tc (the endpoints' XDP flag
// cleared in the map, as for a veth that cannot take XDP frames), which
// delivers by bpf_redirect_peer; and tc alone (XDP disabled). TCP
// throughput and 64-byte UDP datagrams per second received.
TEST_F(EndpointXdpE2ETest, NodePortIntoAPodXdpAgainstTc) {
  const int rounds = EnvInt("TND_IPERF_ROUNDS", 1), seconds = EnvInt("TND_IPERF_SECONDS", 1);
  // iperf3's control connection is TCP, its UDP test's datagrams UDP.
  AddNodePort("10.96.0.21:5201", 30201, "10.200.1.10:5201");
  AddNodePort("10.96.0.21:5201/UDP", 30201, "10.200.1.10:5201");
  const char* names[3] = {"XDP delivering", "XDP passing to tc", "tc only"};
  std::vector<double> gbps[3], kpps[3];
  for (int r = 0; r < rounds; ++r)
    for (int k = 0; k < 3; ++k) {
      nodes_[0]->agent->Stop();
      StartAgent(0, false, k == 2 ? "disabled" : "native");
      if (k == 1) ClearXdpRx();
      gbps[k].push_back(IperfFrom(*out_, "10.0.0.1", 30201, seconds));
      kpps[k].push_back(IperfFrom(*out_, "10.0.0.1", 30201, seconds, 64));
    }
  std::string tput, pps;
  for (int k = 0; k < 3; ++k) {
    absl::StrAppendFormat(&tput, "%s%s %.2f Gbit/s", k ? ", " : "", names[k], Median(gbps[k]));
    absl::StrAppendFormat(&pps, "%s%s %.0f k/s", k ? ", " : "", names[k], Median(kpps[k]));
  }
  auto ratio = [](const std::vector<double>* v, int a, int b) {
    return Median(v[b]) > 0 ? Median(v[a]) / Median(v[b]) : 0.0;
  };
  std::printf("THROUGHPUT outside->NodePort->local pod (iperf3 TCP, %d s, median of %d): %s; XDP delivering / "
              "passing %.2f, / tc only %.2f\n",
              seconds, rounds, tput.c_str(), ratio(gbps, 0, 1), ratio(gbps, 0, 2));
  std::printf("PPS outside->NodePort->local pod (iperf3 UDP 64 B, received): %s; XDP delivering / passing %.2f, "
              "/ tc only %.2f\n",
              pps.c_str(), ratio(kpps, 0, 1), ratio(kpps, 0, 2));
  for (int k = 0; k < 3; ++k) {
    EXPECT_GT(Median(gbps[k]), 0.05) << names[k];
    EXPECT_GT(Median(kpps[k]), 1) << names[k];
  }
}

}  // namespace
}  // namespace tendril::test
