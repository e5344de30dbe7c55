// Connect rate and latency through a ClusterIP (socket LB: connect4 rewrites
// the VIP to a backend) next to connecting straight to the same backend, in
// the same run. Client and server are threads of this process in network
// namespaces it creates; the process joins a child cgroup where the socket
// programs are attached.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <bpf/bpf.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/agent.h"
#include "common/fd.h"
#include "datapath/attach.h"
#include "datapath/bpffs.h"
#include "datapath/loader.h"
#include "lb/services.h"
#include "test/bench/bench_util.h"
#include "test/support/kernel.h"
#include "test/support/tcp.h"

namespace tendril::test {
namespace {

constexpr int kRounds = 6;
constexpr int kPerRound = 1500;

// The kernel's own count of a program's runs and their time
// (BPF_ENABLE_STATS keeps it while its fd is open).
struct ProgTime {
  uint64_t ns = 0, runs = 0;
  static ProgTime Of(int fd) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0) return {};
    return {info.run_time_ns, info.run_cnt};
  }
  ProgTime operator-(const ProgTime& o) const { return {ns - o.ns, runs - o.runs}; }
  ProgTime operator+(const ProgTime& o) const { return {ns + o.ns, runs + o.runs}; }
  double PerRun() const { return runs ? static_cast<double>(ns) / static_cast<double>(runs) : 0; }
};

void Print(const ConnectPath& b, const ConnectPath& d, const ConnectPath& v, const ProgTime& miss,
           const ProgTime& hit, bool json_out) {
  if (json_out) {
    PrintJson({{"connects_per_path", d.lat.size()},
               {"direct_no_program", b.Json()},
               {"direct", d.Json()},
               {"vip_socket_lb", v.Json()},
               {"rate_ratio_vs_direct", v.Rate() / d.Rate()},
               {"rate_ratio_vs_no_program", v.Rate() / b.Rate()},
               {"connect4_ns_miss", miss.PerRun()},
               {"connect4_ns_vip", hit.PerRun()}});
    return;
  }
  std::printf("TCP connect()+close() over veth, %d connects per path in %d alternating rounds\n",
              kPerRound * kRounds, kRounds);
  std::printf("baselines: straight to the backend 10.0.9.2:8080, with no socket program and with\n"
              "connect4 attached (its lookup misses), same run\n\n");
  std::printf("%-40s %12s %10s %10s\n", "path", "connects/s", "p50 us", "p99 us");
  auto row = [](const char* name, const ConnectPath& p) {
    std::printf("%-40s %12.0f %10.1f %10.1f\n", name, p.Rate(), p.Percentile(50), p.Percentile(99));
  };
  row("direct, no socket program", b);
  row("direct, connect4 attached", d);
  row("ClusterIP 10.96.9.9:80 (socket LB)", v);
  std::printf("\nratio VIP / direct (no program): rate %.3f, p50 %.3f, p99 %.3f\n", v.Rate() / b.Rate(),
              v.Percentile(50) / b.Percentile(50), v.Percentile(99) / b.Percentile(99));
  std::printf("connect4 itself, kernel-reported (run_time_ns / run_cnt): %.0f ns per connect to the\n"
              "ClusterIP, %.0f ns per connect straight to the backend (its lookup misses)\n",
              hit.PerRun(), miss.PerRun());
}

int Main(bool json_out) {
  Netns node("bnode"), backend("bback");
  ConnectVeth(node, "eth0", "10.0.9.1/24", backend, "eth0", "10.0.9.2/24");
  TempPinRoot pins;
  TempCgroup cgroup;
  auto obj = BpfObject::Load({BpfObjectPath("bpf_sock"), pins.path(), {}});
  if (!obj.ok()) {
    std::fprintf(stderr, "%s\n", std::string(obj.status().message()).c_str());
    return 1;
  }
  auto host = BpfObject::Load({BpfObjectPath("bpf_host"), pins.path()});
  auto maps = host.ok() ? OpenLbMaps(pins.path()) : host.status();
  if (!maps.ok()) {
    std::fprintf(stderr, "%s\n", std::string(maps.status().message()).c_str());
    return 1;
  }
  ServiceManager mgr(std::move(*maps), ServiceLimits{}, 16381);
  Service s;
  s.frontend = *ParseFrontend("10.96.9.9:80/TCP");
  s.backends.push_back(*ParseBackend("10.0.9.2:8080"));
  if (!mgr.Add(s).ok()) return 1;
  auto att = AttachCgroup(cgroup.path(), BPF_CGROUP_INET4_CONNECT, *obj->ProgramFd("tnd_sock_connect4"),
                          pins.path() + "/links/connect4");
  if (!att.ok()) {
    std::fprintf(stderr, "%s\n", std::string(att.message()).c_str());
    return 1;
  }

  AcceptServer server(backend, "10.0.9.2", 8080);
  if (!server.ok()) {
    std::fprintf(stderr, "bench: cannot listen on 10.0.9.2:8080\n");
    return 1;
  }

  // The process moves between the root cgroup (no socket program) and the
  // child cgroup (connect4 attached), alternating rounds to share any drift.
  std::string root_cg = *FindCgroup2Mount();
  ConnectPath bare, direct, vip;
  ProgTime miss, hit;
  const int prog = *obj->ProgramFd("tnd_sock_connect4");
  UniqueFd stats(bpf_enable_stats(BPF_STATS_RUN_TIME));
  bool ok = true;
  {
    NetnsGuard in(node);
    ConnectPath warm;
    warm.Round("10.0.9.2", 8080, 300);
    for (int r = 0; r < kRounds && ok; ++r) {
      JoinCgroup(root_cg);
      ok = bare.Round("10.0.9.2", 8080, kPerRound);
      JoinCgroup(cgroup.path());
      ProgTime t0 = ProgTime::Of(prog);
      ok = ok && direct.Round("10.0.9.2", 8080, kPerRound);
      ProgTime t1 = ProgTime::Of(prog);
      ok = ok && vip.Round("10.96.9.9", 80, kPerRound);
      ProgTime t2 = ProgTime::Of(prog);
      miss = miss + (t1 - t0);
      hit = hit + (t2 - t1);
    }
    JoinCgroup(root_cg);
  }
  if (!ok) {
    std::fprintf(stderr, "bench: %s%s%s\n", bare.error.c_str(), direct.error.c_str(), vip.error.c_str());
    return 1;
  }
  if (stats.get() < 0) std::fprintf(stderr, "bench: BPF_ENABLE_STATS: %s (no per-program times)\n", strerror(errno));
  Print(bare, direct, vip, miss, hit, json_out);
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) { return tendril::test::BenchMain(argc, argv, tendril::test::Main); }
