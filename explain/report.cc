#include "explain/report.h"

#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>
#include <netinet/in.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "explain/frame_inspect.h"
#include "lb/service_codec.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "network/addr.h"

namespace tendril {
namespace {

using nlohmann::json;

bool Has(const tnd_explain& x, int step) { return (x.steps >> step) & 1; }

std::string DeviceName(uint32_t ifindex) {
  char name[IF_NAMESIZE] = {};
  if (ifindex && if_indextoname(ifindex, name)) return name;
  return absl::StrCat("ifindex ", ifindex);
}

const char* FibResult(int rc) {
  switch (rc) {
    case BPF_FIB_LKUP_RET_SUCCESS: return "found, neighbour known";
    case BPF_FIB_LKUP_RET_BLACKHOLE: return "blackhole route";
    case BPF_FIB_LKUP_RET_UNREACHABLE: return "unreachable route";
    case BPF_FIB_LKUP_RET_PROHIBIT: return "prohibit route";
    case BPF_FIB_LKUP_RET_NOT_FWDED: return "not forwarded: an address of this node";
    case BPF_FIB_LKUP_RET_FWD_DISABLED: return "forwarding disabled on the device";
    case BPF_FIB_LKUP_RET_UNSUPP_LWT: return "needs encapsulation";
    case BPF_FIB_LKUP_RET_NO_NEIGH: return "found, neighbour not resolved";
    case BPF_FIB_LKUP_RET_FRAG_NEEDED: return "larger than the route's MTU";
    default: return "no route";
  }
}

const char* RedirectHow(uint8_t how) {
  switch (how) {
    case TND_XR_DEVICE: return "out of the device, MACs written (bpf_redirect)";
    case TND_XR_PEER: return "into the endpoint's namespace (bpf_redirect_peer)";
    case TND_XR_NEIGH: return "out of the device, the kernel resolves the MACs (bpf_redirect_neigh)";
    case TND_XR_TX: return "back out of the device it came in by (XDP_TX)";
    default: return "";
  }
}

std::string Proto(uint8_t p) {
  return p == IPPROTO_TCP ? "TCP" : p == IPPROTO_UDP ? "UDP" : p == IPPROTO_ICMP ? "ICMP"
                                                            : p == IPPROTO_ICMPV6 ? "ICMPv6"
                                                                                  : std::to_string(p);
}

std::string Endpoint(const FrameFacts& f, bool src) {
  const uint8_t* a = src ? f.src.data() : f.dst.data();
  const uint16_t port = src ? f.sport : f.dport;
  if (f.proto != IPPROTO_TCP && f.proto != IPPROTO_UDP) return AddrText(a, f.family);
  const uint16_t be = static_cast<uint16_t>((port >> 8) | (port << 8));
  return AddrPortText(a, be, f.family);
}

uint8_t HopLimit(const Bytes& b, const FrameFacts& f) {
  return f.family == 4 ? b[f.l3 + 8] : b[f.l3 + 7];
}

// Before -> after of everything a path rewrites; checksums as the kernel
// would check them.
json Rewrites(const Bytes& in, const Bytes& out) {
  json r = json::array();
  const FrameFacts a = Inspect(in), b = Inspect(out);
  if (!a.family || !b.family) return r;
  auto add = [&](const char* field, const std::string& x, const std::string& y) {
    if (x != y) r.push_back({{"field", field}, {"before", x}, {"after", y}});
  };
  add("destination MAC", MacToString(in.data()), MacToString(out.data()));
  add("source MAC", MacToString(in.data() + 6), MacToString(out.data() + 6));
  add("source", Endpoint(a, true), Endpoint(b, true));
  add("destination", Endpoint(a, false), Endpoint(b, false));
  add(a.family == 4 ? "TTL" : "hop limit", std::to_string(HopLimit(in, a)), std::to_string(HopLimit(out, b)));
  add("IP packet length", std::to_string(a.l3_end - a.l3), std::to_string(b.l3_end - b.l3));
  add("protocol", Proto(a.proto), Proto(b.proto));
  return r;
}

json Checksums(const Bytes& out) {
  const FrameFacts f = Inspect(out);
  json c;
  if (!f.family) return c;
  if (f.family == 4) c["ipv4_header"] = Ipv4HeaderChecksumOk(out) ? "valid" : "INVALID";
  if (f.has_l4 && f.whole) c[Proto(f.proto)] = f.l4_csum_ok ? "valid" : "INVALID";
  return c;
}

template <typename K>
std::optional<tnd_svc_val> Lookup(const BpffsPaths& pins, const char* map, const K& key) {
  auto m = Map<K, tnd_svc_val>::OpenPin(pins.Map(map), map);
  if (!m.ok()) return std::nullopt;
  auto v = m->Lookup(key);
  return v.ok() ? *v : std::nullopt;
}

// The frontend's master entry (external scope), keyed as the agent writes it.
std::optional<tnd_svc_val> ServiceEntry(const BpffsPaths& pins, const FrameFacts& f) {
  const Frontend fe{IpFromBytes(f.family == 4 ? Family::kV4 : Family::kV6, f.dst.data()), f.dport,
                    static_cast<L4Proto>(f.proto)};
  if (f.family == 4) return Lookup(pins, TND_MAP_SVC_V4, Key4(fe, TND_SCOPE_EXTERNAL, 0));
  return Lookup(pins, TND_MAP_SVC_V6, Key6(fe, TND_SCOPE_EXTERNAL, 0));
}

json ServiceJson(const BpffsPaths& pins, const FrameFacts& f, const tnd_explain& x) {
  json s = {{"id", x.svc_id}, {"frontend", absl::StrCat(Endpoint(f, false), "/", Proto(f.proto))}};
  auto v = ServiceEntry(pins, f);
  if (!v) return s;
  std::vector<std::string> flags;
  if (v->flags & TND_SVC_F_NODEPORT) flags.push_back("nodeport");
  if (v->flags & TND_SVC_F_EXTERNAL) flags.push_back("external");
  if (v->flags & TND_SVC_F_LOCAL) flags.push_back("traffic-policy-local");
  if (v->flags & TND_SVC_F_DSR) flags.push_back("dsr");
  if (v->flags & TND_SVC_F_SRCRANGE) flags.push_back("source-ranges");
  s["algorithm"] = (v->flags & TND_SVC_F_MAGLEV) ? "maglev" : "random";
  if (v->flags & TND_SVC_F_AFFINITY) s["affinity_timeout"] = v->affinity_timeout;
  s["active_slots"] = v->count;
  s["flags"] = flags;
  if (v->count == 0)
    s["empty"] = (v->xflags & TND_SVC_X_REJECT) ? "no usable endpoint anywhere: new flows are rejected"
                 : (v->flags & TND_SVC_F_LOCAL) ? "traffic policy Local and no endpoint on this node: dropped"
                                                : "no usable endpoint: dropped";
  return s;
}

json BackendJson(const BpffsPaths& pins, uint32_t id) {
  json b = {{"id", id}};
  auto m = Map<uint32_t, tnd_backend>::OpenPin(pins.Map(TND_MAP_BACKENDS), TND_MAP_BACKENDS);
  if (!m.ok()) return b;
  auto v = m->Lookup(id);
  if (!v.ok() || !*v) return b;
  const tnd_backend& be = **v;
  b["address"] = AddrPortText(be.addr, be.port, be.family);
  b["place"] = (be.flags & TND_BACKEND_F_HOST) ? "host" : (be.flags & TND_BACKEND_F_LOCAL) ? "local" : "remote";
  b["state"] = be.state == TND_BACKEND_ACTIVE ? "active" : be.state == TND_BACKEND_TERMINATING ? "terminating"
                                                                                              : "maintenance";
  if (be.state == TND_BACKEND_TERMINATING)
    b["why"] = "terminating, still serving: the service has no ready endpoint in this set (kube-proxy's fallback)";
  return b;
}

// The detail a step carries, if any.
std::string StepDetail(int bit, const tnd_explain& x) {
  switch (bit) {
    case TND_XS_MAGLEV: return absl::StrCat("position ", x.maglev_pos);
    case TND_XS_SLOT_HASH:
    case TND_XS_SLOT_RANDOM:
    case TND_XS_SLOT_FALLBACK: return absl::StrCat("slot ", x.slot);
    case TND_XS_FIB: return FibResult(x.fib_rc);
    case TND_XS_SNAT:
    case TND_XS_MASQUERADE: return absl::StrCat("port ", ntohs(x.snat_port));
    default: return "";
  }
}

json Steps(const tnd_explain& x) {
  json steps = json::array();
  for (const auto& s : abi::ExplainSteps()) {
    if (!Has(x, s.bit)) continue;
    json j = {{"step", s.name}, {"text", s.doc}};
    if (std::string d = StepDetail(s.bit, x); !d.empty()) j["detail"] = d;
    steps.push_back(j);
  }
  return steps;
}

bool RanLb(const tnd_explain& x) {
  for (int i = 0; i < x.nprogs && i < TND_EXPLAIN_MAX_PROGS; ++i)
    if (x.progs[i] == TND_XP_XDP_V4 || x.progs[i] == TND_XP_XDP_V6 || x.progs[i] == TND_XP_HOST_IN_V4 ||
        x.progs[i] == TND_XP_HOST_IN_V6)
      return true;
  return false;
}

// The steps of per-packet LB's service stage that the programs do not
// record (marks there cost 6.1's verifier 2.5x the instructions: see
// bpf/lib/nodeport.h): read from the maps and the frames instead, the same
// facts the stage decides on.
tnd_explain WithServiceSteps(const ExplainedHook& h, const BpffsPaths& pins, const FrameFacts& in) {
  tnd_explain x = h.run.rec;
  auto set = [&](int step) { x.steps |= 1ULL << step; };
  const bool lb = RanLb(x) && !Has(x, TND_XS_NOT_MINE) && !Has(x, TND_XS_NOT_LB) && !Has(x, TND_XS_NAT_REPLY) &&
                  !Has(x, TND_XS_DSR_LEARN) && (in.proto == IPPROTO_TCP || in.proto == IPPROTO_UDP);
  const auto svc = in.family ? ServiceEntry(pins, in) : std::nullopt;
  if (svc) {
    if (lb || Has(x, TND_XS_SERVICE)) {
      set(TND_XS_SERVICE);
      x.svc_id = svc->svc_id;
    }
    if (lb && !(svc->flags & TND_SVC_F_EXTERNAL)) set(TND_XS_NOT_EXTERNAL);
  } else if (lb && !x.backend_id) {
    set(TND_XS_NO_SERVICE);
  }
  if (Has(x, TND_XS_CT_BACKEND) || Has(x, TND_XS_CACHED_PATH)) set(TND_XS_CT_FOUND);
  if (!lb || !svc || !x.backend_id) return x;
  if ((svc->flags & TND_SVC_F_SRCRANGE) && x.drop_reason != TND_DROP_SOURCE_RANGE) set(TND_XS_SOURCE_RANGE_OK);
  const FrameFacts out = Inspect(h.run.out);
  if (out.family && (out.src != in.src || out.sport != in.sport)) {
    set(TND_XS_SNAT);
    x.snat_port = htons(out.sport);
  }
  if ((svc->flags & TND_SVC_F_DSR) && !(svc->flags & TND_SVC_F_LOCAL) && !Has(x, TND_XS_SNAT) &&
      BackendJson(pins, x.backend_id).value("place", "") == "remote")
    set(TND_XS_DSR);
  return x;
}

}  // namespace

std::string VerdictName(RunCtx kind, uint32_t retval) {
  if (kind == RunCtx::kXdp) {
    switch (retval) {
      case XDP_DROP: return "drop";
      case XDP_PASS: return "pass";
      case XDP_TX: return "tx";
      case XDP_REDIRECT: return "redirect";
      default: return "aborted";
    }
  }
  switch (static_cast<int>(retval)) {
    case TC_ACT_SHOT: return "drop";
    case TC_ACT_REDIRECT: return "redirect";
    default: return "pass";
  }
}

json DescribeHook(const ExplainedHook& h, const BpffsPaths& pins) {
  const FrameFacts f = Inspect(h.in);
  const tnd_explain x = WithServiceSteps(h, pins, f);
  json j = {{"hook", h.hook}, {"device", h.device}, {"verdict", VerdictName(h.kind, h.run.retval)}};
  std::vector<std::string> progs;
  for (int i = 0; i < x.nprogs && i < TND_EXPLAIN_MAX_PROGS; ++i) progs.push_back(abi::ExplainProgName(x.progs[i]));
  j["programs"] = progs;
  if (x.drop_reason) j["drop_reason"] = abi::DropReasonName(x.drop_reason);
  if (x.redirect_how)
    j["redirect"] = {{"ifindex", x.redirect_ifindex}, {"device", DeviceName(x.redirect_ifindex)},
                     {"how", RedirectHow(x.redirect_how)}};
  if (Has(x, TND_XS_SERVICE)) j["service"] = ServiceJson(pins, f, x);
  if (x.backend_id) j["backend"] = BackendJson(pins, x.backend_id);
  j["steps"] = Steps(x);
  if (Has(x, TND_XS_REJECT)) {
    const FrameFacts r = Inspect(h.run.out);
    j["reply"] = absl::StrCat(Proto(r.proto), " ", Endpoint(r, true), " -> ", Endpoint(r, false));
  } else {
    j["rewrites"] = Rewrites(h.in, h.run.out);
  }
  j["checksums"] = Checksums(h.run.out);
  return j;
}

json DescribeConnect(const DryConnect& c, const PacketSpec& p, const BpffsPaths& pins) {
  const tnd_explain& x = c.rec;
  const FrameFacts f = Inspect(BuildFrame(p, Mac{}, Mac{}));
  json j = {{"hook", "sock"}, {"device", "connect() in a throwaway cgroup"}, {"programs", {c.program}}};
  if (Has(x, TND_XS_SERVICE)) j["service"] = ServiceJson(pins, f, x);
  j["steps"] = Steps(x);
  j["rewrites"] = json::array();
  if (x.drop_reason) {
    j["verdict"] = "refused";
    j["drop_reason"] = abi::DropReasonName(x.drop_reason);
  } else if (x.backend_id) {
    j["verdict"] = "translated";
    j["backend"] = BackendJson(pins, x.backend_id);
    j["rewrites"].push_back({{"field", "destination"}, {"before", Endpoint(f, false)},
                             {"after", j["backend"].value("address", "?")}});
  } else {
    j["verdict"] = "unchanged";
  }
  if (c.connect_errno != EPERM)
    j["warning"] = absl::StrCat("the dry-run connect ended with errno ", c.connect_errno, ", not the dry run's EPERM");
  return j;
}

std::string RenderExplanation(const json& report) {
  std::string out;
  const json& p = report["packet"];
  absl::StrAppend(&out, "Packet   ", p.value("summary", ""), "\n");
  for (const json& h : report["hooks"]) {
    absl::StrAppend(&out, "\n", h.value("hook", ""), " on ", h.value("device", ""), ": ",
                    absl::AsciiStrToUpper(h.value("verdict", "")));
    if (h.contains("drop_reason")) absl::StrAppend(&out, " (", h["drop_reason"].get<std::string>(), ")");
    if (h.contains("redirect"))
      absl::StrAppend(&out, " to ", h["redirect"].value("device", ""), ": ", h["redirect"].value("how", ""));
    absl::StrAppend(&out, "\n  programs  ", absl::StrJoin(h["programs"].get<std::vector<std::string>>(), " -> "), "\n");
    if (h.contains("not_run")) absl::StrAppend(&out, "  not run   ", h["not_run"].get<std::string>(), "\n");
    if (h.contains("service")) {
      const json& s = h["service"];
      absl::StrAppend(&out, "  service   ", s.value("frontend", ""), " (id ", s.value("id", 0), ", ",
                      s.value("algorithm", "?"), ", ", s.value("active_slots", 0), " active slots",
                      s.contains("flags") ? ", " + absl::StrJoin(s["flags"].get<std::vector<std::string>>(), ",") : "",
                      ")\n");
      if (s.contains("empty")) absl::StrAppend(&out, "            ", s["empty"].get<std::string>(), "\n");
    }
    if (h.contains("backend")) {
      const json& b = h["backend"];
      absl::StrAppend(&out, "  backend   ", b.value("address", "?"), " (id ", b.value("id", 0), ", ",
                      b.value("place", "?"), ", ", b.value("state", "?"), ")\n");
      if (b.contains("why")) absl::StrAppend(&out, "            ", b["why"].get<std::string>(), "\n");
    }
    for (const json& s : h["steps"]) {
      absl::StrAppend(&out, "  step      ", s.value("text", ""));
      if (s.contains("detail")) absl::StrAppend(&out, " [", s["detail"].get<std::string>(), "]");
      absl::StrAppend(&out, "\n");
    }
    if (h.contains("reply")) absl::StrAppend(&out, "  reply     ", h["reply"].get<std::string>(), "\n");
    const json rewrites = h.value("rewrites", json::array());
    const json checksums = h.value("checksums", json::object());
    for (const json& r : rewrites)
      absl::StrAppend(&out, "  rewrite   ", r.value("field", ""), ": ", r.value("before", ""), " -> ",
                      r.value("after", ""), "\n");
    for (const auto& [k, v] : checksums.items())
      absl::StrAppend(&out, "  checksum  ", k, " ", v.get<std::string>(), "\n");
  }
  if (report.contains("result")) absl::StrAppend(&out, "\nResult   ", report["result"].get<std::string>(), "\n");
  if (report.contains("note")) absl::StrAppend(&out, "Note     ", report["note"].get<std::string>(), "\n");
  if (report.contains("reply")) absl::StrAppend(&out, "\n== the reply of this flow ==\n", RenderExplanation(report["reply"]));
  return out;
}

}  // namespace tendril
