#include "k8s/mapping.h"

#include <algorithm>
#include <optional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "network/cidr.h"

namespace tendril::k8s {
namespace {

using nlohmann::json;

constexpr char kServiceNameLabel[] = "kubernetes.io/service-name";
constexpr char kProxyNameLabel[] = "service.kubernetes.io/service-proxy-name";
constexpr uint32_t kDefaultAffinity = 10800;  // sessionAffinityConfig's default, seconds

const json& Field(const json& j, const char* key) {
  static const json null;
  return j.is_object() && j.contains(key) ? j[key] : null;
}
std::string Str(const json& j, const char* key) {
  const json& v = Field(j, key);
  return v.is_string() ? v.get<std::string>() : std::string();
}
int64_t Int(const json& j, const char* key) {
  const json& v = Field(j, key);
  return v.is_number_integer() ? v.get<int64_t>() : 0;
}
// A condition: its value, or `dflt` when the API left it out (nil).
bool Cond(const json& conds, const char* key, bool dflt) {
  const json& v = Field(conds, key);
  return v.is_boolean() ? v.get<bool>() : dflt;
}

// The addresses of `list` (strings) of family `fam`; an invalid one: error.
absl::StatusOr<std::vector<IpAddr>> Addresses(const json& list, Family fam, const char* what) {
  std::vector<IpAddr> out;
  if (!list.is_array()) return out;
  for (const json& v : list) {
    std::string text = v.is_string() ? v.get<std::string>() : Str(v, "ip");
    if (text.empty()) continue;  // a LoadBalancer ingress by hostname only
    if (v.is_object() && Str(v, "ipMode") == "Proxy") continue;  // the LB proxies: not routed here
    auto ip = ParseIp(text);
    if (!ip.ok()) return absl::InvalidArgumentError(absl::StrCat(what, " '", text, "' is not an IP address"));
    if (ip->family == fam) out.push_back(*ip);
  }
  return out;
}

// EndpointSlices by the "namespace/name" of their Service, in slice-name order.
std::map<std::string, std::vector<const json*>> SlicesByService(const std::map<std::string, json>& slices) {
  std::map<std::string, std::vector<const json*>> out;
  for (const auto& [key, s] : slices)
    if (std::string svc = SliceService(s); !svc.empty()) out[svc].push_back(&s);
  return out;
}

int Rank(BackendState s) { return s == BackendState::kActive ? 2 : s == BackendState::kTerminating ? 1 : 0; }

// The backends of one Service port (its name and protocol) of family
// `fam`, from the Service's slices. Malformed slices are reported and left
// out; an address in two slices counts once, in its best state.
std::vector<Backend> Backends(const std::vector<const json*>& slices, const std::string& port_name,
                              const std::string& proto, Family fam, const std::string& svc_key,
                              std::vector<Skipped>* skipped) {
  struct Seen {
    BackendState state;
    std::string node;
  };
  std::map<std::pair<IpAddr, uint16_t>, Seen> seen;
  for (const json* sp : slices) {
    const json& s = *sp;
    if (Str(s, "addressType") != (fam == Family::kV4 ? "IPv4" : "IPv6")) continue;
    std::optional<int64_t> port;
    for (const json& p : Field(s, "ports").is_array() ? Field(s, "ports") : json::array())
      if (Str(p, "name") == port_name && (Str(p, "protocol").empty() ? "TCP" : Str(p, "protocol")) == proto)
        port = Int(p, "port");
    if (!port) continue;
    const std::string what = absl::StrCat("EndpointSlice ", Str(Field(s, "metadata"), "namespace"), "/",
                                          Str(Field(s, "metadata"), "name"));
    if (*port < 1 || *port > 65535) {
      skipped->push_back({what, absl::StrCat("port '", port_name, "' has no valid port number"), svc_key});
      continue;
    }
    for (const json& e : Field(s, "endpoints").is_array() ? Field(s, "endpoints") : json::array()) {
      const json& addrs = Field(e, "addresses");
      if (!addrs.is_array() || addrs.empty() || !addrs[0].is_string()) continue;
      auto ip = ParseIp(addrs[0].get<std::string>());  // kube-proxy uses the first address
      if (!ip.ok() || ip->family != fam) {
        skipped->push_back({what,
                            absl::StrCat("endpoint address '", addrs[0].dump(), "' is not an IPv",
                                         fam == Family::kV4 ? "4" : "6", " address"),
                            svc_key});
        continue;
      }
      const json& c = Field(e, "conditions");
      const bool ready = Cond(c, "ready", true), serving = Cond(c, "serving", ready),
                 terminating = Cond(c, "terminating", false);
      BackendState st = ready ? BackendState::kActive
                        : (serving && terminating) ? BackendState::kTerminating
                                                   : BackendState::kMaintenance;
      Seen now{st, Str(e, "nodeName")};
      auto [it, fresh] = seen.emplace(std::make_pair(*ip, static_cast<uint16_t>(*port)), now);
      if (!fresh && Rank(st) > Rank(it->second.state)) it->second = std::move(now);
    }
  }
  std::vector<Backend> out;
  for (const auto& [addr, s] : seen) {
    Backend b;
    b.ip = addr.first;
    b.port = addr.second;
    b.state = s.state;
    b.node = s.node;
    out.push_back(b);
  }
  return out;
}

// The fields every port of the Service shares, for one family: type,
// external addresses, policies, affinity. An error names what cannot be
// represented.
absl::Status Common(const json& svc, Family fam, Service& t) {
  const json& spec = Field(svc, "spec");
  const std::string type = Str(spec, "type").empty() ? "ClusterIP" : Str(spec, "type");
  auto ext = Addresses(Field(spec, "externalIPs"), fam, "externalIPs entry");
  if (!ext.ok()) return ext.status();
  auto lb = Addresses(Field(Field(Field(svc, "status"), "loadBalancer"), "ingress"), fam, "LoadBalancer ingress IP");
  if (!lb.ok()) return lb.status();
  std::vector<Cidr> ranges;
  for (const json& r : Field(spec, "loadBalancerSourceRanges").is_array() ? Field(spec, "loadBalancerSourceRanges")
                                                                          : json::array()) {
    auto c = ParseCidr(r.is_string() ? r.get<std::string>() : r.dump());
    if (!c.ok()) return absl::InvalidArgumentError(absl::StrCat("loadBalancerSourceRanges: ", c.status().message()));
    if (c->family == fam) ranges.push_back(*c);
  }
  t.external_ips = *ext;
  if (type == "ClusterIP") {
    t.type = ext->empty() ? ServiceType::kClusterIP : ServiceType::kExternalIP;
  } else if (type == "NodePort") {
    t.type = ext->empty() ? ServiceType::kNodePort : ServiceType::kLoadBalancer;
  } else if (type == "LoadBalancer") {
    if (!ranges.empty() && !ext->empty())
      return absl::UnimplementedError(
          "externalIPs together with loadBalancerSourceRanges: tendril would apply the ranges to the external IPs too");
    t.type = ServiceType::kLoadBalancer;
    t.external_ips.insert(t.external_ips.end(), lb->begin(), lb->end());
    t.source_ranges = ranges;
  } else {
    return absl::InvalidArgumentError(absl::StrCat("type '", type, "' is not a Service type"));
  }
  if (t.HasExternal() && Str(spec, "externalTrafficPolicy") == "Local") {
    t.traffic_policy = TrafficPolicy::kLocal;
    t.health_check_port = static_cast<uint16_t>(std::clamp<int64_t>(Int(spec, "healthCheckNodePort"), 0, 65535));
  }
  if (Str(spec, "internalTrafficPolicy") == "Local") t.internal_traffic_policy = TrafficPolicy::kLocal;
  if (Str(spec, "sessionAffinity") == "ClientIP") {
    int64_t to = Int(Field(Field(spec, "sessionAffinityConfig"), "clientIP"), "timeoutSeconds");
    t.affinity_timeout = to > 0 ? static_cast<uint32_t>(to) : kDefaultAffinity;
  }
  return absl::OkStatus();
}

// One Service's tendril services (one per ClusterIP and port), or why not.
void MapService(const std::string& key, const json& svc, const std::vector<const json*>& slices,
                const MapOptions& opts, Mapped& out) {
  const json& spec = Field(svc, "spec");
  const std::string what = "Service " + key;
  std::vector<std::string> cluster_ips;
  for (const json& ip : Field(spec, "clusterIPs").is_array() ? Field(spec, "clusterIPs") : json::array())
    if (ip.is_string()) cluster_ips.push_back(ip.get<std::string>());
  if (cluster_ips.empty() && !Str(spec, "clusterIP").empty()) cluster_ips.push_back(Str(spec, "clusterIP"));
  std::vector<Service> made;
  for (const std::string& text : cluster_ips) {
    auto ip = ParseIp(text);
    if (!ip.ok()) return out.skipped.push_back({what, absl::StrCat("clusterIP '", text, "' is not an IP address"), key});
    if (ip->family == Family::kV4 ? !opts.ipv4 : !opts.ipv6) continue;
    Service base;
    base.owner = OwnerOf(key);
    if (auto st = Common(svc, ip->family, base); !st.ok())
      return out.skipped.push_back({what, std::string(st.message()), key});
    for (const json& p : Field(spec, "ports").is_array() ? Field(spec, "ports") : json::array()) {
      const std::string proto = Str(p, "protocol").empty() ? "TCP" : Str(p, "protocol");
      const std::string pname = Str(p, "name");
      if (proto != "TCP" && proto != "UDP") {
        out.skipped.push_back({what, absl::StrCat("port '", pname, "': protocol ", proto, " is not supported"), key});
        continue;
      }
      Service t = base;
      t.frontend = {*ip, static_cast<uint16_t>(std::clamp<int64_t>(Int(p, "port"), 0, 65535)),
                    proto == "TCP" ? L4Proto::kTcp : L4Proto::kUdp};
      if (t.HasNodePort()) {
        t.node_port = static_cast<uint16_t>(std::clamp<int64_t>(Int(p, "nodePort"), 0, 65535));
        if (!t.node_port)
          return out.skipped.push_back(
              {what, absl::StrCat("port '", pname, "' has no nodePort (allocateLoadBalancerNodePorts false?)"), key});
      }
      t.backends = Backends(slices, pname, proto, ip->family, key, &out.skipped);
      if (auto st = ValidateService(t, opts.limits); !st.ok())
        return out.skipped.push_back({what, absl::StrCat(t.frontend.ToString(), ": ", st.message()), key});
      made.push_back(std::move(t));
    }
  }
  // An error in any port skips the whole Service (a half-represented one
  // would answer on some ports and not others); only ports of a protocol
  // tendril does not carry are left out alone, as reported above.
  for (Service& s : made) out.services.push_back(std::move(s));
}

}  // namespace

constexpr absl::string_view kOwnerPrefix = "k8s/";

std::string OwnerOf(const std::string& service_key) { return std::string(kOwnerPrefix) + service_key; }

std::string ServiceKeyOf(const std::string& owner) {
  return absl::StartsWith(owner, kOwnerPrefix) ? owner.substr(kOwnerPrefix.size()) : "";
}

std::string SliceService(const json& slice) {
  const json& meta = Field(slice, "metadata");
  std::string svc = Str(Field(meta, "labels"), kServiceNameLabel);
  return svc.empty() ? "" : absl::StrCat(Str(meta, "namespace"), "/", svc);
}

Mapped MapCluster(const std::map<std::string, json>& services, const std::map<std::string, json>& slices,
                  const MapOptions& opts) {
  Mapped out;
  const auto by_service = SlicesByService(slices);
  static const std::vector<const json*> none;
  for (const auto& [key, svc] : services) {
    const json& spec = Field(svc, "spec");
    const json& labels = Field(Field(svc, "metadata"), "labels");
    if (Str(spec, "type") == "ExternalName" || Str(spec, "clusterIP") == "None" ||
        (Str(spec, "clusterIP").empty() && !Field(spec, "clusterIPs").is_array()) ||
        (labels.is_object() && labels.contains(kProxyNameLabel))) {
      out.ignored++;
      continue;
    }
    auto it = by_service.find(key);
    MapService(key, svc, it == by_service.end() ? none : it->second, opts, out);
  }
  return out;
}

}  // namespace tendril::k8s
