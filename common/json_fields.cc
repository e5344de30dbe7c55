#include "common/json_fields.h"

#include "absl/strings/str_cat.h"
#include "common/json_read.h"

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

std::string Describe(const json& v) { return DescribeValue(v); }

absl::StatusOr<int64_t> Int(const json& obj, absl::string_view key, int64_t min, int64_t max, int64_t def) {
  return IntField(obj, key, min, max, def);
}

absl::StatusOr<std::string> String(const json& obj, absl::string_view key, std::string def) {
  return StringField(obj, key, std::move(def));
}

absl::StatusOr<bool> Bool(const json& obj, absl::string_view key, bool def) { return BoolField(obj, key, def); }

absl::StatusOr<std::vector<json>> List(const json& obj, absl::string_view key) {
  std::vector<json> out;
  absl::Status st = ForEachItem(obj, key, [&](const json& item, size_t) {
    out.push_back(item);
    return absl::OkStatus();
  });
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<std::string>> Strings(const json& obj, absl::string_view key) {
  return StringsField(obj, key);
}

absl::Status Object(const json& obj, absl::string_view what) { return ObjectValue(obj, what); }

std::string Dump(const json& v, int indent) {
  return v.dump(indent, ' ', false, json::error_handler_t::replace);
}

}  // namespace tendril::jsonf
