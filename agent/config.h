// tendril-agent settings: every setting is a YAML key in --config FILE and a
// flag of the same name; a flag given on the command line wins.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "datapath/xdp_mode.h"
#include "maps/abi.h"

namespace tendril {

struct AgentConfig {
  std::vector<std::string> devices;
  XdpMode xdp_mode = XdpMode::kAuto;
  // Per-device XDP mode ("eth1:generic" in devices), over xdp-mode.
  std::map<std::string, XdpMode> device_xdp_mode;
  std::string bpffs_root = "/sys/fs/bpf/tendril";
  std::string state_dir = "/var/lib/tendril";
  std::string api_socket = "/run/tendril/tendril.sock";
  std::string cgroup_root;  // empty: the cgroup v2 mount from /proc/mounts
  std::string bpf_dir;      // holds bpf/ and maps/; empty: built-in default
  // Load objects built by Makefile.bpf from here instead of compiling at
  // start (nodes without clang; the kernel-matrix VM). They carry the default
  // config header, so node-specific settings must keep their defaults.
  std::string bpf_object_dir;
  // Where compiled objects are cached by key; empty: STATE-DIR/bpf-cache.
  // Agents with the same settings can share one (the key says what built it).
  std::string bpf_cache_dir;
  std::string BpfCacheDir() const { return bpf_cache_dir.empty() ? state_dir + "/bpf-cache" : bpf_cache_dir; }
  std::string clang = "clang";
  std::string netns;        // join this network namespace (path) at start
  bool enable_ipv4 = true;
  bool enable_ipv6 = true;
  bool cleanup_on_exit = false;
  bool enable_socket_lb = true;
  uint32_t maglev_table_size = 16381;
  uint32_t maglev_max_services = TND_MAGLEV_SVC_MAX_DEFAULT;  // Maglev tables the map holds
  // Caps of the growable LB tables (their size follows what is declared)
  // and of the source range tries.
  uint32_t lb_service_map_max = TND_SVC_MAX_DEFAULT;     // per family: masters + slots
  uint32_t lb_backend_map_max = TND_BACKENDS_MAX_DEFAULT;
  uint32_t lb_revnat_map_max = TND_REVNAT_MAX_DEFAULT;   // = most service ids
  uint32_t lb_source_range_map_max = TND_SRCRANGE_MAX_DEFAULT;
  // nodeport-addresses: node ports are served on the device addresses in
  // these CIDRs (and 127.0.0.1 when it is in one); empty: all, and 127.0.0.1.
  std::vector<std::string> nodeport_addresses;  // CIDR texts, validated
  uint32_t max_backends_per_service = 256;
  // Per-packet LB (NodePort/ExternalIP/LoadBalancer) at tc on the devices.
  bool enable_nodeport = true;
  uint16_t node_port_min = 30000;
  uint16_t node_port_max = 32767;
  // Source ports SNAT (NodePort to remote backends, masquerade) hands out:
  // outside the node's own ephemeral ports (agent/nat_ports.h).
  uint16_t nat_port_min = TND_NAT_PORT_MIN_DEFAULT;
  uint16_t nat_port_max = TND_NAT_PORT_MAX_DEFAULT;
  uint32_t ct_gc_interval = 30;  // seconds between conntrack/NAT GC runs
  // Entries of the flow tables (LRU, preallocated by the kernel: their
  // memory is taken at load, agent/map_sizes.h has the bytes per entry):
  // per address family; 0: a share of map-dynamic-size-ratio x the node's
  // memory (agent/map_sizes.h).
  double map_dynamic_size_ratio = 0.0025;  // Cilium's default
  uint32_t ct_max_entries = 0;
  uint32_t nat_max_entries = 0;
  uint32_t sock_revnat_max_entries = 0;
  uint32_t affinity_max_entries = 0;
  // Endpoints (pods): their traffic leaving a native device for anything
  // outside pod-cidrs and masquerade-exempt gets the device's address.
  bool enable_masquerade = true;
  std::vector<std::string> pod_cidrs;          // CIDR texts, validated
  std::vector<std::string> masquerade_exempt;  // CIDR texts, validated
  std::string log_level = "info";
  // A Kubernetes cluster to follow (agent/k8s_watch.h): its Services and
  // EndpointSlices become services beside the API's. Off when neither is set.
  std::string k8s_kubeconfig;   // a kubeconfig file
  std::string k8s_context;      // its context; empty: current-context
  bool k8s_in_cluster = false;  // the pod's service account instead
  // The cluster's name of this node (its Node object; endpoints' nodeName):
  // empty means the host name, as kube-proxy's --hostname-override.
  std::string k8s_node_name;
  bool K8sEnabled() const { return k8s_in_cluster || !k8s_kubeconfig.empty(); }
  // kube-proxy's operator endpoints (agent/node_http.cc); empty: off.
  std::string healthz_bind_address = "0.0.0.0:10256";
  std::string metrics_bind_address = "127.0.0.1:10249";
  uint32_t healthz_timeout = 60;  // seconds a cluster change may wait for the maps before /healthz says 503

  XdpMode XdpModeFor(const std::string& dev) const {
    auto it = device_xdp_mode.find(dev);
    return it == device_xdp_mode.end() ? xdp_mode : it->second;
  }
};

// Result of parsing argv: either a config to run with, or a request to exit
// (help, version) with the text to print.
struct ParsedArgs {
  AgentConfig config;
  bool exit_now = false;
  int exit_code = 0;
  std::string message;
};

absl::StatusOr<ParsedArgs> ParseAgentArgs(int argc, const char* const* argv);

// Applies YAML text to `cfg`; unknown keys and bad values are errors that
// name the key.
absl::Status ApplyYamlConfig(const std::string& yaml_text, AgentConfig* cfg);

// Checks the whole config (paths absolute, devices named, ...).
absl::Status ValidateConfig(const AgentConfig& cfg);

// The default location of the BPF sources (the source tree at build time, or
// the installed share directory).
std::string DefaultBpfDir();

}  // namespace tendril
