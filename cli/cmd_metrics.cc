// `tendril metrics`: drop counters by reason and direction, from the pinned
// per-CPU metrics map.
#include <cstdio>
#include <map>

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

int CmdMetricsList(const Globals& g) {
  auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(g.pins().Map(TND_MAP_METRICS),
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

void AddMetricsCommands(CLI::App& app, Cli& c) {
  auto* metrics = app.add_subcommand("metrics", "datapath counters");
  metrics->require_subcommand(1);
  metrics->add_subcommand("list", "drops by reason and direction (read from the pinned map)")
      ->callback([&c] { c.rc = CmdMetricsList(c.g); });
}

}  // namespace tendril::cli
