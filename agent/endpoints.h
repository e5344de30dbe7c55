// Endpoints (pods): network namespaces joined to the node by a veth pair.
// The agent creates the pair (or adopts one someone else made), addresses
// the namespace side, routes it, writes tnd_endpoints and attaches bpf_lxc.o
// to the host side. All or nothing: a failed add leaves no device, route,
// map entry or attachment behind.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "maps/map_ops.h"
#include "network/netlink.h"
#include "lb/service.h"
#include "common/fd.h"

namespace tendril {

// The endpoint's gateway as its namespace sees it: the host side of the veth,
// reached through permanent neighbour entries (no ARP/ND needed).
inline constexpr const char* kEndpointGatewayV4 = "169.254.1.1";
inline constexpr const char* kEndpointGatewayV6 = "fe80::1";

struct Endpoint {
  uint32_t id = 0;
  std::string ifname;                   // host side of the veth
  std::string netns;                    // created by the agent in this namespace; empty: adopted
  std::string container_ifname = "eth0";
  std::vector<IpAddr> ips;              // one or two (at most one per family)
  // Read from the kernel when added or restored.
  int ifindex = 0;
  std::array<uint8_t, 6> mac{};         // namespace side
  std::array<uint8_t, 6> node_mac{};    // host side
  uint32_t mtu = 0;                     // namespace side
  bool ready = false;                   // device present, map written, programs attached
  bool adopted() const { return netns.empty(); }
};

nlohmann::json EndpointToJson(const Endpoint& e);
absl::StatusOr<Endpoint> EndpointFromJson(const nlohmann::json& j);

// Checks an endpoint to add against the ones there are and the node's
// native devices: id range and uniqueness, device name, addresses.
absl::Status ValidateEndpoint(const Endpoint& e, const std::vector<Endpoint>& existing,
                              const std::vector<std::string>& native_devices);

class EndpointManager {
 public:
  struct Hooks {
    // Attaches bpf_lxc.o to the host-side device (replacing what is there).
    std::function<absl::Status(const Endpoint&)> attach;
    std::function<absl::Status(const Endpoint&)> detach;
    MapOps* map_ops = nullptr;  // the endpoint map's writes (null: the kernel's)
  };
  EndpointManager(UniqueFd endpoints_map, Hooks hooks, std::vector<std::string> native_devices,
                  bool ipv4, bool ipv6);

  absl::StatusOr<Endpoint> Add(Endpoint e);
  absl::StatusOr<Endpoint> Delete(uint32_t id);
  // At start: endpoints whose device still exists are refreshed, written and
  // attached; the others stay declared as device-missing, except agent-made
  // ones whose namespace is gone: dropped (named in the result). Stale map
  // entries are removed.
  absl::StatusOr<std::vector<std::string>> Restore(const std::vector<Endpoint>& eps);
  // A link event: an endpoint device that disappeared loses its map entries
  // and programs (and the endpoint goes if its namespace went too); one that
  // appears again under the endpoint's name is taken over and re-attached.
  // True when the endpoint list changed (the caller persists it).
  bool OnLinkEvent(const LinkEvent& ev);

  const std::vector<Endpoint>& List() const { return eps_; }
  const Endpoint* Get(uint32_t id) const;

 private:
  absl::Status CreateVeth(Endpoint& e, Rtnl& host);
  absl::Status ConfigureNamespaceSide(Endpoint& e);
  absl::Status ReadPeer(Endpoint& e, Rtnl& host);
  absl::Status ConfigureHostSide(const Endpoint& e, Rtnl& host);
  absl::Status WriteMap(const Endpoint& e);
  void EraseMap(const Endpoint& e);
  // Refreshes facts, host routes, map and attachment of an existing device.
  absl::Status Bring(Endpoint& e);

  UniqueFd map_;
  Hooks hooks_;
  std::vector<std::string> native_devices_;
  bool ipv4_, ipv6_;
  std::vector<Endpoint> eps_;
};

}  // namespace tendril
