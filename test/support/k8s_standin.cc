#include "test/support/k8s_standin.h"

#include <gtest/gtest.h>

#include <chrono>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/subprocess.h"
#include "tendril_build_config.h"

namespace tendril::test {
namespace {

using nlohmann::json;

bool Sh(const std::string& script, std::string* out = nullptr) {
  std::string o;
  auto rc = RunCommand({"sh", "-c", script}, &o);
  if (out) *out = o;
  if (!rc.ok() || *rc != 0) {
    ADD_FAILURE() << script << ": " << o;
    return false;
  }
  return true;
}

// A CA, a server certificate for 127.0.0.1 and a client certificate, in dir.
bool MakeCertificates(const std::string& d) {
  const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  std::ofstream(d + "/server.ext") << "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n";
  std::ofstream(d + "/client.ext") << "extendedKeyUsage=clientAuth\n";
  return Sh(absl::StrCat("cd ", d, " && openssl req -x509 ", ec,
                         " -keyout ca.key -out ca.crt -days 2 -subj /CN=standin-ca 2>/dev/null && "
                         "openssl req -x509 ", ec, " -keyout other-ca.key -out other-ca.crt -days 2 -subj /CN=other 2>/dev/null && "
                         "for n in server client; do openssl req ", ec, " -keyout $n.key -out $n.csr -subj /CN=$n "
                         "2>/dev/null && openssl x509 -req -in $n.csr -CA ca.crt -CAkey ca.key -CAcreateserial "
                         "-out $n.crt -days 2 -extfile $n.ext 2>/dev/null || exit 1; done"));
}

std::string Base64File(const std::string& path) {
  std::string out;
  Sh("base64 -w0 " + path, &out);
  return std::string(absl::StripAsciiWhitespace(out));
}

}  // namespace

std::vector<std::string> ApiStandin::In(std::vector<std::string> argv) const {
  if (!netns_.empty()) argv.insert(argv.begin(), {"nsenter", "--net=" + netns_});
  return argv;
}

ApiStandin::ApiStandin(double bookmark_s, const std::string& netns) : bookmark_s_(bookmark_s), netns_(netns) {
  if (!MakeCertificates(dir())) return;
  RotateToken("standin-token-1");
  Start();
}

ApiStandin::~ApiStandin() { Stop(); }

void ApiStandin::Start() {
  const std::string port_file = dir() + "/port";
  std::remove(port_file.c_str());
  // Debian's interpreter (what setup-deps installs; a version manager's
  // shim in PATH can take seconds to start under load).
  std::vector<std::string> argv = {"/usr/bin/python3",
                                   absl::StrCat(TENDRIL_SOURCE_DIR, "/test/k8s/apiserver_standin.py"),
                                   "--cert", dir() + "/server.crt", "--key", dir() + "/server.key",
                                   "--client-ca", ca(), "--token-file", token_file(), "--port-file", port_file,
                                   "--bookmark-interval", absl::StrCat(bookmark_s_),
                                   "--state-file", dir() + "/state.json"};
  if (port_ > 0) argv.insert(argv.end(), {"--port", std::to_string(port_)});
  proc_ = std::make_unique<Subprocess>(In(argv));
  for (int i = 0; i < 300; ++i) {  // up to 15 s
    auto p = ReadFile(port_file);
    if (p.ok() && !p->empty()) {
      port_ = std::stoi(*p);
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  ADD_FAILURE() << "the API server stand-in did not start: " << proc_->Log();
  port_ = 0;
}

void ApiStandin::Stop() {
  if (proc_) proc_->Stop();
  proc_.reset();
}

std::string ApiStandin::server() const { return absl::StrCat("https://127.0.0.1:", port_); }

void ApiStandin::RotateToken(const std::string& token) const {
  std::ofstream(token_file() + ".tmp") << token << "\n";
  std::rename((token_file() + ".tmp").c_str(), token_file().c_str());
}

std::string ApiStandin::token() const {
  auto t = ReadFile(token_file());
  return t.ok() ? std::string(absl::StripAsciiWhitespace(*t)) : "";
}

std::string ApiStandin::WriteKubeconfig(const std::string& current, bool inline_data) const {
  auto cred = [&](const std::string& key, const std::string& file) {
    return inline_data ? absl::StrCat(key, "-data: ", Base64File(file)) : absl::StrCat(key, ": ", file);
  };
  std::string path = dir() + "/kubeconfig";
  std::ofstream(path) << "apiVersion: v1\nkind: Config\ncurrent-context: " << current << "\n"
                      << "clusters:\n- name: standin\n  cluster:\n    server: " << server() << "\n    "
                      << cred("certificate-authority", ca()) << "\n"
                      << "users:\n- name: tok\n  user:\n    token: " << token() << "\n"
                      << "- name: cert\n  user:\n    " << cred("client-certificate", dir() + "/client.crt")
                      << "\n    " << cred("client-key", dir() + "/client.key") << "\n"
                      << "contexts:\n- name: tok\n  context:\n    cluster: standin\n    user: tok\n"
                      << "- name: cert\n  context:\n    cluster: standin\n    user: cert\n";
  return path;
}

json ApiStandin::Call(const std::string& method, const std::string& path, const std::string& body) const {
  const std::string body_file = dir() + "/body.json";
  std::ofstream(body_file) << body;
  std::string out, err;
  auto rc = RunCommandSplit(In({"curl", "-s", "--cacert", ca(), "-H", "Authorization: Bearer " + token(), "-X",
                                method, "-H", "Content-Type: application/json", "--data-binary", "@" + body_file,
                                server() + path}),
                            &out, &err);
  json j = json::parse(out, nullptr, false);
  if (!rc.ok() || *rc != 0 || j.is_discarded()) {
    ADD_FAILURE() << method << " " << path << ": " << out << err;
    return nullptr;
  }
  return j;
}

json ApiStandin::Apply(const json& obj) const { return Call("POST", "/standin/apply", obj.dump()); }

json ApiStandin::Delete(const std::string& kind, const std::string& ns, const std::string& name) const {
  return Call("POST", "/standin/delete", json{{"kind", kind}, {"namespace", ns}, {"name", name}}.dump());
}

json ApiStandin::Op(const std::string& op) const { return Call("POST", "/standin/" + op, "{}"); }

json ApiStandin::Stats() const {
  std::string out;
  auto rc = RunCommand(In({"curl", "-s", "--cacert", ca(), "-H", "Authorization: Bearer " + token(),
                           server() + "/standin/stats"}),
                       &out);
  json j = json::parse(out, nullptr, false);
  return rc.ok() && *rc == 0 && !j.is_discarded() ? j : json(nullptr);
}

json ApiStandin::Kubectl(const std::vector<std::string>& args) const {
  std::vector<std::string> argv = {"kubectl", "--kubeconfig", dir() + "/kubectl.conf"};
  argv.insert(argv.end(), args.begin(), args.end());
  // kubectl's own kubeconfig: written each time (the token may have rotated).
  {
    std::ofstream f(dir() + "/kubectl.conf");
    f << "apiVersion: v1\nkind: Config\ncurrent-context: s\nclusters:\n- name: s\n  cluster:\n    server: "
      << server() << "\n    certificate-authority: " << ca() << "\nusers:\n- name: u\n  user:\n    token: " << token()
      << "\ncontexts:\n- name: s\n  context:\n    cluster: s\n    user: u\n";
  }
  std::string out, err;
  auto rc = RunCommandSplit(In(argv), &out, &err);
  // Several objects come as one JSON document after another: a List.
  json items = json::array();
  std::istringstream in(out);
  try {
    for (in >> std::ws; in.peek() != EOF; in >> std::ws) {
      json doc;
      in >> doc;  // one value (json::parse would want the input's end after it)
      items.push_back(std::move(doc));
    }
  } catch (const json::exception&) {
    items = nullptr;
  }
  if (!rc.ok() || *rc != 0 || !items.is_array() || items.empty()) {
    ADD_FAILURE() << absl::StrJoin(argv, " ") << ": " << out << err;
    return nullptr;
  }
  return items.size() == 1 ? items[0] : json{{"kind", "List"}, {"apiVersion", "v1"}, {"items", items}};
}

json ApiStandin::FromManifest(const std::string& yaml) const {
  const std::string f = dir() + "/manifest.yaml";
  std::ofstream(f) << yaml;
  return Kubectl({"create", "-f", f, "--dry-run=client", "--validate=false", "-o", "json"});
}

}  // namespace tendril::test
