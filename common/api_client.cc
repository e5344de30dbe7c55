#include "common/api_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/json_fields.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<std::string> ReadLine(int fd, int timeout_ms) {
  std::string line;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                    deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return absl::DeadlineExceededError("timed out reading from the API socket");
    pollfd p{fd, POLLIN, 0};
    int r = ::poll(&p, 1, static_cast<int>(left));
    if (r < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "poll API socket");
    }
    if (r == 0) continue;
    char buf[4096];
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "read API socket");
    }
    if (n == 0) {
      if (line.empty()) return absl::UnavailableError("API connection closed");
      return line;
    }
    const char* nl = static_cast<const char*>(std::memchr(buf, '\n', static_cast<size_t>(n)));
    size_t take = nl ? static_cast<size_t>(nl - buf) + 1 : static_cast<size_t>(n);
    n = ::recv(fd, buf, take, 0);
    if (n <= 0) return ErrnoError(errno, "read API socket");
    line.append(buf, static_cast<size_t>(n));
    if (!line.empty() && line.back() == '\n') {
      line.pop_back();
      return line;
    }
    if (line.size() > kMaxApiMessage) return absl::ResourceExhaustedError("API message too large");
  }
}

absl::Status WriteAll(int fd, absl::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::send(fd, data.data() + off, data.size() - off, MSG_NOSIGNAL);
    if (n < 0) {
      if (errno == EINTR) continue;
      return ErrnoError(errno, "write API socket");
    }
    off += static_cast<size_t>(n);
  }
  return absl::OkStatus();
}

std::string StatusCodeName(absl::StatusCode c) { return absl::StatusCodeToString(c); }

absl::StatusCode StatusCodeFromName(const std::string& s) {
  for (int i = 0; i <= 16; ++i) {
    auto c = static_cast<absl::StatusCode>(i);
    if (absl::StatusCodeToString(c) == s) return c;
  }
  return absl::StatusCode::kUnknown;
}

absl::StatusOr<UniqueFd> ConnectApi(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.size() >= sizeof(addr.sun_path))
    return absl::InvalidArgumentError(absl::StrCat("API socket path too long: ", socket_path));
  std::memcpy(addr.sun_path, socket_path.c_str(), socket_path.size());
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "create socket");
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0)
    return absl::UnavailableError(absl::StrCat("agent not reachable at ", socket_path, ": ",
                                               std::strerror(errno), " (is tendril-agent running?)"));
  return fd;
}

absl::StatusOr<nlohmann::json> CallAgent(const std::string& socket_path, const std::string& op,
                                         const nlohmann::json& args, int timeout_ms) {
  return CallAgentRaw(socket_path, op, jsonf::Dump(args), timeout_ms);
}

absl::StatusOr<nlohmann::json> CallAgentRaw(const std::string& socket_path, const std::string& op,
                                            std::string args_json, int timeout_ms) {
  return CallAgentPieces(socket_path, op, {absl::Span<char>(args_json.data(), args_json.size())}, timeout_ms);
}

absl::StatusOr<nlohmann::json> CallAgentPieces(const std::string& socket_path, const std::string& op,
                                               const std::vector<absl::Span<char>>& args_pieces, int timeout_ms) {
  size_t total = 0;
  for (const auto& p : args_pieces) total += p.size();
  if (total > kMaxApiMessage - 64)
    return absl::InvalidArgumentError(
        absl::StrCat("request of ", total, " bytes; the API takes at most ", kMaxApiMessage));
  // JSON allows line breaks only between tokens, where a space does as well:
  // the request stays one line.
  for (const auto& p : args_pieces)
    for (char brk : {'\n', '\r'})
      for (char* ch = p.data(); (ch = static_cast<char*>(std::memchr(ch, brk, p.data() + p.size() - ch)));) *ch++ = ' ';
  TND_ASSIGN_OR_RETURN(UniqueFd fd, ConnectApi(socket_path));
  const std::string head = absl::StrCat("{\"op\":", jsonf::Dump(nlohmann::json(op)), ",\"args\":");
  const std::string tail = "}\n";
  std::vector<absl::string_view> parts = {head};
  for (const auto& p : args_pieces) parts.emplace_back(p.data(), p.size());
  parts.emplace_back(tail);
  for (absl::string_view part : parts) TND_RETURN_IF_ERROR(WriteAll(fd.get(), part));
  TND_ASSIGN_OR_RETURN(std::string line, ReadLine(fd.get(), timeout_ms));
  absl::StatusOr<nlohmann::json> parsed = jsonf::Parse(line);
  if (!parsed.ok()) return absl::DataLossError(absl::StrCat("agent's answer: ", parsed.status().message()));
  nlohmann::json resp = std::move(*parsed);
  if (resp.value("ok", false)) return resp.value("result", nlohmann::json());
  return absl::Status(StatusCodeFromName(resp.value("code", std::string("UNKNOWN"))),
                      resp.value("error", std::string("agent returned an error")));
}

}  // namespace tendril
