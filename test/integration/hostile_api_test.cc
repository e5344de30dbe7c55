// Hostile input at a running agent's API: each case is one that was found
// by sending garbage at a node (issue 15) and killed, stalled or silently
// misconfigured the agent. The agent must answer each with an error naming
// what is wrong, change nothing, and keep serving.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include <cstring>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/api_client.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

class HostileApiTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    node_ = std::make_unique<Netns>("hapi");
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--netns", node_->path(), "--xdp-mode",
                                     "disabled", "--bpffs-root", pins_.path(), "--state-dir", state_.path(),
                                     "--api-socket", Socket(), "--cgroup-root", cgroup_.path()};
    for (const auto& f : AgentTestFlags()) argv.push_back(f);
    agent_ = std::make_unique<Subprocess>(argv);
    for (int i = 0; i < 300 && !CallAgent(Socket(), "status").ok(); ++i) {
      ASSERT_TRUE(agent_->Running()) << agent_->Log();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  void TearDown() override {
    for (pid_t p : children_) {
      ::kill(p, SIGKILL);
      ::waitpid(p, nullptr, 0);
    }
    agent_.reset();
  }
  std::string Socket() const { return state_.path() + "/api.sock"; }

  int Connect() {
    auto fd = ConnectApi(Socket());
    return fd.ok() ? fd->Release() : -1;
  }
  // Raw bytes in, the answer out (parsed; null when there was none).
  json Raw(const std::string& bytes) {
    int fd = Connect();
    if (fd < 0) return json();
    (void)WriteAll(fd, bytes);
    auto line = ReadLine(fd, 5000);
    ::close(fd);
    return line.ok() ? json::parse(*line, nullptr, false) : json();
  }
  void ExpectAlive() {
    ASSERT_TRUE(agent_->Running()) << agent_->Log();
    EXPECT_TRUE(CallAgent(Socket(), "status").ok());
  }
  CliResult Cli(const std::vector<std::string>& args) { return RunCli(Socket(), pins_.path(), args); }
  size_t Services() { return json::parse(Cli({"-o", "json", "service", "list"}).out, nullptr, false).size(); }

  std::unique_ptr<Netns> node_;
  TempPinRoot pins_;
  TempDir state_;
  TempCgroup cgroup_;
  std::unique_ptr<Subprocess> agent_;
  std::vector<pid_t> children_;
};

TEST_F(HostileApiTest, OneByteDoesNotKillTheAgent) {
  json a = Raw("\xff\n");
  EXPECT_EQ(a.value("code", ""), "INVALID_ARGUMENT") << a.dump();
  EXPECT_EQ(a.value("error", ""), "request: not valid JSON: syntax error at byte 1");
  ExpectAlive();
}

TEST_F(HostileApiTest, DeepNestingDoesNotKillTheAgent) {
  json a = Raw(absl::StrCat(R"({"op": "service.add", "args": {"service": )", std::string(10000, '['),
                            std::string(10000, ']'), "}}\n"));
  EXPECT_EQ(a.value("error", ""), "request: JSON nests deeper than 64 levels") << a.dump();
  ExpectAlive();
}

TEST_F(HostileApiTest, UnboundedNumbersFromJsonAreRefusedByName) {
  struct Case {
    std::string backend_or_field;
    std::string says;
  } cases[] = {
      {R"("backends": [{"address": "10.1.0.2:80", "weight": -1}])", "\"weight\" must be an integer in 0-1000, not the number -1"},
      {R"("backends": [{"address": "10.1.0.2:80", "weight": 4294967295}])", "\"weight\" must be an integer in 0-1000"},
      {R"("affinity_timeout": 4294967296)", "\"affinity_timeout\" must be an integer in 0-604800"},
      {R"("type": "NodePort", "node_port": -0.5)", "\"node_port\" must be an integer in 0-65535, not the number -0.5"},
      {R"("backends": {"address": "10.1.0.2:80"})", "\"backends\" must be a list, not an object"},
  };
  for (const Case& c : cases) {
    std::string svc = absl::StrCat(R"({"frontend": "10.96.0.10:80/TCP", )", c.backend_or_field, "}");
    // Through the API...
    json a = Raw(absl::StrCat(R"({"op": "service.add", "args": {"service": )", svc, "}}\n"));
    EXPECT_EQ(a.value("code", ""), "INVALID_ARGUMENT") << a.dump();
    EXPECT_NE(a.value("error", "").find(c.says), std::string::npos) << a.dump();
    // ... and through `service apply -f`.
    std::string file = state_.path() + "/apply.json";
    std::ofstream(file) << "[" << svc << "]";
    CliResult r = Cli({"service", "apply", "-f", file});
    EXPECT_EQ(r.rc, 2) << r.out << r.err;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("services[0]: service 10.96.0.10:80/TCP"), std::string::npos) << r.err;
  }
  EXPECT_EQ(Services(), 0u);
  ExpectAlive();
}

TEST_F(HostileApiTest, OneMegabyteStringsAreRefusedNotFatal) {
  json a = Raw(absl::StrCat(R"({"op": "service.add", "args": {"service": {"frontend": ")",
                            std::string(1 << 20, '1'), R"("}}})", "\n"));
  EXPECT_EQ(a.value("code", ""), "INVALID_ARGUMENT") << a.dump().substr(0, 300);
  EXPECT_LT(a.value("error", "").size(), 1200u) << "the error quotes all of the input";
  EXPECT_NE(a.value("error", "").find("bytes)"), std::string::npos);
  EXPECT_EQ(Services(), 0u);
  ExpectAlive();
}

TEST_F(HostileApiTest, StalledClientsDoNotStopTheAgent) {
  // Eight processes hold 16 idle connections each (128: twice what the
  // agent keeps open); `tendril status` is still answered at once.
  int ready[2];
  ASSERT_EQ(::pipe(ready), 0);
  for (int k = 0; k < 8; ++k) {
    pid_t pid = ::fork();
    if (pid == 0) {
      std::vector<int> fds;
      for (int i = 0; i < 16; ++i) fds.push_back(Connect());
      (void)!::write(ready[1], "x", 1);
      ::pause();
      ::_exit(0);
    }
    children_.push_back(pid);
  }
  for (int k = 0; k < 8; ++k) {
    char c;
    ASSERT_EQ(::read(ready[0], &c, 1), 1);
  }
  ::close(ready[0]);
  ::close(ready[1]);
  for (int i = 0; i < 10; ++i) {
    auto t0 = Clock::now();
    CliResult r = Cli({"status"});
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2)) << "status " << i;
  }
  ExpectAlive();
}

// A health check port faces the network: 200 connections that never send
// their request cost the agent's loop 200 ms each before; now they wait
// beside it and the loop goes on.
TEST_F(HostileApiTest, IdleHealthCheckConnectionsDoNotStopTheAgent) {
  CliResult add = Cli({"-o", "json", "service", "add", "--frontend", "10.96.0.10:80/TCP", "--type", "NodePort",
                       "--traffic-policy", "Local", "--backends", "10.1.0.2:80"});
  ASSERT_EQ(add.rc, 0) << add.err;
  int hc = json::parse(add.out).value("health_check_port", 0);
  ASSERT_GT(hc, 0) << add.out;
  ASSERT_EQ(node_->Exec({"ip", "link", "set", "lo", "up"}), 0);
  std::vector<int> idle;
  {
    NetnsGuard g(*node_);
    for (int i = 0; i < 200; ++i) {
      int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      sockaddr_in a{};
      a.sin_family = AF_INET;
      a.sin_port = htons(static_cast<uint16_t>(hc));
      a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)), 0) << std::strerror(errno);
      idle.push_back(fd);
    }
  }
  auto t0 = Clock::now();
  CliResult st = Cli({"status"});
  EXPECT_EQ(st.rc, 0) << st.err;
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(2));
  std::string out;
  node_->Exec({"curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "3",
               absl::StrCat("http://127.0.0.1:", hc, "/")},
              &out);
  EXPECT_EQ(out, "503") << "no local backend";
  for (int fd : idle) ::close(fd);
  ExpectAlive();
}

}  // namespace
}  // namespace tendril
