#include "agent/api_server.h"

#include <malloc.h>

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<ApiServer> ApiServer::Listen(const std::string& path) {
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
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, "create API socket");
  mode_t old = ::umask(0177);
  int rc = ::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
  int err = errno;
  ::umask(old);
  if (rc != 0) return ErrnoError(err, absl::StrCat("bind API socket ", path));
  if (::chmod(path.c_str(), 0600) != 0) return ErrnoError(errno, absl::StrCat("chmod ", path));
  if (::listen(fd.get(), 16) != 0) return ErrnoError(errno, absl::StrCat("listen on ", path));
  return ApiServer(std::move(fd), path);
}

ApiServer::~ApiServer() {
  if (fd_.valid()) ::unlink(path_.c_str());
}

nlohmann::json ApiServer::Dispatch(const nlohmann::json& req) {
  if (!req.is_object() || !req.contains("op") || !req["op"].is_string())
    return {{"ok", false}, {"code", StatusCodeName(absl::StatusCode::kInvalidArgument)},
            {"error", "request must be an object with a string \"op\""}};
  std::string op = req["op"].get<std::string>();
  auto it = handlers_.find(op);
  if (it == handlers_.end())
    return {{"ok", false}, {"code", StatusCodeName(absl::StatusCode::kUnimplemented)},
            {"error", absl::StrCat("unknown operation \"", op, "\"")}};
  nlohmann::json args = req.value("args", nlohmann::json::object());
  absl::StatusOr<nlohmann::json> r;
  try {
    r = it->second(args);
  } catch (const nlohmann::json::exception& e) {
    r = absl::InvalidArgumentError(absl::StrCat("bad arguments for ", op, ": ", e.what()));
  }
  if (!r.ok()) {
    TND_LOG_INFO("api ", op, ": ", r.status().message());
    return {{"ok", false}, {"code", StatusCodeName(r.status().code())},
            {"error", std::string(r.status().message())}};
  }
  return {{"ok", true}, {"result", *r}};
}

void ApiServer::ServeOne() {
  UniqueFd conn(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!conn.valid()) return;
  ucred cred{};
  socklen_t len = sizeof(cred);
  if (::getsockopt(conn.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0 && cred.uid != 0) {
    (void)WriteAll(conn.get(), nlohmann::json({{"ok", false}, {"code", "PERMISSION_DENIED"},
                                               {"error", "the tendril API is root-only"}}).dump() + "\n");
    return;
  }
  {
    auto line = ReadLine(conn.get(), 5000);
    if (!line.ok()) return;
    nlohmann::json resp;
    try {
      resp = Dispatch(nlohmann::json::parse(*line));
    } catch (const nlohmann::json::exception& e) {
      resp = {{"ok", false}, {"code", "INVALID_ARGUMENT"}, {"error", absl::StrCat("request is not JSON: ", e.what())}};
    }
    (void)WriteAll(conn.get(), resp.dump() + "\n");
  }
  // A request, its answer and the state file written for it are megabytes at
  // thousands of services, all freed by now: give that memory back to the
  // system instead of keeping it as heap (the agent's RSS is what operators
  // see).
  malloc_trim(0);
}

}  // namespace tendril
