// One API request line, as any local root process may send it, through the
// agent's real decoder and dispatcher with handlers that parse their
// arguments the way the agent's do (services, updates, endpoints, CIDR
// lists). Invariant: the answer is one line of valid JSON with "ok" and,
// when not ok, a status code name and an error; nothing throws.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/api_server.h"
#include "agent/endpoints.h"
#include "agent/prefilter.h"
#include "lb/service.h"
#include "lb/service_json.h"
#include "common/json_fields.h"
#include "common/log.h"
#include "common/status.h"

using namespace tendril;
using nlohmann::json;

namespace {
ApiServer* Server() {
  static ApiServer* server = [] {
    SetLogLevel(LogLevel::kError);  // every refused request logs at info: most of the time, unread
    std::string path = absl::StrCat("/tmp/tnd-fuzz-api-", ::getpid(), ".sock");
    auto s = ApiServer::Listen(path);
    if (!s.ok()) std::abort();
    auto* srv = new ApiServer(std::move(*s));
    srv->Register("service.add", [](const json& a) -> absl::StatusOr<json> {
      auto it = a.find("service");
      if (it == a.end()) return absl::InvalidArgumentError("missing argument \"service\"");
      TND_ASSIGN_OR_RETURN(Service s, ServiceFromJson(*it));
      TND_RETURN_IF_ERROR(ValidateService(s, ServiceLimits{}));
      return ServiceToJson(s);
    });
    srv->Register("service.update", [](const json& a) -> absl::StatusOr<json> {
      TND_ASSIGN_OR_RETURN(int64_t t, jsonf::Int(a, "affinity_timeout", 0, 604800, 0));
      TND_ASSIGN_OR_RETURN(auto backends, jsonf::Strings(a, "backends"));
      for (const auto& b : backends) TND_RETURN_IF_ERROR(ParseBackend(b).status());
      return json(t);
    });
    srv->Register("endpoint.add", [](const json& a) -> absl::StatusOr<json> {
      TND_ASSIGN_OR_RETURN(Endpoint e, EndpointFromJson(a));
      return EndpointToJson(e);
    });
    srv->Register("prefilter.add", [](const json& a) -> absl::StatusOr<json> {
      TND_ASSIGN_OR_RETURN(auto cidrs, jsonf::Strings(a, "cidrs"));
      TND_ASSIGN_OR_RETURN(auto parsed, ParseCidrList(cidrs));
      return json(parsed.size());
    });
    return srv;
  }();
  return server;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string answer = Server()->Answer(std::string(reinterpret_cast<const char*>(data), size));
  if (answer.find('\n') != std::string::npos) std::abort();
  auto j = jsonf::Parse(answer);
  if (!j.ok() || !j->is_object() || !(*j)["ok"].is_boolean()) std::abort();
  if (!(*j)["ok"].get<bool>() && (!(*j)["code"].is_string() || !(*j)["error"].is_string())) std::abort();
  return 0;
}
