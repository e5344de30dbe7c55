// `tendril explain`'s engine (explain/runner.h, explain/report.h) against the
// real objects in the running kernel: the record a dry run leaves names the
// path the node's own programs then take with the same frame (service,
// backend, verdict, drop reason, rewrite), and the node's programs never
// write it.
#include <gtest/gtest.h>
#include <linux/bpf.h>
#include <linux/pkt_cls.h>

#include <algorithm>

#include "explain/report.h"
#include "explain/runner.h"
#include "maps/conntrack.h"
#include "maps/node_gen.h"
#include "network/cidr.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr uint8_t kExt = TND_SVC_F_EXTERNAL | TND_SVC_F_NODEPORT;
constexpr uint8_t kTcp = IPPROTO_TCP;

bool Has(const tnd_explain& x, int step) { return (x.steps >> step) & 1; }
bool HasStep(const nlohmann::json& j, const char* name) {
  for (const auto& s : j.value("steps", nlohmann::json::array()))
    if (s.value("step", "") == name) return true;
  return false;
}

class ExplainTest : public LbFixture {
 protected:
  void SetUp() override {
    LbFixture::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    runner_ = std::make_unique<DryRunner>(
        std::map<std::string, std::string>{{"bpf_xdp", BpfObjectPath("bpf_xdp")},
                                           {"bpf_host", BpfObjectPath("bpf_host")},
                                           {"bpf_lxc", BpfObjectPath("bpf_lxc")}},
        pins_->path());
  }
  Bytes Syn(const char* src, uint16_t dport, uint8_t flags = 0x02) const {
    return Frame().Eth(kMacNode, kMacClient).Ipv4(src, "10.0.0.1").Tcp(41000, dport, flags).Payload("x").Build();
  }
  DryRunOutcome Dry(const char* object, const char* program, RunCtx kind, const Bytes& in) {
    NetnsGuard g(*ns_);
    auto r = runner_->Run(object, program, kind, in, tn0_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : DryRunOutcome{};
  }
  nlohmann::json Describe(const char* hook, RunCtx kind, const Bytes& in, const DryRunOutcome& out) {
    NetnsGuard g(*ns_);
    return DescribeHook(ExplainedHook{hook, kind, "tn0", in, out}, BpffsPaths(pins_->path()));
  }
  // The node's program `fd` on the same frame, seen on the same device.
  DryRunOutcome Real(int fd, RunCtx kind, const Bytes& in) {
    NetnsGuard g(*ns_);
    auto r = TestRunFrame(fd, kind, in, tn0_);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : DryRunOutcome{};
  }
  std::unique_ptr<DryRunner> runner_;
};

TEST_F(ExplainTest, ANewNodePortFlowNamesServiceBackendAndWhatItWouldCreate) {
  AddService("10.0.0.1", 30090, kTcp, 21, kExt, {{"10.1.2.2", 80}, {"10.1.2.3", 80}}, 90);
  const Bytes in = Syn("10.0.0.100", 30090);
  for (auto [obj, prog, kind, real] : {std::tuple{"bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, xdp_in_},
                                       std::tuple{"bpf_host", kHostIngressProgram, RunCtx::kTc, tc_in_}}) {
    SCOPED_TRACE(prog);
    DryRunOutcome d = Dry(obj, prog, kind, in);
    const tnd_explain& x = d.rec;
    // Recorded by the programs:
    EXPECT_TRUE(Has(x, TND_XS_SERVICE) && Has(x, TND_XS_SLOT_RANDOM) && Has(x, TND_XS_CT_NEW) &&
                Has(x, TND_XS_FIB))
        << std::hex << x.steps;
    ASSERT_TRUE(x.backend_id == 90 || x.backend_id == 91) << x.backend_id;
    EXPECT_EQ(x.drop_reason, 0);
    EXPECT_EQ(x.redirect_how, kind == RunCtx::kXdp ? TND_XR_TX : TND_XR_DEVICE);
    EXPECT_EQ(x.redirect_ifindex, tn0_);
    ASSERT_GE(x.nprogs, 2);
    EXPECT_EQ(x.progs[0], kind == RunCtx::kXdp ? TND_XP_XDP_ENTRY : TND_XP_HOST_INGRESS);
    EXPECT_EQ(x.progs[1], kind == RunCtx::kXdp ? TND_XP_XDP_V4 : TND_XP_HOST_IN_V4);
    // The description names the backend the frame was rewritten to.
    nlohmann::json j = Describe(kind == RunCtx::kXdp ? "xdp" : "tc-ingress", kind, in, d);
    // Read from the maps and frames (the service stage records none):
    EXPECT_EQ(j["service"].value("id", 0), 21) << j.dump(2);
    EXPECT_TRUE(HasStep(j, "snat") && HasStep(j, "service") && !HasStep(j, "ct-found")) << j.dump(2);
    const std::string be = j["backend"].value("address", "");
    EXPECT_EQ(be, x.backend_id == 90 ? "10.1.2.2:80" : "10.1.2.3:80") << j.dump(2);
    bool dnat = false;
    for (const auto& r : j["rewrites"])
      if (r.value("field", "") == "destination") dnat = r.value("after", "") == be;
    EXPECT_TRUE(dnat) << j.dump(2);
    EXPECT_EQ(j["checksums"].value("ipv4_header", ""), "valid");
    EXPECT_EQ(j["checksums"].value("TCP", ""), "valid");
    // The node's program on the same frame: the flow it creates is on the
    // backend the dry run named (a random slot: the record and the frame
    // agree with each other; the node may pick the other one).
    DryRunOutcome r = Real(real, kind, in);
    EXPECT_EQ(VerdictName(kind, r.retval), VerdictName(kind, d.retval));
    // Its established packets: the dry run finds the entry and its backend.
    const bool first_is_90 = r.out.size() > 33 && r.out[33] == 2;  // 10.1.2.2 vs .3
    DryRunOutcome est = Dry(obj, prog, kind, Syn("10.0.0.100", 30090, 0x10));
    EXPECT_TRUE(Has(est.rec, TND_XS_CT_BACKEND) || Has(est.rec, TND_XS_CACHED_PATH)) << std::hex << est.rec.steps;
    EXPECT_TRUE(HasStep(Describe("x", kind, Syn("10.0.0.100", 30090, 0x10), est), "ct-found"));
    EXPECT_FALSE(Has(est.rec, TND_XS_CT_NEW));
    EXPECT_EQ(est.rec.backend_id, first_is_90 ? 90u : 91u);
    ClearFlows();
  }
}

TEST_F(ExplainTest, SourceRangeDeniedAndNoEndpointsSayWhy) {
  AddService("10.0.0.1", 30091, kTcp, 22, kExt | TND_SVC_F_SRCRANGE, {{"10.1.2.2", 80}}, 95);
  ASSERT_TRUE(srng4_->Update(Range4(22, *ParseCidr("10.0.0.100/30")), 1).ok());
  DryRunOutcome denied = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, Syn("10.0.0.104", 30091));
  EXPECT_EQ(denied.retval, static_cast<uint32_t>(XDP_DROP));
  EXPECT_EQ(denied.rec.drop_reason, TND_DROP_SOURCE_RANGE);
  nlohmann::json j = Describe("xdp", RunCtx::kXdp, Syn("10.0.0.104", 30091), denied);
  EXPECT_EQ(j.value("drop_reason", ""), "source-range-denied") << j.dump(2);
  DryRunOutcome ok = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, Syn("10.0.0.101", 30091));
  EXPECT_TRUE(HasStep(Describe("xdp", RunCtx::kXdp, Syn("10.0.0.101", 30091), ok), "source-range-ok"));
  EXPECT_FALSE(HasStep(j, "source-range-ok")) << j.dump(2);

  // No endpoint anywhere: XDP hands it on, tc answers with a RST.
  tnd_svc_val v{};
  v.svc_id = 23;
  v.flags = kExt;
  v.xflags = TND_SVC_X_REJECT;
  PutSlot("10.0.0.1", 30092, kTcp, 0, v);
  DryRunOutcome x = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, Syn("10.0.0.100", 30092));
  EXPECT_EQ(x.retval, static_cast<uint32_t>(XDP_PASS));
  EXPECT_TRUE(Has(x.rec, TND_XS_TO_TC));
  const Bytes syn = Syn("10.0.0.100", 30092);
  DryRunOutcome t = Dry("bpf_host", kHostIngressProgram, RunCtx::kTc, syn);
  EXPECT_EQ(t.retval, static_cast<uint32_t>(TC_ACT_REDIRECT));
  EXPECT_TRUE(Has(t.rec, TND_XS_REJECT));
  EXPECT_EQ(t.rec.drop_reason, TND_DROP_NO_SERVICE_BACKEND);
  j = Describe("tc-ingress", RunCtx::kTc, syn, t);
  EXPECT_EQ(j.value("reply", ""), "TCP 10.0.0.1:30092 -> 10.0.0.100:41000") << j.dump(2);
  EXPECT_EQ(j["service"].value("empty", ""), "no usable endpoint anywhere: new flows are rejected");
  // The node's program answers the same.
  EXPECT_EQ(Run(tc_in_, syn, tn0_).out, t.out);
}

TEST_F(ExplainTest, NotAServicePortLeavesAtOnceAndTheNodesProgramsNeverWriteTheRecord) {
  DryRunOutcome d = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, Syn("10.0.0.100", 22));
  EXPECT_EQ(d.retval, static_cast<uint32_t>(XDP_PASS));
  // Not mine by the port filter (the agent writes it) or by the lookup.
  nlohmann::json j = Describe("xdp", RunCtx::kXdp, Syn("10.0.0.100", 22), d);
  EXPECT_TRUE(Has(d.rec, TND_XS_NOT_MINE) || HasStep(j, "no-service")) << j.dump(2);
  AddService("10.0.0.1", 30093, kTcp, 24, kExt, {{"10.1.2.2", 80}}, 97);
  Run(xdp_in_, Syn("10.0.0.100", 30093));
  Run(tc_in_, Syn("10.0.0.100", 30093), tn0_);
  for (BpfObject* o : {xdp_, host_}) {
    auto fd = o->MapFd(".data.explain");
    ASSERT_TRUE(fd.ok()) << fd.status();
    tnd_explain rec{}, zero{};
    uint32_t key = 0;
    ASSERT_EQ(bpf_map_lookup_elem(*fd, &key, &rec), 0);
    EXPECT_EQ(std::memcmp(&rec, &zero, sizeof(rec)), 0) << "a node's program wrote the explain record";
  }
}

TEST_F(ExplainTest, AHopAnotherFlowFoundIsNamedAndADryRunSharesNone) {
  AddService("10.0.0.1", 30094, kTcp, 25, kExt, {{"10.1.2.2", 80}}, 98);
  ASSERT_TRUE(SetNodeFlag(pins_->path() + "/" TND_MAP_NODE, TND_NODE_F_HOPS_SHARED, true).ok());
  auto hops = Open<tnd_hop_key, tnd_hop_val>(TND_MAP_HOPS);
  auto count = [&] {
    int n = 0;
    EXPECT_TRUE(hops->ForEach([&](const tnd_hop_key&, const tnd_hop_val&) { ++n; }).ok());
    return n;
  };
  DryRunOutcome first = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, Syn("10.0.0.100", 30094));
  EXPECT_TRUE(Has(first.rec, TND_XS_FIB) && !Has(first.rec, TND_XS_HOP_SHARED)) << std::hex << first.rec.steps;
  EXPECT_EQ(count(), 0) << "a dry run shares no next hop";
  // The node's program shares what the FIB found; a dry run of another new
  // flow in the same cache tick takes it (three tries against the tick turning).
  bool named = false;
  for (int attempt = 0; attempt < 3 && !named; ++attempt) {
    const uint32_t tick = BpfCacheTick();
    Real(xdp_in_, RunCtx::kXdp, Syn("10.0.0.101", 30094));  // seen on the device the dry run names
    ASSERT_EQ(count(), 1);
    const Bytes in = Syn("10.0.0.102", 30094);
    DryRunOutcome d = Dry("bpf_xdp", kXdpEntryProgram, RunCtx::kXdp, in);
    if (BpfCacheTick() != tick) continue;
    EXPECT_TRUE(Has(d.rec, TND_XS_HOP_SHARED) && !Has(d.rec, TND_XS_FIB)) << std::hex << d.rec.steps;
    EXPECT_TRUE(HasStep(Describe("xdp", RunCtx::kXdp, in, d), "hop-shared"));
    const Bytes real = Real(xdp_in_, RunCtx::kXdp, in).out;
    ASSERT_TRUE(d.out.size() >= 12 && real.size() >= 12);
    EXPECT_TRUE(std::equal(d.out.begin(), d.out.begin() + 12, real.begin())) << "the MACs the node's program writes";
    named = true;
  }
  EXPECT_TRUE(named) << "the second turned in each of three attempts";
}

}  // namespace
}  // namespace tendril::test
