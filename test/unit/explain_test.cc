// `tendril explain`'s input checks and its text form (no kernel): every
// mistake in a packet named at once; the text says what the JSON says.
#include <gtest/gtest.h>
#include <netinet/in.h>

#include "absl/strings/match.h"
#include "explain/frame_inspect.h"
#include "explain/packet_spec.h"
#include "explain/report.h"

namespace tendril {
namespace {

TEST(ExplainInputTest, APacketIsParsedAndBuilt) {
  auto p = ParsePacket("TCP", "[fd00::100]:41000", "[fd00::1]:30080", "SA", 0);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->family(), 6);
  EXPECT_EQ(p->tcp_flags, 0x12);
  EXPECT_EQ(p->Summary(), "TCP [fd00::100]:41000 -> [fd00::1]:30080 [SA]");
  Bytes f = BuildFrame(*p, Mac{2, 0, 0, 0, 0, 2}, Mac{2, 0, 0, 0, 0, 1});
  FrameFacts x = Inspect(f);
  EXPECT_EQ(x.family, 6);
  EXPECT_EQ(x.sport, 41000);
  EXPECT_EQ(x.dport, 30080);
  EXPECT_TRUE(x.l4_csum_ok);
  auto u = ParsePacket("udp", "10.0.0.100", "10.0.0.1:53", "", 100);
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->sport, 40000) << "a default source port";
  EXPECT_TRUE(Inspect(BuildFrame(*u, Mac{}, Mac{})).tagged);
  auto i = ParsePacket("icmp", "10.0.0.100", "10.0.0.1", "", 0);
  ASSERT_TRUE(i.ok()) << i.status();
  EXPECT_EQ(Inspect(BuildFrame(*i, Mac{}, Mac{})).proto, IPPROTO_ICMP);
}

TEST(ExplainInputTest, EveryMistakeIsNamedAtOnce) {
  auto p = ParsePacket("sctp", "10.0.0.300", "fd00::1", "Q", 5000);
  ASSERT_FALSE(p.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(p.status()));
  for (const char* what : {"protocol \"sctp\"", "source \"10.0.0.300\"", "--flags is for TCP only", "--vlan 5000"})
    EXPECT_TRUE(absl::StrContains(p.status().message(), what)) << what << " in " << p.status();
  EXPECT_TRUE(absl::StrContains(ParsePacket("tcp", "10.0.0.1:1", "fd00::1:80", "", 0).status().message(),
                                "different families"));
  EXPECT_TRUE(absl::StrContains(ParsePacket("icmp", "10.0.0.1:1", "10.0.0.2", "", 0).status().message(),
                                "ICMP has no ports"));
}

TEST(ExplainReportTest, TheTextSaysWhatTheJsonSays) {
  nlohmann::json r = nlohmann::json::parse(R"J({
    "packet": {"summary": "TCP 10.0.0.100:42003 -> 10.0.0.1:30100 [S]", "device": "eth0", "ifindex": 2},
    "hooks": [
      {"hook": "xdp", "device": "eth0", "verdict": "pass", "programs": ["tnd_xdp_entry", "tnd_xdp_v4"],
       "steps": [{"step": "to-tc", "text": "handed on unmodified"}], "rewrites": [], "checksums": {}},
      {"hook": "tc-ingress", "device": "eth0", "verdict": "redirect",
       "programs": ["tnd_host_ingress", "tnd_host_in_v4"],
       "redirect": {"ifindex": 2, "device": "eth0", "how": "out of the device, MACs written (bpf_redirect)"},
       "service": {"id": 1, "frontend": "10.0.0.1:30100/TCP", "algorithm": "maglev", "active_slots": 2,
                   "flags": ["nodeport", "external"]},
       "backend": {"id": 2, "address": "10.1.2.2:8080", "place": "remote", "state": "active"},
       "steps": [{"step": "maglev", "text": "the backend at the flow's position", "detail": "position 6577"}],
       "rewrites": [{"field": "destination", "before": "10.0.0.1:30100", "after": "10.1.2.2:8080"}],
       "checksums": {"TCP": "valid", "ipv4_header": "valid"}}],
    "result": "forwarded by tc-ingress to eth0, backend 10.1.2.2:8080"})J");
  const std::string t = RenderExplanation(r);
  for (const char* line : {"xdp on eth0: PASS", "programs  tnd_host_ingress -> tnd_host_in_v4",
                           "tc-ingress on eth0: REDIRECT to eth0", "service   10.0.0.1:30100/TCP (id 1, maglev",
                           "backend   10.1.2.2:8080 (id 2, remote, active)", "[position 6577]",
                           "rewrite   destination: 10.0.0.1:30100 -> 10.1.2.2:8080", "checksum  TCP valid",
                           "Result   forwarded by tc-ingress"})
    EXPECT_TRUE(absl::StrContains(t, line)) << line << " in:\n" << t;
}

}  // namespace
}  // namespace tendril
