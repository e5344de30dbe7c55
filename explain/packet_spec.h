// `tendril explain`'s input: the packet as typed (PROTO SRC[:PORT]
// DST[:PORT], --flags, --vlan), checked whole before anything is loaded,
// and the frame built from it.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "explain/frame.h"
#include "network/addr.h"

namespace tendril {

struct PacketSpec {
  uint8_t proto = 0;  // IPPROTO_TCP, IPPROTO_UDP, IPPROTO_ICMP (ICMPv6 for IPv6)
  IpAddr src, dst;
  uint16_t sport = 0, dport = 0;  // host order; 0 for ICMP
  uint8_t tcp_flags = 0;
  uint16_t vlan = 0;  // 0: untagged
  int family() const { return src.family == Family::kV4 ? 4 : 6; }
  std::string Summary() const;
};

// Every error found, named, as one InvalidArgument (exit 2).
absl::StatusOr<PacketSpec> ParsePacket(const std::string& proto, const std::string& src, const std::string& dst,
                                       const std::string& flags, int vlan);

// The Ethernet frame of `p` from `src_mac` to `dst_mac`.
Bytes BuildFrame(const PacketSpec& p, const Mac& dst_mac, const Mac& src_mac);

// The packet the other way (for --reply): addresses and ports swapped.
PacketSpec Reversed(const PacketSpec& p, uint8_t tcp_flags);

}  // namespace tendril
