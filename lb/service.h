// The service model: what an operator declares (frontend, type, backends,
// algorithm, affinity), how it is parsed from text and JSON, and how it is
// validated. Pure C++; lb/services.cc turns it into map entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "network/addr.h"
#include "network/cidr.h"

namespace tendril {

enum class L4Proto : uint8_t { kTcp = 6, kUdp = 17 };
const char* L4ProtoName(L4Proto p);

struct Frontend {
  IpAddr ip;
  uint16_t port = 0;
  L4Proto proto = L4Proto::kTcp;
  std::string ToString() const;  // "10.96.0.10:80/TCP", "[fd00::1]:53/UDP"
  auto operator<=>(const Frontend&) const = default;
};

enum class BackendState : uint8_t { kActive = 0, kTerminating = 1, kMaintenance = 2 };
const char* BackendStateName(BackendState s);
absl::StatusOr<BackendState> ParseBackendState(const std::string& s);

// Where a backend is, seen from this node.
enum class BackendPlace : uint8_t {
  kRemote,  // reached through one of the native devices: another node
  kLocal,   // reached through another device of this node (a pod's veth)
  kHost,    // one of this node's own addresses (host network)
};
const char* BackendPlaceName(BackendPlace p);

// States, as EndpointSlice conditions map onto them:
//   active       ready: chosen for new connections
//   terminating  serving and terminating: chosen only while its set has no
//                active backend (kube-proxy's terminating-endpoint fallback)
//   maintenance  not serving: never chosen for new connections
// In every state the backend's existing connections keep working.
struct Backend {
  uint32_t id = 0;  // assigned by the agent, stable across restarts
  IpAddr ip;
  uint16_t port = 0;
  uint32_t weight = 1;  // 0: drained, never chosen
  BackendState state = BackendState::kActive;
  // The node it runs on, when its source knows it (an EndpointSlice's
  // nodeName); it then decides whether the backend is on this node.
  std::string node;
  // Not declared: the service manager keeps it equal to the node's routes
  // (and to `node` where that is known).
  BackendPlace place = BackendPlace::kRemote;
  bool IsLocal() const { return place != BackendPlace::kRemote; }
  std::string Address() const;  // "10.0.1.2:8080", "[fd00::2]:8080"
  bool operator==(const Backend&) const = default;
};

enum class Algorithm { kRandom, kMaglev };
const char* AlgorithmName(Algorithm a);
absl::StatusOr<Algorithm> ParseAlgorithm(const std::string& s);

// Service types, as Kubernetes names them. Every type has its ClusterIP
// frontend (served by socket LB); the others add external frontends served
// per packet at tc/XDP on the node's devices:
//   NodePort:     every node address : node_port
//   ExternalIP:   every external IP : frontend port
//   LoadBalancer: both of the above (external IPs are the LB addresses)
enum class ServiceType { kClusterIP, kNodePort, kExternalIP, kLoadBalancer };
const char* ServiceTypeName(ServiceType t);
absl::StatusOr<ServiceType> ParseServiceType(const std::string& s);

enum class TrafficPolicy { kCluster, kLocal };
const char* TrafficPolicyName(TrafficPolicy p);
absl::StatusOr<TrafficPolicy> ParseTrafficPolicy(const std::string& s);

// A service's id: its reverse-NAT id in the maps, 1..lb-revnat-map-max.
using ServiceId = uint32_t;

struct Service {
  ServiceId id = 0;  // 0: let the agent choose
  Frontend frontend;  // the ClusterIP frontend
  ServiceType type = ServiceType::kClusterIP;
  Algorithm algorithm = Algorithm::kRandom;
  uint32_t affinity_timeout = 0;  // seconds; 0: none
  std::vector<Backend> backends;
  // External frontends (types other than ClusterIP).
  uint16_t node_port = 0;            // NodePort/LoadBalancer; 0: allocate
  std::vector<IpAddr> external_ips;  // ExternalIP/LoadBalancer
  TrafficPolicy traffic_policy = TrafficPolicy::kCluster;  // externalTrafficPolicy
  // internalTrafficPolicy: the ClusterIP frontend (traffic from this node and
  // its pods); Local keeps it to this node's backends.
  TrafficPolicy internal_traffic_policy = TrafficPolicy::kCluster;
  std::vector<Cidr> source_ranges;   // loadBalancerSourceRanges (LoadBalancer IPs only); empty: all
  bool dsr = false;                  // remote backends answer the client directly
  uint16_t health_check_port = 0;    // Local policy: healthCheckNodePort; 0: allocated by the agent
  // Who declared it: empty for the API and CLI; "k8s/<namespace>/<name>"
  // for a Service of the cluster (agent/agent_k8s.cc), which only the
  // cluster changes. Set by the agent, never taken from a request.
  std::string owner;

  bool HasExternal() const { return type != ServiceType::kClusterIP; }
  bool HasNodePort() const { return type == ServiceType::kNodePort || type == ServiceType::kLoadBalancer; }
  bool ExternalLocal() const { return HasExternal() && traffic_policy == TrafficPolicy::kLocal; }
  bool InternalLocal() const { return internal_traffic_policy == TrafficPolicy::kLocal; }
  bool operator==(const Service&) const = default;
};

// "10.96.0.10:80/TCP", "[fd00::10]:53/udp"; protocol defaults to TCP.
absl::StatusOr<Frontend> ParseFrontend(const std::string& text);
// "10.0.1.2:8080" or "10.0.1.2:8080@3" (weight 3).
absl::StatusOr<Backend> ParseBackend(const std::string& text);

struct ServiceLimits {
  uint32_t max_backends = 256;
  uint32_t max_slots = 4096;  // active slots after weight expansion
  uint16_t node_port_min = 30000;
  uint16_t node_port_max = 32767;
  uint32_t max_maglev_services = 4096;  // maglev-max-services: Maglev tables the maps hold
  // What the growable tables may grow to (settings lb-*-map-max).
  uint32_t service_map_entries = 4194304;  // per family: masters + backend slots
  uint32_t backend_map_entries = 2097152;  // backend ids 1..this
  uint32_t service_ids = 1048576;          // service ids 1..this (reverse NAT entries)
};

// Everything about one service that can be checked on its own.
absl::Status ValidateService(const Service& s, const ServiceLimits& limits);

// The backend sets a service's frontends choose from, as kube-proxy's
// topology rules (pkg/proxy/topology.go) make them: `cluster` is the ready
// (active) backends, or, when there is none, the serving terminating ones;
// `local` is the same rule among the backends on this node (Backend::place).
// Maintenance and weight-0 backends are in neither. One flag per backend.
struct BackendSets {
  std::vector<bool> cluster, local;
};
BackendSets SelectBackendSets(const Service& s);

// The slots of the backends in `members`: backend ids, each repeated
// weight/gcd(weights) times.
std::vector<uint32_t> SetSlots(const Service& s, const std::vector<bool>& members);
// The most slots any set of the service can need (every active and
// terminating backend): what the slot limit is checked against.
size_t MaxSlots(const Service& s);

// What `service update` may change; unset fields stay as they are.
struct BackendStateChange {
  IpAddr ip;
  uint16_t port = 0;
  BackendState state = BackendState::kActive;
};
// "10.0.1.2:8080=terminating" (the CLI's --backend-state).
absl::StatusOr<BackendStateChange> ParseBackendStateChange(const std::string& text);

struct ServiceUpdate {
  std::optional<std::vector<Backend>> backends;  // replaces the list
  std::vector<BackendStateChange> states;
  std::optional<Algorithm> algorithm;
  std::optional<uint32_t> affinity_timeout;
  std::optional<TrafficPolicy> traffic_policy;
  std::optional<TrafficPolicy> internal_traffic_policy;
  std::optional<std::vector<Cidr>> source_ranges;
  std::optional<std::vector<IpAddr>> external_ips;
  std::optional<bool> dsr;
  bool empty() const;
};

}  // namespace tendril
