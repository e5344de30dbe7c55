// The desired state as one JSON document: what `state.json` held before the
// SQLite store (agent/state.h), read once to migrate it. Strict: anything
// that is not what the agent wrote is an error naming the file.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "agent/state.h"

namespace tendril {

// `name` is what errors call the document (its path).
absl::StatusOr<DesiredState> ParseStateJson(const std::string& text, const std::string& name);
std::string StateToJson(const DesiredState& s);

}  // namespace tendril
