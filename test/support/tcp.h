// TCP helpers for the connect benchmarks: a server in a namespace that
// accepts and closes, counting, and one timed connect() with an RST close.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "test/support/kernel.h"

namespace tendril::test {

// Listens on addr:port inside `ns` (a thread of this process) and closes
// every connection it accepts.
class AcceptServer {
 public:
  AcceptServer(const Netns& ns, const char* addr, uint16_t port);
  ~AcceptServer();
  AcceptServer(const AcceptServer&) = delete;
  bool ok() const { return ready_ == 1; }
  long accepted() const { return accepted_; }

 private:
  std::thread thread_;
  std::atomic<int> ready_{0};
  std::atomic<bool> stop_{false};
  std::atomic<long> accepted_{0};
};

// connect() to addr:port from the calling thread's namespace, then close
// with RST (no TIME_WAIT pile-up); the connect's latency in microseconds, or
// a negative errno. connect() is bounded to 2 s.
double ConnectOnce(const char* addr, uint16_t port);

}  // namespace tendril::test
