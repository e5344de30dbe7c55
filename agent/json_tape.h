// simdjson's DOM ("tape") as a jsonf value type (common/json_read.h): the
// agent decodes large service sets (service.apply, the state store's rows)
// straight from the parser's tape, without building and freeing a tree of
// allocated nodes as nlohmann's DOM does (100,000 services: 12 MB of JSON,
// about 480 ms through nlohmann here, tens of ms through this).
// A key given twice in one object: nlohmann takes the last, simdjson the
// first; everything else decodes to the same value or error.
#pragma once

#include <simdjson.h>

#include <algorithm>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json_fields.h"
#include "common/json_read.h"

namespace tendril::jsonf {

template <>
struct JsonTraits<simdjson::dom::element> {
  using E = simdjson::dom::element;
  static Kind KindOf(const E& v) {
    switch (v.type()) {
      case simdjson::dom::element_type::NULL_VALUE: return Kind::kNull;
      case simdjson::dom::element_type::OBJECT: return Kind::kObject;
      case simdjson::dom::element_type::ARRAY: return Kind::kArray;
      case simdjson::dom::element_type::STRING: return Kind::kString;
      case simdjson::dom::element_type::BOOL: return Kind::kBool;
      case simdjson::dom::element_type::INT64:
      case simdjson::dom::element_type::UINT64:
      case simdjson::dom::element_type::DOUBLE: return Kind::kNumber;
    }
    return Kind::kOther;
  }
  static std::optional<E> Find(const E& obj, absl::string_view key) {
    simdjson::dom::object o;
    E out;
    if (obj.get(o) != simdjson::SUCCESS || o.at_key(std::string_view(key.data(), key.size())).get(out) != simdjson::SUCCESS)
      return std::nullopt;
    return out;
  }
  static std::optional<uint64_t> Uint(const E& v) {
    uint64_t u;
    if (v.type() != simdjson::dom::element_type::UINT64 || v.get(u) != simdjson::SUCCESS) return std::nullopt;
    return u;
  }
  static std::optional<int64_t> Int(const E& v) {
    int64_t i;
    if (v.type() != simdjson::dom::element_type::INT64 || v.get(i) != simdjson::SUCCESS) return std::nullopt;
    return i;
  }
  static std::optional<absl::string_view> String(const E& v) {
    std::string_view s;
    if (v.get(s) != simdjson::SUCCESS) return std::nullopt;
    return absl::string_view(s.data(), s.size());
  }
  static std::optional<bool> Bool(const E& v) {
    bool b;
    if (v.get(b) != simdjson::SUCCESS) return std::nullopt;
    return b;
  }
  static std::string NumberText(const E& v) { return simdjson::to_string(v); }
  // Items of an array (0 for anything else).
  static size_t Size(const E& v) {
    simdjson::dom::array arr;
    return v.get(arr) == simdjson::SUCCESS ? arr.size() : 0;
  }
  template <class Fn>
  static absl::Status Items(const E& v, Fn fn) {
    simdjson::dom::array arr;
    if (v.get(arr) != simdjson::SUCCESS) return absl::OkStatus();  // callers check the kind first
    size_t i = 0;
    for (E item : arr) {
      absl::Status st = fn(item, i++);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
};

// Parses `text` with `parser` (its tape lives as long as the parser, until
// its next parse), nesting at most kMaxDepth. An error says only that the
// text did not parse here: callers that need the position ask jsonf::Parse.
// `readable` is how many bytes from text.data() may be read: with
// SIMDJSON_PADDING of them past the text, it is parsed where it is (no copy).
inline absl::StatusOr<simdjson::dom::element> ParseTape(simdjson::dom::parser& parser, absl::string_view text,
                                                        size_t readable = 0) {
  // Grown when needed, never shrunk: a parser reused for many small
  // documents (the store's rows) allocates once.
  if ((parser.capacity() < text.size() || parser.max_depth() != static_cast<size_t>(kMaxDepth)) &&
      parser.allocate(std::max(text.size(), parser.capacity()), kMaxDepth) != simdjson::SUCCESS)
    return absl::ResourceExhaustedError("no memory to parse the request");
  simdjson::dom::element root;
  const bool padded = readable >= text.size() + simdjson::SIMDJSON_PADDING;
  if (parser.parse(text.data(), text.size(), /*realloc_if_needed=*/!padded).get(root) != simdjson::SUCCESS)
    return absl::InvalidArgumentError("not valid JSON");
  return root;
}

}  // namespace tendril::jsonf
