// The Kubernetes client against the API server stand-in
// (test/k8s/apiserver_standin.py, on loopback, HTTPS with a test CA):
// kubeconfig and in-cluster configuration, certificate verification, token
// and certificate authentication, token rotation, and the reflector's
// list+watch through paging, bookmarks, cut streams, 410 Gone, a restarted
// history and an API server that is down. Objects come from the real
// kubectl (--dry-run=client).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <set>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "k8s/client.h"
#include "k8s/kubeconfig.h"
#include "k8s/reflector.h"
#include "test/support/k8s_standin.h"

namespace tendril::test {
namespace {

using nlohmann::json;

class K8sClientTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(api_.ok()); }

  std::unique_ptr<k8s::ApiClient> Client(const std::string& context = "tok", bool inline_data = false) {
    auto cfg = k8s::LoadKubeconfig(api_.WriteKubeconfig(context, inline_data));
    EXPECT_TRUE(cfg.ok()) << cfg.status();
    if (!cfg.ok()) return nullptr;
    auto c = k8s::ApiClient::Create(*cfg);
    EXPECT_TRUE(c.ok()) << c.status();
    return c.ok() ? std::move(*c) : nullptr;
  }

  json Service(const std::string& name, int port) {
    return api_.Kubectl({"create", "service", "clusterip", name, "--tcp", absl::StrCat(port, ":8080"),
                         "--dry-run=client", "-o", "json"});
  }

  // A reflector of Services that retries quickly (the tests cut it often).
  static k8s::ReflectorOptions FastServices() {
    k8s::ReflectorOptions o;
    o.path = "/api/v1/services";
    o.min_backoff = absl::Milliseconds(50);
    return o;
  }

  // Waits up to 10 s for `cond`.
  static bool Eventually(const std::function<bool()>& cond) {
    for (int i = 0; i < 200; ++i) {
      if (cond()) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return cond();
  }

  ApiStandin api_{0.3};
};

TEST_F(K8sClientTest, TokenAndCertificateUsersBothGetIn) {
  for (const char* ctx : {"tok", "cert"})
    for (bool inline_data : {false, true}) {
      SCOPED_TRACE(absl::StrCat(ctx, inline_data ? " inline" : " files"));
      auto c = Client(ctx, inline_data);
      ASSERT_NE(c, nullptr);
      auto r = c->Get("/api/v1/services", absl::Seconds(5));
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_EQ(r->code, 200) << r->body;
      EXPECT_EQ(json::parse(r->body).value("kind", ""), "ServiceList");
    }
}

TEST_F(K8sClientTest, BadKubeconfigsAreRefusedNamingTheProblem) {
  const std::string good = api_.WriteKubeconfig();
  EXPECT_TRUE(absl::StrContains(k8s::LoadKubeconfig(api_.dir() + "/nope").status().message(), "nope"));
  auto with = [&](const std::string& text) {
    std::string p = api_.dir() + "/bad.conf";
    std::ofstream(p) << text;
    return std::string(k8s::LoadKubeconfig(p).status().message());
  };
  EXPECT_TRUE(absl::StrContains(with("a: [b"), "not YAML"));
  EXPECT_TRUE(absl::StrContains(k8s::LoadKubeconfig(good, "elsewhere").status().message(),
                                "no context named 'elsewhere'"));
  EXPECT_TRUE(absl::StrContains(with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: gone\n"),
                                "no cluster named 'gone'"));
  EXPECT_TRUE(absl::StrContains(
      with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\nclusters:\n- name: c\n  cluster:\n"
           "    server: https://127.0.0.1:1\n    certificate-authority-data: '!!notbase64'\n"),
      "certificate-authority-data is not valid base64"));
  EXPECT_TRUE(absl::StrContains(
      with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\nclusters:\n- name: c\n  cluster:\n"
           "    server: http://127.0.0.1:8080\n"),
      "not an https:// URL"));
  EXPECT_TRUE(absl::StrContains(
      with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\nclusters:\n- name: c\n"
           "  cluster:\n    server: https://127.0.0.1:1\n    certificate-authority: /nonexistent/ca.crt\n"
           "users:\n- name: u\n  user:\n    token: t\n"),
      "/nonexistent/ca.crt"));
  EXPECT_TRUE(absl::StrContains(
      with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\n    user: u\nclusters:\n- name: c\n"
           "  cluster:\n    server: https://127.0.0.1:1\nusers:\n- name: u\n  user:\n    exec:\n      command: x\n"),
      "exec or auth-provider plugin"));
  EXPECT_TRUE(absl::StrContains(
      with("current-context: x\ncontexts:\n- name: x\n  context:\n    cluster: c\nclusters:\n- name: c\n  cluster:\n"
           "    server: https://127.0.0.1:1\n    certificate-authority-data: bm90IGEgY2VydGlmaWNhdGU=\n"),
      "holds no PEM certificate"));
  // A CA that did not sign the server's certificate: no answer is trusted.
  auto cfg = k8s::LoadKubeconfig(good);
  ASSERT_TRUE(cfg.ok());
  std::ifstream other(api_.dir() + "/other-ca.crt");
  cfg->ca_pem.assign(std::istreambuf_iterator<char>(other), {});
  auto c = k8s::ApiClient::Create(*cfg);
  ASSERT_TRUE(c.ok());
  auto r = (*c)->Get("/api/v1/services", absl::Seconds(5));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition) << r.status();
  EXPECT_TRUE(absl::StrContains(r.status().message(), api_.server())) << r.status();
}

TEST_F(K8sClientTest, InClusterConfigurationAndTokenRotation) {
  const std::string sa = api_.dir() + "/sa";
  ASSERT_EQ(std::system(absl::StrCat("mkdir -p ", sa, " && cp ", api_.ca(), " ", sa, "/ca.crt && cp ",
                                     api_.token_file(), " ", sa, "/token").c_str()), 0);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  EXPECT_TRUE(absl::StrContains(k8s::InClusterConfig(sa).status().message(), "KUBERNETES_SERVICE_HOST"));
  ::setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
  ::setenv("KUBERNETES_SERVICE_PORT", api_.server().substr(api_.server().rfind(':') + 1).c_str(), 1);
  auto cfg = k8s::InClusterConfig(sa);
  ::unsetenv("KUBERNETES_SERVICE_HOST");
  ::unsetenv("KUBERNETES_SERVICE_PORT");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->server, api_.server());
  auto c = k8s::ApiClient::Create(*cfg);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ((*c)->Get("/api/v1/services", absl::Seconds(5))->code, 200);
  // The cluster rotates the token: the old one is refused, the file's new
  // one is read (kubelet rewrites the projected token file).
  api_.RotateToken("standin-token-2");
  EXPECT_EQ((*c)->Get("/api/v1/services", absl::Seconds(5))->code, 401);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a new modification time
  ASSERT_EQ(std::system(absl::StrCat("cp ", api_.token_file(), " ", sa, "/token.new && mv ", sa, "/token.new ", sa,
                                     "/token").c_str()), 0);
  EXPECT_EQ((*c)->Get("/api/v1/services", absl::Seconds(5))->code, 200);
}

TEST_F(K8sClientTest, ReflectorListsInPagesThenFollowsEventsAndBookmarks) {
  for (int i = 0; i < 7; ++i) ASSERT_FALSE(api_.Apply(Service(absl::StrCat("web", i), 80 + i)).is_null());
  auto c = Client();
  ASSERT_NE(c, nullptr);
  std::atomic<int> changes{0};
  k8s::ReflectorOptions o;
  o.path = "/api/v1/services";
  o.page_size = 3;
  k8s::Reflector r(c.get(), o, [&](const k8s::ReflectorChange&) { changes++; });
  r.Start();
  ASSERT_TRUE(Eventually([&] { return r.State().synced; }));
  EXPECT_EQ(r.Snapshot().size(), 7u);
  EXPECT_EQ(api_.Stats().value("lists", 0), 3) << "7 objects in pages of 3";
  ASSERT_FALSE(api_.Apply(Service("web7", 90)).is_null());
  ASSERT_FALSE(api_.Delete("Service", "default", "web0").is_null());
  json changed = Service("web1", 81);
  changed["spec"]["ports"][0]["port"] = 8181;
  ASSERT_FALSE(api_.Apply(changed).is_null());
  ASSERT_TRUE(Eventually([&] {
    auto s = r.Snapshot();
    return s.size() == 7 && s.count("default/web7") && !s.count("default/web0") &&
           s["default/web1"]["spec"]["ports"][0].value("port", 0) == 8181;
  }));
  ASSERT_TRUE(Eventually([&] { return r.State().bookmarks >= 2; }));
  EXPECT_EQ(r.State().resource_version, std::to_string(api_.Stats().value("rv", 0)));
  EXPECT_EQ(r.State().lists, 1u);
}

// A watch cut mid-stream resumes from its last version (no new list); cut
// after the history was compacted, the watch gets 410 and lists again; an
// API server with a new history (restored) likewise. The store ends equal
// to the API's in every case.
TEST_F(K8sClientTest, ReflectorResumesAfterCutsAndRelistsOnGone) {
  auto c = Client("cert");
  ASSERT_NE(c, nullptr);
  k8s::ReflectorOptions o = FastServices();
  k8s::Reflector r(c.get(), o, [](const k8s::ReflectorChange&) {});
  r.Start();
  ASSERT_TRUE(Eventually([&] { return r.State().synced; }));
  for (int i = 0; i < 20; ++i) {
    ASSERT_FALSE(api_.Apply(Service(absl::StrCat("s", i), 1000 + i)).is_null());
    ASSERT_FALSE(api_.Op("cut").is_null());
  }
  ASSERT_TRUE(Eventually([&] { return r.Snapshot().size() == 20; }));
  EXPECT_EQ(r.State().lists, 1u) << "a cut watch resumes from its version";
  EXPECT_GE(r.State().watches, 10u);

  // Compacted past every version the watch has seen (the delete's
  // included), then cut: the resumed watch gets 410. Compacting before the
  // delete would race: a watch that saw the delete resumes above the cut.
  ASSERT_FALSE(api_.Delete("Service", "default", "s3").is_null());
  ASSERT_FALSE(api_.Op("compact").is_null());
  ASSERT_FALSE(api_.Op("cut").is_null());
  ASSERT_TRUE(Eventually([&] { return r.State().lists >= 2 && r.Snapshot().size() == 19; }));

  ASSERT_FALSE(api_.Op("restart").is_null());
  ASSERT_FALSE(api_.Delete("Service", "default", "s4").is_null());
  ASSERT_TRUE(Eventually([&] { return r.State().lists >= 3 && r.Snapshot().size() == 18; }));
  EXPECT_GE(r.State().gone, 2u);
}

// The e2e churn at the reflector alone, paced as the API lets it: adds and
// deletes each followed by a cut, the history compacted, the API server
// restored; the store ends equal to the API's, every round.
TEST_F(K8sClientTest, ReflectorStoreEqualsTheApiAfterChurnCutsAndRestarts) {
  auto c = Client("cert");
  ASSERT_NE(c, nullptr);
  std::vector<json> svc;
  for (int i = 0; i < 5; ++i) svc.push_back(Service(absl::StrCat("churn", i), 80));
  k8s::ReflectorOptions o = FastServices();
  k8s::Reflector r(c.get(), o, [](const k8s::ReflectorChange&) {});
  r.Start();
  ASSERT_TRUE(Eventually([&] { return r.State().synced; }));
  std::set<std::string> held;
  for (int i = 0; i < 40; ++i) {
    const std::string name = absl::StrCat("churn", (i / 2) % 5);
    if (i % 2 == 0) {
      ASSERT_FALSE(api_.Apply(svc[(i / 2) % 5]).is_null());
      held.insert("default/" + name);
    } else {
      ASSERT_FALSE(api_.Delete("Service", "default", name).is_null());
      held.erase("default/" + name);
    }
    if (i % 10 == 5) ASSERT_FALSE(api_.Op("compact").is_null());
    ASSERT_FALSE(api_.Op(i % 10 == 0 ? "restart" : "cut").is_null());
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  auto keys = [&] {
    std::set<std::string> k;
    for (const auto& [key, obj] : r.Snapshot()) k.insert(key);
    return k;
  };
  EXPECT_TRUE(Eventually([&] { return keys() == held; })) << absl::StrJoin(keys(), ",");
  EXPECT_TRUE(keys().empty());
}

TEST_F(K8sClientTest, ReflectorKeepsItsStoreWhileTheApiServerIsDown) {
  ASSERT_FALSE(api_.Apply(Service("kept", 80)).is_null());
  auto c = Client();
  ASSERT_NE(c, nullptr);
  k8s::ReflectorOptions o = FastServices();
  o.max_backoff = absl::Milliseconds(400);
  k8s::Reflector r(c.get(), o, [](const k8s::ReflectorChange&) {});
  r.Start();
  ASSERT_TRUE(Eventually([&] { return r.State().synced; }));
  api_.Stop();
  ASSERT_TRUE(Eventually([&] { return !r.State().last_error.empty(); }));
  EXPECT_EQ(r.Snapshot().size(), 1u) << "the last known state stays";
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const uint64_t failures = r.State().failures;
  EXPECT_LE(failures, 8u) << "backed off, not spinning";
  api_.Start();
  ASSERT_FALSE(api_.Apply(Service("new", 81)).is_null());
  ASSERT_TRUE(Eventually([&] { return r.Snapshot().size() == 2 && r.State().last_error.empty(); }));
}

}  // namespace
}  // namespace tendril::test
