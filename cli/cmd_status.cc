// `tendril status`: the agent (through its API) and the pinned maps' fill
// levels (read directly, so they show while the agent is down).
#include <bpf/bpf.h>

#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/cli.h"
#include "cli/format.h"
#include "common/api_client.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

// From this fill on a table is reported as nearly full.
constexpr double kWarnFill = 0.9;

// The map's memory (with a growable or Maglev map's inner tables) and how
// full it is; a warning from kWarnFill (a growable table grows before, so it
// reaches it only at its cap).
void AddMemoryAndFill(const Globals& g, const abi::PinnedMapSpec& spec, json& m) {
  if (auto outer = OpenPinned(g.pins().Map(spec.name)); outer.ok())
    if (auto bytes = MapBytes(outer->get()); bytes.ok()) m["bytes"] = *bytes;
  if (m.value("kind", "") != "" || !m.contains("entries")) return;
  const double max = m.value("max_entries", 0.0), fill = max > 0 ? m.value("entries", 0.0) / max : 0;
  m["fill"] = fill;
  if (fill < kWarnFill) return;
  m["warning"] = absl::StrCat(
      spec.name, " is ", static_cast<int>(fill * 100), "% full (", m.value("entries", 0), " of ",
      m.value("max_entries", 0), "): ",
      spec.type == BPF_MAP_TYPE_LRU_HASH ? "the oldest entries are being evicted; raise its size setting"
      : spec.growable                    ? "at its lb-*-map-max cap; raise the setting"
                                         : "new entries will be refused; raise its size setting");
}

json MapFill(const Globals& g) {
  json maps = json::array();
  for (const auto& spec : abi::kPinnedMaps) {
    json m = {{"name", spec.name}, {"max_entries", spec.max_entries}, {"description", spec.what}};
    auto fd = OpenPinnedMap(g.pins().Map(spec.name), spec.key_size, spec.value_size);
    if (fd.ok())
      if (auto info = GetMapInfo(fd->get()); info.ok()) m["max_entries"] = info->max_entries;  // sized by settings
    if (!fd.ok()) {
      m["error"] = std::string(fd.status().message());
    } else if (spec.type == BPF_MAP_TYPE_RINGBUF) {
      m["kind"] = "ring buffer";  // bytes, not entries
    } else if (spec.type == BPF_MAP_TYPE_ARRAY || spec.type == BPF_MAP_TYPE_PERCPU_ARRAY) {
      m["kind"] = "array";  // every slot always exists
      m["entries"] = m["max_entries"];
    } else {
      auto n = CountEntries(fd->get(), spec.key_size);
      if (n.ok())
        m["entries"] = *n;
      else
        m["error"] = std::string(n.status().message());
    }
    if (fd.ok()) AddMemoryAndFill(g, spec, m);
    maps.push_back(m);
  }
  return maps;
}

void PrintAgentSummary(const json& agent) {
  const json& a = agent["agent"];
  std::printf("Agent:       running (pid %d, version %s, since %s)\n", a.value("pid", 0),
              a.value("version", "").c_str(), a.value("started_at", "").c_str());
  const json& k = agent["kernel"];
  std::printf("Kernel:      %s (tc via %s)\n", k.value("release", "").c_str(),
              k.value("tcx", false) ? "TCX links" : "clsact");
  const json& o = agent["bpf_object"];
  std::printf("BPF object:  cache key %s (%s; %s)\n", o.value("cache_key", "").c_str(),
              o.value("cache_hit", false) ? "from cache" : "compiled at start", o.value("why", "").c_str());
  std::printf("XDP mode:    %s (configured)\n", a.value("xdp_mode", "").c_str());
  const json& lb = agent["socket_lb"];
  if (lb.value("enabled", false))
    std::printf("Socket LB:   %zu/8 hooks on cgroup %s, %d services, Maglev table %d\n",
                lb["attached"].size(), lb.value("cgroup", "").c_str(), lb.value("services", 0),
                lb.value("maglev_table_size", 0));
  else
    std::printf("Socket LB:   disabled\n");
  const json& np = agent["nodeport"];
  if (np.value("enabled", false))
    std::printf("NodePort:    per packet at tc (and XDP), node ports %s, %zu external frontends, conntrack GC every %ds\n",
                np.value("node_port_range", "").c_str(), np["external_frontends"].size(),
                np.value("ct_gc_interval", 0));
  else
    std::printf("NodePort:    disabled\n");
  if (agent.contains("nat")) {
    const json& nat = agent["nat"];
    auto fill = [&](const char* fam) -> std::string {
      if (!nat.contains(fam)) return "-";
      uint64_t n = nat[fam].value("entries", 0ull), max = nat[fam].value("max_entries", 1ull);
      return absl::StrCat(n, "/", max, " (", n * 100 / std::max<uint64_t>(max, 1), "%)");
    };
    std::printf("NAT:         ports %s (reserved), entries v4 %s, v6 %s, no free port %llu times since start\n",
                nat.value("port_range", "").c_str(), fill("v4").c_str(), fill("v6").c_str(),
                static_cast<unsigned long long>(nat.value("ports_exhausted_since_start", 0ull)));
  }
  if (agent.contains("endpoints")) {
    const json& ep = agent["endpoints"];
    std::vector<std::string> cidrs;
    for (const auto& c : ep.value("pod_cidrs", json::array())) cidrs.push_back(c.get<std::string>());
    std::printf("Endpoints:   %d ready of %d, host routing %s, masquerade %s%s\n", ep.value("ready", 0),
                ep.value("declared", 0), ep.value("host_routing", "").c_str(),
                ep.value("masquerade", false) ? "on" : "off",
                cidrs.empty() ? "" : absl::StrCat(" (not for ", absl::StrJoin(cidrs, ","), ")").c_str());
  }
}

void PrintAgentTables(const json& agent) {
  auto tc_cell = [](const json& d, const char* key) -> std::string {
    if (!d.contains(key) || d[key].is_null()) return "none";
    return absl::StrCat(d[key].value("via", ""), " #", d[key].value("prog_id", 0));
  };
  Table devs({"DEVICE", "IFINDEX", "XDP", "PROGRAM", "PROG ID", "TC INGRESS", "TC EGRESS"});
  for (const auto& d : agent["devices"]) {
    if (d.contains("error")) {
      devs.AddRow({d.value("name", ""), "-", "error: " + d.value("error", ""), "", "", "", ""});
    } else if (d["xdp"].is_null()) {
      devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)), "none", "", "",
                   tc_cell(d, "tc_ingress"), tc_cell(d, "tc_egress")});
    } else {
      devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)),
                   d["xdp"].value("mode", ""), d["xdp"].value("prog_name", ""),
                   std::to_string(d["xdp"].value("prog_id", 0)), tc_cell(d, "tc_ingress"),
                   tc_cell(d, "tc_egress")});
    }
  }
  std::printf("Devices:\n%s", devs.empty() ? "  (none)\n" : devs.Render(2).c_str());
  Table progs({"PROGRAM", "ID", "VERIFIED INSNS"});
  for (const auto& p : agent["programs"])
    progs.AddRow({p.value("name", ""), std::to_string(p.value("id", 0)),
                  std::to_string(p.value("verified_insns", 0))});
  std::printf("Programs:\n%s", progs.Render(2).c_str());
}

// The cluster the agent follows, and kube-proxy's operator endpoints.
void PrintCluster(const json& agent) {
  const json& k = agent.value("kubernetes", json());
  if (k.is_object()) {
    std::printf("Kubernetes:  %s, %s; %d cluster services, %d skipped objects, %d syncs (%d full, %d failed)%s\n",
                k.value("state", "").c_str(), k.value("server", "").c_str(), k.value("declared_services", 0),
                k.value("skipped_objects", 0), k.value("syncs", 0), k.value("full_syncs", 0),
                k.value("failed_syncs", 0),
                k.contains("last_sync") ? (", last " + k.value("last_sync", "")).c_str() : "");
    const json& n = k.value("node", json::object());
    if (n.is_object() && n.contains("name"))
      std::printf("  node %s: %s\n", n.value("name", "").c_str(),
                  n.value("eligible", true) ? "eligible" : ("not eligible (" + n.value("reason", "") + ")").c_str());
    for (const auto& sk : k.value("skipped", json::array()))
      std::printf("  skipped %s: %s\n", sk.value("object", "").c_str(), sk.value("reason", "").c_str());
  } else {
    std::printf("Kubernetes:  not followed (services from the API only)\n");
  }
  const json& e = agent.value("operator_endpoints", json::object());
  std::printf("Operator:    healthz %s, metrics %s\n",
              e.value("healthz", "").empty() ? "off" : e.value("healthz", "").c_str(),
              e.value("metrics", "").empty() ? "off" : e.value("metrics", "").c_str());
  for (const auto& err : e.value("errors", json::array())) std::printf("  error: %s\n", err.get<std::string>().c_str());
}

void PrintAgent(const json& agent) {
  PrintAgentSummary(agent);
  PrintCluster(agent);
  PrintAgentTables(agent);
}

int CmdStatus(const Globals& g) {
  auto agent = CallAgent(g.api_socket, "status");
  json maps = MapFill(g);
  if (g.json()) {
    json out;
    if (agent.ok()) {
      out = *agent;
      out["agent"]["running"] = true;
    } else {
      out["agent"] = {{"running", false}, {"error", std::string(agent.status().message())}};
    }
    out["maps"] = maps;
    PrintJson(out);
    return agent.ok() ? 0 : 1;
  }
  if (!agent.ok())
    std::printf("Agent:       not running (%s)\n", std::string(agent.status().message()).c_str());
  else
    PrintAgent(*agent);
  Table mt({"MAP", "ENTRIES", "MAX", "FILL", "MEMORY", "DESCRIPTION"});
  uint64_t total = 0;
  std::vector<std::string> warnings;
  for (const auto& m : maps) {
    total += m.value("bytes", uint64_t{0});
    if (m.contains("warning")) warnings.push_back(m["warning"].get<std::string>());
    mt.AddRow({m.value("name", ""),
               m.value("kind", "") == "ring buffer" ? "ring"
               : !m.contains("entries")        ? "not pinned"
               : m.value("kind", "") == "array" ? "array"
                                                : std::to_string(m.value("entries", 0)),
               std::to_string(m.value("max_entries", 0)),
               m.contains("fill") ? absl::StrCat(static_cast<int>(m["fill"].get<double>() * 100), "%") : "-",
               m.contains("bytes") ? HumanBytes(m["bytes"].get<uint64_t>()) : "-", m.value("description", "")});
  }
  std::printf("Maps (%s, %s in all):\n%s", g.bpffs_root.c_str(), HumanBytes(total).c_str(), mt.Render(2).c_str());
  for (const std::string& w : warnings) std::printf("Warning: %s\n", w.c_str());
  return agent.ok() ? 0 : 1;
}

}  // namespace

void AddStatusCommand(CLI::App& app, Cli& c) {
  app.add_subcommand("status", "agent, attached programs, map fill levels")->callback([&c] { c.rc = CmdStatus(c.g); });
}

}  // namespace tendril::cli
