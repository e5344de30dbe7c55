#include "maps/conntrack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status.h"

namespace tendril {
namespace {

template <typename K, typename V>
absl::StatusOr<GcResult> Gc(Map<K, V>& m, uint32_t now) {
  GcResult r;
  std::vector<K> dead;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V& v) {
    r.scanned++;
    // Signed difference: correct across the (136-year) wrap of the seconds.
    if (static_cast<int32_t>(v.expires - now) < 0) dead.push_back(k);
  }));
  for (const K& k : dead) {
    auto st = m.Delete(k);
    if (st.ok()) r.removed++;
    else if (!absl::IsNotFound(st)) return st;  // the LRU or the data path got there first
  }
  return r;
}

template <typename K, typename V>
absl::StatusOr<uint32_t> Flush(Map<K, V>& m) {
  std::vector<K> keys;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V&) { keys.push_back(k); }));
  uint32_t n = 0;
  for (const K& k : keys) {
    auto st = m.Delete(k);
    if (st.ok()) n++;
    else if (!absl::IsNotFound(st)) return st;
  }
  return n;
}

}  // namespace

uint32_t BpfClockSeconds() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint32_t>(ts.tv_sec);
}

absl::StatusOr<GcResult> GcConntrack(CtMap& ct, uint32_t now) { return Gc(ct, now); }
// A mapping goes as a pair, once both of its entries are expired (a one-way
// flow refreshes only one: its other entry must stay), or as an orphan
// entry whose partner is gone or belongs to another flow, once expired.
absl::StatusOr<GcResult> GcNat(NatMap& nat, uint32_t now) {
  GcResult r;
  std::map<std::string, tnd_nat_val> all;
  auto bytes = [](const tnd_nat_key& k) { return std::string(reinterpret_cast<const char*>(&k), sizeof(k)); };
  TND_RETURN_IF_ERROR(nat.ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    r.scanned++;
    all.emplace(bytes(k), v);
  }));
  auto expired = [now](const tnd_nat_val& v) { return static_cast<int32_t>(v.expires - now) < 0; };
  std::vector<tnd_nat_key> dead;
  for (const auto& [kb, v] : all) {
    tnd_nat_key k;
    memcpy(&k, kb.data(), sizeof(k));
    if (!expired(v)) continue;
    tnd_nat_key other = NatPartnerKey(k, v);
    auto it = all.find(bytes(other));
    bool partner = it != all.end() && NatPartnerKey(other, it->second) == k;
    if (!partner || expired(it->second)) dead.push_back(k);
  }
  for (const tnd_nat_key& k : dead) {
    auto st = nat.Delete(k);
    if (st.ok()) r.removed++;
    else if (!absl::IsNotFound(st)) return st;
  }
  return r;
}

tnd_nat_key NatPartnerKey(const tnd_nat_key& k, const tnd_nat_val& v) {
  tnd_nat_key o{};
  o.proto = k.proto;
  if (k.dir == TND_NAT_OUT) {  // client -> peer, to node:port => in: peer -> node:port
    o.dir = TND_NAT_IN;
    memcpy(o.saddr, k.daddr, 16);
    o.sport = k.dport;
    memcpy(o.daddr, v.to_addr, 16);
    o.dport = v.to_port;
  } else {  // peer -> node:port, to client => out: client -> peer
    o.dir = TND_NAT_OUT;
    memcpy(o.saddr, v.to_addr, 16);
    o.sport = v.to_port;
    memcpy(o.daddr, k.saddr, 16);
    o.dport = k.sport;
  }
  return o;
}

namespace {

// The NAT entries of a deleted service flow: its mapping's "in" entry, which
// its forward conntrack entry names (a service flow's mapping, nat.h), kept
// only if it still restores this flow's client; or, for a mapping written
// as an out/in pair (before service mappings were in entries alone), the
// pair, found from the reply entry.
struct NatDeletes {
  std::vector<std::pair<tnd_nat_key, tnd_ct_key>> in;  // in key, the flow's forward key
  std::vector<tnd_nat_key> out;

  void AddIn(const tnd_ct_key& k, const tnd_ct_val& v, const BackendRef& b) {
    tnd_nat_key in{};
    memcpy(in.saddr, b.addr, 16);
    memcpy(in.daddr, v.snat_addr, 16);
    in.sport = b.port_be;
    in.dport = v.snat_port;
    in.proto = k.proto;
    in.dir = TND_NAT_IN;
    this->in.emplace_back(in, k);
  }
  void AddOut(const tnd_ct_key& reply) {
    tnd_nat_key o{};
    memcpy(o.saddr, reply.daddr, 16);
    memcpy(o.daddr, reply.saddr, 16);
    o.sport = reply.dport;
    o.dport = reply.sport;
    o.proto = reply.proto;
    o.dir = TND_NAT_OUT;
    out.push_back(o);
  }
  absl::StatusOr<uint32_t> Apply(NatMap& nat) const {
    uint32_t n = 0;
    for (const auto& [k, flow] : in) {
      TND_ASSIGN_OR_RETURN(auto v, nat.Lookup(k));
      if (!v || v->to_port != flow.sport || memcmp(v->to_addr, flow.saddr, 16) != 0) continue;
      auto st = nat.Delete(k);
      if (st.ok()) n++;
      else if (!absl::IsNotFound(st)) return st;
    }
    for (const tnd_nat_key& o : out) {
      TND_ASSIGN_OR_RETURN(auto ov, nat.Lookup(o));
      if (!ov) continue;
      TND_RETURN_IF_ERROR(nat.Delete(NatPartnerKey(o, *ov)));
      TND_RETURN_IF_ERROR(nat.Delete(o));
      n += 2;
    }
    return n;
  }
};

}  // namespace

absl::StatusOr<FlowDeleteResult> DeleteBackendFlows(CtMap& ct, NatMap* nat, const std::vector<BackendRef>& backends) {
  FlowDeleteResult r;
  // (service, protocol, backend id) of forward entries; (service, protocol,
  // address, port) of reply entries.
  absl::flat_hash_map<std::tuple<uint32_t, uint8_t, uint32_t>, const BackendRef*> by_id;
  absl::flat_hash_set<std::tuple<uint32_t, uint8_t, std::string, uint16_t>> by_addr;
  for (const BackendRef& b : backends) {
    by_id.emplace(std::make_tuple(b.svc_id, b.proto, b.id), &b);
    by_addr.emplace(b.svc_id, b.proto, std::string(reinterpret_cast<const char*>(b.addr), 16), b.port_be);
  }
  auto is_backend = [&](const tnd_ct_key& k, const tnd_ct_val& v) {
    return by_addr.contains(
        std::make_tuple(v.svc_id, k.proto, std::string(reinterpret_cast<const char*>(k.saddr), 16), k.sport));
  };
  std::vector<tnd_ct_key> dead;
  NatDeletes nat_dead;
  TND_RETURN_IF_ERROR(ct.ForEach([&](const tnd_ct_key& k, const tnd_ct_val& v) {
    auto b = (v.flags & TND_CT_F_SERVICE) ? by_id.find(std::make_tuple(v.svc_id, k.proto, v.backend_id)) : by_id.end();
    bool fwd = b != by_id.end();
    bool reply = (v.flags & TND_CT_F_REPLY) && is_backend(k, v);
    if (!fwd && !reply) return;
    dead.push_back(k);
    r.flows += fwd;
    if (fwd && (v.flags & TND_CT_F_SNAT) && v.snat_port != 0) nat_dead.AddIn(k, v, *b->second);
    if (reply && (v.flags & TND_CT_F_SNAT)) nat_dead.AddOut(k);  // its out key is the reply tuple reversed
  }));
  for (const tnd_ct_key& k : dead) {
    TND_RETURN_IF_ERROR(ct.Delete(k));
    r.ct_entries++;
  }
  if (!nat) return r;
  TND_ASSIGN_OR_RETURN(r.nat_entries, nat_dead.Apply(*nat));
  return r;
}

absl::StatusOr<uint64_t> DropCount(const std::string& pin, uint8_t reason) {
  TND_ASSIGN_OR_RETURN(auto m, (PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(pin, TND_MAP_METRICS)));
  uint64_t n = 0;
  TND_RETURN_IF_ERROR(m.ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& per_cpu) {
    if ((idx & 0xff) != reason) return;
    for (const auto& x : per_cpu) n += x.packets;
  }));
  return n;
}

absl::StatusOr<uint32_t> FlushConntrack(CtMap& ct) { return Flush(ct); }
absl::StatusOr<uint32_t> FlushNat(NatMap& nat) { return Flush(nat); }

}  // namespace tendril
