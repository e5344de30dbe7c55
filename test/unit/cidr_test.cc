#include "network/cidr.h"

#include <gtest/gtest.h>

namespace tendril {
namespace {

TEST(CidrTest, ParsesIpv4WithPrefix) {
  auto c = ParseCidr("192.0.2.0/24");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->family, Family::kV4);
  EXPECT_EQ(c->prefix_len, 24);
  EXPECT_EQ(c->ToString(), "192.0.2.0/24");
}

TEST(CidrTest, BareAddressIsHostPrefix) {
  EXPECT_EQ(ParseCidr("10.1.2.3")->ToString(), "10.1.2.3/32");
  EXPECT_EQ(ParseCidr("2001:db8::1")->ToString(), "2001:db8::1/128");
}

TEST(CidrTest, ClearsHostBitsAndSaysSo) {
  bool host_bits = false;
  auto c = ParseCidr("10.1.2.3/8", &host_bits);
  ASSERT_TRUE(c.ok());
  EXPECT_TRUE(host_bits);
  EXPECT_EQ(c->ToString(), "10.0.0.0/8");
  ASSERT_TRUE(ParseCidr("10.0.0.0/8", &host_bits).ok());
  EXPECT_FALSE(host_bits);
  EXPECT_EQ(ParseCidr("2001:db8:ffff::/33")->ToString(), "2001:db8:8000::/33");
}

TEST(CidrTest, ZeroPrefixMatchesEverything) {
  EXPECT_EQ(ParseCidr("1.2.3.4/0")->ToString(), "0.0.0.0/0");
  EXPECT_EQ(ParseCidr("::/0")->ToString(), "::/0");
}

TEST(CidrTest, ParsesIpv6) {
  auto c = ParseCidr("fd00:10::/64");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->family, Family::kV6);
  EXPECT_EQ(c->prefix_len, 64);
  EXPECT_EQ(c->ToString(), "fd00:10::/64");
}

void ExpectBad(const std::string& text, const std::string& fragment) {
  auto c = ParseCidr(text);
  ASSERT_FALSE(c.ok()) << text << " parsed as " << c->ToString();
  EXPECT_TRUE(absl::IsInvalidArgument(c.status()));
  std::string msg(c.status().message());
  EXPECT_NE(msg.find("\"" + text + "\""), std::string::npos) << msg;
  EXPECT_NE(msg.find(fragment), std::string::npos) << msg;
}

TEST(CidrTest, RejectsBadInputNamingIt) {
  ExpectBad("10.0.0.0/33", "out of range for IPv4");
  ExpectBad("fd00::/129", "out of range for IPv6");
  ExpectBad("fd00::1junk/64", "not an IPv6 address");
  ExpectBad("fd00::zz", "not an IPv6 address");
  ExpectBad("10.0.0/24", "not an IPv4 address");
  ExpectBad("300.1.1.1/32", "not an IPv4 address");
  ExpectBad("hello", "not an IPv4 address");
  ExpectBad("10.0.0.0/", "missing prefix length");
  ExpectBad("10.0.0.0/-1", "not a number");
  ExpectBad("10.0.0.0/+8", "not a number");
  ExpectBad("10.0.0.0/ 8", "not a number");
  ExpectBad("10.0.0.0/8/8", "not a number");
  ExpectBad("10.0.0.0/0008", "out of range");
  EXPECT_FALSE(ParseCidr("").ok());
}

TEST(CidrTest, OrdersByFamilyThenAddressThenLength) {
  EXPECT_LT(*ParseCidr("10.0.0.0/8"), *ParseCidr("10.0.0.0/16"));
  EXPECT_LT(*ParseCidr("255.0.0.0/8"), *ParseCidr("::/0"));
}

}  // namespace
}  // namespace tendril
