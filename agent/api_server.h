// Serves the local API (see common/api_client.h) on a root-only Unix socket.
#pragma once

#include <functional>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace tendril {

class ApiServer {
 public:
  using Handler = std::function<absl::StatusOr<nlohmann::json>(const nlohmann::json& args)>;

  // Binds `path` (mode 0600, parent created 0700). A socket file left by a dead
  // agent is replaced; one that a live agent answers on is an error.
  static absl::StatusOr<ApiServer> Listen(const std::string& path);

  ApiServer(ApiServer&&) noexcept = default;
  ~ApiServer();

  void Register(const std::string& op, Handler h) { handlers_[op] = std::move(h); }
  int fd() const { return fd_.get(); }
  // Accepts one connection and answers its request. Never throws; a client
  // that stalls is dropped after a timeout.
  void ServeOne();

  nlohmann::json Dispatch(const nlohmann::json& req);

 private:
  ApiServer(UniqueFd fd, std::string path) : fd_(std::move(fd)), path_(std::move(path)) {}
  UniqueFd fd_;
  std::string path_;
  std::map<std::string, Handler> handlers_;
};

}  // namespace tendril
