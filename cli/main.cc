// tendril: inspect and control a tendril-agent and its pinned BPF maps.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <csignal>
#include <ctime>
#include <unistd.h>

#include <cstring>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <map>
#include <nlohmann/json.hpp>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "cli/monitor_event.h"
#include "cli/output.h"
#include "common/api_client.h"
#include "network/cidr.h"
#include "lb/service.h"
#include "maps/abi.h"
#include "maps/conntrack.h"
#include "network/addr.h"
#include "maps/pinned_map.h"
#include "tendril_build_config.h"

namespace tendril::cli {
namespace {

using nlohmann::json;

struct Globals {
  std::string api_socket = "/run/tendril/tendril.sock";
  std::string bpffs_root = "/sys/fs/bpf/tendril";
  std::string output = "table";
  bool json() const { return output == "json"; }
};

// Exit codes: 0 ok, 1 operation failed, 2 bad input.
int Fail(const absl::Status& s) {
  std::fprintf(stderr, "Error: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsAlreadyExists(s) ||
                 absl::IsResourceExhausted(s)
             ? 2
             : 1;
}

void PrintJson(const json& j) { std::printf("%s\n", j.dump(2).c_str()); }

std::string PinPath(const Globals& g, absl::string_view name) {
  return absl::StrCat(g.bpffs_root, "/", name);
}

json MapFill(const Globals& g) {
  json maps = json::array();
  for (const auto& spec : abi::kPinnedMaps) {
    json m = {{"name", spec.name}, {"max_entries", spec.max_entries}, {"description", spec.what}};
    auto fd = OpenPinnedMap(PinPath(g, spec.name), spec.key_size, spec.value_size);
    if (fd.ok())
      if (auto info = GetMapInfo(fd->get()); info.ok()) m["max_entries"] = info->max_entries;  // sized by settings
    if (!fd.ok()) {
      m["error"] = std::string(fd.status().message());
    } else if (spec.type == BPF_MAP_TYPE_RINGBUF) {
      m["kind"] = "ring buffer";  // bytes, not entries
    } else if (spec.type == BPF_MAP_TYPE_ARRAY || spec.type == BPF_MAP_TYPE_PERCPU_ARRAY) {
      m["kind"] = "array";  // every slot always exists
      m["entries"] = m["max_entries"];
    } else {
      auto n = CountEntries(fd->get(), spec.key_size);
      if (n.ok())
        m["entries"] = *n;
      else
        m["error"] = std::string(n.status().message());
    }
    maps.push_back(m);
  }
  return maps;
}

int CmdStatus(const Globals& g) {
  auto agent = CallAgent(g.api_socket, "status");
  json maps = MapFill(g);
  if (g.json()) {
    json out;
    if (agent.ok()) {
      out = *agent;
      out["agent"]["running"] = true;
    } else {
      out["agent"] = {{"running", false}, {"error", std::string(agent.status().message())}};
    }
    out["maps"] = maps;
    PrintJson(out);
    return agent.ok() ? 0 : 1;
  }
  if (!agent.ok()) {
    std::printf("Agent:       not running (%s)\n", std::string(agent.status().message()).c_str());
  } else {
    const json& a = (*agent)["agent"];
    std::printf("Agent:       running (pid %d, version %s, since %s)\n", a.value("pid", 0),
                a.value("version", "").c_str(), a.value("started_at", "").c_str());
    const json& k = (*agent)["kernel"];
    std::printf("Kernel:      %s (tc via %s)\n", k.value("release", "").c_str(),
                k.value("tcx", false) ? "TCX links" : "clsact");
    const json& o = (*agent)["bpf_object"];
    std::printf("BPF object:  cache key %s (%s)\n", o.value("cache_key", "").c_str(),
                o.value("cache_hit", false) ? "from cache" : "compiled at start");
    std::printf("XDP mode:    %s (configured)\n", a.value("xdp_mode", "").c_str());
    const json& lb = (*agent)["socket_lb"];
    if (lb.value("enabled", false))
      std::printf("Socket LB:   %zu/8 hooks on cgroup %s, %d services, Maglev table %d\n",
                  lb["attached"].size(), lb.value("cgroup", "").c_str(), lb.value("services", 0),
                  lb.value("maglev_table_size", 0));
    else
      std::printf("Socket LB:   disabled\n");
    const json& np = (*agent)["nodeport"];
    if (np.value("enabled", false))
      std::printf("NodePort:    per packet at tc (and XDP), node ports %s, %zu external frontends, conntrack GC every %ds\n",
                  np.value("node_port_range", "").c_str(), np["external_frontends"].size(),
                  np.value("ct_gc_interval", 0));
    else
      std::printf("NodePort:    disabled\n");
    if ((*agent).contains("nat")) {
      const json& nat = (*agent)["nat"];
      auto fill = [&](const char* fam) -> std::string {
        if (!nat.contains(fam)) return "-";
        uint64_t n = nat[fam].value("entries", 0ull), max = nat[fam].value("max_entries", 1ull);
        return absl::StrCat(n, "/", max, " (", n * 100 / std::max<uint64_t>(max, 1), "%)");
      };
      std::printf("NAT:         ports %s (reserved), entries v4 %s, v6 %s, no free port %llu times since start\n",
                  nat.value("port_range", "").c_str(), fill("v4").c_str(), fill("v6").c_str(),
                  static_cast<unsigned long long>(nat.value("ports_exhausted_since_start", 0ull)));
    }
    if ((*agent).contains("endpoints")) {
      const json& ep = (*agent)["endpoints"];
      std::vector<std::string> cidrs;
      for (const auto& c : ep.value("pod_cidrs", json::array())) cidrs.push_back(c.get<std::string>());
      std::printf("Endpoints:   %d ready of %d, host routing %s, masquerade %s%s\n", ep.value("ready", 0),
                  ep.value("declared", 0), ep.value("host_routing", "").c_str(),
                  ep.value("masquerade", false) ? "on" : "off",
                  cidrs.empty() ? "" : absl::StrCat(" (not for ", absl::StrJoin(cidrs, ","), ")").c_str());
    }
    auto tc_cell = [](const json& d, const char* key) -> std::string {
      if (!d.contains(key) || d[key].is_null()) return "none";
      return absl::StrCat(d[key].value("via", ""), " #", d[key].value("prog_id", 0));
    };
    Table devs({"DEVICE", "IFINDEX", "XDP", "PROGRAM", "PROG ID", "TC INGRESS", "TC EGRESS"});
    for (const auto& d : (*agent)["devices"]) {
      if (d.contains("error")) {
        devs.AddRow({d.value("name", ""), "-", "error: " + d.value("error", ""), "", "", "", ""});
      } else if (d["xdp"].is_null()) {
        devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)), "none", "", "",
                     tc_cell(d, "tc_ingress"), tc_cell(d, "tc_egress")});
      } else {
        devs.AddRow({d.value("name", ""), std::to_string(d.value("ifindex", 0)),
                     d["xdp"].value("mode", ""), d["xdp"].value("prog_name", ""),
                     std::to_string(d["xdp"].value("prog_id", 0)), tc_cell(d, "tc_ingress"),
                     tc_cell(d, "tc_egress")});
      }
    }
    std::printf("Devices:\n%s", devs.empty() ? "  (none)\n" : devs.Render(2).c_str());
    Table progs({"PROGRAM", "ID", "VERIFIED INSNS"});
    for (const auto& p : (*agent)["programs"])
      progs.AddRow({p.value("name", ""), std::to_string(p.value("id", 0)),
                    std::to_string(p.value("verified_insns", 0))});
    std::printf("Programs:\n%s", progs.Render(2).c_str());
  }
  Table mt({"MAP", "ENTRIES", "MAX", "DESCRIPTION"});
  for (const auto& m : maps)
    mt.AddRow({m.value("name", ""),
               m.value("kind", "") == "ring buffer" ? "ring"
               : !m.contains("entries")        ? "not pinned"
               : m.value("kind", "") == "array" ? "array"
                                                : std::to_string(m.value("entries", 0)),
               std::to_string(m.value("max_entries", 0)), m.value("description", "")});
  std::printf("Maps (%s):\n%s", g.bpffs_root.c_str(), mt.Render(2).c_str());
  return agent.ok() ? 0 : 1;
}

absl::Status ValidateCidrs(const std::vector<std::string>& cidrs) {
  std::vector<std::string> errors;
  for (const auto& c : cidrs)
    if (auto r = ParseCidr(c); !r.ok()) errors.emplace_back(r.status().message());
  if (!errors.empty())
    return absl::InvalidArgumentError(absl::StrCat(absl::StrJoin(errors, "; "), " (nothing changed)"));
  return absl::OkStatus();
}

int CmdPrefilterChange(const Globals& g, const std::string& op, const std::vector<std::string>& cidrs) {
  if (auto s = ValidateCidrs(cidrs); !s.ok()) return Fail(s);
  auto r = CallAgent(g.api_socket, op, {{"cidrs", cidrs}});
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  for (const auto& c : r->value("added", json::array())) std::printf("added    %s\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("already_present", json::array()))
    std::printf("present  %s (unchanged)\n", c.get<std::string>().c_str());
  for (const auto& c : r->value("deleted", json::array())) std::printf("deleted  %s\n", c.get<std::string>().c_str());
  return 0;
}

int CmdPrefilterList(const Globals& g) {
  auto r = CallAgent(g.api_socket, "prefilter.list");
  if (!r.ok()) return Fail(r.status());
  if (g.json()) {
    PrintJson(*r);
    return 0;
  }
  Table t({"CIDR", "FAMILY"});
  for (const auto& e : *r) t.AddRow({e.value("cidr", ""), e.value("family", "")});
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdMetricsList(const Globals& g) {
  auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(PinPath(g, TND_MAP_METRICS),
                                                                TND_MAP_METRICS);
  if (!m.ok()) return Fail(m.status());
  std::map<std::pair<int, int>, std::pair<uint64_t, uint64_t>> sums;
  auto s = m->ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& per_cpu) {
    uint64_t packets = 0, bytes = 0;
    for (const auto& x : per_cpu) {
      packets += x.packets;
      bytes += x.bytes;
    }
    if (packets == 0) return;  // array slots exist for every reason
    abi::MetricsSlot k = abi::DecodeMetricsIndex(idx);
    sums[{k.reason, k.dir}] = {packets, bytes};
  });
  if (!s.ok()) return Fail(s);
  if (g.json()) {
    json out = json::array();
    for (const auto& [k, v] : sums)
      out.push_back({{"reason", std::string(abi::DropReasonName(static_cast<uint8_t>(k.first)))},
                     {"reason_code", k.first},
                     {"direction", std::string(abi::DirectionName(static_cast<uint8_t>(k.second)))},
                     {"packets", v.first},
                     {"bytes", v.second}});
    PrintJson(out);
    return 0;
  }
  Table t({"REASON", "DIRECTION", "PACKETS", "BYTES"});
  for (const auto& [k, v] : sums)
    t.AddRow({std::string(abi::DropReasonName(static_cast<uint8_t>(k.first))),
              std::string(abi::DirectionName(static_cast<uint8_t>(k.second))),
              std::to_string(v.first), std::to_string(v.second)});
  std::printf("%s", t.Render().c_str());
  return 0;
}

// ---- services ---------------------------------------------------------------

std::string BackendsCell(const json& svc) {
  std::vector<std::string> parts;
  for (const auto& b : svc.value("backends", json::array())) {
    std::string p = b.value("address", "");
    if (b.value("weight", 1) != 1) p += "@" + std::to_string(b.value("weight", 1));
    if (b.value("state", "active") != "active") p += " (" + b.value("state", "") + ")";
    parts.push_back(p);
  }
  return parts.empty() ? "(none)" : absl::StrJoin(parts, ", ");
}

// "NodePort :30080, 192.0.2.10:80, Local, DSR, from 198.51.100.0/24"
std::string ExternalCell(const json& s) {
  if (s.value("type", "ClusterIP") == "ClusterIP")
    return s.value("internal_traffic_policy", "Cluster") == "Local" ? "internal Local" : "-";
  std::vector<std::string> parts;
  if (s.contains("node_port")) parts.push_back(absl::StrCat("nodeport :", s.value("node_port", 0)));
  for (const auto& ip : s.value("external_ips", json::array())) {
    std::string a = ip.get<std::string>();
    std::string port = s.value("frontend", "");
    port = port.substr(port.rfind(':') + 1);
    port = port.substr(0, port.find('/'));
    parts.push_back(a.find(':') != std::string::npos ? absl::StrCat("[", a, "]:", port) : absl::StrCat(a, ":", port));
  }
  parts.push_back(s.value("traffic_policy", "Cluster"));
  if (s.value("internal_traffic_policy", "Cluster") == "Local") parts.push_back("internal Local");
  if (s.value("dsr", false)) parts.push_back("DSR");
  if (s.contains("source_ranges"))
    parts.push_back("from " + absl::StrJoin(s["source_ranges"].get<std::vector<std::string>>(), " "));
  if (s.value("health_check_port", 0)) parts.push_back(absl::StrCat("health :", s.value("health_check_port", 0)));
  return absl::StrJoin(parts, ", ");
}

void PrintServices(const json& list) {
  Table t({"ID", "FRONTEND", "TYPE", "EXTERNAL", "ALGORITHM", "AFFINITY", "BACKENDS"});
  for (const auto& s : list)
    t.AddRow({std::to_string(s.value("id", 0)), s.value("frontend", ""), s.value("type", ""), ExternalCell(s),
              s.value("algorithm", ""),
              s.value("affinity_timeout", 0) ? std::to_string(s.value("affinity_timeout", 0)) + "s" : "-",
              BackendsCell(s)});
  std::printf("%s", t.Render().c_str());
}

int PrintResult(const Globals& g, const absl::StatusOr<json>& r) {
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else if (r->is_array())
    PrintServices(*r);
  else
    PrintServices(json::array({*r}));
  return 0;
}

struct ServiceArgs {
  std::string frontend, type = "ClusterIP", algorithm, traffic_policy, internal_traffic_policy;
  std::vector<std::string> backends, states, external_ips, source_ranges;
  int64_t affinity = -1;
  int64_t id = 0;
  int64_t node_port = 0;
  int64_t health_check_port = 0;
  bool clear_backends = false;
  bool clear_source_ranges = false;
  std::string dsr;  // "", "true", "false"
};

// Checks the external-frontend options here, so that bad input is named
// before the agent is asked (exit 2), and adds them to `out`.
absl::Status ExternalArgs(const ServiceArgs& a, json* out) {
  std::vector<std::string> errors;
  if (!a.traffic_policy.empty()) {
    if (auto p = ParseTrafficPolicy(a.traffic_policy); !p.ok()) errors.emplace_back(p.status().message());
    else (*out)["traffic_policy"] = TrafficPolicyName(*p);
  }
  if (!a.internal_traffic_policy.empty()) {
    if (auto p = ParseTrafficPolicy(a.internal_traffic_policy); !p.ok()) errors.emplace_back(p.status().message());
    else (*out)["internal_traffic_policy"] = TrafficPolicyName(*p);
  }
  if (!a.external_ips.empty()) {
    json ips = json::array();
    for (const auto& t : a.external_ips) {
      if (auto ip = ParseIp(t); !ip.ok()) errors.push_back("external IP: " + std::string(ip.status().message()));
      else ips.push_back(ip->ToString());
    }
    (*out)["external_ips"] = ips;
  }
  if (!a.source_ranges.empty() || a.clear_source_ranges) {
    json rs = json::array();
    for (const auto& t : a.source_ranges) {
      if (auto c = ParseCidr(t); !c.ok()) errors.push_back("source range: " + std::string(c.status().message()));
      else rs.push_back(c->ToString());
    }
    (*out)["source_ranges"] = rs;
  }
  if (!a.dsr.empty()) (*out)["dsr"] = a.dsr == "true";
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; ") + " (nothing changed)");
  return absl::OkStatus();
}

absl::Status ParseBackendList(const std::vector<std::string>& in, json* out) {
  std::vector<std::string> errors;
  *out = json::array();
  for (const auto& b : in) {
    auto p = ParseBackend(b);
    if (!p.ok()) errors.emplace_back(p.status().message());
    else out->push_back(b);
  }
  if (!errors.empty()) return absl::InvalidArgumentError(absl::StrJoin(errors, "; ") + " (nothing changed)");
  return absl::OkStatus();
}

int CmdServiceAdd(const Globals& g, const ServiceArgs& a) {
  auto fe = ParseFrontend(a.frontend);
  if (!fe.ok()) return Fail(fe.status());
  json backends;
  if (auto s = ParseBackendList(a.backends, &backends); !s.ok()) return Fail(s);
  auto type = ParseServiceType(a.type);
  if (!type.ok()) return Fail(type.status());
  json svc = {{"frontend", a.frontend}, {"type", ServiceTypeName(*type)},
              {"algorithm", a.algorithm.empty() ? "random" : a.algorithm},
              {"affinity_timeout", a.affinity < 0 ? 0 : a.affinity}};
  if (a.id) svc["id"] = a.id;
  if (a.node_port) svc["node_port"] = a.node_port;
  if (a.health_check_port) svc["health_check_port"] = a.health_check_port;
  if (auto s = ExternalArgs(a, &svc); !s.ok()) return Fail(s);
  svc["backends"] = json::array();
  for (const auto& b : backends) svc["backends"].push_back({{"address", b}});
  // Weights ("ADDR:PORT@W") are parsed by the agent from the address text.
  for (auto& b : svc["backends"]) {
    auto p = ParseBackend(b["address"].get<std::string>());
    b["address"] = p->Address();
    b["weight"] = p->weight;
  }
  return PrintResult(g, CallAgent(g.api_socket, "service.add", {{"service", svc}}));
}

// `service apply -f FILE`: the whole set of services, as `service list -o
// json` prints it (an array, or an object with "services"); what is not in
// it is removed.
int CmdServiceApply(const Globals& g, const std::string& file) {
  std::string text;
  if (file == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(file);
    if (!in) return Fail(absl::NotFoundError(absl::StrCat("cannot read ", file, ": ", std::strerror(errno))));
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  absl::StatusOr<json> parsed = jsonf::Parse(text);
  if (!parsed.ok()) return Fail(Annotate(parsed.status(), file));
  json doc = std::move(*parsed);
  if (doc.is_object() && doc.contains("services")) doc = doc["services"];
  if (!doc.is_array())
    return Fail(absl::InvalidArgumentError(absl::StrCat(file, ": expected an array of services (or {\"services\": [...]})")));
  auto r = CallAgent(g.api_socket, "service.apply", {{"services", doc}}, 120000);
  if (!r.ok() || g.json()) return PrintResult(g, r);
  std::printf("%d services declared: %d added, %d changed, %d removed (%d map writes, %d deletes)\n",
              r->value("services", 0), r->value("added", 0), r->value("changed", 0), r->value("removed", 0),
              r->value("map_writes", 0), r->value("map_deletes", 0));
  return 0;
}

int CmdServiceUpdate(const Globals& g, int64_t id, const ServiceArgs& a) {
  json args = {{"id", id}};
  if (!a.backends.empty() || a.clear_backends) {
    json backends;
    if (auto s = ParseBackendList(a.backends, &backends); !s.ok()) return Fail(s);
    args["backends"] = backends;
  }
  if (!a.states.empty()) {
    json states = json::object();
    for (const auto& st : a.states) {
      auto eq = st.rfind('=');
      if (eq == std::string::npos)
        return Fail(absl::InvalidArgumentError("--backend-state wants ADDR:PORT=STATE, got \"" + st + "\""));
      states[st.substr(0, eq)] = st.substr(eq + 1);
    }
    args["states"] = states;
  }
  if (!a.algorithm.empty()) args["algorithm"] = a.algorithm;
  if (a.affinity >= 0) args["affinity_timeout"] = a.affinity;
  if (auto s = ExternalArgs(a, &args); !s.ok()) return Fail(s);
  if (args.size() == 1)
    return Fail(absl::InvalidArgumentError(
        "nothing to update: give --backends, --backend-state, --algorithm, --affinity-timeout, "
        "--traffic-policy, --internal-traffic-policy, --external-ips, --source-ranges or --dsr"));
  return PrintResult(g, CallAgent(g.api_socket, "service.update", args));
}

int CmdServiceDelete(const Globals& g, int64_t id, const std::string& frontend) {
  json args;
  if (id) args["id"] = id;
  else if (!frontend.empty()) args["frontend"] = frontend;
  else return Fail(absl::InvalidArgumentError("give a service ID or --frontend"));
  auto r = CallAgent(g.api_socket, "service.delete", args);
  if (!r.ok()) return Fail(r.status());
  if (g.json()) PrintJson(*r);
  else std::printf("deleted service %d (%s)\n", r->value("id", 0), r->value("frontend", "").c_str());
  return 0;
}

// `bpf lb list`: the service maps themselves, read from the pins.
std::string HostPortText(const uint8_t* addr, bool v6, uint16_t port_be) {
  IpAddr ip;
  ip.family = v6 ? Family::kV6 : Family::kV4;
  std::memcpy(ip.bytes.data(), addr, v6 ? 16 : 4);
  uint16_t port = ntohs(port_be);
  return v6 ? absl::StrCat("[", ip.ToString(), "]:", port) : absl::StrCat(ip.ToString(), ":", port);
}

// "cluster[,local]" (socket LB only), or
// "[in-cluster,]external[,nodeport][,local][,dsr][,source-ranges]": the
// in-cluster entries of a frontend with two scopes are what traffic from the
// node and its pods uses.
std::string SvcScope(uint8_t f, uint8_t scope) {
  if (!(f & TND_SVC_F_EXTERNAL)) return (f & TND_SVC_F_LOCAL) ? "cluster,local" : "cluster";
  std::string s = scope == TND_SCOPE_INTERNAL ? "in-cluster,external" : "external";
  if (f & TND_SVC_F_NODEPORT) s += ",nodeport";
  if (f & TND_SVC_F_LOCAL) s += ",local";
  if (f & TND_SVC_F_DSR) s += ",dsr";
  if (f & TND_SVC_F_SRCRANGE) s += ",source-ranges";
  return s;
}

int CmdBpfLbList(const Globals& g) {
  auto backends = Map<uint32_t, tnd_backend>::OpenPin(PinPath(g, TND_MAP_BACKENDS), TND_MAP_BACKENDS);
  if (!backends.ok()) return Fail(backends.status());
  std::map<uint32_t, tnd_backend> be;
  (void)backends->ForEach([&](const uint32_t& id, const tnd_backend& b) { be[id] = b; });

  struct Row {
    std::string frontend;
    uint8_t scope;
    uint16_t slot;
    tnd_svc_val val;
    std::string Group() const { return absl::StrCat(frontend, "#", scope); }
  };
  std::vector<Row> rows;
  auto add_rows = [&](auto key_type, const char* name, bool v6) -> absl::Status {
    using K = decltype(key_type);
    auto m = Map<K, tnd_svc_val>::OpenPin(PinPath(g, name), name);
    if (!m.ok()) return m.status();
    return m->ForEach([&](const K& k, const tnd_svc_val& v) {
      std::string fe = HostPortText(reinterpret_cast<const uint8_t*>(&k.addr), v6, k.port) + "/" +
                       (k.proto == IPPROTO_UDP ? "UDP" : k.proto == IPPROTO_TCP ? "TCP" : std::to_string(k.proto));
      rows.push_back({fe, k.scope, k.slot, v});
    });
  };
  if (auto s = add_rows(tnd_svc4_key{}, TND_MAP_SVC_V4, false); !s.ok()) return Fail(s);
  if (auto s = add_rows(tnd_svc6_key{}, TND_MAP_SVC_V6, true); !s.ok()) return Fail(s);
  std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
    return std::tie(a.frontend, a.scope, a.slot) < std::tie(b.frontend, b.scope, b.slot);
  });
  auto state_name = [](uint8_t s) {
    return s == TND_BACKEND_ACTIVE ? "active" : s == TND_BACKEND_TERMINATING ? "terminating" : "maintenance";
  };
  json out = json::array();
  std::map<std::string, json*> by_fe;
  for (const Row& r : rows) {
    if (r.slot == 0) {
      json svc = {{"frontend", r.frontend}, {"service_id", r.val.svc_id}, {"active_slots", r.val.count},
                  {"algorithm", (r.val.flags & TND_SVC_F_MAGLEV) ? "maglev" : "random"},
                  {"affinity_timeout", r.val.affinity_timeout}, {"scope", SvcScope(r.val.flags, r.scope)},
                  {"group", r.Group()}, {"slots", json::array()},
                  {"inactive_backends", json::array()}};
      for (const auto& [id, b] : be)
        if (b.svc_id == r.val.svc_id && b.state != TND_BACKEND_ACTIVE)
          svc["inactive_backends"].push_back({{"backend_id", id},
                                              {"address", HostPortText(b.addr, b.family == 6, b.port)},
                                              {"state", state_name(b.state)}});
      out.push_back(svc);
    }
  }
  for (auto& svc : out) by_fe[svc["group"].get<std::string>()] = &svc;
  for (const Row& r : rows) {
    if (r.slot == 0 || !by_fe.count(r.Group())) continue;
    json slot = {{"slot", r.slot}, {"backend_id", r.val.backend_id}};
    auto it = be.find(r.val.backend_id);
    if (it != be.end()) {
      slot["address"] = HostPortText(it->second.addr, it->second.family == 6, it->second.port);
      slot["state"] = state_name(it->second.state);
    } else {
      slot["address"] = "(missing backend)";
      slot["state"] = "missing";
    }
    (*by_fe[r.Group()])["slots"].push_back(slot);
  }
  for (auto& svc : out) svc.erase("group");
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"SERVICE ADDRESS", "BACKEND ADDRESS (SLOT)", "BACKEND ID", "STATE"});
  for (const auto& svc : out) {
    std::string fe = svc["frontend"].get<std::string>();
    t.AddRow({fe, absl::StrCat("0.0.0.0:0 (0) [service ", svc.value("service_id", 0), ", ", svc.value("scope", ""), ", ",
                               svc.value("algorithm", ""), ", ", svc.value("active_slots", 0), " active slots",
                               svc.value("affinity_timeout", 0) ? absl::StrCat(", affinity ", svc.value("affinity_timeout", 0), "s") : "",
                               "]"),
              "", ""});
    for (const auto& sl : svc["slots"])
      t.AddRow({"", absl::StrCat(sl.value("address", ""), " (", sl.value("slot", 0), ")"),
                std::to_string(sl.value("backend_id", 0)), sl.value("state", "")});
    for (const auto& b : svc["inactive_backends"])
      t.AddRow({"", absl::StrCat(b.value("address", ""), " (-)"), std::to_string(b.value("backend_id", 0)),
                b.value("state", "")});
  }
  std::printf("%s", t.Render().c_str());
  return 0;
}

// ---- conntrack and NAT ------------------------------------------------------

std::string Age(uint32_t now, uint32_t then) {
  int32_t d = static_cast<int32_t>(now - then);
  if (d < 0) d = 0;
  if (d < 120) return absl::StrCat(d, "s");
  if (d < 7200) return absl::StrCat(d / 60, "m");
  return absl::StrCat(d / 3600, "h");
}

std::string Remaining(uint32_t now, uint32_t expires) {
  int32_t d = static_cast<int32_t>(expires - now);
  return d <= 0 ? "expired" : absl::StrCat(d, "s");
}

int CmdBpfCtList(const Globals& g, bool v6) {
  const char* name = v6 ? TND_MAP_CT_V6 : TND_MAP_CT_V4;
  auto ct = CtMap::OpenPin(PinPath(g, name), name);
  if (!ct.ok()) return Fail(ct.status());
  auto backends = Map<uint32_t, tnd_backend>::OpenPin(PinPath(g, TND_MAP_BACKENDS), TND_MAP_BACKENDS);
  int fam = v6 ? 6 : 4;
  uint32_t now = BpfClockSeconds();
  json out = json::array();
  auto st = ct->ForEach([&](const tnd_ct_key& k, const tnd_ct_val& v) {
    json e = {{"proto", ProtoName(k.proto)},
              {"source", AddrPortText(k.saddr, k.sport, fam)},
              {"destination", AddrPortText(k.daddr, k.dport, fam)},
              {"flags", CtFlagsText(v.flags)},
              {"service_id", v.svc_id},
              {"tcp_flags_seen", TcpStateName(k.proto, v.tcp_flags)},
              {"age_seconds", static_cast<int32_t>(now - v.created)},
              {"expires_in_seconds", static_cast<int32_t>(v.expires - now)},
              {"packets", v.packets},
              {"bytes", v.bytes}};
    if (v.flags & TND_CT_F_SERVICE) {
      e["backend_id"] = v.backend_id;
      if (backends.ok()) {
        auto b = backends->Lookup(v.backend_id);
        if (b.ok() && *b) e["backend"] = AddrPortText((*b)->addr, (*b)->port, fam);
      }
    }
    if (v.flags & TND_CT_F_REPLY) e["reply_source"] = AddrPortText(v.nat_addr, v.nat_port, fam);
    out.push_back(e);
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["source"], a["destination"]) < std::tie(b["source"], b["destination"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"PROTO", "SOURCE", "DESTINATION", "TRANSLATION", "FLAGS", "TCP", "AGE", "EXPIRES", "PACKETS", "BYTES"});
  for (const auto& e : out) {
    std::string xl = e.contains("backend") ? "-> " + e.value("backend", "")
                     : e.contains("reply_source") ? "as " + e.value("reply_source", "")
                                                  : "-";
    t.AddRow({e.value("proto", ""), e.value("source", ""), e.value("destination", ""), xl, e.value("flags", ""),
              e.value("tcp_flags_seen", ""), Age(now, now - e.value("age_seconds", 0)),
              Remaining(now, now + e.value("expires_in_seconds", 0)), std::to_string(e.value("packets", 0ull)),
              std::to_string(e.value("bytes", 0ull))});
  }
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdBpfNatList(const Globals& g, bool v6) {
  const char* name = v6 ? TND_MAP_NAT_V6 : TND_MAP_NAT_V4;
  auto nat = NatMap::OpenPin(PinPath(g, name), name);
  if (!nat.ok()) return Fail(nat.status());
  int fam = v6 ? 6 : 4;
  uint32_t now = BpfClockSeconds();
  json out = json::array();
  auto st = nat->ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    bool in = k.dir == TND_NAT_IN;
    out.push_back({{"direction", in ? "in" : "out"},
                   {"proto", ProtoName(k.proto)},
                   {"source", AddrPortText(k.saddr, k.sport, fam)},
                   {"destination", AddrPortText(k.daddr, k.dport, fam)},
                   // out: the source becomes to; in: the destination becomes to
                   {"translated_to", AddrPortText(v.to_addr, v.to_port, fam)},
                   {"kind", v.flags & TND_NAT_F_MASQ ? "masquerade" : v.flags & TND_NAT_F_SERVICE ? "service" : "-"},
                   {"state", TcpStateName(k.proto, v.tcp_flags)},
                   {"age_seconds", static_cast<int32_t>(now - v.created)},
                   {"expires_in_seconds", static_cast<int32_t>(v.expires - now)}});
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["direction"], a["source"], a["destination"]) < std::tie(b["direction"], b["source"], b["destination"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"DIR", "PROTO", "SOURCE", "DESTINATION", "REWRITTEN", "KIND", "STATE", "AGE", "EXPIRES"});
  for (const auto& e : out) {
    bool in = e.value("direction", "") == "in";
    t.AddRow({e.value("direction", ""), e.value("proto", ""), e.value("source", ""), e.value("destination", ""),
              (in ? "dst -> " : "src -> ") + e.value("translated_to", ""), e.value("kind", ""),
              e.value("state", ""), Age(now, now - e.value("age_seconds", 0)),
              Remaining(now, now + e.value("expires_in_seconds", 0))});
  }
  std::printf("%s", t.Render().c_str());
  return 0;
}

int CmdBpfCtFlush(const Globals& g) {
  json out = json::object();
  for (const char* name : {TND_MAP_CT_V4, TND_MAP_CT_V6}) {
    auto ct = CtMap::OpenPin(PinPath(g, name), name);
    if (!ct.ok()) return Fail(ct.status());
    auto n = FlushConntrack(*ct);
    if (!n.ok()) return Fail(n.status());
    out[name] = *n;
  }
  for (const char* name : {TND_MAP_NAT_V4, TND_MAP_NAT_V6}) {
    auto nat = NatMap::OpenPin(PinPath(g, name), name);
    if (!nat.ok()) return Fail(nat.status());
    auto n = FlushNat(*nat);
    if (!n.ok()) return Fail(n.status());
    out[name] = *n;
  }
  if (g.json()) PrintJson(out);
  else
    std::printf("flushed %d IPv4 and %d IPv6 conntrack entries, %d IPv4 and %d IPv6 NAT entries\n",
                out.value(TND_MAP_CT_V4, 0), out.value(TND_MAP_CT_V6, 0), out.value(TND_MAP_NAT_V4, 0),
                out.value(TND_MAP_NAT_V6, 0));
  return 0;
}

}  // namespace


// ---- endpoints --------------------------------------------------------------

struct EndpointArgs {
  int64_t id = 0;
  std::string netns, ifname, container_ifname = "eth0";
  std::vector<std::string> ips;
};

void PrintEndpoints(const json& list) {
  Table t({"ID", "IFNAME", "IFINDEX", "ADDRESSES", "MODE", "NAMESPACE", "STATE"});
  for (const auto& e : list) {
    std::vector<std::string> ips;
    for (const auto& ip : e.value("ips", json::array())) ips.push_back(ip.get<std::string>());
    t.AddRow({std::to_string(e.value("id", 0)), e.value("ifname", ""), std::to_string(e.value("ifindex", 0)),
              absl::StrJoin(ips, ","), e.value("adopted", false) ? "adopted" : "created",
              e.value("netns", "").empty() ? "-" : e.value("netns", ""), e.value("state", "")});
  }
  std::printf("%s", t.Render().c_str());
}

int CmdEndpointAdd(const Globals& g, const EndpointArgs& a) {
  if (a.id < 1 || a.id > 65535) return Fail(absl::InvalidArgumentError("--id must be in 1-65535"));
  if (a.ips.empty()) return Fail(absl::InvalidArgumentError("give --ip ADDR[,ADDR6]"));
  for (const auto& ip : a.ips)
    if (auto p = ParseIp(ip); !p.ok()) return Fail(p.status());
  json ep = {{"id", a.id}, {"ifname", a.ifname}, {"ips", a.ips}, {"container_ifname", a.container_ifname}};
  if (!a.netns.empty()) ep["netns"] = a.netns;
  auto r = CallAgent(g.api_socket, "endpoint.add", {{"endpoint", ep}});
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else
    PrintEndpoints(json::array({*r}));
  return 0;
}

int CmdEndpointList(const Globals& g) {
  auto r = CallAgent(g.api_socket, "endpoint.list", json::object());
  if (!r.ok()) return Fail(r.status());
  if (g.json())
    PrintJson(*r);
  else
    PrintEndpoints(*r);
  return 0;
}

int CmdBpfEndpointList(const Globals& g) {
  auto m = Map<tnd_ep_key, tnd_endpoint>::OpenPin(PinPath(g, TND_MAP_ENDPOINTS), TND_MAP_ENDPOINTS);
  if (!m.ok()) return Fail(m.status());
  json out = json::array();
  auto mac = [](const uint8_t* b) {
    char buf[18];
    std::snprintf(buf, sizeof(buf), "%02x:%02x:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3], b[4], b[5]);
    return std::string(buf);
  };
  auto st = m->ForEach([&](const tnd_ep_key& k, const tnd_endpoint& v) {
    char addr[INET6_ADDRSTRLEN] = {};
    inet_ntop(k.family == 4 ? AF_INET : AF_INET6, k.addr, addr, sizeof(addr));
    out.push_back({{"address", addr},
                   {"id", v.id},
                   {"ifindex", v.ifindex},
                   {"mac", mac(v.mac)},
                   {"node_mac", mac(v.node_mac)},
                   {"flags", (v.flags & TND_EP_F_ADOPTED) ? "adopted" : "-"}});
  });
  if (!st.ok()) return Fail(st);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) {
    return std::tie(a["id"], a["address"]) < std::tie(b["id"], b["address"]);
  });
  if (g.json()) {
    PrintJson(out);
    return 0;
  }
  Table t({"ADDRESS", "ENDPOINT", "IFINDEX", "MAC", "NODE MAC", "FLAGS"});
  for (const auto& e : out)
    t.AddRow({e.value("address", ""), std::to_string(e.value("id", 0)), std::to_string(e.value("ifindex", 0)),
              e.value("mac", ""), e.value("node_mac", ""), e.value("flags", "")});
  std::printf("%s", t.Render().c_str());
  return 0;
}

// ---- monitor ----------------------------------------------------------------

struct MonitorArgs {
  std::string type;       // "", "drop", "trace"
  int64_t from_endpoint = 0;
  int64_t max_events = 0;  // 0: until interrupted
  double timeout = 0;      // seconds, 0: until interrupted
};

volatile sig_atomic_t g_stop = 0;

struct MonitorState {
  const Globals* g;
  const MonitorArgs* a;
  int64_t shown = 0;
  int64_t mono_to_real_ns = 0;
  int64_t start_mono_ns = 0;
};

int OnEvent(void* ctx, void* data, size_t size) {
  auto* st = static_cast<MonitorState*>(ctx);
  absl::StatusOr<tnd_event> ev = EventFromBytes(data, size);
  if (!ev.ok()) return 0;
  const tnd_event& e = *ev;
  const MonitorArgs& a = *st->a;
  if (static_cast<int64_t>(e.ts_ns) < st->start_mono_ns) return 0;  // left in the ring from before
  if (a.type == "drop" && e.type != TND_EVENT_DROP) return 0;
  if (a.type == "trace" && e.type != TND_EVENT_TRACE) return 0;
  if (a.from_endpoint && e.src_ep != static_cast<uint32_t>(a.from_endpoint)) return 0;
  json j = DecodeEvent(e, st->mono_to_real_ns);
  if (st->g->json())
    std::printf("%s\n", j.dump().c_str());
  else
    std::printf("%s\n", EventLine(j).c_str());
  std::fflush(stdout);
  ++st->shown;
  if (a.max_events && st->shown >= a.max_events) g_stop = 1;
  return 0;
}

int CmdMonitor(const Globals& g, const MonitorArgs& a) {
  if (a.from_endpoint < 0 || a.from_endpoint > 65535)
    return Fail(absl::InvalidArgumentError("--from-endpoint must be an endpoint id in 1-65535"));
  std::string path = PinPath(g, TND_MAP_EVENTS);
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return Fail(ErrnoError(errno, absl::StrCat("open event ring buffer ", path, " (is the agent running?)")));
  UniqueFd owned(fd);
  timespec mono{}, real{};
  clock_gettime(CLOCK_MONOTONIC, &mono);
  clock_gettime(CLOCK_REALTIME, &real);
  MonitorState st{&g, &a, 0,
                  (static_cast<int64_t>(real.tv_sec) - mono.tv_sec) * 1000000000LL + (real.tv_nsec - mono.tv_nsec),
                  static_cast<int64_t>(mono.tv_sec) * 1000000000LL + mono.tv_nsec};
  ring_buffer* rb = ring_buffer__new(fd, OnEvent, &st, nullptr);
  if (!rb) return Fail(ErrnoError(errno, absl::StrCat("read event ring buffer ", path)));
  struct sigaction sa {};
  sa.sa_handler = [](int) { g_stop = 1; };
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
  if (!g.json())
    std::fprintf(stderr, "Listening for %s events%s... (Ctrl-C to stop)\n",
                 a.type.empty() ? "drop and trace" : a.type.c_str(),
                 a.from_endpoint ? absl::StrCat(" from endpoint ", a.from_endpoint).c_str() : "");
  timespec start{};
  clock_gettime(CLOCK_MONOTONIC, &start);
  int rc = 0;
  while (!g_stop) {
    int n = ring_buffer__poll(rb, 100);
    if (n < 0 && n != -EINTR) {
      rc = Fail(ErrnoError(-n, "poll event ring buffer"));
      break;
    }
    if (a.timeout > 0) {
      timespec now{};
      clock_gettime(CLOCK_MONOTONIC, &now);
      if ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 >= a.timeout) break;
    }
  }
  ring_buffer__free(rb);
  if (rc == 0 && a.max_events && st.shown < a.max_events) rc = 1;  // bounded wait ran out
  return rc;
}

int Main(int argc, char** argv) {
  Globals g;
  if (const char* e = std::getenv("TENDRIL_API_SOCKET")) g.api_socket = e;
  if (const char* e = std::getenv("TENDRIL_BPFFS_ROOT")) g.bpffs_root = e;

  CLI::App app{"tendril: inspect and control the tendril eBPF datapath", "tendril"};
  app.fallthrough();
  app.require_subcommand(1);
  app.add_option("--api-socket", g.api_socket, "agent API socket (env TENDRIL_API_SOCKET)");
  app.add_option("--bpffs-root", g.bpffs_root, "bpffs root of the pins (env TENDRIL_BPFFS_ROOT)");
  app.add_option("-o,--output", g.output, "output format")->check(CLI::IsMember({"table", "json"}));

  int rc = 0;
  auto* status = app.add_subcommand("status", "agent, attached programs, map fill levels");
  status->callback([&] { rc = CmdStatus(g); });

  auto* pf = app.add_subcommand("prefilter", "XDP prefilter: CIDRs whose traffic is dropped");
  pf->require_subcommand(1);
  std::vector<std::string> add_cidrs, del_cidrs;
  auto* pf_add = pf->add_subcommand("add", "deny traffic from CIDRs");
  pf_add->add_option("cidrs", add_cidrs, "CIDR...")->required();
  pf_add->callback([&] { rc = CmdPrefilterChange(g, "prefilter.add", add_cidrs); });
  auto* pf_del = pf->add_subcommand("delete", "stop denying CIDRs");
  pf_del->add_option("cidrs", del_cidrs, "CIDR...")->required();
  pf_del->callback([&] { rc = CmdPrefilterChange(g, "prefilter.delete", del_cidrs); });
  pf->add_subcommand("list", "denied CIDRs")->callback([&] { rc = CmdPrefilterList(g); });

  auto* metrics = app.add_subcommand("metrics", "datapath counters");
  metrics->require_subcommand(1);
  metrics->add_subcommand("list", "drops by reason and direction (read from the pinned map)")
      ->callback([&] { rc = CmdMetricsList(g); });

  ServiceArgs sa;
  int64_t svc_id = 0;
  auto* svc = app.add_subcommand("service", "services: ClusterIP (socket LB), NodePort, ExternalIP, LoadBalancer (per packet)");
  svc->require_subcommand(1);
  auto* svc_add = svc->add_subcommand("add", "declare a service");
  svc_add->add_option("--frontend", sa.frontend, "VIP:PORT/PROTO, e.g. 10.96.0.10:80/TCP or [fd00::10]:53/UDP")->required();
  svc_add->add_option("--backends", sa.backends, "ADDR:PORT[@WEIGHT],... ")->delimiter(',');
  svc_add->add_option("--type", sa.type, "ClusterIP (default), NodePort, ExternalIP or LoadBalancer");
  svc_add->add_option("--node-port", sa.node_port, "NodePort/LoadBalancer: the node port (default: allocated)")
      ->check(CLI::Range(1, 65535));
  svc_add->add_option("--external-ips", sa.external_ips, "ExternalIP/LoadBalancer: addresses,...")->delimiter(',');
  svc_add->add_option("--traffic-policy", sa.traffic_policy, "externalTrafficPolicy: Cluster (default) or Local");
  svc_add->add_option("--internal-traffic-policy", sa.internal_traffic_policy,
                      "internalTrafficPolicy (the ClusterIP): Cluster (default) or Local");
  svc_add->add_option("--health-check-port", sa.health_check_port,
                      "traffic policy Local: healthCheckNodePort (default: allocated)")
      ->check(CLI::Range(1, 65535));
  svc_add->add_option("--source-ranges", sa.source_ranges, "LoadBalancer: clients allowed on its IPs: CIDR,...")
      ->delimiter(',');
  svc_add->add_flag("--dsr{true}", sa.dsr, "remote backends answer clients directly");
  svc_add->add_option("--algorithm", sa.algorithm, "random (default) or maglev");
  svc_add->add_option("--affinity-timeout", sa.affinity, "ClientIP session affinity, seconds (0: off)")
      ->check(CLI::Range(0, 604800));
  svc_add->add_option("--id", sa.id, "service id (default: the lowest free)")->check(CLI::Range(1, 65535));
  svc_add->callback([&] { rc = CmdServiceAdd(g, sa); });
  std::string apply_file;
  auto* svc_apply = svc->add_subcommand("apply", "declare the whole set of services from a JSON file (others are removed)");
  svc_apply->add_option("-f,--file", apply_file, "JSON: an array of services as `service list -o json` prints them; - for stdin")
      ->required();
  svc_apply->callback([&] { rc = CmdServiceApply(g, apply_file); });
  auto* svc_upd = svc->add_subcommand("update", "change a service's backends, their states, algorithm or affinity");
  svc_upd->add_option("id", svc_id, "service id")->required();
  svc_upd->add_option("--backends", sa.backends, "replace the backends: ADDR:PORT[@WEIGHT],...")->delimiter(',');
  svc_upd->add_flag("--no-backends", sa.clear_backends, "remove every backend (connects are then refused)");
  svc_upd->add_option("--backend-state", sa.states, "ADDR:PORT=active|terminating|maintenance (repeatable)");
  svc_upd->add_option("--algorithm", sa.algorithm, "random or maglev");
  svc_upd->add_option("--affinity-timeout", sa.affinity, "seconds (0: off)")->check(CLI::Range(0, 604800));
  svc_upd->add_option("--traffic-policy", sa.traffic_policy, "Cluster or Local");
  svc_upd->add_option("--internal-traffic-policy", sa.internal_traffic_policy, "Cluster or Local");
  svc_upd->add_option("--external-ips", sa.external_ips, "replace the external IPs: ADDR,...")->delimiter(',');
  svc_upd->add_option("--source-ranges", sa.source_ranges, "replace the source ranges: CIDR,...")->delimiter(',');
  svc_upd->add_flag("--no-source-ranges", sa.clear_source_ranges, "allow every client again");
  svc_upd->add_option("--dsr", sa.dsr, "true or false")->check(CLI::IsMember({"true", "false"}));
  svc_upd->callback([&] { rc = CmdServiceUpdate(g, svc_id, sa); });
  auto* svc_del = svc->add_subcommand("delete", "remove a service");
  svc_del->add_option("id", svc_id, "service id");
  svc_del->add_option("--frontend", sa.frontend, "or its frontend");
  svc_del->callback([&] { rc = CmdServiceDelete(g, svc_id, sa.frontend); });
  auto* svc_get = svc->add_subcommand("get", "one service");
  svc_get->add_option("id", svc_id, "service id")->required();
  svc_get->callback([&] { rc = PrintResult(g, CallAgent(g.api_socket, "service.get", {{"id", svc_id}})); });
  svc->add_subcommand("list", "declared services")->callback([&] {
    rc = PrintResult(g, CallAgent(g.api_socket, "service.list"));
  });

  auto* bpf = app.add_subcommand("bpf", "what is in the pinned maps (works with the agent down)");
  bpf->require_subcommand(1);
  auto* lb = bpf->add_subcommand("lb", "service maps");
  lb->require_subcommand(1);
  lb->add_subcommand("list", "frontends -> backends with slot and state")->callback([&] { rc = CmdBpfLbList(g); });
  bool v6 = false;
  auto* ct = bpf->add_subcommand("ct", "conntrack of per-packet service flows");
  ct->require_subcommand(1);
  auto* ct_list = ct->add_subcommand("list", "flows: addresses, translation, TCP flags seen, age, expiry");
  ct_list->add_flag("--v6", v6, "the IPv6 table");
  ct_list->callback([&] { rc = CmdBpfCtList(g, v6); });
  ct->add_subcommand("flush", "delete every conntrack and NAT entry (flows re-choose backends)")
      ->callback([&] { rc = CmdBpfCtFlush(g); });
  auto* nat = bpf->add_subcommand("nat", "SNAT port mappings");
  nat->require_subcommand(1);
  auto* nat_list = nat->add_subcommand("list", "out: original -> node address:port; in: reply -> client");
  nat_list->add_flag("--v6", v6, "the IPv6 table");
  nat_list->callback([&] { rc = CmdBpfNatList(g, v6); });


  EndpointArgs ea;
  auto* epc = app.add_subcommand("endpoint", "endpoints (pods): veth, addresses, routes, eBPF host routing");
  epc->require_subcommand(1);
  auto* ep_add = epc->add_subcommand("add", "create an endpoint's veth in a namespace, or adopt an existing veth");
  ep_add->add_option("--id", ea.id, "endpoint id, 1-65535")->required();
  ep_add->add_option("--netns", ea.netns, "namespace to create the veth's other end in (path); omit to adopt --ifname");
  ep_add->add_option("--ifname", ea.ifname, "host-side device name")->required();
  ep_add->add_option("--ip", ea.ips, "ADDR[,ADDR6]: the endpoint's addresses")->required()->delimiter(',');
  ep_add->add_option("--container-ifname", ea.container_ifname, "device name inside the namespace (default eth0)");
  ep_add->callback([&] { rc = CmdEndpointAdd(g, ea); });
  auto* ep_del = epc->add_subcommand("delete", "remove an endpoint (and the veth the agent made)");
  ep_del->add_option("--id,id", ea.id, "endpoint id")->required();
  ep_del->callback([&] {
    if (ea.id < 1 || ea.id > 65535) {
      rc = Fail(absl::InvalidArgumentError("endpoint id must be in 1-65535"));
      return;
    }
    auto r = CallAgent(g.api_socket, "endpoint.delete", {{"id", ea.id}});
    if (!r.ok()) {
      rc = Fail(r.status());
      return;
    }
    if (g.json())
      PrintJson(*r);
    else
      std::printf("endpoint %lld deleted\n", static_cast<long long>(ea.id));
  });
  epc->add_subcommand("list", "declared endpoints")->callback([&] { rc = CmdEndpointList(g); });
  auto* bep = bpf->add_subcommand("endpoint", "endpoint map");
  bep->require_subcommand(1);
  bep->add_subcommand("list", "address -> veth ifindex, MACs, endpoint id")->callback([&] {
    rc = CmdBpfEndpointList(g);
  });

  MonitorArgs ma;
  auto* mon = app.add_subcommand("monitor", "live drop and trace events from the datapath, one line each");
  mon->add_option("--type", ma.type, "only drop or trace events")->check(CLI::IsMember({"drop", "trace"}));
  mon->add_option("--from-endpoint", ma.from_endpoint, "only events of packets from this endpoint id");
  mon->add_option("--max", ma.max_events, "stop after this many events (exit 1 if the timeout comes first)");
  mon->add_option("--timeout", ma.timeout, "stop after this many seconds");
  mon->callback([&] { rc = CmdMonitor(g, ma); });

  app.add_subcommand("version", "print the version")->callback([&] {
    std::printf("tendril %s\n", TENDRIL_VERSION);
  });

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);  // prints help or the error
    return rc == 0 ? 0 : 2;  // bad input: nothing was changed
  }
  return rc;
}

}  // namespace tendril::cli

int main(int argc, char** argv) { return tendril::cli::Main(argc, argv); }
