// The planner's indexes over the declared services, kept up to date change
// by change, so that checking and planning one service's change costs the
// same at 1 service and at 100,000: which service owns each frontend, node
// port and health check port, the ports in use, how many services use
// Maglev, and the service and backend ids in use.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <tuple>
#include <vector>

#include "absl/status/status.h"
#include "lb/id_pool.h"
#include "lb/service.h"
#include "lb/service_codec.h"

namespace tendril {

// The service map entries (masters and slots) of `entries` in family `f`.
size_t SvcEntries(const std::vector<FrontendEntry>& entries, Family f);

class ServiceIndex {
 public:
  ServiceIndex(uint32_t max_service_id, uint32_t max_backend_id)
      : service_ids_(max_service_id), backend_ids_(max_backend_id) {}

  // A declared service (with its frontends as written) comes or goes.
  // Backend ids are not released by Remove: a removed backend stays in the
  // map for its grace period (ReleaseBackend then).
  void Add(const Service& s, const std::vector<FrontendEntry>& entries);
  void Remove(const Service& s, const std::vector<FrontendEntry>& entries);
  void ReleaseBackend(uint32_t id) { backend_ids_.Release(id); }
  void Clear();

  std::optional<ServiceId> FrontendOwner(const Frontend& f) const;
  // Node port and health check port clashes of `s` with every service but
  // `ignore`, named with `services` (the declared set).
  absl::Status CheckPorts(const Service& s, ServiceId ignore, const std::map<ServiceId, Service>& services) const;
  // Held as a node port or health check port by a service other than `ignore`.
  bool PortTaken(uint16_t port, ServiceId ignore) const;
  bool HealthPortHeld(uint16_t port) const { return health_.count(port) > 0; }
  size_t maglev_services() const { return maglev_; }
  // Service map entries (masters and slots) the declared set has in the
  // family's map (0: IPv4, 1: IPv6).
  size_t svc_entries(int family_index) const { return svc_entries_[family_index]; }
  const IdPool& service_ids() const { return service_ids_; }
  const IdPool& backend_ids() const { return backend_ids_; }
  IdPool& backend_ids() { return backend_ids_; }

 private:
  using NodePortKey = std::tuple<Family, L4Proto, uint16_t>;
  std::map<Frontend, ServiceId> frontends_;
  std::map<NodePortKey, ServiceId> node_ports_;
  std::map<uint16_t, std::set<ServiceId>> any_node_port_;  // port -> services (any family, protocol)
  std::map<uint16_t, std::set<ServiceId>> health_;         // port -> services
  size_t maglev_ = 0;
  size_t svc_entries_[2] = {0, 0};
  IdPool service_ids_;
  IdPool backend_ids_;
};

}  // namespace tendril
