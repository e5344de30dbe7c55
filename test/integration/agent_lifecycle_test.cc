// The agent as a process: systemd readiness protocol, refusals at start, and
// the API socket's ownership. XDP is disabled or the agent runs in a test
// namespace, so nothing is attached to this machine's interfaces.
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <chrono>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "agent/map_sizes.h"
#include "common/api_client.h"
#include "common/fd.h"
#include "common/subprocess.h"
#include "maps/pinned_map.h"
#include "maps/tendril_maps.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

class AgentLifecycleTest : public ::testing::Test {
 protected:
  void SetUp() override { TND_REQUIRE_ROOT(); }

  std::vector<std::string> Args(std::vector<std::string> extra, bool shared_bpf_cache = true) {
    std::vector<std::string> a = {BinaryPath("tendril-agent"), "--bpffs-root", pins_.path(),
                                  "--state-dir", state_.path(), "--api-socket", Socket(),
                                  "--cgroup-root", cgroup_.path()};
    a.insert(a.end(), extra.begin(), extra.end());
    for (const auto& f : AgentTestFlags(shared_bpf_cache)) a.push_back(f);
    return a;
  }
  std::string Socket() { return state_.path() + "/api.sock"; }

  // A node namespace with one device, eth0 (10.0.0.1/24), and its peer; the
  // agent's arguments for it (tc only).
  static void OneDevice(Netns& ns) {
    ASSERT_EQ(ns.IpBatch({"link add eth0 type veth peer name peer0", "link set eth0 up", "link set peer0 up",
                          "addr add 10.0.0.1/24 dev eth0"}),
              0);
  }
  std::vector<std::string> OneDeviceArgs(const Netns& ns) {
    return Args({"--netns", ns.path(), "--devices", "eth0", "--xdp-mode", "disabled"});
  }
  // The node map's entry now (zero when it cannot be read: the test fails).
  tnd_node_info NodeInfo() {
    auto node = Map<uint32_t, tnd_node_info>::OpenPin(pins_.path() + "/" TND_MAP_NODE, "node");
    EXPECT_TRUE(node.ok()) << node.status();
    auto v = node.ok() ? node->Lookup(0) : absl::StatusOr<std::optional<tnd_node_info>>(node.status());
    return v.ok() && v->has_value() ? **v : tnd_node_info{};
  }

  bool WaitReady(Subprocess& p) { return WaitForAgent(p, Socket()); }

  TempPinRoot pins_;
  TempDir state_;
  TempCgroup cgroup_;
};

std::string RecvNotify(int fd, int timeout_ms) {
  std::string all;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    char buf[512];
    ssize_t n = ::recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
    if (n > 0) {
      all.append(buf, static_cast<size_t>(n));
      all.push_back('\n');
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!all.empty()) break;
  }
  return all;
}

TEST_F(AgentLifecycleTest, NotifiesSystemdWhenReadyAndWhenStopping) {
  std::string path = state_.path() + "/notify.sock";
  UniqueFd sock(::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  ASSERT_EQ(::bind(sock.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)), 0);

  ::setenv("NOTIFY_SOCKET", path.c_str(), 1);
  Subprocess agent(Args({"--xdp-mode", "disabled"}));
  ::unsetenv("NOTIFY_SOCKET");
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  std::string ready = RecvNotify(sock.get(), 5000);
  EXPECT_NE(ready.find("READY=1"), std::string::npos) << ready;
  EXPECT_EQ(agent.Stop(), 0) << agent.Log();
  std::string stopping = RecvNotify(sock.get(), 2000);
  EXPECT_NE(stopping.find("STOPPING=1"), std::string::npos) << stopping;
  struct stat st;
  EXPECT_NE(::stat(Socket().c_str(), &st), 0) << "API socket removed on exit";
}

TEST_F(AgentLifecycleTest, ApiSocketIsRootOnlyAndNotShared) {
  Subprocess agent(Args({"--xdp-mode", "disabled"}));
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  struct stat st;
  ASSERT_EQ(::stat(Socket().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  // A second agent on the same socket must refuse, not steal it.
  std::string out;
  auto rc = RunCommand(Args({"--xdp-mode", "disabled"}), &out);
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(out.find("another agent is serving"), std::string::npos) << out;
  EXPECT_TRUE(CallAgent(Socket(), "status").ok()) << "first agent still answers";
  EXPECT_EQ(agent.Stop(), 0);
}

TEST_F(AgentLifecycleTest, BadSettingsAreRefusedBeforeAnythingHappens) {
  struct Case {
    std::vector<std::string> args;
    int rc;
    std::string says;
  } cases[] = {
      {{"--xdp-mode", "turbo"}, 2, "turbo"},
      {{"--devices", "eth0", "--no-such-flag"}, 2, "no-such-flag"},
      {{"--xdp-mode", "native"}, 2, "no devices"},
      {{"--config", "/nonexistent/agent.yaml"}, 2, "/nonexistent/agent.yaml"},
      {{"--xdp-mode", "disabled", "--cgroup-root", "/tmp"}, 1, "not on a cgroup v2"},
  };
  for (const Case& c : cases) {
    std::string out;
    auto rc = RunCommand(Args(c.args), &out);
    ASSERT_TRUE(rc.ok());
    EXPECT_EQ(*rc, c.rc) << out;
    EXPECT_NE(out.find(c.says), std::string::npos) << out;
  }
  // Nothing was pinned by the refused starts.
  std::string pins;
  Sh({"ls", "-A", pins_.path()}, &pins);
  EXPECT_EQ(pins.find("tnd_"), std::string::npos) << pins;
}

// The run-time build: cached by its inputs, and status says what made the
// agent build again (the first build, a settings change) or that nothing did.
TEST_F(AgentLifecycleTest, RunTimeBuildIsCachedAndSaysWhyItWasRebuilt) {
  if (PrebuiltBpfOnly()) GTEST_SKIP() << "prebuilt objects in this run (TENDRIL_TEST_PREBUILT_BPF)";
  auto start = [&](std::vector<std::string> extra) -> nlohmann::json {
    extra.insert(extra.begin(), {"--xdp-mode", "disabled"});
    Subprocess agent(Args(extra, /*shared_bpf_cache=*/false));
    EXPECT_TRUE(WaitReady(agent)) << agent.Log();
    auto st = CallAgent(Socket(), "status");
    EXPECT_TRUE(st.ok()) << st.status();
    EXPECT_EQ(agent.Stop(), 0);
    return st.ok() ? (*st)["bpf_object"] : nlohmann::json();
  };
  nlohmann::json first = start({});
  EXPECT_EQ(first["cache_hit"], false);
  EXPECT_EQ(first["why"], "first build in this cache");
  nlohmann::json again = start({});
  EXPECT_EQ(again["cache_hit"], true);
  EXPECT_EQ(again["why"], "unchanged");
  EXPECT_EQ(again["cache_key"], first["cache_key"]);
  nlohmann::json resized = start({"--maglev-table-size", "1021"});
  EXPECT_EQ(resized["cache_hit"], false);
  EXPECT_EQ(resized["why"], "config header changed (settings)");
  EXPECT_NE(resized["cache_key"], first["cache_key"]);
}

TEST_F(AgentLifecycleTest, PrebuiltObjectsInsteadOfARunTimeBuild) {
  Subprocess agent(Args({"--xdp-mode", "disabled", "--bpf-object-dir", BpfObjectPath("x").substr(0, BpfObjectPath("x").rfind('/'))}));
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  auto st = CallAgent(Socket(), "status");
  ASSERT_TRUE(st.ok());
  EXPECT_EQ((*st)["bpf_object"]["cache_key"], "prebuilt");
  EXPECT_EQ((*st)["socket_lb"]["attached"].size(), 8u);
  EXPECT_EQ(agent.Stop(), 0);
  std::string out;
  auto rc = RunCommand(Args({"--xdp-mode", "disabled", "--bpf-object-dir", "/tmp", "--maglev-table-size", "65521"}), &out);
  EXPECT_EQ(*rc, 2);
  EXPECT_NE(out.find("prebuilt objects"), std::string::npos) << out;
}

TEST_F(AgentLifecycleTest, UnknownDeviceIsNamedAndNothingIsAttached) {
  Netns ns("lc");
  std::string out;
  auto rc = RunCommand(Args({"--netns", ns.path(), "--devices", "nosuch0", "--xdp-mode", "native"}), &out);
  ASSERT_TRUE(rc.ok());
  EXPECT_EQ(*rc, 1);
  EXPECT_NE(out.find("device nosuch0"), std::string::npos) << out;
}

}  // namespace
}  // namespace tendril::test

namespace tendril::test {
namespace {

// ct-max-entries and friends size the shared preallocated tables in every
// object (the pinned maps' memory); a restart with another size replaces the
// pins, and `tendril status` shows the real sizes.
TEST_F(AgentLifecycleTest, MapSizeSettingsSizeThePinnedTables) {
  auto sizes = [&]() {
    std::map<std::string, uint32_t> out;
    CliResult r = RunCli(Socket(), pins_.path(), {"-o", "json", "status"});
    EXPECT_EQ(r.rc, 0) << r.err;
    nlohmann::json st = nlohmann::json::parse(r.out);
    for (const auto& m : st["maps"])
      out[m["name"].get<std::string>()] = m["max_entries"].get<uint32_t>();
    return out;
  };
  {
    Subprocess agent(Args({"--xdp-mode", "disabled", "--ct-max-entries", "4096", "--nat-max-entries", "8192",
                           "--sock-revnat-max-entries", "2048", "--affinity-max-entries", "1024"}));
    ASSERT_TRUE(WaitReady(agent)) << agent.Log();
    // A table 90% full is named in a warning.
    auto aff = Map<tnd_affinity_key, tnd_affinity_val>::OpenPin(pins_.path() + "/" TND_MAP_AFFINITY, "affinity");
    ASSERT_TRUE(aff.ok()) << aff.status();
    for (uint32_t i = 0; i < 930; ++i) ASSERT_TRUE(aff->Update(tnd_affinity_key{i + 1, 7, 0}, {1, 0}).ok());
    CliResult text = RunCli(Socket(), pins_.path(), {"status"});
    EXPECT_NE(text.out.find("Warning: tnd_affinity is 90% full (930 of 1024)"), std::string::npos) << text.out;
    auto s = sizes();
    EXPECT_EQ(s[TND_MAP_CT_V4], 4096u);
    EXPECT_EQ(s[TND_MAP_CT_V6], 4096u);
    EXPECT_EQ(s[TND_MAP_NAT_V6], 8192u);
    EXPECT_EQ(s[TND_MAP_SK_REVNAT_V4], 2048u);
    EXPECT_EQ(agent.Stop(), 0);
    EXPECT_EQ(agent.Log().find("replacing pinned map"), std::string::npos)
        << "all objects must ask for the same sizes: " << agent.Log();
    EXPECT_EQ(agent.Log().find("resizing pinned map"), std::string::npos) << agent.Log();
  }
  // Defaults: the flow tables follow the node's memory; the resized tables
  // keep their entries (the devices' entry among them).
  const uint32_t ct = FlowTablesFor(AgentConfig{}, NodeMemoryBytes()).ct;
  Subprocess agent(Args({"--xdp-mode", "disabled"}));
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  EXPECT_EQ(sizes()[TND_MAP_CT_V4], ct);
  EXPECT_NE(agent.Log().find(absl::StrCat("max_entries 4096 -> ", ct, "): its entries are carried over")),
            std::string::npos)
      << agent.Log();
  CliResult r = RunCli(Socket(), pins_.path(), {"-o", "json", "status"});
  nlohmann::json st = nlohmann::json::parse(r.out);
  uint64_t total = 0;
  for (const auto& m : st["maps"]) {
    EXPECT_TRUE(m.contains("bytes")) << m.dump();
    total += m.value("bytes", uint64_t{0});
    EXPECT_FALSE(m.contains("warning")) << m.dump();
  }
  EXPECT_GT(total, 1u << 20);
}

// Cached flow paths (tnd_ct_val.hop_*) hold only under the node generation:
// the agent bumps it at start, after a service change, and when the kernel
// reports a neighbour (or route, address, link) change on the node.
TEST_F(AgentLifecycleTest, TheNodeGenerationMovesWithChangesAFlowsPathDependsOn) {
  Netns ns("gen");
  OneDevice(ns);
  Subprocess agent(OneDeviceArgs(ns));
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  auto gen = [&]() { return NodeInfo().gen; };
  // Waits (bounded) for the generation to move past `from`.
  auto moved = [&](uint32_t from) {
    for (int i = 0; i < 100 && gen() == from; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return gen() != from;
  };
  const uint32_t started = gen();
  EXPECT_GT(started, 0u) << "bumped at start";
  CliResult r = RunCli(Socket(), pins_.path(),
                       {"service", "add", "--frontend", "10.96.0.10:80/TCP", "--type", "NodePort", "--node-port",
                        "30080", "--backends", "10.0.0.2:8080"});
  ASSERT_EQ(r.rc, 0) << r.out << r.err;
  EXPECT_GT(gen(), started) << "a service change bumps it";
  const uint32_t before = gen();
  ASSERT_EQ(ns.Exec({"ip", "neigh", "replace", "10.0.0.2", "lladdr", "02:00:00:00:00:22", "dev", "eth0"}), 0);
  EXPECT_TRUE(moved(before)) << "a neighbour change bumps it";
  const uint32_t before_route = gen();
  ASSERT_EQ(ns.Exec({"ip", "route", "add", "10.9.0.0/16", "via", "10.0.0.2"}), 0);
  EXPECT_TRUE(moved(before_route)) << "a route change bumps it";
}

// New flows share next hops (tnd_hops) only while the agent watches and the
// FIB answers by destination alone: a policy rule or a multipath route
// clears TND_NODE_F_HOPS_SHARED, its removal sets it again, and an agent
// that stops leaves it cleared (nobody watches the rules then).
TEST_F(AgentLifecycleTest, NextHopsAreSharedOnlyWhileTheFibAnswersByDestination) {
  Netns ns("hops");
  OneDevice(ns);
  Subprocess agent(OneDeviceArgs(ns));
  ASSERT_TRUE(WaitReady(agent)) << agent.Log();
  auto shared = [&]() { return (NodeInfo().flags & TND_NODE_F_HOPS_SHARED) != 0; };
  // Waits (bounded) for the flag to be `want`.
  auto becomes = [&](bool want) {
    for (int i = 0; i < 100 && shared() != want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    return shared() == want;
  };
  EXPECT_TRUE(shared()) << "the default rules and routes: set at start\n" << agent.Log();
  ASSERT_EQ(ns.Exec({"ip", "rule", "add", "from", "10.9.0.0/16", "table", "100", "priority", "300"}), 0);
  EXPECT_TRUE(becomes(false)) << "a policy rule clears it";
  ASSERT_EQ(ns.Exec({"ip", "rule", "del", "priority", "300"}), 0);
  EXPECT_TRUE(becomes(true)) << "set again when the rule goes";
  ASSERT_EQ(ns.Exec({"ip", "route", "add", "10.5.0.0/16", "nexthop", "via", "10.0.0.2", "dev", "eth0", "nexthop",
                     "via", "10.0.0.3", "dev", "eth0"}),
            0);
  EXPECT_TRUE(becomes(false)) << "a multipath route clears it";
  ASSERT_EQ(ns.Exec({"ip", "route", "del", "10.5.0.0/16"}), 0);
  EXPECT_TRUE(becomes(true));
  EXPECT_EQ(agent.Stop(), 0) << agent.Log();
  EXPECT_FALSE(shared()) << "an agent that stops withdraws it";
  EXPECT_NE(agent.Log().find("next hops shared by new flows"), std::string::npos) << agent.Log();
}

}  // namespace
}  // namespace tendril::test
