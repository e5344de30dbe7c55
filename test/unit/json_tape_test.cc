// The two decoders of a service (lb/service_json_read.h over nlohmann's DOM
// and over simdjson's tape, agent/json_tape.h) give the same service or the
// same error for the same text, and the API server answers a service.apply
// the same whichever path reads it.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "agent/api_server.h"
#include "agent/json_tape.h"
#include "common/json_fields.h"
#include "lb/service_json.h"
#include "lb/service_json_read.h"

namespace tendril {
namespace {

// Decoded both ways: the service as JSON again, or the error's text.
template <class V>
std::string Decoded(const absl::StatusOr<V>& parsed) {
  if (!parsed.ok()) return "parse: " + std::string(parsed.status().message());
  auto s = ServicesFromJsonValue(*parsed);
  if (!s.ok()) return std::string(s.status().message());
  nlohmann::json out = nlohmann::json::array();
  for (const Service& v : *s) out.push_back(ServiceToJson(v));
  return out.dump();
}

std::string ViaDom(const std::string& text) { return Decoded(jsonf::Parse(text)); }

std::string ViaTape(const std::string& text) {
  simdjson::dom::parser p;
  return Decoded(jsonf::ParseTape(p, text));
}

TEST(JsonTapeTest, BothDecodersAgreeOnServicesAndOnErrors) {
  const std::vector<std::string> cases = {
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "backends": [{"address": "10.1.0.1:8080"}]}]})",
      R"({"services": [{"frontend": "[fd00::10]:53/UDP", "algorithm": "maglev", "affinity_timeout": 30,
          "backends": [{"address": "[fd00::2]:53", "weight": 2, "state": "terminating", "id": 7}]}]})",
      R"({"services": [{"frontend": "10.96.0.2:443/TCP", "type": "LoadBalancer", "node_port": 30443,
          "external_ips": ["192.0.2.10"], "traffic_policy": "Local", "source_ranges": ["198.51.100.0/24"],
          "health_check_port": 32000, "dsr": true, "internal_traffic_policy": "Local", "backends": []}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "backends": [{"address": "10.1.0.1:8080", "weight": 1.5}]}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "backends": [{"address": "10.1.0.1:8080", "weight": -1}]}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "id": 4294967296}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "id": 18446744073709551615}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "dsr": "yes"}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "external_ips": ["192.0.2.1", 5]}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "backends": {"address": "10.1.0.1:8080"}}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "backends": [null]}]})",
      R"({"services": [{"frontend": 80}]})",
      R"({"services": [{"backends": []}]})",
      R"({"services": [["not", "an", "object"]]})",
      R"({"services": {"frontend": "10.96.0.1:80/TCP"}})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "node_port": 0}]})",
      R"({"services": [{"frontend": "10.96.0.1:80/TCP", "affinity_timeout": true}]})",
  };
  for (const std::string& c : cases) EXPECT_EQ(ViaDom(c), ViaTape(c)) << c;
  // The cases are not all errors, nor all accepted.
  EXPECT_EQ(ViaTape(cases[0]).front(), '[');
  EXPECT_NE(ViaTape(cases[3]).find("\"weight\" must be an integer in 0-1000, not the number 1.5"), std::string::npos)
      << ViaTape(cases[3]);
}

TEST(JsonTapeTest, TheApiAnswersTheSameThroughEitherPath) {
  auto server = ApiServer::Listen(::testing::TempDir() + "/json_tape_test.sock");
  ASSERT_TRUE(server.ok()) << server.status();
  int dom_calls = 0, tape_calls = 0;
  server->Register("service.apply", [&](const nlohmann::json& a) -> absl::StatusOr<nlohmann::json> {
    ++dom_calls;
    TND_ASSIGN_OR_RETURN(auto s, ServicesFromJsonValue(a));
    return nlohmann::json{{"services", s.size()}};
  });
  server->RegisterTape("service.apply", [&](simdjson::dom::element a) -> absl::StatusOr<nlohmann::json> {
    ++tape_calls;
    TND_ASSIGN_OR_RETURN(auto s, ServicesFromJsonValue(a));
    return nlohmann::json{{"services", s.size()}};
  });
  const std::string ok = R"({"op":"service.apply","args":{"services":[{"frontend":"10.96.0.1:80/TCP"}]}})";
  const std::string bad = R"({"op":"service.apply","args":{"services":[{"frontend":"10.96.0.1:80/TCP","dsr":1}]}})";
  EXPECT_EQ(server->Answer(ok), R"({"ok":true,"result":{"services":1}})");
  EXPECT_EQ(tape_calls, 1);
  const std::string tape_error = server->Answer(bad);
  EXPECT_EQ(tape_calls, 2);
  EXPECT_EQ(tape_error, server->Dispatch(*jsonf::Parse(bad)).dump());
  EXPECT_EQ(dom_calls, 1);
  // Not JSON: the DOM path says where it broke.
  EXPECT_NE(server->Answer(R"({"op":"service.apply","args":{)").find("syntax error at byte"), std::string::npos);
  EXPECT_EQ(tape_calls, 2);
}

}  // namespace
}  // namespace tendril
