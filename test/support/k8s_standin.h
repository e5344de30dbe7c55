// Runs the Kubernetes API server stand-in (test/k8s/apiserver_standin.py:
// a stand-in, not an API server; it speaks the wire protocol a node agent
// uses) on loopback with a test CA made by openssl, and drives it: objects
// made by the real kubectl (--dry-run=client, discovery from the stand-in)
// are applied and deleted through its /standin/* operations.
#pragma once

#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test/support/kernel.h"

namespace tendril::test {

class ApiStandin {
 public:
  // `bookmark_s`: seconds between BOOKMARK events. With `netns` (a path),
  // it listens on that namespace's loopback, and the test's requests to it
  // (curl, kubectl) run there too.
  explicit ApiStandin(double bookmark_s = 1.0, const std::string& netns = "");
  ~ApiStandin();
  bool ok() const { return port_ > 0; }
  std::string server() const;  // https://127.0.0.1:PORT
  const std::string& dir() const { return dir_.path(); }
  std::string ca() const { return dir() + "/ca.crt"; }
  std::string token_file() const { return dir() + "/token"; }

  // A kubeconfig for it: a token user ("tok"), a client-certificate user
  // ("cert"), contexts of the same names; current-context `current`.
  std::string WriteKubeconfig(const std::string& current = "tok", bool inline_data = false) const;
  // Replaces the token the stand-in accepts.
  void RotateToken(const std::string& token) const;
  std::string token() const;

  // kubectl against the stand-in (discovery only: --dry-run=client keeps it
  // from writing); its stdout, parsed, or null with a test failure.
  nlohmann::json Kubectl(const std::vector<std::string>& args) const;
  // `kubectl create -f -` of a YAML manifest, --dry-run=client -o json.
  nlohmann::json FromManifest(const std::string& yaml) const;

  // /standin/* operations; the response, or null with a test failure.
  nlohmann::json Apply(const nlohmann::json& obj) const;
  nlohmann::json Delete(const std::string& kind, const std::string& ns, const std::string& name) const;
  nlohmann::json Op(const std::string& op) const;  // "compact", "cut", "restart"
  nlohmann::json Stats() const;

  // Stops and starts the process (same port; the objects and version kept,
  // the event history not: a watch from before gets 410), for an API
  // server that is down for a while.
  void Stop();
  void Start();

 private:
  nlohmann::json Call(const std::string& method, const std::string& path, const std::string& body) const;
  // argv with the namespace entered first, when there is one.
  std::vector<std::string> In(std::vector<std::string> argv) const;
  TempDir dir_;
  double bookmark_s_;
  std::string netns_;
  int port_ = 0;
  std::unique_ptr<Subprocess> proc_;
};

}  // namespace tendril::test
