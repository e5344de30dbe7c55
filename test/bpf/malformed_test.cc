// Frames the kernel would drop, or that carry less than a rewrite needs,
// are left to the stack untouched by XDP and tc: each case is one found by
// sending generated frames at a node (issue 15), named after it. Expected
// frames are built by the test's frame builder; "untouched" is the input
// byte for byte.
#include <gtest/gtest.h>
#include <linux/pkt_cls.h>

#include "test/support/frame_check.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr uint8_t kExt = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT;

class MalformedFrameTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    AddService("10.0.0.1", 30080, IPPROTO_TCP, 7, kExt, {{"10.1.2.2", 80}}, 1);
    AddService("10.0.0.1", 30053, IPPROTO_UDP, 8, kExt, {{"10.1.2.2", 53}}, 2);
  }
  Bytes Syn() const {
    return Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080).Payload("GET / HTTP/1.0")
        .Build();
  }
  // XDP and tc both pass `f` on untouched, and nothing is tracked.
  void ExpectLeftAlone(const Bytes& f, const std::string& what) {
    ProgRun x = Run(xdp_in_, f);
    EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS)) << what;
    EXPECT_EQ(x.out, f) << what;
    ProgRun t = Run(tc_in_, f);
    EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_OK)) << what;
    EXPECT_EQ(t.out, f) << what;
    EXPECT_EQ(CountEntries4(), 0) << what;
  }
};

// An IPv4 packet's fragment `k` of `size` payload bytes, padded to 60 bytes
// as a NIC delivers short frames.
Bytes FragmentOf(const Bytes& whole, size_t size, size_t k) {
  size_t data = whole.size() - 34;
  size_t off = k * size, len = std::min(size, data - off);
  Bytes f(whole.begin(), whole.begin() + static_cast<long>(34 + off + len));
  f.erase(f.begin() + 34, f.begin() + static_cast<long>(34 + off));
  f[16] = 0;
  f[17] = static_cast<uint8_t>(20 + len);
  uint16_t fo = static_cast<uint16_t>(off / 8 | (off + len < data ? 0x2000 : 0));
  f[20] = static_cast<uint8_t>(fo >> 8);
  f[21] = static_cast<uint8_t>(fo);
  FixIpv4HeaderChecksum(f);
  f.resize(std::max<size_t>(f.size(), 60), 0);
  return f;
}

TEST_F(MalformedFrameTest, TinyFirstFragmentsOfASynAreLeftToTheStack) {
  for (size_t size : {8u, 16u}) {
    Bytes first = FragmentOf(Syn(), size, 0);
    ASSERT_EQ(first.size(), 60u);
    ExpectLeftAlone(first, absl::StrCat(size, "-byte first fragment"));
    // Its later fragments find no first one to follow.
    ExpectLeftAlone(FragmentOf(Syn(), size, 1), absl::StrCat(size, "-byte second fragment"));
  }
  // A first fragment that holds the whole TCP header is translated, within
  // its IP length: the padding after it stays as it was.
  Bytes big = FragmentOf(Syn(), 24, 0);
  ProgRun r = Run(tc_in_, big);
  EXPECT_EQ(r.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  ASSERT_EQ(r.out.size(), big.size());
  EXPECT_TRUE(Ipv4HeaderChecksumOk(r.out));
  EXPECT_TRUE(std::equal(big.begin() + 14 + 20 + 24, big.end(), r.out.begin() + 14 + 20 + 24)) << "padding touched";
}

TEST_F(MalformedFrameTest, PaddedFrameIsRewrittenWithinItsIpLength) {
  Bytes in = Syn();
  Bytes pad = {0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 0, 0x11, 0x22};
  in.insert(in.end(), pad.begin(), pad.end());
  for (int fd : {xdp_in_, tc_in_}) {
    ClearFlows();
    ProgRun r = Run(fd, in);
    ASSERT_EQ(r.out.size(), in.size());
    uint16_t nport = PortAt(r.out, 34);
    Bytes want = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.0.0.1", "10.1.2.2").Tcp(nport, 80).Payload("GET / HTTP/1.0")
                     .Build();
    want.insert(want.end(), pad.begin(), pad.end());
    EXPECT_EQ(r.out, want) << (fd == xdp_in_ ? "xdp" : "tc");
  }
}

TEST_F(MalformedFrameTest, Ipv4WithABadHeaderChecksumIsLeftToTheStack) {
  Bytes f = Syn();
  f[24] ^= 0x01;
  ExpectLeftAlone(f, "bad header checksum");
}

TEST_F(MalformedFrameTest, TruncatedPacketsAndBadLengthsAreLeftToTheStack) {
  auto with = [&](auto edit) {
    Bytes f = Syn();
    edit(f);
    FixIpv4HeaderChecksum(f);
    return f;
  };
  ExpectLeftAlone(with([](Bytes& f) { f.resize(f.size() - 4); }), "truncated (total length past the frame)");
  ExpectLeftAlone(with([](Bytes& f) { f[17] = 19; f[16] = 0; }), "total length below the header");
  ExpectLeftAlone(with([](Bytes& f) { f[16] = 0; f[17] = 20 + 12; }), "TCP header cut by the total length");
  ExpectLeftAlone(with([](Bytes& f) { f[14] = 0x44; }), "IHL 4");
  ExpectLeftAlone(with([](Bytes& f) { f[14] = 0x4f; }), "IHL 15 past the TCP header");
  ExpectLeftAlone(with([](Bytes& f) { f[46] = 0x40; }), "TCP data offset 4");
  ExpectLeftAlone(with([](Bytes& f) { f[46] = 0xf0; }), "TCP data offset past the packet");
  Bytes udp = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Udp(40000, 30053).Payload("x").Build();
  udp[38] = 0;
  udp[39] = 200;  // UDP length past the packet
  ExpectLeftAlone(udp, "UDP length past the packet");
}

}  // namespace
}  // namespace tendril::test
