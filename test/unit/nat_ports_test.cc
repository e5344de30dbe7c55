// The NAT port range beside the node's ephemeral ports: reading the sysctls
// and adding the range to the reserved list (agent/nat_ports.h), on files
// laid out like /proc/sys/net/ipv4.
#include "agent/nat_ports.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "common/file_util.h"

namespace tendril {
namespace {

TEST(NatPortsTest, ParsesTheEphemeralRange) {
  auto r = ParseLocalPortRange("32768\t60999\n");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->min, 32768);
  EXPECT_EQ(r->max, 60999);
  EXPECT_FALSE(ParseLocalPortRange("32768").ok());
  EXPECT_FALSE(ParseLocalPortRange("60999 32768").ok());
  EXPECT_FALSE(ParseLocalPortRange("a b").ok());
}

TEST(NatPortsTest, AddsTheRangeToTheReservedListOnce) {
  EXPECT_EQ(AddReservedPorts("\n", {1024, 29999}), "1024-29999");
  EXPECT_EQ(AddReservedPorts("8080\n", {1024, 29999}), "8080,1024-29999");
  EXPECT_EQ(AddReservedPorts("1000-30000\n", {1024, 29999}), "1000-30000");  // covered already
  EXPECT_EQ(AddReservedPorts("1024-29999,40000", {1024, 29999}), "1024-29999,40000");
  EXPECT_EQ(AddReservedPorts("1024-2000", {1024, 29999}), "1024-2000,1024-29999");
}

class NatPortsDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / ("tnd-natports-" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir_);
    Write("ip_local_port_range", "32768\t60999\n");
    Write("ip_local_reserved_ports", "\n");
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  void Write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name) << text; }
  std::string Read(const std::string& name) { return ReadFile((dir_ / name).string()).value_or("?"); }
  std::filesystem::path dir_;
};

TEST_F(NatPortsDirTest, ReservesARangeOutsideTheEphemeralPorts) {
  ASSERT_TRUE(ReserveNatPorts({1024, 29999}, dir_.string()).ok());
  EXPECT_EQ(Read("ip_local_reserved_ports"), "1024-29999\n");
  ASSERT_TRUE(ReserveNatPorts({1024, 29999}, dir_.string()).ok());  // again: nothing to add
  EXPECT_EQ(Read("ip_local_reserved_ports"), "1024-29999\n");
}

TEST_F(NatPortsDirTest, RefusesAnOverlapAndNamesBothRanges) {
  auto st = ReserveNatPorts({30000, 40000}, dir_.string());
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("nat-port-range 30000-40000 overlaps net.ipv4.ip_local_port_range 32768-60999"),
            std::string::npos)
      << st.message();
  EXPECT_EQ(Read("ip_local_reserved_ports"), "\n");  // nothing written
}

}  // namespace
}  // namespace tendril
