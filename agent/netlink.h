// Netlink queries through libmnl: the kernel's route to an address (which
// device it leaves through) and a device's addresses.
#pragma once

#include <optional>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/service.h"

namespace tendril {

struct RouteInfo {
  int oif = 0;                 // output interface
  bool local_address = false;  // dst is an address of this node (route type local)
};

// The kernel's route to `dst` (RTM_GETROUTE, as `ip route get` asks);
// nullopt when there is no route.
absl::StatusOr<std::optional<RouteInfo>> LookupRoute(const IpAddr& dst);

// The global addresses (IPv4, and IPv6 other than link-local) of a device.
absl::StatusOr<std::vector<IpAddr>> DeviceAddresses(int ifindex);

}  // namespace tendril
