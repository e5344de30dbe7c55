// `status`: what the agent runs, where, and how full its maps are.
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "datapath/attach.h"
#include "datapath/programs.h"
#include "maps/abi.h"
#include "tendril_build_config.h"

namespace tendril {

namespace {

nlohmann::json DeviceStatus(const std::string& dev, XdpMode configured, const std::string& links_dir) {
  nlohmann::json d = {{"name", dev}};
  auto idx = IfIndex(dev);
  d["ifindex"] = idx.ok() ? *idx : 0;
  auto x = QueryXdp(dev);
  if (!x.ok()) {
    d["error"] = std::string(x.status().message());
  } else if (*x) {
    d["xdp"] = {{"mode", std::string(XdpModeName((*x)->mode))},
                {"prog_id", (*x)->prog_id},
                {"prog_name", (*x)->prog_name},
                {"owned", IsOwnedProgram((*x)->prog_name)}};
  } else {
    d["xdp"] = nullptr;
  }
  for (TcDir dir : {TcDir::kIngress, TcDir::kEgress}) {
    auto t = QueryTc(dev, dir, links_dir);
    std::string key = std::string("tc_") + std::string(TcDirName(dir));
    if (t.ok() && *t)
      d[key] = {{"via", std::string(TcBackendName((*t)->backend))}, {"prog_id", (*t)->prog_id}};
    else
      d[key] = nullptr;
  }
  d["xdp_mode_configured"] = std::string(XdpModeName(configured));
  return d;
}

// Each loaded program of `obj`: name, id, verified instructions.
void AddPrograms(nlohmann::json& out, const BpfObject& obj) {
  for (const auto& name : obj.ProgramNames()) {
    auto fd = obj.ProgramFd(name);
    if (!fd.ok()) continue;
    auto info = GetProgramInfo(*fd);
    if (info.ok()) out.push_back({{"name", name}, {"id", info->id}, {"verified_insns", info->verified_insns}});
  }
}

}  // namespace

nlohmann::json Agent::StatusJson() const {
  nlohmann::json j;
  j["agent"] = {{"pid", ::getpid()},
                {"version", TENDRIL_VERSION},
                {"started_at", started_at_},
                {"bpffs_root", cfg_.bpffs_root},
                {"state_dir", cfg_.state_dir},
                {"api_socket", cfg_.api_socket},
                {"cgroup_root", cgroup_root_},
                {"xdp_mode", std::string(XdpModeName(cfg_.xdp_mode))}};
  utsname u{};
  ::uname(&u);
  j["kernel"] = {{"release", u.release}, {"tcx", KernelHasTcx()}};
  j["bpf_object"] = {{"cache_key", compiled_.key}, {"cache_hit", compiled_.cache_hit}, {"why", compiled_.why}};
  j["devices"] = nlohmann::json::array();
  for (const auto& dev : cfg_.devices) j["devices"].push_back(DeviceStatus(dev, cfg_.XdpModeFor(dev), paths_.LinksDir()));
  j["programs"] = nlohmann::json::array();
  if (!loaded_.empty()) AddPrograms(j["programs"], loaded_[0].object);
  for (const std::optional<BpfObject>* o : {&host_obj_, &lxc_obj_, &sock_obj_})
    if (*o) AddPrograms(j["programs"], **o);
  j["prefilter_desired"] = desired_.prefilter.size();
  j["socket_lb"] = SocketLbStatus();
  j["kubernetes"] = K8sStatus();
  j["operator_endpoints"] = {{"healthz", healthz_ ? cfg_.healthz_bind_address : ""},
                             {"metrics", metrics_ ? cfg_.metrics_bind_address : ""},
                             {"errors", node_http_errors_}};
  j["nat"] = NatStatus();
  nlohmann::json addrs = nlohmann::json::array();
  if (services_)
    for (const auto& [id, sv] : services_->services())
      for (const FrontendEntry& e : services_->Entries(sv))
        if (e.external) addrs.push_back(e.frontend.ToString());
  j["nodeport"] = {{"enabled", cfg_.enable_nodeport},
                   {"node_port_range", absl::StrCat(cfg_.node_port_min, "-", cfg_.node_port_max)},
                   {"external_frontends", addrs},
                   {"ct_gc_interval", cfg_.ct_gc_interval},
                   {"last_gc", last_gc_}};
  size_t ready = 0, total = endpoints_ ? endpoints_->List().size() : 0;
  if (endpoints_)
    for (const Endpoint& e : endpoints_->List()) ready += e.ready ? 1 : 0;
  j["endpoints"] = {{"declared", total},
                    {"ready", ready},
                    {"host_routing", "ebpf"},
                    {"masquerade", cfg_.enable_masquerade},
                    {"pod_cidrs", cfg_.pod_cidrs},
                    {"masquerade_exempt", cfg_.masquerade_exempt},
                    {"link_watch", links_ != nullptr}};
  return j;
}

nlohmann::json Agent::SocketLbStatus() const {
  nlohmann::json hooks = nlohmann::json::array();
  for (const SockHook& h : kSockHooks) {
    struct stat st;
    if (::stat(paths_.CgroupLink(h.program).c_str(), &st) == 0) hooks.push_back(h.program);
  }
  return {{"enabled", cfg_.enable_socket_lb},
          {"cgroup", cgroup_root_},
          {"attached", hooks},
          {"services", services_ ? services_->size() : 0},
          {"maglev_table_size", cfg_.maglev_table_size}};
}

nlohmann::json Agent::NatStatus() const {
  nlohmann::json nat = {{"port_range", absl::StrCat(cfg_.nat_port_min, "-", cfg_.nat_port_max)},
                        {"reserved_in", "net.ipv4.ip_local_reserved_ports"}};
  for (auto [key, map] : {std::pair{"v4", nat4_.get()}, std::pair{"v6", nat6_.get()}})
    if (map)
      if (auto n = CountEntries(map->fd(), sizeof(tnd_nat_key)); n.ok()) {
        auto info = GetMapInfo(map->fd());
        nat[key] = {{"entries", *n}, {"max_entries", info.ok() ? info->max_entries : 0}};
      }
  if (auto d = DropCount(paths_.Map(TND_MAP_METRICS), TND_DROP_NAT_EXHAUSTED); d.ok())
    nat["ports_exhausted_since_start"] = *d - nat_exhausted_at_start_;
  return nat;
}

}  // namespace tendril
