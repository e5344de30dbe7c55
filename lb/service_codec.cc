#include "lb/service_codec.h"

#include <arpa/inet.h>

#include <cstring>

namespace tendril {
namespace {

tnd_svc_val MasterValue(const Service& s, size_t count, uint8_t flags, bool no_backend_anywhere) {
  tnd_svc_val v{};
  v.count = static_cast<uint16_t>(count);
  v.svc_id = s.id;
  v.affinity_timeout = s.affinity_timeout;
  v.flags = flags;
  v.xflags = count == 0 && no_backend_anywhere ? TND_SVC_X_REJECT : 0;
  return v;
}

}  // namespace

tnd_svc4_key Key4(const Frontend& f, uint8_t scope, uint16_t slot) {
  tnd_svc4_key k{};
  std::memcpy(&k.addr, f.ip.bytes.data(), 4);
  k.port = htons(f.port);
  k.proto = static_cast<uint8_t>(f.proto);
  k.scope = scope;
  k.slot = slot;
  return k;
}

tnd_svc6_key Key6(const Frontend& f, uint8_t scope, uint16_t slot) {
  tnd_svc6_key k{};
  std::memcpy(k.addr, f.ip.bytes.data(), 16);
  k.port = htons(f.port);
  k.proto = static_cast<uint8_t>(f.proto);
  k.scope = scope;
  k.slot = slot;
  return k;
}

std::vector<FrontendEntry> FrontendEntries(const Service& s, const std::vector<IpAddr>& node_addresses) {
  const BackendSets sets = SelectBackendSets(s);
  const std::vector<uint32_t> cluster = SetSlots(s, sets.cluster);
  const bool none = cluster.empty();  // no usable backend anywhere: REJECT, not DROP
  const bool any_local = s.InternalLocal() || s.ExternalLocal();
  const std::vector<uint32_t> local = any_local ? SetSlots(s, sets.local) : std::vector<uint32_t>{};
  const uint8_t affinity = s.affinity_timeout ? TND_SVC_F_AFFINITY : 0;
  // A Maglev table holds the cluster set: Local frontends choose among their
  // slots at random instead.
  const uint8_t maglev = s.algorithm == Algorithm::kMaglev ? TND_SVC_F_MAGLEV : 0;

  std::vector<FrontendEntry> out;
  if (s.InternalLocal())
    out.push_back({s.frontend, TND_SCOPE_EXTERNAL, MasterValue(s, local.size(), affinity | TND_SVC_F_LOCAL, none), local});
  else
    out.push_back({s.frontend, TND_SCOPE_EXTERNAL, MasterValue(s, cluster.size(), affinity | maglev, none), cluster});
  if (!s.HasExternal()) return out;

  const bool elocal = s.ExternalLocal();
  const uint8_t base = TND_SVC_F_EXTERNAL | affinity | (s.dsr ? TND_SVC_F_DSR : 0);
  const uint8_t ext_flags = base | (elocal ? TND_SVC_F_LOCAL | TND_SVC_F_SCOPES : maglev);
  const std::vector<uint32_t>& ext_slots = elocal ? local : cluster;
  auto add = [&](const IpAddr& ip, uint16_t port, uint8_t extra) {
    Frontend f{ip, port, s.frontend.proto};
    for (const auto& e : out)
      if (e.frontend == f) return;  // a node address that is also an external IP
    // In-cluster traffic: every backend, whatever the external policy. Its
    // entries are written before the external master that points to them.
    if (elocal)
      out.push_back({f, TND_SCOPE_INTERNAL, MasterValue(s, cluster.size(), base | maglev | extra, none), cluster, true});
    out.push_back({f, TND_SCOPE_EXTERNAL, MasterValue(s, ext_slots.size(), ext_flags | extra, none), ext_slots, true});
  };
  if (s.HasNodePort())
    for (const IpAddr& ip : node_addresses)
      if (ip.family == s.frontend.ip.family) add(ip, s.node_port, TND_SVC_F_NODEPORT);
  const bool lb_ranges = s.type == ServiceType::kLoadBalancer && !s.source_ranges.empty();
  for (const IpAddr& ip : s.external_ips) add(ip, s.frontend.port, lb_ranges ? TND_SVC_F_SRCRANGE : 0);
  return out;
}

tnd_backend BackendValue(const Service& s, size_t index, const BackendSets& sets) {
  const Backend& b = s.backends[index];
  tnd_backend v{};
  std::memcpy(v.addr, b.ip.bytes.data(), 16);
  v.port = htons(b.port);
  v.svc_id = s.id;
  v.proto = static_cast<uint8_t>(s.frontend.proto);
  v.family = b.ip.family == Family::kV4 ? 4 : 6;
  v.state = static_cast<uint8_t>(b.state);
  v.flags = b.place == BackendPlace::kRemote ? 0
            : b.place == BackendPlace::kLocal ? TND_BACKEND_F_LOCAL
                                              : TND_BACKEND_F_LOCAL | TND_BACKEND_F_HOST;
  if (index < sets.cluster.size() && sets.cluster[index]) v.flags |= TND_BACKEND_F_SEL_CLUSTER;
  if (index < sets.local.size() && sets.local[index]) v.flags |= TND_BACKEND_F_SEL_LOCAL;
  return v;
}

tnd_svc_val SlotValue(const Service& s, uint32_t backend_id) {
  tnd_svc_val v{};
  v.backend_id = backend_id;
  v.svc_id = s.id;
  return v;
}

tnd_revnat RevnatValue(const Service& s) {
  tnd_revnat v{};
  std::memcpy(v.addr, s.frontend.ip.bytes.data(), 16);
  v.port = htons(s.frontend.port);
  v.family = s.frontend.ip.family == Family::kV4 ? 4 : 6;
  v.proto = static_cast<uint8_t>(s.frontend.proto);
  return v;
}

size_t ReadyLocalBackends(const Service& s) {
  size_t n = 0;
  for (const Backend& b : s.backends)
    if (b.state == BackendState::kActive && b.weight > 0 && b.IsLocal()) n++;
  return n;
}

namespace {
// A source range's LPM key: the service id (32 bits) then the prefix.
template <typename Key>
Key RangeKey(ServiceId svc_id, const Cidr& c) {
  Key k{};
  k.prefixlen = 32u + c.prefix_len;
  k.svc_id = htonl(svc_id);
  std::memcpy(k.addr, c.addr.data(), sizeof(k.addr));
  return k;
}
}  // namespace

tnd_srange_v4_key Range4(ServiceId svc_id, const Cidr& c) { return RangeKey<tnd_srange_v4_key>(svc_id, c); }
tnd_srange_v6_key Range6(ServiceId svc_id, const Cidr& c) { return RangeKey<tnd_srange_v6_key>(svc_id, c); }

}  // namespace tendril
