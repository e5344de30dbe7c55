// Services: the service manager's start (maps restored from the desired
// state) and the service.* API.
#include <malloc.h>

#include <chrono>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "agent/agent.h"
#include "common/log.h"
#include "common/status.h"
#include "agent/json_tape.h"
#include "lb/service_json.h"
#include "lb/service_json_read.h"
#include "maps/abi.h"

namespace tendril {
namespace {
std::string Ms2(double ms) { return absl::StrFormat("%.2f", ms); }
}  // namespace

absl::Status Agent::StartServices(const std::string& object_path, const NodeFacts& facts) {
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path)));
  host_obj_.emplace(std::move(obj));
  // The object has just pinned (or reused) every map below under the root.
  TND_ASSIGN_OR_RETURN(CtMap ct4, (PinnedMap<tnd_ct_key, tnd_ct_val>(TND_MAP_CT_V4)));
  TND_ASSIGN_OR_RETURN(CtMap ct6, (PinnedMap<tnd_ct_key, tnd_ct_val>(TND_MAP_CT_V6)));
  TND_ASSIGN_OR_RETURN(NatMap nat4, (PinnedMap<tnd_nat_key, tnd_nat_val>(TND_MAP_NAT_V4)));
  TND_ASSIGN_OR_RETURN(NatMap nat6, (PinnedMap<tnd_nat_key, tnd_nat_val>(TND_MAP_NAT_V6)));
  ct4_ = std::make_unique<CtMap>(std::move(ct4));
  ct6_ = std::make_unique<CtMap>(std::move(ct6));
  nat4_ = std::make_unique<NatMap>(std::move(nat4));
  nat6_ = std::make_unique<NatMap>(std::move(nat6));
  TND_ASSIGN_OR_RETURN(LbMaps maps, OpenLbMaps(paths_.root(), seams_.map_ops));
  NodeView node;
  device_ifindexes_.clear();
  for (const DeviceFacts& d : facts.devices) device_ifindexes_.push_back(d.ifindex);
  node.addresses = NodePortAddresses(facts);
  node.place = [this](const IpAddr& ip) { return PlaceOf(ip); };
  node.place_all = [this](const std::vector<IpAddr>& ips) { return PlacesOf(ips); };
  if (k8s_) node.name = k8s_->node_name();
  ServiceLimits limits{cfg_.max_backends_per_service, 4096, cfg_.node_port_min, cfg_.node_port_max,
                       cfg_.maglev_max_services, cfg_.lb_service_map_max, cfg_.lb_backend_map_max,
                       cfg_.lb_revnat_map_max};
  services_ = std::make_unique<ServiceManager>(std::move(maps), limits, cfg_.maglev_table_size, std::move(node));
  services_->OnBackendsRemoved([this](ServiceId id, L4Proto proto, const std::vector<Backend>& removed) {
    DeleteFlowsOf(id, proto, removed);
  });
  services_->OnNewHealthPort([this](uint16_t port) { return CheckHealthPortFree(port); });
  services_->OnCommit([this](const std::vector<ServiceId>& touched) { return PersistServices(touched); });
  // Devices and services are in the maps before any program sees a packet.
  TND_RETURN_IF_ERROR(SyncDevices(facts));
  TND_ASSIGN_OR_RETURN(SyncStats st, services_->Restore(std::move(desired_.services)));
  desired_.services = {};  // the service manager holds them from here on
  malloc_trim(0);          // the restore's copies of the tables are freed: return them to the system
  TND_LOG_INFO("services restored: ", services_->size(), " services, ", st.writes, " map writes, ", st.deletes,
               " stale entries removed");
  return absl::OkStatus();
}

// A change's services, stored once its writes are done; an error here has
// the service manager undo them in the maps.
absl::Status Agent::PersistServices(const std::vector<ServiceId>& touched) {
  StateChange c;
  for (ServiceId id : touched) {
    if (const Service* s = services_->Get(id))
      c.put_services.push_back(*s);
    else
      c.drop_services.push_back(id);
  }
  return Annotate(store_->Commit(c), "persist desired state (maps rolled back)");
}

// An undo that could not be written leaves the maps between two states:
// they are written again from the store (which holds the services as
// before the change), now and on the timer until that works.
void Agent::RestoreStoredServicesIfNeeded() {
  if (!services_ || !services_->needs_restore()) return;
  auto stored = store_->Load();
  auto r = stored.ok() ? services_->Restore(std::move(stored->services)) : stored.status();
  if (!r.ok()) {
    TND_LOG_ERROR("writing the stored services again: ", r.status().message());
    return;
  }
  TND_LOG_INFO("services written again from the stored state (", r->writes, " writes, ", r->deletes, " deletes)");
  SyncHealthAll();
}

absl::StatusOr<ServiceId> Agent::ServiceIdFromArgs(const nlohmann::json& a) const {
  if (a.contains("id")) {
    if (!a["id"].is_number_integer() || a["id"].get<int64_t>() < 1 || a["id"].get<int64_t>() > UINT32_MAX)
      return absl::InvalidArgumentError("service id must be a number in 1-4294967295");
    ServiceId id = static_cast<ServiceId>(a["id"].get<int64_t>());
    if (!services_->Get(id)) return absl::NotFoundError(absl::StrCat("no service with id ", id));
    return id;
  }
  if (a.contains("frontend") && a["frontend"].is_string()) {
    TND_ASSIGN_OR_RETURN(Frontend f, ParseFrontend(a["frontend"].get<std::string>()));
    return services_->IdOf(f);
  }
  return absl::InvalidArgumentError("give a service id or a frontend");
}

namespace {

absl::Status NoOwner(const Service& s) {
  if (s.owner.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(s.frontend.ToString(), ": \"owner\" is set by the agent (services "
                                                 "of the Kubernetes cluster come from its API server)"));
}

}  // namespace

absl::Status Agent::NotClusterOwned(ServiceId id) const {
  const Service* s = services_->Get(id);
  if (!s || s->owner.empty()) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat("service ", id, " ", s->frontend.ToString(), " is Kubernetes's (",
                                                    s->owner, "): it follows the API server; change it there"));
}

std::vector<Service> Agent::ServicesOf(bool cluster) const {
  std::vector<Service> out;
  for (const auto& [id, s] : services_->services())
    if (s.owner.empty() != cluster) out.push_back(s);
  return out;
}

absl::StatusOr<nlohmann::json> Agent::ServiceAdd(const nlohmann::json& a) {
  if (!a.contains("service")) return absl::InvalidArgumentError("missing argument \"service\"");
  TND_ASSIGN_OR_RETURN(Service s, ServiceFromJson(a["service"]));
  TND_RETURN_IF_ERROR(NoOwner(s));
  auto added = services_->Add(s);
  RestoreStoredServicesIfNeeded();
  if (!added.ok()) return added.status();
  SyncHealth(services_->last_touched());
  TND_LOG_INFO("service ", added->id, " ", added->frontend.ToString(), " added with ",
               added->backends.size(), " backends (", services_->last_stats().writes, " map writes)");
  return ServiceToJson(*added);
}

absl::StatusOr<nlohmann::json> Agent::ServiceApply(const nlohmann::json& a) {
  const auto t0 = std::chrono::steady_clock::now();
  TND_ASSIGN_OR_RETURN(std::vector<Service> desired, ServicesFromJsonValue(a));
  return ApplyServices(std::move(desired), t0);
}

absl::StatusOr<nlohmann::json> Agent::ServiceApplyTape(simdjson::dom::element a) {
  const auto t0 = std::chrono::steady_clock::now();
  TND_ASSIGN_OR_RETURN(std::vector<Service> desired, ServicesFromJsonValue(a));
  return ApplyServices(std::move(desired), t0);
}

absl::StatusOr<nlohmann::json> Agent::ApplyServices(std::vector<Service> desired,
                                                    std::chrono::steady_clock::time_point t0) {
  const double parse_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  // An apply declares the API's services: the cluster's stay as they are,
  // and their frontends are not the API's to take.
  std::set<Frontend> cluster;
  for (const Service& s : ServicesOf(true)) cluster.insert(s.frontend);
  for (const Service& s : desired) {
    TND_RETURN_IF_ERROR(NoOwner(s));
    if (cluster.count(s.frontend))
      return absl::FailedPreconditionError(
          absl::StrCat(s.frontend.ToString(), " is a Kubernetes service's frontend: nothing was applied"));
  }
  for (Service& s : ServicesOf(true)) desired.push_back(std::move(s));
  // Replace checks everything before it writes; a kernel or store error
  // half way puts the previous set back.
  auto rs = services_->Replace(std::move(desired));
  RestoreStoredServicesIfNeeded();
  if (!rs.ok()) return rs.status();
  SyncHealth(services_->last_touched());
  TND_LOG_INFO("services applied: ", services_->size(), " declared (", rs->added, " added, ", rs->changed,
               " changed, ", rs->removed, " removed; ", rs->writes, " map writes, ", rs->deletes,
               " deletes; ms: decode ", absl::StrFormat("%.1f", parse_ms), ", plan ", absl::StrFormat("%.1f", rs->plan_ms),
               ", write ", absl::StrFormat("%.1f", rs->write_ms), ", store ", absl::StrFormat("%.1f", rs->commit_ms), ")");
  return nlohmann::json{{"services", services_->size()}, {"added", rs->added}, {"changed", rs->changed},
                        {"removed", rs->removed}, {"map_writes", rs->writes}, {"map_deletes", rs->deletes}};
}

absl::StatusOr<nlohmann::json> Agent::ServiceUpdate(const nlohmann::json& a) {
  const auto t0 = std::chrono::steady_clock::now();
  TND_ASSIGN_OR_RETURN(ServiceId id, ServiceIdFromArgs(a));
  TND_RETURN_IF_ERROR(NotClusterOwned(id));
  TND_ASSIGN_OR_RETURN(tendril::ServiceUpdate u, ServiceUpdateFromJson(a));
  auto updated = services_->Update(id, u);
  RestoreStoredServicesIfNeeded();
  if (!updated.ok()) return updated.status();
  SyncHealth(services_->last_touched());
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  TND_LOG_INFO("service ", id, " updated (", services_->last_stats().writes, " map writes, ",
               services_->last_stats().deletes, " deletes; ms: plan ", Ms2(services_->last_run().plan_ms), ", write ",
               Ms2(services_->last_run().write_ms), ", store ", Ms2(services_->last_run().commit_ms), ", flows ",
               Ms2(services_->last_run().flows_ms), ", all ", Ms2(ms), ")");
  return ServiceToJson(*updated);
}

absl::StatusOr<nlohmann::json> Agent::ServiceDelete(const nlohmann::json& a) {
  TND_ASSIGN_OR_RETURN(ServiceId id, ServiceIdFromArgs(a));
  TND_RETURN_IF_ERROR(NotClusterOwned(id));
  auto gone = services_->Delete(id);
  RestoreStoredServicesIfNeeded();
  if (!gone.ok()) return gone.status();
  SyncHealth(services_->last_touched());
  TND_LOG_INFO("service ", id, " ", gone->frontend.ToString(), " deleted");
  return ServiceToJson(*gone);
}

absl::StatusOr<nlohmann::json> Agent::ServiceGet(const nlohmann::json& a) const {
  TND_ASSIGN_OR_RETURN(ServiceId id, ServiceIdFromArgs(a));
  return ServiceToJson(*services_->Get(id));
}

nlohmann::json Agent::ServiceList() const {
  nlohmann::json out = nlohmann::json::array();
  if (services_)
    for (const auto& [id, s] : services_->services()) out.push_back(ServiceToJson(s));
  return out;
}

}  // namespace tendril
