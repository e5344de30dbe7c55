// tendril-agent following a Kubernetes cluster, end to end on the real
// datapath. The cluster is the API server stand-in (test/k8s: not an API
// server, it speaks the wire protocol a node agent uses), listening inside
// node 1's namespace; node 1's agent watches it through a kubeconfig. The
// nodes and pods are endpoint_cluster.h's: pods answer HTTP with their name
// and the client they see. Objects are the real kubectl's (--dry-run=client).
#include <set>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_replace.h"
#include "test/integration/endpoint_cluster.h"
#include "test/support/churn.h"
#include "test/support/k8s_standin.h"

namespace tendril::test {
namespace {

constexpr char kService[] = R"(
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: NodePort
  clusterIP: 10.96.100.10
  ports: [{name: http, port: 80, targetPort: 8080, nodePort: 30080}]
)";

// An EndpointSlice of web with pod 1.1 (node 1) and pod 2.1 (node 2) in the
// given conditions.
std::string Slice(const std::string& pod11, const std::string& pod21) {
  return absl::StrReplaceAll(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: shop
  labels: {kubernetes.io/service-name: web}
addressType: IPv4
ports: [{name: http, port: 8080, protocol: TCP}]
endpoints:
- {addresses: [10.200.1.10], nodeName: node1, conditions: POD11}
- {addresses: [10.200.2.10], nodeName: node2, conditions: POD21}
)",
                             {{"POD11", pod11}, {"POD21", pod21}});
}
constexpr char kReady[] = "{ready: true, serving: true, terminating: false}";
constexpr char kTerminating[] = "{ready: false, serving: true, terminating: true}";
constexpr char kGone[] = "{ready: false, serving: false, terminating: true}";

class K8sE2ETest : public EndpointE2ETest {
 protected:
  void SetUp() override {
    EndpointE2ETest::SetUp();
    if (HasFatalFailure() || IsSkipped()) return;
    api_ = std::make_unique<ApiStandin>(0.5, nodes_[0]->ns->path());
    ASSERT_TRUE(api_->ok());
    nodes_[0]->agent->Stop();
    nodes_[0]->extra_flags = {"--k8s-kubeconfig", api_->WriteKubeconfig("cert"), "--k8s-node-name", "node1"};
    StartAgent(0);
  }
  void TearDown() override {
    EndpointE2ETest::TearDown();
    api_.reset();
  }

  void Apply(const std::string& yaml) {
    nlohmann::json obj = api_->FromManifest(yaml);
    ASSERT_FALSE(obj.is_null());
    ASSERT_FALSE(api_->Apply(obj).is_null());
  }

  // The cluster's services node 1 declares: frontend -> backends "addr=state".
  std::map<std::string, std::set<std::string>> ClusterServices() {
    std::map<std::string, std::set<std::string>> out;
    for (const auto& s : Json(0, {"service", "list"})) {
      if (s.value("owner", "").rfind("k8s/", 0) != 0) continue;
      auto& b = out[s.value("frontend", "")];
      for (const auto& be : s["backends"]) b.insert(be.value("address", "") + "=" + be.value("state", ""));
    }
    return out;
  }

  // Waits up to 10 s for node 1 to declare exactly `want`.
  ::testing::AssertionResult Declares(const std::map<std::string, std::set<std::string>>& want) {
    std::map<std::string, std::set<std::string>> got;
    for (int i = 0; i < 200; ++i) {
      got = ClusterServices();
      if (got == want) return ::testing::AssertionSuccess();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    auto text = [](const std::map<std::string, std::set<std::string>>& m) {
      std::string t;
      for (const auto& [f, bs] : m) t += f + " -> " + absl::StrJoin(bs, ",") + "; ";
      return t;
    };
    return ::testing::AssertionFailure() << "declared: " << text(got) << "wanted: " << text(want) << "\n"
                                         << nodes_[0]->agent->Log();
  }

  // Which pods answer through `hostport` from the outside host, over n tries.
  std::set<std::string> Answers(const std::string& hostport, int n = 12) {
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) {
      std::string out;
      if (out_->Exec({"curl", "-s", "--max-time", "2", "http://" + hostport + "/"}, &out) == 0)
        seen.insert(out.substr(0, out.find(' ')));
      else
        seen.insert("refused");
    }
    return seen;
  }

  // GET http://ADDR/PATH from node 1's namespace: the status code and body.
  std::pair<int, std::string> Get(const std::string& url, const Netns* from = nullptr) {
    std::string out;
    (from ? *from : *nodes_[0]->ns).Exec({"curl", "-s", "--max-time", "3", "-w", "\n%{http_code}", url}, &out);
    size_t nl = out.rfind('\n');
    int code = 0;
    if (nl != std::string::npos) absl::SimpleAtoi(out.substr(nl + 1), &code);
    return {code, nl == std::string::npos ? out : out.substr(0, nl)};
  }

  // /metrics parsed by the Prometheus client library's own parser
  // (python3-prometheus-client): "name{label=value,...}" -> value.
  std::map<std::string, double> Metrics() {
    std::string out;
    // Debian's interpreter: python3-prometheus-client is installed for it.
    nodes_[0]->ns->Exec({"/usr/bin/python3", "-c", R"(
import json, urllib.request
from prometheus_client.parser import text_string_to_metric_families
text = urllib.request.urlopen('http://127.0.0.1:10249/metrics', timeout=3).read().decode()
out = {}
for fam in text_string_to_metric_families(text):
    for s in fam.samples:
        labels = ','.join('%s=%s' % kv for kv in sorted(s.labels.items()))
        out[s.name + ('{' + labels + '}' if labels else '')] = s.value
print(json.dumps(out))
)"}, &out);
    nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
    EXPECT_TRUE(j.is_object()) << out;
    std::map<std::string, double> m;
    if (j.is_object())
      for (auto& [k, v] : j.items()) m[k] = v.get<double>();
    return m;
  }

  std::unique_ptr<ApiStandin> api_;
};

TEST_F(K8sE2ETest, ServicesFollowTheClusterThroughScalingTerminationAndDeletion) {
  Apply(kService);
  Apply(Slice(kReady, kReady));
  const std::set<std::string> both = {"10.200.1.10:8080=active", "10.200.2.10:8080=active"};
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", both}}));
  // Each backend names its node (nodeName); node 1's is local.
  std::map<std::string, std::string> where;
  for (const auto& s : Json(0, {"service", "list"}))
    for (const auto& b : s["backends"])
      where[b.value("address", "")] = b.value("node", "") + "/" + b.value("place", "remote");
  EXPECT_EQ(where, (std::map<std::string, std::string>{{"10.200.1.10:8080", "node1/local"},
                                                       {"10.200.2.10:8080", "node2/remote"}}));
  EXPECT_EQ(Answers("10.0.0.1:30080"), (std::set<std::string>{"pod1.1", "pod2.1"}));
  EXPECT_TRUE(absl::StartsWith(Curl(Pod(0, 2), "10.96.100.10:80"), "pod")) << "the ClusterIP from a pod";
  // Pod 1.1 goes terminating: only pod 2.1 gets new connections.
  Apply(Slice(kTerminating, kReady));
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=terminating", "10.200.2.10:8080=active"}}}));
  EXPECT_EQ(Answers("10.0.0.1:30080"), (std::set<std::string>{"pod2.1"}));
  // Pod 2.1 terminating too: kube-proxy's fallback serves the terminating.
  Apply(Slice(kTerminating, kTerminating));
  EXPECT_EQ(Answers("10.0.0.1:30080").count("refused"), 0u);
  // Neither serving: nothing takes new connections.
  Apply(Slice(kGone, kGone));
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=maintenance", "10.200.2.10:8080=maintenance"}}}));
  EXPECT_EQ(Answers("10.0.0.1:30080", 3), (std::set<std::string>{"refused"}));
  // The agent restarted: its first sync (a list, the whole cluster in one
  // Replace) takes the Service over, and later events still change it.
  nodes_[0]->agent->Stop();
  StartAgent(0);
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=maintenance", "10.200.2.10:8080=maintenance"}}}));
  // The Service deleted (its slice left behind), then the slice.
  ASSERT_FALSE(api_->Delete("Service", "shop", "web").is_null());
  ASSERT_TRUE(Declares({}));
  ASSERT_FALSE(api_->Delete("EndpointSlice", "shop", "web-1").is_null());
  ASSERT_TRUE(Declares({}));
  EXPECT_EQ(Answers("10.0.0.1:30080", 2), (std::set<std::string>{"refused"}));
  nlohmann::json k = Json(0, {"status"})["kubernetes"];
  EXPECT_EQ(k.value("full_syncs", 0), 1) << "after the first list, changes sync Service by Service: " << k.dump();
  EXPECT_GE(k.value("syncs", 0), 3) << "since the restart: " << k.dump();
}

TEST_F(K8sE2ETest, TheApiAndTheClusterKeepTheirOwnServices) {
  Apply(kService);
  Apply(Slice(kReady, kReady));
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=active", "10.200.2.10:8080=active"}}}));
  nlohmann::json list = Json(0, {"service", "list"});
  ASSERT_EQ(list.size(), 1u);
  const std::string id = std::to_string(list[0].value("id", 0));
  CliResult del = Cli(0, {"service", "delete", id});
  EXPECT_NE(del.rc, 0);
  EXPECT_TRUE(absl::StrContains(del.err, "shop/web")) << del.err;
  // The API's service on the same frontend is refused; another one stays
  // through every cluster change.
  CliResult same = Cli(0, {"service", "add", "--frontend", "10.96.100.10:80", "--backends", "10.200.1.11:8080"});
  EXPECT_NE(same.rc, 0);
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.7.7:80", "--backends", "10.200.1.11:8080"}).rc, 0);
  ASSERT_FALSE(api_->Delete("Service", "shop", "web").is_null());
  ASSERT_TRUE(Declares({}));
  EXPECT_EQ(Json(0, {"service", "list"}).size(), 1u) << "the API's service stays";
  nlohmann::json st = Json(0, {"status"});
  EXPECT_EQ(st["kubernetes"].value("state", ""), "connected") << st["kubernetes"].dump();
  CliResult table = Cli(0, {"status"});
  EXPECT_TRUE(absl::StrContains(table.out, "Kubernetes:  connected")) << table.out;
  EXPECT_TRUE(absl::StrContains(table.out, "Operator:    healthz 0.0.0.0:10256, metrics 127.0.0.1:10249")) << table.out;
}

// Churn on an unchanged service while the cluster changes around it: the
// watch is cut 20 times, the history compacted (410: relist) and the API
// server restored with a new version history, other services come and go.
// No connection to the unchanged service fails, and the declared set ends
// equal to the API's.
TEST_F(K8sE2ETest, WatchCutsAndRelistsUnderChurnFailNoConnection) {
  RequestServer server(Pod(0, 1), "10.200.1.10", 9090);
  ASSERT_TRUE(server.ok());
  Apply(R"(
apiVersion: v1
kind: Service
metadata: {name: steady, namespace: default}
spec:
  type: NodePort
  clusterIP: 10.96.100.20
  ports: [{port: 9090, nodePort: 30090}]
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: steady-1, namespace: default, labels: {kubernetes.io/service-name: steady}}
addressType: IPv4
ports: [{port: 9090, protocol: TCP}]
endpoints: [{addresses: [10.200.1.10]}]
)");
  ASSERT_TRUE(Declares({{"10.96.100.20:9090/TCP", {"10.200.1.10:9090=active"}}}));
  // The objects first (kubectl takes a while): the disturbance is the API's.
  std::vector<nlohmann::json> churn;
  for (int i = 0; i < 5; ++i)
    churn.push_back(api_->Kubectl({"create", "service", "clusterip", "churn" + std::to_string(i), "--tcp", "80:8080",
                                   "--dry-run=client", "-o", "json"}));
  using Clock = std::chrono::steady_clock;
  Clock::time_point disturbed;
  // The churn runs through the whole disturbance and a second past it,
  // however long a busy machine makes the disturbance take (bounded: 60 s).
  std::atomic<bool> settled{false};
  std::thread disturb([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    for (int i = 0; i < 20; ++i) {
      if (i % 2 == 0) api_->Apply(churn[(i / 2) % 5]);
      else api_->Delete("Service", "default", "churn" + std::to_string((i / 2) % 5));
      // The history compacted past every version the watch has seen, then
      // a cut: it comes back to 410 and lists again (compacting after the
      // cut would race the watch's reconnect).
      if (i == 5) api_->Op("compact");
      api_->Op(i == 10 ? "restart" : "cut");
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    disturbed = Clock::now();
    std::this_thread::sleep_for(std::chrono::seconds(1));
    settled = true;
  });
  ChurnSpec spec;
  spec.sources = {"10.0.0.100"};
  spec.dst = "10.0.0.1";
  spec.dport = 30090;
  spec.seconds = 60;
  spec.until = &settled;
  ChurnResult r = RunChurn(*out_, spec);
  const Clock::time_point churn_end = Clock::now();
  disturb.join();
  EXPECT_LT(disturbed, churn_end) << "the cluster's changes ended after the churn";
  EXPECT_EQ(r.failed, 0) << r.Summary();
  EXPECT_GE(r.ok, 1000) << r.Summary();
  // The end state: what the stand-in holds.
  std::map<std::string, std::set<std::string>> want = {{"10.96.100.20:9090/TCP", {"10.200.1.10:9090=active"}}};
  auto held = api_->Kubectl({"get", "services", "-A", "-o", "json"});
  ASSERT_FALSE(held.is_null());
  for (const auto& s : held["items"])
    if (s["metadata"].value("name", "") != "steady")
      want[s["spec"].value("clusterIP", "") + ":80/TCP"] = {};
  EXPECT_TRUE(Declares(want)) << Json(0, {"status"})["kubernetes"].dump() << api_->Stats().dump() << held.dump();
  nlohmann::json k = Json(0, {"status"})["kubernetes"];
  EXPECT_GE(k["services"].value("lists", 0), 3) << k.dump();
  EXPECT_GE(k["services"].value("gone", 0), 2) << k.dump();
  EXPECT_GE(k.value("full_syncs", 0), 3) << "each list maps the whole cluster: " << k.dump();
}

TEST_F(K8sE2ETest, HealthAndMetricsEndpointsAnswerAsKubeProxys) {
  Apply(kService);
  Apply(Slice(kGone, kGone));
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=maintenance", "10.200.2.10:8080=maintenance"}}}));
  for (const char* path : {"/healthz", "/livez"}) {
    auto [code, body] = Get(std::string("http://127.0.0.1:10256") + path);
    EXPECT_EQ(code, 200) << body;
    nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
    EXPECT_TRUE(j.contains("lastUpdated") && j.contains("currentTime")) << body;
    EXPECT_EQ(j.contains("nodeEligible"), std::string(path) == "/healthz") << body;
  }
  EXPECT_EQ(Get("http://127.0.0.1:10256/other").first, 404);
  EXPECT_EQ(Get("http://10.0.0.1:10256/healthz", out_.get()).first, 200) << "load balancers probe it from outside";
  EXPECT_EQ(Get("http://10.0.0.1:10249/metrics", out_.get()).first, 0) << "metrics only on loopback";

  std::map<std::string, double> m0 = Metrics();
  EXPECT_GE(m0["kubeproxy_sync_proxy_rules_duration_seconds_count"], 1);
  EXPECT_GT(m0["kubeproxy_sync_proxy_rules_last_timestamp_seconds"], 1.7e9);
  EXPECT_EQ(m0["tendril_services{source=kubernetes}"], 1);
  EXPECT_EQ(m0["tendril_k8s_watch_up{resource=services}"], 1);
  EXPECT_GE(m0["tendril_flow_table_max_entries{table=ct_v4}"], 1024);
  // Traffic moves the counters: connections to a service without a usable
  // backend are refused and counted; a cluster change moves the watch's.
  EXPECT_EQ(Answers("10.0.0.1:30080", 3), (std::set<std::string>{"refused"}));
  Apply(Slice(kReady, kGone));
  ASSERT_TRUE(Declares({{"10.96.100.10:80/TCP", {"10.200.1.10:8080=active", "10.200.2.10:8080=maintenance"}}}));
  std::map<std::string, double> m1 = Metrics();
  const std::string refused = "tendril_datapath_drops_total{direction=ingress,reason=no-service-backend}";
  EXPECT_GE(m1[refused] - m0[refused], 3) << "refused connections are counted";
  EXPECT_GT(m1["tendril_k8s_watch_events_total{resource=endpointslices}"],
            m0["tendril_k8s_watch_events_total{resource=endpointslices}"]);
  EXPECT_GT(m1["kubeproxy_network_programming_duration_seconds_count"],
            m0["kubeproxy_network_programming_duration_seconds_count"]);

  // This node's Node object: the autoscaler's to-be-deleted taint, then
  // deletion, make /healthz 503 with nodeEligible false (load balancers
  // drain the node) while /livez stays 200; back when the taint goes.
  auto node = [&](const std::string& taints) {
    Apply("apiVersion: v1\nkind: Node\nmetadata: {name: node1}\nspec: {taints: " + taints + "}\n");
  };
  auto health = [&](const std::string& path, int want) {
    std::pair<int, std::string> r;
    for (int i = 0; i < 50 && (r = Get("http://127.0.0.1:10256" + path)).first != want; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    return r;
  };
  node("[{key: example.com/other, effect: NoSchedule}]");
  EXPECT_EQ(health("/healthz", 200).first, 200);
  EXPECT_EQ(Json(0, {"status"})["kubernetes"]["node"].value("eligible", false), true);
  node("[{key: ToBeDeletedByClusterAutoscaler, value: '1733400000', effect: NoSchedule}]");
  auto [code503, body503] = health("/healthz", 503);
  EXPECT_EQ(code503, 503) << body503;
  EXPECT_EQ(nlohmann::json::parse(body503, nullptr, false).value("nodeEligible", true), false) << body503;
  EXPECT_EQ(Get("http://127.0.0.1:10256/livez").first, 200);
  nlohmann::json st = Json(0, {"status"})["kubernetes"]["node"];
  EXPECT_TRUE(absl::StrContains(st.value("reason", ""), "ToBeDeletedByClusterAutoscaler")) << st.dump();
  std::map<std::string, double> m2 = Metrics();
  EXPECT_EQ(m2["tendril_k8s_node_eligible{node=node1}"], 0);
  EXPECT_GE(m2["kubeproxy_proxy_healthz_total{code=503}"], 1);
  EXPECT_GE(m2["kubeproxy_proxy_livez_total{code=200}"], 1);
  node("[]");
  EXPECT_EQ(health("/healthz", 200).first, 200);
  ASSERT_FALSE(api_->Delete("Node", "", "node1").is_null());
  EXPECT_EQ(health("/healthz", 503).first, 503) << "the Node deleted";

  // An API server out of reach from the start: no sync within
  // healthz-timeout, so /healthz says 503 until the cluster is synced.
  api_->Stop();
  nodes_[0]->agent->Stop();
  nodes_[0]->extra_flags.insert(nodes_[0]->extra_flags.end(), {"--healthz-timeout", "1"});
  StartAgent(0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  EXPECT_EQ(Get("http://127.0.0.1:10256/healthz").first, 503);
  EXPECT_EQ(Answers("10.0.0.1:30080", 2), (std::set<std::string>{"pod1.1"})) << "the stored services keep serving";
  api_->Start();
  int code = 0;
  for (int i = 0; i < 100 && code != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    code = Get("http://127.0.0.1:10256/healthz").first;
  }
  EXPECT_EQ(code, 200);

  // The metrics port held by another process at start: the agent runs
  // without it, says so in status, and binds it once the port is free.
  nodes_[0]->agent->Stop();
  auto holder = std::make_unique<Subprocess>(std::vector<std::string>{
      "nsenter", "--net=" + nodes_[0]->ns->path(), "/usr/bin/python3", "-c",
      "import socket,time\ns=socket.socket()\ns.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
      "s.bind(('127.0.0.1',10249))\ns.listen()\ntime.sleep(30)"});
  for (int i = 0; i < 100; ++i) {  // until it listens
    std::string out;
    nodes_[0]->ns->Exec({"ss", "-Hltn", "sport = :10249"}, &out);
    if (!out.empty()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  StartAgent(0);
  nlohmann::json ops = Json(0, {"status"})["operator_endpoints"];
  EXPECT_EQ(ops.value("metrics", "?"), "") << ops.dump();
  EXPECT_TRUE(absl::StrContains(ops["errors"].dump(), "127.0.0.1:10249")) << ops.dump();
  EXPECT_EQ(Get("http://127.0.0.1:10256/healthz").first, 200) << "the other endpoint runs";
  holder.reset();
  code = 0;
  for (int i = 0; i < 100 && code != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    code = Get("http://127.0.0.1:10249/metrics").first;
  }
  std::string ss;
  nodes_[0]->ns->Exec({"ss", "-ltnp"}, &ss);
  EXPECT_EQ(code, 200) << "bound when the port came free" << ss << nodes_[0]->agent->Log();
  EXPECT_TRUE(Json(0, {"status"})["operator_endpoints"]["errors"].empty());
}

// Benchmark (test/bench/run with TND_K8S_SERVICES=10000; 1,000 in the test
// run): N Services with one EndpointSlice each (kubectl's objects, cloned
// with other names and addresses), then EndpointSlice changes one at a
// time: from the change sent to the stand-in to node 1's service showing
// it (the API answers from the agent's loop, so the answer comes once the
// sync that wrote the maps is done).
TEST_F(K8sE2ETest, EndpointSliceChangeToMapsAtScale) {
  const int n = EnvInt("TND_K8S_SERVICES", 1000), changes = EnvInt("TND_K8S_CHANGES", 30);
  nlohmann::json svc = api_->Kubectl({"create", "service", "clusterip", "t", "--tcp", "80:8080", "--dry-run=client",
                                      "-o", "json"});
  nlohmann::json slice = api_->FromManifest(R"(
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: {name: t-1, namespace: bench, labels: {kubernetes.io/service-name: t}}
addressType: IPv4
ports: [{name: 80-8080, port: 8080, protocol: TCP}]
endpoints: [{addresses: [10.201.0.1], conditions: {ready: true}}]
)");
  ASSERT_FALSE(svc.is_null() || slice.is_null());
  auto ip = [](const char* prefix, int i) { return absl::StrCat(prefix, i / 250, ".", i % 250 + 1); };
  auto slice_of = [&](int i, int endpoints) {
    nlohmann::json e = slice;
    e["metadata"]["name"] = absl::StrCat("s", i, "-1");
    e["metadata"]["labels"]["kubernetes.io/service-name"] = absl::StrCat("s", i);
    e["endpoints"] = nlohmann::json::array();
    for (int k = 0; k < endpoints; ++k)
      e["endpoints"].push_back({{"addresses", {ip(k ? "10.202." : "10.201.", i)}}, {"conditions", {{"ready", true}}}});
    return e;
  };
  nlohmann::json all = {{"kind", "List"}, {"items", nlohmann::json::array()}};
  for (int i = 0; i < n; ++i) {
    nlohmann::json s = svc;
    s["metadata"]["name"] = absl::StrCat("s", i);
    s["metadata"]["namespace"] = "bench";
    s["spec"]["clusterIP"] = ip("10.97.", i);
    all["items"].push_back(std::move(s));
    all["items"].push_back(slice_of(i, 1));
  }
  const auto t_load = std::chrono::steady_clock::now();
  ASSERT_FALSE(api_->Apply(all).is_null());
  int declared = 0;
  for (int i = 0; i < 1200 && declared != n; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    declared = Json(0, {"status"})["kubernetes"].value("declared_services", 0);
  }
  ASSERT_EQ(declared, n);
  const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_load).count();
  std::map<std::string, int> ids;
  for (const auto& s : Json(0, {"service", "list"})) ids[s.value("frontend", "")] = s.value("id", 0);
  std::vector<double> ms;
  for (int c = 0; c < changes; ++c) {
    const int i = (c * 97) % n;
    const int id = ids[ip("10.97.", i) + ":80/TCP"];
    ASSERT_NE(id, 0);
    // The agent is asked from the start, so the answer that shows the
    // change is seen as soon as the sync is done (not after curl returns).
    absl::Time seen = absl::InfinitePast();
    std::thread poll([&] {
      for (int k = 0; k < 50000 && seen == absl::InfinitePast(); ++k) {
        auto r = CallAgent(nodes_[0]->Socket(), "service.get", {{"id", id}});
        if (r.ok() && (*r)["backends"].size() == 2) seen = absl::Now();
      }
    });
    nlohmann::json applied = api_->Apply(slice_of(i, 2));
    poll.join();
    ASSERT_FALSE(applied.is_null());
    ASSERT_NE(seen, absl::InfinitePast()) << "the change never reached the maps";
    // From the stand-in's change (its wall clock, this machine's) to the maps.
    ms.push_back(1000 * (absl::ToDoubleSeconds(seen - absl::UnixEpoch()) - applied.value("appliedAt", 0.0)));
  }
  std::sort(ms.begin(), ms.end());
  auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<size_t>(p * ms.size()))]; };
  std::map<std::string, double> m = Metrics();
  const double sync_n = m["kubeproxy_sync_proxy_rules_duration_seconds_count"];
  std::printf("K8S_SYNC %d services: initial list to all declared %.1f s; EndpointSlice change in the stand-in to "
              "the maps over %d changes: p50 %.1f ms, p99 %.1f ms; agent-side sync mean %.1f ms\n",
              n, load_s, changes, pct(0.5), pct(0.99),
              sync_n > 0 ? 1000 * m["kubeproxy_sync_proxy_rules_duration_seconds_sum"] / sync_n : 0.0);
  EXPECT_LT(pct(0.5), 5000);
}

// A Service the planner refuses (its node port is held by a service the
// API declared) is skipped alone, named in status; the cluster's other
// Services keep syncing, and it is applied once the port is free.
TEST_F(K8sE2ETest, ARefusedServiceIsSkippedAloneAndRetried) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.7.7:80", "--type", "NodePort", "--node-port", "30080",
                    "--backends", "10.200.1.11:8080"}).rc, 0);
  Apply(kService);  // wants node port 30080 too
  Apply(Slice(kReady, kReady));
  Apply(R"(
apiVersion: v1
kind: Service
metadata: {name: other, namespace: shop}
spec: {clusterIP: 10.96.100.11, ports: [{port: 81, targetPort: 8080}]}
)");
  ASSERT_TRUE(Declares({{"10.96.100.11:81/TCP", {}}}));
  nlohmann::json k = Json(0, {"status"})["kubernetes"];
  EXPECT_EQ(k.value("skipped_objects", 0), 1) << k.dump();
  EXPECT_TRUE(absl::StrContains(k["skipped"].dump(), "refused")) << k.dump();
  // A restarted agent's first sync (the whole set in one Replace, refused)
  // falls back to Service by Service: the same outcome.
  nodes_[0]->agent->Stop();
  StartAgent(0);
  ASSERT_TRUE(Declares({{"10.96.100.11:81/TCP", {}}}));
  for (int i = 0; i < 50 && Json(0, {"status"})["kubernetes"].value("skipped_objects", 0) != 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Json(0, {"status"})["kubernetes"].value("skipped_objects", 0), 1);
  ASSERT_EQ(Cli(0, {"service", "delete", "--frontend", "10.96.7.7:80"}).rc, 0);
  EXPECT_TRUE(Declares({{"10.96.100.11:81/TCP", {}},
                        {"10.96.100.10:80/TCP", {"10.200.1.10:8080=active", "10.200.2.10:8080=active"}}}))
      << "retried once the port is free";
  EXPECT_EQ(Answers("10.0.0.1:30080", 4).count("refused"), 0u);
}

TEST_F(K8sE2ETest, BadKubeconfigsKeepTheAgentFromStarting) {
  nodes_[0]->agent->Stop();
  auto refused = [&](const std::vector<std::string>& flags, const std::string& want) {
    std::vector<std::string> argv = nodes_[0]->argv;
    argv.resize(argv.size() - nodes_[0]->extra_flags.size());
    argv.insert(argv.end(), flags.begin(), flags.end());
    std::string out;
    auto rc = RunCommand(argv, &out);
    ASSERT_TRUE(rc.ok());
    EXPECT_NE(*rc, 0) << out;
    EXPECT_TRUE(absl::StrContains(out, want)) << out;
  };
  refused({"--k8s-kubeconfig", "/nonexistent/kubeconfig"}, "/nonexistent/kubeconfig");
  refused({"--k8s-kubeconfig", api_->WriteKubeconfig(), "--k8s-context", "nosuch"}, "no context named 'nosuch'");
  refused({"--k8s-kubeconfig", api_->WriteKubeconfig(), "--k8s-node-name", "Node_1"},
          "k8s-node-name \"Node_1\" is not a Node name");
  refused({"--k8s-node-name", "node1"}, "k8s-node-name needs k8s-kubeconfig or k8s-in-cluster");
  std::ofstream(api_->dir() + "/bad-ca.crt") << "not a certificate\n";
  std::string conf = api_->dir() + "/kubeconfig";
  ASSERT_EQ(std::system(("sed -i 's|certificate-authority: .*|certificate-authority: " + api_->dir() +
                         "/bad-ca.crt|' " + conf).c_str()), 0);
  refused({"--k8s-kubeconfig", conf}, "holds no PEM certificate");
}

}  // namespace
}  // namespace tendril::test
