// Backends removed from their services: their map entries stay for a grace
// period (a datapath reader that took the id from a slot just before the
// change still finds it), then go.
#include "lb/services.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {

int ServiceManager::FlushRetiredBackends(bool all) {
  int64_t now = MonotonicMs();
  int n = 0;
  for (auto it = retired_.begin(); it != retired_.end();) {
    if (!all && it->second + kBackendGraceMs > now) {
      ++it;
      continue;
    }
    auto cur = maps_.backends.Lookup(it->first);
    absl::Status r = !cur.ok() ? cur.status() : *cur ? maps_.backends.Delete(it->first) : absl::OkStatus();
    if (!r.ok()) {
      TND_LOG_WARN("removing backend ", it->first, ": ", r.message());
      ++it;
      continue;
    }
    n += cur.ok() && *cur ? 1 : 0;
    it = retired_.erase(it);
  }
  return n;
}

std::optional<int64_t> ServiceManager::NextRetiredDeadlineMs() const {
  std::optional<int64_t> next;
  for (const auto& [id, t] : retired_)
    if (!next || t + kBackendGraceMs < *next) next = t + kBackendGraceMs;
  return next;
}

}  // namespace tendril
