// Sizes of the pinned maps the settings decide, from one table: the flow
// tables (conntrack, NAT, socket reverse NAT, affinity: LRU, preallocated by
// the kernel) from the node's memory unless set, as Cilium's
// bpf-map-dynamic-size-ratio does; the caps of the growable LB tables and
// the other declared-state maps from their settings. The loader, `status`
// and the tests read this table.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "agent/config.h"

namespace tendril {

// Bytes the kernel charges per entry of a hash map of these key and value
// sizes (its element header plus key and value, each 8-byte aligned).
uint64_t HashEntryBytes(uint32_t key_size, uint32_t value_size);

// The node's memory (sysinfo), bytes.
uint64_t NodeMemoryBytes();

struct FlowTableSizes {
  uint32_t ct = 0, nat = 0, sock_revnat = 0, affinity = 0;  // entries (per family where there are two)
};
// The flow tables' sizes: a setting when given (non-zero), else a share of
// map-dynamic-size-ratio x `mem_bytes` (conntrack 45%, NAT 35%, socket
// reverse NAT 15%, affinity 5%), within kFlowTableMin..kFlowTableMax.
constexpr uint32_t kFlowTableMin = 16384;
constexpr uint32_t kFlowTableMax = 16777216;
FlowTableSizes FlowTablesFor(const AgentConfig& cfg, uint64_t mem_bytes);

// Map name -> max_entries for every map whose size a setting decides (what
// the loader sets before loading each object).
std::map<std::string, uint32_t> MapSizes(const AgentConfig& cfg, uint64_t mem_bytes);

}  // namespace tendril
