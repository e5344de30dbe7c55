// Packet tests for the REJECT answers (bpf/lib/reject.h): a new flow to a
// service with no usable backend anywhere gets a TCP RST or an ICMP/ICMPv6
// port unreachable back out of the device it came in by, as kube-proxy's
// REJECT rule answers; everything else about such a service is dropped.
// Every answer is judged by the test's own reading of the bytes
// (test/support/frame_check), never the datapath's.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <sched.h>

#include <chrono>

#include "maps/abi.h"
#include "test/support/frame_check.h"
#include "test/support/lb_fixture.h"
#include "test/support/lb_node.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

class RejectTest : public LbFixture {
 protected:
  // A frontend with no backend; `reject`: none anywhere (the agent's
  // TND_SVC_X_REJECT), else none here (a Local policy).
  void Empty(const char* addr, uint16_t port, uint8_t proto, uint16_t svc_id, bool reject) {
    tnd_svc_val v{};
    v.svc_id = svc_id;
    v.flags = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT | (reject ? 0 : TND_SVC_F_LOCAL);
    v.xflags = reject ? TND_SVC_X_REJECT : 0;
    PutSlot(addr, port, proto, 0, v);
  }
  static uint32_t Be32(const Bytes& b, size_t off) {
    return (uint32_t{b[off]} << 24) | (uint32_t{b[off + 1]} << 16) | (uint32_t{b[off + 2]} << 8) | b[off + 3];
  }
  static Bytes Slice(const Bytes& b, size_t off, size_t n) { return Bytes(b.begin() + off, b.begin() + off + n); }
  void ExpectSwappedMacs(const Bytes& out) {
    EXPECT_EQ(Slice(out, 0, 6), Slice(Frame().Eth(kMacClient, kMacNode).Build(), 0, 6)) << "to the client";
    EXPECT_EQ(Slice(out, 6, 6), Slice(Frame().Eth(kMacClient, kMacNode).Build(), 6, 6)) << "from the node";
  }
};

constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint8_t kUdp = IPPROTO_UDP;

TEST_F(RejectTest, SynToAServiceWithoutBackendsIsAnsweredWithRst) {
  Empty("10.0.0.1", 30090, kTcp, 20, true);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30090).Payload("xy").Build();
  in[14 + 20 + 4 + 3] = 7;  // seq 7
  FixIpv4HeaderChecksum(in);
  ProgRun r = Run(tc_in_, in);
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), 14u + 20 + 20);
  ExpectSwappedMacs(r.out);
  FrameFacts f = Inspect(r.out);
  EXPECT_EQ(f.family, 4);
  EXPECT_FALSE(f.ip_malformed);
  EXPECT_TRUE(Ipv4HeaderChecksumOk(r.out));
  EXPECT_TRUE(f.l4_csum_ok) << "TCP checksum of the RST";
  EXPECT_EQ(f.proto, kTcp);
  EXPECT_EQ(f.src, Addr("10.0.0.1"));
  EXPECT_EQ(f.dst, Addr("10.0.0.100"));
  EXPECT_EQ(f.sport, 30090);
  EXPECT_EQ(f.dport, 40000);
  EXPECT_EQ(r.out[14 + 20 + 13], 0x14) << "RST|ACK";
  EXPECT_EQ(Be32(r.out, 14 + 20 + 4), 0u) << "seq";
  EXPECT_EQ(Be32(r.out, 14 + 20 + 8), 7u + 2 + 1) << "ack: seq + payload + SYN";
  EXPECT_EQ(Drops()[TND_DROP_NO_SERVICE_BACKEND], 1u) << "counted as before";
  EXPECT_EQ(CountEntries4(), 0) << "no conntrack entry";

  // XDP leaves it to tc (unchanged, uncounted); later segments are dropped.
  EXPECT_EQ(Run(xdp_in_, in).retval, static_cast<uint32_t>(XDP_PASS));
  Bytes ack = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30090, 0x10).Build();
  EXPECT_EQ(Run(tc_in_, ack).retval, static_cast<uint32_t>(TC_ACT_SHOT)) << "not a new connection";
  Bytes rst = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30090, 0x04).Build();
  EXPECT_EQ(Run(tc_in_, rst).retval, static_cast<uint32_t>(TC_ACT_SHOT)) << "never a RST to a RST";
  EXPECT_EQ(Drops()[TND_DROP_NO_SERVICE_BACKEND], 3u);
}

TEST_F(RejectTest, UdpToAServiceWithoutBackendsGetsPortUnreachable) {
  Empty("10.0.0.1", 30091, kUdp, 21, true);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(40001, 30091).Payload("query").Build();
  ProgRun r = Run(tc_in_, in);
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), 14u + 20 + 8 + 28);
  ExpectSwappedMacs(r.out);
  FrameFacts f = Inspect(r.out);
  EXPECT_EQ(f.proto, IPPROTO_ICMP);
  EXPECT_TRUE(Ipv4HeaderChecksumOk(r.out));
  EXPECT_TRUE(f.l4_csum_ok) << "ICMP checksum";
  EXPECT_EQ(f.src, Addr("10.0.0.1"));
  EXPECT_EQ(f.dst, Addr("10.0.0.100"));
  EXPECT_EQ(r.out[14 + 20], 3);
  EXPECT_EQ(r.out[14 + 20 + 1], 3) << "port unreachable";
  EXPECT_EQ(Slice(r.out, 14 + 28, 28), Slice(in, 14, 28)) << "quotes the datagram's IP and UDP headers";
}

TEST_F(RejectTest, Ipv6SynAndDatagramAreAnsweredToo) {
  Empty("fd00::1", 30092, kTcp, 22, true);
  Empty("fd00::1", 30092, kUdp, 23, true);
  Bytes syn = Frame().Eth(kMacNode, kMacClient).Ipv6("fd00::100", "fd00::1").Tcp(40002, 30092).Build();
  ProgRun r = Run(tc_in_, syn);
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), 14u + 40 + 20);
  FrameFacts f = Inspect(r.out);
  EXPECT_EQ(f.family, 6);
  EXPECT_TRUE(f.l4_csum_ok);
  EXPECT_EQ(f.src, Addr("fd00::1"));
  EXPECT_EQ(f.dst, Addr("fd00::100"));
  EXPECT_EQ(r.out[14 + 40 + 13], 0x14);
  EXPECT_EQ(Be32(r.out, 14 + 40 + 8), 1u);

  Bytes dgram = Frame().Eth(kMacNode, kMacClient).Ipv6("fd00::100", "fd00::1").Udp(40003, 30092).Payload("q").Build();
  ProgRun u = Run(tc_in_, dgram);
  ASSERT_EQ(u.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(u.out.size(), 14u + 40 + 8 + 48);
  FrameFacts g = Inspect(u.out);
  EXPECT_EQ(g.proto, IPPROTO_ICMPV6);
  EXPECT_TRUE(g.l4_csum_ok) << "ICMPv6 checksum";
  EXPECT_EQ(u.out[14 + 40], 1);
  EXPECT_EQ(u.out[14 + 40 + 1], 4) << "port unreachable";
  EXPECT_EQ(Slice(u.out, 14 + 48, 48), Slice(dgram, 14, 48));
}

TEST_F(RejectTest, NoLocalBackendIsDroppedNotRejected) {
  // kube-proxy: a Local policy without local endpoints DROPs (the service
  // has endpoints elsewhere; a load balancer's health check steers away).
  Empty("10.0.0.1", 30093, kTcp, 24, false);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40004, 30093).Build();
  EXPECT_EQ(Run(tc_in_, in).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Run(xdp_in_, in).retval, static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(Drops()[TND_DROP_NO_LOCAL_BACKEND], 2u);
}

TEST_F(RejectTest, AnswersAreRateLimitedPerCpu) {
  Empty("10.0.0.1", 30094, kTcp, 25, true);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40005, 30094).Build();
  // 2,500 SYNs within well under a second, all on one CPU (BPF_PROG_TEST_RUN
  // runs on the caller's; unpinned, the thread moved between the matrix
  // guest's two CPUs and met two limits): at most two one-second windows of
  // 1,000 answers.
  cpu_set_t was, one;
  ASSERT_EQ(sched_getaffinity(0, sizeof(was), &was), 0);
  CPU_ZERO(&one);
  CPU_SET(sched_getcpu(), &one);
  ASSERT_EQ(sched_setaffinity(0, sizeof(one), &one), 0);
  int answered = 0;
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 2500; ++i) answered += Run(tc_in_, in).retval == static_cast<uint32_t>(TC_ACT_REDIRECT);
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ASSERT_EQ(sched_setaffinity(0, sizeof(was), &was), 0);
  ASSERT_LT(secs, 1.0) << "too slow to judge the limit";
  EXPECT_GE(answered, 1000);
  EXPECT_LE(answered, 2000);
}

}  // namespace
}  // namespace tendril::test
