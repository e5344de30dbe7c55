// Following a Kubernetes cluster: after every change of its Services or
// EndpointSlices (agent/k8s_watch.h), the cluster's services are mapped
// again (k8s/mapping.h) and the declared set made the API's services plus
// those, in one Replace: the planner keeps every unchanged service and its
// ids, writes only what differs, and checks everything before the first
// write (nothing half applied). Until both stores have listed once nothing
// is removed: a restarted agent keeps serving the stored services.
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/k8s_watch.h"
#include "common/log.h"

namespace tendril {

absl::Status Agent::StartK8s() {
  if (!cfg_.K8sEnabled()) return absl::OkStatus();
  TND_ASSIGN_OR_RETURN(k8s_, K8sWatch::Open(cfg_));
  return absl::OkStatus();
}

void Agent::OnK8sChange() {
  if (!k8s_->Drain() && !k8s_->needs_retry()) return;
  if (!k8s_->Synced()) return;  // a partial picture removes nothing
  SyncK8s();
}

void Agent::SyncK8s() {
  const absl::Time t0 = absl::Now();
  k8s::MapOptions o;
  o.ipv4 = cfg_.enable_ipv4;
  o.ipv6 = cfg_.enable_ipv6;
  o.limits = services_->limits();
  k8s::Mapped m = k8s::MapCluster(k8s_->Services(), k8s_->Slices(), o);
  // The API's services keep their frontends: a cluster service that wants
  // one of them is skipped.
  std::vector<Service> desired = ServicesOf(false);
  std::set<Frontend> api;
  for (const Service& s : desired) api.insert(s.frontend);
  size_t cluster = 0;
  for (Service& s : m.services) {
    if (api.count(s.frontend)) {
      m.skipped.push_back({"Service " + s.owner.substr(4),
                           absl::StrCat(s.frontend.ToString(), " is declared through the API")});
      continue;
    }
    desired.push_back(std::move(s));
    cluster++;
  }
  K8sWatch::SyncResult r;
  r.services = cluster;
  r.ignored = m.ignored;
  r.skipped = std::move(m.skipped);
  auto rs = services_->Replace(std::move(desired));
  RestoreStoredServicesIfNeeded();
  r.ok = rs.ok();
  r.took = absl::Now() - t0;
  if (k8s_->pending_since() != absl::InfinitePast()) r.since_change = absl::Now() - k8s_->pending_since();
  if (!rs.ok()) {
    r.error = std::string(rs.status().message());
  } else {
    SyncHealth(services_->last_touched());
    if (rs->added || rs->changed || rs->removed)
      TND_LOG_INFO("kubernetes: ", cluster, " cluster services (", rs->added, " added, ", rs->changed, " changed, ",
                   rs->removed, " removed; ", rs->writes, " map writes) in ", absl::FormatDuration(r.took));
  }
  k8s_->SyncDone(std::move(r));
}

nlohmann::json Agent::K8sStatus() const {
  if (!k8s_) return nullptr;
  return k8s_->Status();
}

}  // namespace tendril
