#include "agent/config.h"

#include "network/addr.h"

#include "agent/prefilter.h"

#include <yaml-cpp/yaml.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <functional>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/status.h"
#include "k8s/node.h"
#include "lb/maglev.h"
#include "maps/abi.h"
#include "absl/strings/numbers.h"
#include "tendril_build_config.h"

namespace tendril {
namespace {

std::vector<std::string> SplitList(const std::string& s) {
  return absl::StrSplit(s, ',', absl::SkipWhitespace());
}

absl::StatusOr<bool> ParseBool(const std::string& key, const std::string& v) {
  if (v == "true" || v == "yes" || v == "1") return true;
  if (v == "false" || v == "no" || v == "0") return false;
  return absl::InvalidArgumentError(
      absl::StrCat("setting ", key, ": \"", v, "\" is not a boolean (true or false)"));
}

// One table: name, help, and how to set it from a string. YAML keys and
// command-line flags both go through it.
using Apply = std::function<absl::Status(AgentConfig*, const std::string& key, const std::string& value)>;

struct Setting {
  const char* name;
  const char* help;
  bool is_flag;  // boolean switch on the command line
  Apply apply;
};

Apply StringField(std::string AgentConfig::*field) {
  return [field](AgentConfig* c, const std::string&, const std::string& v) {
    c->*field = v;
    return absl::OkStatus();
  };
}

Apply BoolField(bool AgentConfig::*field) {
  return [field](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    auto b = ParseBool(k, v);
    if (!b.ok()) return b.status();
    c->*field = *b;
    return absl::OkStatus();
  };
}

Apply UintField(uint32_t AgentConfig::*field, uint32_t min, uint32_t max) {
  return [=](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    uint32_t n = 0;
    if (v.empty() || !absl::SimpleAtoi(v, &n) || v[0] == '-' || v[0] == '+' || n < min || n > max)
      return absl::InvalidArgumentError(
          absl::StrCat("setting ", k, ": \"", v, "\" is not a number in ", min, "-", max));
    c->*field = n;
    return absl::OkStatus();
  };
}

// A table size: a number in min-max, or "auto" (0: derived, see agent/map_sizes.h).
Apply SizeField(uint32_t AgentConfig::*field, uint32_t min, uint32_t max) {
  Apply number = UintField(field, min, max);
  return [=](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    if (v == "auto") {
      c->*field = 0;
      return absl::OkStatus();
    }
    absl::Status s = number(c, k, v);
    if (!s.ok()) return absl::InvalidArgumentError(absl::StrCat(s.message(), " or auto"));
    return s;
  };
}

Apply RatioField(double AgentConfig::*field) {
  return [=](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    double r = 0;
    if (!absl::SimpleAtod(v, &r) || !(r > 0 && r <= 0.1))
      return absl::InvalidArgumentError(absl::StrCat("setting ", k, ": \"", v, "\" is not a ratio in (0, 0.1]"));
    c->*field = r;
    return absl::OkStatus();
  };
}

Apply PortRangeField(uint16_t AgentConfig::*min, uint16_t AgentConfig::*max) {
  return [=](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    std::vector<std::string> parts = absl::StrSplit(v, '-');
    uint32_t lo = 0, hi = 0;
    if (parts.size() != 2 || !absl::SimpleAtoi(parts[0], &lo) || !absl::SimpleAtoi(parts[1], &hi) || lo < 1 ||
        hi > 65535 || lo > hi)
      return absl::InvalidArgumentError(
          absl::StrCat("setting ", k, ": \"", v, "\" is not a port range MIN-MAX within 1-65535"));
    c->*min = static_cast<uint16_t>(lo);
    c->*max = static_cast<uint16_t>(hi);
    return absl::OkStatus();
  };
}

Apply CidrListField(std::vector<std::string> AgentConfig::*field) {
  return [=](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
    std::vector<std::string> items = SplitList(v);
    auto parsed = ParseCidrList(items);
    if (!parsed.ok()) return absl::InvalidArgumentError(absl::StrCat("setting ", k, ": ", parsed.status().message()));
    c->*field = items;
    return absl::OkStatus();
  };
}

const std::vector<Setting>& Settings() {
  static const std::vector<Setting> kSettings = {
      {"devices", "comma-separated devices to attach to, each NAME or NAME:XDPMODE (eth0,eth1:generic)", false,
       [](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
         c->devices.clear();
         c->device_xdp_mode.clear();
         for (const std::string& item : SplitList(v)) {
           size_t colon = item.find(':');
           std::string name = item.substr(0, colon);
           if (colon != std::string::npos) {
             auto m = ParseXdpMode(item.substr(colon + 1));
             if (!m.ok())
               return absl::InvalidArgumentError(absl::StrCat("setting ", k, ": device ", name, ": ", m.status().message()));
             if (*m == XdpMode::kOffload)
               return absl::InvalidArgumentError(absl::StrCat(
                   "setting ", k, ": device ", name, ": offload is set for all devices (xdp-mode offload), not per device"));
             c->device_xdp_mode[name] = *m;
           }
           c->devices.push_back(name);
         }
         return absl::OkStatus();
       }},
      {"xdp-mode", "native|generic|offload|auto|disabled", false,
       [](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
         auto m = ParseXdpMode(v);
         if (!m.ok())
           return absl::InvalidArgumentError(absl::StrCat("setting ", k, ": ", m.status().message()));
         c->xdp_mode = *m;
         return absl::OkStatus();
       }},
      {"bpffs-root", "bpffs directory for pins (default /sys/fs/bpf/tendril)", false,
       StringField(&AgentConfig::bpffs_root)},
      {"state-dir", "desired state and object cache (default /var/lib/tendril)", false,
       StringField(&AgentConfig::state_dir)},
      {"api-socket", "Unix socket of the API (default /run/tendril/tendril.sock)", false,
       StringField(&AgentConfig::api_socket)},
      {"cgroup-root", "cgroup v2 path for socket programs (default: the cgroup2 mount)", false,
       StringField(&AgentConfig::cgroup_root)},
      {"bpf-dir", "directory holding bpf/ and maps/ sources", false, StringField(&AgentConfig::bpf_dir)},
      {"clang", "clang binary used to compile bpf/", false, StringField(&AgentConfig::clang)},
      {"bpf-object-dir", "load prebuilt objects (make -f Makefile.bpf) instead of compiling", false,
       StringField(&AgentConfig::bpf_object_dir)},
      {"bpf-cache-dir", "compiled BPF objects by cache key (default STATE-DIR/bpf-cache; shareable)", false,
       StringField(&AgentConfig::bpf_cache_dir)},
      {"netns", "network namespace (path, e.g. /run/netns/node) to run in", false,
       StringField(&AgentConfig::netns)},
      {"enable-ipv4", "IPv4 datapath (default true)", false, BoolField(&AgentConfig::enable_ipv4)},
      {"enable-ipv6", "IPv6 datapath (default true)", false, BoolField(&AgentConfig::enable_ipv6)},
      {"cleanup-on-exit", "remove programs and pins on SIGTERM (default: leave the datapath)", true,
       BoolField(&AgentConfig::cleanup_on_exit)},
      {"enable-socket-lb", "ClusterIP through cgroup socket programs (default true)", false,
       BoolField(&AgentConfig::enable_socket_lb)},
      {"maglev-table-size", "Maglev lookup table size, a prime (default 16381)", false,
       UintField(&AgentConfig::maglev_table_size, 251, 1048573)},
      {"maglev-max-services", "most services with Maglev tables (default 4096)", false,
       UintField(&AgentConfig::maglev_max_services, 16, 65535)},
      {"max-backends-per-service", "most backends a service may have (default 256)", false,
       UintField(&AgentConfig::max_backends_per_service, 1, 65535)},
      {"enable-nodeport", "NodePort/ExternalIP/LoadBalancer per packet at tc on the devices (default true)", false,
       BoolField(&AgentConfig::enable_nodeport)},
      {"node-port-range", "node ports the agent allocates from, MIN-MAX (default 30000-32767)", false,
       PortRangeField(&AgentConfig::node_port_min, &AgentConfig::node_port_max)},
      {"nat-port-range",
       "source ports SNAT and masquerade use, MIN-MAX outside net.ipv4.ip_local_port_range (default 10000-29999)",
       false, PortRangeField(&AgentConfig::nat_port_min, &AgentConfig::nat_port_max)},
      {"nodeport-addresses",
       "comma-separated CIDRs: node ports only on the device addresses inside them (127.0.0.1 only if one "
       "holds it); default: every device address and 127.0.0.1",
       false, CidrListField(&AgentConfig::nodeport_addresses)},
      {"ct-gc-interval", "seconds between conntrack/NAT garbage collections (default 30)", false,
       UintField(&AgentConfig::ct_gc_interval, 1, 3600)},
      {"map-dynamic-size-ratio",
       "share of the node's memory for the flow tables whose size is auto (default 0.0025)", false,
       RatioField(&AgentConfig::map_dynamic_size_ratio)},
      {"ct-max-entries", "conntrack entries per family, preallocated (default auto: from the memory ratio)", false,
       SizeField(&AgentConfig::ct_max_entries, 1024, 16777216)},
      {"nat-max-entries", "NAT entries per family, preallocated (default auto)", false,
       SizeField(&AgentConfig::nat_max_entries, 1024, 16777216)},
      {"sock-revnat-max-entries", "socket LB reverse-NAT entries per family (default auto)", false,
       SizeField(&AgentConfig::sock_revnat_max_entries, 1024, 16777216)},
      {"affinity-max-entries", "session affinity bindings (default auto)", false,
       SizeField(&AgentConfig::affinity_max_entries, 1024, 16777216)},
      {"lb-service-map-max", "most service map entries per family, masters + backend slots (default 4194304)",
       false, UintField(&AgentConfig::lb_service_map_max, 1024, 268435456)},
      {"lb-backend-map-max", "most backends, all services together (default 2097152)", false,
       UintField(&AgentConfig::lb_backend_map_max, 1024, 268435456)},
      {"lb-revnat-map-max", "most services (service ids 1..this; default 1048576)", false,
       UintField(&AgentConfig::lb_revnat_map_max, 1024, 16777216)},
      {"lb-source-range-map-max", "most loadBalancerSourceRanges entries per family (default 65536)", false,
       UintField(&AgentConfig::lb_source_range_map_max, 1024, 16777216)},
      {"enable-masquerade", "SNAT endpoints' traffic leaving the devices to the device address (default true)",
       false, BoolField(&AgentConfig::enable_masquerade)},
      {"pod-cidrs", "comma-separated CIDRs of the cluster's endpoints: not masqueraded", false,
       CidrListField(&AgentConfig::pod_cidrs)},
      {"masquerade-exempt", "comma-separated CIDRs endpoints reach with their own address", false,
       CidrListField(&AgentConfig::masquerade_exempt)},
      {"k8s-kubeconfig", "follow this kubeconfig's cluster: its Services and EndpointSlices become services", false,
       StringField(&AgentConfig::k8s_kubeconfig)},
      {"k8s-context", "the kubeconfig's context to use (default: its current-context)", false,
       StringField(&AgentConfig::k8s_context)},
      {"k8s-in-cluster", "follow the cluster the agent runs in (service account token and CA)", true,
       BoolField(&AgentConfig::k8s_in_cluster)},
      {"k8s-node-name", "this node's name in the cluster (default: the host name; in a DaemonSet: spec.nodeName)",
       false, StringField(&AgentConfig::k8s_node_name)},
      {"healthz-bind-address", "ADDRESS:PORT of /healthz and /livez, as kube-proxy's (default 0.0.0.0:10256; empty: off)",
       false, StringField(&AgentConfig::healthz_bind_address)},
      {"metrics-bind-address", "ADDRESS:PORT of /metrics, Prometheus text (default 127.0.0.1:10249; empty: off)", false,
       StringField(&AgentConfig::metrics_bind_address)},
      {"healthz-timeout", "seconds a cluster change may wait for the maps before /healthz answers 503 (default 60)",
       false, UintField(&AgentConfig::healthz_timeout, 1, 3600)},
      {"log-level", "debug|info|warning|error", false,
       [](AgentConfig* c, const std::string& k, const std::string& v) -> absl::Status {
         if (v != "debug" && v != "info" && v != "warning" && v != "error")
           return absl::InvalidArgumentError(
               absl::StrCat("setting ", k, ": \"", v, "\" is not one of debug, info, warning, error"));
         c->log_level = v;
         return absl::OkStatus();
       }},
  };
  return kSettings;
}

const Setting* FindSetting(const std::string& name) {
  for (const Setting& s : Settings())
    if (name == s.name) return &s;
  return nullptr;
}

}  // namespace

std::string DefaultBpfDir() {
  std::error_code ec;
  if (std::filesystem::exists(std::string(TENDRIL_SOURCE_DIR) + "/bpf/bpf_xdp.c", ec))
    return TENDRIL_SOURCE_DIR;
  return TENDRIL_INSTALL_DATADIR;
}

namespace {
absl::Status ApplyYamlSettings(const YAML::Node& root, AgentConfig* cfg);
}  // namespace

absl::Status ApplyYamlConfig(const std::string& yaml_text, AgentConfig* cfg) {
  YAML::Node root;
  try {
    root = YAML::Load(yaml_text);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config is not valid YAML: ", e.what()));
  }
  if (root.IsNull()) return absl::OkStatus();
  if (!root.IsMap()) return absl::InvalidArgumentError("config must be a YAML mapping of settings");
  // yaml-cpp's conversions throw; every node is checked before it is read,
  // and anything that still throws is an error, never a crash.
  try {
    return ApplyYamlSettings(root, cfg);
  } catch (const YAML::Exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", e.what()));
  }
}

namespace {
absl::Status ApplyYamlSettings(const YAML::Node& root, AgentConfig* cfg) {
  for (const auto& kv : root) {
    if (!kv.first.IsScalar())
      return absl::InvalidArgumentError(absl::StrCat("config: a setting name must be a plain word, at line ",
                                                     kv.first.Mark().line + 1));
    std::string key = kv.first.as<std::string>();
    const Setting* s = FindSetting(key);
    if (!s) {
      std::vector<std::string> names;
      for (const Setting& x : Settings()) names.push_back(x.name);
      return absl::InvalidArgumentError(absl::StrCat("config: unknown setting \"", key,
                                                     "\" (known: ", absl::StrJoin(names, ", "), ")"));
    }
    std::string value;
    if (kv.second.IsSequence()) {
      std::vector<std::string> items;
      for (const auto& it : kv.second) {
        if (!it.IsScalar())
          return absl::InvalidArgumentError(absl::StrCat("config: setting ", key, ": list items must be scalars"));
        items.push_back(it.as<std::string>());
      }
      value = absl::StrJoin(items, ",");
    } else if (kv.second.IsScalar()) {
      value = kv.second.as<std::string>();
    } else if (kv.second.IsNull()) {
      value = "";
    } else {
      return absl::InvalidArgumentError(absl::StrCat("config: setting ", key, " must be a scalar or a list"));
    }
    TND_RETURN_IF_ERROR(s->apply(cfg, absl::StrCat("config: ", key), value));
  }
  return absl::OkStatus();
}
}  // namespace

absl::Status ValidateConfig(const AgentConfig& c) {
  auto abs_path = [](const char* what, const std::string& p) -> absl::Status {
    if (p.empty() || p[0] != '/')
      return absl::InvalidArgumentError(absl::StrCat(what, " \"", p, "\" must be an absolute path"));
    return absl::OkStatus();
  };
  TND_RETURN_IF_ERROR(abs_path("bpffs-root", c.bpffs_root));
  TND_RETURN_IF_ERROR(abs_path("state-dir", c.state_dir));
  TND_RETURN_IF_ERROR(abs_path("api-socket", c.api_socket));
  if (!c.cgroup_root.empty()) TND_RETURN_IF_ERROR(abs_path("cgroup-root", c.cgroup_root));
  if (!c.bpf_cache_dir.empty()) TND_RETURN_IF_ERROR(abs_path("bpf-cache-dir", c.bpf_cache_dir));
  if (c.k8s_in_cluster && !c.k8s_kubeconfig.empty())
    return absl::InvalidArgumentError("k8s-kubeconfig and k8s-in-cluster: give one (the cluster to follow)");
  if (!c.k8s_context.empty() && c.k8s_kubeconfig.empty())
    return absl::InvalidArgumentError("k8s-context needs k8s-kubeconfig");
  if (!c.k8s_node_name.empty() && !c.K8sEnabled())
    return absl::InvalidArgumentError("k8s-node-name needs k8s-kubeconfig or k8s-in-cluster");
  if (!c.k8s_node_name.empty()) TND_RETURN_IF_ERROR(k8s::NodeName(c.k8s_node_name).status());
  for (auto [key, addr] : {std::pair{"healthz-bind-address", &c.healthz_bind_address},
                           std::pair{"metrics-bind-address", &c.metrics_bind_address}})
    if (!addr->empty())
      if (auto hp = ParseHostPort(*addr); !hp.ok())
        return absl::InvalidArgumentError(absl::StrCat(key, " \"", *addr, "\" is not ADDRESS:PORT (", hp.status().message(), ")"));
  for (const auto& d : c.devices) {
    if (d.empty() || d.size() >= 16 || d.find('/') != std::string::npos ||
        d.find(' ') != std::string::npos)
      return absl::InvalidArgumentError(absl::StrCat("devices: \"", d, "\" is not a valid device name"));
  }
  for (const auto& [d, m] : c.device_xdp_mode)
    if (c.xdp_mode == XdpMode::kOffload)
      return absl::InvalidArgumentError(absl::StrCat("devices: ", d, ": per-device XDP modes do not mix with xdp-mode offload"));
  if (c.xdp_mode != XdpMode::kDisabled && c.devices.empty())
    return absl::InvalidArgumentError(
        "no devices to attach XDP to: set devices (--devices eth0,...) or xdp-mode disabled");
  if (!IsPrime(c.maglev_table_size))
    return absl::InvalidArgumentError(absl::StrCat("maglev-table-size ", c.maglev_table_size,
                                                   " is not a prime (try 16381 or 65521)"));
  // Maglev needs more positions than backends; shares are even to about
  // 1% when there are 100 positions per backend (README).
  if (c.maglev_table_size <= c.max_backends_per_service)
    return absl::InvalidArgumentError(absl::StrCat(
        "maglev-table-size ", c.maglev_table_size, " must exceed max-backends-per-service (",
        c.max_backends_per_service, ")"));
  if (!c.bpf_object_dir.empty() &&
      (c.maglev_table_size != TENDRIL_MAGLEV_TABLE_SIZE || !c.enable_ipv4 || !c.enable_ipv6 ||
       c.nat_port_min != TND_NAT_PORT_MIN_DEFAULT || c.nat_port_max != TND_NAT_PORT_MAX_DEFAULT))
    return absl::InvalidArgumentError(absl::StrCat(
        "bpf-object-dir: prebuilt objects are built with the default maglev-table-size (",
        TENDRIL_MAGLEV_TABLE_SIZE, "), nat-port-range (", TND_NAT_PORT_MIN_DEFAULT, "-", TND_NAT_PORT_MAX_DEFAULT,
        ") and both address families; compile at start to change them"));
  if (c.nat_port_min <= c.node_port_max && c.node_port_min <= c.nat_port_max)
    return absl::InvalidArgumentError(absl::StrCat(
        "nat-port-range ", c.nat_port_min, "-", c.nat_port_max, " overlaps node-port-range ", c.node_port_min, "-",
        c.node_port_max, ": SNAT would hand out ports that services listen on"));
  if (!c.enable_ipv4 && !c.enable_ipv6)
    return absl::InvalidArgumentError("enable-ipv4 and enable-ipv6 are both false");
  return absl::OkStatus();
}

absl::StatusOr<ParsedArgs> ParseAgentArgs(int argc, const char* const* argv) {
  CLI::App app{"tendril-agent: eBPF datapath agent (XDP prefilter, services, host routing)",
               "tendril-agent"};
  app.option_defaults()->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  std::string config_file;
  app.add_option("--config", config_file, "YAML file of settings (keys as the flags below)");
  bool version = false;
  app.add_flag("--version", version, "print the version and exit");
  std::map<std::string, std::string> given;
  std::map<std::string, bool> given_flags;
  for (const Setting& s : Settings()) {
    if (s.is_flag)
      app.add_flag(absl::StrCat("--", s.name), given_flags[s.name], s.help);
    else
      app.add_option(absl::StrCat("--", s.name), given[s.name], s.help);
  }
  ParsedArgs out;
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    out.exit_now = true;
    out.message = app.help();
    return out;
  } catch (const CLI::ParseError& e) {
    return absl::InvalidArgumentError(absl::StrCat(e.what(), " (see --help)"));
  }
  if (version) {
    out.exit_now = true;
    out.message = absl::StrCat("tendril-agent ", TENDRIL_VERSION, "\n");
    return out;
  }
  if (!config_file.empty()) {
    auto text = ReadFile(config_file);
    if (!text.ok()) return Annotate(text.status(), "read --config");
    TND_RETURN_IF_ERROR(Annotate(ApplyYamlConfig(*text, &out.config), config_file));
  }
  for (const Setting& s : Settings()) {
    std::string flag = absl::StrCat("--", s.name);
    if (app.count(flag) == 0) continue;
    std::string value = s.is_flag ? (given_flags[s.name] ? "true" : "false") : given[s.name];
    TND_RETURN_IF_ERROR(s.apply(&out.config, flag, value));
  }
  if (out.config.bpf_dir.empty()) out.config.bpf_dir = DefaultBpfDir();
  TND_RETURN_IF_ERROR(ValidateConfig(out.config));
  return out;
}

}  // namespace tendril
