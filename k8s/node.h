// This node's Node object, as kube-proxy reads it: whether load balancers
// may send it traffic (its health server's "nodeEligible") and its name.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/statusor.h"

namespace tendril::k8s {

// The taint the cluster autoscaler puts on a node it is about to delete.
inline constexpr char kToBeDeletedTaint[] = "ToBeDeletedByClusterAutoscaler";

struct NodeEligibility {
  bool eligible = true;
  std::string reason;  // why not, when not
};

// Eligible unless the Node is being deleted (deletionTimestamp), carries
// the autoscaler's to-be-deleted taint, or is gone (`node` null, after it
// was seen). Before the Node is first seen the node counts as eligible, as
// kube-proxy's does while it starts.
NodeEligibility EligibilityOf(const nlohmann::json& node);

// The node's name: `configured` when set, else the host name lowercased
// (kube-proxy's default). An error when neither is a valid Node name
// (a DNS-1123 subdomain).
absl::StatusOr<std::string> NodeName(const std::string& configured);
bool ValidNodeName(const std::string& name);

}  // namespace tendril::k8s
