// The planner's operations: a change checked whole and turned into the
// service changes the writer applies. Ports and conflicts are in
// planner_ports.cc, the node's view in planner_node.cc.
#include "lb/planner.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "lb/maglev.h"

namespace tendril {
namespace {

std::string MaglevName(const Service& s, const Backend& b) {
  return absl::StrCat(b.Address(), "/", L4ProtoName(s.frontend.proto));
}

std::vector<uint32_t> MaglevOf(const Service& s, uint32_t m) {
  std::vector<MaglevBackend> mb;
  const BackendSets sets = SelectBackendSets(s);
  for (size_t i = 0; i < s.backends.size(); ++i)
    if (sets.cluster[i]) mb.push_back({s.backends[i].id, MaglevName(s, s.backends[i]), s.backends[i].weight});
  return MaglevTable(mb, m);
}

}  // namespace

ServiceChange ServicePlanner::Added(Service neu) const {
  ServiceChange c;
  c.new_entries = Entries(neu);
  if (neu.algorithm == Algorithm::kMaglev) c.maglev = MaglevOf(neu, maglev_size_);
  c.neu = std::move(neu);
  return c;
}

ServiceChange ServicePlanner::Change(const Service* old, const Service* neu) const {
  ServiceChange c = neu ? Added(*neu) : ServiceChange{};
  if (old) {
    c.old = *old;
    c.old_entries = Entries(*old);
    std::set<uint32_t> still;
    if (neu)
      for (const Backend& b : neu->backends) still.insert(b.id);
    for (const Backend& b : old->backends)
      if (!still.count(b.id)) c.removed.push_back(b);
  }
  return c;
}

ServiceChange ServicePlanner::Undo(const ServiceChange& c) const {
  ServiceChange u = Change(c.neu ? &*c.neu : nullptr, c.old ? &*c.old : nullptr);
  u.old_entries = c.new_entries;  // as written, whatever the node's addresses are now
  u.new_entries = c.old_entries;
  return u;  // removed: the backends `c` added, retired like any other
}

void ServicePlanner::Revert(const ServiceChange& c, const ServiceChange& u, int64_t now_ms) {
  Commit(u, now_ms);
  for (const Backend& b : c.removed) retired_.erase(b.id);  // the old version holds them again
}

void ServicePlanner::Begin(const Plan& p) {
  if (p.reset) {
    services_.clear();
    index_.Clear();
    retired_.clear();  // the writer removes what no declared service names
  }
  if (p.node_addresses) node_.addresses = *p.node_addresses;
}

void ServicePlanner::Commit(const ServiceChange& c, int64_t now_ms) {
  if (c.old) {
    index_.Remove(*c.old, c.old_entries);
    if (!c.neu || c.neu->id != c.old->id) services_.erase(c.old->id);
  }
  if (c.neu) {
    services_[c.neu->id] = *c.neu;
    index_.Add(*c.neu, c.new_entries);
  }
  for (const Backend& b : c.removed) retired_.emplace(b.id, now_ms);
}

std::vector<uint32_t> ServicePlanner::RetiredDue(int64_t now_ms, bool all) const {
  std::vector<uint32_t> due;
  for (const auto& [id, t] : retired_)
    if (all || t + kBackendGraceMs <= now_ms) due.push_back(id);
  return due;
}

std::optional<int64_t> ServicePlanner::NextRetiredDeadlineMs() const {
  std::optional<int64_t> next;
  for (const auto& [id, t] : retired_)
    if (!next || t + kBackendGraceMs < *next) next = t + kBackendGraceMs;
  return next;
}

const Service* ServicePlanner::Get(ServiceId id) const {
  auto it = services_.find(id);
  return it == services_.end() ? nullptr : &it->second;
}

absl::StatusOr<ServiceId> ServicePlanner::IdOf(const Frontend& f) const {
  if (std::optional<ServiceId> id = index_.FrontendOwner(f)) return *id;
  return absl::NotFoundError(absl::StrCat("no service with frontend ", f.ToString()));
}

namespace {

// Gives backend ids during one plan: a backend keeps the id it had in the
// service's previous version (same address and port); the others get ids
// above the highest in use, wrapping to the lowest free, never one in use
// before the plan (`pool`, retiring ones included) or given during it.
class BackendIdGiver {
 public:
  BackendIdGiver(const IdPool* pool, uint32_t max) : pool_(pool), max_(max), next_(pool ? pool->Next() : 1) {}
  void Keep(uint32_t id) {
    taken_.insert(id);
    if (id >= next_) next_ = id + 1;
  }
  void Assign(Service& s, const Service* previous) {
    for (Backend& b : s.backends) {
      if (!b.id && previous)
        for (const Backend& p : previous->backends)
          if (p.ip == b.ip && p.port == b.port) b.id = p.id;
      if (b.id) Keep(b.id);
    }
    for (Backend& b : s.backends)
      if (!b.id) b.id = Give();
  }

 private:
  bool Free(uint32_t id) const { return !(pool_ && pool_->InUse(id)) && !taken_.count(id); }
  uint32_t Give() {
    for (uint32_t tries = 0; tries <= max_; ++tries, ++next_) {
      if (next_ == 0 || next_ > max_) next_ = 1;  // wrapped: lowest free
      if (Free(next_)) {
        taken_.insert(next_);
        return next_++;
      }
    }
    return 0;  // full: the capacity check refuses such a plan first
  }

  const IdPool* pool_;
  uint32_t max_;
  uint32_t next_;
  std::set<uint32_t> taken_;
};

}  // namespace

void ServicePlanner::ForgetRetired(uint32_t backend_id) {
  if (retired_.erase(backend_id)) index_.ReleaseBackend(backend_id);
}

// New services take ids no current service has, so that conntrack entries
// of a removed service never translate to a new one; only when those run out
// are the ids of removed services reused.
void ServicePlanner::GiveNewIds(std::vector<Service>& desired) const {
  std::set<ServiceId> kept;
  for (const Service& s : desired)
    if (s.id) kept.insert(s.id);
  uint32_t cand = 1;
  std::vector<ServiceId> reusable;
  for (const auto& [id, s] : services_)
    if (!kept.count(id)) reusable.push_back(id);
  size_t reuse = 0;
  for (Service& s : desired) {
    if (s.id) continue;
    while (cand <= limits_.service_ids && services_.count(cand)) ++cand;
    s.id = cand <= limits_.service_ids ? cand++ : reusable.at(reuse++);
  }
}

// The maps must hold the new set next to what is being removed (removals
// are written first, but retired backends stay for a while).
absl::Status ServicePlanner::CheckMapCapacity(const std::map<ServiceId, Service>& next) const {
  size_t entries[2] = {0, 0}, backends = retired_.size();
  for (const auto& [id, s] : next) {
    for (const FrontendEntry& e : Entries(s)) entries[e.frontend.ip.family == Family::kV4 ? 0 : 1] += 1 + e.slots.size();
    backends += s.backends.size();
  }
  for (const auto& [id, s] : services_)
    if (!next.count(id)) backends += s.backends.size();  // retired by this change
  const uint32_t svc_cap = limits_.service_map_entries, be_cap = limits_.backend_map_entries;
  if (entries[0] > svc_cap || entries[1] > svc_cap)
    return absl::ResourceExhaustedError(absl::StrCat("the services need ", std::max(entries[0], entries[1]),
                                                     " service map entries (frontends + backend slots) in one "
                                                     "family; lb-service-map-max is ", svc_cap));
  if (backends > be_cap)
    return absl::ResourceExhaustedError(absl::StrCat("the services need ", backends,
                                                     " backend map entries (removed ones stay ",
                                                     kBackendGraceMs, " ms); lb-backend-map-max is ", be_cap));
  return absl::OkStatus();
}

// One service's change against what the maps hold beside it: its entries
// replace its previous version's, its new backends come on top of every
// backend id in use (retiring ones included).
absl::Status ServicePlanner::CheckSingleCapacity(const Service& s, const Service* previous) const {
  const std::vector<FrontendEntry> mine = Entries(s);
  const std::vector<FrontendEntry> had = previous ? Entries(*previous) : std::vector<FrontendEntry>{};
  for (Family f : {Family::kV4, Family::kV6}) {
    const int i = f == Family::kV4 ? 0 : 1;
    const size_t need = index_.svc_entries(i) - SvcEntries(had, f) + SvcEntries(mine, f);
    if (need > limits_.service_map_entries)
      return absl::ResourceExhaustedError(absl::StrCat("the services would need ", need,
                                                       " service map entries (frontends + backend slots) in one "
                                                       "family; lb-service-map-max is ", limits_.service_map_entries));
  }
  size_t fresh = 0;
  for (const Backend& b : s.backends) {
    bool kept = false;
    if (previous)
      for (const Backend& p : previous->backends) kept = kept || (p.ip == b.ip && p.port == b.port);
    fresh += !kept;
  }
  if (index_.backend_ids().size() + fresh > limits_.backend_map_entries)
    return absl::ResourceExhaustedError(absl::StrCat("the services would need ", index_.backend_ids().size() + fresh,
                                                     " backend map entries (removed ones stay ", kBackendGraceMs,
                                                     " ms); lb-backend-map-max is ", limits_.backend_map_entries));
  return absl::OkStatus();
}

absl::Status ServicePlanner::Prepare(Service& s, const Service* previous) const {
  Place(s, previous);
  TND_RETURN_IF_ERROR(AllocatePorts(s, previous));
  TND_RETURN_IF_ERROR(CheckConflicts(s, s.id));
  if (s.algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(CheckMaglevCapacity(MaglevServices(s.id) + 1));
  TND_RETURN_IF_ERROR(CheckNewHealthPorts({&s}));
  TND_RETURN_IF_ERROR(CheckSingleCapacity(s, previous));
  BackendIdGiver(&index_.backend_ids(), limits_.backend_map_entries).Assign(s, previous);
  return absl::OkStatus();
}

absl::StatusOr<Plan> ServicePlanner::Add(Service s) const {
  TND_RETURN_IF_ERROR(ValidateService(s, limits_));
  if (s.id != 0 && services_.count(s.id))
    return absl::AlreadyExistsError(absl::StrCat("service id ", s.id, " is taken by ",
                                                 services_.at(s.id).frontend.ToString()));
  TND_RETURN_IF_ERROR(CheckConflicts(s, 0));
  for (Backend& b : s.backends) b.id = 0;  // ids are the agent's to give
  if (s.id == 0) s.id = index_.service_ids().Lowest();
  if (s.id == 0)
    return absl::ResourceExhaustedError(
        absl::StrCat("all ", limits_.service_ids, " service ids are in use (lb-revnat-map-max)"));
  TND_RETURN_IF_ERROR(Prepare(s, nullptr));
  return Plan{false, std::nullopt, {Change(nullptr, &s)}};
}

namespace {

// `old` with the update's fields applied (backend states looked up by
// address and port).
absl::StatusOr<Service> Updated(const Service& old, const ServiceUpdate& u) {
  Service neu = old;
  if (u.backends) {
    neu.backends.clear();
    for (Backend b : *u.backends) {
      b.id = 0;
      for (const Backend& p : old.backends)
        if (p.ip == b.ip && p.port == b.port) b.state = p.state;  // keep what was set on it
      neu.backends.push_back(b);
    }
  }
  for (const BackendStateChange& c : u.states) {
    bool found = false;
    for (Backend& b : neu.backends)
      if (b.ip == c.ip && b.port == c.port) {
        b.state = c.state;
        found = true;
      }
    if (!found)
      return absl::NotFoundError(absl::StrCat("service ", old.id, " has no backend ", HostPort(c.ip, c.port)));
  }
  if (u.algorithm) neu.algorithm = *u.algorithm;
  if (u.affinity_timeout) neu.affinity_timeout = *u.affinity_timeout;
  if (u.traffic_policy) neu.traffic_policy = *u.traffic_policy;
  if (u.internal_traffic_policy) neu.internal_traffic_policy = *u.internal_traffic_policy;
  if (!neu.ExternalLocal()) neu.health_check_port = 0;
  if (u.source_ranges) neu.source_ranges = *u.source_ranges;
  if (u.external_ips) neu.external_ips = *u.external_ips;
  if (u.dsr) neu.dsr = *u.dsr;
  return neu;
}

}  // namespace

absl::StatusOr<Plan> ServicePlanner::Update(ServiceId id, const ServiceUpdate& u) const {
  const Service* old = Get(id);
  if (!old) return absl::NotFoundError(absl::StrCat("no service with id ", id));
  TND_ASSIGN_OR_RETURN(Service neu, Updated(*old, u));
  TND_RETURN_IF_ERROR(ValidateService(neu, limits_));
  TND_RETURN_IF_ERROR(Prepare(neu, old));
  return Plan{false, std::nullopt, {Change(old, &neu)}};
}

absl::StatusOr<Plan> ServicePlanner::Delete(ServiceId id) const {
  const Service* old = Get(id);
  if (!old) return absl::NotFoundError(absl::StrCat("no service with id ", id));
  return Plan{false, std::nullopt, {Change(old, nullptr)}};
}

namespace {

// Whether `d`, as a request declares it, is `cur`: the fields the planner
// derives (ids, backend placement, ports left for it to choose) are taken
// from `cur` for the comparison (and the ports put back when it differs).
bool DeclaredAs(Service& d, const Service& cur) {
  if (d.backends.size() != cur.backends.size()) return false;
  for (size_t i = 0; i < d.backends.size(); ++i) {
    Backend& b = d.backends[i];
    const Backend& c = cur.backends[i];
    if (b.ip != c.ip || b.port != c.port) return false;
    b.id = c.id;  // what the full plan gives them too
    b.place = c.place;
  }
  const uint16_t node_port = d.node_port, health = d.health_check_port;
  d.id = cur.id;
  if (!node_port) d.node_port = cur.node_port;
  if (!health) d.health_check_port = cur.health_check_port;
  if (d == cur) return true;
  d.node_port = node_port;
  d.health_check_port = health;
  return false;
}

}  // namespace

// A set declared as it is, or a part of it (a controller's periodic full
// sync): every desired service is its declared one, so the plan is the
// removals alone and nothing needs checking (taking services away cannot
// make a conflict). nullopt: a full plan is needed.
std::optional<Plan> ServicePlanner::RemovalsOnly(std::vector<Service>& desired) const {
  if (desired.size() > services_.size()) return std::nullopt;
  absl::flat_hash_set<ServiceId> kept;
  kept.reserve(desired.size());
  for (Service& d : desired) {
    std::optional<ServiceId> id = index_.FrontendOwner(d.frontend);
    const Service* cur = id ? Get(*id) : nullptr;
    if (!cur || !DeclaredAs(d, *cur) || !kept.insert(*id).second) return std::nullopt;
  }
  Plan plan;
  for (const auto& [id, s] : services_)
    if (!kept.count(id)) plan.changes.push_back(Change(&s, nullptr));
  return plan;
}

absl::StatusOr<Plan> ServicePlanner::Replace(std::vector<Service> desired) const {
  if (std::optional<Plan> removals = RemovalsOnly(desired)) return std::move(*removals);
  // Everything is checked and every id chosen before the plan is returned.
  std::map<Frontend, ServiceId> current;
  for (const auto& [id, s] : services_) current.emplace(s.frontend, id);
  std::set<Frontend> seen;
  for (Service& s : desired) {
    TND_RETURN_IF_ERROR(Annotate(ValidateService(s, limits_), absl::StrCat("service ", s.frontend.ToString())));
    if (!seen.insert(s.frontend).second)
      return absl::InvalidArgumentError(absl::StrCat("service ", s.frontend.ToString(), " is declared twice"));
    for (Backend& b : s.backends) b.id = 0;
    auto it = current.find(s.frontend);
    s.id = it == current.end() ? 0 : it->second;  // a declared frontend keeps its id
  }
  if (desired.size() > limits_.service_ids)
    return absl::ResourceExhaustedError(absl::StrCat(desired.size(), " services declared; lb-revnat-map-max allows ",
                                                     limits_.service_ids));
  GiveNewIds(desired);
  std::map<ServiceId, Service> next;
  for (Service& s : desired) next.emplace(s.id, std::move(s));
  std::vector<std::pair<Service*, const Service*>> place;
  for (auto& [id, s] : next) place.emplace_back(&s, Get(id));
  Place(place);
  TND_RETURN_IF_ERROR(AllocatePorts(next));
  TND_RETURN_IF_ERROR(CheckConflicts(next, node_.addresses));
  size_t maglev = 0;
  std::vector<const Service*> all;
  for (const auto& [id, s] : next) {
    maglev += s.algorithm == Algorithm::kMaglev;
    all.push_back(&s);
  }
  TND_RETURN_IF_ERROR(CheckMaglevCapacity(maglev));
  TND_RETURN_IF_ERROR(CheckNewHealthPorts(all));
  TND_RETURN_IF_ERROR(CheckMapCapacity(next));
  BackendIdGiver ids(&index_.backend_ids(), limits_.backend_map_entries);
  for (auto& [id, s] : next) ids.Assign(s, Get(id));

  // Removed services first (frees their frontends), then changed, then new.
  Plan plan;
  plan.changes.reserve(next.size());
  for (const auto& [id, s] : services_)
    if (!next.count(id)) plan.changes.push_back(Change(&s, nullptr));
  for (const auto& [id, s] : next)  // a service declared as it was needs no write
    if (const Service* prev = Get(id); prev && !(*prev == s)) plan.changes.push_back(Change(prev, &s));
  for (const auto& [id, s] : next)
    if (!Get(id)) plan.changes.push_back(Change(nullptr, &s));
  return plan;
}

absl::StatusOr<Plan> ServicePlanner::Restore(std::vector<Service> services) const {
  std::map<ServiceId, Service> all;
  for (Service& s : services) {
    TND_RETURN_IF_ERROR(ValidateService(s, limits_));
    if (s.id == 0 || all.count(s.id))
      return absl::DataLossError(absl::StrCat("state: service ", s.frontend.ToString(), " has a bad or duplicate id"));
    if (s.id > limits_.service_ids)
      return absl::FailedPreconditionError(absl::StrCat("service ", s.frontend.ToString(), " has id ", s.id,
                                                        ", above lb-revnat-map-max (", limits_.service_ids,
                                                        "): raise the setting"));
    for (const Backend& b : s.backends)
      if (b.id > limits_.backend_map_entries)
        return absl::FailedPreconditionError(absl::StrCat("service ", s.frontend.ToString(), " has backend id ", b.id,
                                                          ", above lb-backend-map-max (", limits_.backend_map_entries,
                                                          "): raise the setting"));
    all[s.id] = std::move(s);
  }
  std::vector<std::pair<Service*, const Service*>> place;
  for (auto& [id, s] : all) place.emplace_back(&s, nullptr);
  Place(place);
  for (auto& entry : all) {
    // Each keeps the ports it saved; one that has none (a hand-edited state)
    // gets one no other restored service holds.
    const ServiceId id = entry.first;
    Service saved;  // what AllocatePortsWith reads of the service as saved
    saved.type = entry.second.type;
    saved.traffic_policy = entry.second.traffic_policy;
    saved.node_port = entry.second.node_port;
    saved.health_check_port = entry.second.health_check_port;
    TND_RETURN_IF_ERROR(AllocatePortsWith(entry.second, &saved, [&all, id](uint16_t port) {
      for (const auto& [oid, o] : all)
        if (oid != id && (o.node_port == port || o.health_check_port == port)) return true;
      return false;
    }));
  }
  TND_RETURN_IF_ERROR(CheckConflicts(all, node_.addresses));
  TND_RETURN_IF_ERROR(CheckMapCapacity(all));
  BackendIdGiver ids(nullptr, limits_.backend_map_entries);  // only the restored set's ids count
  for (const auto& [id, s] : all)
    for (const Backend& b : s.backends)
      if (b.id) ids.Keep(b.id);
  Plan plan;
  plan.reset = true;
  plan.changes.reserve(all.size());
  for (auto& [id, s] : all) {
    ids.Assign(s, nullptr);
    plan.changes.push_back(Added(std::move(s)));  // `all` is not used after this
  }
  return plan;
}

// An upper bound, O(size of the plan): what is declared now (nothing for a
// restore) plus everything the plan writes, as if nothing it removes went
// first. Backend ids in use include the retiring ones.
MapNeeds ServicePlanner::Needs(const Plan& p) const {
  MapNeeds n;
  if (!p.reset) {
    n.svc_entries[0] = index_.svc_entries(0);
    n.svc_entries[1] = index_.svc_entries(1);
    n.backends = index_.backend_ids().size();
    n.services = index_.service_ids().size();
  }
  for (const ServiceChange& c : p.changes) {
    if (!c.neu) continue;
    n.svc_entries[0] += SvcEntries(c.new_entries, Family::kV4);
    n.svc_entries[1] += SvcEntries(c.new_entries, Family::kV6);
    n.services += !c.old || p.reset;
    for (const Backend& b : c.neu->backends) n.backends += p.reset || !index_.backend_ids().InUse(b.id);
  }
  return n;
}

}  // namespace tendril
