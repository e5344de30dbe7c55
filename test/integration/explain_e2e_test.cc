// `tendril explain` end to end, on the NodePort test bed (nodeport_cluster.h):
// the CLI, run in a node's namespace as an operator would, predicts what the
// node does with a packet; the same packet is then sent for real and the
// backend that answers, its view of the client (SNAT or not) and the verdict
// must be the ones explain printed. Per service type and path, IPv4 and
// IPv6, XDP native and tc; explain changes no map; bad input exits 2 naming
// what is wrong; it works with the agent down.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "test/integration/nodeport_cluster.h"
#include "test/support/map_dump.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class ExplainE2ETest : public NodePortCluster {
 protected:
  CliResult ExplainCli(int node, const std::vector<std::string>& args, bool json_out = true) {
    const Node& n = *nodes_[node];
    std::vector<std::string> argv = {"nsenter", "--net=" + n.ns->path(), BinaryPath("tendril"), "--bpffs-root",
                                     n.pins.path()};
    if (json_out) argv.insert(argv.end(), {"-o", "json"});
    argv.insert(argv.end(), {"explain", "--state-dir", n.state.path()});
    argv.insert(argv.end(), args.begin(), args.end());
    CliResult r;
    auto rc = RunCommandSplit(argv, &r.out, &r.err);
    r.rc = rc.ok() ? *rc : -1;
    return r;
  }
  json Explain(int node, const std::vector<std::string>& args) {
    CliResult r = ExplainCli(node, args);
    EXPECT_EQ(r.rc, 0) << r.err;
    json j = json::parse(r.out, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << r.out;
    return j.is_discarded() ? json::object() : j;
  }
  // The last hook explain ran (where the packet's fate was decided).
  static const json& Last(const json& j) { return j["hooks"].back(); }
  static std::string BackendName(const json& hook) {
    const std::string a = hook.contains("backend") ? hook["backend"].value("address", "") : "";
    if (absl::StartsWith(a, "10.1.1.2:") || absl::StartsWith(a, "[fd01::2]:")) return "be1";
    if (absl::StartsWith(a, "10.1.2.2:") || absl::StartsWith(a, "[fd02::2]:")) return "be2";
    return "none";
  }
  static std::string Rewritten(const json& hook, const std::string& field) {
    for (const auto& r : hook.value("rewrites", json::array()))
      if (r.value("field", "") == field) return r.value("after", "");
    return "";
  }
  // curl from the client's `src`:`sport`; the backend's answer ("be2 10.0.0.1").
  std::string CurlFrom(const std::string& hostport, const std::string& src, int sport) {
    std::string out;
    client_->Exec({"curl", "-s", "-g", "--max-time", "2", "--interface", src, "--local-port", std::to_string(sport),
                   "http://" + hostport + "/"},
                  &out);
    return Canonical(out);
  }
  // Every pinned map of node `node`; with the agent up, all but tnd_node,
  // whose generation the agent bumps on route and neighbour events.
  MapDump Maps(int node, bool with_node) {
    auto d = DumpPinnedMaps(nodes_[node]->pins.path());
    EXPECT_TRUE(d.ok()) << d.status();
    if (d.ok() && !with_node)
      for (auto it = d->begin(); it != d->end();) it = absl::EndsWith(it->first, "/tnd_node") ? d->erase(it) : ++it;
    return d.ok() ? *d : MapDump{};
  }
  // For each source port: explain's prediction, then the real connection.
  void ExpectAgreement(const std::string& src, const std::string& dst, const std::string& hostport, int first_port,
                       const std::string& node_addr) {
    std::set<std::string> used;
    for (int sport = first_port; sport < first_port + 6; ++sport) {
      SCOPED_TRACE(absl::StrCat(dst, " from port ", sport));
      const std::string from = src.find(':') != std::string::npos ? absl::StrCat("[", src, "]:", sport)
                                                                 : absl::StrCat(src, ":", sport);
      json j = Explain(0, {"--device", "eth0", "tcp", from, dst});
      const json& h = Last(j);
      ASSERT_TRUE(h.contains("backend")) << j.dump(2);
      const std::string v = h.value("verdict", "");
      EXPECT_TRUE(v == "redirect" || v == "tx") << j.dump(2);  // tx: back out of eth0
      const std::string be = BackendName(h);
      const std::string answer = CurlFrom(hostport, src, sport);
      // be2 is on the other node: SNAT to this node, as explain says.
      const bool snat = !Rewritten(h, "source").empty();
      EXPECT_EQ(snat, be == "be2") << j.dump(2);
      EXPECT_EQ(answer, absl::StrCat(be, " ", snat ? node_addr : src)) << j.dump(2);
      used.insert(be);
    }
    EXPECT_EQ(used, (std::set<std::string>{"be1", "be2"})) << "six flows should use both backends";
  }
};

TEST_P(ExplainE2ETest, PredictionsAgreeWithRealConnectionsPerServiceTypeV4AndV6) {
  AddEverywhere({"--frontend", "10.96.0.40:80/TCP", "--type", "NodePort", "--node-port", "30100", "--algorithm",
                 "maglev", "--backends", "10.1.1.2:8080,10.1.2.2:8080"});
  ExpectAgreement("10.0.0.100", "10.0.0.1:30100", "10.0.0.1:30100", 42000, "10.0.0.1");
  AddEverywhere({"--frontend", "[fd96::40]:80/TCP", "--type", "NodePort", "--node-port", "30101", "--algorithm",
                 "maglev", "--backends", "[fd01::2]:8080,[fd02::2]:8080"});
  ExpectAgreement("fd00::100", "[fd00::1]:30101", "[fd00::1]:30101", 42100, "fd00::1");
  AddEverywhere({"--frontend", "10.96.0.41:80/TCP", "--type", "ExternalIP", "--external-ips", "192.0.2.41",
                 "--algorithm", "maglev", "--backends", "10.1.1.2:8080,10.1.2.2:8080"});
  ExpectAgreement("10.0.0.100", "192.0.2.41:80", "192.0.2.41:80", 42200, "10.0.0.1");
  // The text form says the same in words.
  CliResult t = ExplainCli(0, {"--device", "eth0", "tcp", "10.0.0.100:42300", "10.0.0.1:30100"}, false);
  EXPECT_EQ(t.rc, 0) << t.err;
  EXPECT_TRUE(absl::StrContains(t.out, "Maglev table")) << t.out;
  EXPECT_TRUE(absl::StrContains(t.out, "Result   forwarded by tc-ingress") ||
              absl::StrContains(t.out, "Result   forwarded by xdp"))
      << t.out;
}

TEST_P(ExplainE2ETest, ConnectionRefusedAndSourceRangeDeniedSayWhy) {
  AddEverywhere({"--frontend", "10.96.0.42:80/TCP", "--type", "NodePort", "--node-port", "30102"});
  json j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:42400", "10.0.0.1:30102"});
  const json& h = Last(j);
  EXPECT_EQ(h.value("hook", ""), "tc-ingress") << j.dump(2);
  EXPECT_EQ(h.value("drop_reason", ""), "no-service-backend") << j.dump(2);
  EXPECT_EQ(h.value("reply", ""), "TCP 10.0.0.1:30102 -> 10.0.0.100:42400") << j.dump(2);
  EXPECT_TRUE(absl::StartsWith(j.value("result", ""), "answered at tc-ingress")) << j.dump(2);
  std::string out;
  EXPECT_EQ(client_->Exec({"curl", "-s", "--max-time", "2", "http://10.0.0.1:30102/"}, &out), 7)
      << "curl: connection refused, as explained";

  AddEverywhere({"--frontend", "10.96.0.43:80/TCP", "--type", "LoadBalancer", "--external-ips", "192.0.2.43",
                 "--node-port", "30103", "--source-ranges", "10.0.0.100/32", "--backends", "10.1.2.2:8080"});
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.101:42500", "192.0.2.43:80"});
  EXPECT_EQ(Last(j).value("verdict", ""), "drop") << j.dump(2);
  EXPECT_EQ(Last(j).value("drop_reason", ""), "source-range-denied") << j.dump(2);
  EXPECT_EQ(CurlFrom("192.0.2.43:80", "10.0.0.101", 42500), "");
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:42501", "192.0.2.43:80"});
  EXPECT_EQ(BackendName(Last(j)), "be2") << j.dump(2);
  EXPECT_EQ(CurlFrom("192.0.2.43:80", "10.0.0.100", 42501), "be2 10.0.0.1");
}

TEST_P(ExplainE2ETest, ChangesNoMapAndWorksWithTheAgentDown) {
  AddEverywhere({"--frontend", "10.96.0.44:80/TCP", "--type", "NodePort", "--node-port", "30104", "--algorithm",
                 "maglev", "--backends", "10.1.1.2:8080,10.1.2.2:8080"});
  ASSERT_FALSE(CurlFrom("10.0.0.1:30104", "10.0.0.100", 42600).empty());  // an entry to find
  auto dump = [&](bool with_node) { return Maps(0, with_node); };
  auto explain_all = [&] {
    json first = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:42601", "10.0.0.1:30104"});
    Explain(0, {"--device", "eth0", "--flags", "A", "--reply", "tcp", "10.0.0.100:42600", "10.0.0.1:30104"});
    Explain(0, {"--device", "eth0", "udp", "10.0.0.100:42602", "10.0.0.1:30104"});
    Explain(0, {"--device", "eth0", "tcp", "[fd00::100]:42603", "[fd00::1]:30104"});
    Explain(0, {"--hook", "sock", "tcp", "10.0.0.1:42604", "10.96.0.44:80"});
    return first;
  };
  MapDump before = dump(false);
  ASSERT_FALSE(before.empty());
  json live = explain_all();
  EXPECT_EQ(DumpDiff(before, dump(false)), "") << "explain changed a map";

  // With the agent down nothing else writes: every map, tnd_node included.
  nodes_[0]->agent.reset();  // the programs stay attached, the maps pinned
  before = dump(true);
  json down = explain_all();
  EXPECT_EQ(DumpDiff(before, dump(true)), "") << "explain changed a map";
  EXPECT_EQ(BackendName(Last(down)), BackendName(Last(live))) << down.dump(2);
  EXPECT_EQ(Last(down).value("verdict", ""), Last(live).value("verdict", ""));
  StartAgent(0);
}

TEST_P(ExplainE2ETest, PoliciesAffinityTerminatingFallbackAndDsr) {
  auto has = [](const json& h, const char* step) {
    for (const auto& s : h.value("steps", json::array()))
      if (s.value("step", "") == step) return true;
    return false;
  };
  // externalTrafficPolicy Local: this node's backend, the client kept.
  AddEverywhere({"--frontend", "10.96.0.50:80/TCP", "--type", "NodePort", "--node-port", "30110", "--traffic-policy",
                 "Local", "--backends", "10.1.1.2:8080,10.1.2.2:8080"});
  json j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:43100", "10.0.0.1:30110"});
  EXPECT_EQ(BackendName(Last(j)), "be1") << j.dump(2);
  EXPECT_EQ(Rewritten(Last(j), "source"), "") << "no SNAT under Local: " << j.dump(2);
  EXPECT_EQ(CurlFrom("10.0.0.1:30110", "10.0.0.100", 43100), "be1 10.0.0.100");
  AddEverywhere({"--frontend", "10.96.0.51:80/TCP", "--type", "NodePort", "--node-port", "30111", "--traffic-policy",
                 "Local", "--backends", "10.1.2.2:8080"});
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:43101", "10.0.0.1:30111"});
  EXPECT_EQ(Last(j).value("drop_reason", ""), "no-local-backend") << j.dump(2);
  EXPECT_EQ(CurlFrom("10.0.0.1:30111", "10.0.0.100", 43101), "");

  // Session affinity: a client's next flow goes where its first went.
  AddEverywhere({"--frontend", "10.96.0.52:80/TCP", "--type", "NodePort", "--node-port", "30112",
                 "--affinity-timeout", "300", "--backends", "10.1.1.2:8080,10.1.2.2:8080"});
  const std::string first = CurlFrom("10.0.0.1:30112", "10.0.0.100", 43102);
  ASSERT_FALSE(first.empty());
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:43103", "10.0.0.1:30112"});
  EXPECT_TRUE(has(Last(j), "affinity")) << j.dump(2);
  EXPECT_EQ(BackendName(Last(j)), first.substr(0, 3)) << j.dump(2);
  EXPECT_EQ(CurlFrom("10.0.0.1:30112", "10.0.0.100", 43103).substr(0, 3), first.substr(0, 3));

  // Every endpoint terminating: served by them (kube-proxy's fallback), and said so.
  AddEverywhere({"--frontend", "10.96.0.53:80/TCP", "--type", "NodePort", "--node-port", "30113", "--id", "53",
                 "--backends", "10.1.2.2:8080"});
  ASSERT_EQ(Cli(0, {"service", "update", "53", "--backend-state", "10.1.2.2:8080=terminating"}).rc, 0);
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:43104", "10.0.0.1:30113"});
  EXPECT_EQ(Last(j)["backend"].value("state", ""), "terminating") << j.dump(2);
  EXPECT_TRUE(absl::StrContains(Last(j)["backend"].value("why", ""), "fallback")) << j.dump(2);
  EXPECT_EQ(CurlFrom("10.0.0.1:30113", "10.0.0.100", 43104), "be2 10.0.0.1");

  // DSR: the client's address travels to the backend's node; no SNAT.
  AddEverywhere({"--frontend", "10.96.0.54:80/TCP", "--type", "NodePort", "--node-port", "30114", "--dsr",
                 "--backends", "10.1.2.2:8080"});
  j = Explain(0, {"--device", "eth0", "tcp", "10.0.0.100:43105", "10.0.0.1:30114"});
  EXPECT_TRUE(has(Last(j), "dsr")) << j.dump(2);
  EXPECT_EQ(Last(j).value("hook", ""), "tc-ingress") << "the option is tc's: " << j.dump(2);
  EXPECT_EQ(Rewritten(Last(j), "source"), "") << j.dump(2);
  EXPECT_EQ(CurlFrom("10.0.0.1:30114", "10.0.0.100", 43105), "be2 10.0.0.100");
}

// Socket LB: a connect from the node itself, through its cgroup's programs.
TEST_P(ExplainE2ETest, ConnectsFromTheNodeThroughTheSocketPrograms) {
  AddEverywhere({"--frontend", "10.96.0.60:80/TCP", "--backends", "10.1.2.2:8080"});
  AddEverywhere({"--frontend", "[fd96::60]:80/TCP", "--backends", "[fd01::2]:8080"});
  AddEverywhere({"--frontend", "10.96.0.61:80/TCP"});  // no backends
  AddEverywhere({"--frontend", "10.96.0.62:80/TCP", "--affinity-timeout", "300", "--backends",
                 "10.1.1.2:8080,10.1.2.2:8080"});
  Node& n = *nodes_[0];
  auto curl = [&](const std::string& url, std::string* out) {
    return n.cgroup.Run({"curl", "-s", "-g", "--max-time", "2", url}, out, n.ns->path());
  };
  MapDump before = Maps(0, false);
  ASSERT_FALSE(before.empty());
  json j = Explain(0, {"--hook", "sock", "tcp", "10.0.0.1:43200", "10.96.0.60:80"});
  EXPECT_EQ(Last(j).value("verdict", ""), "translated") << j.dump(2);
  EXPECT_EQ(j.value("result", ""), "connect() goes to 10.1.2.2:8080") << j.dump(2);
  json j6 = Explain(0, {"--hook", "sock", "tcp", "[fd00::1]:43201", "[fd96::60]:80"});
  EXPECT_EQ(j6.value("result", ""), "connect() goes to [fd01::2]:8080") << j6.dump(2);
  json r = Explain(0, {"--hook", "sock", "tcp", "10.0.0.1:43202", "10.96.0.61:80"});
  EXPECT_EQ(r.value("result", ""), "connect() refused (ECONNREFUSED): no-service-backend") << r.dump(2);
  json a = Explain(0, {"--hook", "sock", "tcp", "10.0.0.1:43203", "10.96.0.62:80"});
  EXPECT_EQ(DumpDiff(before, Maps(0, false)), "") << "a dry connect changed a map";
  std::string cgroups;
  Sh({"sh", "-c", "ls -d " + n.cgroup.path() + "/tendril-explain-* 2>/dev/null || true"}, &cgroups);
  EXPECT_EQ(cgroups, "") << "the throwaway cgroup was left";
  // The real connects go where explain said.
  std::string out;
  EXPECT_EQ(curl("http://10.96.0.60/", &out), 0);
  EXPECT_EQ(out, "be2 10.0.0.1");
  EXPECT_EQ(curl("http://10.96.0.61/", &out), 7) << "refused, as explained";
  // Affinity: once this node has a binding, explain names its backend.
  ASSERT_EQ(curl("http://10.96.0.62/", &out), 0);
  const std::string bound = out.substr(0, 3);
  a = Explain(0, {"--hook", "sock", "tcp", "10.0.0.1:43204", "10.96.0.62:80"});
  EXPECT_EQ(BackendName(Last(a)), bound) << a.dump(2);
  EXPECT_EQ(curl("http://10.96.0.62/", &out), 0);
  EXPECT_EQ(out.substr(0, 3), bound);
}

TEST_P(ExplainE2ETest, RepliesOfEstablishedFlowsAndMonitorDrops) {
  AddEverywhere({"--frontend", "10.96.0.45:80/TCP", "--type", "NodePort", "--node-port", "30105", "--backends",
                 "10.1.2.2:8080"});  // on the other node: SNAT, the reply comes back in by eth0
  AddEverywhere({"--frontend", "10.96.0.46:80/TCP", "--type", "NodePort", "--node-port", "30106", "--backends",
                 "10.1.1.2:8080"});  // on this node: the reply leaves by eth0 (tc egress)
  ASSERT_EQ(CurlFrom("10.0.0.1:30105", "10.0.0.100", 42700), "be2 10.0.0.1");
  ASSERT_EQ(CurlFrom("10.0.0.1:30106", "10.0.0.100", 42701), "be1 10.0.0.100");
  json j = Explain(0, {"--device", "eth0", "--flags", "A", "--reply", "tcp", "10.0.0.100:42700", "10.0.0.1:30105"});
  const json& fwd = Last(j);
  EXPECT_EQ(BackendName(fwd), "be2") << j.dump(2);
  const std::string snat = Rewritten(fwd, "source");
  ASSERT_TRUE(absl::StartsWith(snat, "10.0.0.1:")) << j.dump(2);
  ASSERT_TRUE(j.contains("reply")) << j.dump(2);
  const json& rep = Last(j["reply"]);
  EXPECT_EQ(j["reply"]["packet"].value("summary", ""), absl::StrCat("TCP 10.1.2.2:8080 -> ", snat, " [A]"));
  EXPECT_EQ(Rewritten(rep, "destination"), "10.0.0.100:42700") << j.dump(2);
  EXPECT_EQ(Rewritten(rep, "source"), "10.0.0.1:30105") << j.dump(2);
  bool nat_reply = false;
  for (const auto& st : rep["steps"]) nat_reply |= st.value("step", "") == "nat-reply";
  EXPECT_TRUE(nat_reply) << j.dump(2);

  j = Explain(0, {"--device", "eth0", "--flags", "A", "--reply", "tcp", "10.0.0.100:42701", "10.0.0.1:30106"});
  EXPECT_EQ(BackendName(Last(j)), "be1") << j.dump(2);
  EXPECT_EQ(Last(j["reply"]).value("hook", ""), "tc-egress") << j.dump(2);
  EXPECT_EQ(Rewritten(Last(j["reply"]), "source"), "10.0.0.1:30106") << j.dump(2);
  // A new flow's reply finds no entries (a dry run creates none): said so.
  j = Explain(0, {"--device", "eth0", "--reply", "tcp", "10.0.0.100:42702", "10.0.0.1:30105"});
  EXPECT_TRUE(absl::StrContains(j["reply"].value("note", ""), "creates no entries")) << j.dump(2);

  // A drop seen by monitor, explained from its event.
  AddEverywhere({"--frontend", "10.96.0.47:80/TCP", "--type", "LoadBalancer", "--external-ips", "192.0.2.47",
                 "--node-port", "30107", "--source-ranges", "10.0.0.100/32", "--backends", "10.1.2.2:8080"});
  Subprocess monitor({BinaryPath("tendril"), "--bpffs-root", nodes_[0]->pins.path(), "-o", "json", "monitor",
                      "--type", "drop", "--max", "1", "--timeout", "10"});
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  EXPECT_EQ(CurlFrom("192.0.2.47:80", "10.0.0.101", 42703), "");
  ASSERT_EQ(monitor.Stop(0, 12000), 0) << monitor.Log();
  TempDir dir;
  const std::string event = dir.path() + "/event.json";
  ASSERT_TRUE(WriteFileAtomic(event, monitor.Log()).ok());
  j = Explain(0, {"--from-monitor", event});
  EXPECT_EQ(Last(j).value("drop_reason", ""), "source-range-denied") << monitor.Log() << j.dump(2);
  EXPECT_EQ(j["packet"].value("summary", ""), "TCP 10.0.0.101:42703 -> 192.0.2.47:80 [S]") << j.dump(2);
  CliResult bad = ExplainCli(0, {"--from-monitor", dir.path() + "/none.json"});
  EXPECT_EQ(bad.rc, 2) << bad.err;
}

TEST_P(ExplainE2ETest, BadInputExitsTwoNamingIt) {
  struct Case {
    std::vector<std::string> args;
    const char* names;
  } cases[] = {
      {{"--device", "eth0", "tcp", "10.0.0.300:1", "10.0.0.1:30100"}, "source \"10.0.0.300:1\""},
      {{"--device", "eth0", "tcp", "10.0.0.100:1", "10.0.0.1"}, "needs a port"},
      {{"--device", "eth0", "sctp", "10.0.0.100:1", "10.0.0.1:80"}, "protocol \"sctp\""},
      {{"--device", "eth0", "tcp", "10.0.0.100:1", "[fd00::1]:80"}, "different families"},
      {{"--device", "nosuch0", "tcp", "10.0.0.100:1", "10.0.0.1:80"}, "device \"nosuch0\" does not exist"},
      {{"--device", "lo", "--hook", "tc-ingress", "tcp", "10.0.0.100:1", "10.0.0.1:80"},
       "hook tc-ingress has no tendril program on lo"},
      {{"--device", "eth0", "--hook", "lxc", "tcp", "10.0.0.100:1", "10.0.0.1:80"}, "--hook lxc needs --endpoint"},
      {{"--device", "eth0", "--hook", "nope", "tcp", "10.0.0.100:1", "10.0.0.1:80"}, "--hook \"nope\""},
      {{"--endpoint", "77", "tcp", "10.0.0.100:1", "10.0.0.1:80"}, "endpoint 77 is not on this node"},
      {{"--device", "eth0", "--flags", "SX", "tcp", "10.0.0.100:1", "10.0.0.1:80"}, "'X' is not one of"},
      {{"tcp", "10.0.0.100:1", "10.0.0.1:80"}, "--device DEV or --endpoint ID"},
  };
  if (GetParam() == "tc")
    for (auto& c : cases)
      if (absl::StrContains(c.names, "tc-ingress")) c = {{"--device", "eth0", "--hook", "xdp", "tcp", "10.0.0.100:1",
                                                          "10.0.0.1:80"}, "hook xdp has no tendril program on eth0"};
  for (const auto& c : cases) {
    CliResult r = ExplainCli(0, c.args);
    EXPECT_EQ(r.rc, 2) << absl::StrJoin(c.args, " ") << ": " << r.out << r.err;
    EXPECT_TRUE(absl::StrContains(r.err, c.names)) << absl::StrJoin(c.args, " ") << ": " << r.err;
  }
}

INSTANTIATE_TEST_SUITE_P(Modes, ExplainE2ETest, ::testing::Values("native", "tc"),
                         [](const auto& info) { return info.param == "native" ? "XdpNative" : "TcOnly"; });

}  // namespace
}  // namespace tendril::test
