#include "common/json_fields.h"

#include "absl/strings/str_cat.h"

namespace tendril::jsonf {

namespace {
using nlohmann::json;

absl::Status DepthError(int max_depth) {
  return absl::InvalidArgumentError(absl::StrCat("JSON nests deeper than ", max_depth, " levels"));
}

// Depth of '[' and '{' outside strings; the parser checks the rest.
absl::Status CheckDepth(absl::string_view text, int max_depth) {
  int depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (in_string) {
      if (c == '\\') ++i;
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) return DepthError(max_depth);
    } else if ((c == ']' || c == '}') && depth > 0) {
      --depth;
    }
  }
  return absl::OkStatus();
}

absl::Status Bad(absl::string_view key, absl::string_view want, const json& got) {
  return absl::InvalidArgumentError(absl::StrCat("\"", key, "\" must be ", want, ", not ", Describe(got)));
}

const json* Find(const json& obj, absl::string_view key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() ? nullptr : &*it;
}
}  // namespace

absl::StatusOr<json> Parse(absl::string_view text, int max_depth) {
  if (auto s = CheckDepth(text, max_depth); !s.ok()) return s;
  json v = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (v.is_discarded()) {
    // Ask again with exceptions for the position and reason, never quoting
    // the bytes themselves (they may not be text).
    try {
      json again = json::parse(text.begin(), text.end());
      (void)again;
    } catch (const json::parse_error& e) {
      return absl::InvalidArgumentError(absl::StrCat("not valid JSON: syntax error at byte ", e.byte));
    } catch (const json::exception& e) {
      // A number out of range (1e999) is not a parse_error.
      return absl::InvalidArgumentError(absl::StrCat("not valid JSON: ", e.what()));
    }
    return absl::InvalidArgumentError("not valid JSON");
  }
  return v;
}

std::string Describe(const json& v) {
  switch (v.type()) {
    case json::value_t::null: return "null";
    case json::value_t::object: return "an object";
    case json::value_t::array: return "a list";
    case json::value_t::string: return "a string";
    case json::value_t::boolean: return v.get<bool>() ? "true" : "false";
    case json::value_t::number_integer:
    case json::value_t::number_unsigned:
    case json::value_t::number_float: return absl::StrCat("the number ", v.dump());
    default: return "an unexpected value";
  }
}

absl::StatusOr<int64_t> Int(const json& obj, absl::string_view key, int64_t min, int64_t max, int64_t def) {
  const json* v = Find(obj, key);
  if (!v) return def;
  std::string want = absl::StrCat("an integer in ", min, "-", max);
  if (v->is_number_unsigned()) {
    uint64_t u = v->get<uint64_t>();
    if (max < 0 || u > static_cast<uint64_t>(max)) return Bad(key, want, *v);
    return static_cast<int64_t>(u);
  }
  if (!v->is_number_integer()) return Bad(key, want, *v);
  int64_t i = v->get<int64_t>();
  if (i < min || i > max) return Bad(key, want, *v);
  return i;
}

absl::StatusOr<std::string> String(const json& obj, absl::string_view key, std::string def) {
  const json* v = Find(obj, key);
  if (!v) return def;
  if (!v->is_string()) return Bad(key, "a string", *v);
  return v->get<std::string>();
}

absl::StatusOr<bool> Bool(const json& obj, absl::string_view key, bool def) {
  const json* v = Find(obj, key);
  if (!v) return def;
  if (!v->is_boolean()) return Bad(key, "true or false", *v);
  return v->get<bool>();
}

absl::StatusOr<std::vector<json>> List(const json& obj, absl::string_view key) {
  const json* v = Find(obj, key);
  if (!v) return std::vector<json>{};
  if (!v->is_array()) return Bad(key, "a list", *v);
  return v->get<std::vector<json>>();
}

absl::StatusOr<std::vector<std::string>> Strings(const json& obj, absl::string_view key) {
  const json* v = Find(obj, key);
  std::vector<std::string> out;
  if (!v) return out;
  if (!v->is_array()) return Bad(key, "a list of strings", *v);
  for (size_t i = 0; i < v->size(); ++i) {
    if (!(*v)[i].is_string())
      return Bad(absl::StrCat(key, "[", i, "]"), "a string", (*v)[i]);
    out.push_back((*v)[i].get<std::string>());
  }
  return out;
}

absl::Status Object(const json& obj, absl::string_view what) {
  if (obj.is_object()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " must be an object, not ", Describe(obj)));
}

std::string Dump(const json& v, int indent) {
  return v.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace tendril::jsonf
