#include "k8s/client.h"

#include <curl/curl.h>
#include <sys/stat.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status.h"

namespace tendril::k8s {
namespace {

struct CurlDeleter {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
struct SlistDeleter {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};
using CurlPtr = std::unique_ptr<CURL, CurlDeleter>;
using SlistPtr = std::unique_ptr<curl_slist, SlistDeleter>;

void SetBlob(CURL* c, CURLoption opt, const std::string& pem) {
  curl_blob b{const_cast<char*>(pem.data()), pem.size(), CURL_BLOB_COPY};
  curl_easy_setopt(c, opt, &b);
}

// Where a streamed body's bytes go: split into lines for the caller.
struct StreamSink {
  CURL* h;
  const std::function<bool(std::string_view)>* on_line;
  const std::function<bool()>* stop;
  std::string partial;
  bool stopped = false;
  long code = 0;       // the HTTP status, read with the first bytes
  std::string other;   // the body of an answer other than 200 (a Status)
};

size_t WriteAll(char* data, size_t size, size_t n, void* user) {
  static_cast<std::string*>(user)->append(data, size * n);
  return size * n;
}

size_t WriteLines(char* data, size_t size, size_t n, void* user) {
  auto* s = static_cast<StreamSink*>(user);
  if (s->code == 0) curl_easy_getinfo(s->h, CURLINFO_RESPONSE_CODE, &s->code);
  if (s->code != 200) {
    if (s->other.size() < (1 << 20)) s->other.append(data, size * n);
    return size * n;
  }
  s->partial.append(data, size * n);
  size_t start = 0, nl;
  while ((nl = s->partial.find('\n', start)) != std::string::npos) {
    std::string_view line(s->partial.data() + start, nl - start);
    start = nl + 1;
    if (!line.empty() && !(*s->on_line)(line)) {
      s->stopped = true;
      return 0;  // aborts the transfer
    }
  }
  s->partial.erase(0, start);
  return size * n;
}

int Progress(void* user, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  auto* s = static_cast<StreamSink*>(user);
  if (s->stop && (*s->stop)()) {
    s->stopped = true;
    return 1;
  }
  return 0;
}

}  // namespace

absl::StatusOr<std::unique_ptr<ApiClient>> ApiClient::Create(ClusterConfig config) {
  static std::once_flag once;
  static CURLcode init = CURLE_OK;
  std::call_once(once, [] { init = curl_global_init(CURL_GLOBAL_DEFAULT); });
  if (init != CURLE_OK) return absl::InternalError(absl::StrCat("libcurl: ", curl_easy_strerror(init)));
  std::unique_ptr<ApiClient> c(new ApiClient(std::move(config)));
  if (!c->config_.token_file.empty()) TND_RETURN_IF_ERROR(c->Token().status());
  return c;
}

absl::StatusOr<std::string> ApiClient::Token() const {
  if (config_.token_file.empty()) return config_.token;
  std::lock_guard<std::mutex> l(token_mu_);
  struct stat st {};
  if (::stat(config_.token_file.c_str(), &st) != 0)
    return ErrnoError(errno, absl::StrCat("bearer token file ", config_.token_file));
  int64_t mtime = static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
  if (mtime != token_mtime_ns_) {
    TND_ASSIGN_OR_RETURN(std::string t, ReadFile(config_.token_file));
    file_token_ = std::string(absl::StripAsciiWhitespace(t));
    token_mtime_ns_ = mtime;
  }
  return file_token_;
}

namespace {

// A handle set up for GET `url` with the configuration's TLS and auth.
absl::StatusOr<CurlPtr> Prepare(const ClusterConfig& cfg, const std::string& url, const std::string& token,
                                SlistPtr& headers) {
  CurlPtr c(curl_easy_init());
  if (!c) return absl::InternalError("libcurl: curl_easy_init failed");
  CURL* h = c.get();
  curl_easy_setopt(h, CURLOPT_URL, url.c_str());
  curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
  curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPIDLE, 15L);
  curl_easy_setopt(h, CURLOPT_TCP_KEEPINTVL, 5L);
  curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
  if (!cfg.ca_pem.empty()) SetBlob(h, CURLOPT_CAINFO_BLOB, cfg.ca_pem);
  if (!cfg.cert_pem.empty()) {
    curl_easy_setopt(h, CURLOPT_SSLCERTTYPE, "PEM");
    SetBlob(h, CURLOPT_SSLCERT_BLOB, cfg.cert_pem);
    curl_easy_setopt(h, CURLOPT_SSLKEYTYPE, "PEM");
    SetBlob(h, CURLOPT_SSLKEY_BLOB, cfg.key_pem);
  }
  curl_slist* l = curl_slist_append(nullptr, "Accept: application/json");
  if (!token.empty()) l = curl_slist_append(l, absl::StrCat("Authorization: Bearer ", token).c_str());
  l = curl_slist_append(l, "User-Agent: tendril-agent");
  headers.reset(l);
  curl_easy_setopt(h, CURLOPT_HTTPHEADER, l);
  return c;
}

absl::Status CurlError(CURLcode rc, const char* errbuf, const std::string& url) {
  std::string detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);
  absl::StatusCode code = rc == CURLE_OPERATION_TIMEDOUT ? absl::StatusCode::kDeadlineExceeded
                          : (rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE ||
                             rc == CURLE_SSL_CERTPROBLEM)
                              ? absl::StatusCode::kFailedPrecondition
                              : absl::StatusCode::kUnavailable;
  return absl::Status(code, absl::StrCat("GET ", url, ": ", detail));
}

}  // namespace

absl::StatusOr<Response> ApiClient::Get(const std::string& path, absl::Duration timeout) const {
  TND_ASSIGN_OR_RETURN(std::string token, Token());
  const std::string url = config_.server + path;
  SlistPtr headers;
  TND_ASSIGN_OR_RETURN(CurlPtr c, Prepare(config_, url, token, headers));
  Response r;
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(c.get(), CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c.get(), CURLOPT_WRITEFUNCTION, WriteAll);
  curl_easy_setopt(c.get(), CURLOPT_WRITEDATA, &r.body);
  curl_easy_setopt(c.get(), CURLOPT_TIMEOUT_MS, static_cast<long>(absl::ToInt64Milliseconds(timeout)));
  curl_easy_setopt(c.get(), CURLOPT_ACCEPT_ENCODING, "");  // gzip when the server offers it
  CURLcode rc = curl_easy_perform(c.get());
  if (rc != CURLE_OK) return CurlError(rc, errbuf, url);
  curl_easy_getinfo(c.get(), CURLINFO_RESPONSE_CODE, &r.code);
  return r;
}

absl::StatusOr<Response> ApiClient::Stream(const std::string& path, const std::function<bool(std::string_view)>& on_line,
                                       const std::function<bool()>& stop, absl::Duration idle) const {
  TND_ASSIGN_OR_RETURN(std::string token, Token());
  const std::string url = config_.server + path;
  SlistPtr headers;
  TND_ASSIGN_OR_RETURN(CurlPtr c, Prepare(config_, url, token, headers));
  CURL* h = c.get();
  StreamSink sink{h, &on_line, &stop};
  char errbuf[CURL_ERROR_SIZE] = {0};
  curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, WriteLines);
  curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, Progress);
  curl_easy_setopt(h, CURLOPT_XFERINFODATA, &sink);
  // Below one byte per `idle` seconds the stream is dead.
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, static_cast<long>(std::max<int64_t>(1, absl::ToInt64Seconds(idle))));
  CURLcode rc = curl_easy_perform(h);
  Response r;
  curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r.code);
  r.body = std::move(sink.other);
  if (sink.stopped) return r;
  if (rc != CURLE_OK) return CurlError(rc, errbuf, url);
  if (r.code == 200 && !sink.partial.empty()) on_line(sink.partial);
  return r;
}

}  // namespace tendril::k8s
