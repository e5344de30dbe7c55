// Health check ports of services with externalTrafficPolicy Local, as
// kube-proxy serves them: an HTTP GET on the port answers 200 with the number
// of local backends when there is at least one, 503 when there is none, so an
// external load balancer sends traffic only to nodes that can serve it.
//
// A hand-written responder rather than cpp-httplib: the agent is one
// poll(2) loop, and httplib's server wants a thread per listener; this
// answers any request on the port with one fixed response and closes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace tendril {

class HealthServer {
 public:
  // Listens on TCP `port` on every address of the namespace (IPv6 socket
  // accepting IPv4 too, or IPv4 only where IPv6 is off).
  static absl::StatusOr<std::unique_ptr<HealthServer>> Listen(uint16_t port, std::string service);

  int fd() const { return fd_.get(); }
  uint16_t port() const { return port_; }
  // Accepts one pending connection and answers it (bounded: 200 ms to read
  // the request).
  void ServeOne(size_t local_backends);

  // The response body for a count (also what tests compare with).
  static std::string Body(const std::string& service, size_t local_backends);

 private:
  HealthServer(UniqueFd fd, uint16_t port, std::string service)
      : fd_(std::move(fd)), port_(port), service_(std::move(service)) {}
  UniqueFd fd_;
  uint16_t port_;
  std::string service_;
};

}  // namespace tendril
