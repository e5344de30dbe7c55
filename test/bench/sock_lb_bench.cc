// Connect rate and latency through a ClusterIP (socket LB: connect4 rewrites
// the VIP to a backend) next to connecting straight to the same backend, in
// the same run. Client and server are threads of this process in network
// namespaces it creates; the process joins a child cgroup where the socket
// programs are attached.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <vector>

#include "agent/agent.h"
#include "datapath/attach.h"
#include "datapath/bpffs.h"
#include "datapath/loader.h"
#include "lb/services.h"
#include "test/support/kernel.h"
#include "test/support/tcp.h"

namespace tendril::test {
namespace {

constexpr int kRounds = 6;
constexpr int kPerRound = 1500;

struct Result {
  double rate = 0;  // connects per second
  double p50_us = 0, p99_us = 0;
};

// One round of connect()+close() to addr:port; appends latencies (us).
bool Round(const char* addr, uint16_t port, int n, std::vector<double>* lat, double* secs) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) {
    double us = ConnectOnce(addr, port);
    if (us < 0) {
      std::fprintf(stderr, "connect %s:%u: %s\n", addr, port, std::strerror(static_cast<int>(-us)));
      return false;
    }
    lat->push_back(us);
  }
  *secs += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return true;
}

Result Summarize(std::vector<double> lat, double secs) {
  std::sort(lat.begin(), lat.end());
  Result r;
  r.rate = static_cast<double>(lat.size()) / secs;
  r.p50_us = lat[lat.size() / 2];
  r.p99_us = lat[lat.size() * 99 / 100];
  return r;
}

int Main(bool json_out) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench: needs root\n");
    return 1;
  }
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
  auto join = [](const std::string& cg) { std::ofstream(cg + "/cgroup.procs") << ::getpid() << std::endl; };
  std::string root_cg = *FindCgroup2Mount();
  std::vector<double> lat_bare, lat_direct, lat_vip;
  double secs_bare = 0, secs_direct = 0, secs_vip = 0;
  bool ok = true;
  {
    NetnsGuard in(node);
    Round("10.0.9.2", 8080, 300, &lat_bare, &secs_bare);  // warm-up
    lat_bare.clear();
    secs_bare = 0;
    for (int r = 0; r < kRounds && ok; ++r) {
      join(root_cg);
      ok = Round("10.0.9.2", 8080, kPerRound, &lat_bare, &secs_bare);
      join(cgroup.path());
      ok = ok && Round("10.0.9.2", 8080, kPerRound, &lat_direct, &secs_direct) &&
           Round("10.96.9.9", 80, kPerRound, &lat_vip, &secs_vip);
    }
    join(root_cg);
  }
  if (!ok) return 1;
  Result b = Summarize(lat_bare, secs_bare), d = Summarize(lat_direct, secs_direct),
         v = Summarize(lat_vip, secs_vip);
  if (json_out) {
    nlohmann::json j = {
        {"connects_per_path", lat_direct.size()},
        {"direct_no_program", {{"rate_per_s", b.rate}, {"p50_us", b.p50_us}, {"p99_us", b.p99_us}}},
        {"direct", {{"rate_per_s", d.rate}, {"p50_us", d.p50_us}, {"p99_us", d.p99_us}}},
        {"vip_socket_lb", {{"rate_per_s", v.rate}, {"p50_us", v.p50_us}, {"p99_us", v.p99_us}}},
        {"rate_ratio_vs_direct", v.rate / d.rate},
        {"rate_ratio_vs_no_program", v.rate / b.rate}};
    std::printf("%s\n", j.dump(2).c_str());
    return 0;
  }
  std::printf("TCP connect()+close() over veth, %d connects per path in %d alternating rounds\n",
              kPerRound * kRounds, kRounds);
  std::printf("baselines: straight to the backend 10.0.9.2:8080, with no socket program and with\n"
              "connect4 attached (its lookup misses), same run\n\n");
  std::printf("%-40s %12s %10s %10s\n", "path", "connects/s", "p50 us", "p99 us");
  std::printf("%-40s %12.0f %10.1f %10.1f\n", "direct, no socket program", b.rate, b.p50_us, b.p99_us);
  std::printf("%-40s %12.0f %10.1f %10.1f\n", "direct, connect4 attached", d.rate, d.p50_us, d.p99_us);
  std::printf("%-40s %12.0f %10.1f %10.1f\n", "ClusterIP 10.96.9.9:80 (socket LB)", v.rate, v.p50_us, v.p99_us);
  std::printf("\nratio VIP / direct (no program): rate %.3f, p50 %.3f, p99 %.3f\n", v.rate / b.rate,
              v.p50_us / b.p50_us, v.p99_us / b.p99_us);
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) {
  bool json = argc > 1 && std::string(argv[1]) == "--json";
  return tendril::test::Main(json);
}
