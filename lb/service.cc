#include "lb/service.h"

#include <arpa/inet.h>

#include <numeric>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {

const char* L4ProtoName(L4Proto p) { return p == L4Proto::kTcp ? "TCP" : "UDP"; }

std::string Frontend::ToString() const {
  return absl::StrCat(HostPort(ip, port), "/", L4ProtoName(proto));
}

std::string Backend::Address() const { return HostPort(ip, port); }

const char* BackendStateName(BackendState s) {
  switch (s) {
    case BackendState::kActive: return "active";
    case BackendState::kTerminating: return "terminating";
    case BackendState::kMaintenance: return "maintenance";
  }
  return "?";
}

absl::StatusOr<BackendState> ParseBackendState(const std::string& s) {
  std::string l = absl::AsciiStrToLower(s);
  if (l == "active") return BackendState::kActive;
  if (l == "terminating") return BackendState::kTerminating;
  if (l == "maintenance") return BackendState::kMaintenance;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown backend state \"", s, "\": expected active, terminating or maintenance"));
}

const char* ServiceTypeName(ServiceType t) {
  switch (t) {
    case ServiceType::kClusterIP: return "ClusterIP";
    case ServiceType::kNodePort: return "NodePort";
    case ServiceType::kExternalIP: return "ExternalIP";
    case ServiceType::kLoadBalancer: return "LoadBalancer";
  }
  return "?";
}

absl::StatusOr<ServiceType> ParseServiceType(const std::string& s) {
  std::string l = absl::AsciiStrToLower(s);
  if (l == "clusterip") return ServiceType::kClusterIP;
  if (l == "nodeport") return ServiceType::kNodePort;
  if (l == "externalip") return ServiceType::kExternalIP;
  if (l == "loadbalancer") return ServiceType::kLoadBalancer;
  return absl::InvalidArgumentError(absl::StrCat(
      "unknown service type \"", s, "\": expected ClusterIP, NodePort, ExternalIP or LoadBalancer"));
}

const char* TrafficPolicyName(TrafficPolicy p) { return p == TrafficPolicy::kLocal ? "Local" : "Cluster"; }

const char* BackendPlaceName(BackendPlace p) {
  switch (p) {
    case BackendPlace::kLocal: return "local";
    case BackendPlace::kHost: return "host";
    case BackendPlace::kRemote: break;
  }
  return "remote";
}

absl::StatusOr<TrafficPolicy> ParseTrafficPolicy(const std::string& s) {
  std::string l = absl::AsciiStrToLower(s);
  if (l == "cluster") return TrafficPolicy::kCluster;
  if (l == "local") return TrafficPolicy::kLocal;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown traffic policy \"", s, "\": expected Cluster or Local"));
}

const char* AlgorithmName(Algorithm a) { return a == Algorithm::kMaglev ? "maglev" : "random"; }

absl::StatusOr<Algorithm> ParseAlgorithm(const std::string& s) {
  if (s == "random") return Algorithm::kRandom;
  if (s == "maglev") return Algorithm::kMaglev;
  return absl::InvalidArgumentError(absl::StrCat("unknown algorithm \"", s, "\": expected random or maglev"));
}


absl::StatusOr<Frontend> ParseFrontend(const std::string& text) {
  Frontend f;
  std::string addr = text;
  if (size_t slash = text.rfind('/'); slash != std::string::npos) {
    addr = text.substr(0, slash);
    std::string proto = absl::AsciiStrToUpper(text.substr(slash + 1));
    if (proto == "TCP")
      f.proto = L4Proto::kTcp;
    else if (proto == "UDP")
      f.proto = L4Proto::kUdp;
    else
      return absl::InvalidArgumentError(absl::StrCat("invalid frontend \"", text, "\": unknown protocol \"",
                                                     text.substr(slash + 1), "\" (TCP or UDP)"));
  }
  auto hp = ParseHostPort(addr);
  if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat("invalid frontend: ", hp.status().message()));
  f.ip = hp->first;
  f.port = hp->second;
  return f;
}

absl::StatusOr<Backend> ParseBackend(const std::string& text) {
  Backend b;
  std::string addr = text;
  if (size_t at = text.rfind('@'); at != std::string::npos) {
    addr = text.substr(0, at);
    std::string w = text.substr(at + 1);
    if (!absl::SimpleAtoi(w, &b.weight) || w.empty() || w[0] == '-' || w[0] == '+' || b.weight > 1000)
      return absl::InvalidArgumentError(
          absl::StrCat("invalid backend \"", text, "\": weight \"", w, "\" is not a number in 0-1000"));
  }
  auto hp = ParseHostPort(addr);
  if (!hp.ok()) return absl::InvalidArgumentError(absl::StrCat("invalid backend: ", hp.status().message()));
  b.ip = hp->first;
  b.port = hp->second;
  return b;
}

absl::Status ValidateService(const Service& s, const ServiceLimits& limits) {
  std::string name = s.frontend.ToString();
  auto bad = [&](auto&&... parts) {
    return absl::InvalidArgumentError(absl::StrCat("service ", name, ": ", parts...));
  };
  const char* fam = s.frontend.ip.family == Family::kV4 ? "IPv4" : "IPv6";
  if (s.frontend.port == 0) return bad("port 0");
  if (s.backends.size() > limits.max_backends)
    return bad(s.backends.size(), " backends, more than the maximum of ", limits.max_backends,
               " (max-backends-per-service)");
  std::set<std::pair<IpAddr, uint16_t>> seen;
  for (const Backend& b : s.backends) {
    if (b.ip.family != s.frontend.ip.family)
      return bad("backend ", b.Address(), " is ", b.ip.family == Family::kV4 ? "IPv4" : "IPv6",
                 ", the frontend is ", fam);
    if (b.port == 0) return bad("backend port 0");
    if (!seen.insert({b.ip, b.port}).second) return bad("backend ", b.Address(), " listed twice");
  }
  if (s.affinity_timeout > 86400 * 7) return bad("affinity timeout ", s.affinity_timeout, "s is over a week");
  if (MaxSlots(s) > limits.max_slots)
    return bad("weights expand to more than ", limits.max_slots, " slots; use smaller weights");

  const char* type = ServiceTypeName(s.type);
  bool needs_ips = s.type == ServiceType::kExternalIP || s.type == ServiceType::kLoadBalancer;
  if (!needs_ips && !s.external_ips.empty())
    return bad("external IPs are for ExternalIP and LoadBalancer services, not ", type);
  if (needs_ips && s.external_ips.empty())
    return bad(type, " needs at least one external IP (--external-ips)");
  std::set<IpAddr> ips;
  for (const IpAddr& ip : s.external_ips) {
    if (ip.family != s.frontend.ip.family)
      return bad("external IP ", ip.ToString(), " is ", ip.family == Family::kV4 ? "IPv4" : "IPv6",
                 ", the frontend is ", fam);
    if (ip == s.frontend.ip) return bad("external IP ", ip.ToString(), " is the ClusterIP itself");
    if (!ips.insert(ip).second) return bad("external IP ", ip.ToString(), " listed twice");
  }
  if (!s.HasNodePort() && s.node_port)
    return bad("a node port is for NodePort and LoadBalancer services, not ", type);
  if (s.HasNodePort() && s.node_port &&
      (s.node_port < limits.node_port_min || s.node_port > limits.node_port_max))
    return bad("node port ", s.node_port, " is outside the node port range ", limits.node_port_min, "-",
               limits.node_port_max, " (node-port-range)");
  if (!s.HasExternal()) {
    if (s.traffic_policy == TrafficPolicy::kLocal)
      return bad("traffic policy Local needs external frontends; ClusterIP has none");
    if (s.dsr) return bad("DSR needs external frontends; ClusterIP has none");
  }
  for (const Cidr& c : s.source_ranges)
    if (c.family != s.frontend.ip.family)
      return bad("source range ", c.ToString(), " is ", c.family == Family::kV4 ? "IPv4" : "IPv6",
                 ", the frontend is ", fam);
  if (s.source_ranges.size() > 64) return bad(s.source_ranges.size(), " source ranges, more than 64");
  // kube-proxy: "nodeports are not subject to loadBalancerSourceRanges".
  if (!s.source_ranges.empty() && s.type != ServiceType::kLoadBalancer)
    return bad("source ranges (loadBalancerSourceRanges) apply to LoadBalancer IPs; a ", type,
               " service has none");
  if (s.health_check_port && !s.ExternalLocal())
    return bad("a health check port is for external traffic policy Local only");
  if (s.health_check_port && (s.health_check_port < limits.node_port_min || s.health_check_port > limits.node_port_max))
    return bad("health check port ", s.health_check_port, " is outside the node port range ", limits.node_port_min,
               "-", limits.node_port_max, " (node-port-range)");
  if (s.health_check_port && s.health_check_port == s.node_port)
    return bad("health check port ", s.health_check_port, " is the service's own node port");
  if (s.dsr && s.traffic_policy == TrafficPolicy::kLocal)
    return bad("DSR and traffic policy Local exclude each other (Local never leaves the node)");
  return absl::OkStatus();
}

namespace {
bool Usable(const Backend& b) { return b.weight > 0 && b.state != BackendState::kMaintenance; }

// Ready members where there are any, else the serving terminating ones.
std::vector<bool> ReadyOrTerminating(const Service& s, bool local_only) {
  std::vector<bool> ready(s.backends.size()), term(s.backends.size());
  bool any_ready = false;
  for (size_t i = 0; i < s.backends.size(); ++i) {
    const Backend& b = s.backends[i];
    if (!Usable(b) || (local_only && !b.IsLocal())) continue;
    ready[i] = b.state == BackendState::kActive;
    term[i] = b.state == BackendState::kTerminating;
    any_ready = any_ready || ready[i];
  }
  return any_ready ? ready : term;
}
}  // namespace

BackendSets SelectBackendSets(const Service& s) { return {ReadyOrTerminating(s, false), ReadyOrTerminating(s, true)}; }

std::vector<uint32_t> SetSlots(const Service& s, const std::vector<bool>& members) {
  auto in = [&](size_t i) { return i < members.size() && members[i] && s.backends[i].weight > 0; };
  uint32_t g = 0;
  for (size_t i = 0; i < s.backends.size(); ++i)
    if (in(i)) g = std::gcd(g, s.backends[i].weight);
  std::vector<uint32_t> slots;
  if (g == 0) return slots;
  for (size_t i = 0; i < s.backends.size(); ++i)
    if (in(i))
      for (uint32_t k = 0; k < s.backends[i].weight / g; ++k) slots.push_back(s.backends[i].id);
  return slots;
}

size_t MaxSlots(const Service& s) {
  // A subset's gcd is a multiple of the whole set's and its weights sum to
  // less, so no set needs more slots than every usable backend together.
  std::vector<bool> all(s.backends.size());
  for (size_t i = 0; i < s.backends.size(); ++i) all[i] = Usable(s.backends[i]);
  return SetSlots(s, all).size();
}

absl::StatusOr<BackendStateChange> ParseBackendStateChange(const std::string& text) {
  auto eq = text.rfind('=');
  if (eq == std::string::npos)
    return absl::InvalidArgumentError(absl::StrCat("a backend state is ADDR:PORT=STATE, got \"", text, "\""));
  TND_ASSIGN_OR_RETURN(auto hp, ParseHostPort(text.substr(0, eq)));
  TND_ASSIGN_OR_RETURN(BackendState st, ParseBackendState(text.substr(eq + 1)));
  return BackendStateChange{hp.first, hp.second, st};
}

bool ServiceUpdate::empty() const {
  return !backends && states.empty() && !algorithm && !affinity_timeout && !traffic_policy &&
         !internal_traffic_policy && !source_ranges && !external_ips && !dsr;
}

}  // namespace tendril
