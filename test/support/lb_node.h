// A one-node network for per-packet LB tests and benchmarks, inside a test
// namespace: tn0 (10.0.0.1/24, fd00::1/64) is the node's native device, with
// the other node 10.0.0.2/fd00::2 and a client 10.0.0.100/fd00::100 as fixed
// neighbours and 10.1.2.0/24, fd02::/64 routed to the other node; lx0
// (10.1.1.1/24, fd01::1/64) leads to a local backend 10.1.1.2. Forwarding on.
#pragma once

#include <cstdint>

#include "test/support/kernel.h"
#include "test/support/packet.h"

namespace tendril::test {

inline constexpr Mac kMacNode{{0x02, 0, 0, 0, 0x01, 0x01}};    // tn0
inline constexpr Mac kMacPeer{{0x02, 0, 0, 0, 0x01, 0x02}};    // 10.0.0.2: the other node
inline constexpr Mac kMacClient{{0x02, 0, 0, 0, 0x01, 0x64}};  // 10.0.0.100: the client
inline constexpr Mac kMacLx{{0x02, 0, 0, 0, 0x02, 0x01}};      // lx0
inline constexpr Mac kMacLocal{{0x02, 0, 0, 0, 0x02, 0x02}};   // 10.1.1.2: a local backend

// Builds the network in `ns`; returns tn0's ifindex (0 on failure, with a
// test failure recorded).
uint32_t BuildLbNode(const Netns& ns);

}  // namespace tendril::test
