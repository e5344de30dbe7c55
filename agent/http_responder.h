// A small HTTP/1.1 responder driven by the agent's poll(2) loop: the
// per-service health check ports (agent/health.h) and the node's health and
// metrics endpoints (agent/node_http.cc). One request per connection, then
// close. No client can stall the loop: each connection is answered once its
// request arrived, or after kRequestWaitMs without one, and at most
// kMaxPending wait at once (the oldest is answered to make room).
//
// Hand-written rather than cpp-httplib: httplib's server wants a thread per
// listener, and the answers read agent state that only the loop touches.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace tendril {

struct HttpReply {
  int code = 200;
  std::string content_type = "application/json";
  std::string body;
};

class HttpResponder {
 public:
  // The request path ("/healthz"; "" when no request line came in time).
  using Handler = std::function<HttpReply(const std::string& path)>;

  // Listens on "ADDR:PORT" ("0.0.0.0:10256", "[::]:10256", "127.0.0.1:10249").
  static absl::StatusOr<std::unique_ptr<HttpResponder>> Listen(const std::string& address, const std::string& what);
  // Listens on `port` on every address of the namespace (IPv6 socket
  // accepting IPv4 too, or IPv4 only where IPv6 is off).
  static absl::StatusOr<std::unique_ptr<HttpResponder>> ListenAny(uint16_t port, const std::string& what);

  std::vector<int> Fds() const;
  bool Owns(int fd) const;
  void OnReadable(int fd, const Handler& h);
  void OnTimer(const Handler& h);
  int NextTimeoutMs() const;  // -1: nothing waits

  static constexpr int kRequestWaitMs = 1000;
  static constexpr size_t kMaxPending = 64;

 private:
  explicit HttpResponder(UniqueFd fd) : fd_(std::move(fd)) {}
  struct Pending {
    UniqueFd fd;
    std::chrono::steady_clock::time_point deadline;
  };
  void Answer(int fd, const Handler& h) const;
  UniqueFd fd_;
  std::deque<Pending> pending_;  // oldest first
};

}  // namespace tendril
