// network/route_table.h against the kernel: in a namespace with the kinds
// of routes a node has (connected, /32 to a pod's veth, via a gateway,
// default, several metrics) and the kinds it leaves to the kernel
// (blackhole, unreachable, multipath), every address it answers gets the
// answer RTM_GETROUTE gives, and LookupRoutes (which uses it) gives what one
// lookup per address gives. A policy rule makes it step aside. It says
// whether the FIB answers by destination alone (TND_NODE_F_HOPS_SHARED), and
// the agent's link watch reports the rule changes that decide it.
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "network/netlink.h"
#include "network/route_table.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

class RouteTableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (const auto& c : std::vector<std::vector<std::string>>{
             {"ip", "link", "set", "lo", "up"},
             {"ip", "link", "add", "a0", "type", "veth", "peer", "name", "a1"},
             {"ip", "link", "set", "a0", "up"},
             {"ip", "link", "set", "a1", "up"},
             {"ip", "addr", "add", "10.0.0.1/24", "dev", "a0"},
             {"ip", "-6", "addr", "add", "fd00::1/64", "dev", "a0", "nodad"},
             {"ip", "route", "add", "10.1.1.5/32", "dev", "a1"},
             {"ip", "route", "add", "10.2.0.0/16", "via", "10.0.0.2", "dev", "a0"},
             {"ip", "route", "add", "default", "via", "10.0.0.254", "dev", "a0"},
             {"ip", "route", "add", "blackhole", "10.3.0.0/16"},
             {"ip", "route", "add", "unreachable", "10.4.0.0/16"},
             {"ip", "route", "add", "10.5.0.0/16", "nexthop", "via", "10.0.0.2", "dev", "a0", "nexthop", "via",
              "10.0.0.3", "dev", "a0"},
             {"ip", "route", "add", "10.6.0.0/16", "via", "10.0.0.2", "dev", "a0", "metric", "10"},
             {"ip", "route", "add", "10.6.0.0/16", "dev", "a1", "metric", "5"},
             {"ip", "-6", "route", "add", "fd01::/64", "dev", "a1"},
             {"ip", "-6", "route", "add", "fd01::5/128", "dev", "a0"},
             {"ip", "-6", "route", "add", "default", "via", "fd00::2", "dev", "a0"}})
      ASSERT_EQ(ns_.Exec(c), 0) << absl::StrJoin(c, " ");
  }
  Netns ns_{"rtt"};
};

std::string Text(const std::optional<RouteInfo>& r) {
  return r ? absl::StrCat("oif ", r->oif, r->local_address ? " local" : "") : "no route";
}

TEST_F(RouteTableTest, AnswersWhatTheKernelAnswersAndLeavesTheRestToIt) {
  NetnsGuard in(ns_);
  auto table = RouteTable::Load();
  ASSERT_TRUE(table.ok()) << table.status();
  ASSERT_TRUE(table->has_value()) << "the default rules are plain";
  const std::vector<std::string> answered = {"10.0.0.1", "10.0.0.7",  "10.1.1.5", "10.1.1.6",  "10.2.3.4",
                                             "10.6.1.1", "192.0.2.9", "127.0.0.1", "fd00::1",  "fd00::9",
                                             "fd01::1",  "fd01::5",   "2001:db8::1", "::1"};
  for (const std::string& text : answered) {
    IpAddr ip = *ParseIp(text);
    RouteInfo r;
    auto answer = (*table)->Lookup(ip, &r);
    ASSERT_NE(answer, RouteTable::Answer::kAskKernel) << text;
    auto kernel = LookupRoute(ip);
    ASSERT_TRUE(kernel.ok()) << text << ": " << kernel.status();
    EXPECT_EQ(Text(answer == RouteTable::Answer::kRoute ? std::optional<RouteInfo>(r) : std::nullopt),
              Text(*kernel))
        << text;
  }
  for (const char* text : {"10.3.0.1", "10.4.0.1", "10.5.0.1"}) {
    RouteInfo r;
    EXPECT_EQ((*table)->Lookup(*ParseIp(text), &r), RouteTable::Answer::kAskKernel) << text;
  }
  // The batched path (the table for most, the kernel for the multipath
  // route) against a lookup per address.
  std::vector<IpAddr> many;
  for (int i = 0; i < 100; ++i)
    for (const std::string& text : {answered[static_cast<size_t>(i) % answered.size()], std::string("10.5.0.9")})
      many.push_back(*ParseIp(text));
  auto all = LookupRoutes(many);
  ASSERT_TRUE(all.ok()) << all.status();
  for (size_t i = 0; i < many.size(); ++i) EXPECT_EQ(Text((*all)[i]), Text(*LookupRoute(many[i]))) << many[i].ToString();
}

TEST_F(RouteTableTest, APolicyRuleLeavesEveryAddressToTheKernel) {
  ASSERT_EQ(ns_.Exec({"ip", "rule", "add", "from", "10.9.0.0/16", "table", "100"}), 0);
  NetnsGuard in(ns_);
  auto table = RouteTable::Load();
  ASSERT_TRUE(table.ok()) << table.status();
  EXPECT_FALSE(table->has_value());
  std::vector<IpAddr> many(100, *ParseIp("10.1.1.5"));
  auto all = LookupRoutes(many);
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(Text((*all)[99]), Text(*LookupRoute(many[99])));
}

bool PerDestination() {
  auto table = RouteTable::Load();
  EXPECT_TRUE(table.ok()) << table.status();
  return table.ok() && table->has_value() && (*table)->PerDestination();
}

TEST_F(RouteTableTest, TheFibAnswersByDestinationOnlyWithoutRoutesThatPickByFlow) {
  NetnsGuard in(ns_);
  EXPECT_FALSE(PerDestination()) << "10.5.0.0/16 has two next hops";
  ASSERT_EQ(ns_.Exec({"ip", "route", "del", "10.5.0.0/16"}), 0);
  EXPECT_TRUE(PerDestination()) << "blackhole, unreachable and metrics pick by destination";
  ASSERT_EQ(ns_.Exec({"ip", "nexthop", "add", "id", "1", "via", "10.0.0.2", "dev", "a0"}), 0);
  EXPECT_TRUE(PerDestination()) << "a nexthop object no route uses";
  const std::vector<std::pair<std::vector<std::string>, std::vector<std::string>>> by_flow = {
      {{"ip", "-6", "route", "add", "fd02::/64", "from", "fd00::/64", "via", "fd00::2", "dev", "a0"},
       {"ip", "-6", "route", "del", "fd02::/64", "from", "fd00::/64"}},
      {{"ip", "-6", "route", "add", "fd03::/64", "nexthop", "via", "fd00::2", "dev", "a0", "nexthop", "via", "fd00::3",
        "dev", "a0"},
       {"ip", "-6", "route", "del", "fd03::/64"}},
      {{"ip", "route", "add", "10.8.0.0/16", "nhid", "1"}, {"ip", "route", "del", "10.8.0.0/16"}},
      {{"ip", "route", "add", "10.7.0.0/16", "tos", "0x10", "via", "10.0.0.2", "dev", "a0"},
       {"ip", "route", "del", "10.7.0.0/16", "tos", "0x10"}},
      {{"ip", "rule", "add", "fwmark", "7", "table", "main", "priority", "100"},
       {"ip", "rule", "del", "priority", "100"}}};
  for (const auto& [add, del] : by_flow) {
    ASSERT_EQ(ns_.Exec(add), 0) << absl::StrJoin(add, " ");
    EXPECT_FALSE(PerDestination()) << absl::StrJoin(add, " ");
    ASSERT_EQ(ns_.Exec(del), 0) << absl::StrJoin(del, " ");
    EXPECT_TRUE(PerDestination()) << absl::StrJoin(del, " ");
  }
}

TEST_F(RouteTableTest, TheLinkWatchReportsRuleChanges) {
  std::unique_ptr<LinkWatcher> watch;
  {
    NetnsGuard in(ns_);
    auto w = LinkWatcher::Open();
    ASSERT_TRUE(w.ok()) << w.status();
    watch = std::move(*w);
  }
  ASSERT_EQ(ns_.Exec({"ip", "rule", "add", "from", "10.9.0.0/16", "table", "100", "priority", "200"}), 0);
  ASSERT_EQ(ns_.Exec({"ip", "-6", "rule", "add", "from", "fd09::/64", "table", "100", "priority", "200"}), 0);
  ASSERT_EQ(ns_.Exec({"ip", "rule", "del", "priority", "200"}), 0);
  int added = 0, deleted = 0;
  for (const LinkEvent& e : watch->Read())
    if (e.kind == LinkEvent::Kind::kRule) (e.deleted ? deleted : added) += 1;
  EXPECT_EQ(added, 2) << "one IPv4 and one IPv6 rule";
  EXPECT_EQ(deleted, 1);
}

}  // namespace
}  // namespace tendril::test
