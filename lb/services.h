// The service manager: runs each change as plan -> write -> commit. The
// planner (lb/planner.h) owns the declared services and decides; the writer
// (lb/lb_writer.h) makes the pinned LB maps hold the plan; only a change
// whose writes succeeded is taken as declared, and a single-service change
// whose write failed is undone in the maps.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "lb/lb_writer.h"
#include "lb/port_refs.h"
#include "lb/planner.h"
#include "lb/service.h"

namespace tendril {

struct ReplaceStats {
  int added = 0, changed = 0, removed = 0;  // services
  int writes = 0, deletes = 0;              // map operations
  // Where the time went: checking and planning, the map writes, the
  // commit (the agent's store), deleting the removed backends' flows.
  double plan_ms = 0, write_ms = 0, commit_ms = 0, flows_ms = 0;
};

class ServiceManager {
 public:
  ServiceManager(LbMaps maps, ServiceLimits limits, uint32_t maglev_size, NodeView node = {})
      : planner_(limits, maglev_size, std::move(node)), writer_(std::move(maps)) {}

  // Makes the maps hold exactly `services` (restart, or after an undo that
  // failed), removing entries that belong to no declared service.
  absl::StatusOr<SyncStats> Restore(std::vector<Service> services);
  // ServicePlanner::Replace, written: every service, conflict and the maps'
  // capacity are checked before the first write.
  absl::StatusOr<ReplaceStats> Replace(std::vector<Service> desired);
  absl::StatusOr<Service> Add(Service s);
  absl::StatusOr<Service> Update(ServiceId id, const ServiceUpdate& u);
  absl::StatusOr<Service> Delete(ServiceId id);
  // Placement and node addresses (see ServicePlanner); how many services
  // changed. A write that fails undoes the whole change in the maps.
  absl::StatusOr<int> RefreshPlacement(const std::function<bool(const IpAddr&)>& affected);
  absl::StatusOr<int> SetNodeAddresses(std::vector<IpAddr> addresses);

  absl::StatusOr<ServiceId> IdOf(const Frontend& f) const { return planner_.IdOf(f); }
  const Service* Get(ServiceId id) const { return planner_.Get(id); }
  const ServiceLimits& limits() const { return planner_.limits(); }
  std::vector<Service> List() const;
  const std::map<ServiceId, Service>& services() const { return planner_.services(); }
  size_t size() const { return planner_.services().size(); }
  // The ids of the services the last change added, changed or removed.
  const std::vector<ServiceId>& last_touched() const { return touched_; }
  const std::vector<IpAddr>& node_addresses() const { return planner_.node_addresses(); }
  // Map operations of the last change.
  const SyncStats& last_stats() const { return writer_.stats(); }
  // Where the time of the last Add, Update or Delete went.
  const ReplaceStats& last_run() const { return last_run_; }
  // The growable tables' sizes (LbWriter::TableSizes).
  std::vector<uint32_t> TableSizes() const { return writer_.TableSizes(); }
  // Every frontend of the service, with the slots and master entry written
  // for it (external frontends: per-packet LB; Local policy: local backends).
  std::vector<FrontendEntry> Entries(const Service& s) const { return planner_.Entries(s); }
  // How many ready backends of the service are on this node (what its
  // health check port reports).
  size_t LocalBackends(const Service& s) const { return ReadyLocalBackends(s); }

  // Called after the writes of an Add, Update, Delete or Replace with the
  // services it touched (the agent stores them there). An error, or a map
  // write failing before, undoes the whole change in the maps, newest
  // service first, and is returned: the maps and the declared set are as
  // before it.
  using CommitFn = std::function<absl::Status(const std::vector<ServiceId>& touched)>;
  void OnCommit(CommitFn fn) { on_commit_ = std::move(fn); }
  // An undo could not be written either: the maps may differ from the
  // declared set until Restore() writes the stored set whole (the agent
  // retries it on its timer).
  bool needs_restore() const { return needs_restore_; }

  void OnNewHealthPort(ServicePlanner::PortCheckFn fn) { planner_.OnNewHealthPort(std::move(fn)); }

  // A removed backend's map entry stays for a grace period: a datapath
  // reader that took its id from a slot just before the slot changed still
  // finds it. These delete the entries whose grace period is over (all with
  // `all`), and tell when the next one is due (monotonic ms), if any.
  static constexpr int64_t kBackendGraceMs = ServicePlanner::kBackendGraceMs;
  int FlushRetiredBackends(bool all = false);
  std::optional<int64_t> NextRetiredDeadlineMs() const { return planner_.NextRetiredDeadlineMs(); }

  // Called with the backends each change removed from their services, so
  // that their per-packet flows can be deleted (the next packet of such a
  // flow chooses a live backend, as kube-proxy's conntrack clearing does).
  using RemovedFn = std::function<void(ServiceId svc_id, L4Proto proto, const std::vector<Backend>& removed)>;
  void OnBackendsRemoved(RemovedFn fn) { on_removed_ = std::move(fn); }

 private:
  // kRestore: a write failing stops the plan where it is (the next start
  // restores again). kUndo: it undoes the whole plan. kCommit: so does a
  // failing OnCommit after the last write.
  enum class RunMode { kRestore, kUndo, kCommit };
  // Writes and commits the plan's changes in order.
  absl::Status Run(const Plan& plan, RunMode mode, ReplaceStats* rs = nullptr);
  absl::StatusOr<Plan> RunOne(const std::function<absl::StatusOr<Plan>()>& make);
  ReplaceStats last_run_;
  absl::Status RollBack(const std::vector<const ServiceChange*>& done, const absl::Status& why);
  // Tells OnBackendsRemoved, once the change that removed them stays.
  void NotifyRemoved(const std::optional<Service>& old, const std::vector<Backend>& removed);

  // Starts a change: no map operation and no service touched yet.
  void End();
  void Begin();

  // Writes the port filter's bitmap when it changed (lb/port_refs.h).
  absl::Status SyncPorts();

  ServicePlanner planner_;
  LbWriter writer_;
  PortRefs ports_;
  std::vector<ServiceId> touched_;
  RemovedFn on_removed_;
  CommitFn on_commit_;
  bool needs_restore_ = false;
};

}  // namespace tendril
