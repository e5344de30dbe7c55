// Services and EndpointSlices as kube-proxy reads them, onto tendril's
// service model (k8s/mapping.cc). The objects are the real kubectl's
// (--dry-run=client), stored by the API server stand-in, which fills in what
// the API server's registry does (ClusterIPs, node ports).
#include <gtest/gtest.h>

#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "k8s/mapping.h"
#include "k8s/node.h"
#include "k8s/reflector.h"
#include "test/support/k8s_standin.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class K8sMappingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(api_.ok()); }

  // Stores a manifest's objects; keeps the stored form by kind.
  void Add(const std::string& yaml) {
    json made = api_.FromManifest(yaml);
    ASSERT_FALSE(made.is_null());
    json stored = api_.Apply(made);
    ASSERT_FALSE(stored.is_null());
    json objs = stored["object"].value("kind", "") == "List" ? stored["object"]["items"] : json::array({stored["object"]});
    for (json& o : objs) (o.value("kind", "") == "Service" ? services_ : slices_)[k8s::ObjectKey(o)] = o;
  }

  k8s::Mapped Map(k8s::MapOptions o = {}) { return k8s::MapCluster(services_, slices_, o); }

  static const Service* Find(const k8s::Mapped& m, const std::string& frontend) {
    for (const Service& s : m.services)
      if (s.frontend.ToString() == frontend) return &s;
    return nullptr;
  }
  static std::map<std::string, std::string> States(const Service& s) {
    std::map<std::string, std::string> out;
    for (const Backend& b : s.backends) out[b.Address()] = BackendStateName(b.state);
    return out;
  }

  ApiStandin api_;
  std::map<std::string, json> services_, slices_;
};

constexpr char kWeb[] = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  clusterIP: 10.96.1.10
  ports:
  - {name: http, port: 80, targetPort: 8080}
  - {name: dns, port: 53, protocol: UDP, targetPort: 5353}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-a
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
- {name: dns, port: 5353, protocol: UDP}
endpoints:
- addresses: [10.200.1.10]
  conditions: {ready: true, serving: true, terminating: false}
  nodeName: node1
- addresses: [10.200.1.11]
  conditions: {ready: false, serving: true, terminating: true}
- addresses: [10.200.1.12]
  conditions: {ready: false, serving: false, terminating: false}
- addresses: [10.200.1.13]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-b
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports:
- {name: http, port: 8080, protocol: TCP}
endpoints:
- addresses: [10.200.1.12]
  conditions: {ready: true}
)";

TEST_F(K8sMappingTest, EveryPortIsAServiceAndConditionsAreBackendStates) {
  Add(kWeb);
  k8s::Mapped m = Map();
  EXPECT_TRUE(m.skipped.empty()) << m.skipped[0].reason;
  ASSERT_EQ(m.services.size(), 2u);
  const Service* http = Find(m, "10.96.1.10:80/TCP");
  const Service* dns = Find(m, "10.96.1.10:53/UDP");
  ASSERT_TRUE(http && dns);
  EXPECT_EQ(http->owner, "k8s/shop/web");
  EXPECT_EQ(http->type, ServiceType::kClusterIP);
  // ready -> active; serving+terminating -> terminating; neither ->
  // maintenance; nil conditions -> ready; an address in two slices counts
  // once, in its best state (web-b says 10.200.1.12 is ready).
  EXPECT_EQ(States(*http), (std::map<std::string, std::string>{{"10.200.1.10:8080", "active"},
                                                                {"10.200.1.11:8080", "terminating"},
                                                                {"10.200.1.12:8080", "active"},
                                                                {"10.200.1.13:8080", "active"}}));
  EXPECT_EQ(States(*dns).size(), 4u);
  EXPECT_EQ(States(*dns)["10.200.1.12:5353"], "maintenance") << "web-b, which says ready, has no dns port";
}

// nodeName is carried to the backend (the planner decides locality by it)
// and the Node object decides whether the node is eligible, as kube-proxy's.
TEST_F(K8sMappingTest, NodeNamesAndNodeEligibility) {
  Add(kWeb);
  k8s::Mapped m = Map();
  const Service* http = Find(m, "10.96.1.10:80/TCP");
  ASSERT_TRUE(http);
  std::map<std::string, std::string> nodes;
  for (const Backend& b : http->backends) nodes[b.Address()] = b.node;
  EXPECT_EQ(nodes["10.200.1.10:8080"], "node1");
  EXPECT_EQ(nodes["10.200.1.11:8080"], "");

  json node = api_.FromManifest("apiVersion: v1\nkind: Node\nmetadata: {name: node1}\n");
  ASSERT_FALSE(node.is_null());
  EXPECT_TRUE(k8s::EligibilityOf(node).eligible);
  json tainted = node;
  tainted["spec"]["taints"] = json::array({{{"key", "other"}, {"effect", "NoSchedule"}}});
  EXPECT_TRUE(k8s::EligibilityOf(tainted).eligible);
  tainted["spec"]["taints"].push_back({{"key", k8s::kToBeDeletedTaint}, {"effect", "NoSchedule"}});
  EXPECT_TRUE(absl::StrContains(k8s::EligibilityOf(tainted).reason, "ToBeDeletedByClusterAutoscaler"));
  json deleting = node;
  deleting["metadata"]["deletionTimestamp"] = "2026-12-05T10:00:00Z";
  EXPECT_FALSE(k8s::EligibilityOf(deleting).eligible);
  EXPECT_FALSE(k8s::EligibilityOf(json(nullptr)).eligible);

  EXPECT_EQ(*k8s::NodeName("node-1.example"), "node-1.example");
  for (const char* bad : {"Node1", "-node", "node_1", "a..b", "node1-"})
    EXPECT_FALSE(k8s::NodeName(bad).ok()) << bad;
}

TEST_F(K8sMappingTest, ExternalTypesPoliciesAndAffinity) {
  Add(R"(
apiVersion: v1
kind: Service
metadata: {name: np, namespace: default}
spec:
  type: NodePort
  externalTrafficPolicy: Local
  internalTrafficPolicy: Local
  sessionAffinity: ClientIP
  sessionAffinityConfig: {clientIP: {timeoutSeconds: 600}}
  ports: [{port: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: lb, namespace: default}
spec:
  type: LoadBalancer
  externalTrafficPolicy: Local
  loadBalancerSourceRanges: [192.0.2.0/24, "2001:db8::/64"]
  ports: [{port: 443}]
status:
  loadBalancer:
    ingress: [{ip: 198.51.100.7}, {ip: 198.51.100.8, ipMode: Proxy}, {hostname: lb.example}]
---
apiVersion: v1
kind: Service
metadata: {name: ext, namespace: default}
spec:
  externalIPs: [203.0.113.9]
  ports: [{port: 8443}]
)");
  k8s::Mapped m = Map();
  ASSERT_TRUE(m.skipped.empty()) << m.skipped[0].object << ": " << m.skipped[0].reason;
  ASSERT_EQ(m.services.size(), 3u);
  const Service& np = *Find(m, services_["default/np"]["spec"]["clusterIP"].get<std::string>() + ":80/TCP");
  EXPECT_EQ(np.type, ServiceType::kNodePort);
  EXPECT_EQ(np.node_port, 30080);
  EXPECT_EQ(np.traffic_policy, TrafficPolicy::kLocal);
  EXPECT_EQ(np.internal_traffic_policy, TrafficPolicy::kLocal);
  EXPECT_EQ(np.affinity_timeout, 600u);
  const Service& lb = *Find(m, services_["default/lb"]["spec"]["clusterIP"].get<std::string>() + ":443/TCP");
  EXPECT_EQ(lb.type, ServiceType::kLoadBalancer);
  EXPECT_NE(lb.node_port, 0) << "allocated by the (stand-in) API server";
  EXPECT_NE(lb.health_check_port, 0);
  ASSERT_EQ(lb.external_ips.size(), 1u) << "the Proxy-mode and hostname ingresses are not routed here";
  EXPECT_EQ(lb.external_ips[0].ToString(), "198.51.100.7");
  ASSERT_EQ(lb.source_ranges.size(), 1u) << "only the frontend's family";
  const Service& ext = *Find(m, services_["default/ext"]["spec"]["clusterIP"].get<std::string>() + ":8443/TCP");
  EXPECT_EQ(ext.type, ServiceType::kExternalIP);
  EXPECT_TRUE(ext.backends.empty()) << "no slices yet: the frontend answers with a reject";
}

TEST_F(K8sMappingTest, SkippedAsKubeProxySkipsAndWhatCannotBeRepresented) {
  Add(R"(
apiVersion: v1
kind: Service
metadata: {name: name-only, namespace: default}
spec: {type: ExternalName, externalName: example.com}
---
apiVersion: v1
kind: Service
metadata: {name: headless, namespace: default}
spec: {clusterIP: None, ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: other-proxy, namespace: default, labels: {service.kubernetes.io/service-proxy-name: foo}}
spec: {ports: [{port: 80}]}
---
apiVersion: v1
kind: Service
metadata: {name: sctp, namespace: default}
spec: {ports: [{name: a, port: 80}, {name: b, port: 9, protocol: SCTP}]}
---
apiVersion: v1
kind: Service
metadata: {name: lb-mixed, namespace: default}
spec:
  type: LoadBalancer
  externalIPs: [203.0.113.1]
  loadBalancerSourceRanges: [192.0.2.0/24]
  ports: [{port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: big, namespace: default}
spec: {ports: [{port: 80}]}
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: big-1, namespace: default, labels: {kubernetes.io/service-name: big}}
addressType: IPv4
ports: [{port: 80, protocol: TCP}]
endpoints: [{addresses: [10.0.9.1]}, {addresses: [10.0.9.2]}, {addresses: [10.0.9.3]}, {addresses: ["::1"]}]
)");
  k8s::MapOptions o;
  o.limits.max_backends = 2;
  k8s::Mapped m = Map(o);
  EXPECT_EQ(m.ignored, 3) << "ExternalName, headless, another proxy's";
  ASSERT_EQ(m.services.size(), 1u) << "sctp's TCP port";
  EXPECT_EQ(m.services[0].owner, "k8s/default/sctp");
  std::map<std::string, std::string> why;
  for (const auto& s : m.skipped) why[s.object] += s.reason + "; ";
  EXPECT_TRUE(absl::StrContains(why["Service default/sctp"], "SCTP")) << why["Service default/sctp"];
  EXPECT_TRUE(absl::StrContains(why["Service default/lb-mixed"], "externalIPs together with loadBalancerSourceRanges"));
  EXPECT_TRUE(absl::StrContains(why["Service default/big"], "backends")) << why["Service default/big"];
  EXPECT_TRUE(absl::StrContains(why["EndpointSlice default/big-1"], "not an IPv4 address"));
}

TEST_F(K8sMappingTest, DualStackFollowsTheNodesFamilies) {
  Add(R"(
apiVersion: v1
kind: Service
metadata: {name: dual, namespace: default}
spec:
  ipFamilyPolicy: PreferDualStack
  clusterIPs: [10.96.5.5, "fd96::5"]
  clusterIP: 10.96.5.5
  ports: [{port: 80}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: dual-v6, namespace: default, labels: {kubernetes.io/service-name: dual}}
addressType: IPv6
ports: [{port: 8080, protocol: TCP}]
endpoints: [{addresses: ["fd20::10"]}]
)");
  k8s::Mapped both = Map();
  ASSERT_EQ(both.services.size(), 2u);
  ASSERT_NE(Find(both, "[fd96::5]:80/TCP"), nullptr);
  EXPECT_EQ(Find(both, "[fd96::5]:80/TCP")->backends.size(), 1u);
  EXPECT_TRUE(Find(both, "10.96.5.5:80/TCP")->backends.empty());
  k8s::MapOptions v4;
  v4.ipv6 = false;
  EXPECT_EQ(Map(v4).services.size(), 1u);
}

}  // namespace
}  // namespace tendril::test
