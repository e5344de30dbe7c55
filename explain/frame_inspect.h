// What a frame is, as the kernel would judge it: a user-space reading of
// Ethernet/IPv4/IPv6/TCP/UDP/ICMP bytes (never the datapath's), for the
// frame fuzzer's invariants and for `tendril explain`'s before/after. "Malformed" is what the kernel drops or what
// may not be rewritten: bad IPv4 header checksum, lengths that do not add
// up, truncated headers, an L4 header that does not fit in the IP packet.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "explain/frame.h"

namespace tendril {

struct FrameFacts {
  int family = 0;           // 4, 6, or 0: not IP (or VLAN-tagged)
  bool tagged = false;      // an 802.1Q/802.1ad tag follows the MACs
  bool ip_malformed = false;  // the IP header is one the kernel drops
  bool l4_malformed = false;  // the L4 header does not fit or lies about its length
  bool whole = true;          // not an IPv4 fragment
  bool has_l4 = true;         // carries the L4 header (not a later fragment)
  bool l4_csum_ok = false;    // whole, with a valid TCP/UDP/ICMP checksum
  size_t l3 = 14, l3_end = 0, l4 = 0;
  uint8_t proto = 0;          // IPv6: the first next header
  std::array<uint8_t, 16> src{}, dst{};
  uint16_t sport = 0, dport = 0;
};

FrameFacts Inspect(const Bytes& f);

// The IPv4 header checksum of the frame's (untagged) IPv4 header verifies.
bool Ipv4HeaderChecksumOk(const Bytes& f);

// Recomputes the IPv4 header checksum in place (untagged frames).
void FixIpv4HeaderChecksum(Bytes& f);

}  // namespace tendril
