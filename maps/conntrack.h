// Conntrack and NAT tables, read and cleaned from user space: garbage
// collection of expired entries (the agent, periodically), flush and listing
// (the CLI, straight from the pins, so they work while the agent is down).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril {

using CtMap = Map<tnd_ct_key, tnd_ct_val>;
using NatMap = Map<tnd_nat_key, tnd_nat_val>;

// Seconds on the clock bpf_ktime_get_ns() reads (CLOCK_MONOTONIC).
uint32_t BpfClockSeconds();

struct GcResult {
  uint32_t scanned = 0;
  uint32_t removed = 0;
};

// Deletes every entry whose `expires` is before `now`.
absl::StatusOr<GcResult> GcConntrack(CtMap& ct, uint32_t now);
absl::StatusOr<GcResult> GcNat(NatMap& nat, uint32_t now);

// Deletes every entry; returns how many.
absl::StatusOr<uint32_t> FlushConntrack(CtMap& ct);
absl::StatusOr<uint32_t> FlushNat(NatMap& nat);

// "10.0.0.1", "fd00::1": the first 4 bytes for family 4.
std::string AddrText(const uint8_t* addr, int family);
// "10.0.0.1:80", "[fd00::1]:80"; port in network byte order.
std::string AddrPortText(const uint8_t* addr, uint16_t port_be, int family);
const char* ProtoName(uint8_t proto);
// "SYN", "SYN ACK", "FIN ACK", ... from the TCP flags seen; "-" for none.
std::string TcpStateName(uint8_t proto, uint8_t seen);
// "service", "reply", with the flags that apply: "reply,snat,local".
std::string CtFlagsText(uint8_t flags);

}  // namespace tendril
