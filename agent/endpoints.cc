#include "agent/endpoints.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "maps/pinned_map.h"
#include "maps/tendril_maps.h"
#include "network/netns.h"

namespace tendril {
namespace {

using EpMap = Map<tnd_ep_key, tnd_endpoint>;

bool ValidIfname(const std::string& n) {
  if (n.empty() || n.size() > 15 || n == "." || n == "..") return false;
  for (char c : n)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return true;
}

tnd_ep_key KeyOf(const IpAddr& ip) {
  tnd_ep_key k{};
  bool v4 = ip.family == Family::kV4;
  std::memcpy(k.addr, ip.bytes.data(), v4 ? 4 : 16);
  k.family = v4 ? 4 : 6;
  return k;
}

// The interface's forwarding switch, per family (the FIB lookups of the
// programs and the kernel's own routing both check it on the ingress device).
absl::Status EnableForwarding(const std::string& ifname, Family f) {
  std::string path = absl::StrCat("/proc/sys/net/", f == Family::kV4 ? "ipv4" : "ipv6", "/conf/", ifname,
                                  "/forwarding");
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
  if (!fd.valid()) return ErrnoError(errno, absl::StrCat("open ", path));
  if (::write(fd.get(), "1\n", 2) != 2) return ErrnoError(errno, absl::StrCat("write ", path));
  return absl::OkStatus();
}

// An agent-made endpoint whose namespace is gone is gone for good.
bool NamespaceGone(const Endpoint& e) { return !e.adopted() && ::access(e.netns.c_str(), F_OK) != 0; }

}  // namespace

nlohmann::json EndpointToJson(const Endpoint& e) {
  nlohmann::json ips = nlohmann::json::array();
  for (const IpAddr& ip : e.ips) ips.push_back(ip.ToString());
  return {{"id", e.id},
          {"ifname", e.ifname},
          {"netns", e.netns},
          {"container_ifname", e.container_ifname},
          {"ips", ips},
          {"adopted", e.adopted()},
          {"ifindex", e.ifindex},
          {"mac", MacToString(e.mac)},
          {"node_mac", MacToString(e.node_mac)},
          {"state", e.ready ? "ready" : "device-missing"}};
}

absl::StatusOr<Endpoint> EndpointFromJson(const nlohmann::json& j) {
  if (!j.is_object()) return absl::InvalidArgumentError("endpoint must be an object");
  Endpoint e;
  if (!j.contains("id") || !j["id"].is_number_integer() || j["id"].get<int64_t>() < 1 ||
      j["id"].get<int64_t>() > 65535)
    return absl::InvalidArgumentError("endpoint id must be a number in 1-65535");
  e.id = j["id"].get<uint32_t>();
  if (!j.contains("ifname") || !j["ifname"].is_string())
    return absl::InvalidArgumentError("endpoint needs an interface name (ifname)");
  e.ifname = j["ifname"].get<std::string>();
  if (j.contains("netns")) {
    if (!j["netns"].is_string()) return absl::InvalidArgumentError("netns must be a path");
    e.netns = j["netns"].get<std::string>();
  }
  if (j.contains("container_ifname")) {
    if (!j["container_ifname"].is_string()) return absl::InvalidArgumentError("container_ifname must be a name");
    e.container_ifname = j["container_ifname"].get<std::string>();
  }
  if (!j.contains("ips") || !j["ips"].is_array() || j["ips"].empty())
    return absl::InvalidArgumentError("endpoint needs at least one address (ips)");
  for (const auto& t : j["ips"]) {
    if (!t.is_string()) return absl::InvalidArgumentError("ips must hold addresses");
    TND_ASSIGN_OR_RETURN(IpAddr ip, ParseIp(t.get<std::string>()));
    e.ips.push_back(ip);
  }
  return e;
}

absl::Status ValidateEndpoint(const Endpoint& e, const std::vector<Endpoint>& existing,
                              const std::vector<std::string>& native_devices) {
  if (e.id < 1 || e.id > 65535) return absl::InvalidArgumentError("endpoint id must be in 1-65535");
  if (!ValidIfname(e.ifname))
    return absl::InvalidArgumentError(
        absl::StrCat("\"", e.ifname, "\" is not a valid device name (1-15 of letters, digits, - _ .)"));
  if (!ValidIfname(e.container_ifname))
    return absl::InvalidArgumentError(
        absl::StrCat("\"", e.container_ifname, "\" is not a valid device name for the namespace side"));
  for (const auto& d : native_devices)
    if (d == e.ifname)
      return absl::InvalidArgumentError(absl::StrCat(e.ifname, " is a native device of the agent (devices)"));
  if (e.ips.empty() || e.ips.size() > 2)
    return absl::InvalidArgumentError("an endpoint has one IPv4 address, one IPv6 address, or one of each");
  if (e.ips.size() == 2 && e.ips[0].family == e.ips[1].family)
    return absl::InvalidArgumentError("an endpoint has at most one address per family");
  for (const IpAddr& ip : e.ips) {
    bool zero = std::all_of(ip.bytes.begin(), ip.bytes.end(), [](uint8_t b) { return b == 0; });
    if (zero || (ip.family == Family::kV4 && (ip.bytes[0] == 127 || ip.bytes[0] >= 224)) ||
        (ip.family == Family::kV6 && (ip.bytes[0] == 0xff || (ip.bytes[0] == 0xfe && (ip.bytes[1] & 0xc0) == 0x80))))
      return absl::InvalidArgumentError(
          absl::StrCat(ip.ToString(), " cannot be an endpoint address (unspecified, loopback, multicast or link-local)"));
  }
  if (!e.netns.empty() && ::access(e.netns.c_str(), R_OK) != 0)
    return ErrnoError(errno, absl::StrCat("network namespace ", e.netns));
  for (const Endpoint& o : existing) {
    if (o.id == e.id) return absl::AlreadyExistsError(absl::StrCat("endpoint id ", e.id, " is taken"));
    if (o.ifname == e.ifname)
      return absl::AlreadyExistsError(absl::StrCat("device ", e.ifname, " belongs to endpoint ", o.id));
    for (const IpAddr& a : o.ips)
      for (const IpAddr& b : e.ips)
        if (a == b)
          return absl::AlreadyExistsError(absl::StrCat("address ", a.ToString(), " belongs to endpoint ", o.id));
  }
  return absl::OkStatus();
}

EndpointManager::EndpointManager(UniqueFd endpoints_map, Hooks hooks, std::vector<std::string> native_devices,
                                 bool ipv4, bool ipv6)
    : map_(std::move(endpoints_map)),
      hooks_(std::move(hooks)),
      native_devices_(std::move(native_devices)),
      ipv4_(ipv4),
      ipv6_(ipv6) {}

const Endpoint* EndpointManager::Get(uint32_t id) const {
  for (const Endpoint& e : eps_)
    if (e.id == id) return &e;
  return nullptr;
}

absl::Status EndpointManager::CreateVeth(Endpoint& e, Rtnl& host) {
  UniqueFd ns(::open(e.netns.c_str(), O_RDONLY | O_CLOEXEC));
  if (!ns.valid()) return ErrnoError(errno, absl::StrCat("open network namespace ", e.netns));
  return host.CreateVeth(e.ifname, e.container_ifname, ns.get());
}

absl::Status EndpointManager::ConfigureNamespaceSide(Endpoint& e) {
  TND_ASSIGN_OR_RETURN(Rtnl pod, Rtnl::OpenIn(e.netns));
  std::string what = absl::StrCat(e.container_ifname, " in ", e.netns);
  TND_ASSIGN_OR_RETURN(auto link, pod.GetLink(e.container_ifname));
  if (!link) return absl::NotFoundError(absl::StrCat("device ", what, " is missing"));
  e.mac = link->mac;
  // GRO on runs the namespace side's receive path under NAPI: frames XDP
  // redirects into the veth are taken (without it the kernel drops them).
  TND_RETURN_IF_ERROR(Annotate(InNetns(e.netns, [&] { return SetGro(e.container_ifname, true); }), what));
  TND_RETURN_IF_ERROR(pod.SetUp(1, absl::StrCat("lo in ", e.netns)));
  TND_RETURN_IF_ERROR(pod.SetUp(link->ifindex, what));
  for (const IpAddr& ip : e.ips) {
    bool v4 = ip.family == Family::kV4;
    TND_RETURN_IF_ERROR(pod.AddAddress(link->ifindex, ip, v4 ? 32 : 128, what));
    TND_ASSIGN_OR_RETURN(IpAddr gw, ParseIp(v4 ? kEndpointGatewayV4 : kEndpointGatewayV6));
    TND_RETURN_IF_ERROR(pod.AddNeighbour(link->ifindex, gw, e.node_mac, what));
    IpAddr any;
    any.family = ip.family;
    TND_RETURN_IF_ERROR(pod.AddRoute(any, 0, link->ifindex, &gw, what));
  }
  return absl::OkStatus();
}

absl::Status EndpointManager::ReadPeer(Endpoint& e, Rtnl& host) {
  TND_ASSIGN_OR_RETURN(auto link, host.GetLink(e.ifname));
  if (!link) return absl::NotFoundError(absl::StrCat("device ", e.ifname, " does not exist"));
  if (link->kind != "veth")
    return absl::InvalidArgumentError(absl::StrCat("device ", e.ifname, " is a ",
                                                   link->kind.empty() ? "non-virtual" : link->kind,
                                                   " device, not a veth"));
  e.ifindex = link->ifindex;
  e.node_mac = link->mac;
  if (!e.adopted()) {
    TND_ASSIGN_OR_RETURN(Rtnl pod, Rtnl::OpenIn(e.netns));
    TND_ASSIGN_OR_RETURN(auto peer, pod.GetLink(e.container_ifname));
    if (!peer) return absl::NotFoundError(absl::StrCat("device ", e.container_ifname, " in ", e.netns, " is missing"));
    e.mac = peer->mac;
    e.mtu = peer->mtu;
    return absl::OkStatus();
  }
  TND_ASSIGN_OR_RETURN(auto peer, host.GetLinkByIndex(link->peer_ifindex, link->link_netnsid));
  if (!peer)
    return absl::NotFoundError(absl::StrCat("the peer of veth ", e.ifname, " (ifindex ", link->peer_ifindex,
                                            ") cannot be read"));
  e.mac = peer->mac;
  e.mtu = peer->mtu;
  return absl::OkStatus();
}

absl::Status EndpointManager::ConfigureHostSide(const Endpoint& e, Rtnl& host) {
  TND_RETURN_IF_ERROR(host.SetUp(e.ifindex, e.ifname));
  for (const IpAddr& ip : e.ips) {
    TND_RETURN_IF_ERROR(EnableForwarding(e.ifname, ip.family));
    TND_RETURN_IF_ERROR(host.AddRoute(ip, ip.family == Family::kV4 ? 32 : 128, e.ifindex, nullptr, e.ifname));
    TND_RETURN_IF_ERROR(host.AddNeighbour(e.ifindex, ip, e.mac, e.ifname));
  }
  return absl::OkStatus();
}

absl::Status EndpointManager::WriteMap(const Endpoint& e) {
  EpMap m(UniqueFd(::fcntl(map_.get(), F_DUPFD_CLOEXEC, 3)), TND_MAP_ENDPOINTS, hooks_.map_ops);
  tnd_endpoint v{};
  v.ifindex = static_cast<uint32_t>(e.ifindex);
  v.id = e.id;
  std::memcpy(v.mac, e.mac.data(), 6);
  std::memcpy(v.node_mac, e.node_mac.data(), 6);
  // Only a veth the agent made has GRO on its namespace side (set above),
  // and XDP delivers only to one that takes a full-size frame: the rest
  // are tc's (bpf_redirect_peer).
  v.flags = e.adopted() ? TND_EP_F_ADOPTED : e.mtu >= TND_XDP_RX_MTU ? TND_EP_F_XDP_RX : 0;
  v.mtu = static_cast<uint16_t>(std::min<uint32_t>(e.mtu, UINT16_MAX));
  for (const IpAddr& ip : e.ips) TND_RETURN_IF_ERROR(m.Update(KeyOf(ip), v));
  return absl::OkStatus();
}

void EndpointManager::EraseMap(const Endpoint& e) {
  EpMap m(UniqueFd(::fcntl(map_.get(), F_DUPFD_CLOEXEC, 3)), TND_MAP_ENDPOINTS, hooks_.map_ops);
  for (const IpAddr& ip : e.ips) (void)m.Delete(KeyOf(ip));
}

absl::StatusOr<Endpoint> EndpointManager::Add(Endpoint e) {
  TND_RETURN_IF_ERROR(ValidateEndpoint(e, eps_, native_devices_));
  for (const IpAddr& ip : e.ips)
    if (ip.family == Family::kV4 ? !ipv4_ : !ipv6_)
      return absl::InvalidArgumentError(absl::StrCat(ip.ToString(), ": that address family is disabled (enable-ipv",
                                                     ip.family == Family::kV4 ? "4" : "6", ")"));
  TND_ASSIGN_OR_RETURN(Rtnl host, Rtnl::Open());
  TND_ASSIGN_OR_RETURN(auto existing, host.GetLink(e.ifname));
  if (!e.adopted() && existing)
    return absl::AlreadyExistsError(
        absl::StrCat("device ", e.ifname, " exists; to adopt it as the endpoint's veth, leave out --netns"));
  if (e.adopted() && !existing)
    return absl::NotFoundError(absl::StrCat("device ", e.ifname,
                                            " does not exist; give --netns to have the agent create the veth pair"));
  bool created = false, attached = false;
  auto st = [&]() -> absl::Status {
    if (!e.adopted()) {
      TND_RETURN_IF_ERROR(CreateVeth(e, host));
      created = true;
      TND_ASSIGN_OR_RETURN(auto link, host.GetLink(e.ifname));
      if (!link) return absl::InternalError(absl::StrCat("device ", e.ifname, " vanished after creation"));
      e.ifindex = link->ifindex;
      e.node_mac = link->mac;
      TND_RETURN_IF_ERROR(ConfigureNamespaceSide(e));
    }
    TND_RETURN_IF_ERROR(ReadPeer(e, host));
    TND_RETURN_IF_ERROR(ConfigureHostSide(e, host));
    // Programs before the map entries: a packet for the endpoint that finds
    // its entry is delivered by bpf_redirect_peer; its replies must meet
    // bpf_lxc on the way out.
    TND_RETURN_IF_ERROR(hooks_.attach(e));
    attached = true;
    return WriteMap(e);
  }();
  if (!st.ok()) {
    EraseMap(e);
    if (attached) (void)hooks_.detach(e);
    if (created) {
      if (auto l = host.GetLink(e.ifname); l.ok() && *l) (void)host.DeleteLink((*l)->ifindex, e.ifname);
    }
    return Annotate(st, absl::StrCat("endpoint ", e.id, " (nothing was left behind)"));
  }
  e.ready = true;
  eps_.push_back(e);
  return e;
}

absl::StatusOr<Endpoint> EndpointManager::Delete(uint32_t id) {
  auto it = std::find_if(eps_.begin(), eps_.end(), [&](const Endpoint& e) { return e.id == id; });
  if (it == eps_.end()) return absl::NotFoundError(absl::StrCat("no endpoint with id ", id));
  Endpoint e = *it;
  EraseMap(e);
  if (!e.ready) {
    eps_.erase(it);
    return e;
  }
  if (auto s = hooks_.detach(e); !s.ok()) TND_LOG_WARN("endpoint ", id, ": ", s.message());
  if (!e.adopted()) {
    TND_ASSIGN_OR_RETURN(Rtnl host, Rtnl::Open());
    TND_ASSIGN_OR_RETURN(auto link, host.GetLink(e.ifname));
    if (link) TND_RETURN_IF_ERROR(host.DeleteLink(link->ifindex, e.ifname));
  }
  eps_.erase(it);
  return e;
}

absl::Status EndpointManager::Bring(Endpoint& e) {
  TND_ASSIGN_OR_RETURN(Rtnl host, Rtnl::Open());
  TND_RETURN_IF_ERROR(ReadPeer(e, host));
  // The agent made this one: its namespace side is the agent's to (re)set
  // (idempotent; a recreated pair comes up bare).
  if (!e.adopted()) TND_RETURN_IF_ERROR(ConfigureNamespaceSide(e));
  TND_RETURN_IF_ERROR(ConfigureHostSide(e, host));
  TND_RETURN_IF_ERROR(hooks_.attach(e));
  return WriteMap(e);
}

absl::StatusOr<std::vector<std::string>> EndpointManager::Restore(const std::vector<Endpoint>& eps) {
  std::vector<std::string> dropped;
  eps_.clear();
  for (Endpoint e : eps) {
    auto st = Bring(e);
    e.ready = st.ok();
    if (!st.ok()) {
      EraseMap(e);
      (void)hooks_.detach(e);
      if (NamespaceGone(e)) {
        dropped.push_back(absl::StrCat("endpoint ", e.id, " (", e.ifname, "): namespace ", e.netns, " is gone"));
        continue;
      }
      TND_LOG_WARN("endpoint ", e.id, " (", e.ifname, "): ", st.message(),
                   "; kept as device-missing until the device is back");
    }
    eps_.push_back(e);
  }
  // Entries of endpoints that are no longer declared.
  std::set<std::vector<uint8_t>> want;
  for (const Endpoint& e : eps_)
    for (const IpAddr& ip : e.ips) {
      if (!e.ready) continue;
      tnd_ep_key k = KeyOf(ip);
      want.insert(std::vector<uint8_t>(reinterpret_cast<uint8_t*>(&k), reinterpret_cast<uint8_t*>(&k) + sizeof(k)));
    }
  EpMap m(UniqueFd(::fcntl(map_.get(), F_DUPFD_CLOEXEC, 3)), TND_MAP_ENDPOINTS, hooks_.map_ops);
  std::vector<tnd_ep_key> stale;
  TND_RETURN_IF_ERROR(m.ForEach([&](const tnd_ep_key& k, const tnd_endpoint&) {
    std::vector<uint8_t> b(reinterpret_cast<const uint8_t*>(&k), reinterpret_cast<const uint8_t*>(&k) + sizeof(k));
    if (!want.count(b)) stale.push_back(k);
  }));
  for (const auto& k : stale) TND_RETURN_IF_ERROR(m.Delete(k));
  return dropped;
}

bool EndpointManager::OnLinkEvent(const LinkEvent& ev) {
  for (auto it = eps_.begin(); it != eps_.end(); ++it) {
    Endpoint& e = *it;
    if (ev.deleted && e.ready && ev.ifindex == e.ifindex) {
      // The datapath forgets it at once; the declaration stays (the device
      // may come back) unless its namespace went with it.
      EraseMap(e);
      (void)hooks_.detach(e);
      e.ready = false;
      if (NamespaceGone(e)) {
        TND_LOG_INFO("endpoint ", e.id, ": device ", e.ifname, " and namespace ", e.netns,
                     " are gone; endpoint removed");
        eps_.erase(it);
      } else {
        TND_LOG_INFO("endpoint ", e.id, ": device ", e.ifname, " (ifindex ", e.ifindex,
                     ") disappeared; map entries and programs removed, waiting for it to come back");
      }
      return true;
    }
    if (!ev.deleted && ev.name == e.ifname && (!e.ready || ev.ifindex != e.ifindex)) {
      int old = e.ifindex;
      auto st = Bring(e);
      if (!st.ok()) {
        TND_LOG_WARN("endpoint ", e.id, ": device ", e.ifname, " (ifindex ", ev.ifindex,
                     ") appeared but could not be taken over: ", st.message());
        return false;
      }
      e.ready = true;
      TND_LOG_INFO("endpoint ", e.id, ": device ", e.ifname, " recreated (ifindex ", old, " -> ", e.ifindex,
                   "); programs re-attached");
      return true;
    }
  }
  return false;
}

}  // namespace tendril
