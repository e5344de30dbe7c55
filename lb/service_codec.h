// How a declared service is encoded into the LB maps' entries (the map ABI
// of maps/tendril_maps.h): its frontends in both scopes with their masters
// and slots, its backends with their place and set flags, its reverse NAT.
// Pure functions of the service and the node's addresses; lb/services.cc
// decides when and in which order they are written.
#pragma once

#include <cstdint>
#include <vector>

#include "lb/service.h"
#include "maps/abi.h"

namespace tendril {

// One frontend of a service as the maps hold it, in one scope.
struct FrontendEntry {
  Frontend frontend;
  uint8_t scope = TND_SCOPE_EXTERNAL;
  tnd_svc_val master{};
  std::vector<uint32_t> slots;
  bool external = false;
  bool SameKey(const FrontendEntry& o) const { return frontend == o.frontend && scope == o.scope; }
};

// Every frontend of `s`: its ClusterIP (the internal traffic policy's set),
// and for the other types each node address : node port and each external
// IP : port (the external policy's set; with externalTrafficPolicy Local a
// second entry in scope TND_SCOPE_INTERNAL holds the cluster set for
// traffic from this node and its pods, as kube-proxy short-circuits it).
// Source ranges are checked on LoadBalancer IPs only.
std::vector<FrontendEntry> FrontendEntries(const Service& s, const std::vector<IpAddr>& node_addresses);

// The backend entry of `s.backends[index]` given the service's sets.
tnd_backend BackendValue(const Service& s, size_t index, const BackendSets& sets);
tnd_svc_val SlotValue(const Service& s, uint32_t backend_id);
tnd_revnat RevnatValue(const Service& s);

tnd_svc4_key Key4(const Frontend& f, uint8_t scope, uint16_t slot);
tnd_svc6_key Key6(const Frontend& f, uint8_t scope, uint16_t slot);
// A source range of service `svc_id` (loadBalancerSourceRanges), as tnd_srng_v4/v6 key it.
tnd_srange_v4_key Range4(ServiceId svc_id, const Cidr& c);
tnd_srange_v6_key Range6(ServiceId svc_id, const Cidr& c);

// How many of the service's ready backends are on this node: what its health
// check port reports (kube-proxy counts ready local endpoints; a node with
// only terminating ones answers 503 so load balancers drain it).
size_t ReadyLocalBackends(const Service& s);

}  // namespace tendril
