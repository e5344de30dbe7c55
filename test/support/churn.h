// Connection churn for NAT and conntrack lifecycle tests and the churn
// benchmark: many short TCP connections (connect, one request, one answer,
// RST close) from explicit source addresses and ports, in parallel worker
// threads inside a namespace, against a RequestServer that answers each
// request. Every loop is bounded in count and time.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <string>
#include <thread>
#include <vector>

#include "test/support/kernel.h"

namespace tendril::test {

// Listens on addr:port inside `ns` (threads of this process); answers each
// connection's first read with one byte and closes it. IPv4 or IPv6.
class RequestServer {
 public:
  RequestServer(const Netns& ns, const std::string& addr, uint16_t port, int threads = 2);
  ~RequestServer();
  RequestServer(const RequestServer&) = delete;
  bool ok() const { return ready_ == threads_; }
  long answered() const { return answered_; }

 private:
  int threads_;
  int fd_ = -1;
  std::vector<std::thread> workers_;
  std::atomic<int> ready_{0};
  std::atomic<bool> stop_{false};
  std::atomic<long> answered_{0};
};

struct ChurnSpec {
  std::vector<std::string> sources;  // client addresses, taken in turn
  uint16_t first_port = 10000;       // connection i binds first_port + i / sources.size() (below
                                     // Linux's ephemeral ports, which other sockets of the test use)
  std::string dst;
  uint16_t dport = 0;
  int connections = 0;               // 0: run for `seconds` (ports wrap within the span)
  double seconds = 60;               // upper bound on the run either way
  int workers = 8;
  int span = 20000;                  // source ports per address: first_port .. first_port+span-1
  // Set: the run also ends once it is true (a test's disturbance is over),
  // `seconds` still bounding it.
  const std::atomic<bool>* until = nullptr;
};

struct ChurnResult {
  long ok = 0, failed = 0;
  double seconds = 0;
  std::map<std::string, long> errors;  // "connect: Connection timed out" -> count
  double Rate() const { return seconds > 0 ? ok / seconds : 0; }
  std::string Summary() const;
};

// Runs the churn from inside `ns`; returns when `connections` were tried or
// `seconds` passed.
ChurnResult RunChurn(const Netns& ns, const ChurnSpec& spec);

// One request over a connected socket: sends a byte, waits up to 2 s for
// one back. For long-lived connections that must keep working.
bool Ping(int fd);
// Opens a TCP connection from `src` (port 0: any) in the calling thread's
// namespace; -errno on failure.
int Dial(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport);

}  // namespace tendril::test
