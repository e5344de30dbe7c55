// `tendril bpf ct` and `bpf nat`: per-packet flows and SNAT mappings, listed
// and flushed straight from the pins.
#include <algorithm>
#include <cstdio>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "maps/abi.h"
#include "maps/conntrack.h"
#include "network/addr.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

int CmdBpfCtList(const Globals& g, bool v6) {
  const char* name = v6 ? TND_MAP_CT_V6 : TND_MAP_CT_V4;
  auto ct = CtMap::OpenPin(g.pins().Map(name), name);
  if (!ct.ok()) return Fail(ct.status());
  auto backends = Map<uint32_t, tnd_backend>::OpenPin(g.pins().Map(TND_MAP_BACKENDS), TND_MAP_BACKENDS);
  int fam = v6 ? 6 : 4;
  uint32_t now = BpfClockSeconds();
  json out = json::array();
  auto st = ct->ForEach([&](const tnd_ct_key& k, const tnd_ct_val& v) {
    json e = {{"proto", ProtoName(k.proto)},
              {"source", AddrPortText(k.saddr, k.sport, fam)},
              {"destination", AddrPortText(k.daddr, k.dport, fam)},
              {"flags", CtFlagsText(v.flags)},
              {"service_id", v.svc_id},
              {"tcp_flags_seen", TcpStateName(k.proto, v.tcp_flags)},
              {"age_seconds", static_cast<int32_t>(now - v.created)},
              {"expires_in_seconds", static_cast<int32_t>(v.expires - now)},
              {"packets", v.packets},
              {"bytes", v.bytes}};
    if (v.flags & TND_CT_F_SERVICE) {
      e["backend_id"] = v.backend_id;
      if (backends.ok()) {
        auto b = backends->Lookup(v.backend_id);
        if (b.ok() && *b) e["backend"] = AddrPortText((*b)->addr, (*b)->port, fam);
      }
    }
    if (v.flags & TND_CT_F_REPLY) e["reply_source"] = AddrPortText(v.nat_addr, v.nat_port, fam);
    // A service flow's SNAT mapping: the node address and port it leaves
    // from (its NAT in entry, `bpf nat list`, restores the client).
    if ((v.flags & TND_CT_F_SERVICE) && (v.flags & TND_CT_F_SNAT) && v.snat_port != 0)
      e["snat_source"] = AddrPortText(v.snat_addr, v.snat_port, fam);
    // The established path's cache (valid while the node's generation holds,
    // within the second it was filled): a service flow's forward entry, or
    // a pod's own flow (endpoint, inbound).
    if (!(v.flags & TND_CT_F_REPLY) && (v.hop_flags & TND_HOP_VALID)) {
      json c = {{"ifindex", v.hop_ifindex},
                {"dest_mac", MacToString(v.hop_dmac)},
                {"source_mac", MacToString(v.hop_smac)},
                {"into_endpoint", (v.hop_flags & TND_HOP_PEER) != 0},
                {"generation", v.hop_gen}};
      if (v.flags & TND_CT_F_SERVICE) c["backend"] = AddrPortText(v.nat_addr, v.nat_port, fam);
      if (v.flags & TND_CT_F_SNAT) c["snat_source"] = AddrPortText(v.snat_addr, v.snat_port, fam);
      e["cached_path"] = c;
    }
    // A pod's flow keeps its replies' next hop too (they have no entry).
    const uint8_t pod = TND_CT_F_ENDPOINT | TND_CT_F_INBOUND;
    if ((v.flags & pod) && !(v.flags & ~pod) && (v.reply_when.flags & TND_HOP_VALID))
      e["reply_cached_path"] = {{"ifindex", v.reply_hop.ifindex},
                                {"dest_mac", MacToString(v.reply_hop.dmac)},
                                {"source_mac", MacToString(v.reply_hop.smac)},
                                {"into_endpoint", (v.reply_when.flags & TND_HOP_PEER) != 0},
                                {"generation", v.reply_when.gen}};
    out.push_back(e);
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["source"], a["destination"]) < std::tie(b["source"], b["destination"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"PROTO", "SOURCE", "DESTINATION", "TRANSLATION", "FLAGS", "TCP", "AGE", "EXPIRES", "PACKETS", "BYTES"});
  for (const auto& e : out) {
    std::string xl = e.contains("backend") ? "-> " + e.value("backend", "")
                     : e.contains("reply_source") ? "as " + e.value("reply_source", "")
                                                  : "-";
    if (e.contains("snat_source")) xl += " from " + e.value("snat_source", "");
    t.AddRow({e.value("proto", ""), e.value("source", ""), e.value("destination", ""), xl, e.value("flags", ""),
              e.value("tcp_flags_seen", ""), Age(now, now - e.value("age_seconds", 0)),
              Remaining(now, now + e.value("expires_in_seconds", 0)), std::to_string(e.value("packets", 0ull)),
              std::to_string(e.value("bytes", 0ull))});
  }
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdBpfNatList(const Globals& g, bool v6) {
  const char* name = v6 ? TND_MAP_NAT_V6 : TND_MAP_NAT_V4;
  auto nat = NatMap::OpenPin(g.pins().Map(name), name);
  if (!nat.ok()) return Fail(nat.status());
  int fam = v6 ? 6 : 4;
  uint32_t now = BpfClockSeconds();
  json out = json::array();
  auto st = nat->ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    bool in = k.dir == TND_NAT_IN;
    out.push_back({{"direction", in ? "in" : "out"},
                   {"proto", ProtoName(k.proto)},
                   {"source", AddrPortText(k.saddr, k.sport, fam)},
                   {"destination", AddrPortText(k.daddr, k.dport, fam)},
                   // out: the source becomes to; in: the destination becomes to
                   {"translated_to", AddrPortText(v.to_addr, v.to_port, fam)},
                   {"kind", v.flags & TND_NAT_F_MASQ ? "masquerade" : v.flags & TND_NAT_F_SERVICE ? "service" : "-"},
                   {"state", TcpStateName(k.proto, v.tcp_flags)},
                   {"age_seconds", static_cast<int32_t>(now - v.created)},
                   {"expires_in_seconds", static_cast<int32_t>(v.expires - now)}});
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["direction"], a["source"], a["destination"]) < std::tie(b["direction"], b["source"], b["destination"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"DIR", "PROTO", "SOURCE", "DESTINATION", "REWRITTEN", "KIND", "STATE", "AGE", "EXPIRES"});
  for (const auto& e : out) {
    bool in = e.value("direction", "") == "in";
    t.AddRow({e.value("direction", ""), e.value("proto", ""), e.value("source", ""), e.value("destination", ""),
              (in ? "dst -> " : "src -> ") + e.value("translated_to", ""), e.value("kind", ""),
              e.value("state", ""), Age(now, now - e.value("age_seconds", 0)),
              Remaining(now, now + e.value("expires_in_seconds", 0))});
  }
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdBpfCtFlush(const Globals& g) {
  json out = json::object();
  for (const char* name : {TND_MAP_CT_V4, TND_MAP_CT_V6}) {
    auto ct = CtMap::OpenPin(g.pins().Map(name), name);
    if (!ct.ok()) return Fail(ct.status());
    auto n = FlushConntrack(*ct);
    if (!n.ok()) return Fail(n.status());
    out[name] = *n;
  }
  for (const char* name : {TND_MAP_NAT_V4, TND_MAP_NAT_V6}) {
    auto nat = NatMap::OpenPin(g.pins().Map(name), name);
    if (!nat.ok()) return Fail(nat.status());
    auto n = FlushNat(*nat);
    if (!n.ok()) return Fail(n.status());
    out[name] = *n;
  }
  if (g.json()) PrintJson(out);
  else
    std::printf("flushed %d IPv4 and %d IPv6 conntrack entries, %d IPv4 and %d IPv6 NAT entries\n",
                out.value(TND_MAP_CT_V4, 0), out.value(TND_MAP_CT_V6, 0), out.value(TND_MAP_NAT_V4, 0),
                out.value(TND_MAP_NAT_V6, 0));
  return 0;
}

}  // namespace

void AddBpfConntrackCommands(CLI::App& bpf, Cli& c) {
  auto v6 = std::make_shared<bool>(false);
  auto* ct = bpf.add_subcommand("ct", "conntrack of per-packet service flows");
  ct->require_subcommand(1);
  auto* ct_list = ct->add_subcommand("list", "flows: addresses, translation, TCP flags seen, age, expiry");
  ct_list->add_flag("--v6", *v6, "the IPv6 table");
  ct_list->callback([&c, v6] { c.rc = CmdBpfCtList(c.g, *v6); });
  ct->add_subcommand("flush", "delete every conntrack and NAT entry (flows re-choose backends)")
      ->callback([&c] { c.rc = CmdBpfCtFlush(c.g); });
  auto* nat = bpf.add_subcommand("nat", "SNAT port mappings");
  nat->require_subcommand(1);
  auto* nat_list = nat->add_subcommand("list", "out: original -> node address:port; in: reply -> client");
  nat_list->add_flag("--v6", *v6, "the IPv6 table");
  nat_list->callback([&c, v6] { c.rc = CmdBpfNatList(c.g, *v6); });
}

}  // namespace tendril::cli
