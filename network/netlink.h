// rtnetlink through libmnl: the kernel's route to an address (which device
// it leaves through), a device's addresses, and the link/address/route/
// neighbour changes that set up endpoints; link change notifications.
#pragma once

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/addr.h"
#include "network/cidr.h"

struct mnl_socket;
struct nlmsghdr;

namespace tendril {

struct RouteInfo {
  int oif = 0;                 // output interface
  bool local_address = false;  // dst is an address of this node (route type local)
};

// The kernel's route to `dst` (RTM_GETROUTE, as `ip route get` asks);
// nullopt when there is no route.
absl::StatusOr<std::optional<RouteInfo>> LookupRoute(const IpAddr& dst);
// The same for many addresses, answers in their order: requests go to the
// kernel in batches of up to 128 per message (a service set of 100,000
// services asks 200,000 of them).
absl::StatusOr<std::vector<std::optional<RouteInfo>>> LookupRoutes(const std::vector<IpAddr>& dsts);

// The global addresses (IPv4, and IPv6 other than link-local) of a device.
absl::StatusOr<std::vector<IpAddr>> DeviceAddresses(int ifindex);


// ---- links, addresses, routes, neighbours (endpoints) --------------------

struct LinkInfo {
  int ifindex = 0;
  std::string name;
  std::array<uint8_t, 6> mac{};
  std::string kind;        // IFLA_INFO_KIND, e.g. "veth"
  int peer_ifindex = 0;    // IFLA_LINK (a veth's peer)
  int link_netnsid = -1;   // IFLA_LINK_NETNSID: the peer's namespace, as seen from here
  bool up = false;
  uint32_t mtu = 0;
};

// An rtnetlink socket in the caller's network namespace or in another one
// (a socket stays in the namespace it was created in, so requests through
// it change that namespace).
class Rtnl {
 public:
  static absl::StatusOr<Rtnl> Open();
  static absl::StatusOr<Rtnl> OpenIn(const std::string& netns_path);

  // nullopt when there is no such device.
  absl::StatusOr<std::optional<LinkInfo>> GetLink(const std::string& name);
  // `target_netnsid` >= 0: the device with that index in the namespace this
  // one calls by that id (a veth peer's namespace).
  absl::StatusOr<std::optional<LinkInfo>> GetLinkByIndex(int ifindex, int target_netnsid = -1);
  // A veth pair: `name` here, `peer_name` created directly in the namespace
  // behind `peer_netns_fd`.
  absl::Status CreateVeth(const std::string& name, const std::string& peer_name, int peer_netns_fd);
  absl::Status SetUp(int ifindex, const std::string& what);
  // IPv6 addresses are added without duplicate address detection.
  absl::Status AddAddress(int ifindex, const IpAddr& addr, int prefix_len, const std::string& what);
  // dst/prefix_len through `ifindex`, via `gateway` (onlink) if given.
  absl::Status AddRoute(const IpAddr& dst, int prefix_len, int ifindex, const IpAddr* gateway,
                        const std::string& what);
  absl::Status AddNeighbour(int ifindex, const IpAddr& addr, const std::array<uint8_t, 6>& mac,
                            const std::string& what);
  absl::Status DeleteLink(int ifindex, const std::string& what);

  Rtnl(Rtnl&&) noexcept;
  Rtnl& operator=(Rtnl&&) noexcept;
  ~Rtnl();

 private:
  explicit Rtnl(mnl_socket* nl) : nl_(nl) {}
  absl::Status Ack(nlmsghdr* nlh, const std::string& what);
  mnl_socket* nl_ = nullptr;
  uint32_t seq_ = 100;
};

// Link, address, route, neighbour and routing rule changes for the agent's
// poll loop.
struct LinkEvent {
  enum class Kind { kLink, kAddress, kRoute, kNeighbour, kRule };
  Kind kind = Kind::kLink;
  bool deleted = false;
  int ifindex = 0;   // kLink, kAddress
  std::string name;  // kLink
  Cidr route;        // kRoute: the destination prefix
};

class LinkWatcher {
 public:
  static absl::StatusOr<std::unique_ptr<LinkWatcher>> Open();
  ~LinkWatcher();
  int fd() const;
  // Everything queued now (non-blocking).
  std::vector<LinkEvent> Read();

 private:
  explicit LinkWatcher(mnl_socket* nl) : nl_(nl) {}
  mnl_socket* nl_;
};

}  // namespace tendril
