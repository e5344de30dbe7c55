// The service manager: owns the declared services, gives them and their
// backends stable ids, and keeps the pinned LB maps equal to them with the
// minimum of writes, in an order that is safe under traffic (see
// maps/tendril_maps.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/service.h"
#include "lb/service_codec.h"
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
  Map<tnd_srange_v4_key, uint32_t> srng4;
  Map<tnd_srange_v6_key, uint32_t> srng6;
};

// Opens the LB maps pinned under `pin_root` (by bpf_host.o, which has them all).
absl::StatusOr<LbMaps> OpenLbMaps(const std::string& pin_root);

// What the service manager needs to know about this node: its addresses
// (NodePort frontends) and where each backend is (externalTrafficPolicy
// Local keeps to local and host backends).
struct NodeView {
  std::vector<IpAddr> addresses;
  std::function<BackendPlace(const IpAddr&)> place = [](const IpAddr&) { return BackendPlace::kRemote; };
};

struct SyncStats {
  int writes = 0;
  int deletes = 0;
};

struct ReplaceStats {
  int added = 0, changed = 0, removed = 0;  // services
  int writes = 0, deletes = 0;              // map operations
};

class ServiceManager {
 public:
  ServiceManager(LbMaps maps, ServiceLimits limits, uint32_t maglev_size, NodeView node = {})
      : maps_(std::move(maps)), limits_(limits), maglev_size_(maglev_size), node_(std::move(node)) {}

  // Makes the maps hold exactly `services` (restart), removing entries that
  // belong to no declared service.
  absl::StatusOr<SyncStats> Restore(std::vector<Service> services);

  // Makes the declared services exactly `desired` (a full sync, as
  // kube-proxy gets from the API server). A service whose frontend is
  // already declared keeps its id and backend ids (its flows' conntrack
  // entries stay valid) and only its differences are written; new services
  // get ids no current service has; services not in `desired` are removed.
  // Every service, conflict and the maps' capacity are checked before the
  // first write. Ids and backend ids in `desired` are ignored.
  absl::StatusOr<ReplaceStats> Replace(std::vector<Service> desired);

  absl::StatusOr<Service> Add(Service s);
  absl::StatusOr<Service> Update(uint16_t id, const ServiceUpdate& u);
  absl::StatusOr<Service> Delete(uint16_t id);

  absl::StatusOr<uint16_t> IdOf(const Frontend& f) const;
  const Service* Get(uint16_t id) const;
  std::vector<Service> List() const;
  const SyncStats& last_stats() const { return stats_; }
  // Every frontend of the service, with the slots and master entry written
  // for it (external frontends: per-packet LB; Local policy: local backends).
  std::vector<FrontendEntry> Entries(const Service& s) const;
  // How many ready backends of the service are on this node (what its
  // health check port reports).
  size_t LocalBackends(const Service& s) const;

  // Re-reads where the backends for which `affected` is true are (an
  // endpoint or route came or went) and rewrites the services whose
  // placement changed: their Local sets, slots and backend flags. How many
  // services changed.
  absl::StatusOr<int> RefreshPlacement(const std::function<bool(const IpAddr&)>& affected);

  // The node's addresses changed (RTM_NEWADDR/DELADDR): node port
  // frontends follow them. Refused (nothing written) when a new address
  // would take another service's frontend. How many services changed.
  absl::StatusOr<int> SetNodeAddresses(std::vector<IpAddr> addresses);
  const std::vector<IpAddr>& node_addresses() const { return node_.addresses; }

  // Asked before a change gives a service a health check port no service
  // held: an error (the port is taken on the node) refuses the change.
  using PortCheckFn = std::function<absl::Status(uint16_t port)>;
  void OnNewHealthPort(PortCheckFn fn) { health_port_check_ = std::move(fn); }

  // A removed backend's map entry stays for a grace period: a datapath
  // reader that took its id from a slot just before the slot changed still
  // finds it. These delete the entries whose grace period is over (all with
  // `all`), and tell when the next one is due (monotonic ms), if any.
  static constexpr int64_t kBackendGraceMs = 2000;
  int FlushRetiredBackends(bool all = false);

  // Called with the backends each change removed from their services, so
  // that their per-packet flows can be deleted (the next packet of such a
  // flow chooses a live backend, as kube-proxy's conntrack clearing does).
  using RemovedFn = std::function<void(uint16_t svc_id, L4Proto proto, const std::vector<Backend>& removed)>;
  void OnBackendsRemoved(RemovedFn fn) { on_removed_ = std::move(fn); }
  std::optional<int64_t> NextRetiredDeadlineMs() const;

 private:
  // Writes what `neu` needs and removes what only `old` had, in safe order.
  absl::Status Apply(const Service* old, const Service* neu);
  // The same with each side's frontends given (node addresses changed).
  absl::Status Write(const Service* old, const std::vector<FrontendEntry>& old_entries, const Service* neu,
                     const std::vector<FrontendEntry>& new_entries);
  absl::Status WriteMaglev(const Service& s);
  absl::Status CheckConflicts(const Service& s, uint16_t ignore_id) const;
  // Frontends and node ports of a whole set, in one pass.
  absl::Status CheckConflicts(const std::map<uint16_t, Service>& all) const;
  void AssignBackendIds(Service& s, const Service* previous) const;
  // With the ids in use given (and updated): no scan of every service.
  static void AssignBackendIds(Service& s, const Service* previous, std::set<uint32_t>& used);
  std::set<uint32_t> BackendIdsInUse(uint16_t ignore_id) const;
  uint16_t FreeServiceId() const;
  // Node ports and health check ports (any family, any protocol) of the
  // services other than `ignore`: new ports are picked outside them.
  std::set<uint16_t> PortsInUse(uint16_t ignore) const;
  absl::Status AllocatePorts(Service& s, const Service* previous) const;
  absl::Status AllocatePorts(std::map<uint16_t, Service>& next) const;
  // The lowest port of the node port range not in `used` (which gets it).
  static absl::StatusOr<uint16_t> PickPort(std::set<uint16_t>& used, const ServiceLimits& limits, const char* what);
  absl::Status CheckNewHealthPorts(const std::vector<const Service*>& changed) const;
  absl::Status CheckMaglevCapacity(size_t maglev_services) const;
  size_t MaglevServices(uint16_t ignore_id) const;
  // Sets every backend's place from the node's routes.
  void Place(Service& s) const;
  absl::Status SyncSourceRanges(const Service* old, const Service* neu);
  // Parts of Replace and Restore.
  void GiveNewIds(std::vector<Service>& desired) const;
  absl::Status CheckMapCapacity(const std::map<uint16_t, Service>& next) const;
  absl::StatusOr<ReplaceStats> WriteReplace(std::map<uint16_t, Service>& next);
  absl::Status RemoveStale();

  LbMaps maps_;
  ServiceLimits limits_;
  uint32_t maglev_size_;
  NodeView node_;
  std::map<uint32_t, int64_t> retired_;  // backend id -> when it was removed (ms)
  RemovedFn on_removed_;
  PortCheckFn health_port_check_;
  std::map<uint16_t, Service> services_;
  SyncStats stats_;
};

}  // namespace tendril
