// The NodePort test bed: a LAN namespace (bridge) joins an external client
// and two node namespaces; each node runs its own tendril-agent (own pins,
// API socket, state directory, cgroup) and routes to a backend namespace
// behind it. Backends answer with their name and the client address they
// see. The parameter is the XDP mode: native, generic, or tc (XDP off).
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "datapath/attach.h"
#include "datapath/loader.h"
#include "network/addr.h"
#include "test/support/kernel.h"
#include "test/support/servers.h"

namespace tendril::test {

struct Node {
  std::unique_ptr<Netns> ns, backend;
  TempPinRoot pins;
  TempDir state;
  TempCgroup cgroup;
  std::vector<std::string> argv;
  std::unique_ptr<Subprocess> agent;
  std::string Socket() const { return state.path() + "/api.sock"; }
};

class NodePortCluster : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    lan_ = std::make_unique<Lan>("lan");
    client_ = std::make_unique<Netns>("ncl");
    lan_->Join(*client_, "pcl", "10.0.0.100/24", "fd00::100/64");
    ASSERT_EQ(client_->Exec({"ip", "addr", "add", "10.0.0.101/24", "dev", "eth0"}), 0);
    // An upstream router would send external IPs to a node; the client
    // routes them to node 1 itself.
    ASSERT_EQ(client_->Exec({"ip", "route", "add", "192.0.2.0/24", "via", "10.0.0.1"}), 0);
    for (int i = 1; i <= 2; ++i) {
      auto n = std::make_unique<Node>();
      n->ns = std::make_unique<Netns>(absl::StrCat("nn", i));
      n->backend = std::make_unique<Netns>(absl::StrCat("nb", i));
      lan_->Join(*n->ns, absl::StrCat("pn", i), absl::StrCat("10.0.0.", i, "/24"), absl::StrCat("fd00::", i, "/64"));
      ConnectVeth(*n->ns, "lx0", absl::StrCat("10.1.", i, ".1/24"), *n->backend, "eth0", absl::StrCat("10.1.", i, ".2/24"));
      Netns& b = *n->backend;
      ASSERT_EQ(n->ns->Exec({"ip", "-6", "addr", "add", absl::StrCat("fd0", i, "::1/64"), "dev", "lx0", "nodad"}), 0);
      ASSERT_EQ(b.Exec({"ip", "-6", "addr", "add", absl::StrCat("fd0", i, "::2/64"), "dev", "eth0", "nodad"}), 0);
      ASSERT_EQ(b.Exec({"ip", "route", "add", "default", "via", absl::StrCat("10.1.", i, ".1")}), 0);
      ASSERT_EQ(b.Exec({"ip", "-6", "route", "add", "default", "via", absl::StrCat("fd0", i, "::1")}), 0);
      int peer = 3 - i;
      ASSERT_EQ(n->ns->Exec({"ip", "route", "add", absl::StrCat("10.1.", peer, ".0/24"), "via",
                             absl::StrCat("10.0.0.", peer)}), 0);
      ASSERT_EQ(n->ns->Exec({"ip", "-6", "route", "add", absl::StrCat("fd0", peer, "::/64"), "via",
                             absl::StrCat("fd00::", peer)}), 0);
      ASSERT_EQ(n->ns->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}), 0);
      StartServers(b, absl::StrCat("be", i));
      nodes_.push_back(std::move(n));
    }
    if (GetParam() == "native") {
      // XDP_TX out of a veth needs NAPI on its peer: an XDP program there.
      for (const char* port : {"pcl", "pn1", "pn2"}) AttachPass(port);
      // Between namespaces a veth hands packets over with the checksum still
      // to be done (CHECKSUM_PARTIAL); native XDP sees only bytes, and a frame
      // it sends on with XDP_TX carries that partial checksum to the peer.
      // A NIC delivers full checksums: make every sender here do the same.
      std::vector<std::pair<const Netns*, const char*>> ends = {{client_.get(), "eth0"}};
      for (auto& n : nodes_) {
        ends.push_back({n->ns.get(), "eth0"});
        ends.push_back({n->ns.get(), "lx0"});
        ends.push_back({n->backend.get(), "eth0"});
      }
      for (auto& [ns, dev] : ends) {
        std::string out;
        ASSERT_EQ(ns->Exec({"ethtool", "-K", dev, "tx", "off"}, &out), 0) << out;
      }
    }
    for (int i = 0; i < 2; ++i) StartAgent(i);
    for (int i = 0; i < 100 && !absl::StartsWith(Direct(1, "10.1.1.2"), "be1"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    for (Subprocess* u : servers_.udp)
      for (int i = 0; i < 100 && !absl::StrContains(u->Log(), "ready"); ++i)
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  void TearDown() override {
    // A frame XDP sent where it cannot go (a redirect into a veth without
    // NAPI on its far side) is lost and counted as dropped on receive; TCP
    // hides it by retransmitting. No node device may have lost one.
    if (GetParam() == "native")
      for (size_t i = 0; i < nodes_.size(); ++i) EXPECT_EQ(RxDropped(*nodes_[i]->ns, "eth0"), 0u) << "node " << i + 1;
    for (auto& n : nodes_) n->agent.reset();
    servers_ = {};
  }

  static uint64_t RxDropped(const Netns& ns, const std::string& dev) {
    std::string out;
    if (ns.Exec({"ip", "-j", "-s", "link", "show", dev}, &out) != 0) return ~0ull;
    auto j = nlohmann::json::parse(out, nullptr, false);
    if (!j.is_array() || j.empty()) return ~0ull;
    return j[0]["stats64"]["rx"].value("dropped", ~0ull);
  }

  void AttachPass(const std::string& port) {
    auto obj = BpfObject::Load({BpfObjectPath("bench_pass"), "", {}});
    ASSERT_TRUE(obj.ok()) << obj.status();
    NetnsGuard g(lan_->ns());
    auto r = AttachXdp(port, *obj->ProgramFd("bench_xdp_pass"), XdpMode::kNative);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  void StartAgent(int i) {
    Node& n = *nodes_[i];
    if (n.argv.empty()) {
      n.argv = {BinaryPath("tendril-agent"), "--netns", n.ns->path(), "--devices", "eth0",
                "--xdp-mode", GetParam() == "tc" ? "disabled" : GetParam(), "--bpffs-root", n.pins.path(),
                "--state-dir", n.state.path(), "--api-socket", n.Socket(), "--cgroup-root", n.cgroup.path()};
      for (const auto& f : AgentTestFlags()) n.argv.push_back(f);
    }
    n.agent = std::make_unique<Subprocess>(n.argv);
    ASSERT_TRUE(WaitForAgent(*n.agent, n.Socket()));
  }

  void StartServers(const Netns& ns, const std::string& name) {
    StartNamedServers(ns, name, scripts_.path(), &servers_);
  }

  CliResult Cli(int node, const std::vector<std::string>& args) {
    return RunCli(nodes_[node]->Socket(), nodes_[node]->pins.path(), args);
  }

  // The same service declared on both nodes, as a control plane would.
  void AddEverywhere(std::vector<std::string> args) {
    std::vector<std::string> full = {"service", "add"};
    full.insert(full.end(), args.begin(), args.end());
    for (int i = 0; i < 2; ++i) {
      CliResult r = Cli(i, full);
      ASSERT_EQ(r.rc, 0) << "node " << i + 1 << ": " << r.out << r.err;
    }
  }

  // curl from the external client; the body or "" on failure.
  std::string Curl(const std::string& hostport, const std::string& from = "") {
    std::vector<std::string> argv = {"curl", "-s", "-g", "--max-time", "2"};
    if (!from.empty()) argv.insert(argv.end(), {"--interface", from});
    argv.push_back("http://" + hostport + "/");
    std::string out;
    if (client_->Exec(argv, &out) != 0) return "";
    return out;
  }

  // From node i's namespace straight to a backend (no service).
  std::string Direct(int node, const std::string& addr) {
    std::string out;
    if (nodes_[node - 1]->ns->Exec({"curl", "-s", "--max-time", "2", "http://" + addr + ":8080/"}, &out) != 0) return "";
    return out;
  }

  // "be1 [fd00:0000:...:0100]" (socat's spelling) -> "be1 fd00::100".
  static std::string Canonical(const std::string& answer) {
    size_t open = answer.find('['), close = answer.find(']');
    if (open == std::string::npos || close == std::string::npos) return answer;
    auto ip = ParseIp(answer.substr(open + 1, close - open - 1));
    return ip.ok() ? answer.substr(0, open) + ip->ToString() : answer;
  }

  std::set<std::string> Spread(const std::string& hostport, int n) {
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) seen.insert(Canonical(Curl(hostport)));
    return seen;
  }

  uint64_t DropCount(int node, const std::string& reason) {
    CliResult r = Cli(node, {"-o", "json", "metrics", "list"});
    uint64_t n = 0;
    for (const auto& e : nlohmann::json::parse(r.out, nullptr, false))
      if (e.value("reason", "") == reason) n += e.value("packets", 0ull);
    return n;
  }

  std::unique_ptr<Lan> lan_;
  std::unique_ptr<Netns> client_;
  std::vector<std::unique_ptr<Node>> nodes_;
  NamedServers servers_;  // servers_.udp: be1's and be2's UDP servers
  TempDir scripts_;
};

}  // namespace tendril::test
