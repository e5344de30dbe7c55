#include "test/support/tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>

namespace tendril::test {

AcceptServer::AcceptServer(const Netns& ns, const char* addr, uint16_t port) {
  thread_ = std::thread([this, &ns, addr, port] {
    NetnsGuard in(ns);
    int ls = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    inet_pton(AF_INET, addr, &sa.sin_addr);
    bool ok = ::bind(ls, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0 && ::listen(ls, 4096) == 0;
    timeval tv{0, 100000};
    ::setsockopt(ls, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    ready_ = ok ? 1 : -1;
    while (ok && !stop_) {
      int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC);
      if (c >= 0) {
        accepted_++;
        ::close(c);
      }
    }
    ::close(ls);
  });
  while (ready_ == 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

AcceptServer::~AcceptServer() {
  stop_ = true;
  thread_.join();
}

double ConnectOnce(const char* addr, uint16_t port) {
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(port);
  inet_pton(AF_INET, addr, &sa.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  timeval tv{2, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  auto c0 = std::chrono::steady_clock::now();
  int rc = ::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa));
  auto c1 = std::chrono::steady_clock::now();
  int err = errno;
  ::close(fd);
  if (rc != 0) return -static_cast<double>(err);
  return std::chrono::duration<double, std::micro>(c1 - c0).count();
}

}  // namespace tendril::test
