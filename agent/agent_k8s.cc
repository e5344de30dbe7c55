// Following a Kubernetes cluster (agent/k8s_watch.h). After a list (start,
// 410, a failed sync) the whole cluster is mapped (k8s/mapping.h) and the
// declared set made the API's services plus the cluster's in one Replace:
// the planner keeps unchanged services and their ids, writes only what
// differs, and checks everything before the first write. After events,
// only the Services whose Service or EndpointSlices changed are mapped
// again and applied service by service (add, update, delete; a change of
// type or node port is a delete and an add), so a change costs the same at
// any number of services. Each service's change is whole or not at all;
// one that fails makes the next sync a full one. Until both stores have
// listed once nothing is removed: a restarted agent keeps serving the
// stored services.
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/k8s_watch.h"
#include "common/log.h"

namespace tendril {
namespace {

// The same service as declared, ids and placement aside.
bool SameAsDeclared(Service declared, const Service& want) {
  declared.id = 0;
  for (Backend& b : declared.backends) {
    b.id = 0;
    b.place = BackendPlace::kRemote;
  }
  Service w = want;
  w.health_check_port = w.health_check_port ? w.health_check_port : declared.health_check_port;
  return declared == w;
}

tendril::ServiceUpdate UpdateTo(const Service& s) {
  tendril::ServiceUpdate u;
  u.backends = s.backends;
  // A backend list keeps the states its addresses had: the cluster's
  // conditions are given as state changes.
  for (const Backend& b : s.backends) u.states.push_back({b.ip, b.port, b.state});
  u.algorithm = s.algorithm;
  u.affinity_timeout = s.affinity_timeout;
  u.traffic_policy = s.traffic_policy;
  u.internal_traffic_policy = s.internal_traffic_policy;
  u.source_ranges = s.source_ranges;
  u.external_ips = s.external_ips;
  u.dsr = s.dsr;
  return u;
}

}  // namespace

absl::Status Agent::StartK8s() {
  if (!cfg_.K8sEnabled()) return absl::OkStatus();
  TND_ASSIGN_OR_RETURN(k8s_, K8sWatch::Open(cfg_));
  return absl::OkStatus();
}

void Agent::OnK8sChange() {
  if (!k8s_->Drain() && !k8s_->needs_retry()) return;
  if (!k8s_->Synced()) return;  // a partial picture removes nothing
  K8sWatch::Dirty d = k8s_->TakeDirty();
  TND_LOG_DEBUG("kubernetes: change: full ", d.full, ", ", d.services.size(), " services");
  if (d.full || k8s_->needs_retry() || !k8s_synced_once_) {
    SyncK8sFull();
  } else if (!d.services.empty()) {
    SyncK8sServices(d.services);
  }
}

k8s::MapOptions Agent::K8sMapOptions() const {
  k8s::MapOptions o;
  o.ipv4 = cfg_.enable_ipv4;
  o.ipv6 = cfg_.enable_ipv6;
  o.limits = services_->limits();
  return o;
}

// Drops the mapped services whose frontend the API declared (skipped).
void Agent::K8sDropApiFrontends(k8s::Mapped& m) const {
  std::vector<Service> kept;
  for (Service& s : m.services) {
    auto id = services_->IdOf(s.frontend);
    const Service* cur = id.ok() ? services_->Get(*id) : nullptr;
    if (cur && cur->owner.empty()) {
      const std::string key = k8s::ServiceKeyOf(s.owner);
      m.skipped.push_back({"Service " + key, absl::StrCat(s.frontend.ToString(), " is declared through the API"), key});
      continue;
    }
    kept.push_back(std::move(s));
  }
  m.services = std::move(kept);
}

void Agent::SyncK8sFull() {
  const absl::Time t0 = absl::Now();
  k8s::Mapped m = k8s::MapCluster(k8s_->Services(), k8s_->Slices(), K8sMapOptions());
  K8sDropApiFrontends(m);
  std::vector<Service> desired = ServicesOf(false);
  std::map<std::string, std::set<Frontend>> owned;
  for (const Service& s : m.services) owned[k8s::ServiceKeyOf(s.owner)].insert(s.frontend);
  const size_t cluster = m.services.size();
  for (Service& s : m.services) desired.push_back(std::move(s));
  K8sWatch::SyncResult r;
  r.ignored = m.ignored;
  r.skipped = std::move(m.skipped);
  auto rs = services_->Replace(std::move(desired));
  RestoreStoredServicesIfNeeded();
  r.ok = true;
  if (rs.ok()) {
    k8s_owned_ = std::move(owned);
    k8s_refused_.clear();
    SyncHealth(services_->last_touched());
    if (rs->added || rs->changed || rs->removed)
      TND_LOG_INFO("kubernetes: ", cluster, " cluster services (", rs->added, " added, ", rs->changed, " changed, ",
                   rs->removed, " removed; ", rs->writes, " map writes) in ", absl::FormatDuration(absl::Now() - t0));
  } else {
    // Something in the set was refused: Service by Service instead, so that
    // only what is refused stays out (each reported as skipped).
    TND_LOG_WARN("kubernetes: the cluster's services as one set were refused (", rs.status().message(),
                 "); applying them Service by Service");
    k8s_owned_.clear();
    std::set<std::string> keys;
    for (const Service& s : ServicesOf(true)) {
      keys.insert(k8s::ServiceKeyOf(s.owner));
      k8s_owned_[k8s::ServiceKeyOf(s.owner)].insert(s.frontend);
    }
    for (const auto& [key, svc] : k8s_->Services()) keys.insert(key);
    for (const std::string& key : keys) SyncK8sOne(key, r);
  }
  k8s_synced_once_ = true;
  FinishK8sSync(std::move(r), t0, true, {});
}

// One Service's frontends made what the cluster says; false with *error set
// when a change was refused (each frontend's change is whole or not at all;
// the frontends it already changed stay changed).
bool Agent::SyncK8sService(const std::string& key, const std::vector<Service>& want, std::string* error) {
  const std::string owner = k8s::OwnerOf(key);
  std::set<Frontend> now, touched = k8s_owned_[key];
  for (const Service& s : want) {
    now.insert(s.frontend);
    touched.insert(s.frontend);
  }
  absl::Status st = [&]() -> absl::Status {
    for (const Frontend& f : k8s_owned_[key])
      if (!now.count(f))
        if (auto id = services_->IdOf(f); id.ok()) TND_RETURN_IF_ERROR(services_->Delete(*id).status());
    for (const Service& s : want) {
      auto id = services_->IdOf(s.frontend);
      const Service* cur = id.ok() ? services_->Get(*id) : nullptr;
      if (cur && cur->owner == owner && SameAsDeclared(*cur, s)) continue;
      if (cur && cur->owner == owner && cur->type == s.type && cur->node_port == s.node_port &&
          (!s.health_check_port || cur->health_check_port == s.health_check_port)) {
        TND_RETURN_IF_ERROR(services_->Update(*id, UpdateTo(s)).status());
        continue;
      }
      if (cur && cur->owner == owner) TND_RETURN_IF_ERROR(services_->Delete(*id).status());
      TND_RETURN_IF_ERROR(services_->Add(s).status());
    }
    return absl::OkStatus();
  }();
  // What the Service holds now, refused or not.
  std::set<Frontend> held;
  for (const Frontend& f : touched)
    if (auto id = services_->IdOf(f); id.ok())
      if (const Service* cur = services_->Get(*id); cur && cur->owner == owner) held.insert(f);
  if (held.empty()) k8s_owned_.erase(key);
  else k8s_owned_[key] = std::move(held);
  if (!st.ok()) *error = std::string(st.message());
  return st.ok();
}

// Maps and applies one Service; a refusal is reported as skipped and the
// Service retried on the timer.
void Agent::SyncK8sOne(const std::string& key, K8sWatch::SyncResult& r) {
  k8s::Mapped m = k8s::MapCluster(k8s_->ServiceOnly(key), k8s_->SlicesOf(key), K8sMapOptions());
  K8sDropApiFrontends(m);
  TND_LOG_DEBUG("kubernetes: Service ", key, ": ", m.services.size(), " frontends mapped, ",
                k8s_owned_.count(key) ? k8s_owned_.at(key).size() : 0, " held");
  r.ignored += m.ignored;
  for (k8s::Skipped& s : m.skipped) r.skipped.push_back(std::move(s));
  std::string error;
  if (SyncK8sService(key, m.services, &error)) {
    k8s_refused_.erase(key);
  } else {
    r.skipped.push_back({"Service " + key, "refused: " + error, key});
    k8s_refused_.insert(key);
  }
  RestoreStoredServicesIfNeeded();
  SyncHealth(services_->last_touched());
}

void Agent::SyncK8sServices(const std::set<std::string>& keys) {
  const absl::Time t0 = absl::Now();
  K8sWatch::SyncResult r;
  r.ok = true;
  for (const std::string& key : keys) SyncK8sOne(key, r);
  FinishK8sSync(std::move(r), t0, false, keys);
}

void Agent::FinishK8sSync(K8sWatch::SyncResult r, absl::Time t0, bool full, const std::set<std::string>& keys) {
  r.took = absl::Now() - t0;
  for (const auto& [k, fs] : k8s_owned_) r.services += fs.size();
  if (k8s_->pending_since() != absl::InfinitePast()) r.since_change = absl::Now() - k8s_->pending_since();
  k8s_->SyncDone(std::move(r), full, keys);
}

nlohmann::json Agent::K8sStatus() const {
  if (!k8s_) return nullptr;
  return k8s_->Status();
}

}  // namespace tendril
