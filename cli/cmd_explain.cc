// `tendril explain`: what the node would do with a packet, asked of its own
// programs in a dry run on its live maps (explain/, bpf/lib/explain.h).
// Works with the agent down: the objects come from the agent's record in
// its state directory, the maps from the pins.
#include <net/if.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <optional>

#include "absl/strings/str_cat.h"
#include "cli/cli.h"
#include "explain/packet_spec.h"
#include "common/fd.h"
#include "common/status.h"
#include "datapath/attach.h"
#include "datapath/object_record.h"
#include "datapath/programs.h"
#include "explain/report.h"
#include "maps/pinned_map.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

struct ExplainOpts {
  std::string proto, src, dst, flags, device, hook, src_mac, dst_mac;
  std::string state_dir = "/var/lib/tendril";
  int endpoint = 0;
  int vlan = 0;
};

// One program the packet meets: the object and program the node attached
// there, how the kernel runs it, where.
struct HookPlan {
  std::string hook, object, program;
  RunCtx kind;
  std::string device;
  uint32_t ifindex;
};

// Where the packet enters: a device or an endpoint's veth, its MACs.
struct Where {
  std::string device;
  uint32_t ifindex = 0;
  Mac local_mac{};             // the device's, or the endpoint's gateway (host side)
  std::optional<Mac> ep_mac;   // the endpoint's own
};

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

// Is tendril's program attached at this hook? (The answer names it if not.)
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

absl::StatusOr<std::vector<HookPlan>> PlanHooks(const ExplainOpts& o, const Where& w) {
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
  if (hook == "sock")
    return absl::InvalidArgumentError("--hook sock: explaining the socket programs is not built yet (see README)");
  return absl::InvalidArgumentError(absl::StrCat("--hook \"", hook, "\": not xdp, tc-ingress, tc-egress, ingress or lxc"));
}

// The frame as it arrives at the first hook.
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

std::string ResultText(const json& h) {
  const std::string v = h.value("verdict", "");
  if (v == "drop") return absl::StrCat("dropped at ", h.value("hook", ""), ": ", h.value("drop_reason", "?"));
  if (h.contains("reply")) return absl::StrCat("answered at ", h.value("hook", ""), ": ", h["reply"].get<std::string>());
  if (v == "redirect" || v == "tx")
    return absl::StrCat("forwarded by ", h.value("hook", ""), " to ", h["redirect"].value("device", "?"),
                        h.contains("backend") ? absl::StrCat(", backend ", h["backend"].value("address", "?")) : "");
  return absl::StrCat("passed to the kernel's stack by ", h.value("hook", ""),
                      h.contains("backend") ? absl::StrCat(", backend ", h["backend"].value("address", "?")) : "");
}

absl::StatusOr<json> Explain(const Globals& g, const ExplainOpts& o) {
  TND_ASSIGN_OR_RETURN(PacketSpec p, ParsePacket(o.proto, o.src, o.dst, o.flags, o.vlan));
  if (o.device.empty() == (o.endpoint == 0))
    return absl::InvalidArgumentError("name where the packet enters: --device DEV or --endpoint ID (one of them)");
  TND_ASSIGN_OR_RETURN(Where w, o.endpoint ? ResolveEndpoint(g, o.endpoint) : ResolveDevice(o.device));
  TND_ASSIGN_OR_RETURN(std::vector<HookPlan> hooks, PlanHooks(o, w));
  if (o.hook == "xdp" || o.hook == "tc-ingress" || o.hook == "tc-egress" || o.endpoint)
    TND_RETURN_IF_ERROR(CheckAttached(g, hooks[0]));
  else if (!CheckAttached(g, hooks[0]).ok())  // "ingress" on a device without tendril's XDP: tc alone
    hooks.erase(hooks.begin());
  if (!CheckAttached(g, hooks.back()).ok())
    return absl::InvalidArgumentError(absl::StrCat("device ", w.device, " has no tendril program at ingress"));
  TND_ASSIGN_OR_RETURN(Bytes frame, FrameFor(o, p, w));
  auto rec = ReadObjectRecord(o.state_dir);
  if (!rec.ok()) return absl::FailedPreconditionError(rec.status().message());
  DryRunner runner(rec->objects, rec->bpffs_root.empty() ? g.bpffs_root : rec->bpffs_root);
  BpffsPaths pins(rec->bpffs_root.empty() ? g.bpffs_root : rec->bpffs_root);
  json report = {{"packet", {{"summary", p.Summary()}, {"device", w.device}, {"ifindex", w.ifindex}}},
                 {"hooks", json::array()}};
  for (const HookPlan& h : hooks) {
    if (h.kind == RunCtx::kTc && p.vlan && !o.endpoint) {
      report["hooks"].push_back({{"hook", h.hook}, {"device", h.device}, {"verdict", "pass"}, {"programs", {h.program}},
                                 {"steps", json::array()},
                                 {"not_run", "the kernel takes the VLAN tag off before tc, and tendril's tc programs leave "
                                             "tagged packets to the VLAN device's stack"}});
      break;
    }
    TND_ASSIGN_OR_RETURN(DryRunOutcome out, runner.Run(h.object, h.program, h.kind, frame, h.ifindex));
    ExplainedHook eh{h.hook, h.kind, h.device, frame, out};
    report["hooks"].push_back(DescribeHook(eh, pins));
    if (VerdictName(h.kind, out.retval) != "pass") break;
    frame = out.out;  // what XDP passed on is what tc sees
  }
  report["result"] = ResultText(report["hooks"].back());
  const json& last = report["hooks"].back();
  for (const json& s : last.value("steps", json::array()))
    if (s.value("step", "") == "slot-random")
      report["note"] = "the service picks a slot at random for a new flow: a real packet may take another backend";
  return report;
}

}  // namespace

void AddExplainCommand(CLI::App& app, Cli& c) {
  auto o = std::make_shared<ExplainOpts>();
  auto* cmd = app.add_subcommand("explain", "what the node would do with a packet: its own programs in a dry run "
                                            "on the live maps (changes nothing; works with the agent down)");
  cmd->add_option("proto", o->proto, "tcp, udp or icmp")->required();
  cmd->add_option("src", o->src, "SRC[:PORT] (IPv6: [ADDR]:PORT)")->required();
  cmd->add_option("dst", o->dst, "DST[:PORT]")->required();
  cmd->add_option("--device", o->device, "the device the packet arrives on (or leaves by, --hook tc-egress)");
  cmd->add_option("--endpoint", o->endpoint, "the endpoint (pod) that sends the packet");
  cmd->add_option("--hook", o->hook, "ingress (XDP, then tc if XDP passes; the default), xdp, tc-ingress, "
                                     "tc-egress; lxc with --endpoint");
  cmd->add_option("--flags", o->flags, "TCP flags, e.g. S (default), A, FA, R");
  cmd->add_option("--vlan", o->vlan, "an 802.1Q tag");
  cmd->add_option("--src-mac", o->src_mac, "source MAC (default: a neighbour's, 02:00:00:00:00:01)");
  cmd->add_option("--dst-mac", o->dst_mac, "destination MAC (default: the device's)");
  cmd->add_option("--state-dir", o->state_dir, "the agent's state directory (its record of the objects)");
  cmd->callback([&c, o] {
    auto r = Explain(c.g, *o);
    if (!r.ok()) {
      c.rc = Fail(r.status());
      return;
    }
    if (c.g.json()) PrintJson(*r);
    else std::printf("%s", RenderExplanation(*r).c_str());
  });
}

}  // namespace tendril::cli
