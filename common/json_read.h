// The strict field readers of json_fields.h, written once for any parsed
// JSON value type V that has a JsonTraits<V>: nlohmann's DOM (below, what
// API requests use) and simdjson's tape (agent/json_tape.h: the agent's path
// for large service sets, which are decoded straight from the parser's
// tape instead of a tree of allocated nodes). The same input gives the same
// value or the same error through either.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tendril::jsonf {

enum class Kind { kNull, kObject, kArray, kString, kBool, kNumber, kOther };

// Read access to one parser's values. Find() returns something that tests
// false when the key is absent and dereferences to the value.
template <class V>
struct JsonTraits;

template <>
struct JsonTraits<nlohmann::json> {
  using json = nlohmann::json;
  static Kind KindOf(const json& v) {
    switch (v.type()) {
      case json::value_t::null: return Kind::kNull;
      case json::value_t::object: return Kind::kObject;
      case json::value_t::array: return Kind::kArray;
      case json::value_t::string: return Kind::kString;
      case json::value_t::boolean: return Kind::kBool;
      case json::value_t::number_integer:
      case json::value_t::number_unsigned:
      case json::value_t::number_float: return Kind::kNumber;
      default: return Kind::kOther;
    }
  }
  static const json* Find(const json& obj, absl::string_view key) {
    if (!obj.is_object()) return nullptr;
    auto it = obj.find(key);
    return it == obj.end() ? nullptr : &*it;
  }
  static std::optional<uint64_t> Uint(const json& v) {
    return v.is_number_unsigned() ? std::optional<uint64_t>(v.get<uint64_t>()) : std::nullopt;
  }
  static std::optional<int64_t> Int(const json& v) {
    return v.is_number_integer() ? std::optional<int64_t>(v.get<int64_t>()) : std::nullopt;
  }
  static std::optional<absl::string_view> String(const json& v) {
    if (!v.is_string()) return std::nullopt;
    return absl::string_view(v.get_ref<const std::string&>());
  }
  static std::optional<bool> Bool(const json& v) {
    return v.is_boolean() ? std::optional<bool>(v.get<bool>()) : std::nullopt;
  }
  static std::string NumberText(const json& v) { return v.dump(); }
  static size_t Size(const json& v) { return v.size(); }
  // Calls fn(item, index) for each item of an array, stopping at an error.
  template <class Fn>
  static absl::Status Items(const json& v, Fn fn) {
    size_t i = 0;
    for (const json& item : v) {
      absl::Status st = fn(item, i++);
      if (!st.ok()) return st;
    }
    return absl::OkStatus();
  }
};

// What a value is, for errors: "a string", "an object", "the number 1.5".
template <class V>
std::string DescribeValue(const V& v) {
  using T = JsonTraits<V>;
  switch (T::KindOf(v)) {
    case Kind::kNull: return "null";
    case Kind::kObject: return "an object";
    case Kind::kArray: return "a list";
    case Kind::kString: return "a string";
    case Kind::kBool: return *T::Bool(v) ? "true" : "false";
    case Kind::kNumber: return absl::StrCat("the number ", T::NumberText(v));
    default: return "an unexpected value";
  }
}

template <class V>
absl::Status Bad(absl::string_view key, absl::string_view want, const V& got) {
  return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be ", want, ", not ", DescribeValue(got)));
}

// `obj[key]`: `def` when absent; an error when present but not an integer in
// [min, max].
template <class V>
absl::StatusOr<int64_t> IntField(const V& obj, absl::string_view key, int64_t min, int64_t max, int64_t def) {
  using T = JsonTraits<V>;
  auto v = T::Find(obj, key);
  if (!v) return def;
  std::string want = absl::StrCat("an integer in ", min, "-", max);
  if (auto u = T::Uint(*v)) {
    if (max < 0 || *u > static_cast<uint64_t>(max)) return Bad(key, want, *v);
    if (*u <= static_cast<uint64_t>(INT64_MAX) && static_cast<int64_t>(*u) < min) return Bad(key, want, *v);
    return static_cast<int64_t>(*u);
  }
  auto i = T::Int(*v);
  if (!i || *i < min || *i > max) return Bad(key, want, *v);
  return *i;
}

template <class V>
absl::StatusOr<std::string> StringField(const V& obj, absl::string_view key, std::string def) {
  using T = JsonTraits<V>;
  auto v = T::Find(obj, key);
  if (!v) return def;
  auto s = T::String(*v);
  if (!s) return Bad(key, "a string", *v);
  return std::string(*s);
}

template <class V>
absl::StatusOr<bool> BoolField(const V& obj, absl::string_view key, bool def) {
  using T = JsonTraits<V>;
  auto v = T::Find(obj, key);
  if (!v) return def;
  auto b = T::Bool(*v);
  if (!b) return Bad(key, "true or false", *v);
  return *b;
}

// fn(item, index) for each item of the list `obj[key]` (none when absent);
// an error when it is not a list.
template <class V, class Fn>
absl::Status ForEachItem(const V& obj, absl::string_view key, Fn fn) {
  using T = JsonTraits<V>;
  auto v = T::Find(obj, key);
  if (!v) return absl::OkStatus();
  if (T::KindOf(*v) != Kind::kArray) return Bad(key, "a list", *v);
  return T::Items(*v, fn);
}

// `obj[key]` as a list of strings (empty when absent).
template <class V>
absl::StatusOr<std::vector<std::string>> StringsField(const V& obj, absl::string_view key) {
  using T = JsonTraits<V>;
  auto v = T::Find(obj, key);
  std::vector<std::string> out;
  if (!v) return out;
  if (T::KindOf(*v) != Kind::kArray) return Bad(key, "a list of strings", *v);
  absl::Status st = T::Items(*v, [&](const auto& item, size_t i) -> absl::Status {
    auto s = T::String(item);
    if (!s) return Bad(absl::StrCat(key, "[", i, "]"), "a string", item);
    out.emplace_back(*s);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

// `obj` must be an object; `what` names it in the error.
template <class V>
absl::Status ObjectValue(const V& obj, absl::string_view what) {
  if (JsonTraits<V>::KindOf(obj) == Kind::kObject) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " must be an object, not ", DescribeValue(obj)));
}

}  // namespace tendril::jsonf
