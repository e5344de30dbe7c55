// Where the Kubernetes API server is and how to prove who we are: from a
// kubeconfig file (its current context, or a named one) or from the
// in-cluster service account. Credentials are read into memory (PEM); a
// bearer token that lives in a file is re-read when the file changes
// (k8s/client.cc), as kubelet rotates projected service account tokens.
#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tendril::k8s {

struct ClusterConfig {
  std::string server;       // "https://10.0.0.1:6443"
  std::string ca_pem;       // the cluster's CA; empty: the system's CAs
  std::string cert_pem;     // client certificate (with cert_key_pem), or
  std::string key_pem;
  std::string token;        // a bearer token, or
  std::string token_file;   // a file holding one (re-read when it changes)
  std::string source;       // what this came from, for messages and status
};

// A kubeconfig file. `context` empty: its current-context. Errors name the
// file and what is missing or wrong (no such context, cluster or user; a
// credential file that cannot be read; bad base64).
absl::StatusOr<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context = "");

// The in-cluster configuration: KUBERNETES_SERVICE_HOST/PORT and the
// service account's token and CA under `sa_dir`.
inline constexpr char kServiceAccountDir[] = "/var/run/secrets/kubernetes.io/serviceaccount";
absl::StatusOr<ClusterConfig> InClusterConfig(const std::string& sa_dir = kServiceAccountDir);

}  // namespace tendril::k8s
