// The agent's lifecycle: start (restore desired state, compile, load, fill
// the maps, attach), and cleanup. The API handlers of each domain are in
// agent_services.cc, agent_endpoints.cc, agent_prefilter.cc; status in
// agent_status.cc; the poll loop's timers and events in agent_loop.cc.
#include "agent/agent.h"
#include "agent/k8s_watch.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "agent/map_sizes.h"
#include "agent/nat_ports.h"
#include "common/clock.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "datapath/attach.h"
#include "datapath/bpffs.h"
#include "datapath/node_maps.h"
#include "datapath/object_record.h"
#include "datapath/programs.h"
#include "maps/abi.h"

namespace tendril {

Agent::Agent(AgentConfig cfg, AgentSeams seams)
    : cfg_(std::move(cfg)), seams_(std::move(seams)), paths_(cfg_.bpffs_root) {}
Agent::~Agent() = default;

absl::StatusOr<NodeFacts> Agent::GatherFacts() const { return GatherNodeFacts(cfg_.devices); }

LoadOptions Agent::Options(const std::string& path) const {
  LoadOptions lo;
  lo.object_path = path;
  lo.pin_root = cfg_.bpffs_root;
  // Every object names the shared maps; all must ask for the same sizes, or
  // one would replace the pins of another.
  lo.max_entries = MapSizes(cfg_, NodeMemoryBytes());
  return lo;
}

absl::StatusOr<Agent::Loaded> Agent::LoadObject(const std::string& path,
                                                const std::string& offload_dev) {
  LoadOptions lo = Options(path);
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
  TND_ASSIGN_OR_RETURN(int state, obj->MapFd(TND_MAP_PREFILTER_STATE));
  Loaded l{std::move(*obj), nullptr, offload_dev};
  l.prefilter = std::make_unique<Prefilter>(PrefilterV4Map(Dup(v4), TND_MAP_PREFILTER_V4),
                                            PrefilterV6Map(Dup(v6), TND_MAP_PREFILTER_V6),
                                            PrefilterStateMap(Dup(state), TND_MAP_PREFILTER_STATE));
  return l;
}

absl::Status Agent::Persist(const StateChange& c, const std::function<void()>& undo) {
  if (auto s = store_->Commit(c); !s.ok()) {
    if (undo) undo();
    return Annotate(s, undo ? "persist desired state (maps rolled back)" : "persist desired state");
  }
  return absl::OkStatus();
}

absl::Status Agent::Start() {
  started_at_ = NowUtcText();
  TND_RETURN_IF_ERROR(MakeDirs(cfg_.state_dir, 0700));
  TND_ASSIGN_OR_RETURN(StateStore store, StateStore::Open(cfg_.state_dir, seams_.state_vfs));
  store_.emplace(std::move(store));
  TND_ASSIGN_OR_RETURN(desired_, store_->Load());
  TND_LOG_INFO("desired state from ", store_->path(), ": ", desired_.services.size(), " services, ",
               desired_.endpoints.size(), " endpoints, ", desired_.prefilter.size(), " prefilter CIDRs");
  // The cluster's configuration is checked before anything is touched; its
  // changes wait on the eventfd until the main loop runs.
  TND_RETURN_IF_ERROR(StartK8s());
  TND_RETURN_IF_ERROR(EnsureBpffs(cfg_.bpffs_root));
  // Socket programs (services, next) attach here; checked now so that a bad
  // setting fails at start, not at the first service.
  TND_ASSIGN_OR_RETURN(cgroup_root_, ResolveCgroupRoot(cfg_.cgroup_root));
  TND_ASSIGN_OR_RETURN(NodeFacts facts, GatherFacts());
  TND_RETURN_IF_ERROR(ReserveNatPorts({cfg_.nat_port_min, cfg_.nat_port_max}));
  // Drops are counted in the pinned metrics, which outlive agents: status
  // reports those since this start.
  nat_exhausted_at_start_ = DropCount(paths_.Map(TND_MAP_METRICS), TND_DROP_NAT_EXHAUSTED).value_or(0);

  CompileRequest req;
  req.src_dir = cfg_.bpf_dir;
  req.cache_dir = cfg_.BpfCacheDir();
  req.clang = cfg_.clang;
  req.config_header = RenderConfigHeader(Features{cfg_.enable_ipv4, cfg_.enable_ipv6, /*prefilter=*/true,
                                                  /*nodeport=*/true, cfg_.enable_masquerade, cfg_.maglev_table_size,
                                                  cfg_.nat_port_min, cfg_.nat_port_max});
  if (cfg_.bpf_object_dir.empty()) {
    TND_ASSIGN_OR_RETURN(compiled_, CompileBpf(req));
  } else {
    compiled_ = CompileResult{"prebuilt", "prebuilt objects (--bpf-object-dir)", {}, true};
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
  // For `tendril explain`: the objects now attached, loadable with the agent down.
  if (auto s = WriteObjectRecord(cfg_.state_dir, {cfg_.bpffs_root, compiled_.object_paths, compiled_.key, cgroup_root_}); !s.ok())
    TND_LOG_WARN("record the BPF objects for explain: ", s.message());
  SyncHealthAll();
  UpdateHopsShared();
  BumpGeneration();  // flows cached by the agent before this one decide again
  next_gc_ = BpfClockSeconds() + cfg_.ct_gc_interval;
  StartNodeHttp();
  return absl::OkStatus();
}

absl::Status Agent::SyncDevices(const NodeFacts& facts) {
  TND_ASSIGN_OR_RETURN(UniqueFd fd, PinnedFd(TND_MAP_DEVICES));
  return SyncDeviceMap(fd.get(), facts.devices, cfg_.enable_ipv4, cfg_.enable_ipv6);
}

absl::Status Agent::AttachTcAll() {
  TND_ASSIGN_OR_RETURN(int in_fd, host_obj_->ProgramFd(kHostIngressProgram));
  TND_ASSIGN_OR_RETURN(int out_fd, host_obj_->ProgramFd(kHostEgressProgram));
  TND_ASSIGN_OR_RETURN(ProgramInfo info, GetProgramInfo(in_fd));
  TND_RETURN_IF_ERROR(host_obj_->PinTailCallMaps(paths_.CallsDir(), std::to_string(info.id)));
  for (const auto& dev : cfg_.devices) {
    if (!cfg_.enable_nodeport) {
      TND_RETURN_IF_ERROR(DetachTc(dev, TcDir::kIngress, paths_.LinksDir()));
      TND_RETURN_IF_ERROR(DetachTc(dev, TcDir::kEgress, paths_.LinksDir()));
      continue;
    }
    TND_ASSIGN_OR_RETURN(TcBackend b, AttachTc({dev, TcDir::kIngress, in_fd, paths_.LinksDir(), false}));
    TND_RETURN_IF_ERROR(AttachTc({dev, TcDir::kEgress, out_fd, paths_.LinksDir(), false}).status());
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

absl::Status Agent::StartSocketLb(const std::string& object_path) {
  if (!cfg_.enable_socket_lb) {
    for (const SockHook& h : kSockHooks) TND_RETURN_IF_ERROR(DetachCgroup(paths_.CgroupLink(h.program)));
    TND_LOG_INFO("socket LB disabled");
    return absl::OkStatus();
  }
  TND_ASSIGN_OR_RETURN(BpfObject obj, BpfObject::Load(Options(object_path)));
  sock_obj_.emplace(std::move(obj));
  TND_RETURN_IF_ERROR(WriteNodeInfo());
  for (const SockHook& h : kSockHooks) {
    if (h.v6 ? !cfg_.enable_ipv6 : !cfg_.enable_ipv4) {
      TND_RETURN_IF_ERROR(DetachCgroup(paths_.CgroupLink(h.program)));
      continue;
    }
    TND_ASSIGN_OR_RETURN(int fd, sock_obj_->ProgramFd(h.program));
    TND_RETURN_IF_ERROR(AttachCgroup(cgroup_root_, h.type, fd, paths_.CgroupLink(h.program)));
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
    TND_RETURN_IF_ERROR(l.object.PinTailCallMaps(paths_.CallsDir(), std::to_string(info.id)));
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

void Agent::PruneTailCallPins() {
  std::set<std::string> keep;
  for (const auto& l : loaded_)
    for (const auto& p : l.object.tail_call_pins()) keep.insert(p);
  if (host_obj_)
    for (const auto& p : host_obj_->tail_call_pins()) keep.insert(p);
  if (lxc_obj_)
    for (const auto& p : lxc_obj_->tail_call_pins()) keep.insert(p);
  std::error_code ec;
  for (const auto& e : std::filesystem::directory_iterator(paths_.CallsDir(), ec)) {
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
      if (auto st = DetachTc(dev, d, paths_.LinksDir()); !st.ok()) {
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
    if (auto st = DetachCgroup(paths_.CgroupLink(h.program)); !st.ok() && first.ok()) first = st;
  }
  std::filesystem::remove(paths_.LinksDir(), ec0);
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
  std::filesystem::remove(paths_.CallsDir(), ec);
  std::filesystem::remove(cfg_.bpffs_root, ec);  // only if empty: foreign pins stay
  TND_LOG_INFO("cleanup: removed pins under ", cfg_.bpffs_root);
  return first;
}

}  // namespace tendril
