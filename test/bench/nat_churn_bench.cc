// Connection churn through a SNAT NodePort: short TCP connections (connect,
// request, answer, RST close) from two client addresses, sustained, through
// tendril (the agent, per packet at tc, NAT in its maps) and through
// kube-proxy's iptables rules for the same NodePort (kernel conntrack and
// MASQUERADE --random-fully), on two copies of the same namespace topology
// in the same run, rounds taking turns (this VM's speed drifts).
//
//   client 10.0.0.100,.101 -- eth0 10.0.0.1 [node] eth1 10.2.0.1 -- backend 10.2.0.2:8080
//
// Usage: nat_churn_bench [--seconds S] [--rounds N]   (default 60 s per mode in 2 rounds)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/api_client.h"
#include "maps/abi.h"
#include "maps/conntrack.h"
#include "test/support/kube_proxy_rules.h"
#include "test/support/churn.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

struct Bed {
  std::string name;
  std::unique_ptr<Netns> client, node, backend;
  std::unique_ptr<RequestServer> server;
  TempPinRoot pins;
  TempDir state;
  TempCgroup cgroup;
  std::unique_ptr<Subprocess> agent;
  long ok = 0, failed = 0;
  double seconds = 0;
  uint16_t next_port = 10000;

  explicit Bed(const std::string& tag) : name(tag) {
    client = std::make_unique<Netns>(tag + "c");
    node = std::make_unique<Netns>(tag + "n");
    backend = std::make_unique<Netns>(tag + "b");
    ConnectVeth(*client, "eth0", "10.0.0.100/24", *node, "eth0", "10.0.0.1/24");
    ConnectVeth(*node, "eth1", "10.2.0.1/24", *backend, "eth0", "10.2.0.2/24");
    client->Exec({"ip", "addr", "add", "10.0.0.101/24", "dev", "eth0"});
    backend->Exec({"ip", "route", "add", "default", "via", "10.2.0.1"});
    node->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1"});
    server = std::make_unique<RequestServer>(*backend, "10.2.0.2", 8080);
  }
};

bool StartTendril(Bed& b) {
  std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--netns", b.node->path(), "--devices", "eth0,eth1",
                                   "--xdp-mode", "disabled", "--bpffs-root", b.pins.path(), "--state-dir",
                                   b.state.path(), "--api-socket", b.state.path() + "/api.sock", "--cgroup-root",
                                   b.cgroup.path()};
  for (const auto& f : AgentTestFlags()) argv.push_back(f);
  b.agent = std::make_unique<Subprocess>(argv);
  std::string sock = b.state.path() + "/api.sock";
  for (int k = 0; k < 300 && !CallAgent(sock, "status").ok(); ++k)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CliResult r = RunCli(sock, b.pins.path(),
                       {"service", "add", "--frontend", "10.96.0.10:80/TCP", "--type", "NodePort", "--node-port",
                        "30080", "--backends", "10.2.0.2:8080"});
  if (r.rc != 0) std::fprintf(stderr, "tendril: %s%s\n%s\n", r.out.c_str(), r.err.c_str(), b.agent->Log().c_str());
  return r.rc == 0;
}

bool StartIptables(Bed& b) {
  bench::KpService s;
  s.ns = "default";
  s.name = "churn";
  s.cluster_ip = "10.96.0.10";
  s.port = 80;
  s.node_port = 30080;
  s.endpoints = {{"10.2.0.2", 8080}};
  std::string rules = bench::IptablesFull({s});
  std::string path = b.state.path() + "/rules";
  FILE* f = std::fopen(path.c_str(), "w");
  std::fwrite(rules.data(), 1, rules.size(), f);
  std::fclose(f);
  std::string out;
  int rc = b.node->Exec({"sh", "-c", "iptables-legacy-restore < " + path}, &out);
  if (rc != 0) std::fprintf(stderr, "iptables-legacy-restore: %s\n", out.c_str());
  return rc == 0;
}

void Round(Bed& b, double seconds) {
  ChurnSpec spec;
  spec.sources = {"10.0.0.100", "10.0.0.101"};
  spec.dst = "10.0.0.1";
  spec.dport = 30080;
  spec.seconds = seconds;
  spec.first_port = 10000;
  spec.span = 30000;
  ChurnResult r = RunChurn(*b.client, spec);
  b.ok += r.ok;
  b.failed += r.failed;
  b.seconds += r.seconds;
  std::printf("  %-28s %s\n", b.name.c_str(), r.Summary().c_str());
  std::fflush(stdout);
}

int Main(int argc, char** argv) {
  double seconds = 60;
  int rounds = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--seconds")) seconds = std::atof(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(argv[i + 1]);
  }
  Bed tnd("tendril (tc, BPF NAT)"), ipt("kube-proxy iptables (legacy)");
  if (!StartTendril(tnd) || !StartIptables(ipt)) return 1;
  std::printf("churn through a SNAT NodePort: %.0f s per mode in %d rounds taking turns, 8 connections in flight\n",
              seconds, rounds);
  for (int r = 0; r < rounds; ++r) {
    Round(r % 2 ? ipt : tnd, seconds / rounds);
    Round(r % 2 ? tnd : ipt, seconds / rounds);
  }
  std::string sock = tnd.state.path() + "/api.sock";
  uint64_t drops = DropCount(tnd.pins.path() + "/" TND_MAP_METRICS, TND_DROP_NAT_EXHAUSTED).value_or(0);
  double rt = tnd.ok / tnd.seconds, rk = ipt.ok / ipt.seconds;
  std::printf("\n%-30s %12s %10s %8s\n", "mode", "conn/s", "failed", "ratio");
  std::printf("%-30s %12.0f %10ld %8s\n", ipt.name.c_str(), rk, ipt.failed, "1.00");
  std::printf("%-30s %12.0f %10ld %8.2f\n", tnd.name.c_str(), rt, tnd.failed, rk > 0 ? rt / rk : 0);
  std::printf("tendril: %llu SYNs found no free NAT port (retransmitted SYNs got one)\n",
              static_cast<unsigned long long>(drops));
  std::string ct;
  ipt.node->Exec({"sh", "-c", "cat /proc/sys/net/netfilter/nf_conntrack_count 2>/dev/null || echo ?"}, &ct);
  std::printf("kernel conntrack entries at the end (iptables node): %s", ct.c_str());
  tnd.agent.reset();
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) { return tendril::test::Main(argc, argv); }
