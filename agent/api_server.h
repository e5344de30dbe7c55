// Serves the local API (see common/api_client.h) on a root-only Unix socket,
// from the agent's poll loop, many clients at once: no client can hold up
// another, the health checks, link events or GC.
//
// Each connection carries one request line and gets one answer line. The
// limits (ApiLimits) are what a client may take: the size of a request, the
// time to send it and to read the answer, how many connections are open at
// once (in all and per client process). Connections are served in turn: one
// poll round reads at most kReadChunk bytes from each and answers each
// complete request once, so a client sending requests as fast as it can gets
// its turn and no more.
#pragma once

#include <poll.h>
#include <sys/types.h>

#include <chrono>
#include <functional>
#include <list>
#include <map>
#include <optional>
#include <string>
#include "absl/strings/string_view.h"
#include <vector>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "absl/status/statusor.h"
#include "common/api_client.h"
#include "common/fd.h"

namespace tendril {

struct ApiLimits {
  size_t max_request = kMaxApiMessage;  // bytes of one request line
  int request_timeout_ms = 5000;        // from accept to the whole request
  int answer_timeout_ms = 30000;        // for the client to read the answer
  size_t max_connections = 64;          // open at once, all clients
  size_t max_per_client = 16;           // open at once, one client process
  uid_t allowed_uid = 0;                // who may talk to the agent: root
};

class ApiServer {
 public:
  using Handler = std::function<absl::StatusOr<nlohmann::json>(const nlohmann::json& args)>;
  // A handler that reads its args from simdjson's tape (agent/json_tape.h):
  // for requests that may carry megabytes (service.apply).
  using TapeHandler = std::function<absl::StatusOr<nlohmann::json>(simdjson::dom::element args)>;
  static constexpr size_t kReadChunk = 1 << 20;

  // Binds `path` (mode 0600, parent created 0700). A socket file left by a dead
  // agent is replaced; one that a live agent answers on is an error.
  static absl::StatusOr<ApiServer> Listen(const std::string& path, ApiLimits limits = {});

  ApiServer(ApiServer&&) noexcept = default;
  ~ApiServer();

  void Register(const std::string& op, Handler h) { handlers_[op] = std::move(h); }
  void RegisterTape(const std::string& op, TapeHandler h) { tape_handlers_[op] = std::move(h); }

  // The descriptors to poll (the listener and every connection, each for
  // what it waits for), then what poll said about them, in the same order.
  std::vector<pollfd> PollFds() const;
  void OnPoll(const pollfd* fds, size_t n);
  // Milliseconds until the next connection deadline (-1: none).
  int NextTimeoutMs() const;
  // Closes connections past their deadline.
  void OnTimer();
  size_t connections() const { return conns_.size(); }

  // One request line -> its answer (valid UTF-8 JSON, no newline). Never
  // throws: anything the handlers throw is an INTERNAL answer.
  // `readable`: bytes from line.data() that may be read (parsed in place
  // when there is padding past the line).
  std::string Answer(absl::string_view line, size_t readable = 0);
  nlohmann::json Dispatch(const nlohmann::json& req);

 private:
  using Clock = std::chrono::steady_clock;
  struct Conn {
    UniqueFd fd;
    pid_t pid = 0;
    std::string in;   // the request so far: its first `used` bytes
    size_t used = 0;
    std::string out;  // the answer, once there is one
    size_t sent = 0;
    Clock::time_point deadline;
  };

  ApiServer(UniqueFd fd, std::string path, ApiLimits limits)
      : fd_(std::move(fd)), path_(std::move(path)), limits_(limits) {}
  void AcceptSome();
  // Makes room for a new connection from `pid`; false (with `why`) if there is none.
  bool MakeRoom(pid_t pid, std::string* why);
  // Reads, answers, writes: false once the connection is done with.
  bool Step(Conn& c, short revents);
  void SetAnswer(Conn& c, std::string answer);

  UniqueFd fd_;
  std::string path_;
  ApiLimits limits_;
  // A tape handler's answer, if `line` is a valid request for one.
  std::optional<nlohmann::json> AnswerFromTape(absl::string_view line, size_t readable);
  bool Send(Conn& c);
  // simdjson's buffers and a request buffer, kept between large requests
  // (parsing and reading into warm memory is tens of times faster than
  // into fresh pages on this kind of VM) and freed after
  // kParserIdle without one (those of small requests always stay).
  simdjson::dom::parser tape_parser_;
  std::string spare_in_;  // the last large request's buffer, for the next
  bool HoldsLargeBuffers() const { return tape_parser_.capacity() > kKeepParserBytes || !spare_in_.empty(); }
  Clock::time_point tape_used_;
  static constexpr size_t kKeepParserBytes = 1 << 20;
  static constexpr std::chrono::seconds kParserIdle{30};
  // A handler's result as the answer (errors quoted up to a limit).
  nlohmann::json Reply(const std::string& op, absl::StatusOr<nlohmann::json> r);

  std::map<std::string, Handler> handlers_;
  std::map<std::string, TapeHandler> tape_handlers_;
  std::list<Conn> conns_;  // oldest first
};

}  // namespace tendril
