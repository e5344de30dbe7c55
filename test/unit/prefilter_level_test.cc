// The prefilter's first level (agent/prefilter.h): which buckets pass, deny
// or ask the trie for a deny list, and what a change asks of the trie while
// it is under way. The programs' side is in test/bpf/prefilter_test.cc.
#include <gtest/gtest.h>

#include <set>

#include "agent/prefilter.h"

namespace tendril {
namespace {

std::set<Cidr> Set(std::initializer_list<const char*> texts) {
  std::set<Cidr> out;
  for (const char* t : texts) out.insert(*ParseCidr(t));
  return out;
}

constexpr uint32_t B(uint8_t hi, uint8_t lo) { return static_cast<uint32_t>(hi) << 8 | lo; }

TEST(PrefilterLevelTest, AnEmptyListPassesEverything) {
  auto l = PrefilterLevel({});
  for (uint32_t i = 0; i < TND_PF_BUCKETS; ++i) {
    ASSERT_EQ(l->v4[i], TND_PF_PASS) << i;
    ASSERT_EQ(l->v6[i], TND_PF_PASS) << i;
  }
}

TEST(PrefilterLevelTest, ShortEntriesDenyTheirBucketsLongerOnesAskTheTrie) {
  auto l = PrefilterLevel(Set({"10.0.0.0/8", "10.1.2.0/24", "192.0.2.128/25", "172.16.0.0/12", "100.64.0.0/16",
                               "2001:db8:bad::/48", "fd00::/8"}));
  EXPECT_EQ(l->v4[B(10, 0)], TND_PF_DENY);
  EXPECT_EQ(l->v4[B(10, 1)], TND_PF_DENY) << "a covering /8 decides a bucket a /24 starts in";
  EXPECT_EQ(l->v4[B(10, 255)], TND_PF_DENY);
  EXPECT_EQ(l->v4[B(11, 0)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(9, 255)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(192, 0)], TND_PF_TRIE);
  EXPECT_EQ(l->v4[B(192, 1)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(172, 15)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(172, 16)], TND_PF_DENY);
  EXPECT_EQ(l->v4[B(172, 31)], TND_PF_DENY);
  EXPECT_EQ(l->v4[B(172, 32)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(100, 64)], TND_PF_DENY) << "a /16 is its bucket";
  EXPECT_EQ(l->v4[B(100, 65)], TND_PF_PASS);
  EXPECT_EQ(l->v6[B(0x20, 0x01)], TND_PF_TRIE);
  EXPECT_EQ(l->v6[B(0xfd, 0x00)], TND_PF_DENY);
  EXPECT_EQ(l->v6[B(0xfd, 0xff)], TND_PF_DENY);
  EXPECT_EQ(l->v6[B(0xfe, 0x00)], TND_PF_PASS);
  EXPECT_EQ(l->v4[B(0x20, 0x01)], TND_PF_PASS) << "families apart";
}

TEST(PrefilterLevelTest, ZeroLengthDeniesAFamilyWhole) {
  auto l = PrefilterLevel(Set({"0.0.0.0/0", "2001:db8::/32"}));
  for (uint32_t i = 0; i < TND_PF_BUCKETS; ++i) ASSERT_EQ(l->v4[i], TND_PF_DENY) << i;
  EXPECT_EQ(l->v6[B(0x20, 0x01)], TND_PF_TRIE);
  EXPECT_EQ(l->v6[0], TND_PF_PASS);
}

TEST(PrefilterLevelTest, AChangeAsksTheTrieOnlyWhereTheAnswerChanges) {
  auto from = PrefilterLevel(Set({"10.0.0.0/8", "198.51.100.0/24"}));
  auto to = PrefilterLevel(Set({"10.0.0.0/9", "203.0.113.0/24"}));
  auto mid = PrefilterTransition(*from, *to);
  EXPECT_EQ(mid->v4[B(10, 0)], TND_PF_DENY) << "denied before and after";
  EXPECT_EQ(mid->v4[B(10, 200)], TND_PF_TRIE) << "deny -> pass";
  EXPECT_EQ(mid->v4[B(198, 51)], TND_PF_TRIE) << "trie -> pass";
  EXPECT_EQ(mid->v4[B(203, 0)], TND_PF_TRIE) << "pass -> trie";
  EXPECT_EQ(mid->v4[B(11, 0)], TND_PF_PASS) << "pass before and after";
  int changed = 0;
  for (uint32_t i = 0; i < TND_PF_BUCKETS; ++i) changed += from->v4[i] != to->v4[i];
  EXPECT_EQ(changed, 128 + 2);
}

}  // namespace
}  // namespace tendril
