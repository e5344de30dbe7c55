#include "lb/maglev.h"

#include <gtest/gtest.h>

#include <map>

namespace tendril {
namespace {

std::vector<MaglevBackend> Backends(int n, uint32_t first_id = 1) {
  std::vector<MaglevBackend> b;
  for (int i = 0; i < n; ++i)
    b.push_back({first_id + i, "10.0." + std::to_string(i / 250) + "." + std::to_string(i % 250 + 1) + ":8080/TCP", 1});
  return b;
}

std::map<uint32_t, int> Shares(const std::vector<uint32_t>& t) {
  std::map<uint32_t, int> s;
  for (uint32_t id : t) s[id]++;
  return s;
}

TEST(MaglevTest, Primes) {
  EXPECT_TRUE(IsPrime(16381));
  EXPECT_TRUE(IsPrime(65521));
  EXPECT_FALSE(IsPrime(65536));
  EXPECT_FALSE(IsPrime(1));
}

TEST(MaglevTest, EveryPositionFilledAndSharesWithinOnePercentOfEqual) {
  const uint32_t m = 65521;
  for (int n : {2, 3, 10, 100}) {
    auto table = MaglevTable(Backends(n), m);
    ASSERT_EQ(table.size(), m);
    auto shares = Shares(table);
    ASSERT_EQ(shares.size(), static_cast<size_t>(n)) << "n=" << n;
    EXPECT_EQ(shares.count(0), 0u) << "no empty position";
    double ideal = static_cast<double>(m) / n;
    for (auto& [id, count] : shares)
      EXPECT_NEAR(count, ideal, ideal * 0.01) << "n=" << n << " backend " << id;
  }
}

TEST(MaglevTest, RemovingOneOfNMovesAboutOneNth) {
  const uint32_t m = 65521;
  for (int n : {5, 10, 50}) {
    auto before = MaglevTable(Backends(n), m);
    auto fewer = Backends(n);
    uint32_t removed = fewer[n / 2].id;
    fewer.erase(fewer.begin() + n / 2);
    auto after = MaglevTable(fewer, m);
    int moved = 0;
    for (uint32_t i = 0; i < m; ++i) {
      if (before[i] == removed) continue;  // had to move
      if (before[i] != after[i]) ++moved;
    }
    // Positions of surviving backends that changed owner: Maglev keeps this
    // small; allow 1/N of the table plus a small margin.
    EXPECT_LE(moved, m / n + m / 100) << "n=" << n;
    int orphaned = Shares(before)[removed];
    EXPECT_NEAR(orphaned, static_cast<double>(m) / n, m / n * 0.02);
  }
}

TEST(MaglevTest, IndependentOfDeclarationOrderAndStable) {
  auto b = Backends(7);
  auto t1 = MaglevTable(b, 16381);
  std::reverse(b.begin(), b.end());
  EXPECT_EQ(MaglevTable(b, 16381), t1);
  EXPECT_EQ(MaglevTable(Backends(7), 16381), t1);
}

TEST(MaglevTest, WeightsSetShares) {
  auto b = Backends(2);
  b[0].weight = 3;
  b[1].weight = 1;
  auto shares = Shares(MaglevTable(b, 65521));
  EXPECT_NEAR(static_cast<double>(shares[b[0].id]) / 65521, 0.75, 0.01);
  b[1].weight = 0;
  shares = Shares(MaglevTable(b, 65521));
  EXPECT_EQ(shares.size(), 1u);
  EXPECT_TRUE(MaglevTable({}, 65521).empty());
}

}  // namespace
}  // namespace tendril
