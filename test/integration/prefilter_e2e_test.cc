// End to end: tendril-agent attached to the "node" namespace's uplink, a
// client and an attacker on the same LAN (a bridge in its own namespace),
// real ping, nc and socat traffic, and the `tendril` CLI driving it all.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/match.h"
#include "absl/strings/str_split.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

using nlohmann::json;

constexpr char kNodeIp[] = "10.80.0.1";
constexpr char kNode2Ip[] = "10.80.0.2";
constexpr char kNodeIp6[] = "fd80::1";
constexpr char kClientIp[] = "10.80.0.10";
constexpr char kAttackerIp[] = "10.80.0.66";
constexpr char kAttackerIp6[] = "fd80::66";

// One tendril-agent instance with its own pins, state and socket.
class AgentInstance {
 public:
  AgentInstance(const Netns& ns, std::string device) : ns_(ns), device_(std::move(device)) {}
  ~AgentInstance() { Stop(); }

  std::string socket() const { return state_.path() + "/api.sock"; }
  const TempCgroup& cgroup() const { return cgroup_; }
  const std::string& pins() const { return pins_.path(); }
  const std::string& state_dir() const { return state_.path(); }

  // Settings go through a YAML file (as an operator would write them); the
  // mode and socket come as flags, which win over the file.
  bool Start(const std::string& mode, std::vector<std::string> extra = {}) {
    std::string cfg = state_.path() + "/agent.yaml";
    std::ofstream(cfg) << "devices: [" << device_ << "]\n"
                       << "xdp-mode: disabled\n"
                       << "bpffs-root: " << pins_.path() << "\n"
                       << "state-dir: " << state_.path() << "\n";
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--config", cfg,
                                     "--netns", ns_.path(), "--xdp-mode", mode,
                                     "--api-socket", socket(), "--cgroup-root", cgroup_.path()};
    argv.insert(argv.end(), extra.begin(), extra.end());
    for (const auto& f : AgentTestFlags()) argv.push_back(f);
    proc_ = std::make_unique<Subprocess>(argv);
    return WaitForAgent(*proc_, socket(), 30);
  }

  int Stop() {
    if (!proc_) return -1;
    int rc = proc_->Stop();
    last_log_ = proc_->Log();
    proc_.reset();
    return rc;
  }

  std::string Log() const { return proc_ ? proc_->Log() : last_log_; }

  CliResult Cli(const std::vector<std::string>& args) const { return RunCli(socket(), pins_.path(), args); }

  json CliJson(std::vector<std::string> args) const {
    args.push_back("-o");
    args.push_back("json");
    CliResult r = Cli(args);
    try {
      return json::parse(r.out);
    } catch (...) {
      ADD_FAILURE() << "not JSON (rc " << r.rc << "): " << r.out << r.err;
      return json();
    }
  }

  uint64_t Drops(const std::string& reason) const {
    uint64_t n = 0;
    for (const auto& m : CliJson({"metrics", "list"}))
      if (m.value("reason", "") == reason) n += m.value("packets", 0ull);
    return n;
  }

 private:
  const Netns& ns_;
  std::string device_;
  TempPinRoot pins_;
  TempDir state_;
  TempCgroup cgroup_;  // socket programs attach here, never to the root cgroup
  std::unique_ptr<Subprocess> proc_;
  std::string last_log_;
};

class PrefilterE2ETest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    lan_ = std::make_unique<Lan>("lan");
    node_ = std::make_unique<Netns>("node");
    client_ = std::make_unique<Netns>("cli");
    attacker_ = std::make_unique<Netns>("atk");
    lan_->Join(*node_, "pn", "10.80.0.1/24", "fd80::1/64");
    lan_->Join(*client_, "pc", "10.80.0.10/24", "fd80::10/64");
    lan_->Join(*attacker_, "pa", "10.80.0.66/24", "fd80::66/64");
    for (const Netns* ns : {node_.get()}) {
      server_ = std::make_unique<Subprocess>(std::vector<std::string>{
          "ip", "netns", "exec", ns->name(), "socat", "TCP6-LISTEN:8080,fork,reuseaddr",
          "SYSTEM:echo node"});
    }
    // Wait until the server answers and IPv6 addresses are usable.
    for (int i = 0; i < 50 && !Tcp(*client_, kNodeIp); ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    agent_ = std::make_unique<AgentInstance>(*node_, "eth0");
  }

  void TearDown() override {
    agent_.reset();
    server_.reset();
  }

  static bool Tcp(const Netns& from, const std::string& ip) {
    return from.Exec({"nc", "-z", "-w", "1", ip, "8080"}) == 0;
  }
  static bool Ping(const Netns& from, const std::string& ip) {
    return from.Exec({"ping", "-c", "1", "-W", "1", ip}) == 0;
  }

  void StartAgent(std::vector<std::string> extra = {}) {
    ASSERT_TRUE(agent_->Start(GetParam(), extra)) << agent_->Log();
  }

  json DeviceStatus(const AgentInstance& a) {
    json s = a.CliJson({"status"});
    for (const auto& d : s["devices"])
      if (d.value("name", "") == "eth0") return d;
    ADD_FAILURE() << "eth0 not in status: " << s.dump();
    return json();
  }

  std::unique_ptr<Lan> lan_;
  std::unique_ptr<Netns> node_, client_, attacker_;
  std::unique_ptr<Subprocess> server_;
  std::unique_ptr<AgentInstance> agent_;
};

TEST_P(PrefilterE2ETest, DeniedSourceIsDroppedEverythingElsePasses) {
  StartAgent();
  json dev = DeviceStatus(*agent_);
  EXPECT_EQ(dev["xdp"].value("mode", ""), GetParam());
  EXPECT_EQ(dev["xdp"].value("prog_name", ""), "tnd_xdp_entry");

  ASSERT_TRUE(Tcp(*attacker_, kNodeIp)) << "attacker must get through before the deny";
  ASSERT_TRUE(Tcp(*attacker_, kNodeIp6));

  CliResult r = agent_->Cli({"prefilter", "add", "10.80.0.66/32", "fd80::66/128"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;

  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_FALSE(Ping(*attacker_, kNodeIp));
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp6));
  EXPECT_TRUE(Tcp(*client_, kNodeIp));
  EXPECT_TRUE(Ping(*client_, kNodeIp));
  EXPECT_TRUE(Tcp(*client_, kNodeIp6));

  // At least the SYN, the echo request and the v6 SYN were dropped in XDP.
  EXPECT_GE(agent_->Drops("prefilter-denied"), 3u);
  EXPECT_EQ(agent_->Drops("missed-tail-call"), 0u);
  json status = agent_->CliJson({"status"});
  for (const auto& m : status["maps"]) {
    if (m["name"] == "tnd_pf_v4" || m["name"] == "tnd_pf_v6") {
      EXPECT_EQ(m.value("entries", -1), 1) << m;
    }
  }
  r = agent_->Cli({"metrics", "list"});
  EXPECT_NE(r.out.find("prefilter-denied"), std::string::npos) << r.out;

  ASSERT_EQ(agent_->Cli({"prefilter", "delete", "10.80.0.66/32", "fd80::66/128"}).rc, 0);
  EXPECT_TRUE(Tcp(*attacker_, kNodeIp));
  EXPECT_TRUE(Tcp(*attacker_, kNodeIp6));
}

TEST_P(PrefilterE2ETest, WiderCidrCoversTheAttacker) {
  StartAgent();
  ASSERT_EQ(agent_->Cli({"prefilter", "add", "10.80.0.64/26"}).rc, 0);
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));  // .66 is in .64/26
  EXPECT_TRUE(Tcp(*client_, kNodeIp));     // .10 is not
}

TEST_P(PrefilterE2ETest, BadInputIsRefusedByNameAndChangesNothing) {
  StartAgent();
  ASSERT_EQ(agent_->Cli({"prefilter", "add", "10.80.0.66/32"}).rc, 0);
  std::string state_before = StoredState(agent_->state_dir());
  ASSERT_NE(state_before.find("10.80.0.66/32"), std::string::npos) << state_before;

  struct Case {
    std::vector<std::string> args;
    std::string names;
  } cases[] = {
      {{"prefilter", "add", "10.0.0.0/33"}, "10.0.0.0/33"},
      {{"prefilter", "add", "fd00::1junk/64"}, "fd00::1junk"},
      {{"prefilter", "add", "10.1.0.0/16", "not-a-cidr"}, "not-a-cidr"},
      {{"prefilter", "add", "10.2.0.0/16", "::1/200"}, "::1/200"},
      {{"prefilter", "delete", "10.9.9.0/24"}, "10.9.9.0/24"},
      {{"prefilter", "delete", "10.80.0.66/32", "10.9.9.0/24"}, "10.9.9.0/24"},
  };
  for (const Case& c : cases) {
    CliResult r = agent_->Cli(c.args);
    EXPECT_EQ(r.rc, 2) << c.names << ": " << r.out << r.err;
    EXPECT_NE(r.err.find(c.names), std::string::npos) << r.err;
  }
  // The agent validates too, for clients other than this CLI.
  auto raw = CallAgent(agent_->socket(), "prefilter.add", {{"cidrs", {"10.3.0.0/16", "1.2.3.4/99"}}});
  ASSERT_FALSE(raw.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(raw.status())) << raw.status();
  raw = CallAgent(agent_->socket(), "prefilter.add", {{"cidrs", "10.0.0.0/8"}});
  EXPECT_FALSE(raw.ok()) << "a string where a list belongs";
  raw = CallAgent(agent_->socket(), "prefilter.add", {{"cidrs", {1, 2}}});
  EXPECT_FALSE(raw.ok());
  raw = CallAgent(agent_->socket(), "prefilter.add");
  EXPECT_FALSE(raw.ok());
  raw = CallAgent(agent_->socket(), "no.such.op");
  EXPECT_FALSE(raw.ok());

  json list = agent_->CliJson({"prefilter", "list"});
  ASSERT_EQ(list.size(), 1u) << list.dump();
  EXPECT_EQ(list[0]["cidr"], "10.80.0.66/32");
  EXPECT_EQ(StoredState(agent_->state_dir()), state_before);
  json status = agent_->CliJson({"status"});  // the loop below must not outlive it
  for (const auto& m : status["maps"]) {
    if (m["name"] == "tnd_pf_v4") {
      EXPECT_EQ(m.value("entries", -1), 1);
    }
    if (m["name"] == "tnd_pf_v6") {
      EXPECT_EQ(m.value("entries", -1), 0);
    }
  }
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_TRUE(Tcp(*client_, kNodeIp));
}

TEST_P(PrefilterE2ETest, RestartKeepsTrafficFlowingAndRestoresState) {
  StartAgent();
  ASSERT_EQ(agent_->Cli({"prefilter", "add", kAttackerIp}).rc, 0);
  uint32_t prog_before = DeviceStatus(*agent_)["xdp"].value("prog_id", 0u);

  // A steady stream of client connections across stop and restart.
  std::string loop =
      "ok=0; fail=0; for i in $(seq 1 60); do "
      "if nc -z -w 1 " + std::string(kNodeIp) + " 8080; then ok=$((ok+1)); else fail=$((fail+1)); fi; "
      "sleep 0.05; done; echo \"ok=$ok fail=$fail\"";
  std::string loop_out;
  std::thread stream([&] { client_->Exec({"sh", "-c", loop}, &loop_out); });

  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
  // Agent down: the datapath stays, with its maps and tail calls.
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_TRUE(Tcp(*client_, kNodeIp));
  CliResult down = agent_->Cli({"status"});
  EXPECT_EQ(down.rc, 1);
  EXPECT_NE(down.out.find("not running"), std::string::npos) << down.out;
  EXPECT_NE(down.out.find("tnd_pf_v4"), std::string::npos) << "maps are read from pins";
  EXPECT_EQ(agent_->Drops("missed-tail-call"), 0u);

  StartAgent();
  stream.join();
  EXPECT_NE(loop_out.find("fail=0"), std::string::npos) << loop_out;

  json list = agent_->CliJson({"prefilter", "list"});
  ASSERT_EQ(list.size(), 1u);
  EXPECT_EQ(list[0]["cidr"], "10.80.0.66/32");
  uint32_t prog_after = DeviceStatus(*agent_)["xdp"].value("prog_id", 0u);
  EXPECT_NE(prog_after, prog_before) << "restart reloads and swaps the program";
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_TRUE(Tcp(*client_, kNodeIp));
  EXPECT_EQ(agent_->Drops("missed-tail-call"), 0u);
  EXPECT_GE(agent_->Drops("prefilter-denied"), 2u);
  // Only the attached objects' prog arrays stay pinned: one for XDP, one
  // for tc on the devices, one for tc on endpoints' veths.
  std::string calls;
  Sh({"ls", agent_->pins() + "/calls"}, &calls);
  std::vector<std::string> pins = absl::StrSplit(calls, '\n', absl::SkipEmpty());
  ASSERT_EQ(pins.size(), 3u) << calls;
  EXPECT_TRUE(absl::StartsWith(pins[0], "tnd_host_calls_")) << calls;
  EXPECT_TRUE(absl::StartsWith(pins[1], "tnd_lxc_calls_")) << calls;
  EXPECT_TRUE(absl::StartsWith(pins[2], "tnd_xdp_calls_")) << calls;
}

TEST_P(PrefilterE2ETest, OffloadRequestFailsClearlyAndLeavesPreviousProgram) {
  StartAgent();
  ASSERT_EQ(agent_->Cli({"prefilter", "add", kAttackerIp}).rc, 0);
  uint32_t prog_before = DeviceStatus(*agent_)["xdp"].value("prog_id", 0u);
  EXPECT_EQ(agent_->Stop(), 0);

  // veth has no BPF offload: the agent must refuse and exit, naming why.
  EXPECT_FALSE(agent_->Start("offload"));
  std::string log = agent_->Log();
  agent_->Stop();
  EXPECT_NE(log.find("XDP offload on device eth0"), std::string::npos) << log;
  EXPECT_NE(log.find("errno"), std::string::npos) << log;

  std::string link;
  node_->Exec({"ip", "link", "show", "eth0"}, &link);
  EXPECT_NE(link.find(absl::StrCat("prog/xdp id ", prog_before, " ")), std::string::npos) << link;
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp)) << "previous program must still filter";
  EXPECT_TRUE(Tcp(*client_, kNodeIp));
  EXPECT_EQ(agent_->Drops("missed-tail-call"), 0u);
}

TEST_P(PrefilterE2ETest, CleanupOnExitRemovesTheDatapath) {
  StartAgent({"--cleanup-on-exit"});
  ASSERT_EQ(agent_->Cli({"prefilter", "add", kAttackerIp}).rc, 0);
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
  std::string link;
  node_->Exec({"ip", "link", "show", "eth0"}, &link);
  EXPECT_EQ(link.find("xdp"), std::string::npos) << link;
  std::string pins;
  Sh({"ls", "-A", agent_->pins()}, &pins);
  EXPECT_NE(pins.find("No such file"), std::string::npos)
      << "the pin root should be gone; it holds: " << pins;
  std::string cg;
  Sh({"bpftool", "cgroup", "show", agent_->cgroup().path()}, &cg);
  EXPECT_EQ(cg.find("tnd_sock"), std::string::npos) << cg;
  EXPECT_TRUE(Tcp(*attacker_, kNodeIp));
}

TEST_P(PrefilterE2ETest, TwoAgentsSideBySide) {
  auto node2 = std::make_unique<Netns>("node2");
  lan_->Join(*node2, "pn2", "10.80.0.2/24", "fd80::2/64");
  Subprocess server2({"ip", "netns", "exec", node2->name(), "socat",
                      "TCP6-LISTEN:8080,fork,reuseaddr", "SYSTEM:echo node2"});
  AgentInstance agent2(*node2, "eth0");
  StartAgent();
  ASSERT_TRUE(agent2.Start(GetParam())) << agent2.Log();
  ASSERT_EQ(agent_->Cli({"prefilter", "add", kAttackerIp}).rc, 0);
  for (int i = 0; i < 50 && !Tcp(*client_, kNode2Ip); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_FALSE(Tcp(*attacker_, kNodeIp));
  EXPECT_TRUE(Tcp(*attacker_, kNode2Ip)) << "agent 2 has its own (empty) prefilter";
  EXPECT_EQ(agent2.CliJson({"prefilter", "list"}).size(), 0u);
  EXPECT_EQ(agent2.Drops("prefilter-denied"), 0u);
  EXPECT_GE(agent_->Drops("prefilter-denied"), 1u);
  EXPECT_EQ(agent2.Stop(), 0);
}

INSTANTIATE_TEST_SUITE_P(XdpModes, PrefilterE2ETest, ::testing::Values("native", "generic"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tendril::test
