// The agent's health check ports (externalTrafficPolicy Local): one server
// per port, answering with the ready local backends of the services on it.
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "common/log.h"

namespace tendril {

// One server per health check port; a port two services share (the halves
// of a dual-stack Service) counts the local backends of both.
void Agent::SyncHealth() {
  std::map<uint16_t, std::vector<uint16_t>> want;
  std::map<uint16_t, std::string> names;
  for (const Service& s : services_->List()) {
    if (!s.health_check_port) continue;
    want[s.health_check_port].push_back(s.id);
    names.emplace(s.health_check_port, s.frontend.ToString());
  }
  for (auto it = health_.begin(); it != health_.end();)
    it = want.count(it->first) ? std::next(it) : health_.erase(it);
  for (const auto& [port, ids] : want) {
    if (health_.count(port)) continue;
    auto h = HealthServer::Listen(port, names[port]);
    if (!h.ok()) {
      TND_LOG_WARN(h.status().message());
      continue;
    }
    TND_LOG_INFO("service ", names[port], ": health check on port ", port);
    health_[port] = std::move(*h);
  }
  health_services_ = std::move(want);
}

size_t Agent::HealthCount(uint16_t port) const {
  size_t n = 0;
  auto it = health_services_.find(port);
  if (it == health_services_.end() || !services_) return 0;
  for (uint16_t id : it->second)
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
