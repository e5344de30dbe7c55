// Endpoints (pods): bpf_lxc.o loaded and attached to each endpoint's veth,
// the masquerade exemptions, and the endpoint.* API.
#include "agent/agent.h"
#include "common/log.h"
#include "common/status.h"
#include "datapath/attach.h"
#include "datapath/node_maps.h"
#include "maps/abi.h"

namespace tendril {

absl::Status Agent::StartEndpoints(const std::string& object_path) {
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path)));
  lxc_obj_.emplace(std::move(obj));
  TND_ASSIGN_OR_RETURN(int in_fd, lxc_obj_->ProgramFd(kLxcIngressProgram));
  TND_ASSIGN_OR_RETURN(ProgramInfo info, GetProgramInfo(in_fd));
  TND_RETURN_IF_ERROR(lxc_obj_->PinTailCallMaps(paths_.CallsDir(), std::to_string(info.id)));
  TND_RETURN_IF_ERROR(SyncNoMasquerade());
  TND_ASSIGN_OR_RETURN(UniqueFd map_fd, PinnedFd(TND_MAP_ENDPOINTS));
  EndpointManager::Hooks hooks{[this](const Endpoint& e) { return AttachEndpoint(e); },
                               [this](const Endpoint& e) { return DetachEndpoint(e); }, seams_.map_ops};
  endpoints_ = std::make_unique<EndpointManager>(std::move(map_fd), std::move(hooks), cfg_.devices, cfg_.enable_ipv4,
                                                 cfg_.enable_ipv6);
  TND_ASSIGN_OR_RETURN(auto dropped, endpoints_->Restore(desired_.endpoints));
  for (const auto& d : dropped) TND_LOG_WARN("dropped ", d);
  size_t ready = 0;
  for (const Endpoint& e : endpoints_->List()) ready += e.ready ? 1 : 0;
  TND_LOG_INFO("endpoints restored: ", ready, " ready, ", endpoints_->List().size() - ready, " waiting for their device");
  if (!dropped.empty()) TND_RETURN_IF_ERROR(PersistEndpoints());
  // Services were placed before their local endpoints were restored: the
  // backends at those endpoints' addresses are placed again (all of them
  // when some endpoint was dropped).
  std::vector<IpAddr> ips;
  for (const Endpoint& e : endpoints_->List()) ips.insert(ips.end(), e.ips.begin(), e.ips.end());
  if (!dropped.empty() || !ips.empty()) RefreshPlacement(dropped.empty() ? ips : std::vector<IpAddr>{});
  auto w = LinkWatcher::Open();
  if (w.ok()) {
    links_ = std::move(*w);
  } else {
    TND_LOG_WARN("link events: ", w.status().message(), " (recreated devices are not re-attached)");
  }
  for (const auto& dev : cfg_.devices)
    if (auto idx = IfIndex(dev); idx.ok()) device_index_[dev] = *idx;
  return absl::OkStatus();
}

absl::Status Agent::SyncNoMasquerade() {
  TND_ASSIGN_OR_RETURN(UniqueFd fd4, PinnedFd(TND_MAP_NOMASQ_V4));
  TND_ASSIGN_OR_RETURN(UniqueFd fd6, PinnedFd(TND_MAP_NOMASQ_V6));
  std::map<Cidr, uint32_t> want;
  std::vector<Cidr> pods, exempt;
  if (!cfg_.pod_cidrs.empty()) {
    TND_ASSIGN_OR_RETURN(pods, ParseCidrList(cfg_.pod_cidrs));
  }
  if (!cfg_.masquerade_exempt.empty()) {
    TND_ASSIGN_OR_RETURN(exempt, ParseCidrList(cfg_.masquerade_exempt));
  }
  for (const Cidr& c : pods) want[c] |= TND_NOMASQ_F_POD;
  for (const Cidr& c : exempt) want[c] |= TND_NOMASQ_F_EXEMPT;
  TND_RETURN_IF_ERROR(SyncNoMasqMaps(fd4.get(), fd6.get(), want));
  if (cfg_.enable_masquerade && cfg_.pod_cidrs.empty() && !desired_.endpoints.empty())
    TND_LOG_WARN("masquerade is on but pod-cidrs is empty: traffic between endpoints of different nodes "
                 "is masqueraded too");
  return absl::OkStatus();
}

absl::Status Agent::AttachEndpoint(const Endpoint& e) {
  TND_ASSIGN_OR_RETURN(int in_fd, lxc_obj_->ProgramFd(kLxcIngressProgram));
  TND_ASSIGN_OR_RETURN(int out_fd, lxc_obj_->ProgramFd(kLxcEgressProgram));
  auto attach = [&]() -> absl::Status {
    TND_RETURN_IF_ERROR(AttachTc({e.ifname, TcDir::kIngress, in_fd, paths_.LinksDir(), false}).status());
    return AttachTc({e.ifname, TcDir::kEgress, out_fd, paths_.LinksDir(), false}).status();
  };
  if (auto st = attach(); !st.ok()) {
    // A link pinned for an earlier device of the same name points at a
    // device that is gone and cannot be updated: drop it, attach afresh.
    TND_RETURN_IF_ERROR(DetachEndpoint(e));
    TND_RETURN_IF_ERROR(attach());
  }
  TND_LOG_INFO("endpoint ", e.id, ": attached ", kLxcIngressProgram, "/", kLxcEgressProgram, " to ", e.ifname,
               " (ifindex ", e.ifindex, ")");
  return absl::OkStatus();
}

absl::Status Agent::DetachEndpoint(const Endpoint& e) {
  TND_RETURN_IF_ERROR(DetachTc(e.ifname, TcDir::kIngress, paths_.LinksDir()));
  return DetachTc(e.ifname, TcDir::kEgress, paths_.LinksDir());
}

absl::Status Agent::PersistEndpoints(StateChange c) {
  if (c.put_endpoints.empty() && c.drop_endpoints.empty()) {
    c.put_endpoints = endpoints_->List();
    c.all_endpoints = true;
  }
  TND_RETURN_IF_ERROR(Persist(c, nullptr));  // the callers undo the endpoint change
  desired_.endpoints = endpoints_->List();
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Agent::EndpointAdd(const nlohmann::json& a) {
  if (!a.contains("endpoint")) return absl::InvalidArgumentError("missing argument \"endpoint\"");
  TND_ASSIGN_OR_RETURN(Endpoint e, EndpointFromJson(a["endpoint"]));
  TND_ASSIGN_OR_RETURN(Endpoint added, endpoints_->Add(e));
  StateChange c;
  c.put_endpoints = {added};
  if (auto s = PersistEndpoints(std::move(c)); !s.ok()) {
    (void)endpoints_->Delete(added.id);
    return Annotate(s, "persist desired state (endpoint removed again)");
  }
  TND_LOG_INFO("endpoint ", added.id, " added: ", added.ifname, added.adopted() ? " (adopted)" : "",
               " ifindex ", added.ifindex);
  RefreshPlacement(added.ips);
  return EndpointToJson(added);
}

absl::StatusOr<nlohmann::json> Agent::EndpointDelete(const nlohmann::json& a) {
  if (!a.contains("id") || !a["id"].is_number_integer())
    return absl::InvalidArgumentError("give the endpoint id");
  int64_t id = a["id"].get<int64_t>();
  if (id < 1 || id > 65535) return absl::InvalidArgumentError("endpoint id must be in 1-65535");
  TND_ASSIGN_OR_RETURN(Endpoint gone, endpoints_->Delete(static_cast<uint32_t>(id)));
  StateChange c;
  c.drop_endpoints = {gone.id};
  TND_RETURN_IF_ERROR(PersistEndpoints(std::move(c)));
  TND_LOG_INFO("endpoint ", gone.id, " deleted (", gone.ifname, ")");
  RefreshPlacement(gone.ips);
  return EndpointToJson(gone);
}

nlohmann::json Agent::EndpointList() const {
  nlohmann::json out = nlohmann::json::array();
  if (endpoints_)
    for (const Endpoint& e : endpoints_->List()) out.push_back(EndpointToJson(e));
  return out;
}

}  // namespace tendril
