// Strict reading of JSON that comes from outside the agent (API requests,
// `service apply -f` files, the state file): every field has a type and a
// range, and an error names the field and what it got. Nothing is truncated,
// wrapped or converted: 1.5, true and 4294967296 are not a port, and an
// object is not a list.
#pragma once

#include <cstdint>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"

namespace tendril::jsonf {

// Deepest nesting of arrays and objects any request may have. The parser and
// the copies of a value recurse once per level: a limit keeps a request of
// 100,000 '[' from exhausting the stack.
inline constexpr int kMaxDepth = 64;

// Parses `text` as one JSON value, refusing nesting deeper than `max_depth`
// (checked on the text before the parser sees it) and invalid UTF-8.
absl::StatusOr<nlohmann::json> Parse(absl::string_view text, int max_depth = kMaxDepth);

// What a value is, for errors: "a string", "an object", "the number 1.5".
std::string Describe(const nlohmann::json& v);

// `obj[key]`: `def` when absent; an error when present but not an integer in
// [min, max].
absl::StatusOr<int64_t> Int(const nlohmann::json& obj, absl::string_view key, int64_t min, int64_t max,
                            int64_t def);
absl::StatusOr<std::string> String(const nlohmann::json& obj, absl::string_view key, std::string def);
absl::StatusOr<bool> Bool(const nlohmann::json& obj, absl::string_view key, bool def);
// `obj[key]` as a list (empty when absent), or an error when it is not one.
absl::StatusOr<std::vector<nlohmann::json>> List(const nlohmann::json& obj, absl::string_view key);
// `obj[key]` as a list of strings (empty when absent).
absl::StatusOr<std::vector<std::string>> Strings(const nlohmann::json& obj, absl::string_view key);
// `obj` must be an object; `what` names it in the error.
absl::Status Object(const nlohmann::json& obj, absl::string_view what);

// Serialises for the wire or a file: bytes that are not UTF-8 (a client's
// garbage quoted in an error) are replaced, never thrown about.
std::string Dump(const nlohmann::json& v, int indent = -1);

}  // namespace tendril::jsonf
