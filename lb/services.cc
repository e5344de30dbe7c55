#include "lb/services.h"

#include <chrono>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {
namespace {

double MsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

absl::Status ServiceManager::Run(const Plan& plan, RunMode mode, ReplaceStats* rs) {
  // Room first: a table too small is replaced by a larger copy before the
  // first write (nothing of the plan is written if that fails).
  TND_ASSIGN_OR_RETURN(int grown, writer_.Reserve(planner_.Needs(plan), planner_.limits(), /*shrink=*/plan.reset));
  if (grown) TND_LOG_INFO("resized ", grown, " LB tables for ", plan.changes.size(), " service changes");
  planner_.Begin(plan);
  // The maps hold what the planner has, unless this is a restore or an
  // undo failed before: then every entry is read before it is written.
  const Prior prior = plan.reset || needs_restore_ ? Prior::kUnknown : Prior::kOld;
  // The port filter: a restore counts every service at once, so that no
  // declared port is missing while the rest is written.
  if (plan.reset) {
    ports_.Reset();
    for (const ServiceChange& c : plan.changes) ports_.Add(c.new_entries);
  }
  auto t0 = std::chrono::steady_clock::now();
  std::vector<const ServiceChange*> done, group;
  done.reserve(plan.changes.size());
  for (size_t i = 0; i < plan.changes.size();) {
    // Consecutive additions go as one batched group; anything else alone.
    group.assign(1, &plan.changes[i++]);
    while (prior == Prior::kOld && !group.front()->old && i < plan.changes.size() && !plan.changes[i].old)
      group.push_back(&plan.changes[i++]);
    if (!plan.reset)
      for (const ServiceChange* c : group) ports_.Add(c->new_entries);
    absl::Status st = SyncPorts();  // a new frontend's port before the frontend
    const int before = writer_.stats().writes + writer_.stats().deletes;
    if (st.ok()) st = group.size() > 1 ? writer_.WriteAdditions(group) : writer_.Write(*group.front(), prior);
    if (!st.ok() && group.size() == 1 && group.front()->neu)
      st = Annotate(st, absl::StrCat("service ", group.front()->neu->frontend.ToString()));
    if (!st.ok() && mode == RunMode::kRestore) return st;
    for (const ServiceChange* c : group) {
      // A group half written is taken as written, then undone with those before it.
      planner_.Commit(*c, MonotonicMs());
      ports_.Remove(c->old_entries);
      done.push_back(c);
      // A service declared as it was has nothing new to store.
      if (!(c->old && c->neu && *c->old == *c->neu)) touched_.push_back(c->neu ? c->neu->id : c->old->id);
      if (rs && st.ok()) {
        rs->added += !c->old;
        rs->removed += !c->neu;
        rs->changed += c->old && c->neu && writer_.stats().writes + writer_.stats().deletes != before;
      }
    }
    if (!st.ok()) return RollBack(done, st);
  }
  if (absl::Status st = SyncPorts(); !st.ok()) return RollBack(done, st);  // ports no frontend has now
  if (rs) rs->write_ms = MsSince(t0);
  t0 = std::chrono::steady_clock::now();
  if (mode == RunMode::kCommit && on_commit_ && !touched_.empty())
    if (absl::Status st = on_commit_(touched_); !st.ok()) return RollBack(done, st);
  if (rs) rs->commit_ms = MsSince(t0);
  t0 = std::chrono::steady_clock::now();
  for (const ServiceChange* c : done) NotifyRemoved(c->old, c->removed);
  if (rs) rs->flows_ms = MsSince(t0);
  return absl::OkStatus();
}

// Newest first, each change's undo is written and taken back by the
// planner: the maps and the declared set are as before the change, the
// backends it removed are in use again and those it added retire.
absl::Status ServiceManager::RollBack(const std::vector<const ServiceChange*>& done, const absl::Status& why) {
  for (auto it = done.rbegin(); it != done.rend(); ++it) {
    ServiceChange u = planner_.Undo(**it);
    ports_.Add(u.new_entries);
    // Each key holds its value before or after the change: an entry equal
    // in both is right either way, the others are written.
    absl::Status st = SyncPorts();
    if (st.ok()) st = writer_.Write(u, Prior::kOld);
    if (!st.ok()) {
      needs_restore_ = true;
      return Annotate(why, absl::StrCat("rolling the maps back failed too (", st.message(),
                                        "); they are written again from the stored state"));
    }
    planner_.Revert(**it, u, MonotonicMs());
    ports_.Remove(u.old_entries);
    NotifyRemoved(u.old, u.removed);
  }
  (void)SyncPorts();  // a port left set only costs a lookup
  touched_.clear();
  return why;
}

void ServiceManager::NotifyRemoved(const std::optional<Service>& old, const std::vector<Backend>& removed) {
  if (old && !removed.empty() && on_removed_) on_removed_(old->id, old->frontend.proto, removed);
}

void ServiceManager::Begin() {
  writer_.ResetStats();
  touched_.clear();
}

absl::Status ServiceManager::SyncPorts() {
  if (!ports_.dirty()) return absl::OkStatus();
  TND_RETURN_IF_ERROR(writer_.WritePorts(ports_.bitmap()));
  ports_.Written();
  return absl::OkStatus();
}

// After a change (or its undo) wrote anything: cached flow paths go.
void ServiceManager::End() {
  if (writer_.stats().writes + writer_.stats().deletes > 0) writer_.BumpGeneration();
}

absl::StatusOr<SyncStats> ServiceManager::Restore(std::vector<Service> services) {
  Begin();
  absl::Cleanup end = [this] { End(); };
  TND_ASSIGN_OR_RETURN(Plan plan, planner_.Restore(std::move(services)));
  // Every entry is compared with the tables, read whole once.
  absl::Status st = writer_.CacheTables();
  if (st.ok()) st = Run(plan, RunMode::kRestore);
  if (st.ok()) st = writer_.RemoveStale(planner_.services());
  writer_.UncacheTables();
  TND_RETURN_IF_ERROR(st);
  needs_restore_ = false;
  return writer_.stats();
}

absl::StatusOr<ReplaceStats> ServiceManager::Replace(std::vector<Service> desired) {
  Begin();
  absl::Cleanup end = [this] { End(); };
  auto t0 = std::chrono::steady_clock::now();
  TND_ASSIGN_OR_RETURN(Plan plan, planner_.Replace(std::move(desired)));
  ReplaceStats rs;
  rs.plan_ms = MsSince(t0);
  TND_RETURN_IF_ERROR(Run(plan, RunMode::kCommit, &rs));
  rs.writes = writer_.stats().writes;
  rs.deletes = writer_.stats().deletes;
  return rs;
}

// One service's change: planned (timed), then written and committed; the
// plan, for the service before or after.
absl::StatusOr<Plan> ServiceManager::RunOne(const std::function<absl::StatusOr<Plan>()>& make) {
  Begin();
  absl::Cleanup end = [this] { End(); };
  auto t0 = std::chrono::steady_clock::now();
  TND_ASSIGN_OR_RETURN(Plan plan, make());
  last_run_ = ReplaceStats{};
  last_run_.plan_ms = MsSince(t0);
  TND_RETURN_IF_ERROR(Run(plan, RunMode::kCommit, &last_run_));
  return plan;
}

absl::StatusOr<Service> ServiceManager::Add(Service s) {
  TND_ASSIGN_OR_RETURN(Plan plan, RunOne([&] { return planner_.Add(std::move(s)); }));
  return *plan.changes.front().neu;
}

absl::StatusOr<Service> ServiceManager::Update(ServiceId id, const ServiceUpdate& u) {
  TND_ASSIGN_OR_RETURN(Plan plan, RunOne([&] { return planner_.Update(id, u); }));
  return *plan.changes.front().neu;
}

absl::StatusOr<Service> ServiceManager::Delete(ServiceId id) {
  TND_ASSIGN_OR_RETURN(Plan plan, RunOne([&] { return planner_.Delete(id); }));
  return *plan.changes.front().old;
}

absl::StatusOr<int> ServiceManager::RefreshPlacement(const std::function<bool(const IpAddr&)>& affected) {
  Begin();
  absl::Cleanup end = [this] { End(); };
  Plan plan = planner_.Placement(affected);
  // A write that fails undoes the whole refresh (the caller retries).
  TND_RETURN_IF_ERROR(Run(plan, RunMode::kUndo));
  return static_cast<int>(plan.changes.size());
}

absl::StatusOr<int> ServiceManager::SetNodeAddresses(std::vector<IpAddr> addresses) {
  Begin();
  absl::Cleanup end = [this] { End(); };
  TND_ASSIGN_OR_RETURN(Plan plan, planner_.NodeAddresses(std::move(addresses)));
  TND_RETURN_IF_ERROR(Run(plan, RunMode::kUndo));
  return static_cast<int>(plan.changes.size());
}

std::vector<Service> ServiceManager::List() const {
  std::vector<Service> out;
  out.reserve(planner_.services().size());
  for (const auto& [id, s] : planner_.services()) out.push_back(s);
  return out;
}

// Removed backends whose grace period is over leave the backend map; one
// that cannot be deleted now is tried again at the next flush.
int ServiceManager::FlushRetiredBackends(bool all) {
  int n = 0;
  for (uint32_t id : planner_.RetiredDue(MonotonicMs(), all)) {
    auto gone = writer_.DeleteBackend(id);
    if (!gone.ok()) {
      TND_LOG_WARN("removing backend ", id, ": ", gone.status().message());
      continue;
    }
    n += *gone;
    planner_.ForgetRetired(id);
  }
  if (n) writer_.BumpGeneration();
  return n;
}

}  // namespace tendril
