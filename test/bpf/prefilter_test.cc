// Packet tests for bpf_xdp.o: the real object, loaded into the running
// kernel, frames through BPF_PROG_TEST_RUN, verdict and bytes checked, and
// the drop counters read back from the per-CPU metrics map.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <map>
#include <memory>

#include "agent/agent.h"
#include "datapath/loader.h"
#include "agent/prefilter.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "test/support/kernel.h"
#include "test/support/lb_fixture.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

class PrefilterPacketTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    pins_ = std::make_unique<TempPinRoot>();
    auto obj = BpfObject::Load(TestLoadOptions("bpf_xdp", pins_->path()));
    ASSERT_TRUE(obj.ok()) << obj.status();
    obj_ = std::make_unique<BpfObject>(std::move(*obj));
    auto v4 = PrefilterV4Map::OpenPin(pins_->path() + "/" TND_MAP_PREFILTER_V4, "v4");
    auto v6 = PrefilterV6Map::OpenPin(pins_->path() + "/" TND_MAP_PREFILTER_V6, "v6");
    auto state = PrefilterStateMap::OpenPin(pins_->path() + "/" TND_MAP_PREFILTER_STATE, "state");
    ASSERT_TRUE(v4.ok() && v6.ok() && state.ok());
    prefilter_ = std::make_unique<Prefilter>(std::move(*v4), std::move(*v6), std::move(*state));
    entry_fd_ = *obj_->ProgramFd(kXdpEntryProgram);
  }

  void Deny(std::initializer_list<const char*> cidrs) {
    std::set<Cidr> want;
    for (const char* c : cidrs) want.insert(*ParseCidr(c));
    auto st = prefilter_->Sync(want);
    ASSERT_TRUE(st.ok()) << st.status();
  }

  // Runs the entry program; checks the verdict and that a passed frame comes
  // out byte for byte as it went in.
  void Expect(const Bytes& frame, uint32_t verdict, const std::string& what) {
    auto r = RunProgram(entry_fd_, frame);
    ASSERT_TRUE(r.ok()) << what << ": " << r.status();
    EXPECT_EQ(r->retval, verdict) << what;
    if (verdict == XDP_PASS) {
      EXPECT_EQ(r->out, frame) << what << ": frame changed";
    }
  }

  // Sum over CPUs of the drop counters, keyed by reason.
  std::map<int, tnd_metrics_val> Drops() {
    std::map<int, tnd_metrics_val> out;
    auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(
        pins_->path() + "/" TND_MAP_METRICS, "metrics");
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return out;
    EXPECT_TRUE(m->ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& v) {
                   abi::MetricsSlot k = abi::DecodeMetricsIndex(idx);
                   for (const auto& x : v) {
                     if (!x.packets) continue;
                     EXPECT_EQ(k.dir, TND_DIR_INGRESS);
                     out[k.reason].packets += x.packets;
                     out[k.reason].bytes += x.bytes;
                   }
                 }).ok());
    return out;
  }

  std::unique_ptr<TempPinRoot> pins_;
  std::unique_ptr<BpfObject> obj_;
  std::unique_ptr<Prefilter> prefilter_;
  int entry_fd_ = -1;
};

Bytes TcpV4(const std::string& src, const std::string& dst = "192.0.2.1") {
  return Frame().Eth().Ipv4(src, dst).Tcp(40000, 80).Payload("GET /").Build();
}

Bytes TcpV6(const std::string& src, const std::string& dst = "2001:db8::1") {
  return Frame().Eth().Ipv6(src, dst).Tcp(40000, 80).Build();
}

TEST_F(PrefilterPacketTest, EmptyDenyListPassesEverything) {
  Expect(TcpV4("10.0.0.1"), XDP_PASS, "v4 tcp");
  Expect(TcpV6("fd00::1"), XDP_PASS, "v6 tcp");
  Expect(Frame().Eth().Ipv4("10.0.0.1", "10.0.0.2").Udp(53, 53).Build(), XDP_PASS, "v4 udp");
  Expect(Frame().Eth().Ipv4("10.0.0.1", "10.0.0.2").IcmpEcho().Build(), XDP_PASS, "v4 icmp");
  EXPECT_TRUE(Drops().empty());
}

TEST_F(PrefilterPacketTest, DeniedIpv4SourceIsDroppedAndCounted) {
  Deny({"198.51.100.7/32"});
  Bytes denied = TcpV4("198.51.100.7");
  Expect(denied, XDP_DROP, "denied /32");
  Expect(denied, XDP_DROP, "denied /32 again");
  Expect(TcpV4("198.51.100.8"), XDP_PASS, "neighbour of denied /32");
  // The destination does not matter, only the source.
  Expect(TcpV4("10.0.0.1", "198.51.100.7"), XDP_PASS, "denied address as destination");
  auto d = Drops();
  ASSERT_EQ(d.size(), 1u);
  EXPECT_EQ(d[TND_DROP_PREFILTER_DENIED].packets, 2u);
  EXPECT_EQ(d[TND_DROP_PREFILTER_DENIED].bytes, 2 * denied.size());
}

TEST_F(PrefilterPacketTest, DeniedIpv6SourceIsDropped) {
  Deny({"2001:db8:bad::/48"});
  Expect(TcpV6("2001:db8:bad::1"), XDP_DROP, "in /48");
  Expect(TcpV6("2001:db8:bad:ffff:ffff:ffff:ffff:ffff"), XDP_DROP, "last address of /48");
  Expect(TcpV6("2001:db8:bae::1"), XDP_PASS, "next /48");
  Expect(Frame().Eth().Ipv6("2001:db8:bad::9", "2001:db8::1").Udp(1, 2).Build(), XDP_DROP, "udp");
  Expect(Frame().Eth().Ipv6("2001:db8:bad::9", "2001:db8::1").IcmpEcho().Build(), XDP_DROP,
         "icmpv6");
  // An IPv4 deny list never matches IPv6 and the other way round.
  Expect(TcpV4("32.1.13.184"), XDP_PASS, "v4 with the same leading bytes");
  EXPECT_EQ(Drops()[TND_DROP_PREFILTER_DENIED].packets, 4u);
}

// The first level answers without the trie where it can, and the programs
// trust it: an entry written into a trie behind the writer's back counts
// only where the first level says to ask the trie; a level never written
// (all "ask the trie", as on a new node) leaves every answer to the tries.
TEST_F(PrefilterPacketTest, TheFirstLevelDecidesWhereTheTrieIsAsked) {
  auto state = PrefilterStateMap::OpenPin(pins_->path() + "/" TND_MAP_PREFILTER_STATE, "state");
  ASSERT_TRUE(state.ok()) << state.status();
  auto level = std::make_unique<tnd_prefilter_state>();
  auto read = [&] {
    auto v = state->Lookup(0);
    ASSERT_TRUE(v.ok() && v->has_value());
    *level = **v;
  };
  Deny({"198.51.100.0/24", "10.0.0.0/8", "2001:db8:bad::/48"});
  read();
  EXPECT_EQ(level->v4[198 << 8 | 51], TND_PF_TRIE);
  EXPECT_EQ(level->v4[10 << 8 | 77], TND_PF_DENY);
  EXPECT_EQ(level->v4[203 << 8 | 0], TND_PF_PASS);
  EXPECT_EQ(level->v6[0x2001], TND_PF_TRIE);
  Expect(TcpV4("198.51.100.7"), XDP_DROP, "the trie asked");
  Expect(TcpV4("198.51.101.7"), XDP_PASS, "the trie asked, no entry");
  Expect(TcpV4("10.77.0.1"), XDP_DROP, "denied by the first level");
  Expect(TcpV6("2001:db8:bad::1"), XDP_DROP, "v6, the trie asked");
  Deny({"2001:db8:bad::/48"});
  Expect(TcpV4("198.51.100.7"), XDP_PASS, "v4 list emptied");
  Expect(TcpV4("10.77.0.1"), XDP_PASS, "v4 list emptied");
  Expect(TcpV6("2001:db8:bad::1"), XDP_DROP, "v6 list kept");

  auto v4 = PrefilterV4Map::OpenPin(pins_->path() + "/" TND_MAP_PREFILTER_V4, "v4");
  ASSERT_TRUE(v4.ok());
  ASSERT_TRUE(v4->Update(tnd_lpm_v4_key{24, {203, 0, 113, 0}}, tnd_prefilter_val{}).ok());
  Expect(TcpV4("203.0.113.7"), XDP_PASS, "the first level passes its bucket: no trie lookup");
  read();
  level->v4[203 << 8 | 0] = TND_PF_TRIE;
  level->v4[192 << 8 | 0] = TND_PF_DENY;
  ASSERT_TRUE(state->Update(0, *level).ok());
  Expect(TcpV4("203.0.113.7"), XDP_DROP, "looked up once the first level says so");
  Expect(TcpV4("192.0.2.1"), XDP_DROP, "denied by the first level, nothing in the trie");
  ASSERT_TRUE(state->Update(0, tnd_prefilter_state{}).ok());
  Expect(TcpV4("203.0.113.7"), XDP_DROP, "a level never written: the trie decides");
  Expect(TcpV4("192.0.2.1"), XDP_PASS, "a level never written: the trie decides");
  Expect(TcpV6("2001:db8:bad::1"), XDP_DROP, "a level never written: the trie decides (v6)");
}

TEST_F(PrefilterPacketTest, PrefixBoundariesAndLongestPrefix) {
  Deny({"10.0.0.0/8", "10.1.0.0/16", "192.0.2.128/25"});
  Expect(TcpV4("10.200.1.1"), XDP_DROP, "inside /8 only");
  Expect(TcpV4("10.1.2.3"), XDP_DROP, "inside /16 and /8");
  Expect(TcpV4("11.0.0.0"), XDP_PASS, "just past /8");
  Expect(TcpV4("9.255.255.255"), XDP_PASS, "just before /8");
  Expect(TcpV4("192.0.2.128"), XDP_DROP, "first of /25");
  Expect(TcpV4("192.0.2.255"), XDP_DROP, "last of /25");
  Expect(TcpV4("192.0.2.127"), XDP_PASS, "below /25");
  // Removing the covering /8 leaves the longer /16 in force.
  Deny({"10.1.0.0/16", "192.0.2.128/25"});
  Expect(TcpV4("10.200.1.1"), XDP_PASS, "/8 removed");
  Expect(TcpV4("10.1.2.3"), XDP_DROP, "/16 still denies");
}

TEST_F(PrefilterPacketTest, ZeroLengthPrefixDeniesAFamily) {
  Deny({"0.0.0.0/0"});
  Expect(TcpV4("1.2.3.4"), XDP_DROP, "any v4");
  Expect(TcpV6("fd00::1"), XDP_PASS, "v6 untouched");
}

TEST_F(PrefilterPacketTest, VlanTaggedFramesAreParsed) {
  Deny({"198.51.100.0/24", "2001:db8:bad::/48"});
  Expect(Frame().Eth().Vlan(100).Ipv4("198.51.100.1", "10.0.0.1").Tcp(1, 2).Build(), XDP_DROP,
         "802.1Q v4 denied");
  Expect(Frame().Eth().Vlan(100).Ipv4("203.0.113.1", "10.0.0.1").Tcp(1, 2).Build(), XDP_PASS,
         "802.1Q v4 allowed");
  Expect(Frame().Eth().Vlan(10, 0x88a8).Vlan(20).Ipv4("198.51.100.1", "10.0.0.1").Udp(1, 2).Build(),
         XDP_DROP, "QinQ v4 denied");
  Expect(Frame().Eth().Vlan(7).Ipv6("2001:db8:bad::1", "2001:db8::1").Tcp(1, 2).Build(), XDP_DROP,
         "802.1Q v6 denied");
  // Three tags are deeper than the parser goes: passed to the stack unjudged.
  Expect(Frame().Eth().Vlan(1).Vlan(2).Vlan(3).Ipv4("198.51.100.1", "10.0.0.1").Tcp(1, 2).Build(),
         XDP_PASS, "three tags");
}

TEST_F(PrefilterPacketTest, Ipv4OptionsDoNotHideTheSource) {
  Deny({"198.51.100.0/24"});
  Bytes nop4 = {1, 1, 1, 0};  // NOP NOP NOP EOL
  Bytes rr(8, 1);             // 8 bytes of NOPs
  Expect(Frame().Eth().Ipv4("198.51.100.9", "10.0.0.1", nop4).Tcp(1, 2).Build(), XDP_DROP,
         "IHL 6 denied");
  Expect(Frame().Eth().Ipv4("203.0.113.9", "10.0.0.1", rr).Tcp(1, 2).Build(), XDP_PASS,
         "IHL 7 allowed");
}

TEST_F(PrefilterPacketTest, TruncatedAndMalformedFramesPassUnjudged) {
  Deny({"0.0.0.0/0", "::/0"});  // anything parsed would be dropped
  Bytes full = TcpV4("198.51.100.9");
  Bytes eth_only(full.begin(), full.begin() + 14);
  Expect(eth_only, XDP_PASS, "EtherType IPv4, no IP header");
  Bytes ip_cut(full.begin(), full.begin() + 14 + 19);
  Expect(ip_cut, XDP_PASS, "IPv4 header one byte short");
  Bytes v6 = TcpV6("fd00::1");
  Bytes v6_cut(v6.begin(), v6.begin() + 14 + 39);
  Expect(v6_cut, XDP_PASS, "IPv6 header one byte short");
  Bytes vlan = Frame().Eth().Vlan(5).Ipv4("198.51.100.9", "10.0.0.1").Build();
  Bytes vlan_cut(vlan.begin(), vlan.begin() + 16);
  Expect(vlan_cut, XDP_PASS, "VLAN tag cut in half");
  Bytes bad_ihl = full;
  bad_ihl[14] = 0x44;  // IHL 4 < 5
  Expect(bad_ihl, XDP_PASS, "IHL below 5");
  Bytes bad_version = full;
  bad_version[14] = 0x65;  // version 6 under EtherType IPv4
  Expect(bad_version, XDP_PASS, "IPv6 version nibble under IPv4 EtherType");
  Bytes arp = Frame().Eth().EtherType(0x0806).Payload(std::string(28, '\0')).Build();
  Expect(arp, XDP_PASS, "ARP");
  EXPECT_TRUE(Drops().empty());
  // A well-formed frame is still dropped under the same deny list.
  Expect(full, XDP_DROP, "well-formed");
}

TEST_F(PrefilterPacketTest, MissedTailCallDropsWithItsOwnReason) {
  // Empty the v4 slot: the entry program must not fall through silently.
  int calls = *obj_->MapFd(TND_MAP_XDP_CALLS);
  uint32_t key = TND_TAIL_XDP_V4;
  ASSERT_EQ(bpf_map_delete_elem(calls, &key), 0);
  Expect(TcpV4("10.0.0.1"), XDP_DROP, "v4 without its tail call");
  Expect(TcpV6("fd00::1"), XDP_PASS, "v6 tail call still there");
  auto d = Drops();
  EXPECT_EQ(d[TND_DROP_MISSED_TAIL_CALL].packets, 1u);
  EXPECT_EQ(d.count(TND_DROP_PREFILTER_DENIED), 0u);
}

}  // namespace
}  // namespace tendril::test
