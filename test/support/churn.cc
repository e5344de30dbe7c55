#include "test/support/churn.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace tendril::test {
namespace {

// addr:port as a socket address; false if addr is neither IPv4 nor IPv6.
bool ToSockaddr(const std::string& addr, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  auto* s4 = reinterpret_cast<sockaddr_in*>(ss);
  if (inet_pton(AF_INET, addr.c_str(), &s4->sin_addr) == 1) {
    s4->sin_family = AF_INET;
    s4->sin_port = htons(port);
    *len = sizeof(*s4);
    return true;
  }
  auto* s6 = reinterpret_cast<sockaddr_in6*>(ss);
  if (inet_pton(AF_INET6, addr.c_str(), &s6->sin6_addr) == 1) {
    s6->sin6_family = AF_INET6;
    s6->sin6_port = htons(port);
    *len = sizeof(*s6);
    return true;
  }
  return false;
}

void Timeouts(int fd, int seconds) {
  timeval tv{seconds, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
}

// Closes with RST: no TIME_WAIT on the client, as a load test wants.
void CloseReset(int fd) {
  linger lg{1, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
  ::close(fd);
}

}  // namespace

RequestServer::RequestServer(const Netns& ns, const std::string& addr, uint16_t port, int threads)
    : threads_(threads) {
  for (int t = 0; t < threads; ++t) {
    workers_.emplace_back([this, &ns, addr, port] {
      NetnsGuard in(ns);
      sockaddr_storage ss;
      socklen_t len;
      int ls = -1;
      if (ToSockaddr(addr, port, &ss, &len)) ls = ::socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
      int one = 1;
      ::setsockopt(ls, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
      ::setsockopt(ls, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
      int ep = ::epoll_create1(EPOLL_CLOEXEC);
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.fd = ls;
      bool ok = ls >= 0 && ::bind(ls, reinterpret_cast<sockaddr*>(&ss), len) == 0 && ::listen(ls, 4096) == 0 &&
                ::epoll_ctl(ep, EPOLL_CTL_ADD, ls, &ev) == 0;
      if (ok) ready_++;
      else ready_ = -1000;
      epoll_event evs[64];
      while (ok && !stop_) {
        int n = ::epoll_wait(ep, evs, 64, 100);
        for (int i = 0; i < n; ++i) {
          int fd = evs[i].data.fd;
          if (fd == ls) {
            for (int k = 0; k < 64; ++k) {
              int c = ::accept4(ls, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
              if (c < 0) break;
              epoll_event cev{};
              cev.events = EPOLLIN | EPOLLRDHUP;
              cev.data.fd = c;
              if (::epoll_ctl(ep, EPOLL_CTL_ADD, c, &cev) != 0) ::close(c);
            }
            continue;
          }
          char buf[64];
          ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
          if (r > 0 && ::send(fd, "k", 1, MSG_NOSIGNAL) == 1) {
            answered_++;
            continue;
          }
          if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
          // EOF or reset: the connection is done. Unregister before closing:
          // while a child being spawned still holds the file, close() alone
          // leaves the registration, and its next event would name an fd
          // number another thread of this process has since been given.
          ::epoll_ctl(ep, EPOLL_CTL_DEL, fd, nullptr);
          ::close(fd);
        }
      }
      ::close(ep);
      if (ls >= 0) ::close(ls);
    });
  }
  for (int i = 0; i < 400 && ready_ >= 0 && ready_ < threads_; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
}

RequestServer::~RequestServer() {
  stop_ = true;
  for (auto& t : workers_) t.join();
}

int Dial(const std::string& src, uint16_t sport, const std::string& dst, uint16_t dport) {
  sockaddr_storage local, remote;
  socklen_t llen, rlen;
  if (!ToSockaddr(dst, dport, &remote, &rlen)) return -EINVAL;
  int fd = ::socket(remote.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  Timeouts(fd, 2);
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  if (!src.empty()) {
    if (!ToSockaddr(src, sport, &local, &llen) || ::bind(fd, reinterpret_cast<sockaddr*>(&local), llen) != 0) {
      int e = errno ? errno : EINVAL;
      ::close(fd);
      return -e;
    }
  }
  if (::connect(fd, reinterpret_cast<sockaddr*>(&remote), rlen) != 0) {
    int e = errno;
    ::close(fd);
    return -e;
  }
  return fd;
}

bool Ping(int fd) {
  char c;
  return ::send(fd, "p", 1, MSG_NOSIGNAL) == 1 && ::recv(fd, &c, 1, 0) == 1;
}

std::string ChurnResult::Summary() const {
  std::vector<std::string> e;
  for (const auto& [what, n] : errors) e.push_back(absl::StrCat(what, " x", n));
  return absl::StrCat(ok, " ok, ", failed, " failed in ", seconds, " s (", static_cast<long>(Rate()), "/s)",
                      e.empty() ? "" : ": ", absl::StrJoin(e, "; "));
}

ChurnResult RunChurn(const Netns& ns, const ChurnSpec& spec) {
  ChurnResult res;
  std::mutex mu;
  std::atomic<long> next{0};
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 std::chrono::duration<double>(spec.seconds));
  const long nsrc = static_cast<long>(spec.sources.size());
  auto worker = [&] {
    NetnsGuard in(ns);
    long ok = 0, failed = 0;
    std::map<std::string, long> errors;
    for (;;) {
      long i = next++;
      if ((spec.connections > 0 && i >= spec.connections) || std::chrono::steady_clock::now() >= deadline ||
          (spec.until && spec.until->load()))
        break;
      const std::string& src = spec.sources[i % nsrc];
      auto sport = static_cast<uint16_t>(spec.first_port + (i / nsrc) % spec.span);
      int fd = Dial(src, sport, spec.dst, spec.dport);
      const char* stage = "connect";
      int err = fd < 0 ? -fd : 0;
      if (fd >= 0) {
        stage = "request";
        if (Ping(fd)) {
          ok++;
          CloseReset(fd);
          continue;
        }
        err = errno ? errno : EPROTO;
        CloseReset(fd);
      }
      failed++;
      errors[absl::StrCat(stage, ": ", strerror(err))]++;
    }
    std::lock_guard<std::mutex> l(mu);
    res.ok += ok;
    res.failed += failed;
    for (const auto& [k, n] : errors) res.errors[k] += n;
  };
  std::vector<std::thread> ts;
  for (int w = 0; w < spec.workers; ++w) ts.emplace_back(worker);
  for (auto& t : ts) t.join();
  res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return res;
}

}  // namespace tendril::test
