// HTTPS to the Kubernetes API server (libcurl with OpenSSL: the server's
// certificate verified against the cluster CA, client certificates and keys
// from memory, streamed responses for watches, TCP keepalive). A bearer
// token read from a file is re-read when the file changes.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "k8s/kubeconfig.h"

namespace tendril::k8s {

struct Response {
  long code = 0;
  std::string body;
};

class ApiClient {
 public:
  static absl::StatusOr<std::unique_ptr<ApiClient>> Create(ClusterConfig config);

  // GET `path` ("/api/v1/services?limit=500"): the status and the whole body.
  // An error only when no HTTP answer came (connect, TLS, timeout).
  absl::StatusOr<Response> Get(const std::string& path, absl::Duration timeout) const;

  // GET `path` and hand each line of a 200 answer's body to on_line as it
  // arrives (a watch). Returns when the server ends the stream, when on_line
  // returns false or when `stop` turns true (checked about once a second):
  // the HTTP status, and the body of any other answer (a Status). An error
  // when the connection breaks. `idle` bounds the time without a byte
  // (bookmarks keep a healthy watch talking).
  absl::StatusOr<Response> Stream(const std::string& path, const std::function<bool(std::string_view)>& on_line,
                              const std::function<bool()>& stop, absl::Duration idle) const;

  const ClusterConfig& config() const { return config_; }

 private:
  explicit ApiClient(ClusterConfig c) : config_(std::move(c)) {}
  // The token to send: config_.token, or the token file's content, re-read
  // when its modification time changes. Empty: none.
  absl::StatusOr<std::string> Token() const;

  ClusterConfig config_;
  mutable std::mutex token_mu_;
  mutable std::string file_token_;
  mutable int64_t token_mtime_ns_ = -1;
};

}  // namespace tendril::k8s
