// The endpoint cluster fixture: two nodes with pods, an outside host.
// Endpoints and eBPF host routing end to end. A LAN namespace (bridge) joins
// an "outside" host and two node namespaces; each node runs its own
// tendril-agent, which creates the pods' veths (tendril endpoint add
// --netns) and routes their traffic with bpf_lxc/bpf_host. Pods answer HTTP
// with their name and the client address they see, so a test can tell where
// a request went and whether it was masqueraded.
//
//   node 1: 10.0.0.1, pods 10.200.1.10 (endpoint 1), 10.200.1.11 (endpoint 2)
//   node 2: 10.0.0.2, pod  10.200.2.10 (endpoint 1)
//   outside: 10.0.0.100 (no route to the pod CIDRs: it only sees nodes)
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/api_client.h"
#include "test/support/kernel.h"
#include "test/support/servers.h"

namespace tendril::test {

using nlohmann::json;

struct EpNode {
  std::unique_ptr<Netns> ns;
  std::vector<std::unique_ptr<Netns>> pods;
  TempPinRoot pins;
  TempDir state;
  TempCgroup cgroup;
  std::vector<std::string> argv;
  std::vector<std::string> extra_flags;  // given to the agent after the fixture's
  std::unique_ptr<Subprocess> agent;
  std::string Socket() const { return state.path() + "/api.sock"; }
};

class EndpointE2ETest : public ::testing::Test {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    lan_ = std::make_unique<Lan>("elan");
    out_ = std::make_unique<Netns>("eout");
    lan_->Join(*out_, "pout", "10.0.0.100/24", "fd00::100/64");
    StartServers(*out_, "outside");
    for (int i = 1; i <= 2; ++i) {
      auto n = std::make_unique<EpNode>();
      n->ns = std::make_unique<Netns>(absl::StrCat("en", i));
      lan_->Join(*n->ns, absl::StrCat("pn", i), absl::StrCat("10.0.0.", i, "/24"), absl::StrCat("fd00::", i, "/64"));
      int peer = 3 - i;
      ASSERT_EQ(n->ns->Exec({"ip", "route", "add", absl::StrCat("10.200.", peer, ".0/24"), "via",
                             absl::StrCat("10.0.0.", peer)}), 0);
      ASSERT_EQ(n->ns->Exec({"ip", "-6", "route", "add", absl::StrCat("fd20:", peer, "::/64"), "via",
                             absl::StrCat("fd00::", peer)}), 0);
      ASSERT_EQ(n->ns->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"}), 0);
      nodes_.push_back(std::move(n));
    }
    for (int i = 0; i < 2; ++i) StartAgent(i);
    AddPod(0, 1, "10.200.1.10", "fd20:1::10");
    AddPod(0, 2, "10.200.1.11", "fd20:1::11");
    AddPod(1, 1, "10.200.2.10", "fd20:2::10");
  }

  void TearDown() override {
    for (auto& n : nodes_) n->agent.reset();
    servers_ = {};
  }

  void StartAgent(int i, bool cleanup_on_exit = false, const std::string& xdp_mode = "generic") {
    EpNode& n = *nodes_[i];
    n.argv = {BinaryPath("tendril-agent"), "--netns", n.ns->path(), "--devices", "eth0", "--xdp-mode", xdp_mode,
              "--bpffs-root", n.pins.path(), "--state-dir", n.state.path(), "--api-socket", n.Socket(),
              "--cgroup-root", n.cgroup.path(), "--pod-cidrs", "10.200.0.0/16,fd20::/16"};
    if (cleanup_on_exit) n.argv.push_back("--cleanup-on-exit");
    for (const auto& f : AgentTestFlags()) n.argv.push_back(f);
    for (const auto& f : n.extra_flags) n.argv.push_back(f);
    n.agent = std::make_unique<Subprocess>(n.argv);
    ASSERT_TRUE(WaitForAgent(*n.agent, n.Socket()));
  }

  // A pod namespace on node `node`, made an endpoint by the agent, with an
  // HTTP server on 8080 and iperf3 on 5201.
  void AddPod(int node, int id, const std::string& v4, const std::string& v6) {
    EpNode& n = *nodes_[node];
    auto pod = std::make_unique<Netns>(absl::StrCat("e", node + 1, "p", id));
    CliResult r = Cli(node, {"endpoint", "add", "--id", std::to_string(id), "--netns", pod->path(), "--ifname",
                             absl::StrCat("lxc", id), "--ip", v4 + "," + v6});
    ASSERT_EQ(r.rc, 0) << r.out << r.err << n.agent->Log();
    StartServers(*pod, absl::StrCat("pod", node + 1, ".", id));
    n.pods.push_back(std::move(pod));
  }

  // Returns once the UDP server is bound (TCP clients retry on their own).
  void StartServers(const Netns& ns, const std::string& name) {
    StartNamedServers(ns, name, scripts_.path(), &servers_);
    for (int i = 0; i < 100 && !absl::StrContains(servers_.udp.back()->Log(), "ready"); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  CliResult Cli(int node, const std::vector<std::string>& args) {
    return RunCli(nodes_[node]->Socket(), nodes_[node]->pins.path(), args);
  }

  const Netns& Pod(int node, int id) { return *nodes_[node]->pods[id - 1]; }

  // curl from a namespace; the body or "" on failure. Retries a little:
  // servers start in the background.
  std::string Curl(const Netns& from, const std::string& hostport, int tries = 20) {
    for (int i = 0; i < tries; ++i) {
      std::string out;
      if (from.Exec({"curl", "-s", "-g", "--max-time", "2", "http://" + hostport + "/"}, &out) == 0) return out;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return "";
  }

  json Json(int node, const std::vector<std::string>& args) {
    std::vector<std::string> full = {"-o", "json"};
    full.insert(full.end(), args.begin(), args.end());
    CliResult r = Cli(node, full);
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  // Packets the FORWARD chain of node 1 saw (iptables -v counters).
  uint64_t ForwardPackets() {
    std::string out;
    EXPECT_EQ(nodes_[0]->ns->Exec({"iptables", "-L", "FORWARD", "-v", "-n", "-x"}, &out), 0) << out;
    std::smatch m;
    uint64_t n = 0;
    if (std::regex_search(out, m, std::regex("policy DROP (\\d+) packets"))) n += std::stoull(m[1]);
    for (const auto& line : absl::StrSplit(out, '\n')) {
      std::vector<std::string> f = absl::StrSplit(std::string(absl::StripAsciiWhitespace(line)), ' ', absl::SkipEmpty());
      uint64_t p = 0;
      if (f.size() > 2 && f[2] == "DROP" && absl::SimpleAtoi(f[0], &p)) n += p;
    }
    return n;
  }

  // iperf3 from pod 1 of node 1 to pod 1 of node 2, Gbit/s; retried while
  // the server is not up yet (or still busy with the previous run).
  double Iperf(int seconds = 2) { return IperfFrom(Pod(0, 1), "10.200.2.10", 5201, seconds); }

  // iperf3 TCP from `from` to dst:port (retried while servers start);
  // Gbit/s received. With `udp_len` > 0: UDP datagrams of that size sent
  // as fast as possible, and the result is thousands of datagrams per
  // second received.
  double IperfFrom(const Netns& from, const std::string& dst, int port, int seconds, int udp_len = 0) {
    std::string out;
    std::vector<std::string> argv = {"iperf3", "-c", dst, "-p", std::to_string(port), "-t", std::to_string(seconds),
                                     "-J"};
    if (udp_len > 0) argv.insert(argv.end(), {"-u", "-b", "0", "-l", std::to_string(udp_len)});
    // Sender on CPU 0, receiver on CPU 1 (iperf3 -A): where the scheduler
    // puts them is otherwise one more thing that differs between runs.
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) argv.insert(argv.end(), {"-A", "0,1"});
    for (int i = 0; i < 5; ++i) {
      out.clear();
      from.Exec(argv, &out);
      json j = json::parse(out, nullptr, false);
      const char* sum = udp_len > 0 ? "sum" : "sum_received";
      if (!j.is_discarded() && j.contains("end") && j["end"].contains(sum) && j["end"][sum].is_object()) {
        const json& e = j["end"][sum];
        if (udp_len == 0) return e.value("bits_per_second", 0.0) / 1e9;
        double secs = e.value("seconds", 0.0);
        return secs > 0 ? (e.value("packets", 0.0) - e.value("lost_packets", 0.0)) / secs / 1e3 : 0;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    ADD_FAILURE() << "iperf3 " << absl::StrJoin(argv, " ") << ": " << out.substr(0, 2000);
    return 0;
  }

  static double Median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

  static int EnvInt(const char* name, int dflt) {
    const char* v = std::getenv(name);
    int n = 0;
    return v && absl::SimpleAtoi(v, &n) && n > 0 ? n : dflt;
  }

  // sockperf UDP ping-pong from pod 1 of node 1 to the sockperf server at
  // 10.200.2.10:11111 for 1 s: the p50 latency in us (0 when it failed).
  // A sockperf UDP server at addr:11111 in `ns`, on CPU 1 (SockperfP50From's
  // client runs on CPU 0), as iperf3's ends.
  static std::vector<std::string> SockperfServer(const Netns& ns, const std::string& addr) {
    std::vector<std::string> argv = {"nsenter", "--net=" + ns.path(), "sockperf", "server", "-i", addr, "-p", "11111"};
    if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) argv.insert(argv.begin(), {"taskset", "-c", "1"});
    return argv;
  }

  // sockperf UDP ping-pong p50 (us) from pod 1 of node 1 (or `from`) to a
  // server at dst:11111.
  double SockperfP50() { return SockperfP50From(Pod(0, 1), "10.200.2.10"); }
  double SockperfP50From(const Netns& from, const std::string& dst) {
    std::string out;
    for (int i = 0; i < 10; ++i) {
      out.clear();
      std::vector<std::string> argv = {"sockperf", "ping-pong", "-i", dst, "-p", "11111", "-t", "1"};
      // On CPU 0, the server on CPU 1 (where the scheduler puts them, the
      // same CPU or not, would otherwise differ between runs).
      if (sysconf(_SC_NPROCESSORS_ONLN) >= 2) argv.insert(argv.begin(), {"taskset", "-c", "0"});
      from.Exec(argv, &out);
      std::smatch m;
      if (std::regex_search(out, m, std::regex(R"(percentile 50\.000 =\s*([0-9.]+))")))
        return std::stod(m[1].str());
      std::this_thread::sleep_for(std::chrono::milliseconds(300));
    }
    ADD_FAILURE() << "sockperf: " << out;
    return 0;
  }

  std::unique_ptr<Lan> lan_;
  std::unique_ptr<Netns> out_;
  std::vector<std::unique_ptr<EpNode>> nodes_;
  NamedServers servers_;
  TempDir scripts_;
};


}  // namespace tendril::test
