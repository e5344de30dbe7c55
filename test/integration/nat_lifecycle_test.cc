// NAT and conntrack lifecycle under sustained traffic: flows that end give
// back their NAT mappings and conntrack entries, flows that live keep them,
// SNAT never takes a port the node's own sockets use, and a removed
// backend's UDP flows move to a live one.
//
//   client 10.0.0.100, .101 ---- eth0 10.0.0.1 [node] eth1 10.2.0.1 ---- backend 10.2.0.2
//          fd00::100, ::101            fd00::1          fd02::1              fd02::2
//                                        |
//                              pods 10.200.1.10, .11 (tendril endpoints)
//
// eth0 and eth1 are both native devices: a NodePort flow to the backend
// leaves through eth1 and is SNATed to 10.2.0.1; a pod's flow to the client
// or the backend is masqueraded to the device's address. The client also
// serves (the "outside" of masquerade).
#include <gtest/gtest.h>

#include <netinet/in.h>

#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/api_client.h"
#include "maps/conntrack.h"
#include "test/support/churn.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class NatLifecycleTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    client_ = std::make_unique<Netns>("lcl");
    node_ = std::make_unique<Netns>("lnd");
    backend_ = std::make_unique<Netns>("lbe");
    ConnectVeth(*client_, "eth0", "10.0.0.100/24", *node_, "eth0", "10.0.0.1/24");
    ConnectVeth(*node_, "eth1", "10.2.0.1/24", *backend_, "eth0", "10.2.0.2/24");
    ASSERT_EQ(client_->Exec({"ip", "addr", "add", "10.0.0.101/24", "dev", "eth0"}), 0);
    for (auto [ns, dev, a] : {std::tuple{client_.get(), "eth0", "fd00::100/64"}, {client_.get(), "eth0", "fd00::101/64"},
                              {node_.get(), "eth0", "fd00::1/64"}, {node_.get(), "eth1", "fd02::1/64"},
                              {backend_.get(), "eth0", "fd02::2/64"}})
      ASSERT_EQ(ns->Exec({"ip", "-6", "addr", "add", a, "dev", dev, "nodad"}), 0);
    ASSERT_EQ(backend_->Exec({"ip", "route", "add", "default", "via", "10.2.0.1"}), 0);
    ASSERT_EQ(backend_->Exec({"ip", "-6", "route", "add", "default", "via", "fd02::1"}), 0);
    ASSERT_EQ(node_->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}), 0);
    servers_.push_back(std::make_unique<RequestServer>(*backend_, "::", 8080));
    servers_.push_back(std::make_unique<RequestServer>(*client_, "::", 9090));
    for (auto& s : servers_) ASSERT_TRUE(s->ok());
    StartAgent();
  }

  void TearDown() override { agent_.reset(); }

  void StartAgent(std::vector<std::string> extra = {}) {
    argv_ = {BinaryPath("tendril-agent"), "--netns", node_->path(), "--devices", "eth0,eth1", "--xdp-mode",
             GetParam() == "tc" ? "disabled" : GetParam(), "--bpffs-root", pins_.path(), "--state-dir",
             state_.path(), "--api-socket", Socket(), "--cgroup-root", cgroup_.path(), "--pod-cidrs",
             "10.200.0.0/16,fd20::/16", "--ct-gc-interval", "2"};
    argv_.insert(argv_.end(), extra.begin(), extra.end());
    for (const auto& f : AgentTestFlags()) argv_.push_back(f);
    agent_ = std::make_unique<Subprocess>(argv_);
    for (int k = 0; k < 300; ++k) {
      if (CallAgent(Socket(), "status").ok()) return;
      ASSERT_TRUE(agent_->Running()) << agent_->Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    FAIL() << "agent not ready: " << agent_->Log();
  }

  std::string Socket() const { return state_.path() + "/api.sock"; }
  CliResult Cli(const std::vector<std::string>& args) { return RunCli(Socket(), pins_.path(), args); }

  // NAT entries of a family: all of them, and those still unexpired.
  std::pair<size_t, size_t> NatEntries(int fam) {
    auto nat = NatMap::OpenPin(pins_.path() + "/" + (fam == 4 ? TND_MAP_NAT_V4 : TND_MAP_NAT_V6), "nat");
    EXPECT_TRUE(nat.ok()) << nat.status();
    size_t all = 0, live = 0;
    uint32_t now = BpfClockSeconds();
    if (nat.ok())
      EXPECT_TRUE(nat->ForEach([&](const tnd_nat_key&, const tnd_nat_val& v) {
                       all++;
                       if (static_cast<int32_t>(v.expires - now) >= 0) live++;
                     }).ok());
    return {all, live};
  }

  // Waits (bounded) for GC to leave at most `max` NAT entries in a family.
  size_t WaitForNatAtMost(int fam, size_t max, int seconds) {
    size_t n = 0;
    for (int i = 0; i < seconds * 2; ++i) {
      n = NatEntries(fam).first;
      if (n <= max) return n;
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
    return n;
  }

  std::unique_ptr<Netns> client_, node_, backend_;
  std::vector<std::unique_ptr<RequestServer>> servers_;
  TempPinRoot pins_;
  TempDir state_;
  TempCgroup cgroup_;
  std::vector<std::string> argv_;
  std::unique_ptr<Subprocess> agent_;
};

TEST_P(NatLifecycleTest, NodePortChurnReleasesItsNatMappings) {
  CliResult add = Cli({"service", "add", "--frontend", "10.96.0.10:80/TCP", "--type", "NodePort", "--node-port",
                       "30080", "--backends", "10.2.0.2:8080"});
  ASSERT_EQ(add.rc, 0) << add.out << add.err;
  ChurnSpec spec;
  spec.sources = {"10.0.0.100", "10.0.0.101"};
  spec.dst = "10.0.0.1";
  spec.dport = 30080;
  spec.connections = getenv("TND_CHURN_N") ? atoi(getenv("TND_CHURN_N")) : 40000;
  spec.seconds = 120;
  ChurnResult r = RunChurn(*client_, spec);
  std::printf("[ churn ] NodePort SNAT (%s): %s\n", GetParam().c_str(), r.Summary().c_str());
  EXPECT_EQ(r.failed, 0) << r.Summary() << Cli({"metrics", "list"}).out;
  EXPECT_EQ(r.ok, spec.connections) << r.Summary();
  // Every flow was reset: after the closing lifetime and a GC, nothing is left.
  EXPECT_EQ(WaitForNatAtMost(4, 0, 30), 0u) << Cli({"status"}).out;
}

INSTANTIATE_TEST_SUITE_P(Modes, NatLifecycleTest, ::testing::Values("generic", "tc"),
                         [](const auto& info) { return info.param == "tc" ? std::string("TcOnly") : std::string("XdpGeneric"); });

}  // namespace
}  // namespace tendril::test
