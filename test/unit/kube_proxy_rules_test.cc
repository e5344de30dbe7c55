// The kube-proxy rulesets the benchmark baseline loads: their shape (what
// kube-proxy's proxiers write), checked on the text. Loading them into the
// kernel is test/integration/kube_proxy_rules_load_test.cc.
#include "test/support/kube_proxy_rules.h"

#include <gtest/gtest.h>

#include <regex>
#include <sstream>

namespace tendril::bench {
namespace {

std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string l; std::getline(in, l);) out.push_back(l);
  return out;
}

std::vector<KpService> Two() {
  KpService a{"ns1", "web", "http", "10.96.0.10", 80, "tcp", {{"10.244.1.2", 8080}, {"10.244.1.3", 8080}, {"10.244.1.4", 8080}}};
  KpService b{"ns1", "dns", "dns", "10.96.0.11", 53, "udp", {{"10.244.1.5", 53}}};
  return {a, b};
}

TEST(KubeProxyRules, ChainNamesLookLikeKubeProxysAndDiffer) {
  auto s = Two();
  std::regex name("KUBE-(SVC|SEP)-[A-Z2-7]{16}");
  EXPECT_TRUE(std::regex_match(SvcChain(s[0]), name)) << SvcChain(s[0]);
  EXPECT_TRUE(std::regex_match(SepChain(s[0], s[0].endpoints[0]), name));
  EXPECT_NE(SvcChain(s[0]), SvcChain(s[1]));
  EXPECT_NE(SepChain(s[0], s[0].endpoints[0]), SepChain(s[0], s[0].endpoints[1]));
  EXPECT_EQ(SvcChain(s[0]), SvcChain(Two()[0])) << "stable across runs";
}

TEST(KubeProxyRules, IptablesPicksEndpointsWithDecreasingProbability) {
  auto s = Two();
  std::string text = IptablesFull(s);
  std::string svc = SvcChain(s[0]);
  std::vector<std::string> rules;
  for (const auto& l : Lines(text))
    if (l.rfind("-A " + svc + " ", 0) == 0) rules.push_back(l);
  ASSERT_EQ(rules.size(), 4u);  // masquerade mark for off-cluster sources + 3 endpoints
  EXPECT_NE(rules[0].find("! -s 10.244.0.0/16 -d 10.96.0.10/32 -p tcp -m tcp --dport 80 -j KUBE-MARK-MASQ"),
            std::string::npos) << rules[0];
  EXPECT_NE(rules[1].find("--probability 0.3333333333 -j " + SepChain(s[0], s[0].endpoints[0])), std::string::npos);
  EXPECT_NE(rules[2].find("--probability 0.5000000000 -j " + SepChain(s[0], s[0].endpoints[1])), std::string::npos);
  EXPECT_EQ(rules[3].find("statistic"), std::string::npos) << "the last endpoint takes the rest";
  std::string sep = SepChain(s[1], s[1].endpoints[0]);
  EXPECT_NE(text.find("-A " + sep + " -m comment --comment ns1/dns:dns -s 10.244.1.5/32 -j KUBE-MARK-MASQ"),
            std::string::npos);
  EXPECT_NE(text.find("-A " + sep + " -m comment --comment ns1/dns:dns -m udp -p udp -j DNAT --to-destination "
                      "10.244.1.5:53"),
            std::string::npos);
}

TEST(KubeProxyRules, NodePortsComeLastAndMasqueradeFollowsTheMark) {
  std::string text = IptablesFull(Two());
  std::vector<std::string> services;
  for (const auto& l : Lines(text))
    if (l.rfind("-A KUBE-SERVICES ", 0) == 0) services.push_back(l);
  ASSERT_EQ(services.size(), 3u + 0u);  // filter table has none (all services have endpoints)
  EXPECT_NE(services.back().find("-m addrtype --dst-type LOCAL -j KUBE-NODEPORTS"), std::string::npos);
  EXPECT_NE(text.find("-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN"), std::string::npos);
  EXPECT_NE(text.find("-j MASQUERADE --random-fully"), std::string::npos);
  EXPECT_NE(text.find("-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES"),
            std::string::npos);
}

TEST(KubeProxyRules, NodePortGoesThroughItsExternalChainWhichMarksForMasquerade) {
  auto s = Two();
  s[0].node_port = 30080;
  std::string text = IptablesFull(s);
  std::string ext = ExtChain(s[0]);
  EXPECT_NE(text.find(":" + ext + " - [0:0]"), std::string::npos);
  EXPECT_NE(text.find("-A KUBE-NODEPORTS -m comment --comment ns1/web:http -m tcp -p tcp --dport 30080 -j " + ext),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("-A " + ext + " -m comment --comment \"masquerade traffic for ns1/web:http external "
                      "destinations\" -j KUBE-MARK-MASQ\n-A " + ext + " -j " + SvcChain(s[0])),
            std::string::npos);
  EXPECT_EQ(text.find(ExtChain(s[1])), std::string::npos) << "a ClusterIP-only service has no external chain";
}

TEST(KubeProxyRules, PartialSyncRewritesTopChainsAndDeletesGoneEndpoints) {
  auto s = Two();
  KpService before = s[0];
  s[0].endpoints.pop_back();
  std::string text = IptablesPartial(s, 0, before);
  std::string gone = SepChain(before, before.endpoints[2]);
  EXPECT_NE(text.find(":" + gone + " - [0:0]"), std::string::npos) << "emptied before -X";
  EXPECT_NE(text.find("-X " + gone), std::string::npos);
  EXPECT_EQ(text.find(SvcChain(s[1]) + " - [0:0]"), std::string::npos) << "unchanged services are not rewritten";
  EXPECT_NE(text.find("-j " + SvcChain(s[1])), std::string::npos) << "but KUBE-SERVICES is, in full";
  EXPECT_EQ(text.find("-A PREROUTING"), std::string::npos);
}

TEST(KubeProxyRules, NftablesUsesAVerdictMapAndNumgen) {
  auto s = Two();
  std::string text = NftFull(s);
  EXPECT_NE(text.find("add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips"),
            std::string::npos);
  EXPECT_NE(text.find("numgen random mod 3 vmap { 0 : goto endpoint-"), std::string::npos);
  EXPECT_NE(text.find("add element ip kube-proxy service-ips { 10.96.0.11 . udp . 53 comment \"ns1/dns:dns\" : goto "
                      "service-"),
            std::string::npos);
  KpService after = s[0];
  after.endpoints.pop_back();
  std::string change = NftChange(s[0], after);
  EXPECT_NE(change.find("flush chain ip kube-proxy service-"), std::string::npos);
  EXPECT_NE(change.find("numgen random mod 2 vmap"), std::string::npos);
  EXPECT_NE(change.find("delete chain ip kube-proxy endpoint-"), std::string::npos);
  EXPECT_EQ(change.find("10.244.1.5"), std::string::npos) << "other services untouched";
}

}  // namespace
}  // namespace tendril::bench
