#include "common/json_fields.h"

#include <gtest/gtest.h>

#include <string>

#include "lb/service.h"
#include "lb/service_json.h"

namespace tendril {
namespace {

using nlohmann::json;

TEST(JsonFieldsTest, IntegersAreCheckedForTypeAndRange) {
  json j = json::parse(R"({"a": 5, "neg": -1, "big": 4294967296, "half": 1.5, "yes": true, "s": "7", "huge": 18446744073709551615})");
  EXPECT_EQ(*jsonf::Int(j, "a", 0, 10, 0), 5);
  EXPECT_EQ(*jsonf::Int(j, "missing", 0, 10, 3), 3);
  for (const char* k : {"neg", "big", "half", "yes", "s", "huge"}) {
    auto r = jsonf::Int(j, k, 0, UINT32_MAX, 0);
    ASSERT_FALSE(r.ok()) << k;
    EXPECT_NE(r.status().message().find(absl::StrCat("\"", k, "\" must be an integer in 0-4294967295")),
              std::string::npos)
        << r.status();
  }
  EXPECT_EQ(jsonf::Int(j, "half", 0, 10, 0).status().message(), "\"half\" must be an integer in 0-10, not the number 1.5");
}

TEST(JsonFieldsTest, StringsListsAndBools) {
  json j = json::parse(R"({"s": "x", "o": {"a": 1}, "l": ["a", 2], "b": true})");
  EXPECT_EQ(*jsonf::String(j, "s", ""), "x");
  EXPECT_EQ(jsonf::String(j, "o", "").status().message(), "\"o\" must be a string, not an object");
  EXPECT_EQ(jsonf::Strings(j, "l").status().message(), "\"l[1]\" must be a string, not the number 2");
  EXPECT_EQ(jsonf::List(j, "o").status().message(), "\"o\" must be a list, not an object");
  EXPECT_TRUE(*jsonf::Bool(j, "b", false));
  EXPECT_FALSE(jsonf::Bool(j, "s", false).ok());
}

TEST(JsonFieldsTest, DeepNestingIsRefusedBeforeParsing) {
  std::string deep(100000, '[');
  auto r = jsonf::Parse(deep);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "JSON nests deeper than 64 levels");
  // Brackets inside strings are not nesting.
  EXPECT_TRUE(jsonf::Parse(absl::StrCat("{\"a\": \"", std::string(1000, '['), "\"}")).ok());
  std::string ok(64, '[');
  ok += std::string(64, ']');
  EXPECT_TRUE(jsonf::Parse(ok).ok());
}

// Found by fuzz_service_json: a number too large for a double threw
// out_of_range, which is not a parse_error, out of Parse.
TEST(JsonFieldsTest, NumberTooLargeForADoubleIsAnErrorNotAThrow) {
  auto r = jsonf::Parse("999999e999999999");
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("not valid JSON"), std::string::npos) << r.status();
  EXPECT_FALSE(jsonf::Parse(R"({"weight": 1e400})").ok());
}

TEST(JsonFieldsTest, BytesThatAreNotUtf8NeitherThrowNorAreQuoted) {
  auto r = jsonf::Parse("\xff");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "not valid JSON: syntax error at byte 1");
  EXPECT_FALSE(jsonf::Parse("\"\xff\"").ok());
  json j = std::string("a\xff");
  EXPECT_EQ(jsonf::Dump(j), "\"a\xEF\xBF\xBD\"");
}

// The JSON path of a service has the CLI's rules, each error naming the
// field (found by sending hostile requests at a running agent).
TEST(JsonFieldsTest, ServiceFieldsOutOfRangeAreNamed) {
  struct Case {
    const char* field;
    const char* says;
  } cases[] = {
      {R"("backends": [{"address": "10.0.0.2:80", "weight": -1}])", "backends[0]: \"weight\" must be an integer in 0-1000, not the number -1"},
      {R"("backends": [{"address": "10.0.0.2:80", "weight": 4294967295}])", "\"weight\" must be an integer in 0-1000"},
      {R"("backends": [{"address": "10.0.0.2:80", "id": -1}])", "\"id\" must be an integer in 0-4294967295"},
      {R"("affinity_timeout": 1.5)", "\"affinity_timeout\" must be an integer in 0-604800, not the number 1.5"},
      {R"("affinity_timeout": true)", "not true"},
      {R"("affinity_timeout": 4294967296)", "\"affinity_timeout\" must be an integer"},
      {R"("type": "NodePort", "health_check_port": -1)", "\"health_check_port\" must be an integer in 0-65535"},
      {R"("type": "NodePort", "health_check_port": 65536)", "\"health_check_port\" must be an integer in 0-65535"},
      {R"("type": "NodePort", "node_port": -0.5)", "\"node_port\" must be an integer in 0-65535, not the number -0.5"},
      {R"("backends": {"address": "10.0.0.2:80"})", "\"backends\" must be a list, not an object"},
      {R"("type": "ExternalIP", "external_ips": {"a": 1})", "\"external_ips\" must be a list of strings, not an object"},
      {R"("type": "NodePort", "source_ranges": {"a": 1})", "\"source_ranges\" must be a list of strings"},
      {R"("backends": ["10.0.0.2:80"])", "backends[0]: a backend must be an object, not a string"},
      {R"("dsr": "yes")", "\"dsr\" must be true or false, not a string"},
      {R"("id": 4294967296)", "\"id\" must be an integer in 0-4294967295"},
  };
  for (const Case& c : cases) {
    json j = json::parse(absl::StrCat(R"({"frontend": "10.96.0.1:80/TCP", )", c.field, "}"));
    auto s = ServiceFromJson(j);
    ASSERT_FALSE(s.ok()) << c.field;
    EXPECT_EQ(s.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(s.status().message().find(c.says), std::string::npos) << c.field << ": " << s.status();
    EXPECT_NE(s.status().message().find("service 10.96.0.1:80/TCP"), std::string::npos) << s.status();
  }
  auto ok = ServiceFromJson(json::parse(
      R"({"frontend": "10.96.0.1:80/TCP", "affinity_timeout": 604800, "backends": [{"address": "10.0.0.2:80", "weight": 1000}]})"));
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->backends[0].weight, 1000u);
}

}  // namespace
}  // namespace tendril
