#include "agent/state_json.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "lb/service_json.h"

namespace tendril {
namespace {

absl::Status Bad(const std::string& name, const std::string& what) {
  return absl::DataLossError(absl::StrCat("state file ", name, ": ", what));
}

// The list `key` of `j` (absent: empty), each element given to `add`.
template <typename Fn>
absl::Status EachOf(const nlohmann::json& j, const char* key, const std::string& name, Fn add) {
  if (!j.contains(key)) return absl::OkStatus();
  if (!j[key].is_array()) return Bad(name, absl::StrCat(key, " is not a list"));
  for (const auto& e : j[key]) TND_RETURN_IF_ERROR(Annotate(add(e), absl::StrCat("state file ", name)));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<DesiredState> ParseStateJson(const std::string& text, const std::string& name) {
  absl::StatusOr<nlohmann::json> parsed = jsonf::Parse(text);
  if (!parsed.ok()) return Bad(name, std::string(parsed.status().message()));
  const nlohmann::json& j = *parsed;
  if (!j.is_object()) return Bad(name, "not an object");
  DesiredState s;
  TND_RETURN_IF_ERROR(EachOf(j, "prefilter", name, [&](const nlohmann::json& c) -> absl::Status {
    if (!c.is_string()) return absl::DataLossError("prefilter entry is not a string");
    TND_ASSIGN_OR_RETURN(Cidr cidr, ParseCidr(c.get<std::string>()));
    s.prefilter.insert(cidr);
    return absl::OkStatus();
  }));
  TND_RETURN_IF_ERROR(EachOf(j, "services", name, [&](const nlohmann::json& sj) -> absl::Status {
    TND_ASSIGN_OR_RETURN(Service svc, ServiceFromJson(sj));
    s.services.push_back(std::move(svc));
    return absl::OkStatus();
  }));
  TND_RETURN_IF_ERROR(EachOf(j, "endpoints", name, [&](const nlohmann::json& ej) -> absl::Status {
    TND_ASSIGN_OR_RETURN(Endpoint ep, EndpointFromJson(ej));
    s.endpoints.push_back(std::move(ep));
    return absl::OkStatus();
  }));
  return s;
}

std::string StateToJson(const DesiredState& s) {
  nlohmann::json prefilter = nlohmann::json::array();
  for (const Cidr& c : s.prefilter) prefilter.push_back(c.ToString());
  std::string out = absl::StrCat("{\n\"version\": 1,\n\"prefilter\": ", prefilter.dump(), ",\n\"services\": [");
  for (size_t i = 0; i < s.services.size(); ++i)
    absl::StrAppend(&out, i ? ",\n  " : "\n  ", ServiceToJson(s.services[i]).dump());
  out += "\n],\n\"endpoints\": [";
  for (size_t i = 0; i < s.endpoints.size(); ++i)
    absl::StrAppend(&out, i ? ",\n  " : "\n  ", StoredEndpointJson(s.endpoints[i]).dump());
  out += "\n]\n}\n";
  return out;
}

}  // namespace tendril
