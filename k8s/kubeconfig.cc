#include "k8s/kubeconfig.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <yaml-cpp/yaml.h>

#include <cstdlib>
#include <filesystem>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace tendril::k8s {
namespace {

// The entry named `name` of a kubeconfig list ("clusters", "users",
// "contexts"): its inner map ("cluster", "user", "context").
absl::StatusOr<YAML::Node> Named(const YAML::Node& root, const char* list, const char* inner, const std::string& name,
                                 const std::string& where) {
  const YAML::Node l = root[list];
  if (l && l.IsSequence())
    for (const YAML::Node& e : l)
      if (e["name"] && e["name"].as<std::string>() == name) {
        if (!e[inner] || !e[inner].IsMap())
          return absl::InvalidArgumentError(absl::StrCat(where, ": ", inner, " '", name, "' has no ", inner, " map"));
        return e[inner];
      }
  return absl::NotFoundError(absl::StrCat(where, ": no ", inner, " named '", name, "'"));
}

std::string Str(const YAML::Node& n, const char* key) {
  return n[key] && n[key].IsScalar() ? n[key].as<std::string>() : std::string();
}

// A credential given inline ("<key>-data", base64) or as a file ("<key>",
// relative to the kubeconfig's directory). Empty when neither is there.
absl::StatusOr<std::string> Credential(const YAML::Node& n, const std::string& key, const std::string& dir,
                                       const std::string& where) {
  std::string data = Str(n, (key + "-data").c_str());
  if (!data.empty()) {
    std::string out;
    if (!absl::Base64Unescape(data, &out))
      return absl::InvalidArgumentError(absl::StrCat(where, ": ", key, "-data is not valid base64"));
    return out;
  }
  std::string file = Str(n, key.c_str());
  if (file.empty()) return std::string();
  std::filesystem::path p(file);
  if (p.is_relative()) p = std::filesystem::path(dir) / p;
  auto text = ReadFile(p.string());
  if (!text.ok()) return Annotate(text.status(), absl::StrCat(where, ": ", key));
  return *text;
}

// How many certificates (or keys) a PEM text holds; -1 when it is not PEM.
int PemCount(const std::string& pem, bool key) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return -1;
  int n = 0;
  if (key) {
    EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
    n = k ? 1 : 0;
    EVP_PKEY_free(k);
  } else {
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      X509_free(x);
      n++;
    }
  }
  BIO_free(bio);
  ERR_clear_error();
  return n;
}

absl::Status CheckUsable(const ClusterConfig& c, const std::string& where) {
  if (!c.ca_pem.empty() && PemCount(c.ca_pem, false) < 1)
    return absl::InvalidArgumentError(absl::StrCat(where, ": the certificate authority holds no PEM certificate"));
  if (!c.cert_pem.empty() && PemCount(c.cert_pem, false) < 1)
    return absl::InvalidArgumentError(absl::StrCat(where, ": the client certificate is not a PEM certificate"));
  if (!c.key_pem.empty() && PemCount(c.key_pem, true) < 1)
    return absl::InvalidArgumentError(absl::StrCat(where, ": the client key is not a PEM private key"));
  if (c.server.rfind("https://", 0) != 0)
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": server '", c.server, "' is not an https:// URL (the API server is spoken to over TLS)"));
  if (c.cert_pem.empty() != c.key_pem.empty())
    return absl::InvalidArgumentError(absl::StrCat(where, ": a client certificate needs its key and a key its certificate"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<ClusterConfig> LoadKubeconfig(const std::string& path, const std::string& context) {
  const std::string where = absl::StrCat("kubeconfig ", path);
  TND_ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": not YAML: ", e.what()));
  }
  if (!root.IsMap()) return absl::InvalidArgumentError(absl::StrCat(where, ": not a kubeconfig (no top-level map)"));
  std::string ctx_name = context.empty() ? Str(root, "current-context") : context;
  if (ctx_name.empty())
    return absl::InvalidArgumentError(absl::StrCat(where, ": no current-context, and no context was given"));
  TND_ASSIGN_OR_RETURN(YAML::Node ctx, Named(root, "contexts", "context", ctx_name, where));
  TND_ASSIGN_OR_RETURN(YAML::Node cluster, Named(root, "clusters", "cluster", Str(ctx, "cluster"), where));
  const std::string dir = std::filesystem::path(path).parent_path().string();
  ClusterConfig c;
  c.source = absl::StrCat(where, ", context ", ctx_name);
  c.server = Str(cluster, "server");
  if (cluster["insecure-skip-tls-verify"] && cluster["insecure-skip-tls-verify"].as<bool>(false))
    return absl::InvalidArgumentError(
        absl::StrCat(where, ": cluster '", Str(ctx, "cluster"), "' sets insecure-skip-tls-verify; tendril verifies the "
                     "API server's certificate always: give certificate-authority(-data)"));
  TND_ASSIGN_OR_RETURN(c.ca_pem, Credential(cluster, "certificate-authority", dir, where));
  if (!Str(ctx, "user").empty()) {
    TND_ASSIGN_OR_RETURN(YAML::Node user, Named(root, "users", "user", Str(ctx, "user"), where));
    TND_ASSIGN_OR_RETURN(c.cert_pem, Credential(user, "client-certificate", dir, where));
    TND_ASSIGN_OR_RETURN(c.key_pem, Credential(user, "client-key", dir, where));
    c.token = Str(user, "token");
    c.token_file = Str(user, "tokenFile");
    if (!c.token_file.empty() && std::filesystem::path(c.token_file).is_relative())
      c.token_file = (std::filesystem::path(dir) / c.token_file).string();
    if (user["exec"] || user["auth-provider"])
      return absl::InvalidArgumentError(absl::StrCat(where, ": user '", Str(ctx, "user"),
                                                     "' uses an exec or auth-provider plugin, which tendril does not "
                                                     "run: give a token, tokenFile or client certificate"));
  }
  TND_RETURN_IF_ERROR(CheckUsable(c, where));
  return c;
}

absl::StatusOr<ClusterConfig> InClusterConfig(const std::string& sa_dir) {
  const char* host = std::getenv("KUBERNETES_SERVICE_HOST");
  const char* port = std::getenv("KUBERNETES_SERVICE_PORT");
  if (!host || !*host || !port || !*port)
    return absl::FailedPreconditionError(
        "in-cluster configuration: KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set (not in a pod?); "
        "give k8s-kubeconfig instead");
  ClusterConfig c;
  std::string h = host;
  c.server = absl::StrCat("https://", h.find(':') != std::string::npos ? "[" + h + "]" : h, ":", port);
  c.token_file = sa_dir + "/token";
  TND_ASSIGN_OR_RETURN(c.ca_pem, ReadFile(sa_dir + "/ca.crt"));
  auto token = ReadFile(c.token_file);
  if (!token.ok()) return Annotate(token.status(), "in-cluster configuration: the service account token");
  c.source = absl::StrCat("in-cluster service account (", sa_dir, ")");
  TND_RETURN_IF_ERROR(CheckUsable(c, c.source));
  return c;
}

}  // namespace tendril::k8s
