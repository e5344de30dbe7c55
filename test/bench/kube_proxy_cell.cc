#include "test/bench/kube_proxy_cell.h"

namespace tendril::test {
namespace {

std::string Ip4(uint32_t v) {
  return absl::StrCat(v >> 24, ".", (v >> 16) & 255, ".", (v >> 8) & 255, ".", v & 255);
}

}  // namespace

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

double Timed(const Netns& ns, std::vector<std::string> argv, std::string* out) {
  std::vector<std::string> full = {"nsenter", "--net=" + ns.path()};
  full.insert(full.end(), argv.begin(), argv.end());
  auto t0 = Clock::now();
  int rc = Sh(full, out);
  auto t1 = Clock::now();
  return rc == 0 ? Seconds(t0, t1) : -1;
}

}  // namespace tendril::test
