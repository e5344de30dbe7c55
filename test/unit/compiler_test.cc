#include "datapath/compiler.h"

#include <gtest/gtest.h>

namespace tendril {
namespace {

const std::map<std::string, std::string> kSources = {{"bpf/a.c", "int a;"}, {"bpf/lib/b.h", "int b;"}};

TEST(CacheKeyTest, StableForSameInputs) {
  EXPECT_EQ(CacheKey(kSources, "hdr", "clang 14"), CacheKey(kSources, "hdr", "clang 14"));
  EXPECT_EQ(CacheKey(kSources, "hdr", "clang 14").size(), 16u);
}

TEST(CacheKeyTest, ChangesWithEveryInput) {
  std::string base = CacheKey(kSources, "hdr", "clang 14");
  auto changed_src = kSources;
  changed_src["bpf/a.c"] = "int a; ";
  EXPECT_NE(CacheKey(changed_src, "hdr", "clang 14"), base);
  auto renamed = kSources;
  renamed.erase("bpf/a.c");
  renamed["bpf/c.c"] = "int a;";
  EXPECT_NE(CacheKey(renamed, "hdr", "clang 14"), base);
  EXPECT_NE(CacheKey(kSources, "hdr2", "clang 14"), base);
  EXPECT_NE(CacheKey(kSources, "hdr", "clang 15"), base);
}

TEST(CacheKeyTest, BoundariesBetweenInputsMatter) {
  // Moving bytes from one input to the next must change the key.
  EXPECT_NE(CacheKey({}, "ab", "c"), CacheKey({}, "a", "bc"));
  EXPECT_NE(CacheKey({{"x", "yz"}}, "", ""), CacheKey({{"xy", "z"}}, "", ""));
}

TEST(ConfigHeaderTest, RendersFeaturesAndDevices) {
  NodeFacts n{"node1", {{{}, "eth0", 3, "02:00:00:00:00:01"}}};
  std::string h = RenderConfigHeader(n, Features{true, false, true});
  EXPECT_NE(h.find("#define TENDRIL_ENABLE_IPV4 1"), std::string::npos);
  EXPECT_NE(h.find("#define TENDRIL_ENABLE_IPV6 0"), std::string::npos);
  EXPECT_NE(h.find("#define TENDRIL_DEVICE_0_IFINDEX 3"), std::string::npos);
  EXPECT_NE(h.find("TENDRIL_NODE_NAME \"node1\""), std::string::npos);
  EXPECT_EQ(h, RenderConfigHeader(n, Features{true, false, true}));
}

}  // namespace
}  // namespace tendril
