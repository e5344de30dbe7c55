// `tendril bpf lb list`: the service maps themselves, read from the pins.
#include <netinet/in.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "network/addr.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

std::string SvcScope(uint8_t f, uint8_t scope) {
  if (!(f & TND_SVC_F_EXTERNAL)) return (f & TND_SVC_F_LOCAL) ? "cluster,local" : "cluster";
  std::string s = scope == TND_SCOPE_INTERNAL ? "in-cluster,external" : "external";
  if (f & TND_SVC_F_NODEPORT) s += ",nodeport";
  if (f & TND_SVC_F_LOCAL) s += ",local";
  if (f & TND_SVC_F_DSR) s += ",dsr";
  if (f & TND_SVC_F_SRCRANGE) s += ",source-ranges";
  return s;
}

void PrintLbTable(const json& out) {
  Table t({"SERVICE ADDRESS", "BACKEND ADDRESS (SLOT)", "BACKEND ID", "STATE"});
  for (const auto& svc : out) {
    std::string fe = svc["frontend"].get<std::string>();
    t.AddRow({fe, absl::StrCat("0.0.0.0:0 (0) [service ", svc.value("service_id", 0), ", ", svc.value("scope", ""), ", ",
                               svc.value("algorithm", ""), ", ", svc.value("active_slots", 0), " active slots",
                               svc.value("affinity_timeout", 0) ? absl::StrCat(", affinity ", svc.value("affinity_timeout", 0), "s") : "",
                               "]"),
              "", ""});
    for (const auto& sl : svc["slots"])
      t.AddRow({"", absl::StrCat(sl.value("address", ""), " (", sl.value("slot", 0), ")"),
                std::to_string(sl.value("backend_id", 0)), sl.value("state", "")});
    for (const auto& b : svc["inactive_backends"])
      t.AddRow({"", absl::StrCat(b.value("address", ""), " (-)"), std::to_string(b.value("backend_id", 0)),
                b.value("state", "")});
  }
  std::printf("%s", t.Render().c_str());
}

int CmdBpfLbList(const Globals& g) {
  auto backends = Map<uint32_t, tnd_backend>::OpenPin(g.pins().Map(TND_MAP_BACKENDS), TND_MAP_BACKENDS);
  if (!backends.ok()) return Fail(backends.status());
  std::map<uint32_t, tnd_backend> be;
  (void)backends->ForEach([&](const uint32_t& id, const tnd_backend& b) { be[id] = b; });

  struct Row {
    std::string frontend;
    uint8_t scope;
    uint16_t slot;
    tnd_svc_val val;
    std::string Group() const { return absl::StrCat(frontend, "#", scope); }
  };
  std::vector<Row> rows;
  auto add_rows = [&](auto key_type, const char* name, bool v6) -> absl::Status {
    using K = decltype(key_type);
    auto m = Map<K, tnd_svc_val>::OpenPin(g.pins().Map(name), name);
    if (!m.ok()) return m.status();
    return m->ForEach([&](const K& k, const tnd_svc_val& v) {
      std::string fe = AddrPortText(reinterpret_cast<const uint8_t*>(&k.addr), k.port, v6 ? 6 : 4) + "/" +
                       (k.proto == IPPROTO_UDP ? "UDP" : k.proto == IPPROTO_TCP ? "TCP" : std::to_string(k.proto));
      rows.push_back({fe, k.scope, k.slot, v});
    });
  };
  if (auto s = add_rows(tnd_svc4_key{}, TND_MAP_SVC_V4, false); !s.ok()) return Fail(s);
  if (auto s = add_rows(tnd_svc6_key{}, TND_MAP_SVC_V6, true); !s.ok()) return Fail(s);
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.frontend, a.scope, a.slot) < std::tie(b.frontend, b.scope, b.slot);
  });
  auto state_name = [](uint8_t s) {
    return s == TND_BACKEND_ACTIVE ? "active" : s == TND_BACKEND_TERMINATING ? "terminating" : "maintenance";
  };
  json out = json::array();
  std::map<std::string, json*> by_fe;
  for (const Row& r : rows) {
    if (r.slot == 0) {
      json svc = {{"frontend", r.frontend}, {"service_id", r.val.svc_id}, {"active_slots", r.val.count},
                  {"algorithm", (r.val.flags & TND_SVC_F_MAGLEV) ? "maglev" : "random"},
                  {"affinity_timeout", r.val.affinity_timeout}, {"scope", SvcScope(r.val.flags, r.scope)},
                  {"group", r.Group()}, {"slots", json::array()},
                  {"inactive_backends", json::array()}};
      for (const auto& [id, b] : be)
        if (b.svc_id == r.val.svc_id && b.state != TND_BACKEND_ACTIVE)
          svc["inactive_backends"].push_back({{"backend_id", id},
                                              {"address", AddrPortText(b.addr, b.port, b.family)},
                                              {"state", state_name(b.state)}});
      out.push_back(svc);
    }
  }
  for (auto& svc : out) by_fe[svc["group"].get<std::string>()] = &svc;
  for (const Row& r : rows) {
    if (r.slot == 0 || !by_fe.count(r.Group())) continue;
    json slot = {{"slot", r.slot}, {"backend_id", r.val.backend_id}};
    auto it = be.find(r.val.backend_id);
    if (it != be.end()) {
      slot["address"] = AddrPortText(it->second.addr, it->second.port, it->second.family);
      slot["state"] = state_name(it->second.state);
    } else {
      slot["address"] = "(missing backend)";
      slot["state"] = "missing";
    }
    (*by_fe[r.Group()])["slots"].push_back(slot);
  }
  for (auto& svc : out) svc.erase("group");
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  PrintLbTable(out);
  return 0;
}

}  // namespace

void AddBpfLbCommands(CLI::App& bpf, Cli& c) {
  auto* lb = bpf.add_subcommand("lb", "service maps");
  lb->require_subcommand(1);
  lb->add_subcommand("list", "frontends -> backends with slot and state")->callback([&c] { c.rc = CmdBpfLbList(c.g); });
}

}  // namespace tendril::cli
