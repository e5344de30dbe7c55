// The service manager: owns the declared services, gives them and their
// backends stable ids, and keeps the pinned LB maps equal to them with the
// minimum of writes, in an order that is safe under traffic (see
// maps/tendril_maps.h).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/service.h"
#include "common/fd.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril {

struct LbMaps {
  Map<tnd_svc4_key, tnd_svc_val> svc4;
  Map<tnd_svc6_key, tnd_svc_val> svc6;
  Map<uint32_t, tnd_backend> backends;
  Map<uint32_t, tnd_revnat> revnat;
  UniqueFd maglev;  // hash of maps: service id -> array of backend ids
};

// What `service update` may change.
struct ServiceUpdate {
  std::optional<std::vector<Backend>> backends;          // replaces the list
  std::vector<std::pair<std::string, BackendState>> states;  // "ADDR:PORT" -> state
  std::optional<Algorithm> algorithm;
  std::optional<uint32_t> affinity_timeout;
};

struct SyncStats {
  int writes = 0;
  int deletes = 0;
};

class ServiceManager {
 public:
  ServiceManager(LbMaps maps, ServiceLimits limits, uint32_t maglev_size)
      : maps_(std::move(maps)), limits_(limits), maglev_size_(maglev_size) {}

  // Makes the maps hold exactly `services` (restart), removing entries that
  // belong to no declared service.
  absl::StatusOr<SyncStats> Restore(std::vector<Service> services);

  absl::StatusOr<Service> Add(Service s);
  absl::StatusOr<Service> Update(uint16_t id, const ServiceUpdate& u);
  absl::StatusOr<Service> Delete(uint16_t id);

  absl::StatusOr<uint16_t> IdOf(const Frontend& f) const;
  const Service* Get(uint16_t id) const;
  std::vector<Service> List() const;
  const SyncStats& last_stats() const { return stats_; }

 private:
  // Writes what `neu` needs and removes what only `old` had, in safe order.
  absl::Status Apply(const Service* old, const Service* neu);
  absl::Status WriteMaglev(const Service& s);
  absl::Status CheckConflicts(const Service& s, uint16_t ignore_id) const;
  void AssignBackendIds(Service& s, const Service* previous) const;
  uint16_t FreeServiceId() const;

  LbMaps maps_;
  ServiceLimits limits_;
  uint32_t maglev_size_;
  std::map<uint16_t, Service> services_;
  SyncStats stats_;
};

}  // namespace tendril
