#include "agent/health.h"

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

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

void HealthServer::ServeOne(size_t local_backends) {
  UniqueFd c(::accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
  if (!c.valid()) return;
  // Read what the client sent (bounded), then answer whatever it was.
  char buf[1024];
  pollfd p{c.get(), POLLIN, 0};
  if (::poll(&p, 1, 200) > 0) (void)::recv(c.get(), buf, sizeof(buf), MSG_DONTWAIT);
  std::string body = Body(service_, local_backends);
  std::string resp = absl::StrCat("HTTP/1.1 ", local_backends ? "200 OK" : "503 Service Unavailable",
                                  "\r\nContent-Type: application/json\r\nX-Content-Type-Options: nosniff\r\n"
                                  "Content-Length: ", body.size(), "\r\nConnection: close\r\n\r\n", body);
  (void)::send(c.get(), resp.data(), resp.size(), MSG_NOSIGNAL);
}

}  // namespace tendril
