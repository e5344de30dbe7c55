// The agent: compiles and loads the datapath, attaches it to the configured
// devices, keeps the maps equal to the desired state, and answers the API.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <simdjson.h>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "agent/api_server.h"
#include "datapath/compiler.h"
#include "datapath/node_maps.h"
#include "datapath/paths.h"
#include "agent/config.h"
#include "agent/endpoints.h"
#include "network/netlink.h"
#include "agent/health.h"
#include "agent/k8s_watch.h"
#include "datapath/loader.h"
#include "agent/prefilter.h"
#include "lb/services.h"
#include "datapath/programs.h"
#include "agent/state.h"
#include "maps/conntrack.h"

namespace tendril {

// What the agent calls out to at its two boundaries, where not the real
// thing's defaults: the map writes (maps/map_ops.h) and the SQLite VFS of
// the state store. test/integration/fault_injection_test.cc passes ones
// that fail the N-th write or sync.
struct AgentSeams {
  MapOps* map_ops = nullptr;  // null: the kernel's
  std::string state_vfs;      // a registered SQLite VFS; empty: SQLite's default
};

class PromText;

class Agent {
 public:
  explicit Agent(AgentConfig cfg, AgentSeams seams = {});
  ~Agent();

  // Restores desired state, compiles, loads, syncs maps, attaches. On error
  // nothing that was attached before has been detached.
  absl::Status Start();
  void RegisterApi(ApiServer& api);
  // --cleanup-on-exit: detach from devices, remove pins.
  absl::Status Cleanup();
  // Before exiting without Cleanup: what holds only while the agent watches
  // (TND_NODE_F_HOPS_SHARED) is withdrawn.
  void OnStop();

  nlohmann::json StatusJson() const;
  // The cluster the agent follows (null when none): connection, syncs, skips.
  nlohmann::json K8sStatus() const;
  nlohmann::json SocketLbStatus() const;
  nlohmann::json NatStatus() const;

  absl::StatusOr<nlohmann::json> PrefilterAdd(const std::vector<std::string>& texts);
  absl::StatusOr<nlohmann::json> PrefilterDelete(const std::vector<std::string>& texts);
  nlohmann::json PrefilterList() const;

  absl::StatusOr<nlohmann::json> ServiceAdd(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> ServiceApply(const nlohmann::json& args);
  // The same request read from simdjson's tape (large sets: no DOM).
  absl::StatusOr<nlohmann::json> ServiceApplyTape(simdjson::dom::element args);
  absl::StatusOr<nlohmann::json> ApplyServices(std::vector<Service> desired, std::chrono::steady_clock::time_point t0);
  // Services of the cluster (owner set) or of the API.
  std::vector<Service> ServicesOf(bool cluster) const;
  // Refuses a change through the API to a service of the cluster.
  absl::Status NotClusterOwned(ServiceId id) const;
  absl::StatusOr<nlohmann::json> ServiceUpdate(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> ServiceDelete(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> ServiceGet(const nlohmann::json& args) const;
  nlohmann::json ServiceList() const;
  absl::StatusOr<nlohmann::json> EndpointAdd(const nlohmann::json& args);
  absl::StatusOr<nlohmann::json> EndpointDelete(const nlohmann::json& args);
  nlohmann::json EndpointList() const;
  // Removes expired conntrack and NAT entries now.
  nlohmann::json ConntrackGc();
  // Conntrack and NAT entries of backends a change removed. The datapath no
  // longer uses them (a removed backend's entry is marked retired: its flows
  // choose again at their next packet), so the change does not wait for a
  // conntrack walk: the backends are queued, and one walk a second after
  // the first of them deletes the entries of all (DeletePendingFlows).
  void DeleteFlowsOf(ServiceId svc_id, L4Proto proto, const std::vector<Backend>& removed);
  void DeletePendingFlows();

  // For the main loop: file descriptors to poll besides the API and signals
  // (health check ports), what to do when one is readable, and the timer
  // (conntrack GC).
  std::vector<int> PollFds() const;
  void OnReadable(int fd);
  int NextTimeoutMs() const;
  void OnTimer();

 private:
  // kube-proxy's operator endpoints (node_http.cc).
  void StartNodeHttp();
  HttpReply NodeHealth(const std::string& path) const;
  std::string MetricsText() const;
  void WriteDatapathMetrics(PromText& t) const;
  HttpResponder::Handler NodeHttpHandler(bool metrics) const;
  std::vector<int> NodeHttpFds() const;
  bool OnNodeHttpReadable(int fd);
  void NodeHttpTimer();
  int NodeHttpTimeoutMs() const;

  // Kubernetes (agent_k8s.cc): start the watch, react to its changes, sync.
  absl::Status StartK8s();
  void OnK8sChange();
  k8s::MapOptions K8sMapOptions() const;
  void K8sDropApiFrontends(k8s::Mapped& m) const;
  void SyncK8sFull();
  void SyncK8sServices(const std::set<std::string>& keys);
  void SyncK8sOne(const std::string& key, K8sWatch::SyncResult& r);
  bool SyncK8sService(const std::string& key, const std::vector<Service>& want, std::string* error);
  void FinishK8sSync(K8sWatch::SyncResult r, absl::Time t0, bool full, const std::set<std::string>& keys);

  struct Loaded {
    BpfObject object;
    std::unique_ptr<Prefilter> prefilter;
    std::string device;  // offload only: the device the object is bound to
  };
  absl::StatusOr<NodeFacts> GatherFacts() const;
  LoadOptions Options(const std::string& path) const;
  // Every map the agent reads or writes is opened from its pin (the objects
  // have just pinned, or reused, it under paths_), typed and size-checked:
  // one way to a map handle. Only an offloaded XDP object's prefilter maps,
  // which live on the device and cannot be pinned, come from the object.
  template <typename K, typename V>
  absl::StatusOr<Map<K, V>> PinnedMap(const char* name) const {
    return Map<K, V>::OpenPin(paths_.Map(name), name, seams_.map_ops);
  }
  absl::StatusOr<UniqueFd> PinnedFd(const char* name) const { return OpenPinned(paths_.Map(name)); }
  absl::StatusOr<Loaded> LoadObject(const std::string& path, const std::string& offload_dev);
  absl::Status SyncPrefilter(const std::set<Cidr>& want);
  absl::Status StartSocketLb(const std::string& object_path);
  // Loads bpf_host.o (it holds every LB map), restores the services into the
  // maps and fills the device table.
  absl::Status StartServices(const std::string& object_path, const NodeFacts& facts);
  absl::Status AttachTcAll();
  // Loads bpf_lxc.o, writes the masquerade exemptions and brings the
  // declared endpoints back.
  absl::Status StartEndpoints(const std::string& object_path);
  absl::Status SyncNoMasquerade();
  absl::Status AttachEndpoint(const Endpoint& e);
  absl::Status DetachEndpoint(const Endpoint& e);
  // Stores the endpoints' change (all of them when `c` names none).
  absl::Status PersistEndpoints(StateChange c = {});
  void OnLinkEvents();
  // Sets TND_NODE_F_HOPS_SHARED from the rules and routes (RouteTable).
  void UpdateHopsShared();
  // A native device that was recreated: XDP, tc and the device table again.
  void ReattachDevice(const std::string& name);
  absl::Status SyncDevices(const NodeFacts& facts);
  // Opens, keeps and closes the health check ports of Local services.
  void SyncHealth(const std::vector<ServiceId>& service_ids);
  void SyncHealthAll();
  BackendPlace PlaceOf(const IpAddr& ip) const;
  std::vector<BackendPlace> PlacesOf(const std::vector<IpAddr>& ips) const;
  BackendPlace PlaceFromRoute(const std::optional<RouteInfo>& route) const;
  // Services with a backend at one of `ips` (every service: empty) follow
  // where their backends are now (an endpoint or route came or went).
  void RefreshPlacement(const std::vector<IpAddr>& ips);
  void RefreshPlacementWhere(const std::function<bool(const IpAddr&)>& affected);
  // The addresses node ports are served on (nodeport-addresses, 127.0.0.1).
  std::vector<IpAddr> NodePortAddresses(const NodeFacts& facts) const;
  // A native device's address came or went.
  void OnNodeAddressesChanged();
  // tnd_node: this namespace's cookie, for socket LB of 127.0.0.1.
  absl::Status WriteNodeInfo();
  // Bumps the node's generation (tnd_node_info.gen): every flow's cached
  // path (tnd_ct_val.hop_*) is decided again at its next packet. After any
  // change of services, backends, endpoints, devices, routes, neighbours.
  void BumpGeneration();
  // Commits `c` to the state store (one durable transaction); when it
  // cannot be, `undo` puts the maps back to what the store holds.
  absl::Status Persist(const StateChange& c, const std::function<void()>& undo);
  // Stores the services the last change touched (only those); on failure
  // the maps are restored to the stored services.
  absl::Status PersistServices(const std::vector<ServiceId>& touched);
  void RestoreStoredServicesIfNeeded();
  absl::Status CommitPrefilter(std::set<Cidr> want);
  absl::StatusOr<ServiceId> ServiceIdFromArgs(const nlohmann::json& args) const;
  absl::Status AttachAll();
  bool AnyDeviceRunsLoaded() const;
  // Drops the tail-call pins of objects that are no longer attached.
  void PruneTailCallPins();

  AgentConfig cfg_;
  AgentSeams seams_;
  BpffsPaths paths_;
  std::optional<StateStore> store_;  // opened at start
  // What the store held at start; afterwards its prefilter and endpoints
  // follow each change (the services live in the service manager).
  DesiredState desired_;
  std::vector<Loaded> loaded_;
  std::optional<BpfObject> sock_obj_;
  std::optional<BpfObject> host_obj_;
  std::optional<BpfObject> lxc_obj_;
  std::unique_ptr<EndpointManager> endpoints_;
  std::unique_ptr<LinkWatcher> links_;
  std::unique_ptr<K8sWatch> k8s_;
  bool k8s_synced_once_ = false;
  std::map<std::string, std::set<Frontend>> k8s_owned_;  // Service "ns/name" -> its frontends
  std::set<std::string> k8s_refused_;  // Services whose last change the planner refused (retried)
  std::unique_ptr<HttpResponder> healthz_, metrics_;
  std::vector<std::string> node_http_errors_;  // the binds that failed, retried
  absl::Time node_http_next_try_;
  mutable std::map<std::pair<std::string, int>, uint64_t> health_answers_;  // (path, code) -> answers
  absl::Time started_time_ = absl::Now();
  std::map<std::string, uint64_t> gc_removed_total_;  // by table
  uint64_t gc_runs_ = 0;
  std::map<std::string, int> device_index_;  // native devices as attached
  std::unique_ptr<CtMap> ct4_, ct6_;
  std::unique_ptr<NatMap> nat4_, nat6_;
  uint64_t nat_exhausted_at_start_ = 0;  // nat-ports-exhausted drops before this start
  std::vector<int> device_ifindexes_;
  std::map<uint16_t, std::unique_ptr<HealthServer>> health_;  // by port
  std::map<uint16_t, std::vector<ServiceId>> health_services_;  // port -> service ids
  std::map<ServiceId, uint16_t> health_port_of_;                // service id -> its port
  size_t HealthCount(uint16_t port) const;
  absl::Status CheckHealthPortFree(uint16_t port) const;
  uint32_t next_gc_ = 0;
  std::vector<BackendRef> pending_flows_[2];  // per family (IPv4, IPv6)
  int64_t pending_since_ms_ = -1;             // the first queued removal (-1: none)
  static constexpr int64_t kFlowCleanupDelayMs = 1000;
  bool placement_retry_ = false;  // a placement refresh failed half way
  std::optional<bool> hops_shared_;  // TND_NODE_F_HOPS_SHARED as last written
  static constexpr int kPlacementRetryMs = 1000;
  nlohmann::json last_gc_;
  std::unique_ptr<ServiceManager> services_;
  CompileResult compiled_;
  std::string started_at_;
  std::string cgroup_root_;
};

}  // namespace tendril
