// The rulesets kube-proxy programs for ClusterIP services, generated for a
// benchmark baseline: the iptables mode (iptables-restore input, both for a
// full sync and for the partial sync kube-proxy >= 1.28 does when one
// service's endpoints change) and the nftables mode of kube-proxy >= 1.29
// (nft -f input, full and incremental). The shapes follow
// pkg/proxy/iptables/proxier.go and pkg/proxy/nftables/proxier.go of
// Kubernetes: chain names, rule order, masquerade marks, the statistic /
// numgen endpoint choice, KUBE-NODEPORTS reached last through addrtype.
//
// Not a port of kube-proxy: the chain-name hash is FNV-1a (kube-proxy takes
// SHA-256; only the name's shape and uniqueness matter to the kernel), and
// only ClusterIP services over IPv4 are generated, and in iptables mode
// NodePorts (KUBE-NODEPORTS -> KUBE-EXT-*: masquerade mark, then the
// service chain).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tendril::bench {

struct KpEndpoint {
  std::string ip;
  uint16_t port = 0;
};

struct KpService {
  std::string ns, name, port_name = "http";
  std::string cluster_ip;  // IPv4
  uint16_t port = 0;
  std::string proto = "tcp";  // tcp, udp
  std::vector<KpEndpoint> endpoints;
  uint16_t node_port = 0;     // iptables mode: a NodePort service (externalTrafficPolicy Cluster)
  // "ns/name:port_name", kube-proxy's ServicePortName.
  std::string PortName() const { return ns + "/" + name + ":" + port_name; }
};

struct KpOptions {
  std::string cluster_cidr = "10.244.0.0/16";  // sources outside it are masqueraded
};

// 16 characters of [A-Z2-7] from `key`, as kube-proxy's chain-name suffixes.
std::string ChainHash(const std::string& key);
std::string SvcChain(const KpService& s);                        // KUBE-SVC-<hash>
std::string SepChain(const KpService& s, const KpEndpoint& e);   // KUBE-SEP-<hash>
std::string ExtChain(const KpService& s);                        // KUBE-EXT-<hash>

// Full iptables-restore input (filter and nat tables, the jumps from the
// built-in chains included): load without --noflush, from nothing.
std::string IptablesFull(const std::vector<KpService>& services, const KpOptions& opt = {});

// What kube-proxy's partial sync writes (iptables-restore --noflush) when
// `services[changed]`'s endpoints went from `before` to what it has now: the
// top-level chains in full, the changed service's chains, and -X for the
// endpoint chains that are gone.
std::string IptablesPartial(const std::vector<KpService>& services, size_t changed, const KpService& before,
                            const KpOptions& opt = {});

// Full nft -f input for table `ip kube-proxy` (deleted first if present).
std::string NftFull(const std::vector<KpService>& services, const KpOptions& opt = {});

// nft -f input of kube-proxy's incremental transaction for one service whose
// endpoints went from `before` to `after`.
std::string NftChange(const KpService& before, const KpService& after, const KpOptions& opt = {});

}  // namespace tendril::bench
