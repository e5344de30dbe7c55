// The service planner: every decision about declared services, as pure code
// with no map in sight. It owns the declared set (and the ids of removed
// backends still in their grace period), checks a change against it (each
// service on its own, frontends, node and health ports, Maglev and map
// capacity), chooses ids, backend ids, ports and placement, and answers with
// a Plan: for each service touched, what the maps held for it and what they
// must hold, encoded by lb/service_codec.h. lb/lb_writer.h writes a plan;
// lb/services.h runs plan -> write -> commit. Unit-tested without root
// (test/unit/planner_test.cc).
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
#include "lb/planner_index.h"
#include "lb/service_codec.h"

namespace tendril {

// What the planner needs to know about this node: its addresses (NodePort
// frontends) and where each backend is (externalTrafficPolicy Local keeps
// to local and host backends).
struct NodeView {
  std::vector<IpAddr> addresses;
  std::function<BackendPlace(const IpAddr&)> place = [](const IpAddr&) { return BackendPlace::kRemote; };
  // Many at once, in order (a whole set); when unset, `place` for each.
  std::function<std::vector<BackendPlace>(const std::vector<IpAddr>&)> place_all;
  // This node's name where backends carry theirs (Backend::node): a backend
  // on another node is remote whatever the route; one on this node is
  // local (or host, by its address).
  std::string name;
};

// One service's change. `old` is what the maps hold for it (none: it is
// new), `neu` what they must hold (none: it goes); the entries are each
// side's frontends with their masters and slots.
struct ServiceChange {
  std::optional<Service> old, neu;
  std::vector<FrontendEntry> old_entries, new_entries;
  // neu's Maglev table (neu uses Maglev): backend ids by position; empty
  // when its set has no backend (the table is dropped).
  std::vector<uint32_t> maglev;
  // Backends of `old` that `neu` does not have: retired once written.
  std::vector<Backend> removed;
};

// What the growable tables must hold while a plan is written (an upper
// bound: what is declared plus everything the plan adds).
struct MapNeeds {
  uint64_t svc_entries[2] = {0, 0};  // per family (0: IPv4)
  uint64_t backends = 0;
  uint64_t services = 0;
};

struct Plan {
  bool reset = false;  // the declared set starts empty (restore)
  std::optional<std::vector<IpAddr>> node_addresses;  // the node's new addresses
  std::vector<ServiceChange> changes;  // in write order: removals, changes, additions
};

class ServicePlanner {
 public:
  ServicePlanner(ServiceLimits limits, uint32_t maglev_size, NodeView node = {})
      : limits_(limits), maglev_size_(maglev_size), node_(std::move(node)) {}

  // A new service; its id is kept when given and free, else the lowest free.
  absl::StatusOr<Plan> Add(Service s) const;
  absl::StatusOr<Plan> Update(ServiceId id, const ServiceUpdate& u) const;
  absl::StatusOr<Plan> Delete(ServiceId id) const;
  // Makes the declared services exactly `desired` (a full sync, as
  // kube-proxy gets from the API server). A service whose frontend is
  // already declared keeps its id and backend ids (its flows' conntrack
  // entries stay valid); new services get ids no current service has;
  // services not in `desired` are removed. Ids and backend ids in `desired`
  // are ignored.
  absl::StatusOr<Plan> Replace(std::vector<Service> desired) const;
  // Replace's fast case: every desired service declared as it is (see
  // planner.cc); the plan removes the others. nullopt otherwise.
  std::optional<Plan> RemovalsOnly(std::vector<Service>& desired) const;
  // The declared set from the state file (a restart): ids as saved.
  absl::StatusOr<Plan> Restore(std::vector<Service> services) const;
  // Re-reads where the backends for which `affected` is true are and plans
  // the services whose placement changed.
  Plan Placement(const std::function<bool(const IpAddr&)>& affected) const;
  // The node's addresses changed: node port frontends follow them. Refused
  // when a new address would take another service's frontend.
  absl::StatusOr<Plan> NodeAddresses(std::vector<IpAddr> addresses) const;

  // The change that undoes `c` (a failed write is rolled back with it);
  // the backends `c` added are its removed ones.
  ServiceChange Undo(const ServiceChange& c) const;

  // Takes a plan's parts as declared once they are written. `now_ms` starts
  // the grace period of the backends a change removes.
  void Begin(const Plan& p);
  void Commit(const ServiceChange& c, int64_t now_ms);
  // Takes back a committed `c` once its undo `u` is written.
  void Revert(const ServiceChange& c, const ServiceChange& u, int64_t now_ms);

  // Removed backends whose grace period is over at `now_ms` (all of them
  // with `all`), and forgetting one once its entry is gone.
  static constexpr int64_t kBackendGraceMs = 2000;
  std::vector<uint32_t> RetiredDue(int64_t now_ms, bool all) const;
  void ForgetRetired(uint32_t backend_id);
  std::optional<int64_t> NextRetiredDeadlineMs() const;

  // Asked before a change gives a service a health check port no service
  // held: an error (the port is taken on the node) refuses the change.
  using PortCheckFn = std::function<absl::Status(uint16_t port)>;
  void OnNewHealthPort(PortCheckFn fn) { health_port_check_ = std::move(fn); }

  const std::map<ServiceId, Service>& services() const { return services_; }
  const Service* Get(ServiceId id) const;
  absl::StatusOr<ServiceId> IdOf(const Frontend& f) const;
  std::vector<FrontendEntry> Entries(const Service& s) const { return FrontendEntries(s, node_.addresses); }
  const std::vector<IpAddr>& node_addresses() const { return node_.addresses; }
  uint32_t maglev_size() const { return maglev_size_; }
  const ServiceLimits& limits() const { return limits_; }
  // What the tables must hold while `p` is written.
  MapNeeds Needs(const Plan& p) const;

 private:
  // A change of one service from `old` (null: new) to `neu` (null: gone).
  ServiceChange Change(const Service* old, const Service* neu) const;
  ServiceChange Added(Service neu) const;  // Change(nullptr, &neu), moving it
  absl::Status CheckConflicts(const Service& s, ServiceId ignore_id) const;
  // Frontends and node ports of a whole set, in one pass, with the node's
  // addresses given.
  absl::Status CheckConflicts(const std::map<ServiceId, Service>& all, const std::vector<IpAddr>& addresses) const;
  void GiveNewIds(std::vector<Service>& desired) const;
  // New ports for `s` (a previous version's kept), outside those `taken`.
  absl::Status AllocatePortsWith(Service& s, const Service* previous,
                                 const std::function<bool(uint16_t)>& taken) const;
  absl::Status AllocatePorts(Service& s, const Service* previous) const;
  absl::Status AllocatePorts(std::map<ServiceId, Service>& next) const;
  absl::Status CheckNewHealthPorts(const std::vector<const Service*>& changed) const;
  absl::Status CheckMaglevCapacity(size_t maglev_services) const;
  size_t MaglevServices(ServiceId ignore_id) const;
  // The maps must hold the new set next to what is being removed.
  absl::Status CheckMapCapacity(const std::map<ServiceId, Service>& next) const;
  absl::Status CheckSingleCapacity(const Service& s, const Service* previous) const;
  // Everything a single-service change (add, update) checks and chooses.
  absl::Status Prepare(Service& s, const Service* previous) const;
  // Sets every backend's place: the previous version's where it had the
  // address (routes and links that move one are followed by Placement()),
  // else from the node's routes, asked once for all of `todo`.
  void Place(const std::vector<std::pair<Service*, const Service*>>& todo) const;
  void Place(Service& s, const Service* previous = nullptr) const { Place({{&s, previous}}); }

  ServiceLimits limits_;
  uint32_t maglev_size_;
  NodeView node_;
  std::map<ServiceId, Service> services_;
  ServiceIndex index_{limits_.service_ids, limits_.backend_map_entries};
  std::map<uint32_t, int64_t> retired_;  // backend id -> when it was removed (ms)
  PortCheckFn health_port_check_;
};

}  // namespace tendril
