#include "agent/http_responder.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "network/addr.h"

namespace tendril {
namespace {

const char* Reason(int code) {
  switch (code) {
    case 200: return "OK";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 503: return "Service Unavailable";
    default: return "Error";
  }
}

absl::StatusOr<UniqueFd> Bound(const sockaddr* a, socklen_t len, int family, const std::string& what) {
  int one = 1;
  UniqueFd fd(::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (!fd.valid()) return ErrnoError(errno, absl::StrCat("socket for ", what));
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (family == AF_INET6) {
    int zero = 0;
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
  }
  if (::bind(fd.get(), a, len) != 0) return ErrnoError(errno, absl::StrCat("bind ", what));
  if (::listen(fd.get(), 16) != 0) return ErrnoError(errno, absl::StrCat("listen on ", what));
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<HttpResponder>> HttpResponder::Listen(const std::string& address,
                                                                     const std::string& what) {
  auto hp = ParseHostPort(address);
  if (!hp.ok())
    return absl::InvalidArgumentError(absl::StrCat(what, ": '", address, "' is not ADDRESS:PORT (", hp.status().message(), ")"));
  const auto& [ip, port] = *hp;
  const std::string full = absl::StrCat(what, " ", address);
  if (ip.family == Family::kV4) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    std::memcpy(&a.sin_addr, ip.bytes.data(), 4);
    TND_ASSIGN_OR_RETURN(UniqueFd fd, Bound(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_INET, full));
    return std::unique_ptr<HttpResponder>(new HttpResponder(std::move(fd)));
  }
  sockaddr_in6 a{};
  a.sin6_family = AF_INET6;
  a.sin6_port = htons(port);
  std::memcpy(&a.sin6_addr, ip.bytes.data(), 16);
  TND_ASSIGN_OR_RETURN(UniqueFd fd, Bound(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_INET6, full));
  return std::unique_ptr<HttpResponder>(new HttpResponder(std::move(fd)));
}

absl::StatusOr<std::unique_ptr<HttpResponder>> HttpResponder::ListenAny(uint16_t port, const std::string& what) {
  UniqueFd probe(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  absl::StatusOr<UniqueFd> fd;
  if (probe.valid()) {
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    fd = Bound(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_INET6, what);
  } else {  // IPv6 is off
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    fd = Bound(reinterpret_cast<sockaddr*>(&a), sizeof(a), AF_INET, what);
  }
  if (!fd.ok()) return fd.status();
  return std::unique_ptr<HttpResponder>(new HttpResponder(std::move(*fd)));
}

std::vector<int> HttpResponder::Fds() const {
  std::vector<int> fds = {fd_.get()};
  for (const Pending& p : pending_) fds.push_back(p.fd.get());
  return fds;
}

bool HttpResponder::Owns(int fd) const {
  if (fd == fd_.get()) return true;
  for (const Pending& p : pending_)
    if (p.fd.get() == fd) return true;
  return false;
}

void HttpResponder::Answer(int fd, const Handler& h) const {
  // Read what the client sent (bounded, without waiting); the path of its
  // request line, if one came.
  char buf[2048];
  ssize_t n = ::recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
  std::string path;
  bool get = true;
  if (n > 0) {
    std::string_view req(buf, static_cast<size_t>(n));
    size_t sp1 = req.find(' '), sp2 = sp1 == std::string_view::npos ? sp1 : req.find(' ', sp1 + 1);
    if (sp2 != std::string_view::npos) {
      get = req.substr(0, sp1) == "GET" || req.substr(0, sp1) == "HEAD";
      path = std::string(req.substr(sp1 + 1, sp2 - sp1 - 1));
      path = path.substr(0, path.find('?'));
    }
  }
  HttpReply r = get ? h(path) : HttpReply{405, "text/plain", "GET only\n"};
  std::string resp = absl::StrCat("HTTP/1.1 ", r.code, " ", Reason(r.code), "\r\nContent-Type: ", r.content_type,
                                  "\r\nX-Content-Type-Options: nosniff\r\nContent-Length: ", r.body.size(),
                                  "\r\nConnection: close\r\n\r\n", r.body);
  // Small answers fit the socket buffer; a large one (metrics) is sent
  // with a bounded wait rather than cut.
  size_t off = 0;
  for (int tries = 0; off < resp.size() && tries < 200; ++tries) {
    ssize_t w = ::send(fd, resp.data() + off, resp.size() - off, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w > 0) {
      off += static_cast<size_t>(w);
      continue;
    }
    if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) break;
    ::usleep(1000);
  }
}

void HttpResponder::OnReadable(int fd, const Handler& h) {
  if (fd != fd_.get()) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->fd.get() != fd) continue;
      Answer(fd, h);
      pending_.erase(it);
      return;
    }
    return;
  }
  for (int i = 0; i < 16; ++i) {
    UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c.valid()) return;
    if (pending_.size() >= kMaxPending) {
      Answer(pending_.front().fd.get(), h);
      pending_.pop_front();
    }
    pending_.push_back({std::move(c), std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestWaitMs)});
  }
}

void HttpResponder::OnTimer(const Handler& h) {
  auto now = std::chrono::steady_clock::now();
  while (!pending_.empty() && pending_.front().deadline <= now) {
    Answer(pending_.front().fd.get(), h);
    pending_.pop_front();
  }
}

int HttpResponder::NextTimeoutMs() const {
  if (pending_.empty()) return -1;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(pending_.front().deadline -
                                                                  std::chrono::steady_clock::now()).count();
  return static_cast<int>(std::max<int64_t>(ms + 1, 0));
}

}  // namespace tendril
