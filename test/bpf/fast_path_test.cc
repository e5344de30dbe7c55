// The established path's cache (tnd_ct_val.hop_*, bpf/lib/conntrack.h): a
// NodePort flow's forward entry caches its backend, SNAT mapping and next
// hop; later packets of the flow take one lookup. These tests show that the
// cached packets are byte for byte what the full path writes, that the
// cache is what they use (a planted MAC comes out), and that everything
// that must end it does: the node generation, the cache tick turning, a FIN.
// Real objects in the running kernel, frames through BPF_PROG_TEST_RUN in
// the test namespace of lb_node.h.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <cstring>
#include <utility>

#include "maps/conntrack.h"
#include "maps/node_gen.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr uint8_t kExt = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT;
constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr size_t kL4 = 14 + 20;
constexpr Mac kMacPlanted{{0x02, 0xee, 0xee, 0xee, 0xee, 0xee}};

class FastPathTest : public LbFixture {
 protected:
  // The forward entry of client 10.0.0.100:sport -> 10.0.0.1:30080.
  tnd_ct_key FwdKey(uint16_t sport) const {
    tnd_ct_key k{};
    auto s = Addr("10.0.0.100"), d = Addr("10.0.0.1");
    std::memcpy(k.saddr, s.data(), 4);
    std::memcpy(k.daddr, d.data(), 4);
    k.sport = htons(sport);
    k.dport = htons(30080);
    k.proto = kTcp;
    return k;
  }
  tnd_ct_val Entry(uint16_t sport) {
    auto v = ct4_->Lookup(FwdKey(sport));
    EXPECT_TRUE(v.ok() && v->has_value());
    return v.ok() && v->has_value() ? **v : tnd_ct_val{};
  }
  Bytes In(uint16_t sport, uint8_t flags = 0x10) const {
    return Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(sport, 30080, flags).Payload("data").Build();
  }
  Bytes Want(uint16_t nport, const Mac& dmac, uint8_t flags = 0x10) const {
    return Frame().Eth(dmac, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Tcp(nport, 80, flags).Payload("data").Build();
  }
  void Bump() { ASSERT_TRUE(BumpNodeGeneration(pins_->path() + "/" TND_MAP_NODE).ok()); }
  // Plants a MAC in the entry's cache, valid now (within this cache tick).
  // The tick may turn between the write and the run: false then.
  bool PlantMac(uint16_t sport) {
    tnd_ct_val v = Entry(sport);
    std::memcpy(v.hop_dmac, kMacPlanted.b, 6);
    v.hop_tick = BpfCacheTick();
    return ct4_->Update(FwdKey(sport), v).ok() && v.hop_tick == BpfCacheTick();
  }
};

TEST_F(FastPathTest, CachedPacketsAreRewrittenExactlyAsTheFullPathDoes) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    const uint16_t sport = fd == tc_in_ ? 40001 : 40002;
    ProgRun first = Run(fd, In(sport));
    const uint16_t nport = PortAt(first.out, kL4);
    EXPECT_EQ(first.out, Want(nport, kMacPeer));
    tnd_ct_val v = Entry(sport);
    ASSERT_TRUE(v.hop_flags & TND_HOP_VALID) << "the full path fills the cache";
    EXPECT_EQ(ntohs(v.snat_port), nport);
    EXPECT_EQ(std::memcmp(v.hop_dmac, kMacPeer.b, 6), 0);
    EXPECT_EQ(v.nat_addr[3], 2);  // 10.1.2.2
    for (int i = 0; i < 50; ++i) {
      ProgRun r = Run(fd, In(sport));
      ASSERT_EQ(r.retval, fd == tc_in_ ? static_cast<uint32_t>(TC_ACT_REDIRECT) : static_cast<uint32_t>(XDP_REDIRECT));
      ASSERT_EQ(r.out, Want(nport, kMacPeer)) << "packet " << i;
    }
    EXPECT_EQ(Entry(sport).packets, 51u) << "cached packets are counted";
  }
}

TEST_F(FastPathTest, TheCacheIsWhatCachedPacketsUseUntilTheGenerationChanges) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    const uint16_t sport = fd == tc_in_ ? 40011 : 40012;
    const uint16_t nport = PortAt(Run(fd, In(sport)).out, kL4);
    bool planted = false;
    for (int attempt = 0; attempt < 3 && !planted; ++attempt) {
      if (!PlantMac(sport)) continue;
      Bytes out = Run(fd, In(sport)).out;
      planted = Entry(sport).hop_tick == BpfCacheTick();  // no tick turned in between
      if (planted) {
        EXPECT_EQ(out, Want(nport, kMacPlanted)) << "a cached packet takes the cached MAC";
      }
    }
    ASSERT_TRUE(planted) << "the tick turned in each of three attempts";
    Bump();  // as the agent does after a neighbour event
    EXPECT_EQ(Run(fd, In(sport)).out, Want(nport, kMacPeer)) << "a new generation decides again";
    EXPECT_EQ(std::memcmp(Entry(sport).hop_dmac, kMacPeer.b, 6), 0);
  }
}

TEST_F(FastPathTest, ACacheOfAnEarlierTickIsDecidedAgain) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  const uint16_t nport = PortAt(Run(tc_in_, In(40021)).out, kL4);
  tnd_ct_val v = Entry(40021);
  std::memcpy(v.hop_dmac, kMacPlanted.b, 6);
  v.hop_tick -= 1;
  ASSERT_TRUE(ct4_->Update(FwdKey(40021), v).ok());
  EXPECT_EQ(Run(tc_in_, In(40021)).out, Want(nport, kMacPeer));
  EXPECT_GT(Entry(40021).hop_tick, v.hop_tick) << "filled again now";
}

TEST_F(FastPathTest, AFinTakesTheFullPathAndTheReplyEntryLearnsOfIt) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    ClearFlows();
    const uint16_t nport = PortAt(Run(fd, In(40031)).out, kL4);
    ASSERT_TRUE(PlantMac(40031) || PlantMac(40031));
    // A FIN adds to the flow's state: not the cache's to forward.
    EXPECT_EQ(Run(fd, In(40031, 0x11)).out, Want(nport, kMacPeer, 0x11));
    EXPECT_TRUE(Entry(40031).tcp_flags & TND_TCP_FIN);
    int reply_closed = 0;
    ASSERT_TRUE(ct4_->ForEach([&](const tnd_ct_key&, const tnd_ct_val& e) {
      if ((e.flags & TND_CT_F_REPLY) && (e.tcp_flags & TND_TCP_FIN)) ++reply_closed;
    }).ok());
    EXPECT_EQ(reply_closed, 1) << "the reply entry closes with the forward one";
    // Closed: no packet of the flow uses the cache any more.
    ASSERT_TRUE(PlantMac(40031) || PlantMac(40031));
    EXPECT_EQ(Run(fd, In(40031)).out, Want(nport, kMacPeer));
  }
}

// A service flow's mapping is its NAT in entry alone (10.1.2.2:80 ->
// 10.0.0.1:nport), which its forward conntrack entry names.
tnd_nat_key InKey(uint16_t nport) {
  tnd_nat_key k{};
  auto s = Addr("10.1.2.2"), d = Addr("10.0.0.1");
  std::memcpy(k.saddr, s.data(), 4);
  std::memcpy(k.daddr, d.data(), 4);
  k.sport = htons(80);
  k.dport = htons(nport);
  k.proto = kTcp;
  k.dir = TND_NAT_IN;
  return k;
}

// The flow's packets keep its mapping alive, not only the replies: one
// that sends only (its replies long gone) keeps its node port, which no
// other flow can then take (an expired service mapping is free).
TEST_F(FastPathTest, AServiceFlowsForwardPacketsKeepItsMappingAlive) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    const uint16_t sport = fd == tc_in_ ? 40051 : 40052;
    const uint16_t nport = PortAt(Run(fd, In(sport)).out, kL4);
    EXPECT_EQ(ntohs(Entry(sport).snat_port), nport);
    auto in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    tnd_nat_val v = **in;
    EXPECT_EQ(ntohs(v.to_port), sport);
    v.expires = BpfClockSeconds() - 1;  // as if no reply came for its lifetime
    ASSERT_TRUE(nat4_->Update(InKey(nport), v).ok());
    Bump();  // the next packet takes the full path, as one a tick does
    EXPECT_EQ(Run(fd, In(sport)).out, Want(nport, kMacPeer)) << "the same port";
    in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    EXPECT_GT(static_cast<int32_t>((*in)->expires - BpfClockSeconds()), TND_CT_SYN_TIMEOUT) << "refreshed";
  }
}

// The replies of a service flow (backend -> node:nport) take the reply
// entry's cache: after the first, only the NAT mapping's and the reply
// entry's lookups; byte for byte the full path's frame, counted, and the
// cache is what they use (a planted MAC comes out). A packet that adds to
// the flow's state (a FIN) is the full path's, which closes the mapping, and
// a reply under a new generation refreshes the mapping's lifetime.
TEST_F(FastPathTest, RepliesTakeTheReplyEntrysCacheAndKeepTheMappingsState) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  auto reply_entry = [&]() {
    std::pair<tnd_ct_key, tnd_ct_val> out{};
    EXPECT_TRUE(ct4_->ForEach([&](const tnd_ct_key& k, const tnd_ct_val& v) {
      if (v.flags & TND_CT_F_REPLY) out = {k, v};
    }).ok());
    return out;
  };
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    ClearFlows();
    const uint16_t sport = fd == tc_in_ ? 40081 : 40082;
    const uint16_t nport = PortAt(Run(fd, In(sport)).out, kL4);
    auto reply = [&](uint8_t flags) {
      return Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").Tcp(80, nport, flags).Payload("ok").Build();
    };
    auto want = [&](const Mac& dmac, uint8_t flags) {
      return Frame().Eth(dmac, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30080, sport, flags).Payload("ok").Build();
    };
    const uint32_t redirect = fd == tc_in_ ? static_cast<uint32_t>(TC_ACT_REDIRECT) : static_cast<uint32_t>(XDP_REDIRECT);
    const uint64_t before = reply_entry().second.packets;
    for (int i = 0; i < 20; ++i) {
      ProgRun r = Run(fd, reply(0x10));
      ASSERT_EQ(r.retval, redirect) << "reply " << i;
      ASSERT_EQ(r.out, want(kMacClient, 0x10)) << "reply " << i;
    }
    auto [rk, rv] = reply_entry();
    ASSERT_TRUE(rv.hop_flags & TND_HOP_VALID) << "the first reply fills the cache";
    EXPECT_EQ(rv.packets - before, 20u) << "cached replies are counted";
    bool planted = false;
    for (int attempt = 0; attempt < 3 && !planted; ++attempt) {
      tnd_ct_val v = reply_entry().second;
      std::memcpy(v.hop_dmac, kMacPlanted.b, 6);
      v.hop_tick = BpfCacheTick();
      ASSERT_TRUE(ct4_->Update(rk, v).ok());
      Bytes out = Run(fd, reply(0x10)).out;
      if (reply_entry().second.hop_tick != BpfCacheTick()) continue;  // the tick turned
      planted = true;
      EXPECT_EQ(out, want(kMacPlanted, 0x10)) << "a cached reply takes the cached MAC";
    }
    ASSERT_TRUE(planted) << "the tick turned in each of three attempts";
    // A new generation: decided again, and the mapping's lifetime renewed.
    auto in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    tnd_nat_val nv = **in;
    nv.expires = BpfClockSeconds() + 1;
    ASSERT_TRUE(nat4_->Update(InKey(nport), nv).ok());
    Bump();
    EXPECT_EQ(Run(fd, reply(0x10)).out, want(kMacClient, 0x10));
    in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    EXPECT_GT(static_cast<int32_t>((*in)->expires - BpfClockSeconds()), TND_CT_SYN_TIMEOUT) << "refreshed";
    // The backend's FIN under a valid cache: the full path's, which closes
    // the mapping and the flow's entries.
    ASSERT_EQ(Run(fd, reply(0x10)).retval, redirect);
    ASSERT_TRUE(reply_entry().second.hop_flags & TND_HOP_VALID);
    EXPECT_EQ(Run(fd, reply(0x11)).out, want(kMacClient, 0x11));
    in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    EXPECT_TRUE((*in)->tcp_flags & TND_TCP_FIN) << "the mapping learns of the FIN";
    EXPECT_TRUE(reply_entry().second.tcp_flags & TND_TCP_FIN);
    EXPECT_TRUE(Entry(sport).tcp_flags & TND_TCP_FIN) << "and the forward entry";
  }
}

// A flow whose port another flow took over (its mapping expired meanwhile)
// leaves from a new one, and its conntrack entry names that one.
TEST_F(FastPathTest, AServiceFlowWhosePortWasTakenOverLeavesFromANewOne) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    const uint16_t sport = fd == tc_in_ ? 40061 : 40062;
    const uint16_t nport = PortAt(Run(fd, In(sport)).out, kL4);
    auto in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    tnd_nat_val other = **in;
    other.to_port = htons(50000);  // another client port's mapping now
    ASSERT_TRUE(nat4_->Update(InKey(nport), other).ok());
    Bump();
    const uint16_t now_port = PortAt(Run(fd, In(sport)).out, kL4);
    EXPECT_NE(now_port, nport);
    EXPECT_EQ(ntohs(Entry(sport).snat_port), now_port);
    in = nat4_->Lookup(InKey(now_port));
    ASSERT_TRUE(in.ok() && in->has_value());
    EXPECT_EQ(ntohs((*in)->to_port), sport);
    in = nat4_->Lookup(InKey(nport));
    ASSERT_TRUE(in.ok() && in->has_value());
    EXPECT_EQ(ntohs((*in)->to_port), 50000) << "the other flow's mapping is left alone";
  }
}

// A flow whose conntrack entries went (an LRU evicts an idle flow's under
// pressure) while its mapping lives goes on from the same node port: a
// connection survives a full conntrack table.
TEST_F(FastPathTest, AServiceFlowThatLostItsConntrackEntriesKeepsItsPort) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    ClearFlows();
    const uint16_t sport = fd == tc_in_ ? 40071 : 40072;
    const uint16_t nport = PortAt(Run(fd, In(sport, 0x02)).out, kL4);
    ASSERT_EQ(Run(fd, In(sport)).out, Want(nport, kMacPeer));
    std::vector<tnd_ct_key> keys;
    ASSERT_TRUE(ct4_->ForEach([&](const tnd_ct_key& k, const tnd_ct_val&) { keys.push_back(k); }).ok());
    for (const auto& k : keys) ASSERT_TRUE(ct4_->Delete(k).ok());
    EXPECT_EQ(Run(fd, In(sport)).out, Want(nport, kMacPeer)) << "the same port, not a new mapping";
    EXPECT_EQ(ntohs(Entry(sport).snat_port), nport);
    int nat = 0;
    ASSERT_TRUE(nat4_->ForEach([&](const tnd_nat_key&, const tnd_nat_val&) { nat++; }).ok());
    EXPECT_EQ(nat, 1);
  }
}

TEST_F(FastPathTest, ARetiredBackendsFlowMovesAfterTheWritersBump) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}, {"10.1.2.3", 80}}, 1);
  Run(tc_in_, In(40041));
  const tnd_ct_val v = Entry(40041);
  ASSERT_TRUE(v.hop_flags & TND_HOP_VALID);
  const uint32_t gone = v.backend_id, stays = gone == 1 ? 2 : 1;
  // The writer's removal: the slots hold only the other backend, the
  // removed one is marked retired, then the generation.
  PutSlot("10.0.0.1", 30080, kTcp, 1, tnd_svc_val{stays, 7, 0, 0, 0, 0});
  PutSlot("10.0.0.1", 30080, kTcp, 0, tnd_svc_val{0, 7, 0, 1, kExt, 0});
  EXPECT_EQ(Run(tc_in_, In(40041)).out[14 + 16 + 3], v.nat_addr[3]) << "pinned while its backend is not retired";
  auto be = backends_->Lookup(gone);
  ASSERT_TRUE(be.ok() && be->has_value());
  tnd_backend retired = **be;
  retired.flags |= TND_BACKEND_F_RETIRED;
  ASSERT_TRUE(backends_->Update(gone, retired).ok());
  Bump();
  ProgRun r = Run(tc_in_, In(40041));
  EXPECT_NE(r.out[14 + 16 + 3], v.nat_addr[3]) << "the flow chose again";
  EXPECT_EQ(Entry(40041).backend_id, stays);
}

// A local backend whose veth takes XDP frames (the agent turned GRO on in
// its namespace): XDP delivers the flow itself, first packet and cached
// ones, byte for byte what tc delivers; tc serves the cache XDP filled.
TEST_F(FastPathTest, XdpDeliversToALocalBackendWhoseVethTakesXdpFrames) {
  AddService("10.0.0.1", 30081, kTcp, 9, kExt, {{"10.1.1.2", 8080}}, 20);
  AddEndpoint("10.1.1.2", 1, kMacLocal, TND_EP_F_XDP_RX);
  auto in = [](uint8_t flags) {
    return Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081, flags).Payload("data").Build();
  };
  auto want = [](uint8_t flags) {
    return Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(40000, 8080, flags).Payload("data").Build();
  };
  ProgRun first = Run(xdp_in_, in(0x02));
  EXPECT_EQ(first.retval, static_cast<uint32_t>(XDP_REDIRECT));
  EXPECT_EQ(first.out, want(0x02));
  tnd_ct_key k = FwdKey(40000);
  k.dport = htons(30081);
  auto v = ct4_->Lookup(k);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->flags & (TND_CT_F_LOCAL | TND_CT_F_XDP), TND_CT_F_LOCAL | TND_CT_F_XDP);
  EXPECT_EQ((*v)->hop_flags, TND_HOP_VALID | TND_HOP_PEER | TND_HOP_XDP_RX);
  EXPECT_EQ((*v)->hop_ifindex, lx0_);
  for (int i = 0; i < 20; ++i) {
    ProgRun r = Run(xdp_in_, in(0x10));
    ASSERT_EQ(r.retval, static_cast<uint32_t>(XDP_REDIRECT));
    ASSERT_EQ(r.out, want(0x10)) << "packet " << i;
  }
  v = ct4_->Lookup(k);
  ASSERT_TRUE(v.ok() && v->has_value());
  EXPECT_EQ((*v)->packets, 21u);
  // A cached frame larger than TND_XDP_RX_MTU goes to the pod through tc.
  std::string big(TND_XDP_RX_MTU, 'x');
  Bytes big_in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081, 0x10).Payload(big).Build();
  ProgRun b = Run(xdp_in_, big_in);
  EXPECT_EQ(b.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(b.out, big_in);
  // tc (a packet XDP passed, e.g. on a device in generic mode) takes the
  // same cache into the namespace.
  ProgRun t = Run(tc_in_, in(0x10));
  EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(t.out, want(0x10));
}

// Where the namespace side cannot take XDP frames (an adopted veth: no
// flag), or the frame is larger than its MTU, XDP hands the packet to tc
// untouched, and a cache tc filled is not XDP's to use.
TEST_F(FastPathTest, XdpLeavesToTcWhatTheEndpointsVethCannotTake) {
  AddService("10.0.0.1", 30081, kTcp, 9, kExt, {{"10.1.1.2", 8080}}, 20);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081, 0x10).Payload("data").Build();
  for (auto [flags, mtu] : {std::pair<uint16_t, uint16_t>{0, 1500}, {TND_EP_F_XDP_RX, 43}, {TND_EP_F_XDP_RX, 0}}) {
    SCOPED_TRACE(testing::Message() << "flags " << flags << " mtu " << mtu);
    ClearFlows();
    AddEndpoint("10.1.1.2", 1, kMacLocal, flags, mtu);
    ProgRun x = Run(xdp_in_, in);
    EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
    EXPECT_EQ(x.out, in);
    ProgRun t = Run(tc_in_, in);
    EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
    EXPECT_EQ(t.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(40000, 8080, 0x10).Payload("data").Build());
    EXPECT_EQ(Run(xdp_in_, in).retval, static_cast<uint32_t>(XDP_PASS)) << "tc's cache is not XDP's";
  }
}

// A local backend that is not an endpoint (a namespace behind lx0 the agent
// did not make; only its neighbour is known): the full path at XDP hands
// every packet to tc, which delivers it and fills the cache; XDP must not
// use that cache either (a redirect into a veth without NAPI on its other
// side fails, and the frame is lost).
TEST_F(FastPathTest, XdpLeavesToTcALocalBackendThatIsNotAnEndpoint) {
  AddService("10.0.0.1", 30081, kTcp, 9, kExt, {{"10.1.1.2", 8080}}, 20);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081, 0x10).Payload("data").Build();
  ProgRun x = Run(xdp_in_, in);
  EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(x.out, in);
  for (int i = 0; i < 3; ++i) {
    ProgRun t = Run(tc_in_, in);
    EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
    EXPECT_EQ(t.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(40000, 8080, 0x10).Payload("data").Build());
    ProgRun again = Run(xdp_in_, in);
    EXPECT_EQ(again.retval, static_cast<uint32_t>(XDP_PASS)) << "packet " << i << ": tc's cache is not XDP's";
    EXPECT_EQ(again.out, in);
  }
}

}  // namespace
}  // namespace tendril::test
