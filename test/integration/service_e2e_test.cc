// Services I end to end: ClusterIP through the socket programs, with real
// clients (curl, nc, python's socket module) in a child cgroup on a "node"
// namespace, and backends in their own namespaces that name themselves.
#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "test/support/kernel.h"
#include "test/support/servers.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class ServiceE2ETest : public ::testing::Test {
 protected:
  static constexpr int kBackends = 3;

  void SetUp() override {
    TND_REQUIRE_ROOT();
    node_ = std::make_unique<Netns>("snode");
    ASSERT_EQ(node_->Exec({"ip", "link", "add", "br0", "type", "bridge"}), 0);
    ASSERT_EQ(node_->Exec({"ip", "addr", "add", "10.0.1.1/24", "dev", "br0"}), 0);
    ASSERT_EQ(node_->Exec({"ip", "-6", "addr", "add", "fd01::1/64", "dev", "br0", "nodad"}), 0);
    ASSERT_EQ(node_->Exec({"ip", "link", "set", "br0", "up"}), 0);
    for (int i = 1; i <= kBackends; ++i) {
      backends_.push_back(std::make_unique<Netns>("sb" + std::to_string(i)));
      Netns& b = *backends_.back();
      std::string port = "pb" + std::to_string(i);
      ConnectVeth(b, "eth0", absl::StrCat("10.0.1.", 10 + i, "/24"), *node_, port, "");
      ASSERT_EQ(b.Exec({"ip", "-6", "addr", "add", absl::StrCat("fd01::", 10 + i, "/64"), "dev", "eth0", "nodad"}), 0);
      ASSERT_EQ(node_->Exec({"ip", "link", "set", port, "master", "br0"}), 0);
      StartServers(b, "b" + std::to_string(i));
    }
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--netns", node_->path(),
                                     "--xdp-mode", "disabled", "--bpffs-root", pins_.path(),
                                     "--state-dir", state_.path(), "--api-socket", Socket(),
                                     "--cgroup-root", cgroup_.path(), "--max-backends-per-service", "8"};
    for (const auto& f : AgentTestFlags()) argv.push_back(f);
    agent_argv_ = argv;
    StartAgent();
    // Servers answer directly before any test relies on them.
    for (int i = 0; i < 50 && Curl("10.0.1.11:8080") != "b1"; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }

  void StartAgent() {
    agent_ = std::make_unique<Subprocess>(agent_argv_);
    ASSERT_TRUE(WaitForAgent(*agent_, Socket()));
  }

  void TearDown() override {
    agent_.reset();
    servers_.clear();
  }

  void StartServers(const Netns& ns, const std::string& name) {
    std::string http = absl::StrCat(scripts_.path(), "/http-", name, ".sh");
    std::ofstream(http) << "#!/bin/sh\nread -r _req\nprintf 'HTTP/1.0 200 OK\\r\\n\\r\\n" << name << "'\n";
    std::string hold = absl::StrCat(scripts_.path(), "/hold-", name, ".sh");
    std::ofstream(hold) << "#!/bin/sh\necho " << name << "\nexec cat\n";
    Sh({"chmod", "+x", http, hold});
    auto run = [&](std::vector<std::string> args) {
      std::vector<std::string> full = {"ip", "netns", "exec", ns.name(), "socat"};
      full.insert(full.end(), args.begin(), args.end());
      servers_.push_back(std::make_unique<Subprocess>(full));
    };
    run({"TCP6-LISTEN:8080,fork,reuseaddr", "EXEC:" + http});
    run({"TCP6-LISTEN:9090,fork,reuseaddr", "EXEC:" + hold});
    servers_.push_back(std::make_unique<Subprocess>(UdpNameServer(ns, name)));
  }

  std::string Socket() const { return state_.path() + "/api.sock"; }

  CliResult Cli(const std::vector<std::string>& args) { return RunCli(Socket(), pins_.path(), args); }

  void Add(std::vector<std::string> args) {
    std::vector<std::string> full = {"service", "add"};
    full.insert(full.end(), args.begin(), args.end());
    CliResult r = Cli(full);
    ASSERT_EQ(r.rc, 0) << r.out << r.err;
  }

  // Runs a client in the socket-LB cgroup on the node.
  int Client(const std::vector<std::string>& argv, std::string* out = nullptr) {
    return cgroup_.Run(argv, out, node_->path());
  }

  // curl http://ADDR/ from the node's cgroup; the body, or "" on failure.
  std::string Curl(const std::string& hostport) {
    std::string out;
    if (Client({"curl", "-s", "-g", "--max-time", "2", "http://" + hostport + "/"}, &out) != 0) return "";
    return out;
  }

  // One datagram to host:port and the first reply (nc would wait out its
  // idle timeout on every call).
  std::string Udp(const std::string& host, const std::string& port) {
    std::string fam = host.find(':') != std::string::npos ? "AF_INET6" : "AF_INET";
    return Python("import socket; s=socket.socket(socket." + fam + ",socket.SOCK_DGRAM); s.settimeout(2); s.sendto(b'hi',('" +
                  host + "'," + port + ")); print(s.recv(64).decode().strip())");
  }

  std::string Python(const std::string& code) {
    std::string out;
    Client({"python3", "-c", code}, &out);
    return std::string(absl::StripAsciiWhitespace(out));
  }

  std::set<std::string> Spread(const std::string& hostport, int n) {
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) seen.insert(Curl(hostport));
    return seen;
  }

  std::unique_ptr<Netns> node_;
  std::vector<std::unique_ptr<Netns>> backends_;
  std::vector<std::unique_ptr<Subprocess>> servers_;
  TempPinRoot pins_;
  TempDir state_, scripts_;
  TempCgroup cgroup_;
  std::vector<std::string> agent_argv_;
  std::unique_ptr<Subprocess> agent_;
};

const std::set<std::string> kAll = {"b1", "b2", "b3"};

bool Within(const std::set<std::string>& seen, const std::set<std::string>& allowed) {
  for (const auto& s : seen)
    if (!allowed.count(s)) return false;
  return true;
}

TEST_F(ServiceE2ETest, TcpAndUdpOverIpv4AndIpv6SpreadAcrossBackends) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080,10.0.1.12:8080,10.0.1.13:8080"});
  Add({"--frontend", "[fd96::10]:80/TCP", "--backends", "[fd01::11]:8080,[fd01::12]:8080,[fd01::13]:8080"});
  Add({"--frontend", "10.96.0.53:53/UDP", "--backends", "10.0.1.11:5353,10.0.1.12:5353,10.0.1.13:5353"});
  Add({"--frontend", "[fd96::53]:53/UDP", "--backends", "[fd01::11]:5353,[fd01::12]:5353,[fd01::13]:5353"});

  auto v4 = Spread("10.96.0.10:80", 24);
  EXPECT_TRUE(Within(v4, kAll)) << "a failed or wrong answer";
  EXPECT_GE(v4.size(), 2u);
  auto v6 = Spread("[fd96::10]:80", 24);
  EXPECT_TRUE(Within(v6, kAll));
  EXPECT_GE(v6.size(), 2u);
  std::set<std::string> u4, u6;
  for (int i = 0; i < 12; ++i) {
    u4.insert(Udp("10.96.0.53", "53"));
    u6.insert(Udp("fd96::53", "53"));
  }
  EXPECT_TRUE(Within(u4, kAll)) << *u4.begin();
  EXPECT_TRUE(Within(u6, kAll)) << *u6.begin();
  EXPECT_GE(u4.size(), 2u);

  // What the maps say, read from the pins.
  CliResult lb = Cli({"bpf", "lb", "list", "-o", "json"});
  ASSERT_EQ(lb.rc, 0) << lb.err;
  json j = json::parse(lb.out);
  ASSERT_EQ(j.size(), 4u);
  for (const auto& svc : j) EXPECT_EQ(svc["slots"].size(), 3u) << svc.dump();
}

TEST_F(ServiceE2ETest, MaglevSpreadsAndAnswersFromBackends) {
  Add({"--frontend", "10.96.0.11:80/TCP", "--backends", "10.0.1.11:8080,10.0.1.12:8080,10.0.1.13:8080",
       "--algorithm", "maglev"});
  auto seen = Spread("10.96.0.11:80", 24);
  EXPECT_TRUE(Within(seen, kAll));
  EXPECT_GE(seen.size(), 2u);
}

TEST_F(ServiceE2ETest, GetpeernameAndUdpReplySourceShowTheVip) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080"});
  Add({"--frontend", "10.96.0.53:53/UDP", "--backends", "10.0.1.12:5353"});
  Add({"--frontend", "[fd96::53]:53/UDP", "--backends", "[fd01::13]:5353"});
  EXPECT_EQ(Python("import socket; s=socket.create_connection(('10.96.0.10',80),2); print(s.getpeername())"),
            "('10.96.0.10', 80)");
  EXPECT_EQ(Python("import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.settimeout(2); "
                   "s.sendto(b'x',('10.96.0.53',53)); d,a=s.recvfrom(64); print(d.strip().decode(),a)"),
            "b2 ('10.96.0.53', 53)");
  EXPECT_EQ(Python("import socket; s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.settimeout(2); "
                   "s.sendto(b'x',('fd96::53',53)); d,a=s.recvfrom(64); print(d.strip().decode(),a[:2])"),
            "b3 ('fd96::53', 53)");
  // A connected UDP socket too: getpeername gives the VIP.
  EXPECT_EQ(Python("import socket; s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.connect(('10.96.0.53',53)); "
                   "print(s.getpeername())"),
            "('10.96.0.53', 53)");
}

TEST_F(ServiceE2ETest, Ipv4ServiceThroughADualStackSocket) {
  // Many runtimes open AF_INET6 sockets and name IPv4 peers as ::ffff:a.b.c.d.
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.12:8080"});
  Add({"--frontend", "10.96.0.53:53/UDP", "--backends", "10.0.1.13:5353"});
  EXPECT_EQ(Python("import socket; s=socket.socket(socket.AF_INET6); s.settimeout(2); s.connect(('::ffff:10.96.0.10',80)); "
                   "s.sendall(b'GET / HTTP/1.0\\r\\n\\r\\n'); d=s.recv(256).decode(); print(d.split()[-1], s.getpeername()[:2])"),
            "b2 ('::ffff:10.96.0.10', 80)");
  EXPECT_EQ(Python("import socket; s=socket.socket(socket.AF_INET6,socket.SOCK_DGRAM); s.settimeout(2); "
                   "s.sendto(b'x',('::ffff:10.96.0.53',53)); d,a=s.recvfrom(64); print(d.strip().decode(),a[:2])"),
            "b3 ('::ffff:10.96.0.53', 53)");
  EXPECT_EQ(Curl("[::ffff:10.96.0.10]:80"), "b2");
}

TEST_F(ServiceE2ETest, AffinityHoldsFollowsBackendStateAndLapses) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080,10.0.1.12:8080,10.0.1.13:8080",
       "--affinity-timeout", "60"});
  auto held = Spread("10.96.0.10:80", 15);
  ASSERT_EQ(held.size(), 1u) << "affinity must hold";
  std::string first = *held.begin();
  ASSERT_TRUE(kAll.count(first));
  // The bound backend leaves service: the client moves, and stays on the new one.
  std::string addr = absl::StrCat("10.0.1.1", first.substr(1), ":8080");
  ASSERT_EQ(Cli({"service", "update", "1", "--backend-state", addr + "=maintenance"}).rc, 0);
  auto moved = Spread("10.96.0.10:80", 10);
  ASSERT_EQ(moved.size(), 1u);
  EXPECT_NE(*moved.begin(), first);
  // A short timeout lapses: over several lapses the client lands on more
  // than one backend (all fail to differ with probability (1/2)^7).
  ASSERT_EQ(Cli({"service", "update", "1", "--backend-state", addr + "=active", "--affinity-timeout", "1"}).rc, 0);
  std::set<std::string> after;
  for (int i = 0; i < 8; ++i) {
    after.insert(Curl("10.96.0.10:80"));
    std::this_thread::sleep_for(std::chrono::milliseconds(2100));
  }
  EXPECT_TRUE(Within(after, kAll));
  EXPECT_GE(after.size(), 2u);
}

TEST_F(ServiceE2ETest, RemovedBackendGetsNothingNewTerminatingKeepsEstablished) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080,10.0.1.12:8080,10.0.1.13:8080"});
  Add({"--frontend", "10.96.0.90:90/TCP", "--backends", "10.0.1.11:9090,10.0.1.12:9090"});
  ASSERT_EQ(Cli({"service", "update", "1", "--backends", "10.0.1.12:8080,10.0.1.13:8080"}).rc, 0);
  auto seen = Spread("10.96.0.10:80", 20);
  EXPECT_TRUE(Within(seen, {"b2", "b3"})) << "removed backend b1 still chosen";

  // An established connection to the held service; its backend then goes
  // terminating: the connection keeps working, new ones go elsewhere.
  std::string go = state_.path() + "/go";
  std::string code = absl::StrCat(
      "import socket,os,time\n"
      "s=socket.create_connection(('10.96.0.90',90),2)\n"
      "name=s.recv(16).decode().strip(); print(name, flush=True)\n"
      "open('", state_.path(), "/name','w').write(name)\n"
      "t=time.time()\n"
      "while not os.path.exists('", go, "') and time.time()-t<20: time.sleep(0.05)\n"
      "s.sendall(b'still-here\\n'); print(s.recv(64).decode().strip())\n");
  std::string out;
  std::thread client([&] { Client({"python3", "-c", code}, &out); });
  std::string name;
  for (int i = 0; i < 100 && name.empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    std::ifstream(state_.path() + "/name") >> name;
  }
  ASSERT_TRUE(name == "b1" || name == "b2") << name;
  std::string held_addr = absl::StrCat("10.0.1.1", name.substr(1), ":9090");
  CliResult r = Cli({"service", "update", "2", "--backend-state", held_addr + "=terminating"});
  ASSERT_EQ(r.rc, 0) << r.err;
  std::set<std::string> fresh;
  for (int i = 0; i < 8; ++i) {
    std::string o;
    Client({"python3", "-c", "import socket; s=socket.create_connection(('10.96.0.90',90),2); print(s.recv(16).decode().strip())"}, &o);
    fresh.insert(std::string(absl::StripAsciiWhitespace(o)));
  }
  EXPECT_EQ(fresh.count(name), 0u) << "terminating backend got a new connection";
  std::ofstream(go) << "go";
  client.join();
  EXPECT_EQ(out, name + "\nstill-here\n") << "established connection broke";
  CliResult lb = Cli({"bpf", "lb", "list"});
  EXPECT_NE(lb.out.find("terminating"), std::string::npos) << lb.out;
}

TEST_F(ServiceE2ETest, NoBackendsRefusesAtOnce) {
  Add({"--frontend", "10.96.0.10:80/TCP"});
  auto start = std::chrono::steady_clock::now();
  std::string out;
  int rc = Client({"nc", "-v", "-w", "5", "10.96.0.10", "80"}, &out);
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count();
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("refused"), std::string::npos) << out;
  EXPECT_LT(ms, 1000) << "a refusal, not a hang";
  rc = Client({"curl", "-s", "--max-time", "5", "http://10.96.0.10/"});
  EXPECT_EQ(rc, 7) << "curl: couldn't connect";
  CliResult m = Cli({"metrics", "list"});
  EXPECT_NE(m.out.find("no-service-backend"), std::string::npos) << m.out;
}

TEST_F(ServiceE2ETest, UndeclaredPortsAndAddressesPassUntouched) {
  // A frontend on b1's own address but another port.
  Add({"--frontend", "10.0.1.11:80/TCP", "--backends", "10.0.1.12:8080"});
  EXPECT_EQ(Curl("10.0.1.11:80"), "b2");
  for (int i = 0; i < 5; ++i) EXPECT_EQ(Curl("10.0.1.11:8080"), "b1");
  EXPECT_EQ(Curl("10.0.1.13:8080"), "b3");
  // UDP to the TCP frontend's address and port is not that service.
  Add({"--frontend", "10.0.1.13:5353/TCP", "--backends", "10.0.1.12:8080"});
  EXPECT_EQ(Udp("10.0.1.13", "5353"), "b3");
}

TEST_F(ServiceE2ETest, BadInputIsRefusedByNameAndChangesNothing) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080"});
  CliResult before = Cli({"bpf", "lb", "list", "-o", "json"});
  std::string state_before = StoredState(state_.path());
  ASSERT_NE(state_before.find("10.96.0.10:80/TCP"), std::string::npos) << state_before;
  struct Case {
    std::vector<std::string> args;
    std::string says;
  } cases[] = {
      {{"service", "add", "--frontend", "10.96.0.300:80/TCP"}, "10.96.0.300"},
      {{"service", "add", "--frontend", "10.96.0.11:0/TCP"}, "out of range"},
      {{"service", "add", "--frontend", "10.96.0.11:70000/TCP"}, "70000"},
      {{"service", "add", "--frontend", "10.96.0.11:80/SCTP"}, "SCTP"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--backends", "10.0.1.11"}, "missing :PORT"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--backends", "10.0.1.11:0"}, "out of range"},
      {{"service", "add", "--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.12:8080"}, "already service 1"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--backends", "[fd01::11]:8080"}, "is IPv6, the frontend is IPv4"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--backends",
        "10.0.2.1:1,10.0.2.1:2,10.0.2.1:3,10.0.2.1:4,10.0.2.1:5,10.0.2.1:6,10.0.2.1:7,10.0.2.1:8,10.0.2.1:9"},
       "more than the maximum of 8"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--algorithm", "roundrobin"}, "roundrobin"},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--type", "Headless"}, "unknown service type \"Headless\""},
      {{"service", "add", "--frontend", "10.96.0.11:80/TCP", "--id", "1"}, "taken"},
      {{"service", "update", "7", "--backends", "10.0.1.12:8080"}, "no service with id 7"},
      {{"service", "update", "1", "--backend-state", "10.0.1.99:8080=terminating"}, "no backend 10.0.1.99:8080"},
      {{"service", "update", "1", "--backend-state", "10.0.1.11:8080=sleepy"}, "sleepy"},
      {{"service", "delete", "9"}, "no service with id 9"},
      {{"service", "delete", "--frontend", "10.96.0.99:80/TCP"}, "10.96.0.99:80/TCP"},
  };
  for (const Case& c : cases) {
    CliResult r = Cli(c.args);
    EXPECT_NE(r.rc, 0) << c.says;
    EXPECT_NE(r.err.find(c.says), std::string::npos) << "wanted \"" << c.says << "\" in: " << r.err;
  }
  EXPECT_EQ(Cli({"bpf", "lb", "list", "-o", "json"}).out, before.out);
  EXPECT_EQ(StoredState(state_.path()), state_before);
  EXPECT_EQ(Curl("10.96.0.10:80"), "b1");
}

TEST_F(ServiceE2ETest, AgentRestartUnderSteadyConnectionsFailsNone) {
  Add({"--frontend", "10.96.0.10:80/TCP", "--backends", "10.0.1.11:8080,10.0.1.12:8080"});
  std::string loop =
      "ok=0; fail=0; for i in $(seq 1 80); do "
      "if curl -s --max-time 2 http://10.96.0.10/ | grep -q '^b[12]$'; then ok=$((ok+1)); else fail=$((fail+1)); fi; "
      "sleep 0.05; done; echo \"ok=$ok fail=$fail\"";
  std::string out;
  std::thread stream([&] { Client({"sh", "-c", loop}, &out); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
  // Down: the maps are still there to read.
  CliResult lb = Cli({"bpf", "lb", "list", "-o", "json"});
  EXPECT_EQ(lb.rc, 0) << lb.err;
  EXPECT_NE(lb.out.find("10.96.0.10:80/TCP"), std::string::npos) << lb.out;
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));  // down for a while
  StartAgent();
  stream.join();
  EXPECT_NE(out.find("fail=0"), std::string::npos) << out;
  CliResult list = Cli({"service", "list", "-o", "json"});
  json j = json::parse(list.out);
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["id"], 1);
  EXPECT_EQ(j[0]["backends"].size(), 2u);
  EXPECT_NE(agent_->Log().find("0 map writes"), std::string::npos) << "restart rewrote maps: " << agent_->Log();
}

}  // namespace
}  // namespace tendril::test

namespace tendril::test {
namespace {

// `service apply -f`: the whole set at once, as a controller (or kube-proxy's
// full sync) declares it; bad input changes nothing; the set survives a restart.
TEST_F(ServiceE2ETest, ApplyDeclaresTheWholeSetAndKeepsIt) {
  Add({"--frontend", "10.96.0.9:80/TCP", "--backends", "10.0.1.13:8080"});
  std::string file = state_.path() + "/services.json";
  auto write = [&](const std::string& text) { std::ofstream(file) << text; };
  write(R"([{"frontend": "10.96.0.10:80/TCP", "backends": [{"address": "10.0.1.11:8080"}]},
            {"frontend": "10.96.0.11:80/TCP", "backends": [{"address": "10.0.1.12:8080"}]},
            {"frontend": "10.96.0.12:5353/UDP", "backends": [{"address": "10.0.1.13:5353"}]}])");
  CliResult r = Cli({"service", "apply", "-f", file});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("3 services declared: 3 added, 0 changed, 1 removed"), std::string::npos) << r.out;
  EXPECT_EQ(Curl("10.96.0.10:80"), "b1");
  EXPECT_EQ(Curl("10.96.0.11:80"), "b2");
  EXPECT_EQ(Udp("10.96.0.12", "5353"), "b3");
  EXPECT_EQ(Curl("10.96.0.9:80"), "") << "not in the set: removed";
  int id10 = 0;
  for (const auto& svc : json::parse(Cli({"service", "list", "-o", "json"}).out))
    if (svc["frontend"] == "10.96.0.10:80/TCP") id10 = svc["id"];
  ASSERT_NE(id10, 0);

  CliResult before = Cli({"bpf", "lb", "list", "-o", "json"});
  struct Case {
    std::string text, message;
  };
  std::vector<Case> cases = {
      {"not json", "not valid JSON: syntax error at byte 2"},
      {R"({"services": 3})", "expected an array of services"},
      {R"([{"frontend": "10.96.0.10:80/TCP"}, {"frontend": "10.96.0.10:80/TCP"}])", "declared twice"},
      {R"([{"frontend": "10.96.0.10:80/TCP"}, {"backends": []}])", "services[1]"},
      {R"([{"frontend": "10.96.0.10:99999/TCP"}])", "port 99999"},
      {R"([{"frontend": "10.96.0.13:80", "backends": [{"address": "10.0.1.300:80"}]}])", "10.0.1.300"},
  };
  for (const Case& c : cases) {
    write(c.text);
    CliResult bad = Cli({"service", "apply", "-f", file});
    EXPECT_EQ(bad.rc, 2) << c.text;
    EXPECT_NE(bad.err.find(c.message), std::string::npos) << c.text << ": " << bad.err;
  }
  CliResult missing = Cli({"service", "apply", "-f", state_.path() + "/no-such-file.json"});
  EXPECT_EQ(missing.rc, 2);
  EXPECT_NE(missing.err.find("no-such-file.json"), std::string::npos) << missing.err;
  EXPECT_EQ(Cli({"bpf", "lb", "list", "-o", "json"}).out, before.out) << "a refused apply wrote something";

  // A smaller set: 10.96.0.10 moves to b3 and keeps its id; the rest go.
  write(R"({"services": [{"frontend": "10.96.0.10:80/TCP", "backends": [{"address": "10.0.1.13:8080"}]}]})");
  r = Cli({"service", "apply", "-f", file, "-o", "json"});
  ASSERT_EQ(r.rc, 0) << r.err;
  json res = json::parse(r.out);
  EXPECT_EQ(res["changed"], 1);
  EXPECT_EQ(res["removed"], 2);
  EXPECT_EQ(Curl("10.96.0.10:80"), "b3");
  EXPECT_EQ(Curl("10.96.0.11:80"), "");

  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
  StartAgent();
  json list = json::parse(Cli({"service", "list", "-o", "json"}).out);
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["id"], id10);
  EXPECT_EQ(Curl("10.96.0.10:80"), "b3");
}

}  // namespace
}  // namespace tendril::test
