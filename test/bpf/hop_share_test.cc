// Next hops shared by new flows (tnd_hops, bpf/lib/fib.h): while the node
// flag TND_NODE_F_HOPS_SHARED says the FIB answers by destination alone, a
// FIB lookup's answer for a backend is kept for its cache tick under the node's
// generation, and the next new flow to that backend takes it instead of
// asking the FIB. These tests show that it is taken (a planted MAC comes
// out), and not taken when the flag is off, the generation has changed, the
// cache tick has turned, or an XDP frame is longer than the MTU was checked for.
// Real objects in the running kernel, frames through BPF_PROG_TEST_RUN in
// the test namespace of lb_node.h.
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <cstring>
#include <optional>
#include <utility>

#include "maps/conntrack.h"
#include "maps/node_gen.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr Mac kMacPlanted{{0x02, 0xdd, 0xdd, 0xdd, 0xdd, 0xdd}};
constexpr size_t kL4 = 14 + 20;

class HopShareTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (HasFatalFailure()) return;
    hops_ = Open<tnd_hop_key, tnd_hop_val>(TND_MAP_HOPS);
    AddService("10.0.0.1", 30080, IPPROTO_TCP, 7, TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT, {{"10.1.2.2", 80}}, 1);
  }
  void Share(bool on) {
    ASSERT_TRUE(SetNodeFlag(pins_->path() + "/" TND_MAP_NODE, TND_NODE_F_HOPS_SHARED, on).ok());
  }
  Bytes In(uint16_t sport, const char* payload = "syn") const {
    return Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(sport, 30080, 0x02).Payload(payload).Build();
  }
  // The one entry (the test's one backend), if there is one.
  std::optional<std::pair<tnd_hop_key, tnd_hop_val>> Hop() {
    std::optional<std::pair<tnd_hop_key, tnd_hop_val>> out;
    int n = 0;
    EXPECT_TRUE(hops_->ForEach([&](const tnd_hop_key& k, const tnd_hop_val& v) {
      out = {k, v};
      ++n;
    }).ok());
    EXPECT_LE(n, 1);
    return out;
  }
  uint32_t NodeGen() {
    auto node = Open<uint32_t, tnd_node_info>(TND_MAP_NODE);
    auto v = node->Lookup(0);
    return v.ok() && v->has_value() ? (*v)->gen : 0;
  }
  // Plants kMacPlanted in the entry, valid now for frames up to `len_ok`
  // bytes; then runs a new flow. The tick may turn in between: nullopt.
  std::optional<Bytes> PlantAndRun(int fd, uint16_t sport, uint16_t len_ok = 1500) {
    auto hop = Hop();
    EXPECT_TRUE(hop.has_value());
    if (!hop) return std::nullopt;
    tnd_hop_val v = hop->second;
    std::memcpy(v.dmac, kMacPlanted.b, 6);
    v.len_ok = len_ok;
    v.tick = BpfCacheTick();
    EXPECT_TRUE(hops_->Update(hop->first, v).ok());
    Bytes out = Run(fd, In(sport)).out;
    if (BpfCacheTick() != v.tick) return std::nullopt;
    return out;
  }
  // The destination MAC of a new flow's first packet, with kMacPlanted in
  // the entry (three tries against the tick turning).
  Mac DmacWithPlanted(int fd, uint16_t sport, uint16_t len_ok = 1500) {
    for (int attempt = 0; attempt < 3; ++attempt)
      if (auto out = PlantAndRun(fd, static_cast<uint16_t>(sport + attempt), len_ok)) {
        Mac m{};
        std::memcpy(m.b, out->data(), 6);
        return m;
      }
    ADD_FAILURE() << "the tick turned in each of three attempts";
    return Mac{};
  }
  std::unique_ptr<Map<tnd_hop_key, tnd_hop_val>> hops_;
};

bool Same(const Mac& a, const Mac& b) { return std::memcmp(a.b, b.b, 6) == 0; }

TEST_F(HopShareTest, WithoutTheNodeFlagNoHopIsShared) {
  for (int fd : {tc_in_, xdp_in_}) {
    Bytes out = Run(fd, In(fd == tc_in_ ? 42001 : 42002)).out;
    ASSERT_GE(out.size(), 6u);
    EXPECT_EQ(std::memcmp(out.data(), kMacPeer.b, 6), 0);
  }
  EXPECT_FALSE(Hop().has_value()) << "flag off: the programs keep nothing";
}

TEST_F(HopShareTest, ANewFlowTakesTheHopAnotherFlowFoundThisSecond) {
  Share(true);
  const Bytes first = Run(xdp_in_, In(42011)).out;
  const uint16_t nport = PortAt(first, kL4);
  EXPECT_EQ(first, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Tcp(nport, 80, 0x02).Payload("syn").Build());
  auto hop = Hop();
  ASSERT_TRUE(hop.has_value()) << "the FIB's answer is shared";
  EXPECT_EQ(hop->first.family, 4);
  EXPECT_EQ(hop->first.addr[0], 10);
  EXPECT_EQ(hop->first.addr[3], 2);  // 10.1.2.2
  EXPECT_EQ(hop->second.gen, NodeGen());
  EXPECT_EQ(std::memcmp(hop->second.dmac, kMacPeer.b, 6), 0);
  EXPECT_EQ(std::memcmp(hop->second.smac, kMacNode.b, 6), 0);
  EXPECT_EQ(hop->second.len_ok, first.size() - 14) << "XDP: the length the FIB checked the MTU for";
  for (int fd : {xdp_in_, tc_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    EXPECT_TRUE(Same(DmacWithPlanted(fd, fd == tc_in_ ? 42020 : 42030), kMacPlanted))
        << "a new flow takes the shared hop, not the FIB";
  }
}

TEST_F(HopShareTest, ANewGenerationOrTheFlagClearedAsksTheFib) {
  Share(true);
  Run(xdp_in_, In(42041));
  ASSERT_TRUE(Hop().has_value());
  ASSERT_TRUE(BumpNodeGeneration(pins_->path() + "/" TND_MAP_NODE).ok());
  // Planting keeps the entry's (old) generation: the FIB answers.
  EXPECT_TRUE(Same(DmacWithPlanted(xdp_in_, 42050), kMacPeer)) << "an older generation's hop is not taken";
  EXPECT_EQ(Hop()->second.gen, NodeGen()) << "and the FIB's answer is shared under the new one";
  EXPECT_TRUE(Same(DmacWithPlanted(tc_in_, 42060), kMacPlanted));
  Share(false);  // a policy rule came: the flag goes, and the generation moves with it
  auto hop = Hop();
  ASSERT_TRUE(hop.has_value());
  tnd_hop_val v = hop->second;
  v.gen = NodeGen();  // even an entry of the current generation
  ASSERT_TRUE(hops_->Update(hop->first, v).ok());
  EXPECT_TRUE(Same(DmacWithPlanted(tc_in_, 42070), kMacPeer)) << "flag off: the FIB answers";
}

TEST_F(HopShareTest, AnEarlierSecondsHopIsNotTaken) {
  Share(true);
  Run(tc_in_, In(42081));
  auto hop = Hop();
  ASSERT_TRUE(hop.has_value());
  tnd_hop_val v = hop->second;
  std::memcpy(v.dmac, kMacPlanted.b, 6);
  v.tick -= 1;
  ASSERT_TRUE(hops_->Update(hop->first, v).ok());
  Bytes out = Run(tc_in_, In(42082)).out;
  ASSERT_GE(out.size(), 6u);
  EXPECT_EQ(std::memcmp(out.data(), kMacPeer.b, 6), 0);
  EXPECT_GT(Hop()->second.tick, v.tick) << "found again now";
}

TEST_F(HopShareTest, AnXdpFrameLongerThanTheMtuWasCheckedForAsksTheFib) {
  Share(true);
  Run(xdp_in_, In(42091));
  const uint16_t len = static_cast<uint16_t>(In(42092).size() - 14);
  EXPECT_TRUE(Same(DmacWithPlanted(xdp_in_, 42100, len - 1), kMacPeer)) << "checked for one byte less";
  EXPECT_GE(Hop()->second.len_ok, len) << "the FIB checked this length now";
  EXPECT_TRUE(Same(DmacWithPlanted(xdp_in_, 42110, len), kMacPlanted));
  // tc does not ask the FIB about the MTU (tot_len 0): the length is no matter.
  EXPECT_TRUE(Same(DmacWithPlanted(tc_in_, 42120, 0), kMacPlanted));
}

}  // namespace
}  // namespace tendril::test
