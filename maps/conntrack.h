// Conntrack and NAT tables, read and cleaned from user space: garbage
// collection of expired entries (the agent, periodically), flush and listing
// (the CLI, straight from the pins, so they work while the agent is down).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril {

using CtMap = Map<tnd_ct_key, tnd_ct_val>;
using NatMap = Map<tnd_nat_key, tnd_nat_val>;

// Seconds on the clock the programs read (bpf_ktime_get_coarse_ns():
// CLOCK_MONOTONIC_COARSE, CLOCK_MONOTONIC as of the last tick).
uint32_t BpfClockSeconds();

struct GcResult {
  uint32_t scanned = 0;
  uint32_t removed = 0;
};

// Deletes every entry whose `expires` is before `now`.
absl::StatusOr<GcResult> GcConntrack(CtMap& ct, uint32_t now);
// NAT mappings: a pair once both entries expired, an orphan once expired.
absl::StatusOr<GcResult> GcNat(NatMap& nat, uint32_t now);
// The key of the other entry of a NAT pair (out <-> in).
tnd_nat_key NatPartnerKey(const tnd_nat_key& k, const tnd_nat_val& v);
inline bool operator==(const tnd_nat_key& a, const tnd_nat_key& b) { return memcmp(&a, &b, sizeof(a)) == 0; }

// The flows of backends that left their services (any number of services
// in one walk): conntrack entries (forward entries of the service naming the
// backend's id, reply entries of the service from the backend's address and
// port) and the NAT pairs of SNATed ones. Returns what was deleted.
struct BackendRef {
  uint32_t svc_id = 0;
  uint8_t proto = 0;
  uint32_t id = 0;
  uint8_t addr[16] = {};
  uint16_t port_be = 0;  // network byte order
};
struct FlowDeleteResult {
  uint32_t flows = 0;         // forward entries
  uint32_t ct_entries = 0;    // forward and reply entries
  uint32_t nat_entries = 0;
};
absl::StatusOr<FlowDeleteResult> DeleteBackendFlows(CtMap& ct, NatMap* nat, const std::vector<BackendRef>& backends);

// Packets dropped for `reason` (both directions, all CPUs), from the pinned
// per-CPU metrics map at `pin`.
absl::StatusOr<uint64_t> DropCount(const std::string& pin, uint8_t reason);

// Deletes every entry; returns how many.
absl::StatusOr<uint32_t> FlushConntrack(CtMap& ct);
absl::StatusOr<uint32_t> FlushNat(NatMap& nat);

}  // namespace tendril
