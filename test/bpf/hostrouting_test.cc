// Packet tests for eBPF host routing: bpf_lxc.o on an endpoint's veth and
// the endpoint paths of bpf_host.o (delivery into an endpoint, masquerade),
// loaded into the running kernel, frames through BPF_PROG_TEST_RUN in a test
// namespace whose routes the FIB lookups see. Expected frames are built from
// scratch by the test's frame builder with their own checksums.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include <bpf/bpf.h>

#include <cstring>
#include <string>

#include "maps/conntrack.h"
#include "maps/node_gen.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr Mac kMacEp2{{0x02, 0, 0, 0, 0x02, 0x03}};  // endpoint 2 (10.1.1.3)
constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint32_t kRedirect = TC_ACT_REDIRECT;

class HostRoutingTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    // Endpoint 1 is 10.1.1.2 / fd01::2 (kMacLocal), endpoint 2 is
    // 10.1.1.3 / fd01::3; both behind lx0 as their host-side veth.
    AddEndpoint("10.1.1.2", 1, kMacLocal);
    AddEndpoint("fd01::2", 1, kMacLocal);
    AddEndpoint("10.1.1.3", 2, kMacEp2);
    AddEndpoint("fd01::3", 2, kMacEp2);
    (void)Events();  // start with an empty ring
  }

  void NoMasquerade(const char* addr, uint32_t len) {
    tnd_lpm_v4_key k{len, {}};
    std::memcpy(k.addr, Addr(addr).data(), 4);
    ASSERT_TRUE(nomasq4_->Update(k, tnd_nomasq_val{1}).ok());
  }

  // The key of the TCP flow s:sport -> d:dport (either family).
  static tnd_ct_key Key(const char* s, uint16_t sport, const char* d, uint16_t dport) {
    const size_t n = std::string(s).find(':') != std::string::npos ? 16 : 4;
    tnd_ct_key k{};
    std::memcpy(k.saddr, Addr(s).data(), n);
    std::memcpy(k.daddr, Addr(d).data(), n);
    k.sport = htons(sport);
    k.dport = htons(dport);
    k.proto = kTcp;
    return k;
  }
  Map<tnd_ct_key, tnd_ct_val>& CtMap(const char* s) {
    return std::string(s).find(':') != std::string::npos ? *ct6_ : *ct4_;
  }
  // The flow's own conntrack entry.
  std::optional<tnd_ct_val> Entry(const char* s, uint16_t sport, const char* d, uint16_t dport) {
    auto v = CtMap(s).Lookup(Key(s, sport, d, dport));
    return v.ok() ? *v : std::nullopt;
  }
  // Plants `mac` as the cached destination MAC of the entry, valid now;
  // false if the cache tick turned meanwhile (the cache would not be used).
  bool PlantMac(const char* s, uint16_t sport, const char* d, uint16_t dport, const Mac& mac) {
    auto v = Entry(s, sport, d, dport);
    if (!v || !(v->hop_flags & TND_HOP_VALID)) return false;
    std::memcpy(v->hop_dmac, mac.b, 6);
    v->hop_tick = BpfCacheTick();
    return CtMap(s).Update(Key(s, sport, d, dport), *v).ok() && v->hop_tick == BpfCacheTick();
  }

  // A tc run whose skb carries `*mark` in and out (BPF_PROG_TEST_RUN's
  // context), on device `ifindex`.
  ProgRun RunMarked(int fd, const Bytes& in, uint32_t ifindex, uint32_t* mark) {
    NetnsGuard g(*ns_);
    ProgRun r;
    r.out.resize(in.size() + 512);
    __sk_buff ctx{};
    ctx.ifindex = ifindex;
    ctx.mark = *mark;
    bpf_test_run_opts o;
    std::memset(&o, 0, sizeof(o));
    o.sz = sizeof(o);
    o.data_in = in.data();
    o.data_size_in = static_cast<uint32_t>(in.size());
    o.data_out = r.out.data();
    o.data_size_out = static_cast<uint32_t>(r.out.size());
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
    o.ctx_out = &ctx;
    o.ctx_size_out = sizeof(ctx);
    EXPECT_EQ(bpf_prog_test_run_opts(fd, &o), 0) << std::strerror(errno);
    r.retval = o.retval;
    r.out.resize(o.data_size_out);
    *mark = ctx.mark;
    return r;
  }
};

TEST_F(HostRoutingTest, EndpointToLocalEndpointGoesStraightIntoItsNamespace) {
  Bytes in = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(40000, 8080).Payload("hi").Build();
  ProgRun r = Run(lxc_in_, in);
  EXPECT_EQ(r.retval, kRedirect);
  Bytes want = Frame().Eth(kMacEp2, kMacLx).Ipv4("10.1.1.2", "10.1.1.3").Ttl(63).Tcp(40000, 8080).Payload("hi").Build();
  EXPECT_EQ(r.out, want);
  auto ct = Entry("10.1.1.2", 40000, "10.1.1.3", 8080);
  ASSERT_TRUE(ct.has_value());
  EXPECT_EQ(ct->flags, TND_CT_F_ENDPOINT);

  // The first packet of the flow is traced; the second is not.
  EXPECT_EQ(Run(lxc_in_, in).retval, kRedirect);
  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TND_EVENT_TRACE);
  EXPECT_EQ(ev[0].point, TND_OBS_FROM_ENDPOINT);
  EXPECT_EQ(ev[0].verdict, TND_TRACE_TO_ENDPOINT);
  EXPECT_EQ(ev[0].src_ep, 1u);
  EXPECT_EQ(ev[0].dst_ep, 2u);
  EXPECT_EQ(ev[0].to_ifindex, lx0_);

  // IPv6: the hop limit goes down instead.
  Bytes in6 = Frame().Eth(kMacLx, kMacLocal).Ipv6("fd01::2", "fd01::3").Tcp(40000, 8080).Build();
  ProgRun r6 = Run(lxc_in_, in6);
  EXPECT_EQ(r6.retval, kRedirect);
  EXPECT_EQ(r6.out, Frame().Eth(kMacEp2, kMacLx).Ipv6("fd01::2", "fd01::3").Ttl(63).Tcp(40000, 8080).Build());
}

TEST_F(HostRoutingTest, EndpointToElsewhereIsForwardedByTheFib) {
  Bytes in = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.2.7").Tcp(40000, 80).Build();
  ProgRun r = Run(lxc_in_, in);
  EXPECT_EQ(r.retval, kRedirect);
  EXPECT_EQ(r.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.1.1.2", "10.1.2.7").Ttl(63).Tcp(40000, 80).Build());
  // An address of the node itself and a packet about to expire go to the
  // stack, untouched.
  Bytes local = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.0.0.1").Tcp(40001, 22).Build();
  ProgRun rl = Run(lxc_in_, local);
  EXPECT_EQ(rl.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(rl.out, local);
  Bytes dying = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.2.7").Ttl(1).Tcp(40002, 80).Build();
  ProgRun rd = Run(lxc_in_, dying);
  EXPECT_EQ(rd.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(rd.out, dying);
  // ICMP echo is routed too (no conntrack, no trace).
  Bytes ping = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").IcmpEcho().Build();
  ProgRun rp = Run(lxc_in_, ping);
  EXPECT_EQ(rp.retval, kRedirect);
  EXPECT_EQ(rp.out, Frame().Eth(kMacEp2, kMacLx).Ipv4("10.1.1.2", "10.1.1.3").Ttl(63).IcmpEcho().Build());
}

TEST_F(HostRoutingTest, ServiceFromAnEndpointIsTranslatedBothWays) {
  AddService("10.96.0.10", 80, kTcp, 21, 0, {{"10.1.1.3", 8080}}, 300);
  Bytes in = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.96.0.10").Tcp(40000, 80).Payload("GET").Build();
  ProgRun r = Run(lxc_in_, in);
  EXPECT_EQ(r.retval, kRedirect);
  EXPECT_EQ(r.out,
            Frame().Eth(kMacEp2, kMacLx).Ipv4("10.1.1.2", "10.1.1.3").Ttl(63).Tcp(40000, 8080).Payload("GET").Build());
  auto fwd = Entry("10.1.1.2", 40000, "10.96.0.10", 80);
  ASSERT_TRUE(fwd.has_value());
  EXPECT_EQ(fwd->flags, TND_CT_F_SERVICE | TND_CT_F_ENDPOINT);
  EXPECT_EQ(fwd->backend_id, 300u);
  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(std::memcmp(ev[0].nat_addr, Addr("10.1.1.3").data(), 4), 0);
  EXPECT_EQ(ntohs(ev[0].nat_port), 8080);

  // The backend's reply leaves its veth with the frontend as source.
  Bytes reply = Frame().Eth(kMacLx, kMacEp2).Ipv4("10.1.1.3", "10.1.1.2").Tcp(8080, 40000, 0x12).Build();
  ProgRun rr = Run(lxc_in_, reply);
  EXPECT_EQ(rr.retval, kRedirect);
  EXPECT_EQ(rr.out,
            Frame().Eth(kMacLocal, kMacLx).Ipv4("10.96.0.10", "10.1.1.2").Ttl(63).Tcp(80, 40000, 0x12).Build());
  // So does a reply the stack sends to the endpoint (a host-network
  // backend): bpf_lxc at the veth's egress.
  ProgRun rs = Run(lxc_out_, reply);
  EXPECT_EQ(rs.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(rs.out, Frame().Eth(kMacLx, kMacEp2).Ipv4("10.96.0.10", "10.1.1.2").Tcp(80, 40000, 0x12).Build());
}

// A client that closes a service connection with RST and reuses its port
// (what connect() does under load): the new SYN is a new flow and chooses
// again, so a backend removed meanwhile gets no new connection; and a direct
// connection on the closed flow's tuple is not rewritten to the frontend.
TEST_F(HostRoutingTest, SynOnAClosedFlowsTupleIsANewFlow) {
  AddService("10.96.0.10", 80, kTcp, 21, 0, {{"10.1.1.3", 8080}}, 300);
  auto to_vip = [&](uint16_t sport, uint8_t flags) {
    return Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.96.0.10").Tcp(sport, 80, flags).Build());
  };
  auto at_backend = [](uint16_t sport, uint16_t dport, uint8_t flags) {
    return Frame().Eth(kMacEp2, kMacLx).Ipv4("10.1.1.2", "10.1.1.3").Ttl(63).Tcp(sport, dport, flags).Build();
  };
  EXPECT_EQ(to_vip(40000, 0x02).out, at_backend(40000, 8080, 0x02));
  EXPECT_EQ(to_vip(40001, 0x02).out, at_backend(40001, 8080, 0x02));  // stays open
  EXPECT_EQ(to_vip(40000, 0x04).out, at_backend(40000, 8080, 0x04));  // RST: closed
  // The service's only backend becomes 10.1.1.3:9090; 300 stays in the
  // backend map for its grace period, as the agent leaves it.
  AddService("10.96.0.10", 80, kTcp, 21, 0, {{"10.1.1.3", 9090}}, 301);
  EXPECT_EQ(to_vip(40000, 0x02).out, at_backend(40000, 9090, 0x02)) << "the closed flow's backend was reused";
  EXPECT_EQ(to_vip(40001, 0x10).out, at_backend(40001, 8080, 0x10)) << "an open flow keeps its backend";
  auto fwd = Entry("10.1.1.2", 40000, "10.96.0.10", 80);
  ASSERT_TRUE(fwd.has_value());
  EXPECT_EQ(fwd->backend_id, 301u);

  // The client now connects to 10.1.1.3:8080 itself, from port 40000: the
  // answer keeps its source (the first flow's reply entry named this tuple).
  ProgRun syn = Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(40000, 8080).Build());
  EXPECT_EQ(syn.out, at_backend(40000, 8080, 0x02));
  Bytes synack = Frame().Eth(kMacLx, kMacEp2).Ipv4("10.1.1.3", "10.1.1.2").Tcp(8080, 40000, 0x12).Build();
  ProgRun r = Run(lxc_in_, synack);
  EXPECT_EQ(r.retval, kRedirect);
  EXPECT_EQ(r.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.1.1.3", "10.1.1.2").Ttl(63).Tcp(8080, 40000, 0x12).Build());

  // The same when the port served a direct connection before the service
  // flow (the direct flow's own entry is still there).
  Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(40002, 9090).Build());
  Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(40002, 9090, 0x04).Build());
  EXPECT_EQ(to_vip(40002, 0x02).out, at_backend(40002, 9090, 0x02));
  EXPECT_EQ(to_vip(40002, 0x04).out, at_backend(40002, 9090, 0x04));
  Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(40002, 9090).Build());
  ProgRun r2 = Run(lxc_in_, Frame().Eth(kMacLx, kMacEp2).Ipv4("10.1.1.3", "10.1.1.2").Tcp(9090, 40002, 0x12).Build());
  EXPECT_EQ(r2.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.1.1.3", "10.1.1.2").Ttl(63).Tcp(9090, 40002, 0x12).Build())
      << "the answer of a direct connection was rewritten to the frontend";
}

TEST_F(HostRoutingTest, ServiceWithoutBackendsDropsAndNamesTheEndpoint) {
  AddService("10.96.0.11", 80, kTcp, 22, 0, {}, 310);
  Bytes in = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.96.0.11").Tcp(40000, 80).Build();
  EXPECT_EQ(Run(lxc_in_, in).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Drops()[TND_DROP_NO_SERVICE_BACKEND], 1u);
  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].type, TND_EVENT_DROP);
  EXPECT_EQ(ev[0].reason, TND_DROP_NO_SERVICE_BACKEND);
  EXPECT_EQ(ev[0].point, TND_OBS_FROM_ENDPOINT);
  EXPECT_EQ(ev[0].src_ep, 1u);
  // And an unroutable destination is dropped as no-route (the FIB says
  // unreachable: a blackhole route).
  ASSERT_EQ(ns_->Exec({"ip", "route", "add", "blackhole", "10.9.9.0/24"}), 0);
  Bytes nr = Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.9.9.9").Tcp(40001, 80).Build();
  EXPECT_EQ(Run(lxc_in_, nr).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Drops()[TND_DROP_NO_ROUTE], 1u);
}

TEST_F(HostRoutingTest, EndpointTrafficLeavingTheNodeIsMasqueradedAndRepliesComeBack) {
  Bytes out = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").Tcp(40000, 80).Payload("x").Build();
  ProgRun r = Run(tc_out_, out, tn0_);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_OK));
  ASSERT_EQ(r.out.size(), out.size());
  uint16_t nport = PortAt(r.out, 14 + 20);
  EXPECT_GE(nport, TND_NAT_PORT_MIN_DEFAULT);
  EXPECT_LE(nport, TND_NAT_PORT_MAX_DEFAULT);
  EXPECT_EQ(r.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(nport, 80).Payload("x").Build());
  auto ev = Events();
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0].verdict, TND_TRACE_MASQUERADE);
  EXPECT_EQ(ev[0].point, TND_OBS_TO_NETWORK);
  EXPECT_EQ(ev[0].src_ep, 1u);
  EXPECT_EQ(ntohs(ev[0].nat_port), nport);
  // The same flow keeps its port.
  EXPECT_EQ(PortAt(Run(tc_out_, out, tn0_).out, 14 + 20), nport);

  // The reply is restored and handed straight to the endpoint.
  Bytes reply = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(80, nport, 0x12).Build();
  ProgRun rr = Run(tc_in_, reply);
  EXPECT_EQ(rr.retval, kRedirect);
  EXPECT_EQ(rr.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(80, 40000, 0x12).Build());
}

TEST_F(HostRoutingTest, PodCidrsAndRepliesOfInboundFlowsAreNotMasqueraded) {
  NoMasquerade("10.1.0.0", 16);
  Bytes pod = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.1.1.2", "10.1.2.7").Tcp(40000, 80).Build();
  ProgRun r = Run(tc_out_, pod, tn0_);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(r.out, pod);

  // From the network to an endpoint: into its namespace, conntrack marks
  // the flow inbound, and the endpoint's answer keeps its address.
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.1.1.2").Tcp(5000, 80).Build();
  ProgRun ri = Run(tc_in_, in);
  EXPECT_EQ(ri.retval, kRedirect);
  EXPECT_EQ(ri.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Ttl(63).Tcp(5000, 80).Build());
  auto ct = Entry("10.0.0.100", 5000, "10.1.1.2", 80);
  ASSERT_TRUE(ct.has_value());
  EXPECT_EQ(ct->flags, TND_CT_F_INBOUND);
  Bytes answer = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").Tcp(80, 5000, 0x12).Build();
  ProgRun ra = Run(tc_out_, answer, tn0_);
  EXPECT_EQ(ra.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(ra.out, answer);
  int nat = 0;
  ASSERT_TRUE(nat4_->ForEach([&](const tnd_nat_key&, const tnd_nat_val&) { nat++; }).ok());
  EXPECT_EQ(nat, 0);
}

// The established path of endpoint flows (bpf/lib/ep_fast.h): the second
// packet of a flow caches its next hop in the flow's own entry, later ones
// take that one lookup. What comes out is what the full path writes, byte
// for byte, and every packet is counted.
TEST_F(HostRoutingTest, EstablishedEndpointFlowsTakeTheCachedPathByteForByte) {
  struct Case {
    const char* what;
    int fd;
    const char *s, *d;
    uint16_t sport, dport;
    Mac in_dst, in_src, out_dst, out_src;
    uint8_t flag;
  };
  const Case cases[] = {
      {"pod to pod", lxc_in_, "10.1.1.2", "10.1.1.3", 41000, 8080, kMacLx, kMacLocal, kMacEp2, kMacLx, TND_CT_F_ENDPOINT},
      {"pod to pod, IPv6", lxc_in_, "fd01::2", "fd01::3", 41001, 8080, kMacLx, kMacLocal, kMacEp2, kMacLx,
       TND_CT_F_ENDPOINT},
      {"pod to elsewhere (FIB)", lxc_in_, "10.1.1.2", "10.1.2.7", 41002, 80, kMacLx, kMacLocal, kMacPeer, kMacNode,
       TND_CT_F_ENDPOINT},
      {"network to pod", tc_in_, "10.0.0.100", "10.1.1.2", 41003, 80, kMacNode, kMacClient, kMacLocal, kMacLx,
       TND_CT_F_INBOUND},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    bool v6 = std::string(c.s).find(':') != std::string::npos;
    auto frame = [&](Mac dst, Mac src, uint8_t ttl) {
      Frame f;
      f.Eth(dst, src);
      if (v6)
        f.Ipv6(c.s, c.d);
      else
        f.Ipv4(c.s, c.d);
      return f.Ttl(ttl).Tcp(c.sport, c.dport, 0x10).Payload("data").Build();
    };
    const Bytes in = frame(c.in_dst, c.in_src, 64), want = frame(c.out_dst, c.out_src, 63);
    for (int i = 0; i < 52; ++i) {
      ProgRun r = Run(c.fd, in);
      ASSERT_EQ(r.retval, kRedirect) << "packet " << i;
      ASSERT_EQ(r.out, want) << "packet " << i;
      if (i == 1) {
        auto e = Entry(c.s, c.sport, c.d, c.dport);
        ASSERT_TRUE(e.has_value());
        EXPECT_EQ(e->flags, c.flag);
        EXPECT_TRUE(e->hop_flags & TND_HOP_VALID) << "the second packet fills the cache";
      }
    }
    EXPECT_EQ(Entry(c.s, c.sport, c.d, c.dport)->packets, 52u) << "cached packets are counted";
  }
}

TEST_F(HostRoutingTest, AnEndpointFlowsCacheIsUsedUntilSomethingMustEndIt) {
  constexpr Mac kPlanted{{0x02, 0xee, 0xee, 0xee, 0xee, 0xee}};
  auto pkt = [](uint8_t ttl, uint8_t flags) {
    return Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Ttl(ttl).Tcp(42000, 8080, flags).Build();
  };
  auto routed = [](const Mac& dst, uint8_t flags) {
    return Frame().Eth(dst, kMacLx).Ipv4("10.1.1.2", "10.1.1.3").Ttl(63).Tcp(42000, 8080, flags).Build();
  };
  auto plant = [&] {
    for (int attempt = 0; attempt < 3; ++attempt)
      if (PlantMac("10.1.1.2", 42000, "10.1.1.3", 8080, kPlanted)) return true;
    return false;
  };
  Run(lxc_in_, pkt(64, 0x10));
  Run(lxc_in_, pkt(64, 0x10));
  bool used = false;
  for (int attempt = 0; attempt < 3 && !used; ++attempt) {
    if (!plant()) continue;
    Bytes out = Run(lxc_in_, pkt(64, 0x10)).out;
    used = Entry("10.1.1.2", 42000, "10.1.1.3", 8080)->hop_tick == BpfCacheTick();  // no tick turned
    if (used) {
      EXPECT_EQ(out, routed(kPlanted, 0x10)) << "a cached packet takes the cached MAC";
    }
  }
  ASSERT_TRUE(used) << "the tick turned in each of three attempts";

  // A packet about to expire goes to the stack (time exceeded), untouched.
  ASSERT_TRUE(plant());
  ProgRun dying = Run(lxc_in_, pkt(1, 0x10));
  EXPECT_EQ(dying.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(dying.out, pkt(1, 0x10));
  // A header the kernel would refuse (bad checksum) is the stack's too.
  Bytes bad = pkt(64, 0x10);
  bad[14 + 10] ^= 0x5a;
  ProgRun rb = Run(lxc_in_, bad);
  EXPECT_EQ(rb.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(rb.out, bad);
  // A new generation (the agent's bump on a route, neighbour or endpoint
  // change) decides again.
  ASSERT_TRUE(plant());
  ASSERT_TRUE(BumpNodeGeneration(pins_->path() + "/" TND_MAP_NODE).ok());
  EXPECT_EQ(Run(lxc_in_, pkt(64, 0x10)).out, routed(kMacEp2, 0x10));
  // A FIN adds to the flow's state: the full path's, and the flow is closed.
  ASSERT_TRUE(plant());
  EXPECT_EQ(Run(lxc_in_, pkt(64, 0x11)).out, routed(kMacEp2, 0x11));
  EXPECT_TRUE(Entry("10.1.1.2", 42000, "10.1.1.3", 8080)->tcp_flags & TND_TCP_FIN);
  ASSERT_TRUE(plant());
  EXPECT_EQ(Run(lxc_in_, pkt(64, 0x10)).out, routed(kMacEp2, 0x10)) << "a closed flow's cache serves nothing";
}

// A reply of a pod's flow has no conntrack entry of its own: it finds its
// flow's by the reversed tuple, and from its second packet on takes the hop
// that entry caches for replies, byte for byte as the full path. A reply of
// an inbound flow leaving through the node device is marked as routed (the
// egress program leaves it as it is).
TEST_F(HostRoutingTest, RepliesOfEndpointFlowsTakeTheirCachedPathByteForByte) {
  struct Case {
    const char* what;
    int fwd_fd, reply_fd;
    const char *c, *sv;  // client, server
    uint16_t cport, sport;
    Mac fwd_dst, fwd_src, in_dst, in_src, out_dst, out_src;
    uint8_t flag, hop;
  };
  const Case cases[] = {
      {"pod to pod", lxc_in_, lxc_in_, "10.1.1.2", "10.1.1.3", 41100, 8080, kMacLx, kMacLocal, kMacLx, kMacEp2,
       kMacLocal, kMacLx, TND_CT_F_ENDPOINT, TND_HOP_VALID | TND_HOP_PEER},
      {"pod to pod, IPv6", lxc_in_, lxc_in_, "fd01::2", "fd01::3", 41101, 8080, kMacLx, kMacLocal, kMacLx, kMacEp2,
       kMacLocal, kMacLx, TND_CT_F_ENDPOINT, TND_HOP_VALID | TND_HOP_PEER},
      {"pod to elsewhere", lxc_in_, tc_in_, "10.1.1.2", "10.1.2.7", 41102, 80, kMacLx, kMacLocal, kMacNode, kMacPeer,
       kMacLocal, kMacLx, TND_CT_F_ENDPOINT, TND_HOP_VALID | TND_HOP_PEER},
      {"network to pod", tc_in_, lxc_in_, "10.0.0.100", "10.1.1.2", 41103, 80, kMacNode, kMacClient, kMacLx,
       kMacLocal, kMacClient, kMacNode, TND_CT_F_INBOUND, TND_HOP_VALID | TND_HOP_EGRESS_NONE},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    const bool v6 = std::string(c.c).find(':') != std::string::npos;
    auto frame = [&](bool reply, Mac dst, Mac src, uint8_t ttl) {
      Frame f;
      f.Eth(dst, src);
      if (v6)
        f.Ipv6(reply ? c.sv : c.c, reply ? c.c : c.sv);
      else
        f.Ipv4(reply ? c.sv : c.c, reply ? c.c : c.sv);
      return f.Ttl(ttl).Tcp(reply ? c.sport : c.cport, reply ? c.cport : c.sport, 0x10).Payload("data").Build();
    };
    ASSERT_EQ(Run(c.fwd_fd, frame(false, c.fwd_dst, c.fwd_src, 64)).retval, kRedirect);
    const Bytes in = frame(true, c.in_dst, c.in_src, 64), want = frame(true, c.out_dst, c.out_src, 63);
    int marked = 0;
    for (int i = 0; i < 52; ++i) {
      uint32_t mark = 0;
      ProgRun r = RunMarked(c.reply_fd, in, 0, &mark);
      ASSERT_EQ(r.retval, kRedirect) << "reply " << i;
      ASSERT_EQ(r.out, want) << "reply " << i;
      marked += mark == TND_MARK_ROUTED;
      if (i == 0) {
        auto e = Entry(c.c, c.cport, c.sv, c.sport);
        ASSERT_TRUE(e.has_value());
        EXPECT_EQ(e->flags, c.flag);
        EXPECT_EQ(e->reply_when.flags, c.hop) << "the first reply fills its flow's reply cache";
      }
    }
    EXPECT_FALSE(Entry(c.sv, c.sport, c.c, c.cport).has_value()) << "replies make no entry of their own";
    EXPECT_EQ(Entry(c.c, c.cport, c.sv, c.sport)->packets, 53u) << "cached replies are counted on the flow";
    if (c.hop & TND_HOP_EGRESS_NONE)
      EXPECT_GE(marked, 40) << "cached replies out of the node device are marked routed";
    else
      EXPECT_EQ(marked, 0);
  }
}

TEST_F(HostRoutingTest, AReplysCacheIsUsedUntilSomethingMustEndIt) {
  constexpr Mac kPlanted{{0x02, 0xee, 0xee, 0xee, 0xee, 0xee}};
  auto reply = [](uint8_t flags) {
    return Frame().Eth(kMacLx, kMacEp2).Ipv4("10.1.1.3", "10.1.1.2").Tcp(8080, 42100, flags).Build();
  };
  auto routed = [](const Mac& dst, uint8_t flags) {
    return Frame().Eth(dst, kMacLx).Ipv4("10.1.1.3", "10.1.1.2").Ttl(63).Tcp(8080, 42100, flags).Build();
  };
  // The planted MAC, valid now; false if the tick turned meanwhile.
  auto plant_once = [&] {
    auto v = Entry("10.1.1.2", 42100, "10.1.1.3", 8080);
    if (!v || !(v->reply_when.flags & TND_HOP_VALID)) return false;
    std::memcpy(v->reply_hop.dmac, kPlanted.b, 6);
    v->reply_when.tick = BpfCacheTick();
    return ct4_->Update(Key("10.1.1.2", 42100, "10.1.1.3", 8080), *v).ok() && v->reply_when.tick == BpfCacheTick();
  };
  auto plant = [&] {
    for (int attempt = 0; attempt < 3; ++attempt) {
      Run(lxc_in_, reply(0x10));  // (re)fills the cache
      if (plant_once()) return true;
    }
    return false;
  };
  Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(42100, 8080, 0x10).Build());
  bool used = false;
  for (int attempt = 0; attempt < 3 && !used; ++attempt) {
    if (!plant()) continue;
    Bytes out = Run(lxc_in_, reply(0x10)).out;
    used = Entry("10.1.1.2", 42100, "10.1.1.3", 8080)->reply_when.tick == BpfCacheTick();
    if (used) {
      EXPECT_EQ(out, routed(kPlanted, 0x10)) << "a cached reply takes the cached MAC";
    }
  }
  ASSERT_TRUE(used) << "the tick turned in each of three attempts";
  // A new generation decides again.
  ASSERT_TRUE(plant());
  ASSERT_TRUE(BumpNodeGeneration(pins_->path() + "/" TND_MAP_NODE).ok());
  EXPECT_EQ(Run(lxc_in_, reply(0x10)).out, routed(kMacLocal, 0x10));
  // A FIN adds to the flow's state: the full path's; a closed flow's cache
  // serves nothing.
  ASSERT_TRUE(plant());
  EXPECT_EQ(Run(lxc_in_, reply(0x11)).out, routed(kMacLocal, 0x11));
  EXPECT_TRUE(Entry("10.1.1.2", 42100, "10.1.1.3", 8080)->tcp_flags & TND_TCP_FIN);
  ASSERT_TRUE(plant());
  EXPECT_EQ(Run(lxc_in_, reply(0x10)).out, routed(kMacLocal, 0x10));
  // A SYN on a live flow's reversed tuple answers nothing: the full path's,
  // which makes it a flow of its own.
  ClearFlows();
  for (uint8_t flags : {0x02, 0x10})  // the flow has seen a SYN: a SYN adds nothing to its state
    Run(lxc_in_, Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", "10.1.1.3").Tcp(42100, 8080, flags).Build());
  ASSERT_TRUE(plant());
  EXPECT_EQ(Run(lxc_in_, reply(0x02)).out, routed(kMacLocal, 0x02));
  EXPECT_TRUE(Entry("10.1.1.3", 8080, "10.1.1.2", 42100).has_value());
}

// A pod's flow to a pod on another node (not masqueraded, not a reply of a
// local backend): the node device's egress program finds nothing to do for
// it once, says so in the flow's entry, and bpf_lxc marks the next cached
// packets, which egress passes untouched without a lookup (and unmarks).
// A masqueraded flow is never marked.
TEST_F(HostRoutingTest, APodsRoutedFlowPassesTheEgressProgramAtOnce) {
  NoMasquerade("10.1.0.0", 16);
  auto from_pod = [](const char* d) {
    return Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", d).Tcp(43000, 80, 0x10).Payload("x").Build();
  };
  auto routed = [](const char* d) {
    return Frame().Eth(kMacPeer, kMacNode).Ipv4("10.1.1.2", d).Ttl(63).Tcp(43000, 80, 0x10).Payload("x").Build();
  };
  bool seen = false;
  for (int attempt = 0; attempt < 3 && !seen; ++attempt) {  // the cache lives within one tick
    ClearFlows();
    uint32_t mark = 0;
    for (int i = 0; i < 2; ++i) ASSERT_EQ(RunMarked(lxc_in_, from_pod("10.1.2.7"), 0, &mark).retval, kRedirect);
    EXPECT_EQ(mark, 0u) << "egress has not seen the flow yet";
    ProgRun e = RunMarked(tc_out_, routed("10.1.2.7"), tn0_, &mark);
    EXPECT_EQ(e.retval, static_cast<uint32_t>(TC_ACT_OK));
    EXPECT_EQ(e.out, routed("10.1.2.7"));
    auto v = Entry("10.1.1.2", 43000, "10.1.2.7", 80);
    ASSERT_TRUE(v.has_value());
    if (!(v->hop_flags & TND_HOP_VALID)) continue;  // the tick turned
    EXPECT_TRUE(v->hop_flags & TND_HOP_EGRESS_NONE);
    ProgRun l = RunMarked(lxc_in_, from_pod("10.1.2.7"), 0, &mark);
    ASSERT_EQ(l.retval, kRedirect);
    EXPECT_EQ(l.out, routed("10.1.2.7"));
    if (mark == 0 && !(Entry("10.1.1.2", 43000, "10.1.2.7", 80)->hop_flags & TND_HOP_EGRESS_NONE)) continue;
    EXPECT_EQ(mark, TND_MARK_ROUTED);
    ProgRun m = RunMarked(tc_out_, l.out, tn0_, &mark);
    EXPECT_EQ(m.retval, static_cast<uint32_t>(TC_ACT_OK));
    EXPECT_EQ(m.out, routed("10.1.2.7"));
    EXPECT_EQ(mark, 0u) << "egress puts the mark back";
    seen = true;
  }
  EXPECT_TRUE(seen) << "the second turned in each of 3 attempts";
  // To the outside: masqueraded at egress, so its packets stay unmarked.
  uint32_t mark = 0;
  for (int i = 0; i < 3; ++i) {
    ASSERT_EQ(RunMarked(lxc_in_, from_pod("10.0.0.100"), 0, &mark).retval, kRedirect);
    EXPECT_EQ(mark, 0u) << "packet " << i;
    ProgRun e = RunMarked(tc_out_, Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").Ttl(63).Tcp(43000, 80, 0x10).Payload("x").Build(), tn0_, &mark);
    EXPECT_NE(PortAt(e.out, 14 + 20), 43000) << "masqueraded";
  }
  auto v = Entry("10.1.1.2", 43000, "10.0.0.100", 80);
  ASSERT_TRUE(v.has_value());
  EXPECT_FALSE(v->hop_flags & TND_HOP_EGRESS_NONE);
}

}  // namespace
}  // namespace tendril::test
