// The agent's health check ports (externalTrafficPolicy Local): one server
// per port, answering with the ready local backends of the services on it.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "common/log.h"

namespace tendril {

// One server per health check port; a port two services share (the halves
// of a dual-stack Service) counts the local backends of both. Only the
// services `ids` are looked at (those a change touched; every one at start).
void Agent::SyncHealth(const std::vector<ServiceId>& ids) {
  for (ServiceId id : ids) {
    const Service* s = services_->Get(id);
    const uint16_t want = s ? s->health_check_port : 0;
    auto had = health_port_of_.find(id);
    if (had != health_port_of_.end() && had->second != want) {
      auto& on_port = health_services_[had->second];
      on_port.erase(std::remove(on_port.begin(), on_port.end(), id), on_port.end());
      if (on_port.empty()) {
        health_services_.erase(had->second);
        health_.erase(had->second);
      }
      health_port_of_.erase(had);
    }
    if (!want || health_port_of_.count(id)) continue;
    health_port_of_[id] = want;
    health_services_[want].push_back(id);
    if (health_.count(want)) continue;
    auto h = HealthServer::Listen(want, s->frontend.ToString());
    if (!h.ok()) {
      TND_LOG_WARN(h.status().message());
      continue;
    }
    TND_LOG_INFO("service ", s->frontend.ToString(), ": health check on port ", want);
    health_[want] = std::move(*h);
  }
}

void Agent::SyncHealthAll() {
  std::vector<ServiceId> ids;
  for (const auto& [id, port] : health_port_of_) ids.push_back(id);  // gone ones too
  for (const auto& [id, s] : services_->services()) ids.push_back(id);
  SyncHealth(ids);
}

size_t Agent::HealthCount(uint16_t port) const {
  size_t n = 0;
  auto it = health_services_.find(port);
  if (it == health_services_.end() || !services_) return 0;
  for (ServiceId id : it->second)
    if (const Service* s = services_->Get(id)) n += services_->LocalBackends(*s);
  return n;
}

absl::Status Agent::CheckHealthPortFree(uint16_t port) const {
  if (health_.count(port)) return absl::OkStatus();
  auto h = HealthServer::Listen(port, "(check)");
  if (h.ok()) return absl::OkStatus();
  return absl::AlreadyExistsError(absl::StrCat("port ", port, " is taken on the node (", h.status().message(), ")"));
}

}  // namespace tendril
