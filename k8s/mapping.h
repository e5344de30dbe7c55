// Kubernetes Services and EndpointSlices as tendril services, the way
// kube-proxy reads them (pkg/proxy: servicechangetracker.go,
// endpointslicecache.go, topology.go):
//   - one tendril service per (ClusterIP of each family, port): frontend
//     ClusterIP:port/protocol; NodePort and LoadBalancer add the node port,
//     external IPs and LoadBalancer ingress IPs of the same family become
//     the external frontends; externalTrafficPolicy, healthCheckNodePort,
//     internalTrafficPolicy, sessionAffinity ClientIP (timeoutSeconds),
//     loadBalancerSourceRanges are carried over;
//   - backends from the EndpointSlices labelled with the Service's name, of
//     the port's family, whose port has the Service port's name and
//     protocol: ready -> active; serving and terminating -> terminating
//     (chosen only when no backend is ready); otherwise -> maintenance (never
//     chosen, its flows carry on); an address in two slices counts once;
//   - skipped as kube-proxy skips them: ExternalName, headless (clusterIP
//     None), and Services labelled service.kubernetes.io/service-proxy-name;
//   - skipped with a reason (counted, logged, nothing of it applied): what
//     tendril cannot represent (SCTP ports, a LoadBalancer without node ports
//     or one whose externalIPs would fall under its source ranges, more
//     backends than the limit, an invalid result).
// Topology hints (hints.forZones) are not used: every endpoint is a
// candidate on every node.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "lb/service.h"

namespace tendril::k8s {

struct Skipped {
  std::string object;   // "Service default/web", "EndpointSlice default/web-abc"
  std::string reason;
  std::string service;  // "namespace/name" of the Service it belongs to
};

struct Mapped {
  std::vector<Service> services;  // owner "k8s/<ns>/<name>", ids 0
  std::vector<Skipped> skipped;
  int ignored = 0;                // skipped as kube-proxy skips them (not errors)
};

struct MapOptions {
  bool ipv4 = true, ipv6 = true;  // the families the node runs
  ServiceLimits limits;
};

// `services` and `slices`: objects by "namespace/name" (a reflector's store,
// or one Service and its slices).
Mapped MapCluster(const std::map<std::string, nlohmann::json>& services,
                  const std::map<std::string, nlohmann::json>& slices, const MapOptions& opts);

// The owner a cluster Service's frontends carry ("k8s/<ns>/<name>") and
// back ("" for an owner that is not a cluster's).
std::string OwnerOf(const std::string& service_key);
std::string ServiceKeyOf(const std::string& owner);

// "namespace/name" of the Service an EndpointSlice belongs to (its
// kubernetes.io/service-name label); "" when it has none.
std::string SliceService(const nlohmann::json& slice);

}  // namespace tendril::k8s
