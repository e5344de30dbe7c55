// One cell of the kube-proxy comparison (test/bench/kube_proxy_bench.cc):
// a node in namespaces with a client pod and two backend pods (Node), a
// tendril agent on it (Tendril), and one mode at one number of services,
// programmed from nothing, measured in connection rounds driven from
// outside, then changed (Cell).
#pragma once

#include <sys/types.h>

#include <algorithm>
#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/api_client.h"
#include "common/status.h"
#include "datapath/bpffs.h"
#include "tendril_build_config.h"
#include "test/bench/bench_util.h"
#include "test/support/kernel.h"
#include "test/support/kube_proxy_rules.h"
#include "test/support/tcp.h"

namespace tendril::test {

using bench::KpEndpoint;
using bench::KpService;

constexpr const char* kClient = "10.244.0.10";
constexpr const char* kBackend[2] = {"10.244.1.1", "10.244.1.2"};
constexpr const char* kPodCidr = "10.244.0.0/16";
constexpr uint16_t kSvcPort = 80, kTargetPort = 8080, kIperfPort = 5201;

// tendril-maglev: tendril with every third service on Maglev (the others
// random), the case of issue #18's Maglev figures.
const std::vector<std::string> kAllModes = {"iptables-legacy", "iptables-nft", "nftables", "tendril",
                                            "tendril-tc", "tendril-maglev"};

struct Options {
  std::vector<int> sizes = {1, 1000, 10000, 100000};
  std::vector<std::string> modes = kAllModes;
  bool full = false;         // lift the per-mode size caps
  int iperf_size = 1000;     // S at which iperf3 runs (0: none)
  double iperf_seconds = 3;
  int rounds = 6;            // alternating rounds of VIP and direct connects
  double round_seconds = 0.4;
  int round_max = 1500;
  // Everything (client, servers, agent, rule loaders, softirq work of the
  // veths) on one CPU: on this 2-vCPU VM, where the threads landed changed
  // connect latency by 40% between runs of the same mode. -1: not pinned.
  int cpu = -2;  // -2: the last CPU
  std::string json_path, dat_path;
};

// The iperf service and S services; the last is the measured one.
std::vector<KpService> MakeServices(int s);
// The services as `tendril service apply` reads them; with `maglev_every`
// > 0 every that many-th one uses Maglev.
nlohmann::json TendrilServices(const std::vector<KpService>& services, int maglev_every = 0);
// Runs argv in the namespace (nsenter keeps /sys, and is what kube-proxy's
// exec of iptables-restore costs, roughly); returns wall seconds, or -1.
double Timed(const Netns& ns, std::vector<std::string> argv, std::string* out = nullptr);
// The milliseconds of each "service N updated (..., all X)" line of an agent's
// log, in order.
std::vector<double> AgentUpdateMs(const std::string& log);
inline std::string Ms(double s) { return s < 0 ? "-" : absl::StrFormat("%.1f ms", s * 1000); }

// One node with a client pod and two backend pods (see the top comment).
struct Node {
  explicit Node(int i)
      : node("kn" + std::to_string(i)), client("kc" + std::to_string(i)), be1("kb" + std::to_string(i) + "a"),
        be2("kb" + std::to_string(i) + "b"), index(i) {}
  Netns node, client, be1, be2;
  int index;
  std::string host_if[3];
  std::unique_ptr<AcceptServer> srv[2];
  std::unique_ptr<Subprocess> iperf;

  bool Wire(const Netns& pod, const std::string& host_if, const std::string& ip) {
    std::vector<std::vector<std::string>> node_cmds = {
        {"ip", "link", "add", host_if, "type", "veth", "peer", "name", "eth0", "netns", pod.name()},
        {"ip", "link", "set", host_if, "up"},
        {"ip", "route", "add", ip + "/32", "dev", host_if}};
    for (const auto& c : node_cmds)
      if (node.Exec(c) != 0) return false;
    std::string mac;
    if (node.Exec({"cat", "/sys/class/net/" + host_if + "/address"}, &mac) != 0) return false;
    mac = mac.substr(0, mac.find('\n'));
    std::vector<std::vector<std::string>> pod_cmds = {
        {"ip", "addr", "add", ip + "/32", "dev", "eth0"},
        {"ip", "link", "set", "eth0", "up"},
        {"ip", "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"},
        {"ip", "route", "add", "default", "via", "169.254.1.1", "dev", "eth0"},
        {"ip", "neigh", "replace", "169.254.1.1", "lladdr", mac, "dev", "eth0", "nud", "permanent"}};
    for (const auto& c : pod_cmds)
      if (pod.Exec(c) != 0) return false;
    return true;
  }

  bool Build() {
    if (node.Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.rp_filter=0"}) != 0) return false;
    for (int i = 0; i < 3; ++i) host_if[i] = UniqueName(absl::StrCat("h", index, i)).substr(0, 15);
    if (!Wire(client, host_if[0], kClient) || !Wire(be1, host_if[1], kBackend[0]) ||
        !Wire(be2, host_if[2], kBackend[1]))
      return false;
    srv[0] = std::make_unique<AcceptServer>(be1, kBackend[0], kTargetPort);
    srv[1] = std::make_unique<AcceptServer>(be2, kBackend[1], kTargetPort);
    iperf = std::make_unique<Subprocess>(
        std::vector<std::string>{"nsenter", "--net=" + be1.path(), "iperf3", "-s", "-B", kBackend[0], "-p",
                                 std::to_string(kIperfPort)});
    return srv[0]->ok() && srv[1]->ok();
  }
};

struct Tendril {
  TempPinRoot pins;
  TempDir state;
  TempCgroup cgroup;
  std::unique_ptr<Subprocess> agent;
  std::string sock() const { return state.path() + "/api.sock"; }

  std::vector<std::string> argv;

  absl::Status Start(const Node& n, bool socket_lb, const std::vector<std::string>& extra = {}, bool endpoints = true) {
    argv = {BinaryPath("tendril-agent"), "--netns", n.node.path(), "--xdp-mode",
                                     "disabled", "--bpffs-root", pins.path(), "--state-dir", state.path(),
                                     "--api-socket", sock(), "--cgroup-root", cgroup.path(), "--pod-cidrs",
                                     kPodCidr, "--enable-masquerade", "false", "--enable-socket-lb",
                                     socket_lb ? "true" : "false", "--bpf-object-dir",
                                     absl::StrCat(TENDRIL_BINARY_DIR, "/bpf"), "--ct-gc-interval", "3600"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    TND_RETURN_IF_ERROR(Run());
    for (int i = 0; endpoints && i < 3; ++i) {
      CliResult r = Cli({"endpoint", "add", "--id", std::to_string(i + 1), "--ifname", n.host_if[i], "--ip",
                         i == 0 ? kClient : kBackend[i - 1]});
      if (r.rc != 0) return absl::InternalError("endpoint add: " + r.out + r.err);
    }
    return absl::OkStatus();
  }
  CliResult Cli(const std::vector<std::string>& args) const { return RunCli(sock(), pins.path(), args); }
  // (Re)starts the agent with the same arguments and waits until it answers.
  absl::Status Run(int wait_seconds = 60) {
    agent = std::make_unique<Subprocess>(argv);
    if (auto ready = WaitForAgent(*agent, sock(), wait_seconds); !ready) return absl::InternalError(ready.message());
    return absl::OkStatus();
  }
};

// One mode at one S: its own node, programmed from nothing; connection
// rounds are driven from outside so that all modes of an S take turns.
class Cell {
 public:
  Cell(std::string mode, int s, int index, const Options& o, const std::string& dir)
      : mode_(std::move(mode)), s_(s), o_(o), n_(index), file_(absl::StrCat(dir, "/rules-", index)) {
    j_ = {{"mode", mode_}, {"services", s_}};
  }
  bool ok() const { return !j_.contains("error"); }
  const std::string& mode() const { return mode_; }
  bool tendril() const { return mode_.rfind("tendril", 0) == 0; }
  // The tendril modes whose client connects go through socket LB.
  bool socket_lb() const { return tendril() && mode_ != "tendril-tc"; }

  // Builds the node and programs the services; time, kernel memory, and for
  // tendril the agent's RSS and its pinned maps.
  void Program() {
    if (!n_.Build()) return Fail("could not build the namespaces");
    services_ = MakeServices(s_);
    long mem0 = 0;
    double program_s = -1;
    std::string out;
    if (tendril()) {
      t_ = std::make_unique<Tendril>();
      if (auto st = t_->Start(n_, socket_lb()); !st.ok()) return Fail(std::string(st.message()));
      WriteFile(file_, TendrilServices(services_, mode_ == "tendril-maglev" ? 3 : 0).dump());
      mem0 = KernelMemKb();
      auto t0 = Clock::now();
      CliResult r = t_->Cli({"service", "apply", "-f", file_});
      program_s = Seconds(t0, Clock::now());
      if (r.rc != 0) return Fail(absl::StrCat("service apply: ", r.err));
      // The same set again, as a controller's periodic full sync sends it:
      // nothing to write.
      t0 = Clock::now();
      r = t_->Cli({"service", "apply", "-f", file_});
      if (r.rc == 0) j_["reapply_s"] = Seconds(t0, Clock::now());
    } else if (mode_ == "nftables") {
      WriteFile(file_, bench::NftFull(services_));
      mem0 = KernelMemKb();
      program_s = Timed(n_.node, {"nft", "-f", file_}, &out);
    } else {
      WriteFile(file_, bench::IptablesFull(services_));
      mem0 = KernelMemKb();
      program_s = Timed(n_.node, {Restore(), file_}, &out);
    }
    if (program_s < 0) return Fail("loading the rules failed: " + out.substr(0, 300));
    j_["program_s"] = program_s;
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    j_["kernel_mem_kb"] = KernelMemKb() - mem0;
    if (tendril()) {
      j_["agent_rss_kb"] = RssKb(t_->agent->pid());
      j_["pinned_map_kb"] = PinnedMapKb(t_->pins.path());
    }
    NetnsGuard in(n_.client);
    if (ConnectOnce(Vip(), kSvcPort) < 0 || ConnectOnce(kBackend[0], kTargetPort) < 0)
      Fail("the ClusterIP or the backend does not answer");
  }

  // One round of connects to the last ClusterIP, then straight to backend 1.
  void Round() {
    if (!ok() || !vip_.error.empty() || !direct_.error.empty()) return;
    if (socket_lb()) JoinCgroup(t_->cgroup.path());
    {
      NetnsGuard in(n_.client);
      if (vip_.Round(Vip(), kSvcPort, o_.round_max, o_.round_seconds))
        direct_.Round(kBackend[0], kTargetPort, o_.round_max, o_.round_seconds);
    }
    if (socket_lb()) JoinCgroup(*FindCgroup2Mount());
  }

  // One backend change: the measured service loses backend 2; then 40
  // connects must all avoid it.
  void Change() {
    if (!ok()) return;
    KpService before = services_.back();
    services_.back().endpoints.pop_back();
    double change_s = -1;
    std::string out;
    if (tendril()) {
      auto id = CallAgent(t_->sock(), "service.get", {{"frontend", absl::StrCat(Vip(), ":80/TCP")}});
      if (id.ok()) {
        auto t0 = Clock::now();
        CliResult r = t_->Cli({"service", "update", std::to_string(id->value("id", 0)), "--backends",
                               absl::StrCat(kBackend[0], ":", kTargetPort)});
        if (r.rc == 0)
          change_s = Seconds(t0, Clock::now());
        else
          out = r.err;
      }
    } else if (mode_ == "nftables") {
      WriteFile(file_, bench::NftChange(before, services_.back()));
      change_s = Timed(n_.node, {"nft", "-f", file_}, &out);
    } else {
      WriteFile(file_, bench::IptablesPartial(services_, services_.size() - 1, before));
      change_s = Timed(n_.node, {Restore(), "--noflush", file_}, &out);
    }
    if (change_s < 0) {
      j_["change_error"] = out.substr(0, 300);
      return;
    }
    j_["change_s"] = change_s;
    long before_accepts = n_.srv[1]->accepted();
    bool reached = true;
    if (socket_lb()) JoinCgroup(t_->cgroup.path());
    {
      NetnsGuard in(n_.client);
      for (int i = 0; i < 40 && reached; ++i) reached = ConnectOnce(Vip(), kSvcPort) >= 0;
    }
    if (socket_lb()) JoinCgroup(*FindCgroup2Mount());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    j_["change_verified"] = reached && n_.srv[1]->accepted() == before_accepts;
    if (tendril()) ChangeMedians();
  }

  // Backend 2 back, away, ..., back (an odd count leaves both): `n` changes
  // through `one(backends)`, each timed; empty if one failed.
  std::vector<double> Alternate(int n, const std::function<bool(const std::vector<std::string>&)>& one) {
    std::vector<double> times;
    for (int i = 0; i < n; ++i) {
      std::vector<std::string> backends = {absl::StrCat(kBackend[0], ":", kTargetPort)};
      if (i % 2 == 0) backends.push_back(absl::StrCat(kBackend[1], ":", kTargetPort));
      auto t0 = Clock::now();
      if (!one(backends)) return {};
      times.push_back(Seconds(t0, Clock::now()));
    }
    return times;
  }
  static double Median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

  // The same kind of change, many times: straight through the API socket as
  // a controller makes it (the agent's share without the CLI's process
  // start; median of 21), the agent's own handling of those (its log says
  // each), through the CLI (median of 9), and what a CLI command costs
  // before it does anything (`tendril version`: process start, the command
  // tree; median of 5).
  void ChangeMedians() {
    auto id = CallAgent(t_->sock(), "service.get", {{"frontend", absl::StrCat(Vip(), ":80/TCP")}});
    if (!id.ok()) return;
    const std::string sid = std::to_string(id->value("id", 0));
    std::vector<double> api = Alternate(21, [&](const std::vector<std::string>& b) {
      return CallAgent(t_->sock(), "service.update", {{"id", id->value("id", 0)}, {"backends", b}}).ok();
    });
    if (api.empty()) return;
    j_["change_api_each_s"] = api;
    j_["change_api_s"] = Median(api);
    std::vector<double> agent = AgentUpdateMs(t_->agent->Log());
    if (agent.size() >= 21) {
      agent.erase(agent.begin(), agent.end() - 21);
      j_["change_agent_s"] = Median(agent) / 1000;
    }
    std::vector<double> cli = Alternate(9, [&](const std::vector<std::string>& b) {
      return t_->Cli({"service", "update", sid, "--backends", absl::StrJoin(b, ",")}).rc == 0;
    });
    if (!cli.empty()) j_["change_cli_s"] = Median(cli);
    std::vector<double> start;
    for (int i = 0; i < 5; ++i) {
      auto t0 = Clock::now();
      if (t_->Cli({"version"}).rc == 0) start.push_back(Seconds(t0, Clock::now()));
    }
    if (start.size() == 5) j_["cli_start_s"] = Median(start);
  }

  // kill -9 of the agent and a start, with a client connecting to the
  // measured service in a loop all along: failures (there must be none: the
  // datapath stays), the time until the new agent answers, and the map
  // writes its restore made (none: nothing changed).
  void Restart();

  // iperf3 through the iperf service and straight to backend 1.
  nlohmann::json Iperf() {
    if (!ok()) return nullptr;
    auto run = [&](const std::string& addr) -> double {
      std::string json_text;
      std::vector<std::string> argv = {"nsenter", "--net=" + n_.client.path(), "iperf3", "-c", addr, "-p",
                                       std::to_string(kIperfPort), "-t", absl::StrCat(o_.iperf_seconds), "-J"};
      if (socket_lb()) JoinCgroup(t_->cgroup.path());  // iperf3 inherits it
      int rc = Sh(argv, &json_text);
      if (socket_lb()) JoinCgroup(*FindCgroup2Mount());
      if (rc != 0) return -1;
      try {
        auto r = nlohmann::json::parse(json_text.substr(json_text.find('{')));
        return r["end"]["sum_received"]["bits_per_second"].get<double>() / 1e9;
      } catch (...) {
        return -1;
      }
    };
    double via = run(services_.front().cluster_ip), straight = run(kBackend[0]);
    return {{"mode", mode_}, {"services", s_}, {"vip_gbit_s", via}, {"direct_gbit_s", straight}};
  }

  nlohmann::json Result() {
    if (ok()) {
      j_["vip"] = vip_.Json();
      j_["direct"] = direct_.Json();
    }
    return j_;
  }

 private:
  void Fail(const std::string& why) { j_["error"] = why; }
  const char* Vip() const { return services_.back().cluster_ip.c_str(); }
  std::string Restore() const {
    return mode_ == "iptables-legacy" ? "iptables-legacy-restore" : "iptables-nft-restore";
  }

  std::string mode_;
  int s_;
  const Options& o_;
  Node n_;
  std::string file_;
  nlohmann::json j_;
  std::vector<KpService> services_;
  std::unique_ptr<Tendril> t_;
  ConnectPath vip_, direct_;
};

}  // namespace tendril::test
