#include "lb/service_json.h"

#include "absl/strings/str_cat.h"
#include "common/json_fields.h"
#include "common/status.h"

namespace tendril {

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
  // External fields appear when the type has them or they are set (a
  // request with them on a ClusterIP must reach the validation that refuses it).
  if (s.HasNodePort() || s.node_port) j["node_port"] = s.node_port;
  nlohmann::json ips = nlohmann::json::array();
  for (const IpAddr& ip : s.external_ips) ips.push_back(ip.ToString());
  if (!s.external_ips.empty()) j["external_ips"] = ips;
  if (s.HasExternal() || s.traffic_policy != TrafficPolicy::kCluster) j["traffic_policy"] = TrafficPolicyName(s.traffic_policy);
  nlohmann::json rs = nlohmann::json::array();
  for (const Cidr& c : s.source_ranges) rs.push_back(c.ToString());
  if (!s.source_ranges.empty()) j["source_ranges"] = rs;
  if (s.dsr) j["dsr"] = true;
  if (s.health_check_port) j["health_check_port"] = s.health_check_port;
  return j;
}

namespace {
// The same rules as the CLI's flags (cli/cmd_service.cc): a weight 0-1000, an
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
  TND_ASSIGN_OR_RETURN(int64_t id, jsonf::Int(j, "id", 0, UINT32_MAX, 0));
  s.id = static_cast<ServiceId>(id);
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

namespace {
// A list of strings, each parsed by `parse`; errors name the field and item.
template <typename T, typename Fn>
absl::StatusOr<std::vector<T>> ParsedList(const nlohmann::json& args, const char* key, Fn parse) {
  TND_ASSIGN_OR_RETURN(std::vector<std::string> texts, jsonf::Strings(args, key));
  std::vector<T> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto v = parse(texts[i]);
    if (!v.ok()) return Annotate(v.status(), absl::StrCat(key, "[", i, "]"));
    out.push_back(*v);
  }
  return out;
}

absl::StatusOr<TrafficPolicy> PolicyField(const nlohmann::json& a, const char* key) {
  TND_ASSIGN_OR_RETURN(std::string text, jsonf::String(a, key, ""));
  return ParseTrafficPolicy(text);
}

absl::Status StatesFromJson(const nlohmann::json& a, ServiceUpdate& u) {
  const nlohmann::json& states = a["states"];
  if (!states.is_object()) return absl::InvalidArgumentError("states must map ADDR:PORT to a state");
  for (const auto& [addr, st] : states.items()) {
    if (!st.is_string()) return absl::InvalidArgumentError("states must map ADDR:PORT to a state");
    TND_ASSIGN_OR_RETURN(auto hp, ParseHostPort(addr));
    TND_ASSIGN_OR_RETURN(BackendState bs, ParseBackendState(st.get<std::string>()));
    u.states.push_back({hp.first, hp.second, bs});
  }
  return absl::OkStatus();
}
}  // namespace

absl::StatusOr<ServiceUpdate> ServiceUpdateFromJson(const nlohmann::json& a) {
  TND_RETURN_IF_ERROR(jsonf::Object(a, "a service update"));
  ServiceUpdate u;
  if (a.contains("backends")) {
    TND_ASSIGN_OR_RETURN(u.backends, ParsedList<Backend>(a, "backends", ParseBackend));
  }
  if (a.contains("states")) TND_RETURN_IF_ERROR(StatesFromJson(a, u));
  if (a.contains("algorithm")) {
    TND_ASSIGN_OR_RETURN(std::string text, jsonf::String(a, "algorithm", ""));
    TND_ASSIGN_OR_RETURN(u.algorithm, ParseAlgorithm(text));
  }
  if (a.contains("affinity_timeout")) {
    TND_ASSIGN_OR_RETURN(int64_t t, jsonf::Int(a, "affinity_timeout", 0, kMaxAffinity, 0));
    u.affinity_timeout = static_cast<uint32_t>(t);
  }
  if (a.contains("traffic_policy")) {
    TND_ASSIGN_OR_RETURN(u.traffic_policy, PolicyField(a, "traffic_policy"));
  }
  if (a.contains("internal_traffic_policy")) {
    TND_ASSIGN_OR_RETURN(u.internal_traffic_policy, PolicyField(a, "internal_traffic_policy"));
  }
  if (a.contains("source_ranges")) {
    TND_ASSIGN_OR_RETURN(u.source_ranges,
                         ParsedList<Cidr>(a, "source_ranges", [](const std::string& t) { return ParseCidr(t); }));
  }
  if (a.contains("external_ips")) {
    TND_ASSIGN_OR_RETURN(u.external_ips, ParsedList<IpAddr>(a, "external_ips", ParseIp));
  }
  if (a.contains("dsr")) {
    if (!a["dsr"].is_boolean()) return absl::InvalidArgumentError("dsr must be true or false");
    u.dsr = a["dsr"].get<bool>();
  }
  return u;
}

nlohmann::json ServiceUpdateToJson(const ServiceUpdate& u) {
  nlohmann::json a = nlohmann::json::object();
  if (u.backends) {
    a["backends"] = nlohmann::json::array();
    for (const Backend& b : *u.backends) a["backends"].push_back(absl::StrCat(b.Address(), "@", b.weight));
  }
  if (!u.states.empty()) {
    a["states"] = nlohmann::json::object();
    for (const BackendStateChange& c : u.states) a["states"][HostPort(c.ip, c.port)] = BackendStateName(c.state);
  }
  if (u.algorithm) a["algorithm"] = AlgorithmName(*u.algorithm);
  if (u.affinity_timeout) a["affinity_timeout"] = *u.affinity_timeout;
  if (u.traffic_policy) a["traffic_policy"] = TrafficPolicyName(*u.traffic_policy);
  if (u.internal_traffic_policy) a["internal_traffic_policy"] = TrafficPolicyName(*u.internal_traffic_policy);
  if (u.source_ranges) {
    a["source_ranges"] = nlohmann::json::array();
    for (const Cidr& c : *u.source_ranges) a["source_ranges"].push_back(c.ToString());
  }
  if (u.external_ips) {
    a["external_ips"] = nlohmann::json::array();
    for (const IpAddr& ip : *u.external_ips) a["external_ips"].push_back(ip.ToString());
  }
  if (u.dsr) a["dsr"] = *u.dsr;
  return a;
}

}  // namespace tendril
