#include "agent/health.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<std::unique_ptr<HealthServer>> HealthServer::Listen(uint16_t port, std::string service) {
  int one = 1, zero = 0;
  UniqueFd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (fd.valid()) {
    ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in6 a{};
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_addr = in6addr_any;
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      return ErrnoError(errno, absl::StrCat("bind health check port ", port, " of service ", service));
  } else {
    fd.Reset(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    if (!fd.valid()) return ErrnoError(errno, "health check socket");
    ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0)
      return ErrnoError(errno, absl::StrCat("bind health check port ", port, " of service ", service));
  }
  if (::listen(fd.get(), 16) != 0)
    return ErrnoError(errno, absl::StrCat("listen on health check port ", port));
  return std::unique_ptr<HealthServer>(new HealthServer(std::move(fd), port, std::move(service)));
}

std::string HealthServer::Body(const std::string& service, size_t local_backends) {
  return nlohmann::json{{"service", service}, {"localEndpoints", local_backends}}.dump() + "\n";
}

std::vector<int> HealthServer::Fds() const {
  std::vector<int> fds = {fd_.get()};
  for (const Pending& p : pending_) fds.push_back(p.fd.get());
  return fds;
}

bool HealthServer::Owns(int fd) const {
  if (fd == fd_.get()) return true;
  for (const Pending& p : pending_)
    if (p.fd.get() == fd) return true;
  return false;
}

void HealthServer::Answer(int fd, size_t local_backends) const {
  // Read what the client sent (bounded, without waiting), then answer
  // whatever it was.
  char buf[1024];
  (void)::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
  std::string body = Body(service_, local_backends);
  std::string resp = absl::StrCat("HTTP/1.1 ", local_backends ? "200 OK" : "503 Service Unavailable",
                                  "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
                                  "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  (void)::send(fd, resp.data(), resp.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
}

void HealthServer::OnReadable(int fd, size_t local_backends) {
  if (fd != fd_.get()) {
    for (auto it = pending_.begin(); it != pending_.end(); ++it) {
      if (it->fd.get() != fd) continue;
      Answer(fd, local_backends);
      pending_.erase(it);
      return;
    }
    return;
  }
  for (int i = 0; i < 16; ++i) {
    UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
    if (!c.valid()) return;
    if (pending_.size() >= kMaxPending) {
      Answer(pending_.front().fd.get(), local_backends);
      pending_.pop_front();
    }
    pending_.push_back({std::move(c), std::chrono::steady_clock::now() + std::chrono::milliseconds(kRequestWaitMs)});
  }
}

void HealthServer::OnTimer(size_t local_backends) {
  auto now = std::chrono::steady_clock::now();
  while (!pending_.empty() && pending_.front().deadline <= now) {
    Answer(pending_.front().fd.get(), local_backends);
    pending_.pop_front();
  }
}

int HealthServer::NextTimeoutMs() const {
  if (pending_.empty()) return -1;
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(pending_.front().deadline -
                                                                  std::chrono::steady_clock::now()).count();
  return static_cast<int>(std::max<int64_t>(ms + 1, 0));
}

}  // namespace tendril
