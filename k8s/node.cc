#include "k8s/node.h"

#include <unistd.h>

#include <cctype>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace tendril::k8s {

using nlohmann::json;

NodeEligibility EligibilityOf(const json& node) {
  if (node.is_null()) return {false, "the Node object was deleted"};
  const json meta = node.value("metadata", json::object());
  if (meta.contains("deletionTimestamp") && meta["deletionTimestamp"].is_string())
    return {false, "the Node is being deleted"};
  const json spec = node.value("spec", json::object());
  if (spec.contains("taints") && spec["taints"].is_array())
    for (const json& t : spec["taints"])
      if (t.is_object() && t.value("key", "") == kToBeDeletedTaint)
        return {false, absl::StrCat("the Node has the ", kToBeDeletedTaint, " taint")};
  return {};
}

bool ValidNodeName(const std::string& name) {
  if (name.empty() || name.size() > 253) return false;
  for (absl::string_view label : absl::StrSplit(name, '.')) {
    if (label.empty() || label.size() > 63 || label.front() == '-' || label.back() == '-') return false;
    for (char ch : label)
      if (!(std::islower(static_cast<unsigned char>(ch)) || std::isdigit(static_cast<unsigned char>(ch)) || ch == '-'))
        return false;
  }
  return true;
}

absl::StatusOr<std::string> NodeName(const std::string& configured) {
  std::string name = configured;
  if (name.empty()) {
    char host[256] = {0};
    if (::gethostname(host, sizeof(host) - 1) != 0) return absl::InternalError("gethostname failed");
    name = absl::AsciiStrToLower(host);
  }
  if (!ValidNodeName(name))
    return absl::InvalidArgumentError(absl::StrCat("k8s-node-name \"", name,
                                                   "\" is not a Node name (lowercase DNS-1123 subdomain)"));
  return name;
}

}  // namespace tendril::k8s
