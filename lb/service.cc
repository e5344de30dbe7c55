#include "lb/service.h"

#include <arpa/inet.h>

#include <numeric>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json_fields.h"
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

absl::StatusOr<std::pair<IpAddr, uint16_t>> ParseHostPort(const std::string& text) {
  auto bad = [&](const std::string& why) {
    return absl::InvalidArgumentError(absl::StrCat("invalid address \"", text, "\": ", why));
  };
  std::string host, port;
  if (!text.empty() && text[0] == '[') {
    size_t close = text.find(']');
    if (close == std::string::npos) return bad("missing ']'");
    host = text.substr(1, close - 1);
    if (close + 1 >= text.size() || text[close + 1] != ':') return bad("missing :PORT");
    port = text.substr(close + 2);
    if (host.find(':') == std::string::npos) return bad("brackets are for IPv6 addresses");
  } else {
    size_t colon = text.rfind(':');
    if (colon == std::string::npos) return bad("missing :PORT");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
    if (host.find(':') != std::string::npos) return bad("write IPv6 addresses as [ADDR]:PORT");
  }
  auto ip = ParseIp(host);
  if (!ip.ok()) return bad(std::string(ip.status().message()));
  if (port.empty()) return bad("missing port");
  for (char c : port)
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return bad(absl::StrCat("port \"", port, "\" is not a number"));
  uint32_t p = 0;
  if (port.size() > 5 || !absl::SimpleAtoi(port, &p) || p == 0 || p > 65535)
    return bad(absl::StrCat("port ", port, " is out of range (1-65535)"));
  return std::make_pair(*ip, static_cast<uint16_t>(p));
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

nlohmann::json ServiceToJson(const Service& s) {
  nlohmann::json bs = nlohmann::json::array();
  for (const Backend& b : s.backends)
    bs.push_back({{"id", b.id},
                  {"address", b.Address()},
                  {"weight", b.weight},
                  {"state", BackendStateName(b.state)}});
  nlohmann::json j = {{"id", s.id},
                      {"frontend", s.frontend.ToString()},
                      {"type", ServiceTypeName(s.type)},
                      {"algorithm", AlgorithmName(s.algorithm)},
                      {"affinity_timeout", s.affinity_timeout},
                      {"internal_traffic_policy", TrafficPolicyName(s.internal_traffic_policy)},
                      {"backends", bs}};
  if (s.HasExternal()) {
    if (s.HasNodePort()) j["node_port"] = s.node_port;
    nlohmann::json ips = nlohmann::json::array();
    for (const IpAddr& ip : s.external_ips) ips.push_back(ip.ToString());
    if (!s.external_ips.empty()) j["external_ips"] = ips;
    j["traffic_policy"] = TrafficPolicyName(s.traffic_policy);
    nlohmann::json rs = nlohmann::json::array();
    for (const Cidr& c : s.source_ranges) rs.push_back(c.ToString());
    if (!s.source_ranges.empty()) j["source_ranges"] = rs;
    if (s.dsr) j["dsr"] = true;
    if (s.health_check_port) j["health_check_port"] = s.health_check_port;
  }
  return j;
}

namespace {
// The same rules as the CLI's flags (cli/main.cc): a weight 0-1000, an
// affinity timeout 0-604800 s, ports 1-65535 (0: allocate).
constexpr int64_t kMaxWeight = 1000;
constexpr int64_t kMaxAffinity = 604800;

absl::StatusOr<Backend> BackendFromJson(const nlohmann::json& bj) {
  TND_RETURN_IF_ERROR(jsonf::Object(bj, "a backend"));
  TND_ASSIGN_OR_RETURN(std::string address, jsonf::String(bj, "address", ""));
  if (address.empty()) return absl::InvalidArgumentError("\"address\" is missing");
  TND_ASSIGN_OR_RETURN(Backend b, ParseBackend(address));
  TND_ASSIGN_OR_RETURN(int64_t id, jsonf::Int(bj, "id", 0, UINT32_MAX, 0));
  TND_ASSIGN_OR_RETURN(int64_t weight, jsonf::Int(bj, "weight", 0, kMaxWeight, 1));
  TND_ASSIGN_OR_RETURN(std::string state, jsonf::String(bj, "state", "active"));
  TND_ASSIGN_OR_RETURN(b.state, ParseBackendState(state));
  b.id = static_cast<uint32_t>(id);
  b.weight = static_cast<uint32_t>(weight);
  return b;
}

absl::Status ExternalFromJson(const nlohmann::json& j, Service& s) {
  TND_ASSIGN_OR_RETURN(int64_t np, jsonf::Int(j, "node_port", 0, 65535, 0));
  s.node_port = static_cast<uint16_t>(np);
  TND_ASSIGN_OR_RETURN(std::vector<std::string> ips, jsonf::Strings(j, "external_ips"));
  for (const std::string& ip : ips) {
    TND_ASSIGN_OR_RETURN(IpAddr a, ParseIp(ip));
    s.external_ips.push_back(a);
  }
  TND_ASSIGN_OR_RETURN(std::string tp, jsonf::String(j, "traffic_policy", "Cluster"));
  TND_ASSIGN_OR_RETURN(s.traffic_policy, ParseTrafficPolicy(tp));
  TND_ASSIGN_OR_RETURN(std::vector<std::string> ranges, jsonf::Strings(j, "source_ranges"));
  for (const std::string& text : ranges) {
    auto c = ParseCidr(text);
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("source range: ", c.status().message()));
    s.source_ranges.push_back(*c);
  }
  TND_ASSIGN_OR_RETURN(s.dsr, jsonf::Bool(j, "dsr", false));
  TND_ASSIGN_OR_RETURN(int64_t hc, jsonf::Int(j, "health_check_port", 0, 65535, 0));
  s.health_check_port = static_cast<uint16_t>(hc);
  return absl::OkStatus();
}

absl::StatusOr<Service> ServiceFromJsonFields(const nlohmann::json& j) {
  TND_RETURN_IF_ERROR(jsonf::Object(j, "a service"));
  Service s;
  TND_ASSIGN_OR_RETURN(int64_t id, jsonf::Int(j, "id", 0, 65535, 0));
  s.id = static_cast<uint16_t>(id);
  TND_ASSIGN_OR_RETURN(std::string frontend, jsonf::String(j, "frontend", ""));
  if (frontend.empty()) return absl::InvalidArgumentError("\"frontend\" is missing");
  TND_ASSIGN_OR_RETURN(s.frontend, ParseFrontend(frontend));
  TND_ASSIGN_OR_RETURN(std::string type, jsonf::String(j, "type", "ClusterIP"));
  TND_ASSIGN_OR_RETURN(s.type, ParseServiceType(type));
  TND_ASSIGN_OR_RETURN(std::string algorithm, jsonf::String(j, "algorithm", "random"));
  TND_ASSIGN_OR_RETURN(s.algorithm, ParseAlgorithm(algorithm));
  TND_ASSIGN_OR_RETURN(int64_t affinity, jsonf::Int(j, "affinity_timeout", 0, kMaxAffinity, 0));
  s.affinity_timeout = static_cast<uint32_t>(affinity);
  TND_ASSIGN_OR_RETURN(std::string itp, jsonf::String(j, "internal_traffic_policy", "Cluster"));
  TND_ASSIGN_OR_RETURN(s.internal_traffic_policy, ParseTrafficPolicy(itp));
  TND_ASSIGN_OR_RETURN(std::vector<nlohmann::json> backends, jsonf::List(j, "backends"));
  for (size_t i = 0; i < backends.size(); ++i) {
    auto b = BackendFromJson(backends[i]);
    if (!b.ok()) return Annotate(b.status(), absl::StrCat("backends[", i, "]"));
    s.backends.push_back(*b);
  }
  TND_RETURN_IF_ERROR(ExternalFromJson(j, s));
  return s;
}
}  // namespace

absl::StatusOr<Service> ServiceFromJson(const nlohmann::json& j) {
  auto s = ServiceFromJsonFields(j);
  if (s.ok()) return s;
  std::string name = "service";
  if (j.is_object() && j.contains("frontend") && j["frontend"].is_string())
    name = absl::StrCat("service ", j["frontend"].get<std::string>());
  return Annotate(s.status(), name);
}

}  // namespace tendril
