// The kernel's routing decision for many addresses from one dump of its
// rules and routes, instead of one RTM_GETROUTE per address (placing the
// 200,000 backends of 100,000 services asked the kernel 200,000 times).
// Exact where it answers: the rules must be plain "look up table T" rules
// (the kernel's defaults: local, main, default), and a longest-prefix match
// that lands on a route it does not model (several next hops, a nexthop
// object, blackhole/unreachable/throw, a dead or link-down route, a
// source-specific IPv6 route) is left to the kernel, for that address.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "network/addr.h"
#include "network/netlink.h"

namespace tendril {

class RouteTable {
 public:
  // nullopt when a rule is more than "look up table T" (policy routing,
  // VRFs): then only the kernel can answer.
  static absl::StatusOr<std::optional<RouteTable>> Load();

  enum class Answer { kRoute, kNoRoute, kAskKernel };
  // The route to `dst` as RTM_GETROUTE would give it (`out` set for kRoute).
  Answer Lookup(const IpAddr& dst, RouteInfo* out) const;

  // Whether the kernel's FIB answers by destination (and ingress device)
  // alone: no route looked at has several next hops (IPv6 reports its
  // equal-cost routes so too), a nexthop object, a source prefix or a TOS
  // (and the rules are plain, or there would be no table). The datapath then shares next hops between
  // flows (TND_NODE_F_HOPS_SHARED).
  bool PerDestination() const { return per_destination_; }

  struct Entry {
    RouteInfo route;
    uint32_t metric = 0;
    bool modeled = true;  // false: the kernel decides what it does
  };
  // One table of one family: prefixes by length, longest first.
  struct Table {
    uint32_t id = 0;
    std::vector<std::pair<int, absl::flat_hash_map<std::array<uint8_t, 16>, Entry>>> by_len;
    void Add(int len, const std::array<uint8_t, 16>& prefix, const Entry& e);
  };

 private:
  // Per family (0: IPv4, 1: IPv6): the tables in rule order.
  std::array<std::vector<Table>, 2> tables_;
  bool per_destination_ = true;
};

}  // namespace tendril
