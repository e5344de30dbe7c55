#include "agent/state.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "common/file_util.h"

namespace tendril {
namespace {

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tendril-state-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  std::string dir_;
};

TEST_F(StateTest, MissingFileIsEmptyState) {
  auto s = StateStore(dir_).Load();
  ASSERT_TRUE(s.ok());
  EXPECT_TRUE(s->prefilter.empty());
}

TEST_F(StateTest, RoundTrips) {
  StateStore store(dir_);
  DesiredState s;
  s.prefilter.insert(*ParseCidr("10.0.0.0/8"));
  s.prefilter.insert(*ParseCidr("fd00::/16"));
  ASSERT_TRUE(store.Save(s).ok());
  auto back = store.Load();
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->prefilter, s.prefilter);
  // No temp files left behind by the atomic write.
  int files = 0;
  for (auto& e : std::filesystem::directory_iterator(dir_)) (void)e, ++files;
  EXPECT_EQ(files, 1);
}

TEST_F(StateTest, CorruptFileIsAnErrorNamingIt) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", "{not json").ok());
  auto s = StateStore(dir_).Load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("state.json"), std::string::npos);
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", "{\"prefilter\": [\"10.0.0.0/33\"]}").ok());
  EXPECT_FALSE(StateStore(dir_).Load().ok());
}

}  // namespace
}  // namespace tendril

namespace tendril {
namespace {


TEST_F(StateTest, EndpointsRoundTripWithoutKernelFacts) {
  StateStore store(dir_);
  DesiredState s;
  Endpoint e;
  e.id = 7;
  e.ifname = "lxc7";
  e.netns = "/run/netns/pod7";
  e.ips = {*ParseIp("10.200.1.7"), *ParseIp("fd20::7")};
  e.ifindex = 42;  // a fact: read again at start, not persisted
  s.endpoints.push_back(e);
  ASSERT_TRUE(store.Save(s).ok());
  auto back = store.Load();
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->endpoints.size(), 1u);
  EXPECT_EQ(back->endpoints[0].id, 7u);
  EXPECT_EQ(back->endpoints[0].ifname, "lxc7");
  EXPECT_EQ(back->endpoints[0].netns, "/run/netns/pod7");
  EXPECT_EQ(back->endpoints[0].ips, e.ips);
  EXPECT_EQ(back->endpoints[0].ifindex, 0);
}

TEST(EndpointValidationTest, NamesWhatIsWrong) {
  Endpoint a;
  a.id = 1;
  a.ifname = "lxc1";
  a.ips = {*ParseIp("10.200.1.1")};
  EXPECT_TRUE(ValidateEndpoint(a, {}, {"eth0"}).ok());
  auto check = [&](Endpoint e, const std::vector<Endpoint>& existing, const std::string& says) {
    auto st = ValidateEndpoint(e, existing, {"eth0"});
    EXPECT_FALSE(st.ok()) << says;
    EXPECT_NE(st.message().find(says), std::string::npos) << st;
  };
  Endpoint b = a;
  b.id = 0;
  check(b, {}, "1-65535");
  b = a;
  b.ifname = "eth0";
  check(b, {}, "native device");
  b = a;
  b.ifname = "a/b";
  check(b, {}, "valid device name");
  b = a;
  b.ips = {*ParseIp("224.0.0.1")};
  check(b, {}, "cannot be an endpoint address");
  b = a;
  b.ips = {*ParseIp("fe80::1")};
  check(b, {}, "cannot be an endpoint address");
  b = a;
  b.ips = {*ParseIp("10.0.0.1"), *ParseIp("10.0.0.2")};
  check(b, {}, "one address per family");
  b = a;
  b.id = 2;
  b.ifname = "lxc2";
  check(b, {a}, "belongs to endpoint 1");
  b = a;
  b.ips = {*ParseIp("10.200.1.2")};
  check(b, {a}, "endpoint id 1 is taken");
  b = a;
  b.id = 2;
  b.netns = "/run/netns/tndt-surely-not-there";
  b.ips = {*ParseIp("10.200.1.2")};
  b.ifname = "lxc2";
  check(b, {a}, "tndt-surely-not-there");
}

}  // namespace
}  // namespace tendril
