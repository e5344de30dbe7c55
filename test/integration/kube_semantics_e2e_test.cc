// kube-proxy's service semantics on the real datapath (issue 16), in the
// endpoint cluster (test/integration/endpoint_cluster.h): two nodes with
// pods, an outside host. Clients are curl and python sockets in the pods,
// on the nodes and outside; "through socket LB" runs them in the node's
// socket-LB cgroup, otherwise a pod's traffic is translated per packet by
// bpf_lxc, and the outside host's by bpf_host/XDP on the node.
//
//   node 1: 10.0.0.1, pods 10.200.1.10 (pod1.1), 10.200.1.11 (pod1.2)
//   node 2: 10.0.0.2, pod  10.200.2.10 (pod2.1)
//   outside: 10.0.0.100
#include "test/integration/endpoint_cluster.h"

#include <set>
#include <thread>

#include "test/support/churn.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class KubeSemanticsE2ETest : public EndpointE2ETest {
 protected:
  // The body curl gets from `netns_path` inside node `node`'s socket-LB
  // cgroup, or "" (one try: failures are expected too).
  std::string SockCurl(int node, const std::string& netns_path, const std::string& hostport) {
    std::string out;
    if (nodes_[node]->cgroup.Run({"curl", "-s", "-g", "--max-time", "2", "http://" + hostport + "/"}, &out,
                                 netns_path) != 0)
      return "";
    return out;
  }
  std::string Once(const Netns& from, const std::string& hostport) { return Curl(from, hostport, 1); }

  // HTTP status and body of a health check port of node `node` (1-based
  // address), asked from outside.
  std::pair<std::string, json> Health(int node, int port) {
    std::string out;
    out_->Exec({"curl", "-s", "-w", "\n%{http_code}", "--max-time", "2",
                absl::StrCat("http://10.0.0.", node, ":", port, "/")}, &out);
    size_t nl = out.rfind('\n');
    if (nl == std::string::npos) return {out, json()};
    return {out.substr(nl + 1), json::parse(out.substr(0, nl), nullptr, false)};
  }

  void AddBoth(const std::vector<std::string>& args) {
    std::vector<std::string> full = {"service", "add"};
    full.insert(full.end(), args.begin(), args.end());
    for (int i = 0; i < 2; ++i) {
      CliResult r = Cli(i, full);
      ASSERT_EQ(r.rc, 0) << "node " << i + 1 << ": " << r.out << r.err;
    }
  }

  uint64_t DropCount(int node, const std::string& reason) {
    uint64_t n = 0;
    for (const auto& e : Json(node, {"metrics", "list"}))
      if (e.value("reason", "") == reason) n += e.value("packets", 0ull);
    return n;
  }

  // The names of the backends that `n` requests from `from` reached.
  std::set<std::string> Names(const std::function<std::string()>& request, int n) {
    std::set<std::string> seen;
    for (int i = 0; i < n; ++i) {
      std::string r = request();
      seen.insert(r.substr(0, r.find(' ')));
    }
    return seen;
  }

  std::string NodePath(int node) { return nodes_[node]->ns->path(); }

  // How a client's connection attempt ends: "refused" (RST or ICMP port
  // unreachable), "timeout", or what it read. `udp`: one datagram on a
  // connected UDP socket, which the kernel fails with ECONNREFUSED on an
  // ICMP port unreachable.
  std::string Attempt(const Netns& from, const std::string& host, int port, bool udp) {
    bool v6 = host.find(':') != std::string::npos;
    std::string script = absl::StrCat(
        "import socket,time\ns=socket.socket(socket.", v6 ? "AF_INET6" : "AF_INET", ",socket.",
        udp ? "SOCK_DGRAM" : "SOCK_STREAM", ")\ns.settimeout(3)\nt=time.time()\n", "try:\n s.connect(('", host,
        "',", port, "))\n", udp ? " s.send(b'q')\n print(s.recv(64).decode())\n" : " print('connected')\n",
        "except ConnectionRefusedError:\n print('refused %.2f' % (time.time()-t))\n",
        "except socket.timeout:\n print('timeout')\n");
    std::string out;
    from.Exec({"python3", "-c", script}, &out);
    return std::string(absl::StripAsciiWhitespace(out));
  }
};

// 1. externalTrafficPolicy Local applies to external traffic only: from a
// node without a local endpoint its pods and the node itself still reach the
// node port and the LoadBalancer IP (every endpoint), while outside clients
// are served only where an endpoint is local, with their address kept.
TEST_F(KubeSemanticsE2ETest, ExternalLocalStillServesInClusterTraffic) {
  AddBoth({"--frontend", "10.96.0.31:80/TCP", "--type", "LoadBalancer", "--external-ips", "192.0.2.31",
           "--node-port", "30031", "--traffic-policy", "Local", "--backends", "10.200.2.10:8080"});
  // Node 1 has no local endpoint.
  EXPECT_EQ(Once(Pod(0, 1), "10.0.0.1:30031"), "pod2.1 10.200.1.10") << "per packet (bpf_lxc)";
  EXPECT_EQ(Once(Pod(0, 1), "192.0.2.31:80"), "pod2.1 10.200.1.10") << "LB IP per packet";
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "10.0.0.1:30031"), "pod2.1 10.200.1.11") << "socket LB from a pod";
  EXPECT_TRUE(absl::StartsWith(SockCurl(0, NodePath(0), "192.0.2.31:80"), "pod2.1 ")) << "socket LB from the node";
  uint64_t before = DropCount(0, "no-local-backend");
  EXPECT_EQ(Once(*out_, "10.0.0.1:30031"), "") << "outside, node 1: no local endpoint";
  EXPECT_GT(DropCount(0, "no-local-backend"), before);
  EXPECT_EQ(Once(*out_, "10.0.0.2:30031"), "pod2.1 10.0.0.100") << "outside, node 2: local, client kept";
  // What the maps hold: node 1's node port has an empty external set and a
  // full in-cluster one.
  bool ext_empty = false, internal_full = false;
  for (const auto& f : Json(0, {"bpf", "lb", "list"})) {
    if (f.value("frontend", "") != "10.0.0.1:30031/TCP") continue;
    std::string scope = f.value("scope", "");
    if (absl::StartsWith(scope, "external,nodeport,local")) ext_empty = f.value("active_slots", -1) == 0;
    if (absl::StartsWith(scope, "in-cluster,external,nodeport")) internal_full = f.value("active_slots", 0) == 1;
  }
  EXPECT_TRUE(ext_empty && internal_full) << Cli(0, {"bpf", "lb", "list"}).out;
}

// 2. Whether a backend is local follows its endpoint as it comes and goes,
// and across an agent restart (services are restored before endpoints).
TEST_F(KubeSemanticsE2ETest, LocalPlacementFollowsEndpoints) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.32:80/TCP", "--type", "NodePort", "--node-port",
                    "30032", "--traffic-policy", "Local", "--health-check-port", "31032", "--backends",
                    "10.200.1.20:8080"}).rc, 0);
  EXPECT_EQ(Once(*out_, "10.0.0.1:30032"), "") << "the endpoint does not exist yet";
  EXPECT_EQ(Health(1, 31032).first, "503");
  AddPod(0, 3, "10.200.1.20", "fd20:1::20");
  EXPECT_EQ(Curl(*out_, "10.0.0.1:30032"), "pod1.3 10.0.0.100") << "an endpoint added after its service";
  auto [code, body] = Health(1, 31032);
  EXPECT_EQ(code, "200");
  EXPECT_EQ(body.value("localEndpoints", -1), 1) << body.dump();

  nodes_[0]->agent.reset();
  StartAgent(0);
  EXPECT_EQ(Curl(*out_, "10.0.0.1:30032"), "pod1.3 10.0.0.100") << "after a restart";
  EXPECT_EQ(Health(1, 31032).first, "200");

  ASSERT_EQ(Cli(0, {"endpoint", "delete", "3"}).rc, 0);
  EXPECT_EQ(Health(1, 31032).first, "503") << "the health check and the datapath agree";
  uint64_t before = DropCount(0, "no-local-backend");
  EXPECT_EQ(Once(*out_, "10.0.0.1:30032"), "");
  EXPECT_GT(DropCount(0, "no-local-backend"), before);
}

// 3. loadBalancerSourceRanges guard the LoadBalancer IPs, on every path
// (socket LB leaves them to bpf_lxc, which knows the client), and node ports
// are not subject to them.
TEST_F(KubeSemanticsE2ETest, SourceRangesGuardLoadBalancerIpsOnly) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.33:80/TCP", "--type", "LoadBalancer", "--external-ips",
                    "192.0.2.33", "--node-port", "30033", "--source-ranges", "10.0.0.200/32", "--backends",
                    "10.200.1.10:8080"}).rc, 0);
  uint64_t before = DropCount(0, "source-range-denied");
  EXPECT_EQ(Once(*out_, "192.0.2.33:80"), "") << "outside the ranges";
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "192.0.2.33:80"), "") << "a pod outside the ranges, socket LB";
  EXPECT_EQ(Once(Pod(0, 2), "192.0.2.33:80"), "") << "the same pod, per packet";
  EXPECT_GE(DropCount(0, "source-range-denied"), before + 2);
  EXPECT_EQ(Once(*out_, "10.0.0.1:30033"), "pod1.1 10.0.0.100") << "the node port is not subject to them";
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "10.96.0.33:80"), "pod1.1 10.200.1.11") << "nor is the ClusterIP";
  ASSERT_EQ(Cli(0, {"service", "update", "1", "--source-ranges", "10.200.1.11/32"}).rc, 0);
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "192.0.2.33:80"), "pod1.1 10.200.1.11") << "now in the ranges";
  // Source ranges on a type without LoadBalancer IPs: refused, nothing added.
  CliResult bad = Cli(0, {"service", "add", "--frontend", "10.96.0.34:80/TCP", "--type", "NodePort",
                          "--source-ranges", "10.0.0.0/8"});
  EXPECT_EQ(bad.rc, 2) << bad.out << bad.err;
  EXPECT_TRUE(absl::StrContains(bad.err, "apply to LoadBalancer IPs")) << bad.err;
  EXPECT_EQ(Json(0, {"service", "list"}).size(), 1u);
}

// 4. healthCheckNodePort: the user's port is used, and checked against
// every node port and health port, the range, and the node, before anything
// is written.
TEST_F(KubeSemanticsE2ETest, HealthCheckNodePortGivenByTheUser) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.35:80/TCP", "--type", "NodePort", "--node-port",
                    "30035", "--traffic-policy", "Local", "--health-check-port", "31035", "--backends",
                    "10.200.1.10:8080"}).rc, 0);
  EXPECT_EQ(Json(0, {"service", "get", "1"}).value("health_check_port", 0), 31035);
  EXPECT_EQ(Health(1, 31035).first, "200");
  // A process of the node holds 31099.
  auto holder = std::make_unique<Subprocess>(std::vector<std::string>{
      "nsenter", "--net=" + NodePath(0), "python3", "-c",
      "import socket,time\ns=socket.socket()\ns.bind(('0.0.0.0',31099))\ns.listen()\nprint('bound',flush=True)\n"
      "time.sleep(60)"});
  for (int i = 0; i < 50 && !absl::StrContains(holder->Log(), "bound"); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  std::vector<Case> cases = {
      {{"--node-port", "30036", "--health-check-port", "31035"}, "health check port 31035 is already used by service 1"},
      {{"--node-port", "30036", "--health-check-port", "30035"}, "health check port 30035 is the node port of service 1"},
      {{"--node-port", "31035"}, "node port 31035 is the health check port of service 1"},
      {{"--node-port", "30036", "--health-check-port", "80"}, "health check port 80 is outside the node port range"},
      {{"--node-port", "30036", "--health-check-port", "30036"}, "is the service's own node port"},
      {{"--node-port", "30036", "--health-check-port", "31099"}, "port 31099 is taken on the node"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> args = {"service", "add", "--frontend", "10.96.0.36:80/TCP", "--type", "NodePort",
                                     "--traffic-policy", "Local", "--backends", "10.200.1.11:8080"};
    args.insert(args.end(), c.args.begin(), c.args.end());
    CliResult r = Cli(0, args);
    EXPECT_EQ(r.rc, 2) << absl::StrJoin(c.args, " ") << ": " << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, c.message)) << r.err;
  }
  CliResult cluster = Cli(0, {"service", "add", "--frontend", "10.96.0.37:80/TCP", "--type", "NodePort",
                              "--health-check-port", "31037"});
  EXPECT_EQ(cluster.rc, 2);
  EXPECT_TRUE(absl::StrContains(cluster.err, "for external traffic policy Local only")) << cluster.err;
  EXPECT_EQ(Json(0, {"service", "list"}).size(), 1u) << "nothing was added";
  EXPECT_EQ(Once(*out_, "10.0.0.1:30036"), "") << "no frontend of a refused service";
  EXPECT_EQ(Health(1, 31035).first, "200") << "the first service's health check still answers";
}

// 5. The IPv4 and IPv6 halves of a dual-stack Service share their node port
// and health check port; a third service of either family cannot have them.
TEST_F(KubeSemanticsE2ETest, DualStackHalvesShareTheirNodePort) {
  for (const auto& [fe, be] : {std::pair<std::string, std::string>{"10.96.0.38:80/TCP", "10.200.1.10:8080"},
                               {"[fd96::38]:80/TCP", "[fd20:1::10]:8080"}}) {
    CliResult r = Cli(0, {"service", "add", "--frontend", fe, "--type", "NodePort", "--node-port", "30038",
                          "--traffic-policy", "Local", "--health-check-port", "31038", "--backends", be});
    ASSERT_EQ(r.rc, 0) << fe << ": " << r.out << r.err;
  }
  EXPECT_EQ(Once(*out_, "10.0.0.1:30038"), "pod1.1 10.0.0.100");
  EXPECT_TRUE(absl::StartsWith(Once(*out_, "[fd00::1]:30038"), "pod1.1 [fd00:")) << "IPv6 half";
  auto [code, body] = Health(1, 31038);
  EXPECT_EQ(code, "200");
  EXPECT_EQ(body.value("localEndpoints", -1), 2) << "both halves count: " << body.dump();
  CliResult r = Cli(0, {"service", "add", "--frontend", "[fd96::39]:80/TCP", "--type", "NodePort", "--node-port",
                        "30038"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "node port 30038/TCP is already used by service 2")) << r.err;
  r = Cli(0, {"service", "add", "--frontend", "[fd96::39]:80/TCP", "--type", "NodePort", "--traffic-policy",
              "Local", "--health-check-port", "31038"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "health check port 31038 is already used by service 2")) << r.err;
}

// 6. Session affinity keeps a client on its backend only while that backend
// is in the set new connections choose from: drained (weight 0),
// terminating and maintenance backends let their clients go.
TEST_F(KubeSemanticsE2ETest, AffinityLetsGoOfDrainedBackends) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.40:80/TCP", "--type", "NodePort", "--node-port",
                    "30040", "--affinity-timeout", "600", "--backends", "10.200.1.10:8080,10.200.1.11:8080"}).rc, 0);
  std::function<std::string()> sock = [&] { return SockCurl(0, NodePath(0), "10.96.0.40:80"); };
  std::function<std::string()> outside = [&] { return Once(*out_, "10.0.0.1:30040"); };
  for (auto* request : {&sock, &outside}) {
    std::set<std::string> first = Names(*request, 4);
    ASSERT_EQ(first.size(), 1u) << "affinity";
    std::string bound = *first.begin(), other = bound == "pod1.1" ? "pod1.2" : "pod1.1";
    std::string bound_addr = bound == "pod1.1" ? "10.200.1.10:8080" : "10.200.1.11:8080";
    std::string other_addr = bound == "pod1.1" ? "10.200.1.11:8080" : "10.200.1.10:8080";
    for (std::string state : {"terminating", "maintenance"}) {
      ASSERT_EQ(Cli(0, {"service", "update", "1", "--backend-state", bound_addr + "=" + state}).rc, 0);
      EXPECT_EQ(Names(*request, 4), std::set<std::string>{other}) << state;
      ASSERT_EQ(Cli(0, {"service", "update", "1", "--backend-state", bound_addr + "=active"}).rc, 0);
      // The client is bound to the other backend now, and stays there.
      EXPECT_EQ(Names(*request, 4), std::set<std::string>{other}) << state;
      ASSERT_EQ(Cli(0, {"service", "update", "1", "--backends", other_addr + "@0," + bound_addr}).rc, 0);
      EXPECT_EQ(Names(*request, 4), std::set<std::string>{bound}) << "weight 0";
      ASSERT_EQ(Cli(0, {"service", "update", "1", "--backends", bound_addr + "," + other_addr}).rc, 0);
    }
  }
}

// 7. An unconnected UDP socket keeps one backend through socket LB (its
// cookie chooses the slot) instead of a new one per datagram; different
// sockets still spread.
TEST_F(KubeSemanticsE2ETest, UnconnectedUdpSocketKeepsItsBackend) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.41:53/UDP", "--backends",
                    "10.200.1.10:5353,10.200.1.11:5353,10.200.2.10:5353"}).rc, 0);
  const std::string script =
      "import socket,sys\nseen=set();socks=set()\n"
      "for k in range(12):\n s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(2);names=set()\n"
      " for i in range(10):\n  s.sendto(b'q',('10.96.0.41',53));d,a=s.recvfrom(64);names.add(d)\n"
      "  assert a==('10.96.0.41',53),a\n"
      " socks.add(len(names));seen|=names\n"
      "print(sorted(socks),len(seen))\n";
  std::string out;
  ASSERT_EQ(nodes_[0]->cgroup.Run({"python3", "-c", script}, &out, NodePath(0)), 0) << out;
  EXPECT_EQ(std::string(absl::StripAsciiWhitespace(out)).substr(0, 3), "[1]")
      << "every socket kept one backend for its 10 datagrams: " << out;
  int distinct = out.empty() ? 0 : out.back() == '\n' ? out[out.size() - 2] - '0' : out.back() - '0';
  EXPECT_GE(distinct, 2) << "12 sockets reached more than one backend: " << out;
}

// 8. The number of Maglev services is a setting, checked with the other
// capacities before the first write.
TEST_F(KubeSemanticsE2ETest, MaglevCapacityIsCheckedBeforeWriting) {
  nodes_[1]->agent.reset();
  nodes_[1]->extra_flags = {"--maglev-max-services", "16"};
  StartAgent(1);
  json set = json::array();
  for (int i = 0; i < 17; ++i)
    set.push_back({{"frontend", absl::StrCat("10.96.1.", i + 1, ":80/TCP")}, {"algorithm", "maglev"},
                   {"backends", {{{"address", "10.200.2.10:8080"}}}}});
  std::string file = absl::StrCat(scripts_.path(), "/maglev.json");
  std::ofstream(file) << set.dump();
  CliResult r = Cli(1, {"service", "apply", "-f", file});
  EXPECT_EQ(r.rc, 2) << r.out << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, "17 services would use Maglev; the Maglev map holds 16 (maglev-max-services)"))
      << r.err;
  EXPECT_EQ(Json(1, {"service", "list"}).size(), 0u) << "nothing half applied";
  set.erase(set.size() - 1);
  std::ofstream(file, std::ios::trunc) << set.dump();
  ASSERT_EQ(Cli(1, {"service", "apply", "-f", file}).rc, 0);
  r = Cli(1, {"service", "add", "--frontend", "10.96.2.1:80/TCP", "--algorithm", "maglev"});
  EXPECT_EQ(r.rc, 2);
  EXPECT_TRUE(absl::StrContains(r.err, "(maglev-max-services)")) << r.err;
  EXPECT_EQ(Cli(1, {"service", "add", "--frontend", "10.96.2.1:80/TCP"}).rc, 0) << "random still fits";
  EXPECT_TRUE(absl::StartsWith(SockCurl(1, NodePath(1), "10.96.1.16:80"), "pod2.1 "));
}

// 9. Terminating endpoints serve only when a scope has no ready one, per
// scope; the health check reports ready local endpoints only, so load
// balancers drain a node whose endpoints terminate.
TEST_F(KubeSemanticsE2ETest, TerminatingEndpointsServeWhenNoneIsReady) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.42:80/TCP", "--type", "NodePort", "--node-port",
                    "30042", "--backends", "10.200.1.10:8080,10.200.1.11:8080"}).rc, 0);
  auto outside = [&] { return Once(*out_, "10.0.0.1:30042"); };
  ASSERT_EQ(Cli(0, {"service", "update", "1", "--backend-state", "10.200.1.11:8080=terminating"}).rc, 0);
  EXPECT_EQ(Names(outside, 6), std::set<std::string>{"pod1.1"}) << "a ready endpoint: terminating ones get nothing";
  ASSERT_EQ(Cli(0, {"service", "update", "1", "--backend-state", "10.200.1.10:8080=maintenance"}).rc, 0);
  EXPECT_EQ(Names(outside, 6), std::set<std::string>{"pod1.2"}) << "none ready: the terminating one serves";
  EXPECT_EQ(SockCurl(0, NodePath(0), "10.96.0.42:80").substr(0, 6), "pod1.2") << "socket LB too";
  ASSERT_EQ(Cli(0, {"service", "update", "1", "--backend-state", "10.200.1.11:8080=maintenance"}).rc, 0);
  EXPECT_EQ(outside(), "") << "no serving endpoint";

  // Local: node 1's only local endpoint terminates while node 2's is ready.
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.43:80/TCP", "--type", "NodePort", "--node-port",
                    "30043", "--traffic-policy", "Local", "--health-check-port", "31043", "--backends",
                    "10.200.1.10:8080,10.200.2.10:8080"}).rc, 0);
  EXPECT_EQ(Health(1, 31043).first, "200");
  ASSERT_EQ(Cli(0, {"service", "update", "2", "--backend-state", "10.200.1.10:8080=terminating"}).rc, 0);
  EXPECT_EQ(Names([&] { return Once(*out_, "10.0.0.1:30043"); }, 4), std::set<std::string>{"pod1.1"})
      << "the local scope falls back to its terminating endpoint, not to the remote ready one";
  auto [code, body] = Health(1, 31043);
  EXPECT_EQ(code, "503") << "only terminating local endpoints: drain this node";
  EXPECT_EQ(body.value("localEndpoints", -1), 0) << body.dump();
}

// 10. A service with no usable endpoint anywhere is answered as kube-proxy's
// REJECT rule answers, on the per-packet paths too: TCP RST, ICMP/ICMPv6
// port unreachable; a Local policy with endpoints only elsewhere drops.
TEST_F(KubeSemanticsE2ETest, NoEndpointIsRejectedPerPacket) {
  for (const char* fe : {"10.96.0.46:80/TCP", "10.96.0.46:53/UDP", "[fd96::46]:80/TCP", "[fd96::46]:53/UDP"}) {
    bool v6 = fe[0] == '[';
    bool udp = absl::EndsWith(fe, "UDP");
    ASSERT_EQ(Cli(0, {"service", "add", "--frontend", fe, "--type", "NodePort", "--node-port", udp ? "30046" : "30047"})
                  .rc, 0) << fe;
    std::string node = v6 ? "fd00::1" : "10.0.0.1";
    int port = udp ? 30046 : 30047;
    uint64_t before = DropCount(0, "no-service-backend");
    EXPECT_TRUE(absl::StartsWith(Attempt(*out_, node, port, udp), "refused")) << fe << ", from outside (tc/XDP)";
    std::string vip = v6 ? "fd96::46" : "10.96.0.46";
    EXPECT_TRUE(absl::StartsWith(Attempt(Pod(0, 1), vip, udp ? 53 : 80, udp), "refused")) << fe << ", a pod (bpf_lxc)";
    EXPECT_GE(DropCount(0, "no-service-backend"), before + 2) << "counted as before";
  }
  // Endpoints elsewhere only: Local drops (the client times out).
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.47:80/TCP", "--type", "NodePort", "--node-port", "30048",
                    "--traffic-policy", "Local", "--backends", "10.200.2.10:8080"}).rc, 0);
  EXPECT_EQ(Attempt(*out_, "10.0.0.1", 30048, false), "timeout");
}

// 11. Hairpin: a pod reaching itself through a service it backs. Per packet
// the flow's source becomes the frontend (so the pod accepts the packet and
// its answer comes back through bpf_lxc); through socket LB the pod simply
// connects to itself.
TEST_F(KubeSemanticsE2ETest, PodReachesItselfThroughItsService) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.49:80/TCP", "--backends", "10.200.1.10:8080"}).rc, 0);
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "[fd96::49]:80/TCP", "--backends", "[fd20:1::10]:8080"}).rc, 0);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Once(Pod(0, 1), "10.96.0.49:80"), "pod1.1 10.96.0.49") << "per packet, connection " << i;
    std::string v6 = Once(Pod(0, 1), "[fd96::49]:80");
    EXPECT_TRUE(absl::StartsWith(v6, "pod1.1 [fd96:0000:0000:0000:0000:0000:0000:0049]")) << v6;
  }
  EXPECT_EQ(SockCurl(0, Pod(0, 1).path(), "10.96.0.49:80"), "pod1.1 10.200.1.10") << "socket LB";
  EXPECT_EQ(Once(Pod(0, 2), "10.96.0.49:80"), "pod1.1 10.200.1.11") << "another pod is not hairpinned";
  // A longer exchange: 20 MiB sent through the hairpin (TCP sends that much
  // only if the ACKs come back through it too).
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.50:5201/TCP", "--backends", "10.200.1.10:5201"}).rc, 0);
  std::string out;
  Pod(0, 1).Exec({"iperf3", "-c", "10.96.0.50", "-p", "5201", "-n", "20M", "-J"}, &out);
  json j = json::parse(out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << out;
  EXPECT_FALSE(j.contains("error")) << out.substr(0, 600);
  EXPECT_GE(j["end"]["sum_sent"].value("bytes", 0.0), 20.0 * 1024 * 1024) << out.substr(0, 600);
}

// 12. internalTrafficPolicy Local keeps ClusterIP traffic on the node: only
// local endpoints, and none is refused.
TEST_F(KubeSemanticsE2ETest, InternalLocalKeepsClusterIpTrafficOnTheNode) {
  AddBoth({"--frontend", "10.96.0.44:80/TCP", "--internal-traffic-policy", "Local", "--backends",
           "10.200.1.10:8080,10.200.2.10:8080"});
  EXPECT_EQ(Names([&] { return Once(Pod(0, 2), "10.96.0.44:80"); }, 6), std::set<std::string>{"pod1.1"})
      << "node 1, per packet";
  EXPECT_EQ(Names([&] { return SockCurl(0, Pod(0, 2).path(), "10.96.0.44:80"); }, 6), std::set<std::string>{"pod1.1"})
      << "node 1, socket LB";
  EXPECT_EQ(Names([&] { return SockCurl(1, NodePath(1), "10.96.0.44:80"); }, 6), std::set<std::string>{"pod2.1"})
      << "node 2, socket LB from the node";
  // Only node 2 has an endpoint: node 1 refuses.
  AddBoth({"--frontend", "10.96.0.45:80/TCP", "--internal-traffic-policy", "Local", "--backends",
           "10.200.2.10:8080"});
  uint64_t before = DropCount(0, "no-local-backend");
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "10.96.0.45:80"), "");
  EXPECT_EQ(Once(Pod(0, 2), "10.96.0.45:80"), "");
  EXPECT_GE(DropCount(0, "no-local-backend"), before + 2);
  EXPECT_EQ(Json(0, {"service", "get", "2"}).value("internal_traffic_policy", ""), "Local");
}

}  // namespace
}  // namespace tendril::test

namespace tendril::test {
namespace {

// Polls `f` until it returns `want` (or 5 s pass); the last answer.
std::string Eventually(const std::function<std::string()>& f, const std::string& want) {
  std::string got;
  for (int i = 0; i < 50; ++i) {
    got = f();
    if (got == want) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  return got;
}

// 13. Node ports follow the node's addresses as they come and go
// (RTM_NEWADDR/DELADDR), nodeport-addresses limits them, and the node
// reaches its node ports on 127.0.0.1 (its pods' loopback stays theirs).
TEST_F(KubeSemanticsE2ETest, NodePortsFollowTheNodesAddresses) {
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.51:80/TCP", "--type", "NodePort", "--node-port", "30051",
                    "--backends", "10.200.1.10:8080"}).rc, 0);
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "[fd96::51]:80/TCP", "--type", "NodePort", "--node-port", "30051",
                    "--backends", "[fd20:1::10]:8080"}).rc, 0);
  ASSERT_EQ(nodes_[0]->ns->Exec({"ip", "addr", "add", "10.0.0.51/24", "dev", "eth0"}), 0);
  ASSERT_EQ(nodes_[0]->ns->Exec({"ip", "-6", "addr", "add", "fd00::51/64", "dev", "eth0", "nodad"}), 0);
  EXPECT_EQ(Eventually([&] { return Once(*out_, "10.0.0.51:30051"); }, "pod1.1 10.0.0.100"), "pod1.1 10.0.0.100")
      << "an address added while the agent runs";
  std::string v6 = Eventually([&] { return Once(*out_, "[fd00::51]:30051").substr(0, 6); }, "pod1.1");
  EXPECT_EQ(v6, "pod1.1") << "IPv6";
  ASSERT_EQ(nodes_[0]->ns->Exec({"ip", "addr", "del", "10.0.0.51/24", "dev", "eth0"}), 0);
  bool gone = false;
  for (int i = 0; i < 50 && !gone; ++i) {
    json lb = Json(0, {"bpf", "lb", "list"});
    gone = std::none_of(lb.begin(), lb.end(), [](const json& f) { return f.value("frontend", "") == "10.0.0.51:30051/TCP"; });
    if (!gone) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_TRUE(gone) << "the removed address's frontend is gone";

  EXPECT_EQ(SockCurl(0, NodePath(0), "127.0.0.1:30051"), "pod1.1 10.0.0.1") << "the node on 127.0.0.1";
  EXPECT_EQ(SockCurl(0, Pod(0, 2).path(), "127.0.0.1:30051"), "") << "a pod's 127.0.0.1 is its own";

  // nodeport-addresses: node 2 serves node ports on 10.0.0.2 only.
  nodes_[1]->agent.reset();
  nodes_[1]->extra_flags = {"--nodeport-addresses", "10.0.0.2/32"};
  StartAgent(1);
  ASSERT_EQ(Cli(1, {"service", "add", "--frontend", "10.96.0.52:80/TCP", "--type", "NodePort", "--node-port", "30052",
                    "--backends", "10.200.2.10:8080"}).rc, 0);
  EXPECT_EQ(Once(*out_, "10.0.0.2:30052"), "pod2.1 10.0.0.100");
  ASSERT_EQ(nodes_[1]->ns->Exec({"ip", "addr", "add", "10.0.0.52/24", "dev", "eth0"}), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  EXPECT_EQ(Once(*out_, "10.0.0.52:30052"), "") << "outside nodeport-addresses";
  EXPECT_EQ(SockCurl(1, NodePath(1), "127.0.0.1:30052"), "") << "127.0.0.1 is not in nodeport-addresses";
  for (const auto& f : Json(1, {"bpf", "lb", "list"})) {
    std::string fe = f.value("frontend", "");
    EXPECT_TRUE(!absl::StartsWith(fe, "10.0.0.52:") && !absl::StartsWith(fe, "127.0.0.1:")) << fe;
  }
}

// Sustained: 80,000 short connections from outside through a NodePort while
// its backends go terminating, maintenance and weight 0 and back and the
// agent restarts once; every configuration keeps a serving backend, so not
// one connection may fail. (Four client addresses: no 4-tuple is reused.)
TEST_F(KubeSemanticsE2ETest, ConnectionsSurviveBackendStateChurnAndARestart) {
  RequestServer s1(Pod(0, 1), "::", 7000), s2(Pod(0, 2), "::", 7000);
  ASSERT_TRUE(s1.ok() && s2.ok());
  ASSERT_EQ(Cli(0, {"service", "add", "--frontend", "10.96.0.60:80/TCP", "--type", "NodePort", "--node-port",
                    "30060", "--backends", "10.200.1.10:7000,10.200.1.11:7000"}).rc, 0);
  ChurnSpec spec;
  for (int i = 1; i <= 4; ++i) {
    std::string a = absl::StrCat("10.0.0.", 100 + i);
    ASSERT_EQ(out_->Exec({"ip", "addr", "add", a + "/24", "dev", "eth0"}), 0);
    spec.sources.push_back(a);
  }
  spec.dst = "10.0.0.1";
  spec.dport = 30060;
  spec.connections = 80000;
  spec.seconds = 60;
  spec.workers = 4;
  ChurnResult r;
  std::thread churn([&] { r = RunChurn(*out_, spec); });
  const std::vector<std::vector<std::string>> steps = {
      {"--backend-state", "10.200.1.10:7000=terminating"}, {"--backend-state", "10.200.1.10:7000=active"},
      {"--backends", "10.200.1.10:7000@0,10.200.1.11:7000"}, {"--backends", "10.200.1.10:7000,10.200.1.11:7000@3"},
      {"--backend-state", "10.200.1.11:7000=maintenance"},   {"--backend-state", "10.200.1.11:7000=active"},
  };
  int changes = 0;
  for (int round = 0; round < 3; ++round) {
    for (const auto& step : steps) {
      std::vector<std::string> args = {"service", "update", "1"};
      args.insert(args.end(), step.begin(), step.end());
      CliResult u = Cli(0, args);
      EXPECT_EQ(u.rc, 0) << u.err;
      changes++;
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
    if (round == 1) {
      nodes_[0]->agent.reset();
      StartAgent(0);
    }
  }
  churn.join();
  std::printf("[ churn ] NodePort under %d backend changes and a restart: %s (%ld + %ld answered)\n", changes,
              r.Summary().c_str(), s1.answered(), s2.answered());
  EXPECT_EQ(r.failed, 0) << r.Summary() << Cli(0, {"metrics", "list"}).out;
  EXPECT_EQ(r.ok, 80000) << r.Summary();
  EXPECT_GT(s1.answered(), 0);
  EXPECT_GT(s2.answered(), 0);
}

}  // namespace
}  // namespace tendril::test
