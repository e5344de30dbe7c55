// The benchmark's kube-proxy baselines are real: the generated rulesets load
// into the kernel (iptables legacy and nf_tables back ends, nftables) and
// DNAT a connection to a ClusterIP; the backend change each mode writes takes
// effect.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include "common/fd.h"
#include "test/support/kube_proxy_rules.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

using bench::KpService;

class KubeProxyRulesLoadTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    node_ = std::make_unique<Netns>("kpn");
    client_ = std::make_unique<Netns>("kpc");
    backend_ = std::make_unique<Netns>("kpb");
    ConnectVeth(*client_, "eth0", "10.1.0.2/24", *node_, "c0", "10.1.0.1/24");
    ConnectVeth(*backend_, "eth0", "10.2.0.2/24", *node_, "b0", "10.2.0.1/24");
    ASSERT_EQ(client_->Exec({"ip", "route", "add", "default", "via", "10.1.0.1"}), 0);
    ASSERT_EQ(backend_->Exec({"ip", "route", "add", "default", "via", "10.2.0.1"}), 0);
    ASSERT_EQ(node_->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1"}), 0);
    dir_ = std::make_unique<TempDir>();
  }

  // A listening socket in the backend namespace.
  UniqueFd Listen(uint16_t port) {
    NetnsGuard in(*backend_);
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    EXPECT_EQ(::bind(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
    EXPECT_EQ(::listen(fd.get(), 16), 0);
    return fd;
  }

  bool ConnectVip() {
    NetnsGuard in(*client_);
    UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    timeval tv{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    sockaddr_in sa{};
    sa.sin_family = AF_INET;
    sa.sin_port = htons(80);
    inet_pton(AF_INET, "10.96.0.10", &sa.sin_addr);
    return ::connect(fd.get(), reinterpret_cast<sockaddr*>(&sa), sizeof(sa)) == 0;
  }

  static bool Accepted(const UniqueFd& ls) {
    int c = ::accept4(ls.get(), nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return false;
    ::close(c);
    return true;
  }

  int Load(const std::string& text, bool change) {
    std::string path = dir_->path() + "/rules";
    FILE* f = std::fopen(path.c_str(), "w");
    std::fwrite(text.data(), 1, text.size(), f);
    std::fclose(f);
    std::string mode = GetParam(), out;
    std::vector<std::string> argv = {"nsenter", "--net=" + node_->path()};
    if (mode == "nftables") {
      argv.insert(argv.end(), {"nft", "-f", path});
    } else {
      argv.push_back(mode == "iptables-legacy" ? "iptables-legacy-restore" : "iptables-nft-restore");
      if (change) argv.push_back("--noflush");
      argv.push_back(path);
    }
    int rc = Sh(argv, &out);
    EXPECT_EQ(rc, 0) << out;
    return rc;
  }

  std::unique_ptr<Netns> node_, client_, backend_;
  std::unique_ptr<TempDir> dir_;
};

TEST_P(KubeProxyRulesLoadTest, ClusterIpIsDnatedAndABackendChangeTakesEffect) {
  std::vector<KpService> services = {
      {"default", "other", "http", "10.96.0.9", 80, "tcp", {{"10.244.9.9", 80}, {"10.244.9.10", 80}}},
      {"default", "web", "http", "10.96.0.10", 80, "tcp", {{"10.2.0.2", 8080}}},
  };
  UniqueFd l8080 = Listen(8080), l9090 = Listen(9090);
  ASSERT_EQ(Load(GetParam() == "nftables" ? bench::NftFull(services) : bench::IptablesFull(services), false), 0);
  ASSERT_TRUE(ConnectVip());
  usleep(50000);
  EXPECT_TRUE(Accepted(l8080));
  EXPECT_FALSE(Accepted(l9090));

  KpService before = services[1];
  services[1].endpoints = {{"10.2.0.2", 9090}};
  ASSERT_EQ(Load(GetParam() == "nftables" ? bench::NftChange(before, services[1])
                                          : bench::IptablesPartial(services, 1, before),
                 true),
            0);
  ASSERT_TRUE(ConnectVip());
  usleep(50000);
  EXPECT_TRUE(Accepted(l9090));
  EXPECT_FALSE(Accepted(l8080));
}

INSTANTIATE_TEST_SUITE_P(Modes, KubeProxyRulesLoadTest,
                         ::testing::Values("iptables-legacy", "iptables-nft", "nftables"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& c : n)
                             if (c == '-') c = '_';
                           return n;
                         });

}  // namespace
}  // namespace tendril::test
