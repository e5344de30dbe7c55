// Packet tests for the per-packet service LB (bpf_host.o at tc, bpf_xdp.o at
// XDP): the real objects loaded into the running kernel, frames through
// BPF_PROG_TEST_RUN inside a test network namespace whose routes and
// neighbours the programs' FIB lookups see. Every expected frame is built
// from scratch by the test's own frame builder (checksums computed over the
// whole header and payload), never derived from the program's output.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <net/if.h>

#include <cstring>
#include <map>
#include <memory>

#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "datapath/loader.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "test/support/kernel.h"
#include "maps/node_gen.h"
#include "test/support/lb_fixture.h"
#include "maps/conntrack.h"
#include "test/support/lb_node.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

class NodePortTest : public LbFixture {};

constexpr uint8_t kExt = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT;
constexpr uint8_t kTcp = IPPROTO_TCP;
constexpr uint8_t kUdp = IPPROTO_UDP;
constexpr size_t kL4 = 14 + 20;  // L4 offset in an untagged IPv4 frame

TEST_F(NodePortTest, RemoteBackendIsDnatedAndSnatedToTheNodeExactly) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080).Payload("GET /").Build();
  ProgRun r = Run(tc_in_, in);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), in.size());
  uint16_t nport = PortAt(r.out, kL4);
  EXPECT_GE(nport, TND_NAT_PORT_MIN_DEFAULT);
  EXPECT_LE(nport, TND_NAT_PORT_MAX_DEFAULT);
  Bytes want = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Tcp(nport, 80).Payload("GET /").Build();
  EXPECT_EQ(r.out, want);

  // Conntrack: forward and reply entries, the forward one naming the
  // mapping; NAT: the mapping's in entry alone (a service flow's).
  EXPECT_EQ(CountEntries4(), 2);
  int nat = 0, named = 0;
  ASSERT_TRUE(nat4_->ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    nat++;
    EXPECT_EQ(k.dir, TND_NAT_IN);
    EXPECT_EQ(ntohs(k.dport), nport);
    EXPECT_EQ(ntohs(v.to_port), 40000);
    EXPECT_EQ(v.flags, TND_NAT_F_SERVICE);
  }).ok());
  EXPECT_EQ(nat, 1);
  ASSERT_TRUE(ct4_->ForEach([&](const tnd_ct_key&, const tnd_ct_val& v) {
    if (!(v.flags & TND_CT_F_SERVICE)) return;
    named++;
    EXPECT_TRUE(v.flags & TND_CT_F_SNAT);
    EXPECT_EQ(ntohs(v.snat_port), nport);
  }).ok());
  EXPECT_EQ(named, 1);

  // The second packet of the flow leaves with the same port.
  Bytes in2 = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080, 0x10).Build();
  ProgRun r2 = Run(tc_in_, in2);
  EXPECT_EQ(r2.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(r2.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Tcp(nport, 80, 0x10).Build());

  // The backend's reply comes back to the node and leaves toward the client
  // from the frontend.
  Bytes reply = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").Tcp(80, nport, 0x12).Payload("200").Build();
  ProgRun r3 = Run(tc_in_, reply);
  EXPECT_EQ(r3.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(r3.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30080, 40000, 0x12).Payload("200").Build());
}

// A flow's NAT mapping (its in entry) and conntrack pair close together
// (the client's RST reaches the forward entry and, on the full path, the
// mapping; the reply entry learns of it), and a SYN on the closed tuple
// reopens them together, on the same node port.
TEST_F(NodePortTest, NatAndConntrackPairsCloseAndReopenTogether) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  auto pkt = [](uint8_t flags) {
    return Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080, flags).Build();
  };
  ProgRun r = Run(tc_in_, pkt(0x02));
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  uint16_t nport = PortAt(r.out, kL4);
  Bytes synack = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").Tcp(80, nport, 0x12).Build();
  ASSERT_EQ(Run(tc_in_, synack).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(Run(tc_in_, pkt(0x10)).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  // Established: the NAT entry and both conntrack entries live 6 h.
  auto states = [&](uint8_t want_all, uint32_t max_left) {
    uint32_t now = BpfClockSeconds();
    int n = 0;
    EXPECT_TRUE(nat4_->ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
      n++;
      EXPECT_EQ(v.tcp_flags & want_all, want_all) << "NAT dir " << int(k.dir);
      EXPECT_LE(v.expires - now, max_left) << "NAT dir " << int(k.dir);
      EXPECT_EQ(v.flags, TND_NAT_F_SERVICE);
    }).ok());
    EXPECT_TRUE(ct4_->ForEach([&](const tnd_ct_key&, const tnd_ct_val& v) {
      n++;
      EXPECT_EQ(v.tcp_flags & want_all, want_all) << "conntrack flags " << int(v.flags);
      EXPECT_LE(v.expires - now, max_left) << "conntrack flags " << int(v.flags);
    }).ok());
    return n;
  };
  EXPECT_EQ(states(TND_TCP_ACK, TND_CT_TCP_TIMEOUT), 3);
  uint32_t now = BpfClockSeconds();
  ASSERT_TRUE(nat4_->ForEach([&](const tnd_nat_key&, const tnd_nat_val& v) {
    EXPECT_GT(v.expires - now, static_cast<uint32_t>(TND_CT_SYN_TIMEOUT));
  }).ok());
  // The client resets: all three entries are closing.
  ASSERT_EQ(Run(tc_in_, pkt(0x14)).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(states(TND_TCP_RST, TND_CT_CLOSE_TIMEOUT), 3);
  // The same tuple opens again: same mapping, and no entry is closing.
  r = Run(tc_in_, pkt(0x02));
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(PortAt(r.out, kL4), nport);
  ASSERT_TRUE(nat4_->ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    EXPECT_EQ(v.tcp_flags & (TND_TCP_RST | TND_TCP_FIN), 0) << "NAT dir " << int(k.dir);
  }).ok());
  // A reset from the backend's side closes the client's side too.
  ASSERT_EQ(Run(tc_in_, synack).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  Bytes rst = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").Tcp(80, nport, 0x14).Build();
  ASSERT_EQ(Run(tc_in_, rst).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(states(TND_TCP_RST, TND_CT_CLOSE_TIMEOUT), 3);
}

TEST_F(NodePortTest, XdpAndTcGiveTheSameFrameForTheSameFlow) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}, {"10.1.2.3", 80}}, 1);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40001, 30080).Payload("x").Build();
  // Maglev off, random slot: pin the choice by making it a one-backend service
  // for the comparison, then compare frames flow by flow.
  AddService("10.0.0.1", 30090, kTcp, 8, kExt, {{"10.1.2.9", 8080}}, 10);
  Bytes in9 = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40002, 30090).Payload("y").Build();
  ProgRun tc = Run(tc_in_, in9);
  ClearFlows();
  ProgRun xdp = Run(xdp_in_, in9);
  EXPECT_EQ(tc.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(xdp.retval, static_cast<uint32_t>(XDP_REDIRECT));  // out of tn0, in on lo
  EXPECT_EQ(xdp.out, tc.out);
  // Reply through XDP as well.
  uint16_t nport = PortAt(xdp.out, kL4);
  Bytes reply = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.9", "10.0.0.1").Tcp(8080, nport, 0x12).Build();
  ProgRun xr = Run(xdp_in_, reply);
  EXPECT_EQ(xr.retval, static_cast<uint32_t>(XDP_REDIRECT));
  EXPECT_EQ(xr.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30090, 40002, 0x12).Build());
  // Whatever backend XDP picked for the two-backend service, tc keeps it.
  ProgRun x1 = Run(xdp_in_, in);
  ProgRun t1 = Run(tc_in_, in);
  EXPECT_EQ(x1.out, t1.out);
}

TEST_F(NodePortTest, LocalBackendIsDnatedOnlyAndRepliesLeaveFromTheFrontend) {
  AddService("10.0.0.1", 30081, kTcp, 9, kExt, {{"10.1.1.2", 8080}}, 20);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081).Build();
  // XDP leaves local delivery to tc and does not touch the frame.
  ProgRun x = Run(xdp_in_, in);
  EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(x.out, in);
  ProgRun r = Run(tc_in_, in);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(r.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(40000, 8080).Build());
  // The reply, leaving through tn0's egress.
  Bytes reply = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").Tcp(8080, 40000, 0x12).Payload("ok").Build();
  ProgRun e = Run(tc_out_, reply);
  EXPECT_EQ(e.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(e.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30081, 40000, 0x12).Payload("ok").Build());
}

TEST_F(NodePortTest, HostNetworkBackendIsDnatedAndHandedToTheStack) {
  AddService("10.0.0.1", 30088, kTcp, 21, kExt, {{"10.1.1.1", 8080}}, 120,  // lx0's own address
             TND_BACKEND_F_LOCAL | TND_BACKEND_F_HOST);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30088).Build();
  ProgRun x = Run(xdp_in_, in);
  EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_EQ(x.out, in);
  ProgRun r = Run(tc_in_, in);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(r.out, Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.1.1.1").Tcp(40000, 8080).Build());
  Bytes reply = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.1", "10.0.0.100").Tcp(8080, 40000, 0x12).Build();
  EXPECT_EQ(Run(tc_out_, reply).out,
            Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30088, 40000, 0x12).Build());
  // The flow's later packets (conntrack hit) and a SYN reopening the tuple
  // after a reset (conntrack event) are handed to the stack the same way.
  for (uint8_t flags : {0x10, 0x14, 0x02}) {
    Bytes next = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30088, flags).Build();
    ProgRun n = Run(tc_in_, next);
    EXPECT_EQ(n.retval, static_cast<uint32_t>(TC_ACT_OK)) << "flags " << int(flags);
    EXPECT_EQ(n.out, Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.1.1.1").Tcp(40000, 8080, flags).Build())
        << "flags " << int(flags);
  }
}

// The IP header and the first 8 bytes of L4 of a frame: what an ICMP error
// quotes (RFC 792).
std::string Quote(const Bytes& frame, bool v6) {
  size_t n = (v6 ? 40 : 20) + 8;
  return std::string(frame.begin() + 14, frame.begin() + 14 + n);
}

TEST_F(NodePortTest, WithForwardingOffHostBackendsWorkAndOthersAreDroppedAsNoRoute) {
  std::string out;
  ASSERT_EQ(ns_->Exec({"sysctl", "-qw", "net.ipv4.ip_forward=0"}, &out), 0) << out;
  AddService("10.0.0.1", 30088, kTcp, 21, kExt, {{"10.1.1.1", 8080}}, 120, TND_BACKEND_F_LOCAL | TND_BACKEND_F_HOST);
  AddService("10.0.0.1", 30089, kTcp, 26, kExt, {{"10.1.2.2", 80}}, 170);
  Bytes host = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30088).Build();
  ProgRun r = Run(tc_in_, host);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(r.out, Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.1.1.1").Tcp(40000, 8080).Build());
  Bytes remote = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30089).Build();
  EXPECT_EQ(Run(tc_in_, remote).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Drops()[TND_DROP_NO_ROUTE], 1u);
}

TEST_F(NodePortTest, IcmpErrorAboutAnSnatedFlowReachesTheClientAboutItsOwnPacket) {
  AddService("10.0.0.1", 30053, kUdp, 22, kExt, {{"10.1.2.2", 53}}, 130);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(5353, 30053).Payload("q").Build();
  for (int fd : {tc_in_, xdp_in_}) {
    ClearFlows();
    ProgRun r = Run(fd, in);
    uint16_t nport = PortAt(r.out, kL4);
    // The backend's node answers "port unreachable" about what it got:
    // node:nport -> backend.
    Bytes sent = Frame().Eth().Ipv4("10.0.0.1", "10.1.2.2").Udp(nport, 53).Payload("q").Build();
    Bytes err = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").IcmpError(3, 3).Payload(Quote(sent, false)).Build();
    ProgRun e = Run(fd, err);
    EXPECT_EQ(e.retval, fd == tc_in_ ? static_cast<uint32_t>(TC_ACT_REDIRECT) : static_cast<uint32_t>(XDP_REDIRECT));
    // The client gets it from the frontend, about client -> frontend. (The
    // quoted UDP checksum is not rewritten: copy it from what went out.)
    Bytes about = Frame().Eth().Ipv4("10.0.0.100", "10.0.0.1").Udp(5353, 30053).Payload("q").Build();
    std::string q = Quote(about, false);
    std::string sq = Quote(sent, false);
    q[20 + 6] = sq[20 + 6];
    q[20 + 7] = sq[20 + 7];
    EXPECT_EQ(e.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").IcmpError(3, 3).Payload(q).Build());
  }
  // An error about a flow that was never translated passes untouched.
  Bytes other = Frame().Eth().Ipv4("10.0.0.1", "10.1.2.2").Udp(40000, 53).Build();
  Bytes stray = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.2", "10.0.0.1").IcmpError(3, 3).Payload(Quote(other, false)).Build();
  ProgRun s2 = Run(tc_in_, stray);
  EXPECT_EQ(s2.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(s2.out, stray);
}

TEST_F(NodePortTest, Ipv6PacketTooBigFromARouterIsTranslated) {
  AddService("fd00::1", 30080, kTcp, 23, kExt, {{"fd02::2", 80}}, 140);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv6("fd00::100", "fd00::1").Tcp(40000, 30080).Build();
  ProgRun r = Run(tc_in_, in);
  uint16_t nport = PortAt(r.out, 14 + 40);
  Bytes sent = Frame().Eth().Ipv6("fd00::1", "fd02::2").Tcp(nport, 80).Build();
  // From a router on the way (not the backend): the outer source stays.
  Bytes err = Frame().Eth(kMacNode, kMacPeer).Ipv6("fd00::2", "fd00::1").IcmpError(2, 0, 1280).Payload(Quote(sent, true)).Build();
  ProgRun e = Run(tc_in_, err);
  EXPECT_EQ(e.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  Bytes about = Frame().Eth().Ipv6("fd00::100", "fd00::1").Tcp(40000, 30080).Build();
  EXPECT_EQ(e.out, Frame().Eth(kMacClient, kMacNode).Ipv6("fd00::2", "fd00::100").IcmpError(2, 0, 1280)
                       .Payload(Quote(about, true)).Build());
}

TEST_F(NodePortTest, IcmpErrorFromALocalBackendLeavesAboutTheFrontend) {
  AddService("10.0.0.1", 30054, kUdp, 24, kExt, {{"10.1.1.2", 53}}, 150);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(5353, 30054).Payload("q").Build();
  ProgRun r = Run(tc_in_, in);
  ASSERT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  // What the backend got, quoted in its port unreachable.
  Bytes got(r.out.begin(), r.out.end());
  Bytes err = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").IcmpError(3, 3).Payload(Quote(got, false)).Build();
  ProgRun e = Run(tc_out_, err);
  EXPECT_EQ(e.retval, static_cast<uint32_t>(TC_ACT_OK));
  std::string q = Quote(in, false);
  std::string gq = Quote(got, false);
  q[20 + 6] = gq[20 + 6];  // the quoted UDP checksum is the one the backend got
  q[20 + 7] = gq[20 + 7];
  EXPECT_EQ(e.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").IcmpError(3, 3).Payload(q).Build());
}

TEST_F(NodePortTest, UdpChecksumsAreUpdatedAndAZeroChecksumStaysZero) {
  AddService("10.0.0.1", 30053, kUdp, 11, kExt, {{"10.1.2.2", 53}}, 30);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(5353, 30053).Payload("query").Build();
  ProgRun r = Run(tc_in_, in);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  uint16_t nport = PortAt(r.out, kL4);
  EXPECT_EQ(r.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Udp(nport, 53).Payload("query").Build());

  Bytes nocsum = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(5354, 30053).NoUdpChecksum().Payload("q").Build();
  ProgRun r2 = Run(xdp_in_, nocsum);
  EXPECT_EQ(r2.retval, static_cast<uint32_t>(XDP_REDIRECT));
  uint16_t nport2 = PortAt(r2.out, kL4);
  EXPECT_EQ(r2.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Udp(nport2, 53).NoUdpChecksum().Payload("q").Build());
}

// A backend removed from its service is written back marked retired (the
// agent's writer does this); a flow pinned to it chooses again at its next
// datagram, in XDP and in tc, with its conntrack entry still there. Without
// the mark (only the slots changed), the flow stays where it was.
TEST_F(NodePortTest, FlowOfARetiredBackendChoosesAgainAtItsNextPacket) {
  for (int fd : {tc_in_, xdp_in_}) {
    SCOPED_TRACE(fd == tc_in_ ? "tc" : "xdp");
    AddService("10.0.0.1", 30053, kUdp, 12, kExt, {{"10.1.2.2", 53}, {"10.1.2.3", 53}}, 40);
    const uint16_t sport = fd == tc_in_ ? 5353 : 5354;  // a flow of its own for each
    Bytes q = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(sport, 30053).Payload("q").Build();
    auto backend_of = [&]() { return Run(fd, q).out.at(14 + 16 + 3); };  // last byte of the new destination
    const uint8_t first = backend_of();
    ASSERT_TRUE(first == 2 || first == 3) << int{first};
    const uint32_t gone_id = first == 2 ? 40 : 41, stays_id = first == 2 ? 41 : 40;
    // The removal's slot and master writes: only the other backend is left.
    PutSlot("10.0.0.1", 30053, kUdp, 1, tnd_svc_val{stays_id, 12, 0, 0, 0, 0});
    PutSlot("10.0.0.1", 30053, kUdp, 0, tnd_svc_val{0, 12, 0, 1, kExt, 0});
    EXPECT_EQ(backend_of(), first) << "pinned by its conntrack entry while the backend is not retired";
    auto be = backends_->Lookup(gone_id);
    ASSERT_TRUE(be.ok() && be->has_value());
    tnd_backend retired = **be;
    retired.flags |= TND_BACKEND_F_RETIRED;
    ASSERT_TRUE(backends_->Update(gone_id, retired).ok());
    // As the writer does after a change: the flow's cached path goes.
    ASSERT_TRUE(BumpNodeGeneration(pins_->path() + "/" TND_MAP_NODE).ok());
    EXPECT_EQ(backend_of(), first == 2 ? 3 : 2) << "a retired backend's flow chooses again";
    EXPECT_EQ(backend_of(), first == 2 ? 3 : 2) << "and stays on its new choice";
  }
}

TEST_F(NodePortTest, Ipv6RemoteBackendExactly) {
  AddService("fd00::1", 30080, kTcp, 12, kExt, {{"fd02::2", 80}}, 40);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv6("fd00::100", "fd00::1").Tcp(40000, 30080).Payload("v6").Build();
  for (int fd : {tc_in_, xdp_in_}) {
    ClearFlows();
    ProgRun r = Run(fd, in);
    EXPECT_EQ(r.retval, fd == tc_in_ ? static_cast<uint32_t>(TC_ACT_REDIRECT) : static_cast<uint32_t>(XDP_REDIRECT));
    uint16_t nport = PortAt(r.out, 14 + 40);
    EXPECT_EQ(r.out, Frame().Eth(kMacPeer, kMacNode).Ipv6("fd00::1", "fd02::2").Tcp(nport, 80).Payload("v6").Build());
    Bytes reply = Frame().Eth(kMacNode, kMacPeer).Ipv6("fd02::2", "fd00::1").Tcp(80, nport, 0x12).Build();
    ProgRun rr = Run(fd, reply);
    EXPECT_EQ(rr.out, Frame().Eth(kMacClient, kMacNode).Ipv6("fd00::1", "fd00::100").Tcp(30080, 40000, 0x12).Build());
  }
}

TEST_F(NodePortTest, LocalPolicyWithoutLocalBackendsDropsWithItsReason) {
  AddService("10.0.0.1", 30082, kTcp, 13, kExt | TND_SVC_F_LOCAL, {}, 50);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30082).Build();
  EXPECT_EQ(Run(tc_in_, in).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Run(xdp_in_, in).retval, static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(Drops()[TND_DROP_NO_LOCAL_BACKEND], 2u);
  EXPECT_EQ(CountEntries4(), 0);
  // Both drops are on the event ring buffer, decoded as sent.
  std::vector<tnd_event> events = Events();
  ASSERT_EQ(events.size(), 2u);
  for (const tnd_event& e : events) {
    EXPECT_EQ(e.type, TND_EVENT_DROP);
    EXPECT_EQ(e.reason, TND_DROP_NO_LOCAL_BACKEND);
    EXPECT_EQ(e.family, 4);
    EXPECT_EQ(std::memcmp(e.saddr, Addr("10.0.0.100").data(), 4), 0);
    EXPECT_EQ(std::memcmp(e.daddr, Addr("10.0.0.1").data(), 4), 0);
    EXPECT_EQ(ntohs(e.sport), 40000);
    EXPECT_EQ(ntohs(e.dport), 30082);
    EXPECT_EQ(e.proto, kTcp);
    EXPECT_EQ(e.len, in.size());
  }
}

TEST_F(NodePortTest, LocalPolicyKeepsTheClientAddress) {
  AddService("10.0.0.1", 30083, kTcp, 14, kExt | TND_SVC_F_LOCAL, {{"10.1.1.2", 8080}}, 60);
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30083).Build();
  ProgRun r = Run(tc_in_, in);
  EXPECT_EQ(r.out, Frame().Eth(kMacLocal, kMacLx).Ipv4("10.0.0.100", "10.1.1.2").Tcp(40000, 8080).Build());
}

TEST_F(NodePortTest, SourceRangesAllowAndDeny) {
  AddService("10.0.0.1", 30084, kTcp, 15, kExt | TND_SVC_F_SRCRANGE, {{"10.1.2.2", 80}}, 70);
  ASSERT_TRUE(srng4_->Update(Range4(15, *ParseCidr("10.0.0.100/30")), 1).ok());
  Bytes allowed = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.101", "10.0.0.1").Tcp(40000, 30084).Build();
  Bytes denied = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.104", "10.0.0.1").Tcp(40000, 30084).Build();
  EXPECT_EQ(Run(tc_in_, allowed).retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(Run(tc_in_, denied).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Run(xdp_in_, denied).retval, static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(Drops()[TND_DROP_SOURCE_RANGE], 2u);
  // Another service's range does not apply.
  ASSERT_TRUE(srng4_->Update(Range4(16, *ParseCidr("10.0.0.104/30")), 1).ok());
  // An id beyond 16 bits whose low half is this service's does not either.
  ASSERT_TRUE(srng4_->Update(Range4(15 + (1u << 16), *ParseCidr("10.0.0.104/30")), 1).ok());
  EXPECT_EQ(Run(tc_in_, denied).retval, static_cast<uint32_t>(TC_ACT_SHOT));
}

TEST_F(NodePortTest, FragmentsFollowTheirFirstFragment) {
  AddService("10.0.0.1", 30085, kUdp, 17, kExt, {{"10.1.2.2", 53}}, 80);
  Bytes first = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Frag(0x4242, 0x2000)
                    .Udp(6000, 30085).Payload("01234567").Build();
  ProgRun r = Run(tc_in_, first);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  uint16_t nport = PortAt(r.out, kL4);
  EXPECT_EQ(r.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Frag(0x4242, 0x2000)
                       .Udp(nport, 53).Payload("01234567").Build());
  Bytes later = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Frag(0x4242, 2)
                    .Proto(kUdp).Payload("89abcdef").Build();
  ProgRun r2 = Run(tc_in_, later);
  EXPECT_EQ(r2.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_EQ(r2.out, Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Frag(0x4242, 2)
                        .Proto(kUdp).Payload("89abcdef").Build());
  // A later fragment of a datagram never seen passes to the stack untouched.
  Bytes stray = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Frag(0x7777, 2)
                    .Proto(kUdp).Payload("zz").Build();
  ProgRun r3 = Run(tc_in_, stray);
  EXPECT_EQ(r3.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(r3.out, stray);
}

TEST_F(NodePortTest, DsrAddsTheFrontendOptionAndTheBackendNodeAnswersFromIt) {
  AddService("10.0.0.1", 30086, kTcp, 18, kExt | TND_SVC_F_DSR, {{"10.1.2.2", 80}}, 90);
  Bytes syn = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30086).Build();
  // XDP does not add options: the first packet is tc's.
  EXPECT_EQ(Run(xdp_in_, syn).retval, static_cast<uint32_t>(XDP_PASS));
  ProgRun r = Run(tc_in_, syn);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  Bytes opt = {TND_DSR_OPT_TYPE, TND_DSR_OPT_LEN, 0x75, 0x86 /* 30086 */, 10, 0, 0, 1};
  Bytes want = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.100", "10.1.2.2", opt).Tcp(40000, 80).Build();
  EXPECT_EQ(r.out, want);
  // No SNAT, so no NAT entries.
  int nat = 0;
  (void)nat4_->ForEach([&](const tnd_nat_key&, const tnd_nat_val&) { nat++; });
  EXPECT_EQ(nat, 0);
  // Past the SYN nothing needs the option: XDP forwards the flow itself,
  // by the full path and then by the cached one; a retransmitted SYN is
  // tc's again, and gets the option again.
  Bytes ack = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30086, 0x10).Build();
  Bytes ack_out = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.100", "10.1.2.2").Tcp(40000, 80, 0x10).Build();
  for (int i = 0; i < 3; ++i) {
    ProgRun x = Run(xdp_in_, ack);
    EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_REDIRECT)) << "ACK " << i;
    EXPECT_EQ(x.out, ack_out) << "ACK " << i;
  }
  EXPECT_EQ(Run(xdp_in_, syn).retval, static_cast<uint32_t>(XDP_PASS)) << "a retransmitted SYN";
  EXPECT_EQ(Run(tc_in_, syn).out, want);

  // On the backend's node (a fresh state): the option is learnt and the
  // packet passed on; the backend's reply leaves from the frontend.
  ClearFlows();
  Bytes arriving = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.0.0.100", "10.1.1.2", opt).Tcp(40000, 80).Build();
  ProgRun a = Run(tc_in_, arriving);
  EXPECT_EQ(a.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(a.out, arriving);
  Bytes reply = Frame().Eth(kMacClient, kMacNode).Ipv4("10.1.1.2", "10.0.0.100").Tcp(80, 40000, 0x12).Build();
  ProgRun e = Run(tc_out_, reply);
  EXPECT_EQ(e.out, Frame().Eth(kMacClient, kMacNode).Ipv4("10.0.0.1", "10.0.0.100").Tcp(30086, 40000, 0x12).Build());
}

TEST_F(NodePortTest, Ipv6DsrAddsTheDestinationOptionsHeaderAndIsLearnt) {
  AddService("fd00::1", 30086, kTcp, 25, kExt | TND_SVC_F_DSR, {{"fd02::2", 80}}, 160);
  Bytes syn = Frame().Eth(kMacNode, kMacClient).Ipv6("fd00::100", "fd00::1").Tcp(40000, 30086).Build();
  ProgRun r = Run(tc_in_, syn);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  auto fe = Addr("fd00::1");
  Bytes opt = {TND_DSR_OPT6_TYPE, 18, 0x75, 0x86 /* 30086 */};
  opt.insert(opt.end(), fe.begin(), fe.end());
  opt.insert(opt.end(), {1, 0});  // PadN
  Bytes want = Frame().Eth(kMacPeer, kMacNode).Ipv6("fd00::100", "fd02::2").Ipv6DestOpts(opt).Tcp(40000, 80).Build();
  EXPECT_EQ(r.out, want);
  // The backend's node learns the frontend; the reply leaves from it.
  ClearFlows();
  Bytes arriving = Frame().Eth(kMacNode, kMacPeer).Ipv6("fd00::100", "fd01::2").Ipv6DestOpts(opt).Tcp(40000, 80).Build();
  ProgRun a = Run(tc_in_, arriving);
  EXPECT_EQ(a.retval, static_cast<uint32_t>(TC_ACT_OK));
  EXPECT_EQ(a.out, arriving);
  Bytes reply = Frame().Eth(kMacClient, kMacNode).Ipv6("fd01::2", "fd00::100").Tcp(80, 40000, 0x12).Build();
  EXPECT_EQ(Run(tc_out_, reply).out,
            Frame().Eth(kMacClient, kMacNode).Ipv6("fd00::1", "fd00::100").Tcp(30086, 40000, 0x12).Build());
}

TEST_F(NodePortTest, MalformedAndForeignFramesPassUntouched) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  // ClusterIP-only frontend (no external flag): socket LB's, not ours.
  AddService("10.96.0.10", 80, kTcp, 19, 0, {{"10.1.2.2", 80}}, 100);
  std::vector<Bytes> frames = {
      Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081).Build(),  // no service
      Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.96.0.10").Tcp(40000, 80).Build(),
      Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").IcmpEcho().Build(),
      Frame().Eth(kMacNode, kMacClient).EtherType(0x0806).Payload(std::string(28, '\0')).Build(),
  };
  // A TCP header cut after the ports' first byte.
  Bytes cut = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080).Build();
  cut.resize(kL4 + 3);
  frames.push_back(cut);
  for (const Bytes& f : frames) {
    ProgRun t = Run(tc_in_, f);
    EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_OK));
    EXPECT_EQ(t.out, f);
    ProgRun x = Run(xdp_in_, f);
    EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
    EXPECT_EQ(x.out, f);
  }
  EXPECT_EQ(CountEntries4(), 0);
}

TEST_F(NodePortTest, NoRouteToTheBackendDropsWithItsReasonAndLeavesNoState) {
  AddService("10.0.0.1", 30087, kTcp, 20, kExt, {{"192.0.2.9", 80}}, 110);  // no route there
  Bytes in = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30087).Build();
  EXPECT_EQ(Run(tc_in_, in).retval, static_cast<uint32_t>(TC_ACT_SHOT));
  EXPECT_EQ(Drops()[TND_DROP_NO_ROUTE], 1u);
  EXPECT_EQ(CountEntries4(), 0);
}

}  // namespace
}  // namespace tendril::test
