#include "agent/map_sizes.h"

#include <sys/sysinfo.h>

#include <algorithm>
#include <cmath>

#include "maps/tendril_maps.h"

namespace tendril {
namespace {
uint64_t Round8(uint64_t n) { return (n + 7) / 8 * 8; }

uint64_t Pow2AtLeast(uint64_t n) {
  uint64_t p = 1;
  while (p < n) p *= 2;
  return p;
}

// Entries of `share` of the budget split over `tables` tables of this shape:
// the entries and the bucket array (16 bytes per power-of-two bucket) fit.
uint32_t Entries(double budget, double share, int tables, uint32_t key_size, uint32_t value_size) {
  const double bytes = budget * share / tables;
  const double elem = static_cast<double>(HashEntryBytes(key_size, value_size));
  double n = std::floor(bytes / elem);
  for (int i = 0; i < 64 && n > 0; ++i) {
    const double buckets = 16.0 * static_cast<double>(Pow2AtLeast(static_cast<uint64_t>(n)));
    if (n * elem + buckets <= bytes) break;
    n = std::floor(std::max(0.0, bytes - buckets) / elem);
  }
  return static_cast<uint32_t>(std::clamp<double>(n, kFlowTableMin, kFlowTableMax));
}
}  // namespace

uint64_t HashEntryBytes(uint32_t key_size, uint32_t value_size) {
  constexpr uint64_t kElemHeader = 48;  // struct htab_elem before the key (x86-64)
  return kElemHeader + Round8(key_size) + Round8(value_size);
}

uint64_t NodeMemoryBytes() {
  struct sysinfo si {};
  if (sysinfo(&si) != 0) return 0;
  return static_cast<uint64_t>(si.totalram) * si.mem_unit;
}

FlowTableSizes FlowTablesFor(const AgentConfig& cfg, uint64_t mem_bytes) {
  const double budget = cfg.map_dynamic_size_ratio * static_cast<double>(mem_bytes);
  FlowTableSizes s;
  s.ct = cfg.ct_max_entries ? cfg.ct_max_entries
                            : Entries(budget, 0.45, 2, sizeof(tnd_ct_key), sizeof(tnd_ct_val));
  s.nat = cfg.nat_max_entries ? cfg.nat_max_entries
                              : Entries(budget, 0.35, 2, sizeof(tnd_nat_key), sizeof(tnd_nat_val));
  s.sock_revnat = cfg.sock_revnat_max_entries
                      ? cfg.sock_revnat_max_entries
                      : Entries(budget, 0.15, 2, sizeof(tnd_sk_revnat6_key), sizeof(tnd_sk_revnat_val));
  s.affinity = cfg.affinity_max_entries
                   ? cfg.affinity_max_entries
                   : Entries(budget, 0.05, 1, sizeof(tnd_affinity_key), sizeof(tnd_affinity_val));
  return s;
}

std::map<std::string, uint32_t> MapSizes(const AgentConfig& cfg, uint64_t mem_bytes) {
  const FlowTableSizes f = FlowTablesFor(cfg, mem_bytes);
  return {
      {TND_MAP_CT_V4, f.ct},
      {TND_MAP_CT_V6, f.ct},
      {TND_MAP_NAT_V4, f.nat},
      {TND_MAP_NAT_V6, f.nat},
      {TND_MAP_SK_REVNAT_V4, f.sock_revnat},
      {TND_MAP_SK_REVNAT_V6, f.sock_revnat},
      {TND_MAP_AFFINITY, f.affinity},
      {TND_MAP_MAGLEV, cfg.maglev_max_services},
      {TND_MAP_SRCRANGE_V4, cfg.lb_source_range_map_max},
      {TND_MAP_SRCRANGE_V6, cfg.lb_source_range_map_max},
  };
}

}  // namespace tendril
