#include "agent/config.h"
#include "agent/map_sizes.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>
#include <vector>

namespace tendril {
namespace {

absl::StatusOr<ParsedArgs> Parse(std::vector<std::string> args) {
  std::vector<const char*> argv = {"tendril-agent"};
  for (auto& a : args) argv.push_back(a.c_str());
  return ParseAgentArgs(static_cast<int>(argv.size()), argv.data());
}

std::string WriteTemp(const std::string& text) {
  char path[] = "/tmp/tendril-config-test-XXXXXX";
  int fd = mkstemp(path);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(write(fd, text.data(), text.size()), static_cast<ssize_t>(text.size()));
  close(fd);
  return path;
}

TEST(ConfigTest, DefaultsWithDevices) {
  auto p = Parse({"--devices", "eth0,eth1"});
  ASSERT_TRUE(p.ok()) << p.status();
  const AgentConfig& c = p->config;
  EXPECT_EQ(c.devices, (std::vector<std::string>{"eth0", "eth1"}));
  EXPECT_EQ(c.xdp_mode, XdpMode::kAuto);
  EXPECT_EQ(c.bpffs_root, "/sys/fs/bpf/tendril");
  EXPECT_EQ(c.state_dir, "/var/lib/tendril");
  EXPECT_EQ(c.api_socket, "/run/tendril/tendril.sock");
  EXPECT_FALSE(c.cleanup_on_exit);
  EXPECT_FALSE(c.bpf_dir.empty());
}

TEST(ConfigTest, YamlKeysMatchFlagsAndFlagsWin) {
  std::string path = WriteTemp(
      "devices: [veth0, veth1]\n"
      "xdp-mode: generic\n"
      "bpffs-root: /sys/fs/bpf/t1\n"
      "state-dir: /tmp/t1\n"
      "api-socket: /tmp/t1.sock\n"
      "cleanup-on-exit: true\n"
      "enable-ipv6: false\n");
  auto p = Parse({"--config", path, "--xdp-mode", "native", "--state-dir", "/tmp/t2"});
  unlink(path.c_str());
  ASSERT_TRUE(p.ok()) << p.status();
  const AgentConfig& c = p->config;
  EXPECT_EQ(c.devices, (std::vector<std::string>{"veth0", "veth1"}));
  EXPECT_EQ(c.xdp_mode, XdpMode::kNative);     // flag wins
  EXPECT_EQ(c.state_dir, "/tmp/t2");           // flag wins
  EXPECT_EQ(c.bpffs_root, "/sys/fs/bpf/t1");   // from YAML
  EXPECT_EQ(c.api_socket, "/tmp/t1.sock");
  EXPECT_TRUE(c.cleanup_on_exit);
  EXPECT_FALSE(c.enable_ipv6);
}

TEST(ConfigTest, DevicesAsCommaStringInYaml) {
  AgentConfig c;
  ASSERT_TRUE(ApplyYamlConfig("devices: eth0,eth1\n", &c).ok());
  EXPECT_EQ(c.devices.size(), 2u);
}

TEST(ConfigTest, UnknownYamlKeyIsNamed) {
  AgentConfig c;
  auto s = ApplyYamlConfig("devcies: [eth0]\n", &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("unknown setting \"devcies\""), std::string::npos) << s;
}

// Found by fuzz_config (session 7): a flow sequence as a setting name made
// yaml-cpp's conversion throw out of ApplyYamlConfig and abort the agent.
TEST(ConfigTest, ANonScalarSettingNameIsAnErrorNotACrash) {
  AgentConfig cfg;
  for (const char* text : {"[eth1]: x\n", "{a: b}: 1\n", "? [a, b]\n: c\n", "devices: eth0\n[eth1]\n"}) {
    absl::Status s = ApplyYamlConfig(text, &cfg);
    EXPECT_FALSE(s.ok()) << text;
    EXPECT_NE(s.message().find("config"), std::string::npos) << s;
  }
}

TEST(ConfigTest, BadValuesAreNamed) {
  auto p = Parse({"--devices", "eth0", "--xdp-mode", "turbo"});
  ASSERT_FALSE(p.ok());
  EXPECT_NE(p.status().message().find("turbo"), std::string::npos);

  AgentConfig c;
  auto s = ApplyYamlConfig("cleanup-on-exit: maybe\n", &c);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.message().find("cleanup-on-exit"), std::string::npos) << s;

  s = ApplyYamlConfig("- a\n- b\n", &c);
  EXPECT_FALSE(s.ok());
  s = ApplyYamlConfig("devices: [eth0\n", &c);
  EXPECT_FALSE(s.ok());
}

TEST(ConfigTest, ValidationCatchesInconsistentSettings) {
  EXPECT_FALSE(Parse({}).ok());  // no devices, XDP not disabled
  EXPECT_TRUE(Parse({"--xdp-mode", "disabled"}).ok());
  EXPECT_FALSE(Parse({"--devices", "eth0", "--bpffs-root", "relative/path"}).ok());
  EXPECT_FALSE(Parse({"--devices", "averyveryverylongname0"}).ok());
  EXPECT_FALSE(Parse({"--devices", "eth0", "--enable-ipv4", "false", "--enable-ipv6", "false"}).ok());
  EXPECT_FALSE(Parse({"--devices", "eth0", "--no-such-flag"}).ok());
}

TEST(ConfigTest, HelpAndVersionExit) {
  auto p = Parse({"--help"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->exit_now);
  EXPECT_NE(p->message.find("--xdp-mode"), std::string::npos);
  p = Parse({"--version"});
  ASSERT_TRUE(p.ok());
  EXPECT_TRUE(p->exit_now);
}

}  // namespace
}  // namespace tendril

namespace tendril {
namespace {

TEST(ConfigTest, PerDeviceXdpModesAndNodePortSettings) {
  auto p = Parse({"--devices", "eth0,eth1:generic,eth2:disabled", "--xdp-mode", "native", "--node-port-range",
                  "31000-31999", "--ct-gc-interval", "5"});
  ASSERT_TRUE(p.ok()) << p.status();
  const AgentConfig& c = p->config;
  EXPECT_EQ(c.devices, (std::vector<std::string>{"eth0", "eth1", "eth2"}));
  EXPECT_EQ(c.XdpModeFor("eth0"), XdpMode::kNative);
  EXPECT_EQ(c.XdpModeFor("eth1"), XdpMode::kGeneric);
  EXPECT_EQ(c.XdpModeFor("eth2"), XdpMode::kDisabled);
  EXPECT_EQ(c.node_port_min, 31000);
  EXPECT_EQ(c.node_port_max, 31999);
  EXPECT_EQ(c.ct_gc_interval, 5u);

  auto bad = Parse({"--devices", "eth0:turbo"});
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("device eth0"), absl::string_view::npos) << bad.status();
  auto off = Parse({"--devices", "eth0:offload"});
  ASSERT_FALSE(off.ok());
  EXPECT_NE(off.status().message().find("not per device"), absl::string_view::npos) << off.status();
  for (const char* r : {"32000-31000", "0-100", "30000", "a-b", "30000-70000"}) {
    auto pr = Parse({"--devices", "eth0", "--node-port-range", r});
    ASSERT_FALSE(pr.ok()) << r;
    EXPECT_NE(pr.status().message().find("node-port-range"), absl::string_view::npos) << pr.status();
  }
}

}  // namespace
}  // namespace tendril

namespace tendril {
namespace {

TEST(ConfigTest, EndpointSettings) {
  AgentConfig c;
  ASSERT_TRUE(ApplyYamlConfig("pod-cidrs: [10.200.0.0/16, fd20::/16]\nmasquerade-exempt: 192.0.2.0/24\n"
                              "enable-masquerade: false\n",
                              &c)
                  .ok());
  EXPECT_EQ(c.pod_cidrs, (std::vector<std::string>{"10.200.0.0/16", "fd20::/16"}));
  EXPECT_EQ(c.masquerade_exempt, (std::vector<std::string>{"192.0.2.0/24"}));
  EXPECT_FALSE(c.enable_masquerade);
  auto bad = ApplyYamlConfig("pod-cidrs: [10.200.0.0/33]\n", &c);
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.message().find("pod-cidrs"), std::string::npos) << bad;
  EXPECT_NE(bad.message().find("10.200.0.0/33"), std::string::npos) << bad;
}

TEST(ConfigTest, MapSizeSettings) {
  auto p = Parse({"--xdp-mode", "disabled", "--ct-max-entries", "65536", "--nat-max-entries", "32768",
                  "--sock-revnat-max-entries", "4096"});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->config.ct_max_entries, 65536u);
  EXPECT_EQ(p->config.nat_max_entries, 32768u);
  EXPECT_EQ(p->config.sock_revnat_max_entries, 4096u);
  AgentConfig d;
  EXPECT_EQ(d.ct_max_entries, 0u) << "auto: from the memory ratio";
  auto a = Parse({"--xdp-mode", "disabled", "--ct-max-entries", "auto", "--map-dynamic-size-ratio", "0.002",
                  "--lb-service-map-max", "100000", "--lb-revnat-map-max", "5000"});
  ASSERT_TRUE(a.ok()) << a.status();
  EXPECT_EQ(a->config.ct_max_entries, 0u);
  EXPECT_DOUBLE_EQ(a->config.map_dynamic_size_ratio, 0.002);
  EXPECT_EQ(a->config.lb_service_map_max, 100000u);
  EXPECT_EQ(a->config.lb_revnat_map_max, 5000u);
  for (const char* bad : {"--ct-max-entries=100", "--nat-max-entries=99999999999", "--ct-max-entries=lots",
                          "--map-dynamic-size-ratio=0", "--map-dynamic-size-ratio=0.5", "--lb-revnat-map-max=10",
                          "--affinity-max-entries=-1"}) {
    auto r = Parse({"--xdp-mode", "disabled", bad});
    ASSERT_FALSE(r.ok()) << bad;
    std::string flag = std::string(bad).substr(2, std::string(bad).find('=') - 2);
    EXPECT_NE(r.status().message().find(flag), std::string::npos) << r.status();
  }
}

// The flow tables follow the node's memory unless set; a setting wins; the
// share of each stays within its bounds.
TEST(ConfigTest, FlowTablesFollowTheNodesMemory) {
  AgentConfig c;
  constexpr uint64_t kGiB = 1ull << 30;
  FlowTableSizes small = FlowTablesFor(c, 1 * kGiB), big = FlowTablesFor(c, 64 * kGiB);
  EXPECT_EQ(small.ct, kFlowTableMin) << "1 GiB x 0.0025 is below the floor";
  EXPECT_GT(big.ct, 4 * kFlowTableMin);
  EXPECT_GT(big.nat, 2 * kFlowTableMin);
  // The budget is what the tables take (within one entry each).
  const double bytes = 2.0 * big.ct * HashEntryBytes(sizeof(tnd_ct_key), sizeof(tnd_ct_val)) +
                       2.0 * big.nat * HashEntryBytes(sizeof(tnd_nat_key), sizeof(tnd_nat_val)) +
                       2.0 * big.sock_revnat * HashEntryBytes(sizeof(tnd_sk_revnat6_key), sizeof(tnd_sk_revnat_val)) +
                       1.0 * big.affinity * HashEntryBytes(sizeof(tnd_affinity_key), sizeof(tnd_affinity_val));
  auto pow2 = [](double n) {
    double p = 1;
    while (p < n) p *= 2;
    return p;
  };
  const double buckets = 16.0 * (2 * pow2(big.ct) + 2 * pow2(big.nat) + 2 * pow2(big.sock_revnat) + pow2(big.affinity));
  EXPECT_LE(bytes + buckets, 0.0025 * 64 * kGiB) << "entries and buckets within the budget";
  EXPECT_GT(bytes, 0.6 * 0.0025 * 64 * kGiB) << "and most of it used";
  c.ct_max_entries = 4096;
  c.map_dynamic_size_ratio = 0.005;
  FlowTableSizes set = FlowTablesFor(c, 64 * kGiB);
  EXPECT_EQ(set.ct, 4096u);
  EXPECT_GE(set.nat, 2 * big.nat - 1);
  auto sizes = MapSizes(c, 64 * kGiB);
  EXPECT_EQ(sizes.at(TND_MAP_CT_V4), 4096u);
  EXPECT_EQ(sizes.at(TND_MAP_CT_V6), 4096u);
  EXPECT_EQ(sizes.at(TND_MAP_MAGLEV), c.maglev_max_services);
}

}  // namespace
}  // namespace tendril
