// The node's own tables in the datapath: the native devices (tnd_devices:
// ifindex -> MAC and the addresses SNAT and replies use) and the masquerade
// exemptions (tnd_nomasq_v4/v6: pod CIDRs and configured exemptions). Each
// Sync writes what differs and removes what is no longer wanted.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "network/addr.h"
#include "network/cidr.h"

namespace tendril {

struct DeviceFacts {
  std::string name;
  int ifindex = 0;
  Mac mac{};
  std::vector<IpAddr> addresses;
};

struct NodeFacts {
  std::vector<DeviceFacts> devices;
};

// Reads each device's index, MAC and global addresses (rtnetlink).
absl::StatusOr<NodeFacts> GatherNodeFacts(const std::vector<std::string>& devices);

// tnd_devices = `devices`: the first address of each enabled family.
absl::Status SyncDeviceMap(int map_fd, const std::vector<DeviceFacts>& devices, bool ipv4, bool ipv6);

// tnd_nomasq_v4/v6 = `want` (CIDR -> TND_NOMASQ_F_* flags).
absl::Status SyncNoMasqMaps(int fd4, int fd6, const std::map<Cidr, uint32_t>& want);

}  // namespace tendril
