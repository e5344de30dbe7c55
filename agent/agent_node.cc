// The agent following its node: links recreated, addresses added and
// removed (node port frontends), routes changed (where backends are), and
// the facts the datapath needs about the node (its namespace cookie).
#include <sys/socket.h>

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "datapath/attach.h"
#include "maps/node_gen.h"
#include "network/netlink.h"
#include "network/route_table.h"
#include "agent/prefilter.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/status.h"
#include "maps/abi.h"

#ifndef SO_NETNS_COOKIE
#define SO_NETNS_COOKIE 71  /* Linux 5.14 */
#endif

namespace tendril {

std::vector<IpAddr> Agent::NodePortAddresses(const NodeFacts& facts) const {
  std::vector<Cidr> only;
  if (auto c = ParseCidrList(cfg_.nodeport_addresses); c.ok()) only = *c;  // validated at start
  auto wanted = [&](const IpAddr& a) {
    if (a.family == Family::kV4 ? !cfg_.enable_ipv4 : !cfg_.enable_ipv6) return false;
    if (only.empty()) return true;
    for (const Cidr& c : only)
      if (c.Contains(a.family, a.bytes)) return true;
    return false;
  };
  std::vector<IpAddr> out;
  for (const DeviceFacts& d : facts.devices)
    for (const IpAddr& a : d.addresses)
      if (wanted(a) && std::find(out.begin(), out.end(), a) == out.end()) out.push_back(a);
  // kube-proxy serves 127.0.0.1:NODEPORT to the node itself (IPv4 only);
  // socket LB does it, for the node's own namespace.
  IpAddr lo = *ParseIp("127.0.0.1");
  if (wanted(lo)) out.push_back(lo);
  return out;
}

void Agent::OnNodeAddressesChanged() {
  if (!services_ || !host_obj_) return;
  auto facts = GatherFacts();
  if (!facts.ok()) {
    TND_LOG_WARN("node addresses: ", facts.status().message());
    return;
  }
  if (auto st = SyncDevices(*facts); !st.ok()) TND_LOG_WARN("device table: ", st.message());
  std::vector<IpAddr> addrs = NodePortAddresses(*facts);
  auto n = services_->SetNodeAddresses(addrs);
  if (!n.ok()) {
    TND_LOG_WARN(n.status().message());
    return;
  }
  if (*n) {
    std::vector<std::string> names;
    for (const IpAddr& a : addrs) names.push_back(a.ToString());
    TND_LOG_INFO("node port addresses now ", absl::StrJoin(names, ", "), ": ", *n, " services rewritten (",
                 services_->last_stats().writes, " writes, ", services_->last_stats().deletes, " deletes)");
  }
}

void Agent::RefreshPlacement(const std::vector<IpAddr>& ips) {
  RefreshPlacementWhere([&](const IpAddr& ip) {
    return ips.empty() || std::find(ips.begin(), ips.end(), ip) != ips.end();
  });
}

void Agent::RefreshPlacementWhere(const std::function<bool(const IpAddr&)>& affected) {
  if (!services_) return;
  auto n = services_->RefreshPlacement(affected);
  if (!n.ok()) {
    // The services not yet rewritten keep their old placement until the
    // timer tries all of them again.
    placement_retry_ = true;
    TND_LOG_WARN("backend placement: ", n.status().message(), " (tried again in a second)");
    return;
  }
  if (*n)
    TND_LOG_INFO("backend placement changed for ", *n, " services (", services_->last_stats().writes, " writes, ",
                 services_->last_stats().deletes, " deletes)");
}

BackendPlace Agent::PlaceFromRoute(const std::optional<RouteInfo>& route) const {
  if (!route) return BackendPlace::kRemote;
  if (route->local_address) return BackendPlace::kHost;
  for (int idx : device_ifindexes_)
    if (idx == route->oif) return BackendPlace::kRemote;
  return BackendPlace::kLocal;
}

BackendPlace Agent::PlaceOf(const IpAddr& ip) const {
  auto route = LookupRoute(ip);
  if (!route.ok()) {
    TND_LOG_WARN("backend ", ip.ToString(), ": ", route.status().message(), " (taken as remote)");
    return BackendPlace::kRemote;
  }
  return PlaceFromRoute(*route);
}

std::vector<BackendPlace> Agent::PlacesOf(const std::vector<IpAddr>& ips) const {
  auto routes = LookupRoutes(ips);
  if (!routes.ok()) {
    TND_LOG_WARN("route lookups for ", ips.size(), " backends: ", routes.status().message(), " (one by one)");
    return {};  // the planner asks PlaceOf for each
  }
  std::vector<BackendPlace> out;
  out.reserve(routes->size());
  for (const auto& r : *routes) out.push_back(PlaceFromRoute(r));
  return out;
}

void Agent::OnLinkEvents() {
  bool addresses = false, rules = false;
  std::vector<Cidr> routes;
  const std::vector<LinkEvent> events = links_->Read();
  for (const LinkEvent& ev : events) {
    if (ev.kind == LinkEvent::Kind::kNeighbour) continue;  // only the generation below
    if (ev.kind == LinkEvent::Kind::kRule) {
      rules = true;
      continue;
    }
    if (ev.kind == LinkEvent::Kind::kAddress) {
      addresses = addresses || std::count(device_ifindexes_.begin(), device_ifindexes_.end(), ev.ifindex) > 0;
      continue;
    }
    if (ev.kind == LinkEvent::Kind::kRoute) {
      routes.push_back(ev.route);
      continue;
    }
    if (endpoints_ && endpoints_->OnLinkEvent(ev)) {
      if (auto s = PersistEndpoints(); !s.ok()) TND_LOG_WARN("persist endpoints: ", s.message());
      RefreshPlacement({});
    }
    auto it = device_index_.find(ev.name);
    if (ev.deleted) {
      for (auto& [name, idx] : device_index_)
        if (idx == ev.ifindex) {
          TND_LOG_WARN("native device ", name, " (ifindex ", idx, ") disappeared; removed from the device table");
          idx = 0;
          auto facts = GatherFacts();
          if (host_obj_) {
            NodeFacts present;
            if (facts.ok()) present = *facts;
            (void)SyncDevices(present);
          }
        }
      continue;
    }
    if (it != device_index_.end() && it->second != ev.ifindex) ReattachDevice(ev.name);
  }
  if (addresses) OnNodeAddressesChanged();
  // Backends inside a route that came or went may have moved (local <-> remote).
  if (!routes.empty())
    RefreshPlacementWhere([&](const IpAddr& ip) {
      for (const Cidr& c : routes)
        if (c.Contains(ip.family, ip.bytes)) return true;
      return false;
    });
  if (rules || !routes.empty()) UpdateHopsShared();
  // A next hop (route, neighbour's MAC, device) may be another now.
  if (!events.empty()) BumpGeneration();
}

void Agent::UpdateHopsShared() {
  // Only while the rules and routes are watched (links_): a change that
  // makes the FIB's answer depend on more than the destination must clear it.
  bool shared = false;
  std::string why = "the link watch is not open";
  if (links_) {
    auto table = RouteTable::Load();
    if (!table.ok()) why = std::string(table.status().message());
    else if (!table->has_value()) why = "a routing rule does more than look up a table";
    else if (!(*table)->PerDestination()) why = "a route has several next hops, a nexthop object, a source prefix or a TOS";
    else shared = true;
  }
  if (hops_shared_ && *hops_shared_ == shared) return;
  if (auto st = SetNodeFlag(paths_.Map(TND_MAP_NODE), TND_NODE_F_HOPS_SHARED, shared); !st.ok()) {
    TND_LOG_WARN("next hops shared by flows: ", st.message());
    return;
  }
  hops_shared_ = shared;
  if (shared) TND_LOG_INFO("next hops shared by new flows (the FIB answers by destination)");
  else TND_LOG_INFO("next hops not shared by flows: ", why);
}

void Agent::OnStop() {
  // Nobody watches the rules until the next agent starts: the programs ask
  // the FIB for every new flow meanwhile.
  if (hops_shared_.value_or(false)) {
    if (auto st = SetNodeFlag(paths_.Map(TND_MAP_NODE), TND_NODE_F_HOPS_SHARED, false); !st.ok())
      TND_LOG_WARN("next hops shared by flows: ", st.message());
    hops_shared_ = false;
  }
}

void Agent::ReattachDevice(const std::string& name) {
  auto idx = IfIndex(name);
  if (!idx.ok()) return;
  int old = device_index_[name];
  device_index_[name] = *idx;
  auto st = [&]() -> absl::Status {
    XdpMode mode = cfg_.XdpModeFor(name);
    if (mode != XdpMode::kDisabled && cfg_.xdp_mode != XdpMode::kOffload && !loaded_.empty()) {
      TND_ASSIGN_OR_RETURN(int prog_fd, loaded_[0].object.ProgramFd(kXdpEntryProgram));
      TND_RETURN_IF_ERROR(AttachXdp(name, prog_fd, mode).status());
    }
    if (cfg_.enable_nodeport) {
      TND_ASSIGN_OR_RETURN(int in_fd, host_obj_->ProgramFd(kHostIngressProgram));
      TND_ASSIGN_OR_RETURN(int out_fd, host_obj_->ProgramFd(kHostEgressProgram));
      (void)DetachTc(name, TcDir::kIngress, paths_.LinksDir());
      (void)DetachTc(name, TcDir::kEgress, paths_.LinksDir());
      TND_RETURN_IF_ERROR(AttachTc({name, TcDir::kIngress, in_fd, paths_.LinksDir(), false}).status());
      TND_RETURN_IF_ERROR(AttachTc({name, TcDir::kEgress, out_fd, paths_.LinksDir(), false}).status());
    }
    // The device table is keyed by ifindex; addresses may have changed too
    // (an address not there yet is picked up by the next recreate/restart).
    TND_ASSIGN_OR_RETURN(NodeFacts facts, GatherFacts());
    return SyncDevices(facts);
  }();
  if (st.ok())
    TND_LOG_INFO("native device ", name, " recreated (ifindex ", old, " -> ", *idx, "); programs re-attached");
  else
    TND_LOG_WARN("native device ", name, " recreated (ifindex ", *idx, "): re-attach failed: ", st.message());
}

absl::Status Agent::WriteNodeInfo() {
  UniqueFd sock(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  if (!sock.valid()) return ErrnoError(errno, "socket for the namespace cookie");
  TND_ASSIGN_OR_RETURN(auto node, (PinnedMap<uint32_t, tnd_node_info>(TND_MAP_NODE)));
  TND_ASSIGN_OR_RETURN(std::optional<tnd_node_info> cur, node.Lookup(0));
  tnd_node_info info = cur.value_or(tnd_node_info{});
  socklen_t len = sizeof(info.host_netns_cookie);
  if (getsockopt(sock.get(), SOL_SOCKET, SO_NETNS_COOKIE, &info.host_netns_cookie, &len) != 0)
    return ErrnoError(errno, "read this namespace's cookie (SO_NETNS_COOKIE)");
  return node.Update(0, info);  // the generation as it was: Start bumps it once all is written
}

void Agent::BumpGeneration() {
  // Without it, cached paths live on to the end of their second.
  if (auto st = BumpNodeGeneration(paths_.Map(TND_MAP_NODE)); !st.ok()) TND_LOG_WARN(st.message());
}

}  // namespace tendril
