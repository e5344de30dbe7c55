// The service model on the wire: the JSON of the API (service.add/apply/
// update requests and every answer), the state file and `service apply -f`.
// The CLI encodes with these, the agent decodes with them: one codec, both
// ends. Decoding is strict (common/json_fields.h): every error names the
// field.
#pragma once

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "lb/service.h"

namespace tendril {

nlohmann::json ServiceToJson(const Service& s);
absl::StatusOr<Service> ServiceFromJson(const nlohmann::json& j);

// A service.update request: {"id": N} or {"frontend": "..."} plus the fields
// to change ("backends", "states", "algorithm", ...).
nlohmann::json ServiceUpdateToJson(const ServiceUpdate& u);
absl::StatusOr<ServiceUpdate> ServiceUpdateFromJson(const nlohmann::json& args);

}  // namespace tendril
