// The API server against hostile and greedy clients: what a client sends is
// bytes, not trusted JSON; what it holds (connections, an unread answer)
// must not hold up anyone else. The server runs its poll loop on a thread,
// clients are this process and forked children, over a real Unix socket.
#include "agent/api_server.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/json_fields.h"

namespace tendril {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

int Connect(const std::string& path) {
  auto fd = ConnectApi(path);
  return fd.ok() ? fd->Release() : -1;
}

// The answer line on fd, or "" on timeout or EOF before one.
std::string ReadAnswer(int fd, int timeout_ms = 3000) {
  auto r = ReadLine(fd, timeout_ms);
  return r.ok() ? *r : "";
}

class ApiServerTest : public ::testing::Test {
 protected:
  void Start(ApiLimits limits = {}) {
    char tmpl[] = "/tmp/tndapiXXXXXX";
    dir_ = ::mkdtemp(tmpl);
    path_ = dir_ + "/api.sock";
    limits.allowed_uid = ::getuid();
    auto s = ApiServer::Listen(path_, limits);
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = std::make_unique<ApiServer>(std::move(*s));
    server_->Register("echo", [](const json& a) -> absl::StatusOr<json> { return a; });
    server_->Register("big", [](const json&) -> absl::StatusOr<json> { return std::string(16 << 20, 'x'); });
    server_->Register("throws", [](const json& a) -> absl::StatusOr<json> { return a.at("nothing").get<int>(); });
    thread_ = std::thread([this] {
      while (!stop_) {
        std::vector<pollfd> fds = server_->PollFds();
        int t = server_->NextTimeoutMs();
        ::poll(fds.data(), fds.size(), t < 0 || t > 20 ? 20 : t);
        server_->OnPoll(fds.data(), fds.size());
        server_->OnTimer();
        open_ = server_->connections();
      }
    });
  }
  void TearDown() override {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    server_.reset();
    if (!dir_.empty()) ::rmdir(dir_.c_str());
  }

  // One request, its answer parsed ("" on none).
  json Call(const std::string& line, int timeout_ms = 3000) {
    int fd = Connect(path_);
    if (fd < 0) return json();
    (void)WriteAll(fd, line + "\n");
    std::string a = ReadAnswer(fd, timeout_ms);
    ::close(fd);
    return json::parse(a, nullptr, false);
  }
  bool Echoes() { return Call(R"({"op": "echo", "args": {"x": 1}})").value("ok", false); }
  // Starts with `limits`, connects and sends `bytes`: the connection.
  int StartAndSend(ApiLimits limits, const std::string& bytes) {
    Start(limits);
    int fd = Connect(path_);
    EXPECT_EQ(WriteAll(fd, bytes), absl::OkStatus());
    return fd;
  }

  // Forks a client process running `body`; killed in the test's teardown.
  pid_t Child(const std::function<void()>& body) {
    pid_t pid = ::fork();
    if (pid == 0) {
      body();
      ::_exit(0);
    }
    children_.push_back(pid);
    return pid;
  }
  void KillChildren() {
    for (pid_t p : children_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    children_.clear();
  }

  std::string dir_, path_;
  std::unique_ptr<ApiServer> server_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<size_t> open_{0};
  std::vector<pid_t> children_;
};

TEST_F(ApiServerTest, OneByteThatIsNotUtf8GetsAnErrorAndTheServerGoesOn) {
  Start();
  json a = Call("\xff");
  EXPECT_EQ(a.value("ok", true), false) << a.dump();
  EXPECT_EQ(a.value("code", ""), "INVALID_ARGUMENT");
  EXPECT_EQ(a.value("error", ""), "request: not valid JSON: syntax error at byte 1");
  EXPECT_TRUE(Echoes());
}

TEST_F(ApiServerTest, DeepNestingGetsAnErrorAndTheServerGoesOn) {
  Start();
  json a = Call(absl::StrCat(R"({"op": "echo", "args": {"a": )", std::string(10000, '[')));
  EXPECT_EQ(a.value("error", ""), "request: JSON nests deeper than 64 levels") << a.dump();
  EXPECT_TRUE(Echoes());
}

TEST_F(ApiServerTest, ArgumentsThatAreNotAnObjectOrThatAHandlerTripsOnAreErrors) {
  Start();
  EXPECT_EQ(Call(R"({"op": "echo", "args": [1]})").value("error", ""), "\"args\" of echo must be an object, not a list");
  EXPECT_EQ(Call(R"({"op": "nope"})").value("code", ""), "UNIMPLEMENTED");
  json t = Call(R"({"op": "throws"})");
  EXPECT_EQ(t.value("code", ""), "INVALID_ARGUMENT") << t.dump();
  EXPECT_TRUE(Echoes());
}

TEST_F(ApiServerTest, RequestLargerThanTheLimitIsRefused) {
  ApiLimits l;
  l.max_request = 1 << 20;
  Start(l);
  int fd = Connect(path_);
  ASSERT_GE(fd, 0);
  std::string big = absl::StrCat(R"({"op": "echo", "args": {"s": ")", std::string(2 << 20, 'a'));
  size_t off = 0;
  // Send until the server answers (it stops reading past the limit).
  for (int i = 0; i < 2000 && off < big.size(); ++i) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0) break;
    ssize_t n = ::send(fd, big.data() + off, big.size() - off, MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n > 0) off += static_cast<size_t>(n);
    else std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  json a = json::parse(ReadAnswer(fd), nullptr, false);
  ::close(fd);
  EXPECT_EQ(a.value("code", ""), "RESOURCE_EXHAUSTED") << a.dump();
  EXPECT_EQ(a.value("error", ""), "request larger than 1048576 bytes");
  EXPECT_TRUE(Echoes());
}

TEST_F(ApiServerTest, ClientThatNeverFinishesItsRequestIsClosedAfterTheTimeout) {
  ApiLimits l;
  l.request_timeout_ms = 300;
  int fd = StartAndSend(l, "{\"op\": ");
  auto t0 = Clock::now();
  json a = json::parse(ReadAnswer(fd), nullptr, false);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  EXPECT_EQ(a.value("code", ""), "DEADLINE_EXCEEDED") << a.dump();
  EXPECT_GE(ms, 250);
  EXPECT_LT(ms, 2000);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0);  // closed
  ::close(fd);
}

TEST_F(ApiServerTest, IdleConnectionsFromManyClientsDoNotKeepOthersOut) {
  Start();
  // Six client processes hold 16 connections each, sending nothing: more
  // than the agent keeps open (64).
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  for (int k = 0; k < 6; ++k)
    Child([&] {
      std::vector<int> fds;
      for (int i = 0; i < 16; ++i) fds.push_back(Connect(path_));
      (void)!::write(ready[1], "x", 1);
      ::pause();
    });
  for (int k = 0; k < 6; ++k) {
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
  }
  for (int i = 0; i < 100 && open_ < 64; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(open_.load(), 64u);
  // Another client is answered at once, every time.
  for (int i = 0; i < 20; ++i) {
    auto t0 = Clock::now();
    EXPECT_TRUE(Echoes()) << "request " << i;
    EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(500));
  }
  KillChildren();
  ::close(ready[0]);
  ::close(ready[1]);
}

TEST_F(ApiServerTest, OneProcessGetsAtMostItsShareOfConnections) {
  Start();
  std::vector<int> fds;
  for (int i = 0; i < 16; ++i) fds.push_back(Connect(path_));
  for (int i = 0; i < 100 && open_ < 16; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  int extra = Connect(path_);
  json a = json::parse(ReadAnswer(extra), nullptr, false);
  EXPECT_EQ(a.value("code", ""), "RESOURCE_EXHAUSTED") << a.dump();
  EXPECT_NE(a.value("error", "").find("too many API connections from this process (16 open, at most 16)"),
            std::string::npos);
  ::close(extra);
  for (int fd : fds) ::close(fd);
  for (int i = 0; i < 100 && open_ > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(Echoes());
}

TEST_F(ApiServerTest, ClientThatDoesNotReadItsAnswerHoldsUpNobody) {
  ApiLimits l;
  l.answer_timeout_ms = 500;
  int fd = StartAndSend(l, "{\"op\": \"big\"}\n");
  // Once the answer has started to arrive, most of its 16 MB waits in the
  // server for a reader that does not come; others are served meanwhile.
  pollfd pf{fd, POLLIN, 0};
  ASSERT_EQ(::poll(&pf, 1, 5000), 1);
  EXPECT_EQ(open_.load(), 1u);
  auto t0 = Clock::now();
  EXPECT_TRUE(Echoes());
  EXPECT_LT(Clock::now() - t0, std::chrono::milliseconds(300));
  for (int i = 0; i < 200 && open_ > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_EQ(open_.load(), 0u) << "the stalled reader was not dropped";
  ::close(fd);
}

TEST_F(ApiServerTest, ClientsSendingAsFastAsTheyCanDoNotStarveAnother) {
  Start();
  for (int k = 0; k < 4; ++k)
    Child([&] {
      for (;;) {
        int fd = Connect(path_);
        if (fd < 0) continue;
        (void)WriteAll(fd, "{\"op\": \"echo\", \"args\": {}}\n");
        (void)ReadAnswer(fd);
        ::close(fd);
      }
    });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  int64_t worst = 0;
  for (int i = 0; i < 50; ++i) {
    auto t0 = Clock::now();
    EXPECT_TRUE(Echoes()) << "request " << i;
    worst = std::max<int64_t>(worst, std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count());
  }
  KillChildren();
  EXPECT_LT(worst, 500) << "slowest answer while four clients flood, ms";
  std::printf("[ api ] slowest of 50 answers while 4 clients flood: %lld ms\n", static_cast<long long>(worst));
}

}  // namespace
}  // namespace tendril
