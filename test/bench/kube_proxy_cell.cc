#include "test/bench/kube_proxy_cell.h"

#include <atomic>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"

namespace tendril::test {
namespace {

std::string Ip4(uint32_t v) {
  return absl::StrCat(v >> 24, ".", (v >> 16) & 255, ".", (v >> 8) & 255, ".", v & 255);
}

}  // namespace

std::vector<double> AgentUpdateMs(const std::string& log) {
  std::vector<double> out;
  for (absl::string_view line : absl::StrSplit(log, '\n')) {
    size_t at = line.find(", all ");
    if (!absl::StrContains(line, " updated (") || at == absl::string_view::npos || !absl::EndsWith(line, ")")) continue;
    double ms = 0;
    if (absl::SimpleAtod(line.substr(at + 6, line.size() - 7 - at), &ms)) out.push_back(ms);
  }
  return out;
}

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

nlohmann::json TendrilServices(const std::vector<KpService>& services, int maglev_every) {
  nlohmann::json arr = nlohmann::json::array();
  for (size_t i = 0; i < services.size(); ++i) {
    const KpService& s = services[i];
    nlohmann::json b = nlohmann::json::array();
    for (const KpEndpoint& e : s.endpoints) b.push_back({{"address", absl::StrCat(e.ip, ":", e.port)}});
    arr.push_back({{"frontend", absl::StrCat(s.cluster_ip, ":", s.port, "/TCP")}, {"backends", b}});
    if (maglev_every > 0 && i % static_cast<size_t>(maglev_every) == 0) arr.back()["algorithm"] = "maglev";
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

void Cell::Restart() {
  if (!ok() || !tendril()) return;
  std::atomic<bool> stop{false};
  std::atomic<long> connects{0}, failures{0};
  if (socket_lb()) JoinCgroup(t_->cgroup.path());  // the client's connects go through socket LB
  std::thread client([&] {
    NetnsGuard in(n_.client);
    while (!stop) {
      (ConnectOnce(Vip(), kSvcPort) >= 0 ? connects : failures)++;
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  t_->agent->Stop(9, 2000);
  auto t0 = Clock::now();
  absl::Status st = t_->Run();
  const double ready_s = Seconds(t0, Clock::now());
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  stop = true;
  client.join();
  if (socket_lb()) JoinCgroup(*FindCgroup2Mount());
  if (!st.ok()) {
    j_["restart_error"] = std::string(st.message()).substr(0, 300);
    return;
  }
  j_["restart_ready_s"] = ready_s;
  j_["restart_connects"] = connects.load();
  j_["restart_failures"] = failures.load();
  // "services restored: N services, W map writes, D stale entries removed"
  const std::string log = t_->agent->Log();
  const size_t at = log.find("services restored: ");
  if (at != std::string::npos) {
    const std::string line = log.substr(at, log.find('\n', at) - at);
    std::vector<std::string> words = absl::StrSplit(line, ' ');
    for (size_t i = 1; i < words.size(); ++i) {
      long n = 0;
      if (words[i] == "map" && absl::SimpleAtoi(words[i - 1], &n)) j_["restart_map_writes"] = n;
      if (words[i] == "stale" && absl::SimpleAtoi(words[i - 1], &n)) j_["restart_map_deletes"] = n;
    }
  }
}

}  // namespace tendril::test
