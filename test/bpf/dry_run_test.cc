// The dry run that `tendril explain` runs (bpf/lib/explain.h): the node's
// objects loaded again with tnd_dry_run set and the pinned maps reused give
// the verdict and the frame the node's programs give, and change no map:
// every pinned map is read whole before and after. Real objects in the
// running kernel, frames through BPF_PROG_TEST_RUN in lb_node.h's namespace.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include "test/support/lb_fixture.h"
#include "test/support/map_dump.h"
#include "absl/strings/match.h"

namespace tendril::test {
namespace {

constexpr uint8_t kExt = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT;
constexpr uint8_t kTcp = IPPROTO_TCP;

class DryRunTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    for (auto [name, slot] : {std::pair{"bpf_host", &dry_host_}, std::pair{"bpf_xdp", &dry_xdp_}}) {
      LoadOptions o = Options(name);
      o.dry_run = true;
      auto obj = BpfObject::Load(o);
      ASSERT_TRUE(obj.ok()) << obj.status();
      *slot = std::make_unique<BpfObject>(std::move(*obj));
    }
    dry_tc_ = *dry_host_->ProgramFd(kHostIngressProgram);
    dry_xdp_in_ = *dry_xdp_->ProgramFd(kXdpEntryProgram);
  }
  MapDump Dump() {
    auto d = DumpPinnedMaps(pins_->path());
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? *d : MapDump{};
  }
  // The dry run of `in` on `dry` changes no map; then the node's program
  // `real` on the same frame: the same verdict and frame.
  void ExpectSameAndNothingChanged(int dry, int real, const Bytes& in, const char* what) {
    SCOPED_TRACE(what);
    MapDump before = Dump();
    ASSERT_FALSE(before.empty());
    ProgRun d = Run(dry, in);
    EXPECT_EQ(DumpDiff(before, Dump()), "") << "the dry run changed a map";
    ProgRun r = Run(real, in);
    EXPECT_EQ(d.retval, r.retval);
    EXPECT_EQ(d.out, r.out);
  }
  Bytes In(uint16_t sport, uint8_t flags, const char* dst = "10.0.0.1", uint16_t dport = 30080) const {
    const bool v6 = std::string(dst).find(':') != std::string::npos;
    Frame f;
    f.Eth(kMacNode, kMacClient);
    if (v6) f.Ipv6("fd00::100", dst);
    else f.Ipv4("10.0.0.100", dst);
    return f.Tcp(sport, dport, flags).Payload("data").Build();
  }

  std::unique_ptr<BpfObject> dry_host_, dry_xdp_;
  int dry_tc_ = -1, dry_xdp_in_ = -1;
};

TEST_F(DryRunTest, ANodePortFlowIsForwardedAsByTheNodeAndNothingIsWritten) {
  AddService("10.0.0.1", 30080, kTcp, 7, kExt, {{"10.1.2.2", 80}}, 1);
  AddService("fd00::1", 30080, kTcp, 8, kExt, {{"fd00:1::2", 80}}, 1);
  for (auto [dry, real, name] : {std::tuple{dry_tc_, tc_in_, "tc"}, std::tuple{dry_xdp_in_, xdp_in_, "xdp"}}) {
    for (const char* dst : {"10.0.0.1", "fd00::1"}) {
      SCOPED_TRACE(dst);
      const uint16_t sport = static_cast<uint16_t>(dry == dry_tc_ ? 41001 : 41002);
      // A new flow (conntrack and NAT entries it would create), then the
      // established one through the same entries, then its FIN.
      ExpectSameAndNothingChanged(dry, real, In(sport, 0x02, dst), name);
      ExpectSameAndNothingChanged(dry, real, In(sport, 0x10, dst), name);
      ExpectSameAndNothingChanged(dry, real, In(sport, 0x10, dst), name);
      ExpectSameAndNothingChanged(dry, real, In(sport, 0x11, dst), name);
    }
  }
}

TEST_F(DryRunTest, DropsAreNotCountedNorReported) {
  AddService("10.0.0.1", 30081, kTcp, 9, kExt, {}, 0);  // no backend: dropped, counted
  ExpectSameAndNothingChanged(dry_tc_, tc_in_, In(41010, 0x02, "10.0.0.1", 30081), "tc");
  ExpectSameAndNothingChanged(dry_xdp_in_, xdp_in_, In(41011, 0x02, "10.0.0.1", 30081), "xdp");
  EXPECT_FALSE(Drops().empty()) << "the node's programs counted theirs";
}

TEST_F(DryRunTest, AnObjectWithoutTheSwitchIsRefused) {
  LoadOptions o = TestLoadOptions("test_attach", pins_->path());
  o.dry_run = true;
  auto obj = BpfObject::Load(o);
  ASSERT_FALSE(obj.ok());
  EXPECT_TRUE(absl::StrContains(obj.status().message(), "tnd_dry_run")) << obj.status();
}

}  // namespace
}  // namespace tendril::test
