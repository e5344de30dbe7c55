#include "agent/api_server.h"

#include <malloc.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "agent/json_tape.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/json_fields.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<ApiServer> ApiServer::Listen(const std::string& path, ApiLimits limits) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return absl::InvalidArgumentError(absl::StrCat("api-socket path too long: ", path));
  std::memcpy(addr.sun_path, path.c_str(), path.size());
  size_t slash = path.rfind('/');
  if (slash != std::string::npos && slash > 0) TND_RETURN_IF_ERROR(MakeDirs(path.substr(0, slash), 0700));

  struct stat st;
  if (::lstat(path.c_str(), &st) == 0) {
    if (!S_ISSOCK(st.st_mode))
      return absl::FailedPreconditionError(absl::StrCat("api-socket ", path, " exists and is not a socket"));
    UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (::connect(probe.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
      return absl::AlreadyExistsError(
          absl::StrCat("another agent is serving on ", path, "; give this one its own --api-socket"));
    ::unlink(path.c_str());
  }
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "create API socket");
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) return ErrnoError(err, absl::StrCat("bind API socket ", path));
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoError(errno, absl::StrCat("chmod ", path));
  if (::listen(fd.get(), 128) != 0) return ErrnoError(errno, absl::StrCat("listen on ", path));
  return ApiServer(std::move(fd), path, limits);
}

ApiServer::~ApiServer() {
  if (fd_.valid()) ::unlink(path_.c_str());
}

namespace {
constexpr size_t kMaxErrorQuote = 1024;

nlohmann::json ErrorAnswer(absl::StatusCode code, absl::string_view message) {
  return {{"ok", false}, {"code", StatusCodeName(code)}, {"error", std::string(message)}};
}

// Best effort, never blocking: for connections refused at accept.
void Refuse(int fd, absl::StatusCode code, absl::string_view why) {
  std::string line = jsonf::Dump(ErrorAnswer(code, why)) + "\n";
  (void)::send(fd, line.data(), line.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}
}  // namespace

nlohmann::json ApiServer::Dispatch(const nlohmann::json& req) {
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string())
    return ErrorAnswer(absl::StatusCode::kInvalidArgument, "request must be an object with a string \"op\"");
  std::string op = req["op"].get<std::string>();
  auto it = handlers_.find(op);
  if (it == handlers_.end())
    return ErrorAnswer(absl::StatusCode::kUnimplemented, absl::StrCat("unknown operation \"", op, "\""));
  static const nlohmann::json kNoArgs = nlohmann::json::object();
  auto a = req.find("args");
  const nlohmann::json& args = a == req.end() ? kNoArgs : *a;
  if (!args.is_object())
    return ErrorAnswer(absl::StatusCode::kInvalidArgument,
                       absl::StrCat("\"args\" of ", op, " must be an object, not ", jsonf::Describe(args)));
  absl::StatusOr<nlohmann::json> r;
  try {
    r = it->second(args);
  } catch (const nlohmann::json::exception& e) {
    r = absl::InvalidArgumentError(absl::StrCat("bad arguments for ", op, ": ", e.what()));
  }
  return Reply(op, std::move(r));
}

// The request is read from simdjson's tape when its op has a tape handler
// and it parses there with object args; anything else (including JSON that
// does not parse) goes the nlohmann way, which says what is wrong.
std::optional<nlohmann::json> ApiServer::AnswerFromTape(absl::string_view line, size_t readable) {
  if (tape_handlers_.empty()) return std::nullopt;
  // The parser's buffers stay for the next large request (a controller's
  // periodic full sync): parsing into warm memory is tens of times faster
  // than into fresh pages. OnTimer frees them after a quiet while.
  tape_used_ = Clock::now();
  auto req = jsonf::ParseTape(tape_parser_, line, readable);
  std::string_view op;
  if (!req.ok() || (*req)["op"].get(op) != simdjson::SUCCESS) return std::nullopt;
  auto it = tape_handlers_.find(std::string(op));
  simdjson::dom::element args;
  if (it == tape_handlers_.end() || (*req)["args"].get(args) != simdjson::SUCCESS || !args.is_object())
    return std::nullopt;
  return Reply(it->first, it->second(args));
}

nlohmann::json ApiServer::Reply(const std::string& op, absl::StatusOr<nlohmann::json> r) {
  if (!r.ok()) {
    // Errors quote what was wrong; a megabyte of it is not worth quoting.
    absl::string_view msg = r.status().message();
    std::string shown(msg.substr(0, kMaxErrorQuote));
    if (msg.size() > kMaxErrorQuote) absl::StrAppend(&shown, "... (", msg.size(), " bytes)");
    TND_LOG_INFO("api ", op, ": ", shown);
    return ErrorAnswer(r.status().code(), shown);
  }
  return {{"ok", true}, {"result", std::move(*r)}};
}

std::string ApiServer::Answer(absl::string_view line, size_t readable) {
  try {
    if (auto tape = AnswerFromTape(line, readable)) return jsonf::Dump(*tape);
    absl::StatusOr<nlohmann::json> req = jsonf::Parse(line);
    if (!req.ok())
      return jsonf::Dump(ErrorAnswer(absl::StatusCode::kInvalidArgument,
                                     absl::StrCat("request: ", req.status().message())));
    return jsonf::Dump(Dispatch(*req));
  } catch (const std::exception& e) {
    TND_LOG_ERROR("api: answering a request threw: ", e.what());
    return jsonf::Dump(ErrorAnswer(absl::StatusCode::kInternal, "the agent failed to answer this request"));
  }
}

std::vector<pollfd> ApiServer::PollFds() const {
  std::vector<pollfd> fds = {{fd_.get(), POLLIN, 0}};
  for (const Conn& c : conns_) fds.push_back({c.fd.get(), static_cast<short>(c.out.empty() ? POLLIN : POLLOUT), 0});
  return fds;
}

bool ApiServer::MakeRoom(pid_t pid, std::string* why) {
  size_t mine = std::count_if(conns_.begin(), conns_.end(), [&](const Conn& c) { return c.pid == pid; });
  if (mine >= limits_.max_per_client) {
    *why = absl::StrCat("too many API connections from this process (", mine, " open, at most ",
                        limits_.max_per_client, ")");
    return false;
  }
  if (conns_.size() < limits_.max_connections) return true;
  // Full: the oldest connection still sending its request goes (an idle
  // client cannot keep the others out by holding connections open).
  for (auto it = conns_.begin(); it != conns_.end(); ++it) {
    if (!it->out.empty()) continue;
    TND_LOG_INFO("api: ", limits_.max_connections, " connections open; closing the oldest idle one (pid ",
                 it->pid, ")");
    Refuse(it->fd.get(), absl::StatusCode::kResourceExhausted, "closed to make room for another client");
    conns_.erase(it);
    return true;
  }
  *why = absl::StrCat("the agent has ", conns_.size(), " API connections open (at most ", limits_.max_connections,
                      ")");
  return false;
}

void ApiServer::AcceptSome() {
  // A bounded number per round: the connections already open get their turn.
  for (int i = 0; i < 16; ++i) {
    UniqueFd fd(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!fd.valid()) return;
    ucred cred{};
    socklen_t len = sizeof(cred);
    if (::getsockopt(fd.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != limits_.allowed_uid) {
      Refuse(fd.get(), absl::StatusCode::kPermissionDenied, "the tendril API is root-only");
      continue;
    }
    std::string why;
    if (!MakeRoom(cred.pid, &why)) {
      Refuse(fd.get(), absl::StatusCode::kResourceExhausted, why);
      continue;
    }
    Conn& c = conns_.emplace_back();
    c.fd = std::move(fd);
    c.pid = cred.pid;
    c.deadline = Clock::now() + std::chrono::milliseconds(limits_.request_timeout_ms);
  }
}

void ApiServer::SetAnswer(Conn& c, std::string answer) {
  c.out = std::move(answer);
  c.out += '\n';
  c.sent = 0;
  c.deadline = Clock::now() + std::chrono::milliseconds(limits_.answer_timeout_ms);
}

bool ApiServer::Step(Conn& c, short revents) {
  if (c.out.empty()) {
    if (!(revents & (POLLIN | POLLHUP | POLLERR))) return true;
    // Reads start at 64 kB and grow with the request up to kReadChunk.
    size_t room = std::min({std::max<size_t>(64 << 10, c.used), kReadChunk,
                            limits_.max_request + 1 - std::min(c.used, limits_.max_request)});
    // The buffer grows by doubling and is filled in place: each byte is
    // zeroed once, not once per read.
    if (c.in.size() < c.used + room) {
      // A large request takes the buffer the last one left, if it is larger.
      if (c.used + room > kKeepParserBytes && spare_in_.size() > c.in.size()) {
        std::memcpy(spare_in_.data(), c.in.data(), c.used);
        c.in.swap(spare_in_);
        std::string().swap(spare_in_);
      }
      if (c.in.size() < c.used + room) c.in.resize(std::max(2 * c.in.size(), c.used + room));
    }
    const size_t old = c.used;
    ssize_t n = ::recv(c.fd.get(), c.in.data() + old, room, 0);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.used += static_cast<size_t>(n);
    const char* nl = static_cast<const char*>(std::memchr(c.in.data() + old, '\n', c.used - old));
    if (!nl) {
      if (c.used > limits_.max_request) {
        SetAnswer(c, jsonf::Dump(ErrorAnswer(absl::StatusCode::kResourceExhausted,
                                             absl::StrCat("request larger than ", limits_.max_request, " bytes"))));
      } else if (n == 0) {
        if (c.used == 0) return false;  // a probe: connected and went
        // The last line may lack its newline.
        SetAnswer(c, Answer(absl::string_view(c.in.data(), c.used), c.in.size()));
      } else {
        return true;
      }
    } else {
      SetAnswer(c, Answer(absl::string_view(c.in.data(), static_cast<size_t>(nl - c.in.data())), c.in.size()));
    }
    const bool large = c.used + c.out.size() > (1u << 20);
    bool more = Send(c);  // the answer first, then the clean-up
    // A large request, its parse and its effects are megabytes at thousands
    // of services, freed by now: give them back to the system instead of
    // keeping them as heap (the agent's RSS is what operators see).
    if (c.in.size() > kKeepParserBytes && c.in.size() > spare_in_.size()) {
      c.in.swap(spare_in_);  // for the next
      tape_used_ = Clock::now();
    }
    std::string().swap(c.in);
    c.used = 0;
    if (large) malloc_trim(0);
    return more;
  }
  return Send(c);
}

// Writes what the socket takes now; the rest when poll says it can take
// more. False once the whole answer is written (or the socket failed).
bool ApiServer::Send(Conn& c) {
  while (c.sent < c.out.size()) {
    ssize_t n = ::send(c.fd.get(), c.out.data() + c.sent, c.out.size() - c.sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) return errno == EAGAIN || errno == EINTR;
    c.sent += static_cast<size_t>(n);
  }
  return false;
}

void ApiServer::OnPoll(const pollfd* fds, size_t n) {
  // fds[0] is the listener, then the connections in the order PollFds gave.
  auto it = conns_.begin();
  for (size_t i = 1; i < n && it != conns_.end(); ++i) {
    if (it->fd.get() != fds[i].fd) break;  // the set changed since: next round
    it = Step(*it, fds[i].revents) ? std::next(it) : conns_.erase(it);
  }
  if (n > 0 && (fds[0].revents & POLLIN)) AcceptSome();
}

int ApiServer::NextTimeoutMs() const {
  const bool parser_held = HoldsLargeBuffers();
  if (conns_.empty() && !parser_held) return -1;
  Clock::time_point first = parser_held ? tape_used_ + kParserIdle : conns_.front().deadline;
  for (const Conn& c : conns_) first = std::min(first, c.deadline);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(first - Clock::now()).count();
  return static_cast<int>(std::clamp<int64_t>(ms + 1, 0, 60000));
}

void ApiServer::OnTimer() {
  Clock::time_point now = Clock::now();
  if (HoldsLargeBuffers() && now - tape_used_ > kParserIdle) {
    tape_parser_ = simdjson::dom::parser();
    std::string().swap(spare_in_);
    malloc_trim(0);
  }
  for (auto it = conns_.begin(); it != conns_.end();) {
    if (it->deadline > now) {
      ++it;
      continue;
    }
    if (it->out.empty())
      Refuse(it->fd.get(), absl::StatusCode::kDeadlineExceeded,
             absl::StrCat("no whole request within ", limits_.request_timeout_ms, " ms"));
    TND_LOG_INFO("api: closing a connection (pid ", it->pid, ") that ",
                 it->out.empty() ? "sent no whole request" : "did not read its answer", " in time");
    it = conns_.erase(it);
  }
}

}  // namespace tendril
