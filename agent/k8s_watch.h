// The agent's view of a Kubernetes cluster (settings k8s-kubeconfig or
// k8s-in-cluster): the API client and a reflector each for Services and
// EndpointSlices, an eventfd the main loop polls (readable after either
// store changed), and what the syncs did, for status and metrics.
#pragma once

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/config.h"
#include "agent/metrics_text.h"
#include "common/fd.h"
#include "k8s/client.h"
#include "k8s/mapping.h"
#include "k8s/node.h"
#include "k8s/reflector.h"

namespace tendril {

class K8sWatch {
 public:
  // Reads the configuration (kubeconfig or in-cluster) and starts both
  // reflectors; an error names what is wrong with the configuration. The
  // API server need not be reachable: the reflectors keep trying.
  static absl::StatusOr<std::unique_ptr<K8sWatch>> Open(const AgentConfig& cfg);
  ~K8sWatch();

  int fd() const { return event_fd_.get(); }
  // Empties the eventfd; true when a store changed since the last call.
  bool Drain();
  // Both stores are whole (each has listed once): a sync may remove.
  bool Synced() const;
  std::map<std::string, nlohmann::json> Services() const { return services_->Snapshot(); }
  std::map<std::string, nlohmann::json> Slices() const { return slices_->Snapshot(); }

  // What changed since the last call: everything (a list: map the whole
  // cluster again) or these Services ("namespace/name"), whose Service or
  // EndpointSlices changed.
  struct Dirty {
    bool full = false;
    std::set<std::string> services;
  };
  Dirty TakeDirty();
  // One Service and its EndpointSlices, as MapCluster takes them.
  std::map<std::string, nlohmann::json> ServiceOnly(const std::string& key) const;
  std::map<std::string, nlohmann::json> SlicesOf(const std::string& key) const;
  // When the first change not yet synced arrived (for the programming
  // latency), reset by Drain's caller through SyncDone.
  absl::Time pending_since() const { return pending_since_; }

  // What a sync did: the services it declared, what it skipped, how long.
  struct SyncResult {
    bool ok = false;
    std::string error;
    size_t services = 0;
    std::vector<k8s::Skipped> skipped;
    int ignored = 0;
    absl::Duration took;
    absl::Duration since_change;  // from the change's arrival to the maps written
  };
  // `full`: r.skipped is the whole cluster's; else only `keys`' Services'.
  void SyncDone(SyncResult r, bool full, const std::set<std::string>& keys);
  bool needs_retry() const { return needs_retry_; }

  nlohmann::json Status() const;
  // The watch's and the syncs' metrics (kube-proxy's names where it has one).
  void WriteMetrics(PromText& t) const;
  // The oldest change not yet in the maps: InfinitePast when none; before
  // the first sync, when the watch started (kube-proxy's health rule).
  absl::Time OldestPending() const;
  absl::Time last_sync() const { return last_ok_; }
  // This node: its name in the cluster and whether its Node object lets
  // load balancers pick it (k8s/node.h).
  const std::string& node_name() const { return node_name_; }
  k8s::NodeEligibility Eligibility() const;

 private:
  K8sWatch() = default;
  void Notify();
  void OnServiceChange(const k8s::ReflectorChange& c);
  void OnSliceChange(const k8s::ReflectorChange& c);
  void OnNodeChange();

  std::unique_ptr<k8s::ApiClient> client_;
  std::unique_ptr<k8s::Reflector> services_, slices_, node_;
  std::string node_name_;
  mutable std::mutex node_mu_;
  bool node_seen_ = false;
  k8s::NodeEligibility node_eligibility_;
  UniqueFd event_fd_;
  absl::Time pending_since_ = absl::InfinitePast();
  std::atomic<int64_t> first_change_ns_{0};
  bool needs_retry_ = false;
  SyncResult last_;
  absl::Time last_ok_ = absl::InfinitePast();
  uint64_t syncs_ = 0, failed_syncs_ = 0, full_syncs_ = 0;
  // Service -> object -> reasons, as last logged.
  std::map<std::string, std::map<std::string, std::string>> skipped_;
  size_t SkippedCount() const;
  mutable std::mutex dirty_mu_;
  Dirty dirty_{true, {}};
  std::map<std::string, std::set<std::string>> slices_of_;  // Service -> its slices' keys
  absl::Time opened_at_ = absl::Now();
  Histogram sync_seconds_{Histogram::SyncBuckets()}, programming_seconds_{Histogram::SyncBuckets()};
};

}  // namespace tendril
