#include "datapath/node_maps.h"

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "network/netlink.h"

namespace tendril {

absl::StatusOr<NodeFacts> GatherNodeFacts(const std::vector<std::string>& devices) {
  TND_ASSIGN_OR_RETURN(Rtnl nl, Rtnl::Open());
  NodeFacts f;
  for (const auto& dev : devices) {
    TND_ASSIGN_OR_RETURN(std::optional<LinkInfo> link, nl.GetLink(dev));
    if (!link) return absl::NotFoundError(absl::StrCat("device ", dev, " does not exist"));
    DeviceFacts d{dev, link->ifindex, link->mac, {}};
    TND_ASSIGN_OR_RETURN(d.addresses, DeviceAddresses(d.ifindex));
    f.devices.push_back(std::move(d));
  }
  return f;
}

absl::Status SyncDeviceMap(int map_fd, const std::vector<DeviceFacts>& devices, bool ipv4, bool ipv6) {
  Map<uint32_t, tnd_device> map(Dup(map_fd), TND_MAP_DEVICES);
  std::set<uint32_t> want;
  for (const DeviceFacts& d : devices) {
    tnd_device v{};
    bool have4 = false, have6 = false;
    for (const IpAddr& a : d.addresses) {
      if (a.family == Family::kV4 && ipv4 && !have4) {
        std::memcpy(&v.ipv4, a.bytes.data(), 4);
        have4 = true;
      }
      if (a.family == Family::kV6 && ipv6 && !have6) {
        std::memcpy(v.ipv6, a.bytes.data(), 16);
        have6 = true;
      }
    }
    std::copy(d.mac.begin(), d.mac.end(), v.mac);
    TND_RETURN_IF_ERROR(map.Update(static_cast<uint32_t>(d.ifindex), v));
    want.insert(static_cast<uint32_t>(d.ifindex));
  }
  std::vector<uint32_t> stale;
  TND_RETURN_IF_ERROR(map.ForEach([&](const uint32_t& k, const tnd_device&) {
    if (!want.count(k)) stale.push_back(k);
  }));
  for (uint32_t k : stale) TND_RETURN_IF_ERROR(map.Delete(k));
  return absl::OkStatus();
}

namespace {
// One family's LPM map = the CIDRs of that family in `want`.
template <typename Key>
absl::Status SyncLpm(int fd, const char* name, Family fam, const std::map<Cidr, uint32_t>& want) {
  constexpr size_t kLen = sizeof(Key::addr);
  Map<Key, tnd_nomasq_val> map(Dup(fd), name);
  for (const auto& [c, flags] : want) {
    if (c.family != fam) continue;
    Key k{c.prefix_len, {}};
    std::memcpy(k.addr, c.addr.data(), kLen);
    TND_RETURN_IF_ERROR(map.Update(k, tnd_nomasq_val{flags}));
  }
  std::vector<Key> stale;
  TND_RETURN_IF_ERROR(map.ForEach([&](const Key& k, const tnd_nomasq_val&) {
    Cidr c{fam, {}, static_cast<uint8_t>(k.prefixlen)};
    std::memcpy(c.addr.data(), k.addr, kLen);
    if (!want.count(c)) stale.push_back(k);
  }));
  for (const Key& k : stale) TND_RETURN_IF_ERROR(map.Delete(k));
  return absl::OkStatus();
}
}  // namespace

absl::Status SyncNoMasqMaps(int fd4, int fd6, const std::map<Cidr, uint32_t>& want) {
  TND_RETURN_IF_ERROR(SyncLpm<tnd_lpm_v4_key>(fd4, TND_MAP_NOMASQ_V4, Family::kV4, want));
  return SyncLpm<tnd_lpm_v6_key>(fd6, TND_MAP_NOMASQ_V6, Family::kV6, want);
}

}  // namespace tendril
