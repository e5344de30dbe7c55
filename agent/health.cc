#include "agent/health.h"

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Listen(uint16_t port, std::string service) {
  TND_ASSIGN_OR_RETURN(auto http,
                       HttpResponder::ListenAny(port, absl::StrCat("health check port ", port, " of service ", service)));
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(http), port, std::move(service)));
}

std::string HealthServer::Body(const std::string& service, size_t local_backends) {
  return nlohmann::json{{"service", service}, {"localEndpoints", local_backends}}.dump() + "\n";
}

HttpResponder::Handler HealthServer::Handler(size_t local_backends) const {
  // Whatever the path: load balancers probe "/" or "/healthz".
  return [this, local_backends](const std::string&) {
    return HttpReply{local_backends ? 200 : 503, "application/json", Body(service_, local_backends)};
  };
}

}  // namespace tendril
