// tendril: inspect and control a tendril-agent and its pinned BPF maps.
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "cli/output.h"
#include "common/api_client.h"
#include "common/cidr.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "tendril_build_config.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

struct Globals {
  std::string api_socket = "/run/tendril/tendril.sock";
  std::string bpffs_root = "/sys/fs/bpf/tendril";
  std::string output = "table";
  bool json() const { return output == "json"; }
};

// Exit codes: 0 ok, 1 operation failed, 2 bad input.
int Fail(const absl::Status& s) {
  std::fprintf(stderr, "Error: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsAlreadyExists(s) ||
                 absl::IsResourceExhausted(s)
             ? 2
             : 1;
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string PinPath(const Globals& g, absl::string_view name) {
  return absl::StrCat(g.bpffs_root, "/", name);
}

json MapFill(const Globals& g) {
  json maps = json::array();
  for (const auto& spec : abi::kPinnedMaps) {
    json m = {{"name", spec.name}, {"max_entries", spec.max_entries}, {"description", spec.what}};
    auto fd = OpenPinnedMap(PinPath(g, spec.name), spec.key_size, spec.value_size);
    if (!fd.ok()) {
      m["error"] = std::string(fd.status().message());
    } else if (spec.type == BPF_MAP_TYPE_ARRAY || spec.type == BPF_MAP_TYPE_PERCPU_ARRAY) {
      m["kind"] = "array";  // every slot always exists
      m["entries"] = spec.max_entries;
    } else {
      auto n = CountEntries(fd->get(), spec.key_size);
      if (n.ok())
        m["entries"] = *n;
      else
        m["error"] = std::string(n.status().message());
    }
    maps.push_back(m);
  }
  return maps;
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
  if (!agent.ok()) {
    std::printf("Agent:       not running (%s)\n", std::string(agent.status().message()).c_str());
  } else {
    const json& a = (*agent)["agent"];
    std::printf("Agent:       running (pid %d, version %s, since %s)\n", a.value("pid", 0),
                a.value("version", "").c_str(), a.value("started_at", "").c_str());
    const json& k = (*agent)["kernel"];
    std::printf("Kernel:      %s (tc via %s)\n", k.value("release", "").c_str(),
                k.value("tcx", false) ? "TCX links" : "clsact");
    const json& o = (*agent)["bpf_object"];
    std::printf("BPF object:  cache key %s (%s)\n", o.value("cache_key", "").c_str(),
                o.value("cache_hit", false) ? "from cache" : "compiled at start");
    std::printf("XDP mode:    %s (configured)\n", a.value("xdp_mode", "").c_str());
    Table devs({"DEVICE", "IFINDEX", "XDP", "PROGRAM", "PROG ID"});
    for (const auto& d : (*agent)["devices"]) {
      if (d.contains("error")) {
        devs.AddRow({d.value("name", ""), "-", "error: " + d.value("error", ""), "", ""});
      } else if (d["xdp"].is_null()) {
        devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)), "none", "", ""});
      } else {
        devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)),
                     d["xdp"].value("mode", ""), d["xdp"].value("prog_name", ""),
                     std::to_string(d["xdp"].value("prog_id", 0))});
      }
    }
    std::printf("Devices:\n%s", devs.empty() ? "  (none)\n" : devs.Render(2).c_str());
    Table progs({"PROGRAM", "ID", "VERIFIED INSNS"});
    for (const auto& p : (*agent)["programs"])
      progs.AddRow({p.value("name", ""), std::to_string(p.value("id", 0)),
                    std::to_string(p.value("verified_insns", 0))});
    std::printf("Programs:\n%s", progs.Render(2).c_str());
  }
  Table mt({"MAP", "ENTRIES", "MAX", "DESCRIPTION"});
  for (const auto& m : maps)
    mt.AddRow({m.value("name", ""),
               !m.contains("entries")        ? "not pinned"
               : m.value("kind", "") == "array" ? "array"
                                                : std::to_string(m.value("entries", 0)),
               std::to_string(m.value("max_entries", 0)), m.value("description", "")});
  std::printf("Maps (%s):\n%s", g.bpffs_root.c_str(), mt.Render(2).c_str());
  return agent.ok() ? 0 : 1;
}

absl::Status ValidateCidrs(const std::vector<std::string>& cidrs) {
  std::vector<std::string> errors;
  for (const auto& c : cidrs)
    if (auto r = ParseCidr(c); !r.ok()) errors.emplace_back(r.status().message());
  if (!errors.empty())
    return absl::InvalidArgumentError(absl::StrCat(absl::StrJoin(errors, "; "), " (nothing changed)"));
  return absl::OkStatus();
}

int CmdPrefilterChange(const Globals& g, const std::string& op, const std::vector<std::string>& cidrs) {
  if (auto s = ValidateCidrs(cidrs); !s.ok()) return Fail(s);
  auto r = CallAgent(g.api_socket, op, {{"cidrs", cidrs}});
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  for (const auto& c : r->value("added", json::array())) std::printf("added    %s\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("already_present", json::array()))
    std::printf("present  %s (unchanged)\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("deleted", json::array())) std::printf("deleted  %s\n", c.get<std::string>().c_str());
  return 0;
}

int CmdPrefilterList(const Globals& g) {
  auto r = CallAgent(g.api_socket, "prefilter.list");
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  Table t({"CIDR", "FAMILY"});
  for (const auto& e : *r) t.AddRow({e.value("cidr", ""), e.value("family", "")});
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdMetricsList(const Globals& g) {
  auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(PinPath(g, TND_MAP_METRICS),
                                                                TND_MAP_METRICS);
  if (!m.ok()) return Fail(m.status());
  std::map<std::pair<int, int>, std::pair<uint64_t, uint64_t>> sums;
  auto s = m->ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& per_cpu) {
    uint64_t packets = 0, bytes = 0;
    for (const auto& x : per_cpu) {
      packets += x.packets;
      bytes += x.bytes;
    }
    if (packets == 0) return;  // array slots exist for every reason
    abi::MetricsSlot k = abi::DecodeMetricsIndex(idx);
    sums[{k.reason, k.dir}] = {packets, bytes};
  });
  if (!s.ok()) return Fail(s);
  if (g.json()) {
    json out = json::array();
    for (const auto& [k, v] : sums)
      out.push_back({{"reason", std::string(abi::DropReasonName(static_cast<uint8_t>(k.first)))},
                     {"reason_code", k.first},
                     {"direction", std::string(abi::DirectionName(static_cast<uint8_t>(k.second)))},
                     {"packets", v.first},
                     {"bytes", v.second}});
    PrintJson(out);
    return 0;
  }
  Table t({"REASON", "DIRECTION", "PACKETS", "BYTES"});
  for (const auto& [k, v] : sums)
    t.AddRow({std::string(abi::DropReasonName(static_cast<uint8_t>(k.first))),
              std::string(abi::DirectionName(static_cast<uint8_t>(k.second))),
              std::to_string(v.first), std::to_string(v.second)});
  std::printf("%s", t.Render().c_str());
  return 0;
}

}  // namespace

int Main(int argc, char** argv) {
  Globals g;
  if (const char* e = std::getenv("TENDRIL_API_SOCKET")) g.api_socket = e;
  if (const char* e = std::getenv("TENDRIL_BPFFS_ROOT")) g.bpffs_root = e;

  CLI::App app{"tendril: inspect and control the tendril eBPF datapath", "tendril"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--api-socket", g.api_socket, "agent API socket (env TENDRIL_API_SOCKET)");
  app.add_option("--bpffs-root", g.bpffs_root, "bpffs root of the pins (env TENDRIL_BPFFS_ROOT)");
  app.add_option("-o,--output", g.output, "output format")->check(CLI::IsMember({"table", "json"}));

  int rc = 0;
  auto* status = app.add_subcommand("status", "agent, attached programs, map fill levels");
  status->callback([&] { rc = CmdStatus(g); });

  auto* pf = app.add_subcommand("prefilter", "XDP prefilter: CIDRs whose traffic is dropped");
  pf->require_subcommand(1);
  std::vector<std::string> add_cidrs, del_cidrs;
  auto* pf_add = pf->add_subcommand("add", "deny traffic from CIDRs");
  pf_add->add_option("cidrs", add_cidrs, "CIDR...")->required();
  pf_add->callback([&] { rc = CmdPrefilterChange(g, "prefilter.add", add_cidrs); });
  auto* pf_del = pf->add_subcommand("delete", "stop denying CIDRs");
  pf_del->add_option("cidrs", del_cidrs, "CIDR...")->required();
  pf_del->callback([&] { rc = CmdPrefilterChange(g, "prefilter.delete", del_cidrs); });
  pf->add_subcommand("list", "denied CIDRs")->callback([&] { rc = CmdPrefilterList(g); });

  auto* metrics = app.add_subcommand("metrics", "datapath counters");
  metrics->require_subcommand(1);
  metrics->add_subcommand("list", "drops by reason and direction (read from the pinned map)")
      ->callback([&] { rc = CmdMetricsList(g); });

  app.add_subcommand("version", "print the version")->callback([&] {
    std::printf("tendril %s\n", TENDRIL_VERSION);
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return rc;
}

}  // namespace tendril::cli

int main(int argc, char** argv) { return tendril::cli::Main(argc, argv); }
