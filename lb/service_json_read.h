// Decoding a service from its JSON, written once for every parser that has
// a jsonf::JsonTraits (common/json_read.h): nlohmann's DOM for API requests
// (lb/service_json.h), simdjson's tape for large sets (agent/json_tape.h).
// Strict: every error names the field.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/json_read.h"
#include "common/status.h"
#include "lb/service.h"

namespace tendril {
namespace service_json_internal {

// The same rules as the CLI's flags (cli/cmd_service.cc): a weight 0-1000, an
// affinity timeout 0-604800 s, ports 1-65535 (0: allocate).
inline constexpr int64_t kMaxWeight = 1000;
inline constexpr int64_t kMaxAffinity = 604800;

template <class V>
absl::StatusOr<Backend> BackendFromJson(const V& bj) {
  TND_RETURN_IF_ERROR(jsonf::ObjectValue(bj, "a backend"));
  TND_ASSIGN_OR_RETURN(std::string address, jsonf::StringField(bj, "address", ""));
  if (address.empty()) return absl::InvalidArgumentError("\"address\" is missing");
  TND_ASSIGN_OR_RETURN(Backend b, ParseBackend(address));
  TND_ASSIGN_OR_RETURN(int64_t id, jsonf::IntField(bj, "id", 0, UINT32_MAX, 0));
  TND_ASSIGN_OR_RETURN(int64_t weight, jsonf::IntField(bj, "weight", 0, kMaxWeight, 1));
  TND_ASSIGN_OR_RETURN(std::string state, jsonf::StringField(bj, "state", "active"));
  TND_ASSIGN_OR_RETURN(b.state, ParseBackendState(state));
  TND_ASSIGN_OR_RETURN(b.node, jsonf::StringField(bj, "node", ""));
  b.id = static_cast<uint32_t>(id);
  b.weight = static_cast<uint32_t>(weight);
  return b;
}

template <class V>
absl::Status ExternalFromJson(const V& j, Service& s) {
  TND_ASSIGN_OR_RETURN(int64_t np, jsonf::IntField(j, "node_port", 0, 65535, 0));
  s.node_port = static_cast<uint16_t>(np);
  TND_ASSIGN_OR_RETURN(std::vector<std::string> ips, jsonf::StringsField(j, "external_ips"));
  for (const std::string& ip : ips) {
    TND_ASSIGN_OR_RETURN(IpAddr a, ParseIp(ip));
    s.external_ips.push_back(a);
  }
  TND_ASSIGN_OR_RETURN(std::string tp, jsonf::StringField(j, "traffic_policy", "Cluster"));
  TND_ASSIGN_OR_RETURN(s.traffic_policy, ParseTrafficPolicy(tp));
  TND_ASSIGN_OR_RETURN(std::vector<std::string> ranges, jsonf::StringsField(j, "source_ranges"));
  for (const std::string& text : ranges) {
    auto c = ParseCidr(text);
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("source range: ", c.status().message()));
    s.source_ranges.push_back(*c);
  }
  TND_ASSIGN_OR_RETURN(s.dsr, jsonf::BoolField(j, "dsr", false));
  TND_ASSIGN_OR_RETURN(int64_t hc, jsonf::IntField(j, "health_check_port", 0, 65535, 0));
  s.health_check_port = static_cast<uint16_t>(hc);
  TND_ASSIGN_OR_RETURN(s.owner, jsonf::StringField(j, "owner", ""));
  return absl::OkStatus();
}

template <class V>
absl::StatusOr<Service> ServiceFromJsonFields(const V& j) {
  TND_RETURN_IF_ERROR(jsonf::ObjectValue(j, "a service"));
  Service s;
  TND_ASSIGN_OR_RETURN(int64_t id, jsonf::IntField(j, "id", 0, UINT32_MAX, 0));
  s.id = static_cast<ServiceId>(id);
  TND_ASSIGN_OR_RETURN(std::string frontend, jsonf::StringField(j, "frontend", ""));
  if (frontend.empty()) return absl::InvalidArgumentError("\"frontend\" is missing");
  TND_ASSIGN_OR_RETURN(s.frontend, ParseFrontend(frontend));
  TND_ASSIGN_OR_RETURN(std::string type, jsonf::StringField(j, "type", "ClusterIP"));
  TND_ASSIGN_OR_RETURN(s.type, ParseServiceType(type));
  TND_ASSIGN_OR_RETURN(std::string algorithm, jsonf::StringField(j, "algorithm", "random"));
  TND_ASSIGN_OR_RETURN(s.algorithm, ParseAlgorithm(algorithm));
  TND_ASSIGN_OR_RETURN(int64_t affinity, jsonf::IntField(j, "affinity_timeout", 0, kMaxAffinity, 0));
  s.affinity_timeout = static_cast<uint32_t>(affinity);
  TND_ASSIGN_OR_RETURN(std::string itp, jsonf::StringField(j, "internal_traffic_policy", "Cluster"));
  TND_ASSIGN_OR_RETURN(s.internal_traffic_policy, ParseTrafficPolicy(itp));
  TND_RETURN_IF_ERROR(jsonf::ForEachItem(j, "backends", [&](const auto& item, size_t i) -> absl::Status {
    auto b = BackendFromJson(item);
    if (!b.ok()) return Annotate(b.status(), absl::StrCat("backends[", i, "]"));
    s.backends.push_back(*b);
    return absl::OkStatus();
  }));
  TND_RETURN_IF_ERROR(ExternalFromJson(j, s));
  return s;
}
}  // namespace service_json_internal

// A service from its JSON value.
template <class V>
absl::StatusOr<Service> ServiceFromJsonValue(const V& j) {

  auto s = service_json_internal::ServiceFromJsonFields(j);
  if (s.ok()) return s;
  std::string name = "service";
  if (auto f = jsonf::JsonTraits<V>::Find(j, "frontend"))
    if (auto text = jsonf::JsonTraits<V>::String(*f)) name = absl::StrCat("service ", *text);
  return Annotate(s.status(), name);
}


// The services of a service.apply request: {"services": [...]}; errors name
// the item ("services[3]: service 10.0.0.1:80/TCP: ...").
template <class V>
absl::StatusOr<std::vector<Service>> ServicesFromJsonValue(const V& args) {
  using T = jsonf::JsonTraits<V>;
  auto list = T::Find(args, "services");
  if (!list || T::KindOf(*list) != jsonf::Kind::kArray)
    return absl::InvalidArgumentError("expected an array of services (or {\"services\": [...]})");
  std::vector<Service> out;
  out.reserve(T::Size(*list));
  absl::Status st = T::Items(*list, [&](const auto& item, size_t i) -> absl::Status {
    auto s = ServiceFromJsonValue(item);
    if (!s.ok()) return Annotate(s.status(), absl::StrCat("services[", i, "]"));
    out.push_back(std::move(*s));
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace tendril
