// The API's method table: each method and the handler that answers it.
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "common/json_fields.h"
#include "common/status.h"

namespace tendril {
namespace {
// A required list of strings (jsonf::Strings, which takes absence as empty).
absl::StatusOr<std::vector<std::string>> Strings(const nlohmann::json& args, const char* key) {
  if (!args.is_object() || !args.contains(key))
    return absl::InvalidArgumentError(absl::StrCat("missing argument \"", key, "\""));
  return jsonf::Strings(args, key);
}
}  // namespace

void Agent::RegisterApi(ApiServer& api) {
  // An endpoint change moves flows' next hops: cached flow paths go
  // (BumpGeneration), whether it succeeded or not (nothing is half applied,
  // but the bump is cheap and never wrong). Service changes bump it where
  // they are written (lb/services.cc).
  auto changing = [this](auto handler) {
    return [this, handler](const auto& a) -> absl::StatusOr<nlohmann::json> {
      absl::StatusOr<nlohmann::json> r = handler(a);
      BumpGeneration();
      return r;
    };
  };
  api.Register("status", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return StatusJson();
  });
  api.Register("prefilter.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return PrefilterList();
  });
  api.Register("prefilter.add", [this](const nlohmann::json& a) -> absl::StatusOr<nlohmann::json> {
    TND_ASSIGN_OR_RETURN(auto cidrs, Strings(a, "cidrs"));
    return PrefilterAdd(cidrs);
  });
  api.Register("prefilter.delete", [this](const nlohmann::json& a) -> absl::StatusOr<nlohmann::json> {
    TND_ASSIGN_OR_RETURN(auto cidrs, Strings(a, "cidrs"));
    return PrefilterDelete(cidrs);
  });
  api.Register("service.add", [this](const nlohmann::json& a) { return ServiceAdd(a); });
  api.Register("service.update", [this](const nlohmann::json& a) { return ServiceUpdate(a); });
  api.Register("service.apply", [this](const nlohmann::json& a) { return ServiceApply(a); });
  api.RegisterTape("service.apply", [this](simdjson::dom::element a) { return ServiceApplyTape(a); });
  api.Register("service.delete", [this](const nlohmann::json& a) { return ServiceDelete(a); });
  api.Register("service.get", [this](const nlohmann::json& a) { return ServiceGet(a); });
  api.Register("service.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return ServiceList();
  });
  api.Register("endpoint.add", changing([this](const nlohmann::json& a) { return EndpointAdd(a); }));
  api.Register("endpoint.delete", changing([this](const nlohmann::json& a) { return EndpointDelete(a); }));
  api.Register("endpoint.list", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return EndpointList();
  });
  api.Register("conntrack.gc", [this](const nlohmann::json&) -> absl::StatusOr<nlohmann::json> {
    return ConntrackGc();
  });
}

}  // namespace tendril
