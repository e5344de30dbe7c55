#include "lb/service.h"
#include "lb/service_json.h"

#include <gtest/gtest.h>

namespace tendril {
namespace {

TEST(ServiceParseTest, Frontends) {
  auto f = ParseFrontend("10.96.0.10:80/TCP");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->ToString(), "10.96.0.10:80/TCP");
  EXPECT_EQ(ParseFrontend("10.96.0.10:53/udp")->proto, L4Proto::kUdp);
  EXPECT_EQ(ParseFrontend("10.96.0.10:80")->proto, L4Proto::kTcp);
  EXPECT_EQ(ParseFrontend("[fd00::10]:53/UDP")->ToString(), "[fd00::10]:53/UDP");
}

void ExpectBad(const absl::Status& s, const std::string& fragment) {
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(absl::IsInvalidArgument(s)) << s;
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
}

TEST(ServiceParseTest, BadFrontendsAreNamed) {
  ExpectBad(ParseFrontend("10.96.0.10:0/TCP").status(), "out of range");
  ExpectBad(ParseFrontend("10.96.0.10:70000/TCP").status(), "70000");
  ExpectBad(ParseFrontend("10.96.0.10:80/SCTP").status(), "SCTP");
  ExpectBad(ParseFrontend("10.96.0.300:80").status(), "10.96.0.300");
  ExpectBad(ParseFrontend("10.96.0.10").status(), "missing :PORT");
  ExpectBad(ParseFrontend("fd00::10:80").status(), "[ADDR]:PORT");
  ExpectBad(ParseFrontend("[fd00::10]80").status(), "missing :PORT");
  ExpectBad(ParseFrontend("10.96.0.10:http").status(), "not a number");
}

TEST(ServiceParseTest, BackendsWithWeights) {
  auto b = ParseBackend("10.0.1.2:8080@3");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->weight, 3u);
  EXPECT_EQ(b->Address(), "10.0.1.2:8080");
  EXPECT_EQ(ParseBackend("[fd00::2]:8080")->weight, 1u);
  ExpectBad(ParseBackend("10.0.1.2:8080@-1").status(), "weight");
  ExpectBad(ParseBackend("10.0.1.2:8080@x").status(), "weight");
  ExpectBad(ParseBackend("10.0.1.2").status(), "missing :PORT");
}

Service Svc(const std::string& fe, std::vector<std::string> backends) {
  Service s;
  s.frontend = *ParseFrontend(fe);
  uint32_t id = 1;
  for (const auto& b : backends) {
    s.backends.push_back(*ParseBackend(b));
    s.backends.back().id = id++;
  }
  return s;
}

TEST(ServiceValidateTest, CatchesWhatCannotWork) {
  ServiceLimits lim{3, 4096};
  EXPECT_TRUE(ValidateService(Svc("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}), lim).ok());
  ExpectBad(ValidateService(Svc("10.96.0.10:80/TCP", {"[fd00::2]:8080"}), lim), "is IPv6, the frontend is IPv4");
  ExpectBad(ValidateService(Svc("[fd00::10]:80/TCP", {"10.0.1.2:8080"}), lim), "is IPv4, the frontend is IPv6");
  ExpectBad(ValidateService(Svc("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.2:8080"}), lim), "listed twice");
  ExpectBad(ValidateService(Svc("10.96.0.10:80/TCP", {"10.0.1.2:1", "10.0.1.2:2", "10.0.1.2:3", "10.0.1.2:4"}), lim),
            "more than the maximum of 3");
  EXPECT_TRUE(ValidateService(Svc("10.96.0.10:80/TCP", {}), lim).ok()) << "no backends is allowed: connects are refused";
}

TEST(ServiceValidateTest, ExternalFrontendsAreChecked) {
  ServiceLimits lim{8, 4096, 30000, 32767};
  Service np = Svc("10.96.0.10:80/TCP", {"10.0.1.2:8080"});
  np.type = ServiceType::kNodePort;
  EXPECT_TRUE(ValidateService(np, lim).ok()) << "node port 0: the agent allocates";
  np.node_port = 30080;
  EXPECT_TRUE(ValidateService(np, lim).ok());
  np.node_port = 8080;
  ExpectBad(ValidateService(np, lim), "outside the node port range 30000-32767");
  np.node_port = 30080;
  np.external_ips = {*ParseIp("192.0.2.10")};
  ExpectBad(ValidateService(np, lim), "external IPs are for ExternalIP and LoadBalancer");

  Service ext = Svc("10.96.0.10:80/TCP", {"10.0.1.2:8080"});
  ext.type = ServiceType::kExternalIP;
  ExpectBad(ValidateService(ext, lim), "needs at least one external IP");
  ext.external_ips = {*ParseIp("fd00::10")};
  ExpectBad(ValidateService(ext, lim), "external IP fd00::10 is IPv6");
  ext.external_ips = {*ParseIp("192.0.2.10"), *ParseIp("192.0.2.10")};
  ExpectBad(ValidateService(ext, lim), "listed twice");
  ext.external_ips = {*ParseIp("192.0.2.10")};
  ext.node_port = 30001;
  ExpectBad(ValidateService(ext, lim), "a node port is for NodePort and LoadBalancer");
  ext.node_port = 0;
  ext.source_ranges = {*ParseCidr("fd00::/64")};
  ExpectBad(ValidateService(ext, lim), "source range fd00::/64 is IPv6");
  ext.source_ranges = {*ParseCidr("198.51.100.0/24")};
  ExpectBad(ValidateService(ext, lim), "apply to LoadBalancer IPs; a ExternalIP service has none");
  ext.type = ServiceType::kLoadBalancer;
  EXPECT_TRUE(ValidateService(ext, lim).ok());
  ext.dsr = true;
  ext.traffic_policy = TrafficPolicy::kLocal;
  ExpectBad(ValidateService(ext, lim), "exclude each other");

  Service cip = Svc("10.96.0.10:80/TCP", {});
  cip.traffic_policy = TrafficPolicy::kLocal;
  ExpectBad(ValidateService(cip, lim), "ClusterIP has none");
  Service v6 = Svc("[fd00::10]:80/TCP", {});
  v6.type = ServiceType::kNodePort;
  v6.dsr = true;
  EXPECT_TRUE(ValidateService(v6, lim).ok()) << "IPv6 DSR: a destination-options header";

  EXPECT_EQ(*ParseServiceType("loadbalancer"), ServiceType::kLoadBalancer);
  ExpectBad(ParseServiceType("Headless").status(), "unknown service type \"Headless\"");
  ExpectBad(ParseTrafficPolicy("Nearest").status(), "Cluster or Local");
}

std::vector<uint32_t> ClusterSlots(const Service& s) { return SetSlots(s, SelectBackendSets(s).cluster); }
std::vector<uint32_t> LocalSlots(const Service& s) { return SetSlots(s, SelectBackendSets(s).local); }

TEST(ServiceSlotsTest, OnlyActiveBackendsAndWeightsByGcd) {
  Service s = Svc("10.96.0.10:80/TCP", {"10.0.1.2:1@2", "10.0.1.2:2@4", "10.0.1.2:3", "10.0.1.2:4@0"});
  s.backends[2].state = BackendState::kTerminating;
  // weights 2 and 4 (gcd 2) -> 1 and 2 slots; terminating and weight 0 get none.
  EXPECT_EQ(ClusterSlots(s), (std::vector<uint32_t>{1, 2, 2}));
  EXPECT_EQ(MaxSlots(s), 7u) << "every active and terminating backend: weights 2, 4, 1 (gcd 1)";
  s.backends[0].state = BackendState::kMaintenance;
  s.backends[1].state = BackendState::kMaintenance;
  // No ready backend: the serving terminating one (kube-proxy's fallback);
  // maintenance and weight 0 never.
  EXPECT_EQ(ClusterSlots(s), (std::vector<uint32_t>{3}));
  s.backends[2].state = BackendState::kMaintenance;
  EXPECT_TRUE(ClusterSlots(s).empty());
}

TEST(ServiceSlotsTest, LocalSetFallsBackToLocalTerminatingOnly) {
  Service s = Svc("10.96.0.10:80/TCP", {"10.0.1.2:1", "10.0.1.3:1", "10.0.1.4:1"});
  s.backends[0].place = BackendPlace::kLocal;  // ready, local
  s.backends[1].place = BackendPlace::kHost;   // terminating, local (host network)
  s.backends[1].state = BackendState::kTerminating;
  EXPECT_EQ(LocalSlots(s), (std::vector<uint32_t>{1}));
  EXPECT_EQ(ClusterSlots(s), (std::vector<uint32_t>{1, 3}));
  s.backends[0].state = BackendState::kMaintenance;
  // The local set falls back to its own terminating backend even though a
  // remote ready one exists (each scope on its own, as kube-proxy does).
  EXPECT_EQ(LocalSlots(s), (std::vector<uint32_t>{2}));
  EXPECT_EQ(ClusterSlots(s), (std::vector<uint32_t>{3}));
  s.backends[1].weight = 0;
  EXPECT_TRUE(LocalSlots(s).empty());
}

TEST(ServiceJsonTest, RoundTrips) {
  Service s = Svc("[fd00::10]:53/UDP", {"[fd00::2]:53@5"});
  s.id = 7;
  s.algorithm = Algorithm::kMaglev;
  s.affinity_timeout = 30;
  s.backends[0].state = BackendState::kTerminating;
  auto back = ServiceFromJson(ServiceToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(ServiceToJson(*back), ServiceToJson(s));
  // Ids are 32 bits: a store row of a node with 100,000 services reads back.
  for (int64_t id : {int64_t{65536}, int64_t{100001}, int64_t{UINT32_MAX}}) {
    auto wide = ServiceFromJson({{"frontend", "10.0.0.1:80"}, {"id", id}});
    ASSERT_TRUE(wide.ok()) << id << ": " << wide.status();
    EXPECT_EQ(wide->id, id);
  }
  EXPECT_FALSE(ServiceFromJson({{"frontend", "10.0.0.1:80"}, {"id", int64_t{UINT32_MAX} + 1}}).ok());
  EXPECT_FALSE(ServiceFromJson({{"backends", nlohmann::json::array()}}).ok());
}

}  // namespace
}  // namespace tendril
