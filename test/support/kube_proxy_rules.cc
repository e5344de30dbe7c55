#include "test/support/kube_proxy_rules.h"

#include <cstdio>
#include <set>

#include "absl/strings/str_cat.h"

namespace tendril::bench {
namespace {

std::string Fixed10(double p) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.10f", p);
  return buf;
}

std::string EpText(const KpEndpoint& e) { return absl::StrCat(e.ip, ":", e.port); }

// kube-proxy's nftables names: "service-<8 hash chars>-<ns>/<name>/<proto>/<port name>".
std::string NftSvcChain(const KpService& s) {
  std::string id = absl::StrCat(s.ns, "/", s.name, "/", s.proto, "/", s.port_name);
  return absl::StrCat("service-", ChainHash(id).substr(0, 8), "-", id);
}

std::string NftEpChain(const KpService& s, const KpEndpoint& e) {
  std::string id = absl::StrCat(s.ns, "/", s.name, "/", s.proto, "/", s.port_name, "__", e.ip, "/", e.port);
  return absl::StrCat("endpoint-", ChainHash(id).substr(0, 8), "-", id);
}

constexpr const char* kMarkMasq = "0x4000";

void FilterTable(std::string& out, const std::vector<KpService>& services, bool builtin_jumps) {
  out += "*filter\n";
  for (const char* c : {"KUBE-SERVICES", "KUBE-EXTERNAL-SERVICES", "KUBE-FORWARD", "KUBE-NODEPORTS",
                        "KUBE-PROXY-FIREWALL"})
    absl::StrAppend(&out, ":", c, " - [0:0]\n");
  if (builtin_jumps) {
    out += "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
           "KUBE-PROXY-FIREWALL\n"
           "-A INPUT -m comment --comment \"kubernetes health check service ports\" -j KUBE-NODEPORTS\n"
           "-A INPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
           "portals\" -j KUBE-EXTERNAL-SERVICES\n"
           "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
           "KUBE-PROXY-FIREWALL\n"
           "-A FORWARD -m comment --comment \"kubernetes forwarding rules\" -j KUBE-FORWARD\n"
           "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j "
           "KUBE-SERVICES\n"
           "-A FORWARD -m conntrack --ctstate NEW -m comment --comment \"kubernetes externally-visible service "
           "portals\" -j KUBE-EXTERNAL-SERVICES\n"
           "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes load balancer firewall\" -j "
           "KUBE-PROXY-FIREWALL\n"
           "-A OUTPUT -m conntrack --ctstate NEW -m comment --comment \"kubernetes service portals\" -j "
           "KUBE-SERVICES\n";
  }
  // Services without endpoints are rejected in the filter table.
  for (const KpService& s : services)
    if (s.endpoints.empty())
      absl::StrAppend(&out, "-A KUBE-SERVICES -m comment --comment \"", s.PortName(),
                      " has no endpoints\" -d ", s.cluster_ip, "/32 -p ", s.proto, " -m ", s.proto, " --dport ",
                      s.port, " -j REJECT --reject-with icmp-port-unreachable\n");
  absl::StrAppend(&out,
                  "-A KUBE-FORWARD -m conntrack --ctstate INVALID -j DROP\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding rules\" -m mark --mark ",
                  kMarkMasq, "/", kMarkMasq,
                  " -j ACCEPT\n"
                  "-A KUBE-FORWARD -m comment --comment \"kubernetes forwarding conntrack rule\" -m conntrack "
                  "--ctstate RELATED,ESTABLISHED -j ACCEPT\n"
                  "COMMIT\n");
}

void ServiceMatch(std::string& out, const KpService& s) {
  absl::StrAppend(&out, " -d ", s.cluster_ip, "/32 -p ", s.proto, " -m ", s.proto, " --dport ", s.port);
}

void ServiceRule(std::string& out, const KpService& s) {
  if (s.endpoints.empty()) return;
  absl::StrAppend(&out, "-A KUBE-SERVICES -m comment --comment \"", s.PortName(), " cluster IP\"");
  ServiceMatch(out, s);
  absl::StrAppend(&out, " -j ", SvcChain(s), "\n");
}

// The rules of KUBE-SVC-<s> and of each KUBE-SEP-<s,e> (chains declared by the caller).
void ServiceChains(std::string& out, const KpService& s, const KpOptions& opt) {
  if (s.endpoints.empty()) return;
  std::string svc = SvcChain(s);
  if (s.node_port) {
    // From outside the node: always masqueraded (policy Cluster).
    absl::StrAppend(&out, "-A ", ExtChain(s), " -m comment --comment \"masquerade traffic for ", s.PortName(),
                    " external destinations\" -j KUBE-MARK-MASQ\n");
    absl::StrAppend(&out, "-A ", ExtChain(s), " -j ", svc, "\n");
  }
  absl::StrAppend(&out, "-A ", svc, " -m comment --comment \"", s.PortName(), " cluster IP\" ! -s ",
                  opt.cluster_cidr);
  ServiceMatch(out, s);
  out += " -j KUBE-MARK-MASQ\n";
  size_t n = s.endpoints.size();
  for (size_t i = 0; i < n; ++i) {
    const KpEndpoint& e = s.endpoints[i];
    absl::StrAppend(&out, "-A ", svc, " -m comment --comment \"", s.PortName(), " -> ", EpText(e), "\"");
    if (i + 1 < n)
      absl::StrAppend(&out, " -m statistic --mode random --probability ", Fixed10(1.0 / static_cast<double>(n - i)));
    absl::StrAppend(&out, " -j ", SepChain(s, e), "\n");
  }
  for (const KpEndpoint& e : s.endpoints) {
    std::string sep = SepChain(s, e);
    absl::StrAppend(&out, "-A ", sep, " -m comment --comment ", s.PortName(), " -s ", e.ip,
                    "/32 -j KUBE-MARK-MASQ\n");
    absl::StrAppend(&out, "-A ", sep, " -m comment --comment ", s.PortName(), " -m ", s.proto, " -p ", s.proto,
                    " -j DNAT --to-destination ", EpText(e), "\n");
  }
}

void DeclareServiceChains(std::string& out, const KpService& s) {
  if (s.endpoints.empty()) return;
  absl::StrAppend(&out, ":", SvcChain(s), " - [0:0]\n");
  if (s.node_port) absl::StrAppend(&out, ":", ExtChain(s), " - [0:0]\n");
  for (const KpEndpoint& e : s.endpoints) absl::StrAppend(&out, ":", SepChain(s, e), " - [0:0]\n");
}

void NatTop(std::string& out, const std::vector<KpService>& services, bool builtin_jumps) {
  if (builtin_jumps)
    out += "-A PREROUTING -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
           "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n"
           "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n";
  absl::StrAppend(&out, "-A KUBE-MARK-MASQ -j MARK --or-mark ", kMarkMasq, "\n");
  absl::StrAppend(&out, "-A KUBE-POSTROUTING -m mark ! --mark ", kMarkMasq, "/", kMarkMasq, " -j RETURN\n");
  absl::StrAppend(&out, "-A KUBE-POSTROUTING -j MARK --xor-mark ", kMarkMasq, "\n");
  out += "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE "
         "--random-fully\n";
  for (const KpService& s : services) ServiceRule(out, s);
  for (const KpService& s : services)
    if (s.node_port && !s.endpoints.empty())
      absl::StrAppend(&out, "-A KUBE-NODEPORTS -m comment --comment ", s.PortName(), " -m ", s.proto, " -p ", s.proto,
                      " --dport ", s.node_port, " -j ", ExtChain(s), "\n");
  out += "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be the last rule "
         "in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n";
}

constexpr const char* kNatChains[] = {"KUBE-SERVICES", "KUBE-NODEPORTS", "KUBE-POSTROUTING", "KUBE-MARK-MASQ"};

}  // namespace

std::string ChainHash(const std::string& key) {
  // Two 64-bit FNV-1a passes with different offsets give 128 bits; 80 of
  // them make the 16 base32 characters.
  uint64_t h[2] = {1469598103934665603ULL, 0x84222325cbf29ce4ULL};
  for (uint64_t& v : h)
    for (unsigned char c : key) {
      v ^= c;
      v *= 1099511628211ULL;
    }
  static constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
  std::string out;
  for (int i = 0; i < 16; ++i) {
    const uint64_t& v = h[i / 8];
    out.push_back(kAlphabet[(v >> ((i % 8) * 5)) & 31]);
  }
  return out;
}

std::string SvcChain(const KpService& s) { return "KUBE-SVC-" + ChainHash(s.PortName() + s.proto); }

std::string ExtChain(const KpService& s) { return "KUBE-EXT-" + ChainHash(s.PortName() + s.proto); }

std::string SepChain(const KpService& s, const KpEndpoint& e) {
  return "KUBE-SEP-" + ChainHash(s.PortName() + s.proto + EpText(e));
}

std::string IptablesFull(const std::vector<KpService>& services, const KpOptions& opt) {
  std::string out;
  out.reserve(services.size() * 1200 + 4096);
  FilterTable(out, services, true);
  out += "*nat\n";
  for (const char* c : kNatChains) absl::StrAppend(&out, ":", c, " - [0:0]\n");
  for (const KpService& s : services) DeclareServiceChains(out, s);
  NatTop(out, services, true);
  for (const KpService& s : services) ServiceChains(out, s, opt);
  out += "COMMIT\n";
  return out;
}

std::string IptablesPartial(const std::vector<KpService>& services, size_t changed, const KpService& before,
                            const KpOptions& opt) {
  const KpService& now = services.at(changed);
  std::string out;
  out.reserve(services.size() * 200 + 4096);
  FilterTable(out, services, false);
  out += "*nat\n";
  for (const char* c : kNatChains) absl::StrAppend(&out, ":", c, " - [0:0]\n");
  // Declaring a chain under --noflush flushes it; chains that go are
  // declared (emptied) too, then deleted with -X.
  DeclareServiceChains(out, now);
  std::set<std::string> keep;
  for (const KpEndpoint& e : now.endpoints) keep.insert(SepChain(now, e));
  std::vector<std::string> gone;
  for (const KpEndpoint& e : before.endpoints)
    if (!keep.count(SepChain(before, e))) gone.push_back(SepChain(before, e));
  if (now.endpoints.empty() && !before.endpoints.empty()) gone.push_back(SvcChain(before));
  for (const std::string& c : gone) absl::StrAppend(&out, ":", c, " - [0:0]\n");
  NatTop(out, services, false);
  ServiceChains(out, now, opt);
  for (const std::string& c : gone) absl::StrAppend(&out, "-X ", c, "\n");
  out += "COMMIT\n";
  return out;
}

namespace {

void NftServiceChains(std::string& out, const KpService& s, const KpOptions& opt) {
  if (s.endpoints.empty()) return;
  std::string svc = NftSvcChain(s);
  for (const KpEndpoint& e : s.endpoints) {
    std::string ep = NftEpChain(s, e);
    absl::StrAppend(&out, "add chain ip kube-proxy ", ep, "\n");
    absl::StrAppend(&out, "add rule ip kube-proxy ", ep, " ip saddr ", e.ip, " jump mark-for-masquerade\n");
    absl::StrAppend(&out, "add rule ip kube-proxy ", ep, " meta l4proto ", s.proto, " dnat to ", EpText(e), "\n");
  }
  absl::StrAppend(&out, "add chain ip kube-proxy ", svc, "\n");
  absl::StrAppend(&out, "add rule ip kube-proxy ", svc, " ip daddr ", s.cluster_ip, " ", s.proto, " dport ", s.port,
                  " ip saddr != ", opt.cluster_cidr, " jump mark-for-masquerade\n");
  absl::StrAppend(&out, "add rule ip kube-proxy ", svc, " numgen random mod ", s.endpoints.size(), " vmap { ");
  for (size_t i = 0; i < s.endpoints.size(); ++i)
    absl::StrAppend(&out, i ? ", " : "", i, " : goto ", NftEpChain(s, s.endpoints[i]));
  out += " }\n";
}

void NftElement(std::string& out, const KpService& s) {
  if (s.endpoints.empty())
    absl::StrAppend(&out, "add element ip kube-proxy no-endpoint-services { ", s.cluster_ip, " . ", s.proto, " . ",
                    s.port, " comment \"", s.PortName(), "\" : goto reject-chain }\n");
  else
    absl::StrAppend(&out, "add element ip kube-proxy service-ips { ", s.cluster_ip, " . ", s.proto, " . ", s.port,
                    " comment \"", s.PortName(), "\" : goto ", NftSvcChain(s), " }\n");
}

}  // namespace

std::string NftFull(const std::vector<KpService>& services, const KpOptions& opt) {
  std::string out;
  out.reserve(services.size() * 1100 + 4096);
  // "add" then "delete" makes the delete succeed whether or not the table exists.
  out += "add table ip kube-proxy\n"
         "delete table ip kube-proxy\n"
         "add table ip kube-proxy { comment \"rules for kube-proxy\" ; }\n"
         "add chain ip kube-proxy mark-for-masquerade\n";
  absl::StrAppend(&out, "add rule ip kube-proxy mark-for-masquerade mark set mark or ", kMarkMasq, "\n");
  absl::StrAppend(&out,
                  "add chain ip kube-proxy masquerading\n"
                  "add rule ip kube-proxy masquerading mark and ", kMarkMasq, " == 0 return\n",
                  "add rule ip kube-proxy masquerading mark set mark xor ", kMarkMasq, "\n",
                  "add rule ip kube-proxy masquerading masquerade fully-random\n");
  out += "add chain ip kube-proxy reject-chain { comment \"helper for @no-endpoint-services\" ; }\n"
         "add rule ip kube-proxy reject-chain reject\n"
         "add map ip kube-proxy service-ips { type ipv4_addr . inet_proto . inet_service : verdict ; comment "
         "\"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }\n"
         "add map ip kube-proxy service-nodeports { type inet_proto . inet_service : verdict ; comment \"NodePort "
         "traffic\" ; }\n"
         "add map ip kube-proxy no-endpoint-services { type ipv4_addr . inet_proto . inet_service : verdict ; "
         "comment \"vmap to drop or reject packets to services with no endpoints\" ; }\n"
         "add chain ip kube-proxy services\n"
         "add rule ip kube-proxy services ip daddr . meta l4proto . th dport vmap @service-ips\n"
         "add rule ip kube-proxy services fib daddr type local ip daddr != 127.0.0.0/8 meta l4proto . th dport "
         "vmap @service-nodeports\n"
         "add chain ip kube-proxy service-endpoints-check\n"
         "add rule ip kube-proxy service-endpoints-check ip daddr . meta l4proto . th dport vmap "
         "@no-endpoint-services\n"
         "add chain ip kube-proxy filter-forward { type filter hook forward priority -110 ; }\n"
         "add rule ip kube-proxy filter-forward ct state new jump service-endpoints-check\n"
         "add chain ip kube-proxy filter-output { type filter hook output priority -110 ; }\n"
         "add rule ip kube-proxy filter-output ct state new jump service-endpoints-check\n"
         "add chain ip kube-proxy nat-prerouting { type nat hook prerouting priority -100 ; }\n"
         "add rule ip kube-proxy nat-prerouting jump services\n"
         "add chain ip kube-proxy nat-output { type nat hook output priority -100 ; }\n"
         "add rule ip kube-proxy nat-output jump services\n"
         "add chain ip kube-proxy nat-postrouting { type nat hook postrouting priority 100 ; }\n"
         "add rule ip kube-proxy nat-postrouting jump masquerading\n";
  for (const KpService& s : services) NftServiceChains(out, s, opt);
  for (const KpService& s : services) NftElement(out, s);
  return out;
}

std::string NftChange(const KpService& before, const KpService& after, const KpOptions& opt) {
  std::string out;
  std::set<std::string> keep;
  for (const KpEndpoint& e : after.endpoints) keep.insert(NftEpChain(after, e));
  if (after.endpoints.empty()) {
    if (!before.endpoints.empty())
      absl::StrAppend(&out, "delete element ip kube-proxy service-ips { ", before.cluster_ip, " . ", before.proto,
                      " . ", before.port, " }\n");
    NftElement(out, after);
  } else {
    absl::StrAppend(&out, "add chain ip kube-proxy ", NftSvcChain(after), "\n");
    absl::StrAppend(&out, "flush chain ip kube-proxy ", NftSvcChain(after), "\n");
    std::string chains;
    NftServiceChains(chains, after, opt);
    // Endpoint chains that stay are flushed and refilled like the new ones.
    for (const KpEndpoint& e : after.endpoints)
      absl::StrAppend(&out, "add chain ip kube-proxy ", NftEpChain(after, e), "\nflush chain ip kube-proxy ",
                      NftEpChain(after, e), "\n");
    out += chains;
    if (before.endpoints.empty()) {
      absl::StrAppend(&out, "delete element ip kube-proxy no-endpoint-services { ", before.cluster_ip, " . ",
                      before.proto, " . ", before.port, " }\n");
      NftElement(out, after);
    }
  }
  for (const KpEndpoint& e : before.endpoints)
    if (!keep.count(NftEpChain(before, e)))
      absl::StrAppend(&out, "delete chain ip kube-proxy ", NftEpChain(before, e), "\n");
  if (after.endpoints.empty() && !before.endpoints.empty())
    absl::StrAppend(&out, "delete chain ip kube-proxy ", NftSvcChain(before), "\n");
  return out;
}

}  // namespace tendril::bench
