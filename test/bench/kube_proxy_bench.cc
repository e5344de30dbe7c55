// tendril against kube-proxy, side by side in one run on this machine.
//
// Modes: kube-proxy's iptables mode (rules generated as kube-proxy writes
// them, loaded with iptables-restore) on the legacy and the nf_tables back
// end, its nftables mode (nft -f), tendril with socket LB (connect4 in the
// client's cgroup) and tendril with socket LB off (per-packet LB in tc at the
// client pod's veth). For each mode and each number of services S, a fresh
// node:
//
//   client pod 10.244.0.10 --veth-- node --veth-- backend pods 10.244.1.1, .2
//
// (pods wired as tendril wires them: /32 addresses, a default route via
// 169.254.1.1 whose neighbour entry is the host side's MAC; the kube-proxy modes
// route on the node's kernel, the tendril modes adopt the veths as endpoints
// and route in eBPF). S services of 2 endpoints each are programmed; the last
// one programmed is the one measured, its endpoints are the two backend pods;
// the others' endpoints are addresses that do not exist. One more service,
// 10.96.0.1:5201 -> backend 1, carries iperf3.
//
// Measured per (mode, S): time to program the S services from nothing; new
// connections (connect + RST close) to the last ClusterIP and, in the same
// alternating rounds, straight to a backend pod (rate, p50, p99), with the
// nodes of all modes of an S up at once and their rounds taking turns (this
// VM's speed drifts by a third over minutes); the time of
// one backend change (the measured service loses an endpoint; the bench then
// checks the removed backend gets no more connections); kernel memory taken by
// programming (Slab + VmallocUsed + Percpu of /proc/meminfo); for tendril the
// agent's RSS and the pinned maps' memory. iperf3 through the service and
// straight to the backend at one S.
#include <arpa/inet.h>
#include <sched.h>
#include <bpf/bpf.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "datapath/bpffs.h"
#include "common/api_client.h"
#include "tendril_build_config.h"
#include "test/support/kube_proxy_rules.h"
#include "test/support/kernel.h"
#include "test/support/tcp.h"

namespace tendril::test {
namespace {

using bench::KpEndpoint;
using bench::KpService;
using Clock = std::chrono::steady_clock;

constexpr const char* kClient = "10.244.0.10";
constexpr const char* kBackend[2] = {"10.244.1.1", "10.244.1.2"};
constexpr const char* kPodCidr = "10.244.0.0/16";
constexpr uint16_t kSvcPort = 80, kTargetPort = 8080, kIperfPort = 5201;

const std::vector<std::string> kAllModes = {"iptables-legacy", "iptables-nft", "nftables", "tendril",
                                            "tendril-tc"};

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

// Largest S loaded by default, per mode, and why: kept so that the whole run
// stays under 15 minutes on this 2-vCPU machine. --full lifts them.
struct Cap {
  int max;
  const char* why;
};
std::map<std::string, Cap> Caps() {
  return {{"nftables", {10000, "nft -f of one transaction grows quadratically here (14-78 s at 10000 services)"}},
          {"iptables-nft", {10000, "iptables-nft-restore took 188 s at 100000 services; run with --full"}}};
}

double Seconds(Clock::time_point a, Clock::time_point b) { return std::chrono::duration<double>(b - a).count(); }

std::string Ip4(uint32_t v) {
  return absl::StrCat(v >> 24, ".", (v >> 16) & 255, ".", (v >> 8) & 255, ".", v & 255);
}

// The iperf service and S services; the last is the measured one.
std::vector<KpService> MakeServices(int s) {
  std::vector<KpService> out;
  KpService iperf;
  iperf.ns = "bench";
  iperf.name = "iperf";
  iperf.port_name = "iperf";
  iperf.cluster_ip = "10.96.0.1";
  iperf.port = kIperfPort;
  iperf.endpoints = {{kBackend[0], kIperfPort}};
  out.push_back(iperf);
  const uint32_t vip0 = (10u << 24) | (96u << 16) | 2;
  const uint32_t fake0 = (10u << 24) | (246u << 16);
  for (int i = 0; i < s; ++i) {
    KpService svc;
    svc.ns = "bench";
    svc.name = absl::StrCat("svc-", i);
    svc.cluster_ip = Ip4(vip0 + static_cast<uint32_t>(i));
    svc.port = kSvcPort;
    if (i == s - 1) {
      svc.endpoints = {{kBackend[0], kTargetPort}, {kBackend[1], kTargetPort}};
    } else {
      svc.endpoints = {{Ip4(fake0 + 2u * static_cast<uint32_t>(i)), kTargetPort},
                       {Ip4(fake0 + 2u * static_cast<uint32_t>(i) + 1), kTargetPort}};
    }
    out.push_back(svc);
  }
  return out;
}

nlohmann::json TendrilServices(const std::vector<KpService>& services) {
  nlohmann::json arr = nlohmann::json::array();
  for (const KpService& s : services) {
    nlohmann::json b = nlohmann::json::array();
    for (const KpEndpoint& e : s.endpoints) b.push_back({{"address", absl::StrCat(e.ip, ":", e.port)}});
    arr.push_back({{"frontend", absl::StrCat(s.cluster_ip, ":", s.port, "/TCP")}, {"backends", b}});
  }
  return arr;
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  return static_cast<bool>(f);
}

// Slab + VmallocUsed + Percpu, kB.
long KernelMemKb() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  long sum = 0;
  while (std::getline(f, line)) {
    for (const char* k : {"Slab:", "VmallocUsed:", "Percpu:"})
      if (line.rfind(k, 0) == 0) sum += std::strtol(line.c_str() + std::strlen(k), nullptr, 10);
  }
  return sum;
}

long RssKb(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

// Busy share of all CPUs over `ms` milliseconds, from /proc/stat.
double CpuBusy(int ms) {
  auto sample = [] {
    std::ifstream f("/proc/stat");
    std::string cpu;
    uint64_t v, total = 0, idle = 0;
    f >> cpu;
    for (int i = 0; i < 10 && f >> v; ++i) {
      total += v;
      if (i == 3 || i == 4) idle += v;  // idle, iowait
    }
    return std::make_pair(total, idle);
  };
  auto a = sample();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  auto b = sample();
  double dt = static_cast<double>(b.first - a.first);
  return dt > 0 ? 1.0 - static_cast<double>(b.second - a.second) / dt : 0;
}

// After a cell: the kernel frees a deleted namespace's rules in the
// background (tens of seconds for 100000 iptables rules), on any CPU; the
// next cell waits for that memory to come back and the machine to go quiet.
void Settle(long mem_before) {
  auto t0 = Clock::now();
  while (Seconds(t0, Clock::now()) < 120 && KernelMemKb() > mem_before + 8192)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  while (Seconds(t0, Clock::now()) < 150 && CpuBusy(500) > 0.08) {
  }
}

// Sum of memlock of every map pinned under `dir` (recursively), kB.
long PinnedMapKb(const std::string& dir) {
  long sum = 0;
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;
    if (S_ISDIR(st.st_mode)) {
      sum += PinnedMapKb(path);
      continue;
    }
    int fd = bpf_obj_get(path.c_str());
    if (fd < 0) continue;
    std::ifstream info(absl::StrCat("/proc/self/fdinfo/", fd));
    std::string line;
    bool is_map = false;
    long memlock = 0;
    while (std::getline(info, line)) {
      if (line.rfind("map_type:", 0) == 0) is_map = true;
      if (line.rfind("memlock:", 0) == 0) memlock = std::strtol(line.c_str() + 8, nullptr, 10);
    }
    if (is_map) sum += memlock / 1024;
    ::close(fd);
  }
  closedir(d);
  return sum;
}

// Runs argv in the namespace (nsenter keeps /sys, and is what kube-proxy's
// exec of iptables-restore costs, roughly); returns wall seconds, or -1.
double Timed(const Netns& ns, std::vector<std::string> argv, std::string* out = nullptr) {
  std::vector<std::string> full = {"nsenter", "--net=" + ns.path()};
  full.insert(full.end(), argv.begin(), argv.end());
  auto t0 = Clock::now();
  int rc = Sh(full, out);
  auto t1 = Clock::now();
  return rc == 0 ? Seconds(t0, t1) : -1;
}

struct Path {
  std::vector<double> lat;
  double secs = 0;
  std::string error;
  nlohmann::json Json() const {
    if (!error.empty() || lat.empty()) return {{"error", error.empty() ? "no samples" : error}};
    std::vector<double> v = lat;
    std::sort(v.begin(), v.end());
    return {{"connects", v.size()},
            {"rate_per_s", static_cast<double>(v.size()) / secs},
            {"p50_us", v[v.size() / 2]},
            {"p99_us", v[std::min(v.size() - 1, v.size() * 99 / 100)]}};
  }
};

bool Round(const char* addr, uint16_t port, const Options& o, Path* p) {
  auto t0 = Clock::now();
  for (int i = 0; i < o.round_max; ++i) {
    double us = ConnectOnce(addr, port);
    if (us < 0) {
      p->error = absl::StrCat("connect ", addr, ":", port, ": ", std::strerror(static_cast<int>(-us)));
      return false;
    }
    p->lat.push_back(us);
    if (Seconds(t0, Clock::now()) > o.round_seconds) break;
  }
  p->secs += Seconds(t0, Clock::now());
  return true;
}

void JoinCgroup(const std::string& cg) { std::ofstream(cg + "/cgroup.procs") << ::getpid() << std::endl; }

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

  absl::Status Start(const Node& n, bool socket_lb, const std::vector<std::string>& extra = {}, bool endpoints = true) {
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--netns", n.node.path(), "--xdp-mode",
                                     "disabled", "--bpffs-root", pins.path(), "--state-dir", state.path(),
                                     "--api-socket", sock(), "--cgroup-root", cgroup.path(), "--pod-cidrs",
                                     kPodCidr, "--enable-masquerade", "false", "--enable-socket-lb",
                                     socket_lb ? "true" : "false", "--bpf-object-dir",
                                     absl::StrCat(TENDRIL_BINARY_DIR, "/bpf"), "--ct-gc-interval", "3600"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    agent = std::make_unique<Subprocess>(argv);
    for (int k = 0; k < 400; ++k) {
      if (CallAgent(sock(), "status").ok()) break;
      if (!agent->Running()) return absl::InternalError("agent exited: " + agent->Log());
      std::this_thread::sleep_for(std::chrono::milliseconds(25));
    }
    for (int i = 0; endpoints && i < 3; ++i) {
      CliResult r = Cli({"endpoint", "add", "--id", std::to_string(i + 1), "--ifname", n.host_if[i], "--ip",
                         i == 0 ? kClient : kBackend[i - 1]});
      if (r.rc != 0) return absl::InternalError("endpoint add: " + r.out + r.err);
    }
    return absl::OkStatus();
  }
  CliResult Cli(const std::vector<std::string>& args) const { return RunCli(sock(), pins.path(), args); }
};

std::string Ms(double s) { return s < 0 ? "-" : absl::StrFormat("%.1f ms", s * 1000); }

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
      if (auto st = t_->Start(n_, mode_ == "tendril"); !st.ok()) return Fail(std::string(st.message()));
      WriteFile(file_, TendrilServices(services_).dump());
      mem0 = KernelMemKb();
      auto t0 = Clock::now();
      CliResult r = t_->Cli({"service", "apply", "-f", file_});
      program_s = Seconds(t0, Clock::now());
      if (r.rc != 0) return Fail(absl::StrCat("service apply: ", r.err));
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
    if (mode_ == "tendril") JoinCgroup(t_->cgroup.path());
    {
      NetnsGuard in(n_.client);
      if (tendril::test::Round(Vip(), kSvcPort, o_, &vip_)) tendril::test::Round(kBackend[0], kTargetPort, o_, &direct_);
    }
    if (mode_ == "tendril") JoinCgroup(*FindCgroup2Mount());
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
    if (mode_ == "tendril") JoinCgroup(t_->cgroup.path());
    {
      NetnsGuard in(n_.client);
      for (int i = 0; i < 40 && reached; ++i) reached = ConnectOnce(Vip(), kSvcPort) >= 0;
    }
    if (mode_ == "tendril") JoinCgroup(*FindCgroup2Mount());
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    j_["change_verified"] = reached && n_.srv[1]->accepted() == before_accepts;
    if (tendril()) {
      // The same kind of change (backend 2 back) straight through the API
      // socket, as a controller makes it: the agent's share without the
      // CLI's process start.
      auto id = CallAgent(t_->sock(), "service.get", {{"frontend", absl::StrCat(Vip(), ":80/TCP")}});
      if (id.ok()) {
        nlohmann::json args = {{"id", id->value("id", 0)},
                               {"backends", {absl::StrCat(kBackend[0], ":", kTargetPort),
                                             absl::StrCat(kBackend[1], ":", kTargetPort)}}};
        auto t0 = Clock::now();
        if (CallAgent(t_->sock(), "service.update", args).ok()) j_["change_api_s"] = Seconds(t0, Clock::now());
      }
    }
  }

  // iperf3 through the iperf service and straight to backend 1.
  nlohmann::json Iperf() {
    if (!ok()) return nullptr;
    auto run = [&](const std::string& addr) -> double {
      std::string json_text;
      std::vector<std::string> argv = {"nsenter", "--net=" + n_.client.path(), "iperf3", "-c", addr, "-p",
                                       std::to_string(kIperfPort), "-t", absl::StrCat(o_.iperf_seconds), "-J"};
      if (mode_ == "tendril") JoinCgroup(t_->cgroup.path());  // iperf3 inherits it
      int rc = Sh(argv, &json_text);
      if (mode_ == "tendril") JoinCgroup(*FindCgroup2Mount());
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
  Path vip_, direct_;
};

// The pinned maps' memory is fixed at load (preallocated LRU tables): what
// the agent takes with its default table sizes and with smaller ones.
nlohmann::json MapMemory() {
  nlohmann::json out = nlohmann::json::array();
  struct Variant {
    const char* name;
    std::vector<std::string> flags;
  };
  std::vector<Variant> variants = {
      {"defaults (ct/nat 262144, sock rev-NAT 65536 per family)", {}},
      {"ct/nat 65536, sock rev-NAT 16384",
       {"--ct-max-entries", "65536", "--nat-max-entries", "65536", "--sock-revnat-max-entries", "16384"}},
      {"ct/nat 16384, sock rev-NAT 4096",
       {"--ct-max-entries", "16384", "--nat-max-entries", "16384", "--sock-revnat-max-entries", "4096"}},
  };
  for (const Variant& v : variants) {
    Node n(9);
    Tendril t;
    nlohmann::json row = {{"tables", v.name}};
    if (!n.Build()) {
      row["error"] = "could not build the namespaces";
    } else if (auto st = t.Start(n, true, v.flags, false); !st.ok()) {
      row["error"] = std::string(st.message());
    } else {
      row["pinned_map_kb"] = PinnedMapKb(t.pins.path());
      row["agent_rss_kb"] = RssKb(t.agent->pid());
    }
    out.push_back(row);
  }
  return out;
}

double Num(const nlohmann::json& j, const char* a, const char* b = nullptr) {
  const nlohmann::json* p = &j;
  if (!p->contains(a)) return NAN;
  p = &(*p)[a];
  if (b) {
    if (!p->contains(b)) return NAN;
    p = &(*p)[b];
  }
  return p->is_number() ? p->get<double>() : NAN;
}

std::string F(double v, const char* fmt = "%.0f") { return std::isnan(v) || v < 0 ? "-" : absl::StrFormat(fmt, v); }

std::string Ratio(double a, double b) { return std::isnan(a) || std::isnan(b) || b <= 0 ? "-" : absl::StrFormat("%.2f", a / b); }

void PrintTables(const nlohmann::json& results, const nlohmann::json& iperf, const nlohmann::json& memory,
                 const Options& o) {
  std::map<int, std::vector<const nlohmann::json*>> by_size;
  for (const auto& r : results) by_size[r["services"].get<int>()].push_back(&r);
  for (const auto& [s, rows] : by_size) {
    std::printf("\n-- %d services (+1 for iperf3), 2 endpoints each; measured: the last one programmed\n", s);
    std::printf("%-16s %10s %10s | %9s %8s %8s | %9s %8s %8s | %9s %9s %9s\n", "mode", "program", "1 change",
                "VIP c/s", "p50 us", "p99 us", "direct", "p50 us", "p99 us", "kmem kB", "agent kB", "maps kB");
    for (const nlohmann::json* r : rows) {
      if (r->contains("error")) {
        std::printf("%-16s %s\n", (*r)["mode"].get<std::string>().c_str(),
                    ("not measured: " + (*r)["error"].get<std::string>()).c_str());
        continue;
      }
      const auto& j = *r;
      std::printf("%-16s %10s %10s | %9s %8s %8s | %9s %8s %8s | %9s %9s %9s%s\n", j["mode"].get<std::string>().c_str(),
                  Ms(Num(j, "program_s")).c_str(), Ms(Num(j, "change_s")).c_str(), F(Num(j, "vip", "rate_per_s")).c_str(),
                  F(Num(j, "vip", "p50_us"), "%.1f").c_str(), F(Num(j, "vip", "p99_us"), "%.1f").c_str(),
                  F(Num(j, "direct", "rate_per_s")).c_str(), F(Num(j, "direct", "p50_us"), "%.1f").c_str(),
                  F(Num(j, "direct", "p99_us"), "%.1f").c_str(), F(Num(j, "kernel_mem_kb")).c_str(),
                  F(Num(j, "agent_rss_kb")).c_str(), F(Num(j, "pinned_map_kb")).c_str(),
                  j.value("change_verified", true) ? "" : "  (change NOT verified)");
    }
    for (const nlohmann::json* r : rows)
      if (r->contains("change_api_s"))
        std::printf("   %s: one backend change through the API socket (no CLI process): %s\n",
                    (*r)["mode"].get<std::string>().c_str(), Ms(Num(*r, "change_api_s")).c_str());
    // Ratios: each tendril mode over each kube-proxy mode (lower is better
    // for times, higher for rates).
    for (const nlohmann::json* t : rows) {
      std::string tm = (*t)["mode"];
      if (tm.rfind("tendril", 0) != 0 || t->contains("error")) continue;
      for (const nlohmann::json* b : rows) {
        std::string bm = (*b)["mode"];
        if (bm.rfind("tendril", 0) == 0 || b->contains("error")) continue;
        std::printf("   %s / %s: VIP p50 %s, p99 %s, rate %s, program %s, change %s\n", tm.c_str(), bm.c_str(),
                    Ratio(Num(*t, "vip", "p50_us"), Num(*b, "vip", "p50_us")).c_str(),
                    Ratio(Num(*t, "vip", "p99_us"), Num(*b, "vip", "p99_us")).c_str(),
                    Ratio(Num(*t, "vip", "rate_per_s"), Num(*b, "vip", "rate_per_s")).c_str(),
                    Ratio(Num(*t, "program_s"), Num(*b, "program_s")).c_str(),
                    Ratio(Num(*t, "change_s"), Num(*b, "change_s")).c_str());
      }
    }
  }
  if (!memory.empty()) {
    std::printf("\n-- tendril's pinned maps (preallocated at load, whatever S is), by table size settings\n");
    std::printf("%-58s %12s %12s\n", "tables", "maps kB", "agent kB");
    for (const auto& m : memory)
      std::printf("%-58s %12s %12s\n", m["tables"].get<std::string>().c_str(), F(Num(m, "pinned_map_kb")).c_str(),
                  F(Num(m, "agent_rss_kb")).c_str());
  }
  if (!iperf.empty()) {
    std::printf("\n-- iperf3 %gs, client pod -> service 10.96.0.1:5201 and straight to the backend pod, at %d services\n",
                o.iperf_seconds, o.iperf_size);
    std::printf("%-16s %14s %14s %8s\n", "mode", "via VIP Gb/s", "direct Gb/s", "ratio");
    for (const auto& r : iperf)
      std::printf("%-16s %14s %14s %8s\n", r["mode"].get<std::string>().c_str(), F(Num(r, "vip_gbit_s"), "%.2f").c_str(),
                  F(Num(r, "direct_gbit_s"), "%.2f").c_str(), Ratio(Num(r, "vip_gbit_s"), Num(r, "direct_gbit_s")).c_str());
  }
}

// gnuplot data: one row per S; per mode VIP p50, VIP p99, program seconds.
void WriteDat(const std::string& path, const nlohmann::json& results, const Options& o) {
  std::ofstream f(path);
  f << "# services";
  for (const auto& m : o.modes) f << " " << m << "_p50 " << m << "_p99 " << m << "_program_s";
  f << "\n";
  for (int s : o.sizes) {
    f << s;
    for (const auto& m : o.modes) {
      const nlohmann::json* hit = nullptr;
      for (const auto& r : results)
        if (r["mode"] == m && r["services"] == s) hit = &r;
      auto put = [&](double v) { f << " " << (hit && !std::isnan(v) && v >= 0 ? absl::StrCat(v) : "NaN"); };
      put(hit ? Num(*hit, "vip", "p50_us") : NAN);
      put(hit ? Num(*hit, "vip", "p99_us") : NAN);
      put(hit ? Num(*hit, "program_s") : NAN);
    }
    f << "\n";
  }
}

int Main(const Options& o) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench: needs root\n");
    return 1;
  }
  if (o.cpu != -1) {
    int cpu = o.cpu == -2 ? static_cast<int>(std::thread::hardware_concurrency()) - 1 : o.cpu;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "bench: pin to CPU %d: %s\n", cpu, std::strerror(errno));
      return 1;
    }
    std::fprintf(stderr, "pinned to CPU %d (children inherit it)\n", cpu);
  }
  TempDir work;
  nlohmann::json results = nlohmann::json::array(), iperf = nlohmann::json::array();
  auto caps = Caps();
  auto start = Clock::now();
  // A first round, not recorded: the first measurements of a run were
  // slower (caches, page cache, the CPU's clock ramping up).
  {
    Options warm = o;
    warm.rounds = 1;
    long mem_before = KernelMemKb();
    {
      std::fprintf(stderr, "warm-up: %s, 1 service (not recorded)\n", o.modes.front().c_str());
      Cell c(o.modes.front(), 1, 0, warm, work.path());
      c.Program();
      c.Round();
    }
    Settle(mem_before);
  }
  for (int s : o.sizes) {
    long mem_before = KernelMemKb();
    {
      std::vector<std::unique_ptr<Cell>> cells;
      std::vector<nlohmann::json> rows(o.modes.size());
      for (size_t m = 0; m < o.modes.size(); ++m) {
        const std::string& mode = o.modes[m];
        auto cap = caps.find(mode);
        if (!o.full && cap != caps.end() && s > cap->second.max) {
          rows[m] = {{"mode", mode}, {"services", s}, {"error", absl::StrCat("skipped: ", cap->second.why)}};
          continue;
        }
        std::fprintf(stderr, "[%5.0fs] %s, %d services\n", Seconds(start, Clock::now()), mode.c_str(), s);
        cells.push_back(std::make_unique<Cell>(mode, s, static_cast<int>(m), o, work.path()));
        cells.back()->Program();
      }
      // Connection rounds: every mode in turn, so that whatever the machine
      // does meanwhile falls on all of them alike.
      std::fprintf(stderr, "[%5.0fs] connections, %d rounds over %zu modes\n", Seconds(start, Clock::now()), o.rounds,
                   cells.size());
      for (int r = 0; r < o.rounds; ++r)
        for (auto& c : cells) c->Round();
      for (auto& c : cells) c->Change();
      if (s == o.iperf_size)
        for (auto& c : cells)
          if (auto ip = c->Iperf(); !ip.is_null()) iperf.push_back(ip);
      for (auto& c : cells) {
        nlohmann::json r = c->Result();
        if (r.contains("error"))
          std::fprintf(stderr, "         %s: %s\n", c->mode().c_str(), r["error"].get<std::string>().c_str());
        rows[static_cast<size_t>(std::find(o.modes.begin(), o.modes.end(), c->mode()) - o.modes.begin())] = r;
      }
      for (auto& r : rows) results.push_back(r);
    }
    Settle(mem_before);
  }
  nlohmann::json memory = nlohmann::json::array();
  if (std::find(o.modes.begin(), o.modes.end(), "tendril") != o.modes.end()) memory = MapMemory();
  nlohmann::json all = {{"endpoints_per_service", 2}, {"results", results}, {"iperf", iperf}, {"map_memory", memory},
                        {"seconds", Seconds(start, Clock::now())}};
  if (!o.json_path.empty()) WriteFile(o.json_path, all.dump(2) + "\n");
  if (!o.dat_path.empty()) WriteDat(o.dat_path, results, o);
  PrintTables(results, iperf, memory, o);
  std::printf("\n(whole comparison: %.0f s)\n", Seconds(start, Clock::now()));
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) {
  tendril::test::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      for (absl::string_view p : absl::StrSplit(next(), ',')) {
        int v = 0;
        if (!absl::SimpleAtoi(p, &v) || v < 1) {
          std::fprintf(stderr, "--sizes: \"%s\" is not a positive number\n", std::string(p).c_str());
          return 2;
        }
        o.sizes.push_back(v);
      }
    } else if (a == "--modes") {
      o.modes = absl::StrSplit(next(), ',');
      for (const auto& m : o.modes)
        if (std::find(tendril::test::kAllModes.begin(), tendril::test::kAllModes.end(), m) ==
            tendril::test::kAllModes.end()) {
          std::fprintf(stderr, "--modes: unknown mode \"%s\" (%s)\n", m.c_str(),
                       absl::StrJoin(tendril::test::kAllModes, ", ").c_str());
          return 2;
        }
    } else if (a == "--full") {
      o.full = true;
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--dat") {
      o.dat_path = next();
    } else if (a == "--iperf-size") {
      if (!absl::SimpleAtoi(next(), &o.iperf_size)) return 2;
    } else if (a == "--cpu") {
      if (!absl::SimpleAtoi(next(), &o.cpu) || o.cpu < -1) {
        std::fprintf(stderr, "--cpu: a CPU number, or -1 for no pinning\n");
        return 2;
      }
    } else if (a == "--quick") {
      o.rounds = 2;
      o.round_seconds = 0.2;
      o.iperf_seconds = 1;
    } else {
      std::fprintf(stderr,
                   "usage: kube_proxy_bench [--sizes 1,1000,10000,100000] [--modes %s] [--full] [--json FILE] "
                   "[--dat FILE] [--iperf-size S] [--cpu N|-1] [--quick]\n",
                   absl::StrJoin(tendril::test::kAllModes, ",").c_str());
      return 2;
    }
  }
  return tendril::test::Main(o);
}
