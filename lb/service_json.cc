#include "lb/service_json.h"

#include "absl/strings/str_cat.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "lb/service_json_read.h"

namespace tendril {

nlohmann::json ServiceToJson(const Service& s) {
  // Field by field rather than from initializer lists: the store encodes
  // every service of an apply with this (100,000 at scale), and nlohmann
  // builds an initializer list's pairs as temporary arrays first.
  nlohmann::json bs = nlohmann::json::array();
  bs.get_ref<nlohmann::json::array_t&>().reserve(s.backends.size());
  for (const Backend& b : s.backends) {
    nlohmann::json& o = bs.emplace_back(nlohmann::json::object());
    o["id"] = b.id;
    o["address"] = b.Address();
    o["weight"] = b.weight;
    o["state"] = BackendStateName(b.state);
    if (!b.node.empty()) o["node"] = b.node;
    if (b.place != BackendPlace::kRemote) o["place"] = BackendPlaceName(b.place);
  }
  nlohmann::json j = nlohmann::json::object();
  j["id"] = s.id;
  j["frontend"] = s.frontend.ToString();
  j["type"] = ServiceTypeName(s.type);
  j["algorithm"] = AlgorithmName(s.algorithm);
  j["affinity_timeout"] = s.affinity_timeout;
  j["internal_traffic_policy"] = TrafficPolicyName(s.internal_traffic_policy);
  j["backends"] = std::move(bs);
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
  if (!s.owner.empty()) j["owner"] = s.owner;
  return j;
}

absl::StatusOr<Service> ServiceFromJson(const nlohmann::json& j) { return ServiceFromJsonValue(j); }

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
    TND_ASSIGN_OR_RETURN(int64_t t, jsonf::Int(a, "affinity_timeout", 0, service_json_internal::kMaxAffinity, 0));
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
