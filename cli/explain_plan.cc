#include "cli/explain_plan.h"

#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"
#include "datapath/attach.h"
#include "datapath/loader.h"
#include "datapath/programs.h"
#include "maps/pinned_map.h"

namespace tendril::cli {
namespace {

absl::StatusOr<Mac> DeviceMac(const std::string& dev) {
  UniqueFd s(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!s.valid()) return ErrnoError(errno, "open a socket to read a device's MAC");
  ifreq r{};
  std::strncpy(r.ifr_name, dev.c_str(), IFNAMSIZ - 1);
  if (::ioctl(s.get(), SIOCGIFHWADDR, &r) != 0) return ErrnoError(errno, absl::StrCat("read the MAC of ", dev));
  Mac m;
  std::memcpy(m.data(), r.ifr_hwaddr.sa_data, 6);
  return m;
}

// Is tendril's program attached at this hook? (The answer names it if not.)
absl::Status CheckAttached(const Globals& g, const HookPlan& h);

// The hooks `o` asks for, unchecked.
absl::StatusOr<std::vector<HookPlan>> WantedHooks(const ExplainOpts& o, const Where& w);

}  // namespace

absl::StatusOr<Where> ResolveDevice(const std::string& dev) {
  const unsigned idx = if_nametoindex(dev.c_str());
  if (idx == 0) return absl::InvalidArgumentError(absl::StrCat("device \"", dev, "\" does not exist in this network namespace"));
  TND_ASSIGN_OR_RETURN(Mac mac, DeviceMac(dev));
  return Where{dev, idx, mac, std::nullopt};
}

absl::StatusOr<Where> ResolveEndpoint(const Globals& g, int id) {
  auto m = Map<tnd_ep_key, tnd_endpoint>::OpenPin(g.pins().Map(TND_MAP_ENDPOINTS), TND_MAP_ENDPOINTS);
  if (!m.ok()) return Annotate(m.status(), "read the endpoints (is the datapath loaded?)");
  std::optional<tnd_endpoint> found;
  TND_RETURN_IF_ERROR(m->ForEach([&](const tnd_ep_key&, const tnd_endpoint& e) {
    if (static_cast<int>(e.id) == id) found = e;
  }));
  if (!found) return absl::InvalidArgumentError(absl::StrCat("endpoint ", id, " is not on this node"));
  char name[IF_NAMESIZE] = {};
  if (!if_indextoname(found->ifindex, name))
    return absl::InvalidArgumentError(absl::StrCat("endpoint ", id, "'s veth (ifindex ", found->ifindex, ") is gone"));
  Where w{name, found->ifindex, {}, Mac{}};
  std::memcpy(w.local_mac.data(), found->node_mac, 6);
  std::memcpy(w.ep_mac->data(), found->mac, 6);
  return w;
}

int EndpointByAddress(const Globals& g, const IpAddr& ip) {
  auto m = Map<tnd_ep_key, tnd_endpoint>::OpenPin(g.pins().Map(TND_MAP_ENDPOINTS), TND_MAP_ENDPOINTS);
  if (!m.ok()) return 0;
  tnd_ep_key k{};
  std::memcpy(k.addr, ip.bytes.data(), ip.family == Family::kV4 ? 4 : 16);
  k.family = ip.family == Family::kV4 ? 4 : 6;
  auto v = m->Lookup(k);
  return v.ok() && *v ? static_cast<int>((*v)->id) : 0;
}

namespace {

absl::Status CheckAttached(const Globals& g, const HookPlan& h) {
  uint32_t prog_id = 0;
  if (h.kind == RunCtx::kXdp) {
    TND_ASSIGN_OR_RETURN(auto x, QueryXdp(h.device));
    if (x) prog_id = x->prog_id;
  } else {
    const TcDir dir = h.program == kHostEgressProgram || h.program == kLxcEgressProgram ? TcDir::kEgress : TcDir::kIngress;
    TND_ASSIGN_OR_RETURN(auto t, QueryTc(h.device, dir, g.pins().LinksDir()));
    if (t) prog_id = t->prog_id;
  }
  if (prog_id) {
    auto info = GetProgramInfoById(prog_id);
    if (info.ok() && IsOwnedProgram(info->name)) return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat("hook ", h.hook, " has no tendril program on ", h.device));
}

absl::StatusOr<std::vector<HookPlan>> WantedHooks(const ExplainOpts& o, const Where& w) {
  auto plan = [&](const char* hook, const char* obj, const char* prog, RunCtx k) {
    return HookPlan{hook, obj, prog, k, w.device, w.ifindex};
  };
  std::string hook = o.hook;
  if (o.endpoint) {
    if (hook.empty() || hook == "lxc") return std::vector<HookPlan>{plan("lxc", "bpf_lxc", kLxcIngressProgram, RunCtx::kTc)};
    return absl::InvalidArgumentError(absl::StrCat("--hook ", hook, " with --endpoint: only lxc (what the endpoint sends)"));
  }
  if (hook.empty()) hook = "ingress";
  if (hook == "xdp") return std::vector<HookPlan>{plan("xdp", "bpf_xdp", kXdpEntryProgram, RunCtx::kXdp)};
  if (hook == "tc-ingress") return std::vector<HookPlan>{plan("tc-ingress", "bpf_host", kHostIngressProgram, RunCtx::kTc)};
  if (hook == "tc-egress") return std::vector<HookPlan>{plan("tc-egress", "bpf_host", kHostEgressProgram, RunCtx::kTc)};
  if (hook == "ingress")
    return std::vector<HookPlan>{plan("xdp", "bpf_xdp", kXdpEntryProgram, RunCtx::kXdp),
                                 plan("tc-ingress", "bpf_host", kHostIngressProgram, RunCtx::kTc)};
  if (hook == "lxc") return absl::InvalidArgumentError("--hook lxc needs --endpoint ID");
  return absl::InvalidArgumentError(absl::StrCat("--hook \"", hook, "\": not xdp, tc-ingress, tc-egress, ingress or lxc"));
}

}  // namespace

absl::StatusOr<std::vector<HookPlan>> PlanHooks(const Globals& g, const ExplainOpts& o, const Where& w) {
  TND_ASSIGN_OR_RETURN(std::vector<HookPlan> hooks, WantedHooks(o, w));
  if (hooks.size() == 2 && !CheckAttached(g, hooks[0]).ok())
    hooks.erase(hooks.begin());  // "ingress" on a device without tendril's XDP: tc alone
  for (const HookPlan& h : hooks) {
    if (auto s = CheckAttached(g, h); !s.ok()) {
      if (o.hook.empty() && !o.endpoint)
        return absl::InvalidArgumentError(absl::StrCat("device ", w.device, " has no tendril program at ingress"));
      return s;
    }
  }
  return hooks;
}

absl::StatusOr<Bytes> FrameFor(const ExplainOpts& o, const PacketSpec& p, const Where& w) {
  Mac peer = {0x02, 0, 0, 0, 0, 0x01};  // a neighbour's, unless given
  Mac src, dst;
  if (w.ep_mac) {
    src = *w.ep_mac;
    dst = w.local_mac;
  } else if (o.hook == "tc-egress") {
    src = w.local_mac;
    dst = peer;
  } else {
    src = peer;
    dst = w.local_mac;
  }
  if (!o.src_mac.empty()) {
    auto m = ParseMac(o.src_mac);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("--src-mac: ", m.status().message()));
    src = *m;
  }
  if (!o.dst_mac.empty()) {
    auto m = ParseMac(o.dst_mac);
    if (!m.ok()) return absl::InvalidArgumentError(absl::StrCat("--dst-mac: ", m.status().message()));
    dst = *m;
  }
  return BuildFrame(p, dst, src);
}

}  // namespace tendril::cli
