// The main loop's side of the agent: the descriptors it polls (health check
// ports, link events), its timer (conntrack GC, retired backends, health),
// and conntrack: GC and the flows of removed backends.
#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "agent/agent.h"
#include "agent/k8s_watch.h"
#include "common/clock.h"
#include "common/log.h"
#include "maps/conntrack.h"

namespace tendril {

std::vector<int> Agent::PollFds() const {
  std::vector<int> fds;
  for (const auto& [id, h] : health_)
    for (int fd : h->Fds()) fds.push_back(fd);
  if (links_) fds.push_back(links_->fd());
  if (k8s_) fds.push_back(k8s_->fd());
  for (int fd : NodeHttpFds()) fds.push_back(fd);
  return fds;
}

void Agent::OnReadable(int fd) {
  if (links_ && fd == links_->fd()) {
    OnLinkEvents();
    return;
  }
  if (k8s_ && fd == k8s_->fd()) {
    OnK8sChange();
    return;
  }
  if (OnNodeHttpReadable(fd)) return;
  for (const auto& [port, h] : health_) {
    if (!h->Owns(fd)) continue;
    h->OnReadable(fd, HealthCount(port));
    return;
  }
}

int Agent::NextTimeoutMs() const {
  uint32_t now = BpfClockSeconds();
  int ms = static_cast<int32_t>(next_gc_ - now) <= 0 ? 0 : static_cast<int>(next_gc_ - now) * 1000;
  if (services_) {
    if (auto due = services_->NextRetiredDeadlineMs()) {
      ms = std::min<int64_t>(ms, std::max<int64_t>(0, *due - MonotonicMs() + 1));
    }
  }
  for (const auto& [id, h] : health_)
    if (int t = h->NextTimeoutMs(); t >= 0) ms = std::min(ms, t);
  if (int t = NodeHttpTimeoutMs(); t >= 0) ms = std::min(ms, t);
  if (placement_retry_ || (services_ && services_->needs_restore()) || (k8s_ && k8s_->needs_retry()) ||
      !k8s_refused_.empty())
    ms = std::min(ms, kPlacementRetryMs);
  if (pending_since_ms_ >= 0)
    ms = std::min<int64_t>(ms, std::max<int64_t>(0, pending_since_ms_ + kFlowCleanupDelayMs - MonotonicMs()));
  return ms;
}

void Agent::OnTimer() {
  DeletePendingFlows();
  for (const auto& [port, h] : health_) h->OnTimer(HealthCount(port));
  NodeHttpTimer();
  if (services_) {
    int n = services_->FlushRetiredBackends();
    if (n) TND_LOG_DEBUG("removed ", n, " backend entries after their grace period");
  }
  RestoreStoredServicesIfNeeded();
  if (k8s_ && k8s_->needs_retry()) OnK8sChange();
  if (k8s_ && !k8s_refused_.empty()) SyncK8sServices(std::set<std::string>(k8s_refused_));
  if (placement_retry_) {
    placement_retry_ = false;
    RefreshPlacement({});  // sets it again if it fails again
  }
  if (static_cast<int32_t>(next_gc_ - BpfClockSeconds()) > 0) return;
  nlohmann::json r = ConntrackGc();
  int removed = r.value("removed", 0);
  if (removed > 0)
    TND_LOG_INFO("conntrack GC: removed ", removed, " expired entries (", r.dump(), ")");
  else
    TND_LOG_DEBUG("conntrack GC: nothing expired (", r.dump(), ")");
  next_gc_ = BpfClockSeconds() + cfg_.ct_gc_interval;
}

void Agent::DeleteFlowsOf(ServiceId svc_id, L4Proto proto, const std::vector<Backend>& removed) {
  for (const Backend& b : removed) {
    BackendRef r;
    r.svc_id = svc_id;
    r.proto = static_cast<uint8_t>(proto);
    r.id = b.id;
    memcpy(r.addr, b.ip.bytes.data(), 16);
    r.port_be = htons(b.port);
    pending_flows_[b.ip.family == Family::kV4 ? 0 : 1].push_back(r);
  }
  if (pending_since_ms_ < 0 && !removed.empty()) pending_since_ms_ = MonotonicMs();
}

// One walk per family for every backend removed since the first of them,
// a second after it (before the removed ids' 2 s grace ends and they can be
// given out again). A backend declared again since (same service, address
// and port) keeps its flows.
void Agent::DeletePendingFlows() {
  if (pending_since_ms_ < 0 || MonotonicMs() - pending_since_ms_ < kFlowCleanupDelayMs) return;
  pending_since_ms_ = -1;
  for (int f = 0; f < 2; ++f) {
    std::vector<BackendRef> refs;
    refs.swap(pending_flows_[f]);
    std::erase_if(refs, [&](const BackendRef& r) {
      const Service* s = services_ ? services_->Get(static_cast<ServiceId>(r.svc_id)) : nullptr;
      if (!s) return false;
      return std::any_of(s->backends.begin(), s->backends.end(), [&](const Backend& b) {
        return htons(b.port) == r.port_be && memcmp(b.ip.bytes.data(), r.addr, 16) == 0;
      });
    });
    CtMap* ct = (f == 0 ? ct4_ : ct6_).get();
    if (refs.empty() || !ct) continue;
    auto t0 = MonotonicMs();
    auto r = DeleteBackendFlows(*ct, (f == 0 ? nat4_ : nat6_).get(), refs);
    if (!r.ok()) {
      TND_LOG_WARN("deleting the flows of ", refs.size(), " removed backends: ", r.status().message());
      continue;
    }
    if (r->ct_entries)
      TND_LOG_INFO("deleted ", r->flows, " flows of ", refs.size(), " removed backends (", r->ct_entries,
                   " conntrack, ", r->nat_entries, " NAT entries; ", MonotonicMs() - t0, " ms)");
  }
}

nlohmann::json Agent::ConntrackGc() {
  uint32_t now = BpfClockSeconds();
  nlohmann::json out = {{"at", NowUtcText()}};
  int removed = 0;
  auto one = [&](const char* name, auto& map, auto gc) {
    if (!map) return;
    auto r = gc(*map, now);
    if (!r.ok()) {
      out[name] = {{"error", std::string(r.status().message())}};
      return;
    }
    out[name] = {{"scanned", r->scanned}, {"removed", r->removed}};
    removed += static_cast<int>(r->removed);
    gc_removed_total_[name] += r->removed;
  };
  one("ct_v4", ct4_, GcConntrack);
  one("ct_v6", ct6_, GcConntrack);
  one("nat_v4", nat4_, GcNat);
  one("nat_v6", nat6_, GcNat);
  out["removed"] = removed;
  gc_runs_++;
  last_gc_ = out;
  return out;
}

}  // namespace tendril
