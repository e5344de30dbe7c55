#include "agent/agent.h"

#include <fcntl.h>
#include <arpa/inet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <cstring>
#include <ctime>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "datapath/attach.h"
#include "datapath/bpffs.h"
#include "agent/nat_ports.h"
#include "network/netlink.h"
#include "common/clock.h"
#include "common/fd.h"
#include "common/json_fields.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "maps/abi.h"
#include "tendril_build_config.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  /* Linux 5.14 */
#endif

namespace tendril {
namespace {

absl::StatusOr<std::string> DeviceMac(const std::string& ifname) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return ErrnoError(errno, "socket");
  ifreq ifr{};
  std::strncpy(ifr.ifr_name, ifname.c_str(), IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFHWADDR, &ifr) != 0)
    return ErrnoError(errno, absl::StrCat("read MAC of device ", ifname));
  const auto* m = reinterpret_cast<const unsigned char*>(ifr.ifr_hwaddr.sa_data);
  return absl::StrFormat("%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2], m[3], m[4], m[5]);
}

std::string NowUtc() {
  time_t t = ::time(nullptr);
  tm tm_utc{};
  gmtime_r(&t, &tm_utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  return buf;
}

// args[key] as a list of strings, or an error naming the argument.
// A required list of strings (jsonf::Strings, which takes absence as empty).
absl::StatusOr<std::vector<std::string>> Strings(const nlohmann::json& args, const char* key) {
  if (!args.is_object() || !args.contains(key))
    return absl::InvalidArgumentError(absl::StrCat("missing argument \"", key, "\""));
  return jsonf::Strings(args, key);
}

}  // namespace

// The socket programs and the cgroup hook each one attaches to.
struct SockHook {
  const char* program;
  bpf_attach_type type;
  bool v6;
};
constexpr SockHook kSockHooks[] = {
    {"tnd_sock_connect4", BPF_CGROUP_INET4_CONNECT, false},
    {"tnd_sock_sendmsg4", BPF_CGROUP_UDP4_SENDMSG, false},
    {"tnd_sock_recvmsg4", BPF_CGROUP_UDP4_RECVMSG, false},
    {"tnd_sock_getpeername4", BPF_CGROUP_INET4_GETPEERNAME, false},
    {"tnd_sock_connect6", BPF_CGROUP_INET6_CONNECT, true},
    {"tnd_sock_sendmsg6", BPF_CGROUP_UDP6_SENDMSG, true},
    {"tnd_sock_recvmsg6", BPF_CGROUP_UDP6_RECVMSG, true},
    {"tnd_sock_getpeername6", BPF_CGROUP_INET6_GETPEERNAME, true},
};

const std::vector<TailCallTable>& XdpTailCalls() {
  static const std::vector<TailCallTable> t = {
      {TND_MAP_XDP_CALLS, {{TND_TAIL_XDP_V4, "tnd_xdp_v4"}, {TND_TAIL_XDP_V6, "tnd_xdp_v6"}}}};
  return t;
}

const std::vector<TailCallTable>& HostTailCalls() {
  static const std::vector<TailCallTable> t = {
      {TND_MAP_HOST_CALLS, {{TND_TAIL_HOST_V4, "tnd_host_in_v4"}, {TND_TAIL_HOST_V6, "tnd_host_in_v6"}}}};
  return t;
}

const std::vector<TailCallTable>& LxcTailCalls() {
  static const std::vector<TailCallTable> t = {
      {TND_MAP_LXC_CALLS, {{TND_TAIL_LXC_V4, "tnd_lxc_in_v4"}, {TND_TAIL_LXC_V6, "tnd_lxc_in_v6"}}}};
  return t;
}

Agent::Agent(AgentConfig cfg) : cfg_(std::move(cfg)), store_(cfg_.state_dir) {}
Agent::~Agent() = default;

absl::StatusOr<NodeFacts> Agent::GatherFacts() const {
  NodeFacts f;
  utsname u{};
  if (::uname(&u) == 0) f.hostname = u.nodename;
  for (const auto& dev : cfg_.devices) {
    DeviceFacts d;
    d.name = dev;
    TND_ASSIGN_OR_RETURN(d.ifindex, IfIndex(dev));
    TND_ASSIGN_OR_RETURN(d.mac, DeviceMac(dev));
    TND_ASSIGN_OR_RETURN(d.addresses, DeviceAddresses(d.ifindex));
    f.devices.push_back(d);
  }
  return f;
}

LoadOptions Agent::Options(const std::string& path, std::vector<TailCallTable> tail_calls) const {
  LoadOptions lo;
  lo.object_path = path;
  lo.pin_root = cfg_.bpffs_root;
  lo.tail_calls = std::move(tail_calls);
  // Every object names the shared maps; all must ask for the same sizes, or
  // one would replace the pins of another.
  lo.max_entries = {{TND_MAP_CT_V4, cfg_.ct_max_entries},          {TND_MAP_CT_V6, cfg_.ct_max_entries},
                    {TND_MAP_NAT_V4, cfg_.nat_max_entries},        {TND_MAP_NAT_V6, cfg_.nat_max_entries},
                    {TND_MAP_SK_REVNAT_V4, cfg_.sock_revnat_max_entries},
                    {TND_MAP_SK_REVNAT_V6, cfg_.sock_revnat_max_entries},
                    {TND_MAP_MAGLEV, cfg_.maglev_max_services}};
  return lo;
}

absl::StatusOr<Agent::Loaded> Agent::LoadObject(const std::string& path,
                                                const std::string& offload_dev) {
  LoadOptions lo = Options(path, XdpTailCalls());
  if (!offload_dev.empty()) {
    TND_ASSIGN_OR_RETURN(lo.offload_ifindex, IfIndex(offload_dev));
  }
  auto obj = BpfObject::Load(lo);
  if (!obj.ok()) {
    if (!offload_dev.empty())
      return Annotate(obj.status(),
                      absl::StrCat("XDP offload on device ", offload_dev,
                                   ": the kernel refused the program and maps bound to the "
                                   "device (its driver most likely has no BPF offload support; "
                                   "use --xdp-mode native or generic)"));
    return obj.status();
  }
  TND_ASSIGN_OR_RETURN(int v4, obj->MapFd(TND_MAP_PREFILTER_V4));
  TND_ASSIGN_OR_RETURN(int v6, obj->MapFd(TND_MAP_PREFILTER_V6));
  Loaded l{std::move(*obj), nullptr, offload_dev};
  l.prefilter = std::make_unique<Prefilter>(PrefilterV4Map(Dup(v4), TND_MAP_PREFILTER_V4),
                                            PrefilterV6Map(Dup(v6), TND_MAP_PREFILTER_V6));
  return l;
}

absl::Status Agent::SyncPrefilter(const std::set<Cidr>& want) {
  for (size_t i = 0; i < loaded_.size(); ++i) {
    auto st = loaded_[i].prefilter->Sync(want);
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) (void)loaded_[j].prefilter->Sync(desired_.prefilter);
      return st.status();
    }
    if (st->added || st->removed)
      TND_LOG_INFO("prefilter maps synced: +", st->added, " -", st->removed);
  }
  return absl::OkStatus();
}

absl::Status Agent::Start() {
  started_at_ = NowUtc();
  TND_RETURN_IF_ERROR(MakeDirs(cfg_.state_dir, 0700));
  TND_ASSIGN_OR_RETURN(desired_, store_.Load());
  TND_LOG_INFO("desired state from ", store_.path(), ": ", desired_.prefilter.size(),
               " prefilter CIDRs");
  TND_RETURN_IF_ERROR(EnsureBpffs(cfg_.bpffs_root));
  // Socket programs (services, next) attach here; checked now so that a bad
  // setting fails at start, not at the first service.
  TND_ASSIGN_OR_RETURN(cgroup_root_, ResolveCgroupRoot(cfg_.cgroup_root));
  TND_ASSIGN_OR_RETURN(NodeFacts facts, GatherFacts());
  TND_RETURN_IF_ERROR(ReserveNatPorts({cfg_.nat_port_min, cfg_.nat_port_max}));
  // Drops are counted in the pinned metrics, which outlive agents: status
  // reports those since this start.
  nat_exhausted_at_start_ = DropCount(cfg_.bpffs_root + "/" TND_MAP_METRICS, TND_DROP_NAT_EXHAUSTED).value_or(0);

  CompileRequest req;
  req.src_dir = cfg_.bpf_dir;
  req.cache_dir = cfg_.state_dir + "/bpf-cache";
  req.clang = cfg_.clang;
  req.config_header = RenderConfigHeader(
      facts, Features{cfg_.enable_ipv4, cfg_.enable_ipv6, /*prefilter=*/true, cfg_.enable_socket_lb,
                      /*nodeport=*/true, cfg_.enable_masquerade,
                      cfg_.maglev_table_size, cfg_.nat_port_min, cfg_.nat_port_max});
  if (cfg_.bpf_object_dir.empty()) {
    TND_ASSIGN_OR_RETURN(compiled_, CompileBpf(req));
  } else {
    compiled_ = CompileResult{"prebuilt", {}, true};
    for (const auto& name : req.objects)
      compiled_.object_paths[name] = absl::StrCat(cfg_.bpf_object_dir, "/", name, ".o");
    TND_LOG_INFO("using prebuilt BPF objects from ", cfg_.bpf_object_dir);
  }
  const std::string& obj_path = compiled_.object_paths.at("bpf_xdp");
  TND_RETURN_IF_ERROR(StartServices(compiled_.object_paths.at("bpf_host"), facts));

  if (cfg_.xdp_mode == XdpMode::kOffload) {
    for (const auto& dev : cfg_.devices) {
      TND_ASSIGN_OR_RETURN(Loaded l, LoadObject(obj_path, dev));
      loaded_.push_back(std::move(l));
    }
  } else {
    TND_ASSIGN_OR_RETURN(Loaded l, LoadObject(obj_path, ""));
    loaded_.push_back(std::move(l));
  }
  auto attached = AttachAll();
  if (!attached.ok()) {
    // Whatever ran before still runs with its own prog arrays, which stay
    // pinned. Ours go too unless a device already runs the new program.
    if (!AnyDeviceRunsLoaded())
      for (auto& l : loaded_) l.object.UnpinTailCallMaps();
    return attached;
  }
  TND_RETURN_IF_ERROR(AttachTcAll());
  TND_RETURN_IF_ERROR(StartEndpoints(compiled_.object_paths.at("bpf_lxc")));
  PruneTailCallPins();
  TND_RETURN_IF_ERROR(StartSocketLb(compiled_.object_paths.at("bpf_sock")));
  SyncHealth();
  next_gc_ = BpfClockSeconds() + cfg_.ct_gc_interval;
  return absl::OkStatus();
}

absl::Status Agent::SyncDevices(const NodeFacts& facts) {
  TND_ASSIGN_OR_RETURN(int fd, host_obj_->MapFd(TND_MAP_DEVICES));
  Map<uint32_t, tnd_device> devices(Dup(fd), TND_MAP_DEVICES);
  std::set<uint32_t> want;
  for (const DeviceFacts& d : facts.devices) {
    tnd_device v{};
    for (const IpAddr& a : d.addresses) {
      if (a.family == Family::kV4 && !v.ipv4 && cfg_.enable_ipv4) std::memcpy(&v.ipv4, a.bytes.data(), 4);
      bool v6_empty = std::all_of(std::begin(v.ipv6), std::end(v.ipv6), [](uint8_t b) { return b == 0; });
      if (a.family == Family::kV6 && v6_empty && cfg_.enable_ipv6) std::memcpy(v.ipv6, a.bytes.data(), 16);
    }
    unsigned m[6] = {};
    if (std::sscanf(d.mac.c_str(), "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6)
      for (int i = 0; i < 6; ++i) v.mac[i] = static_cast<uint8_t>(m[i]);
    TND_RETURN_IF_ERROR(devices.Update(static_cast<uint32_t>(d.ifindex), v));
    want.insert(static_cast<uint32_t>(d.ifindex));
  }
  std::vector<uint32_t> stale;
  TND_RETURN_IF_ERROR(devices.ForEach([&](const uint32_t& k, const tnd_device&) {
    if (!want.count(k)) stale.push_back(k);
  }));
  for (uint32_t k : stale) TND_RETURN_IF_ERROR(devices.Delete(k));
  return absl::OkStatus();
}

absl::Status Agent::StartServices(const std::string& object_path, const NodeFacts& facts) {
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path, HostTailCalls())));
  host_obj_.emplace(std::move(obj));
  auto map_fd = [&](const char* name) -> absl::StatusOr<UniqueFd> {
    TND_ASSIGN_OR_RETURN(int fd, host_obj_->MapFd(name));
    return Dup(fd);
  };
  TND_ASSIGN_OR_RETURN(UniqueFd ct4, map_fd(TND_MAP_CT_V4));
  TND_ASSIGN_OR_RETURN(UniqueFd ct6, map_fd(TND_MAP_CT_V6));
  TND_ASSIGN_OR_RETURN(UniqueFd nat4, map_fd(TND_MAP_NAT_V4));
  TND_ASSIGN_OR_RETURN(UniqueFd nat6, map_fd(TND_MAP_NAT_V6));
  ct4_ = std::make_unique<CtMap>(std::move(ct4), TND_MAP_CT_V4);
  ct6_ = std::make_unique<CtMap>(std::move(ct6), TND_MAP_CT_V6);
  nat4_ = std::make_unique<NatMap>(std::move(nat4), TND_MAP_NAT_V4);
  nat6_ = std::make_unique<NatMap>(std::move(nat6), TND_MAP_NAT_V6);
  // The object has just pinned (or reused) every LB map under the root.
  TND_ASSIGN_OR_RETURN(LbMaps maps, OpenLbMaps(cfg_.bpffs_root));
  NodeView node;
  device_ifindexes_.clear();
  for (const DeviceFacts& d : facts.devices) device_ifindexes_.push_back(d.ifindex);
  node.addresses = NodePortAddresses(facts);
  node.place = [this](const IpAddr& ip) { return PlaceOf(ip); };
  ServiceLimits limits{cfg_.max_backends_per_service, 4096, cfg_.node_port_min, cfg_.node_port_max,
                       cfg_.maglev_max_services};
  services_ = std::make_unique<ServiceManager>(std::move(maps), limits, cfg_.maglev_table_size, std::move(node));
  services_->OnBackendsRemoved([this](uint16_t id, L4Proto proto, const std::vector<Backend>& removed) {
    DeleteFlowsOf(id, proto, removed);
  });
  services_->OnNewHealthPort([this](uint16_t port) { return CheckHealthPortFree(port); });
  // Devices and services are in the maps before any program sees a packet.
  TND_RETURN_IF_ERROR(SyncDevices(facts));
  TND_ASSIGN_OR_RETURN(SyncStats st, services_->Restore(desired_.services));
  TND_LOG_INFO("services restored: ", desired_.services.size(), " services, ", st.writes,
               " map writes, ", st.deletes, " stale entries removed");
  return absl::OkStatus();
}

absl::Status Agent::StartEndpoints(const std::string& object_path) {
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path, LxcTailCalls())));
  lxc_obj_.emplace(std::move(obj));
  TND_ASSIGN_OR_RETURN(int in_fd, lxc_obj_->ProgramFd(kLxcIngressProgram));
  TND_ASSIGN_OR_RETURN(ProgramInfo info, GetProgramInfo(in_fd));
  TND_RETURN_IF_ERROR(lxc_obj_->PinTailCallMaps(CallsDir(), std::to_string(info.id)));
  TND_RETURN_IF_ERROR(SyncNoMasquerade());
  TND_ASSIGN_OR_RETURN(int map_fd, lxc_obj_->MapFd(TND_MAP_ENDPOINTS));
  EndpointManager::Hooks hooks{[this](const Endpoint& e) { return AttachEndpoint(e); },
                               [this](const Endpoint& e) { return DetachEndpoint(e); }};
  endpoints_ = std::make_unique<EndpointManager>(Dup(map_fd), std::move(hooks), cfg_.devices, cfg_.enable_ipv4,
                                                 cfg_.enable_ipv6);
  TND_ASSIGN_OR_RETURN(auto dropped, endpoints_->Restore(desired_.endpoints));
  for (const auto& d : dropped) TND_LOG_WARN("dropped ", d);
  size_t ready = 0;
  for (const Endpoint& e : endpoints_->List()) ready += e.ready ? 1 : 0;
  TND_LOG_INFO("endpoints restored: ", ready, " ready, ", endpoints_->List().size() - ready, " waiting for their device");
  if (!dropped.empty()) TND_RETURN_IF_ERROR(PersistEndpoints());
  RefreshPlacement({});  // services were restored before their local endpoints were
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
  TND_ASSIGN_OR_RETURN(int fd4, lxc_obj_->MapFd(TND_MAP_NOMASQ_V4));
  TND_ASSIGN_OR_RETURN(int fd6, lxc_obj_->MapFd(TND_MAP_NOMASQ_V6));
  Map<tnd_lpm_v4_key, tnd_nomasq_val> m4(Dup(fd4), TND_MAP_NOMASQ_V4);
  Map<tnd_lpm_v6_key, tnd_nomasq_val> m6(Dup(fd6), TND_MAP_NOMASQ_V6);
  std::map<Cidr, uint32_t> want;
  std::vector<Cidr> pods, exempt;
  if (!cfg_.pod_cidrs.empty()) {
    TND_ASSIGN_OR_RETURN(pods, ParseCidrList(cfg_.pod_cidrs));
  }
  if (!cfg_.masquerade_exempt.empty()) {
    TND_ASSIGN_OR_RETURN(exempt, ParseCidrList(cfg_.masquerade_exempt));
  }
  for (const Cidr& c : pods) want[c] |= 1;
  for (const Cidr& c : exempt) want[c] |= 2;
  std::vector<tnd_lpm_v4_key> stale4;
  std::vector<tnd_lpm_v6_key> stale6;
  for (const auto& [c, flags] : want) {
    if (c.family == Family::kV4) {
      tnd_lpm_v4_key k{c.prefix_len, {}};
      std::memcpy(k.addr, c.addr.data(), 4);
      TND_RETURN_IF_ERROR(m4.Update(k, tnd_nomasq_val{flags}));
    } else {
      tnd_lpm_v6_key k{c.prefix_len, {}};
      std::memcpy(k.addr, c.addr.data(), 16);
      TND_RETURN_IF_ERROR(m6.Update(k, tnd_nomasq_val{flags}));
    }
  }
  TND_RETURN_IF_ERROR(m4.ForEach([&](const tnd_lpm_v4_key& k, const tnd_nomasq_val&) {
    Cidr c{Family::kV4, {}, static_cast<uint8_t>(k.prefixlen)};
    std::memcpy(c.addr.data(), k.addr, 4);
    if (!want.count(c)) stale4.push_back(k);
  }));
  TND_RETURN_IF_ERROR(m6.ForEach([&](const tnd_lpm_v6_key& k, const tnd_nomasq_val&) {
    Cidr c{Family::kV6, {}, static_cast<uint8_t>(k.prefixlen)};
    std::memcpy(c.addr.data(), k.addr, 16);
    if (!want.count(c)) stale6.push_back(k);
  }));
  for (const auto& k : stale4) TND_RETURN_IF_ERROR(m4.Delete(k));
  for (const auto& k : stale6) TND_RETURN_IF_ERROR(m6.Delete(k));
  if (cfg_.enable_masquerade && cfg_.pod_cidrs.empty() && !desired_.endpoints.empty())
    TND_LOG_WARN("masquerade is on but pod-cidrs is empty: traffic between endpoints of different nodes "
                 "is masqueraded too");
  return absl::OkStatus();
}

absl::Status Agent::AttachEndpoint(const Endpoint& e) {
  TND_ASSIGN_OR_RETURN(int in_fd, lxc_obj_->ProgramFd(kLxcIngressProgram));
  TND_ASSIGN_OR_RETURN(int out_fd, lxc_obj_->ProgramFd(kLxcEgressProgram));
  auto attach = [&]() -> absl::Status {
    TND_RETURN_IF_ERROR(AttachTc({e.ifname, TcDir::kIngress, in_fd, LinksDir(), false}).status());
    return AttachTc({e.ifname, TcDir::kEgress, out_fd, LinksDir(), false}).status();
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
  TND_RETURN_IF_ERROR(DetachTc(e.ifname, TcDir::kIngress, LinksDir()));
  return DetachTc(e.ifname, TcDir::kEgress, LinksDir());
}

absl::Status Agent::PersistEndpoints() {
  DesiredState next = desired_;
  next.endpoints = endpoints_->List();
  TND_RETURN_IF_ERROR(store_.Save(next));
  desired_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Agent::EndpointAdd(const nlohmann::json& a) {
  if (!a.contains("endpoint")) return absl::InvalidArgumentError("missing argument \"endpoint\"");
  TND_ASSIGN_OR_RETURN(Endpoint e, EndpointFromJson(a["endpoint"]));
  TND_ASSIGN_OR_RETURN(Endpoint added, endpoints_->Add(e));
  if (auto s = PersistEndpoints(); !s.ok()) {
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
  TND_RETURN_IF_ERROR(PersistEndpoints());
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

absl::Status Agent::AttachTcAll() {
  TND_ASSIGN_OR_RETURN(int in_fd, host_obj_->ProgramFd(kHostIngressProgram));
  TND_ASSIGN_OR_RETURN(int out_fd, host_obj_->ProgramFd(kHostEgressProgram));
  TND_ASSIGN_OR_RETURN(ProgramInfo info, GetProgramInfo(in_fd));
  TND_RETURN_IF_ERROR(host_obj_->PinTailCallMaps(CallsDir(), std::to_string(info.id)));
  for (const auto& dev : cfg_.devices) {
    if (!cfg_.enable_nodeport) {
      TND_RETURN_IF_ERROR(DetachTc(dev, TcDir::kIngress, LinksDir()));
      TND_RETURN_IF_ERROR(DetachTc(dev, TcDir::kEgress, LinksDir()));
      continue;
    }
    TND_ASSIGN_OR_RETURN(TcBackend b, AttachTc({dev, TcDir::kIngress, in_fd, LinksDir(), false}));
    TND_RETURN_IF_ERROR(AttachTc({dev, TcDir::kEgress, out_fd, LinksDir(), false}).status());
    TND_LOG_INFO("attached ", kHostIngressProgram, "/", kHostEgressProgram, " to ", dev, " at tc (",
                 TcBackendName(b), ")");
  }
  if (!cfg_.enable_nodeport) {
    TND_LOG_INFO("per-packet LB (NodePort) disabled");
    return absl::OkStatus();
  }
  for (const auto& dev : cfg_.devices) {
    auto fwd = ReadFile(absl::StrCat("/proc/sys/net/ipv4/conf/", dev, "/forwarding"));
    if (fwd.ok() && absl::StripAsciiWhitespace(*fwd) == "0")
      TND_LOG_WARN("device ", dev, ": IPv4 forwarding is off; NodePort traffic to backends on other hosts or "
                   "pods is dropped (no-route) until it is on (sysctl net.ipv4.ip_forward=1); host-network "
                   "backends work either way");
  }
  return absl::OkStatus();
}

std::vector<int> Agent::PollFds() const {
  std::vector<int> fds;
  for (const auto& [id, h] : health_)
    for (int fd : h->Fds()) fds.push_back(fd);
  if (links_) fds.push_back(links_->fd());
  return fds;
}

void Agent::OnReadable(int fd) {
  if (links_ && fd == links_->fd()) {
    OnLinkEvents();
    return;
  }
  for (const auto& [port, h] : health_) {
    if (!h->Owns(fd)) continue;
    h->OnReadable(fd, HealthCount(port));
    return;
  }
}

int Agent::NextTimeoutMs() const {
  uint32_t now = BpfClockSeconds();
  int ms = static_cast<int32_t>(next_gc_ - now) <= 0 ? 0 : static_cast<int>(next_gc_ - now) * 1000;
  if (services_) {
    if (auto due = services_->NextRetiredDeadlineMs()) {
      ms = std::min<int64_t>(ms, std::max<int64_t>(0, *due - MonotonicMs() + 1));
    }
  }
  for (const auto& [id, h] : health_)
    if (int t = h->NextTimeoutMs(); t >= 0) ms = std::min(ms, t);
  return ms;
}

void Agent::OnTimer() {
  for (const auto& [port, h] : health_) h->OnTimer(HealthCount(port));
  if (services_) {
    int n = services_->FlushRetiredBackends();
    if (n) TND_LOG_DEBUG("removed ", n, " backend entries after their grace period");
  }
  if (static_cast<int32_t>(next_gc_ - BpfClockSeconds()) > 0) return;
  nlohmann::json r = ConntrackGc();
  int removed = r.value("removed", 0);
  if (removed > 0)
    TND_LOG_INFO("conntrack GC: removed ", removed, " expired entries (", r.dump(), ")");
  else
    TND_LOG_DEBUG("conntrack GC: nothing expired (", r.dump(), ")");
  next_gc_ = BpfClockSeconds() + cfg_.ct_gc_interval;
}

void Agent::DeleteFlowsOf(uint16_t svc_id, L4Proto proto, const std::vector<Backend>& removed) {
  for (Family fam : {Family::kV4, Family::kV6}) {
    std::vector<BackendRef> refs;
    for (const Backend& b : removed) {
      if (b.ip.family != fam) continue;
      BackendRef r;
      r.id = b.id;
      memcpy(r.addr, b.ip.bytes.data(), 16);
      r.port_be = htons(b.port);
      refs.push_back(r);
    }
    CtMap* ct = (fam == Family::kV4 ? ct4_ : ct6_).get();
    if (refs.empty() || !ct) continue;
    NatMap* nat = (fam == Family::kV4 ? nat4_ : nat6_).get();
    auto r = DeleteBackendFlows(*ct, nat, svc_id, static_cast<uint8_t>(proto), refs);
    if (!r.ok()) {
      TND_LOG_WARN("service ", svc_id, ": deleting the flows of removed backends: ", r.status().message());
      continue;
    }
    if (r->ct_entries)
      TND_LOG_INFO("service ", svc_id, ": deleted ", r->flows, " ", L4ProtoName(proto), " flows of ", refs.size(),
                   " removed backends (", r->ct_entries, " conntrack, ", r->nat_entries, " NAT entries)");
  }
}

nlohmann::json Agent::ConntrackGc() {
  uint32_t now = BpfClockSeconds();
  nlohmann::json out = {{"at", NowUtc()}};
  int removed = 0;
  auto one = [&](const char* name, auto& map, auto gc) {
    if (!map) return;
    auto r = gc(*map, now);
    if (!r.ok()) {
      out[name] = {{"error", std::string(r.status().message())}};
      return;
    }
    out[name] = {{"scanned", r->scanned}, {"removed", r->removed}};
    removed += static_cast<int>(r->removed);
  };
  one("ct_v4", ct4_, GcConntrack);
  one("ct_v6", ct6_, GcConntrack);
  one("nat_v4", nat4_, GcNat);
  one("nat_v6", nat6_, GcNat);
  out["removed"] = removed;
  last_gc_ = out;
  return out;
}

std::string Agent::LinksDir() const { return cfg_.bpffs_root + "/links"; }

std::string Agent::CgroupLinkPin(const char* program) const {
  return absl::StrCat(LinksDir(), "/cg_", program);
}

absl::Status Agent::StartSocketLb(const std::string& object_path) {
  if (!cfg_.enable_socket_lb) {
    for (const SockHook& h : kSockHooks) TND_RETURN_IF_ERROR(DetachCgroup(CgroupLinkPin(h.program)));
    TND_LOG_INFO("socket LB disabled");
    return absl::OkStatus();
  }
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path, {})));
  sock_obj_.emplace(std::move(obj));
  TND_RETURN_IF_ERROR(WriteNodeInfo());
  for (const SockHook& h : kSockHooks) {
    if (h.v6 ? !cfg_.enable_ipv6 : !cfg_.enable_ipv4) {
      TND_RETURN_IF_ERROR(DetachCgroup(CgroupLinkPin(h.program)));
      continue;
    }
    TND_ASSIGN_OR_RETURN(int fd, sock_obj_->ProgramFd(h.program));
    TND_RETURN_IF_ERROR(AttachCgroup(cgroup_root_, h.type, fd, CgroupLinkPin(h.program)));
  }
  TND_LOG_INFO("attached socket LB programs to cgroup ", cgroup_root_);
  return absl::OkStatus();
}

absl::Status Agent::AttachAll() {
  // Maps hold the desired state before any new program can see a packet.
  TND_RETURN_IF_ERROR(SyncPrefilter(desired_.prefilter));
  for (auto& l : loaded_) {
    TND_ASSIGN_OR_RETURN(int entry_fd, l.object.ProgramFd(kXdpEntryProgram));
    TND_ASSIGN_OR_RETURN(ProgramInfo info, GetProgramInfo(entry_fd));
    TND_RETURN_IF_ERROR(l.object.PinTailCallMaps(CallsDir(), std::to_string(info.id)));
  }
  for (size_t i = 0; i < cfg_.devices.size(); ++i) {
    const std::string& dev = cfg_.devices[i];
    XdpMode mode = cfg_.XdpModeFor(dev);
    if (mode == XdpMode::kDisabled) {
      TND_RETURN_IF_ERROR(DetachXdp(dev));
      TND_LOG_INFO("device ", dev, ": XDP disabled (tc only)");
      continue;
    }
    const Loaded& l = cfg_.xdp_mode == XdpMode::kOffload ? loaded_[i] : loaded_[0];
    TND_ASSIGN_OR_RETURN(int prog_fd, l.object.ProgramFd(kXdpEntryProgram));
    TND_ASSIGN_OR_RETURN(XdpMode used, AttachXdp(dev, prog_fd, mode));
    auto info = GetProgramInfo(prog_fd);
    TND_LOG_INFO("attached ", kXdpEntryProgram, " (id ", info.ok() ? info->id : 0, ") to ", dev,
                 " at XDP in ", XdpModeName(used), " mode");
  }
  return absl::OkStatus();
}

bool Agent::AnyDeviceRunsLoaded() const {
  std::set<uint32_t> ids;
  for (const auto& l : loaded_) {
    auto fd = l.object.ProgramFd(kXdpEntryProgram);
    if (!fd.ok()) continue;
    if (auto info = GetProgramInfo(*fd); info.ok()) ids.insert(info->id);
  }
  for (const auto& dev : cfg_.devices) {
    auto x = QueryXdp(dev);
    if (x.ok() && *x && ids.count((*x)->prog_id)) return true;
  }
  return false;
}

std::string Agent::CallsDir() const { return cfg_.bpffs_root + "/calls"; }

void Agent::PruneTailCallPins() {
  std::set<std::string> keep;
  for (const auto& l : loaded_)
    for (const auto& p : l.object.tail_call_pins()) keep.insert(p);
  if (host_obj_)
    for (const auto& p : host_obj_->tail_call_pins()) keep.insert(p);
  if (lxc_obj_)
    for (const auto& p : lxc_obj_->tail_call_pins()) keep.insert(p);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(CallsDir(), ec)) {
    if (keep.count(e.path().string())) continue;
    std::filesystem::remove(e.path(), ec);
    TND_LOG_DEBUG("removed tail-call pin of a replaced object: ", e.path().string());
  }
}

absl::Status Agent::Cleanup() {
  absl::Status first;
  std::error_code ec0;
  for (const auto& dev : cfg_.devices) {
    if (auto s = DetachXdp(dev); !s.ok()) {
      TND_LOG_WARN("cleanup: ", s.message());
      if (first.ok()) first = s;
    } else {
      TND_LOG_INFO("cleanup: detached XDP from ", dev);
    }
  }
  for (const auto& dev : cfg_.devices)
    for (TcDir d : {TcDir::kIngress, TcDir::kEgress})
      if (auto st = DetachTc(dev, d, LinksDir()); !st.ok()) {
        TND_LOG_WARN("cleanup: ", st.message());
        if (first.ok()) first = st;
      }
  if (endpoints_)
    for (const Endpoint& e : endpoints_->List())
      if (auto st = DetachEndpoint(e); !st.ok()) {
        TND_LOG_WARN("cleanup: ", st.message());
        if (first.ok()) first = st;
      }
  for (const SockHook& h : kSockHooks) {
    if (auto st = DetachCgroup(CgroupLinkPin(h.program)); !st.ok() && first.ok()) first = st;
  }
  std::filesystem::remove(LinksDir(), ec0);
  TND_LOG_INFO("cleanup: detached socket LB programs from ", cgroup_root_);
  if (sock_obj_) sock_obj_->UnpinMaps();
  if (host_obj_) {
    host_obj_->UnpinMaps();
    host_obj_->UnpinTailCallMaps();
  }
  if (lxc_obj_) {
    lxc_obj_->UnpinMaps();
    lxc_obj_->UnpinTailCallMaps();
  }
  for (auto& l : loaded_) {
    l.object.UnpinMaps();
    l.object.UnpinTailCallMaps();
  }
  std::error_code ec;
  std::filesystem::remove(CallsDir(), ec);
  std::filesystem::remove(cfg_.bpffs_root, ec);  // only if empty: foreign pins stay
  TND_LOG_INFO("cleanup: removed pins under ", cfg_.bpffs_root);
  return first;
}

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
  j["bpf_object"] = {{"cache_key", compiled_.key}, {"cache_hit", compiled_.cache_hit}};
  j["devices"] = nlohmann::json::array();
  for (const auto& dev : cfg_.devices) {
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
      auto t = QueryTc(dev, dir, LinksDir());
      std::string key = std::string("tc_") + std::string(TcDirName(dir));
      if (t.ok() && *t)
        d[key] = {{"via", std::string(TcBackendName((*t)->backend))}, {"prog_id", (*t)->prog_id}};
      else
        d[key] = nullptr;
    }
    d["xdp_mode_configured"] = std::string(XdpModeName(cfg_.XdpModeFor(dev)));
    j["devices"].push_back(d);
  }
  j["programs"] = nlohmann::json::array();
  if (!loaded_.empty()) {
    for (const auto& name : loaded_[0].object.ProgramNames()) {
      auto fd = loaded_[0].object.ProgramFd(name);
      if (!fd.ok()) continue;
      auto info = GetProgramInfo(*fd);
      if (!info.ok()) continue;
      j["programs"].push_back({{"name", name},
                               {"id", info->id},
                               {"verified_insns", info->verified_insns}});
    }
  }
  j["prefilter_desired"] = desired_.prefilter.size();
  nlohmann::json hooks = nlohmann::json::array();
  for (const SockHook& h : kSockHooks) {
    struct stat st;
    if (::stat(CgroupLinkPin(h.program).c_str(), &st) == 0) hooks.push_back(h.program);
  }
  j["socket_lb"] = {{"enabled", cfg_.enable_socket_lb},
                    {"cgroup", cgroup_root_},
                    {"attached", hooks},
                    {"services", services_ ? services_->List().size() : 0},
                    {"maglev_table_size", cfg_.maglev_table_size}};
  nlohmann::json addrs = nlohmann::json::array();
  if (services_)
    for (const Service& sv : services_->List())
      for (const FrontendEntry& e : services_->Entries(sv))
        if (e.external) addrs.push_back(e.frontend.ToString());
  nlohmann::json nat = {{"port_range", absl::StrCat(cfg_.nat_port_min, "-", cfg_.nat_port_max)},
                        {"reserved_in", "net.ipv4.ip_local_reserved_ports"}};
  for (auto [key, map] : {std::pair{"v4", nat4_.get()}, std::pair{"v6", nat6_.get()}})
    if (map)
      if (auto n = CountEntries(map->fd(), sizeof(tnd_nat_key)); n.ok())
        nat[key] = {{"entries", *n}, {"max_entries", cfg_.nat_max_entries}};
  if (auto d = DropCount(cfg_.bpffs_root + "/" TND_MAP_METRICS, TND_DROP_NAT_EXHAUSTED); d.ok())
    nat["ports_exhausted_since_start"] = *d - nat_exhausted_at_start_;
  j["nat"] = nat;
  j["nodeport"] = {{"enabled", cfg_.enable_nodeport},
                   {"node_port_range", absl::StrCat(cfg_.node_port_min, "-", cfg_.node_port_max)},
                   {"external_frontends", addrs},
                   {"ct_gc_interval", cfg_.ct_gc_interval},
                   {"last_gc", last_gc_}};
  if (host_obj_) {
    for (const auto& name : host_obj_->ProgramNames()) {
      auto fd = host_obj_->ProgramFd(name);
      if (!fd.ok()) continue;
      auto info = GetProgramInfo(*fd);
      if (info.ok())
        j["programs"].push_back({{"name", name}, {"id", info->id}, {"verified_insns", info->verified_insns}});
    }
  }
  if (lxc_obj_) {
    for (const auto& name : lxc_obj_->ProgramNames()) {
      auto fd = lxc_obj_->ProgramFd(name);
      if (!fd.ok()) continue;
      auto info = GetProgramInfo(*fd);
      if (info.ok())
        j["programs"].push_back({{"name", name}, {"id", info->id}, {"verified_insns", info->verified_insns}});
    }
  }
  {
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
  }
  if (sock_obj_) {
    for (const auto& name : sock_obj_->ProgramNames()) {
      auto fd = sock_obj_->ProgramFd(name);
      if (!fd.ok()) continue;
      auto info = GetProgramInfo(*fd);
      if (info.ok())
        j["programs"].push_back({{"name", name}, {"id", info->id}, {"verified_insns", info->verified_insns}});
    }
  }
  return j;
}

absl::StatusOr<nlohmann::json> Agent::PrefilterAdd(const std::vector<std::string>& texts) {
  TND_ASSIGN_OR_RETURN(std::vector<Cidr> cidrs, ParseCidrList(texts));
  std::set<Cidr> want = desired_.prefilter;
  nlohmann::json added = nlohmann::json::array(), present = nlohmann::json::array();
  for (const Cidr& c : cidrs) {
    if (want.insert(c).second)
      added.push_back(c.ToString());
    else
      present.push_back(c.ToString());
  }
  TND_RETURN_IF_ERROR(CheckPrefilterCapacity(want));
  TND_RETURN_IF_ERROR(SyncPrefilter(want));
  DesiredState next = desired_;
  next.prefilter = want;
  if (auto s = store_.Save(next); !s.ok()) {
    (void)SyncPrefilter(desired_.prefilter);
    return Annotate(s, "persist desired state (maps rolled back)");
  }
  desired_.prefilter = std::move(want);
  return nlohmann::json{{"added", added}, {"already_present", present}};
}

absl::StatusOr<nlohmann::json> Agent::PrefilterDelete(const std::vector<std::string>& texts) {
  TND_ASSIGN_OR_RETURN(std::vector<Cidr> cidrs, ParseCidrList(texts));
  std::set<Cidr> want = desired_.prefilter;
  std::vector<std::string> missing;
  nlohmann::json deleted = nlohmann::json::array();
  for (const Cidr& c : cidrs) {
    if (want.erase(c))
      deleted.push_back(c.ToString());
    else if (!desired_.prefilter.count(c))
      missing.push_back(c.ToString());
  }
  if (!missing.empty())
    return absl::NotFoundError(absl::StrCat("not in the prefilter: ", absl::StrJoin(missing, ", "),
                                            " (nothing deleted)"));
  TND_RETURN_IF_ERROR(SyncPrefilter(want));
  DesiredState next = desired_;
  next.prefilter = want;
  if (auto s = store_.Save(next); !s.ok()) {
    (void)SyncPrefilter(desired_.prefilter);
    return Annotate(s, "persist desired state (maps rolled back)");
  }
  desired_.prefilter = std::move(want);
  return nlohmann::json{{"deleted", deleted}};
}

nlohmann::json Agent::PrefilterList() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Cidr& c : desired_.prefilter)
    out.push_back({{"cidr", c.ToString()}, {"family", c.family == Family::kV4 ? "ipv4" : "ipv6"}});
  return out;
}

absl::Status Agent::PersistServices() {
  // desired_ is what the state file holds: the services as they were before
  // this change, and what the maps go back to if the file cannot be written.
  DesiredState next;
  next.prefilter = desired_.prefilter;
  next.endpoints = desired_.endpoints;
  next.services = services_->List();
  if (auto s = store_.Save(next); !s.ok()) {
    (void)services_->Restore(desired_.services);
    return Annotate(s, "persist desired state (maps rolled back)");
  }
  desired_ = std::move(next);
  return absl::OkStatus();
}

absl::StatusOr<uint16_t> Agent::ServiceIdFromArgs(const nlohmann::json& a) const {
  if (a.contains("id")) {
    if (!a["id"].is_number_integer() || a["id"].get<int64_t>() < 1 || a["id"].get<int64_t>() > 65535)
      return absl::InvalidArgumentError("service id must be a number in 1-65535");
    uint16_t id = static_cast<uint16_t>(a["id"].get<int64_t>());
    if (!services_->Get(id)) return absl::NotFoundError(absl::StrCat("no service with id ", id));
    return id;
  }
  if (a.contains("frontend") && a["frontend"].is_string()) {
    TND_ASSIGN_OR_RETURN(Frontend f, ParseFrontend(a["frontend"].get<std::string>()));
    return services_->IdOf(f);
  }
  return absl::InvalidArgumentError("give a service id or a frontend");
}

absl::StatusOr<nlohmann::json> Agent::ServiceAdd(const nlohmann::json& a) {
  if (!a.contains("service")) return absl::InvalidArgumentError("missing argument \"service\"");
  TND_ASSIGN_OR_RETURN(Service s, ServiceFromJson(a["service"]));
  TND_ASSIGN_OR_RETURN(Service added, services_->Add(s));
  TND_RETURN_IF_ERROR(PersistServices());
  SyncHealth();
  TND_LOG_INFO("service ", added.id, " ", added.frontend.ToString(), " added with ",
               added.backends.size(), " backends (", services_->last_stats().writes, " map writes)");
  return ServiceToJson(added);
}

absl::StatusOr<nlohmann::json> Agent::ServiceApply(const nlohmann::json& a) {
  if (!a.contains("services") || !a["services"].is_array())
    return absl::InvalidArgumentError("missing argument \"services\" (an array of services)");
  std::vector<Service> desired;
  desired.reserve(a["services"].size());
  for (size_t i = 0; i < a["services"].size(); ++i) {
    auto s = ServiceFromJson(a["services"][i]);
    if (!s.ok()) return Annotate(s.status(), absl::StrCat("services[", i, "]"));
    desired.push_back(std::move(*s));
  }
  auto rs = services_->Replace(std::move(desired));
  if (!rs.ok()) {
    // Replace checks everything before it writes; a kernel error half way
    // puts the previous set back.
    if (services_->last_stats().writes || services_->last_stats().deletes)
      if (auto r = services_->Restore(desired_.services); !r.ok())
        TND_LOG_ERROR("restoring the services after a failed apply: ", r.status().message());
    return rs.status();
  }
  TND_RETURN_IF_ERROR(PersistServices());
  SyncHealth();
  TND_LOG_INFO("services applied: ", services_->List().size(), " declared (", rs->added, " added, ", rs->changed,
               " changed, ", rs->removed, " removed; ", rs->writes, " map writes, ", rs->deletes, " deletes)");
  return nlohmann::json{{"services", services_->List().size()}, {"added", rs->added}, {"changed", rs->changed},
                        {"removed", rs->removed}, {"map_writes", rs->writes}, {"map_deletes", rs->deletes}};
}

absl::StatusOr<nlohmann::json> Agent::ServiceUpdate(const nlohmann::json& a) {
  TND_ASSIGN_OR_RETURN(uint16_t id, ServiceIdFromArgs(a));
  tendril::ServiceUpdate u;
  if (a.contains("backends")) {
    TND_ASSIGN_OR_RETURN(auto texts, Strings(a, "backends"));
    std::vector<Backend> bs;
    for (const auto& t : texts) {
      TND_ASSIGN_OR_RETURN(Backend b, ParseBackend(t));
      bs.push_back(b);
    }
    u.backends = bs;
  }
  if (a.contains("states")) {
    if (!a["states"].is_object()) return absl::InvalidArgumentError("states must map ADDR:PORT to a state");
    for (const auto& [addr, st] : a["states"].items()) {
      if (!st.is_string()) return absl::InvalidArgumentError("states must map ADDR:PORT to a state");
      TND_ASSIGN_OR_RETURN(BackendState bs, ParseBackendState(st.get<std::string>()));
      u.states.emplace_back(addr, bs);
    }
  }
  if (a.contains("algorithm")) {
    TND_ASSIGN_OR_RETURN(Algorithm al, ParseAlgorithm(a.value("algorithm", std::string())));
    u.algorithm = al;
  }
  if (a.contains("affinity_timeout")) {
    TND_ASSIGN_OR_RETURN(int64_t t, jsonf::Int(a, "affinity_timeout", 0, 604800, 0));
    u.affinity_timeout = static_cast<uint32_t>(t);
  }
  if (a.contains("traffic_policy")) {
    TND_ASSIGN_OR_RETURN(std::string text, jsonf::String(a, "traffic_policy", ""));
    TND_ASSIGN_OR_RETURN(TrafficPolicy tp, ParseTrafficPolicy(text));
    u.traffic_policy = tp;
  }
  if (a.contains("internal_traffic_policy")) {
    TND_ASSIGN_OR_RETURN(std::string text, jsonf::String(a, "internal_traffic_policy", ""));
    TND_ASSIGN_OR_RETURN(TrafficPolicy tp, ParseTrafficPolicy(text));
    u.internal_traffic_policy = tp;
  }
  if (a.contains("source_ranges")) {
    TND_ASSIGN_OR_RETURN(auto texts, Strings(a, "source_ranges"));
    TND_ASSIGN_OR_RETURN(std::vector<Cidr> cidrs, ParseCidrList(texts));
    u.source_ranges = cidrs;
  }
  if (a.contains("external_ips")) {
    TND_ASSIGN_OR_RETURN(auto texts, Strings(a, "external_ips"));
    std::vector<IpAddr> ips;
    for (const auto& t : texts) {
      TND_ASSIGN_OR_RETURN(IpAddr ip, ParseIp(t));
      ips.push_back(ip);
    }
    u.external_ips = ips;
  }
  if (a.contains("dsr")) {
    if (!a["dsr"].is_boolean()) return absl::InvalidArgumentError("dsr must be true or false");
    u.dsr = a["dsr"].get<bool>();
  }
  TND_ASSIGN_OR_RETURN(Service updated, services_->Update(id, u));
  TND_RETURN_IF_ERROR(PersistServices());
  SyncHealth();
  TND_LOG_INFO("service ", id, " updated (", services_->last_stats().writes, " map writes, ",
               services_->last_stats().deletes, " deletes)");
  return ServiceToJson(updated);
}

absl::StatusOr<nlohmann::json> Agent::ServiceDelete(const nlohmann::json& a) {
  TND_ASSIGN_OR_RETURN(uint16_t id, ServiceIdFromArgs(a));
  TND_ASSIGN_OR_RETURN(Service gone, services_->Delete(id));
  TND_RETURN_IF_ERROR(PersistServices());
  SyncHealth();
  TND_LOG_INFO("service ", id, " ", gone.frontend.ToString(), " deleted");
  return ServiceToJson(gone);
}

absl::StatusOr<nlohmann::json> Agent::ServiceGet(const nlohmann::json& a) const {
  TND_ASSIGN_OR_RETURN(uint16_t id, ServiceIdFromArgs(a));
  return ServiceToJson(*services_->Get(id));
}

nlohmann::json Agent::ServiceList() const {
  nlohmann::json out = nlohmann::json::array();
  if (services_)
    for (const Service& s : services_->List()) out.push_back(ServiceToJson(s));
  return out;
}

void Agent::RegisterApi(ApiServer& api) {
  api.Register("status", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return StatusJson();
  });
  api.Register("prefilter.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return PrefilterList();
  });
  api.Register("prefilter.add", [this](const nlohmann::json& a) -> absl::StatusOr<nlohmann::json> {
    TND_ASSIGN_OR_RETURN(auto cidrs, Strings(a, "cidrs"));
    return PrefilterAdd(cidrs);
  });
  api.Register("prefilter.delete", [this](const nlohmann::json& a) -> absl::StatusOr<nlohmann::json> {
    TND_ASSIGN_OR_RETURN(auto cidrs, Strings(a, "cidrs"));
    return PrefilterDelete(cidrs);
  });
  api.Register("service.add", [this](const nlohmann::json& a) { return ServiceAdd(a); });
  api.Register("service.update", [this](const nlohmann::json& a) { return ServiceUpdate(a); });
  api.Register("service.apply", [this](const nlohmann::json& a) { return ServiceApply(a); });
  api.Register("service.delete", [this](const nlohmann::json& a) { return ServiceDelete(a); });
  api.Register("service.get", [this](const nlohmann::json& a) { return ServiceGet(a); });
  api.Register("service.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return ServiceList();
  });
  api.Register("endpoint.add", [this](const nlohmann::json& a) { return EndpointAdd(a); });
  api.Register("endpoint.delete", [this](const nlohmann::json& a) { return EndpointDelete(a); });
  api.Register("endpoint.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return EndpointList();
  });
  api.Register("conntrack.gc", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return ConntrackGc();
  });
}

}  // namespace tendril
