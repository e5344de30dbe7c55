// Health check ports of services with externalTrafficPolicy Local, as
// kube-proxy serves them: an HTTP GET on the port answers 200 with the number
// of local backends when there is at least one, 503 when there is none, so an
// external load balancer sends traffic only to nodes that can serve it.
// Served from the agent's loop by an HttpResponder (agent/http_responder.h).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "agent/http_responder.h"

namespace tendril {

class HealthServer {
 public:
  static absl::StatusOr<std::unique_ptr<HealthServer>> Listen(uint16_t port, std::string service);

  std::vector<int> Fds() const { return http_->Fds(); }
  bool Owns(int fd) const { return http_->Owns(fd); }
  uint16_t port() const { return port_; }
  void OnReadable(int fd, size_t local_backends) { http_->OnReadable(fd, Handler(local_backends)); }
  void OnTimer(size_t local_backends) { http_->OnTimer(Handler(local_backends)); }
  int NextTimeoutMs() const { return http_->NextTimeoutMs(); }

  static constexpr int kRequestWaitMs = HttpResponder::kRequestWaitMs;
  static constexpr size_t kMaxPending = HttpResponder::kMaxPending;

  // The response body for a count (also what tests compare with).
  static std::string Body(const std::string& service, size_t local_backends);

 private:
  HealthServer(std::unique_ptr<HttpResponder> http, uint16_t port, std::string service)
      : http_(std::move(http)), port_(port), service_(std::move(service)) {}
  HttpResponder::Handler Handler(size_t local_backends) const;
  std::unique_ptr<HttpResponder> http_;
  uint16_t port_;
  std::string service_;
};

}  // namespace tendril
