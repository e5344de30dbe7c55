// kube-proxy's operator endpoints, served from the agent's loop:
//   healthz-bind-address (0.0.0.0:10256): /healthz and /livez answer 200
//     with {"lastUpdated", "currentTime"} (and /healthz "nodeEligible")
//     while no change of the cluster has waited longer than healthz-timeout
//     for the maps (before the first sync: since the watch started), 503
//     otherwise, as kube-proxy's proxier health server does; /healthz is
//     also 503 while this node's Node object is being deleted or carries
//     the autoscaler's to-be-deleted taint. Without a cluster, 200 once the
//     datapath runs. Load balancers probe it to pick nodes.
//   metrics-bind-address (127.0.0.1:10249): /metrics in the Prometheus text
//     format: datapath drops by reason, flow table fill and GC, services,
//     the watch, sync latencies under kube-proxy's metric names.
// A port that cannot be bound is logged and shown in status; the datapath
// runs on (kube-proxy does the same).
#include <algorithm>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/k8s_watch.h"
#include "agent/metrics_text.h"
#include "common/log.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril {
namespace {

constexpr absl::Duration kNodeHttpRetry = absl::Seconds(5);

std::string Rfc3339(absl::Time t) { return absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", t, absl::UTCTimeZone()); }

}  // namespace

// Binds what is configured and not yet bound; one that fails is tried
// again every few seconds (NodeHttpTimer), logged when its error changes.
void Agent::StartNodeHttp() {
  std::vector<std::string> errors;
  for (auto [addr, slot, what] : {std::tuple{cfg_.healthz_bind_address, &healthz_, "healthz"},
                                  std::tuple{cfg_.metrics_bind_address, &metrics_, "metrics"}}) {
    if (addr.empty() || *slot) continue;
    auto r = HttpResponder::Listen(addr, absl::StrCat(what, " endpoint"));
    if (!r.ok()) {
      errors.push_back(std::string(r.status().message()));
      if (std::find(node_http_errors_.begin(), node_http_errors_.end(), errors.back()) == node_http_errors_.end())
        TND_LOG_WARN(r.status().message(), " (the datapath runs without it; tried again every ",
                     absl::FormatDuration(kNodeHttpRetry), ")");
      continue;
    }
    *slot = std::move(*r);
    TND_LOG_INFO(what, " endpoint on ", addr);
  }
  node_http_errors_ = std::move(errors);
  node_http_next_try_ = absl::Now() + kNodeHttpRetry;
}

// As kube-proxy's: healthy while no change waited too long; /healthz also
// needs the node eligible (not being deleted) and says so, /livez does
// not. A healthy answer's lastUpdated is now (kube-proxy keeps that for
// old probes); an unhealthy one's, the last sync.
HttpReply Agent::NodeHealth(const std::string& path) const {
  const bool healthz = path == "/healthz";
  if (!healthz && path != "/livez") return {404, "text/plain", "404 page not found\n"};
  const absl::Time now = absl::Now();
  absl::Time updated = started_time_;
  bool healthy = true, eligible = true;
  if (k8s_) {
    const absl::Time pending = k8s_->OldestPending();
    healthy = pending == absl::InfinitePast() || now - pending <= absl::Seconds(cfg_.healthz_timeout);
    if (k8s_->last_sync() != absl::InfinitePast()) updated = k8s_->last_sync();
    eligible = k8s_->Eligibility().eligible;
  }
  if (healthz) healthy = healthy && eligible;
  if (healthy) updated = now;
  const int code = healthy ? 200 : 503;
  health_answers_[{healthz ? "healthz" : "livez", code}]++;
  nlohmann::json body = {{"lastUpdated", Rfc3339(updated)}, {"currentTime", Rfc3339(now)}};
  if (healthz) body["nodeEligible"] = eligible;
  return {code, "application/json", body.dump() + "\n"};
}

void Agent::WriteDatapathMetrics(PromText& t) const {
  t.Family("tendril_datapath_drops_total", "counter", "Packets the datapath dropped, by reason and direction");
  auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(paths_.Map(TND_MAP_METRICS), TND_MAP_METRICS);
  if (m.ok())
    (void)m->ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& per_cpu) {
      uint64_t packets = 0;
      for (const auto& x : per_cpu) packets += x.packets;
      abi::MetricsSlot k = abi::DecodeMetricsIndex(idx);
      if (k.reason == TND_DROP_NONE) return;
      t.Sample("tendril_datapath_drops_total",
               {{"reason", std::string(abi::DropReasonName(static_cast<uint8_t>(k.reason)))},
                {"direction", std::string(abi::DirectionName(static_cast<uint8_t>(k.dir)))}},
               static_cast<double>(packets));
    });
  // Flow tables: entries as the last GC found them, and their size.
  t.Family("tendril_flow_table_entries", "gauge", "Entries of the conntrack and NAT tables at the last GC");
  t.Family("tendril_flow_table_max_entries", "gauge", "Size of the conntrack and NAT tables (LRU)");
  for (auto [name, fd] : {std::pair{"ct_v4", ct4_ ? ct4_->fd() : -1}, std::pair{"ct_v6", ct6_ ? ct6_->fd() : -1},
                          std::pair{"nat_v4", nat4_ ? nat4_->fd() : -1}, std::pair{"nat_v6", nat6_ ? nat6_->fd() : -1}}) {
    if (fd < 0) continue;
    if (last_gc_.contains(name) && last_gc_[name].contains("scanned"))
      t.Sample("tendril_flow_table_entries", {{"table", name}}, last_gc_[name].value("scanned", 0.0));
    if (auto info = GetMapInfo(fd); info.ok())
      t.Sample("tendril_flow_table_max_entries", {{"table", name}}, info->max_entries);
  }
  t.Family("tendril_flow_gc_removed_total", "counter", "Expired entries the agent's GC removed");
  for (const auto& [name, n] : gc_removed_total_) t.Sample("tendril_flow_gc_removed_total", {{"table", name}}, n);
  t.Family("tendril_flow_gc_runs_total", "counter", "GC runs");
  t.Sample("tendril_flow_gc_runs_total", static_cast<double>(gc_runs_));
}

std::string Agent::MetricsText() const {
  PromText t;
  WriteDatapathMetrics(t);
  t.Family("tendril_services", "gauge", "Declared services, by who declared them");
  size_t cluster = 0, backends = 0, total = services_ ? services_->size() : 0;
  if (services_)
    for (const auto& [id, s] : services_->services()) {
      cluster += s.owner.empty() ? 0 : 1;
      backends += s.backends.size();
    }
  t.Sample("tendril_services", {{"source", "api"}}, static_cast<double>(total - cluster));
  t.Sample("tendril_services", {{"source", "kubernetes"}}, static_cast<double>(cluster));
  t.Family("tendril_backends", "gauge", "Backends of all declared services");
  t.Sample("tendril_backends", static_cast<double>(backends));
  if (services_) {
    static const char* kTables[] = {"services_v4", "services_v6", "backends", "revnat"};
    t.Family("tendril_lb_table_size", "gauge", "Current size of the growable LB tables (they grow before 3/4 full)");
    std::vector<uint32_t> sizes = services_->TableSizes();
    for (size_t i = 0; i < sizes.size() && i < 4; ++i) t.Sample("tendril_lb_table_size", {{"table", kTables[i]}}, sizes[i]);
  }
  for (const char* which : {"healthz", "livez"}) {
    const std::string name = absl::StrCat("kubeproxy_proxy_", which, "_total");
    t.Family(name, "counter", absl::StrCat("/", which, " answers by HTTP code (kube-proxy's name)"));
    for (int code : {200, 503}) {
      auto it = health_answers_.find({which, code});
      t.Sample(name, {{"code", std::to_string(code)}}, it == health_answers_.end() ? 0 : it->second);
    }
  }
  if (k8s_) k8s_->WriteMetrics(t);
  return t.str();
}

std::vector<int> Agent::NodeHttpFds() const {
  std::vector<int> fds;
  for (const auto* r : {&healthz_, &metrics_})
    if (*r)
      for (int fd : (*r)->Fds()) fds.push_back(fd);
  return fds;
}

HttpResponder::Handler Agent::NodeHttpHandler(bool metrics) const {
  if (!metrics) return [this](const std::string& p) { return NodeHealth(p); };
  return [this](const std::string& p) {
    if (p != "/metrics") return HttpReply{404, "text/plain", "404 page not found\n"};
    return HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", MetricsText()};
  };
}

void Agent::NodeHttpTimer() {
  if (!node_http_errors_.empty() && absl::Now() >= node_http_next_try_) StartNodeHttp();
  if (healthz_) healthz_->OnTimer(NodeHttpHandler(false));
  if (metrics_) metrics_->OnTimer(NodeHttpHandler(true));
}

int Agent::NodeHttpTimeoutMs() const {
  int ms = -1;
  if (!node_http_errors_.empty())  // a bind to try again
    ms = static_cast<int>(std::max<int64_t>(0, absl::ToInt64Milliseconds(node_http_next_try_ - absl::Now()) + 1));
  for (const auto* r : {&healthz_, &metrics_})
    if (*r)
      if (int t = (*r)->NextTimeoutMs(); t >= 0) ms = ms < 0 ? t : std::min(ms, t);
  return ms;
}

bool Agent::OnNodeHttpReadable(int fd) {
  if (healthz_ && healthz_->Owns(fd)) {
    healthz_->OnReadable(fd, NodeHttpHandler(false));
    return true;
  }
  if (metrics_ && metrics_->Owns(fd)) {
    metrics_->OnReadable(fd, NodeHttpHandler(true));
    return true;
  }
  return false;
}

}  // namespace tendril
