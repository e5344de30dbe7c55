// Health check ports of services with externalTrafficPolicy Local, as
// kube-proxy serves them: an HTTP GET on the port answers 200 with the number
// of local backends when there is at least one, 503 when there is none, so an
// external load balancer sends traffic only to nodes that can serve it.
//
// A hand-written responder rather than cpp-httplib: the agent is one
// poll(2) loop, and httplib's server wants a thread per listener; this
// answers any request on the port with one fixed response and closes,
// from the loop, never waiting on a client.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace tendril {

class HealthServer {
 public:
  // Listens on TCP `port` on every address of the namespace (IPv6 socket
  // accepting IPv4 too, or IPv4 only where IPv6 is off).
  static absl::StatusOr<std::unique_ptr<HealthServer>> Listen(uint16_t port, std::string service);

  // The listener and the connections waiting for their request: what to
  // poll. No client can stall the agent's loop: each connection is answered
  // once its request arrived, or after kRequestWaitMs without one, and at
  // most kMaxPending wait at once (the oldest is answered to make room).
  std::vector<int> Fds() const;
  bool Owns(int fd) const;
  uint16_t port() const { return port_; }
  // `fd` (one of Fds()) is readable.
  void OnReadable(int fd, size_t local_backends);
  // Answers the connections whose wait is over.
  void OnTimer(size_t local_backends);
  // ms until the next wait is over (-1: none).
  int NextTimeoutMs() const;

  static constexpr int kRequestWaitMs = 1000;
  static constexpr size_t kMaxPending = 64;

  // The response body for a count (also what tests compare with).
  static std::string Body(const std::string& service, size_t local_backends);

 private:
  HealthServer(UniqueFd fd, uint16_t port, std::string service)
      : fd_(std::move(fd)), port_(port), service_(std::move(service)) {}
  struct Pending {
    UniqueFd fd;
    std::chrono::steady_clock::time_point deadline;
  };
  void Answer(int fd, size_t local_backends) const;
  UniqueFd fd_;
  std::deque<Pending> pending_;  // oldest first
  uint16_t port_;
  std::string service_;
};

}  // namespace tendril
