#include "maps/conntrack.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <time.h>

#include <algorithm>
#include <map>
#include <string>
#include <tuple>

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
  // The programs read the coarse clock (bpf_ktime_get_coarse_ns: the value
  // at the last tick); the fine one can be a second ahead of it for up to a
  // tick, and a time written for "this second" would then not be theirs.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
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

// The NAT mappings of deleted SNATed service flows, found from their reply
// entries (backend -> client): the "in" entry peer -> node:port that
// restores that client (a service flow's mapping, nat.h; whichever port it
// holds, and even when the flow's forward entry already names another
// backend), and, for a mapping written as an out/in pair, its out entry.
// One walk of the NAT table.
absl::StatusOr<uint32_t> DeleteNatOf(NatMap& nat, const std::vector<tnd_ct_key>& replies) {
  auto bytes = [](const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); };
  auto flow = [&](uint8_t proto, const uint8_t* peer, uint16_t peer_port, const uint8_t* client, uint16_t client_port) {
    return absl::StrCat(proto, bytes(peer, 16), peer_port, bytes(client, 16), client_port);
  };
  absl::flat_hash_set<std::string> wanted;
  for (const tnd_ct_key& r : replies) wanted.insert(flow(r.proto, r.saddr, r.sport, r.daddr, r.dport));
  std::vector<std::pair<tnd_nat_key, tnd_nat_val>> in;
  TND_RETURN_IF_ERROR(nat.ForEach([&](const tnd_nat_key& k, const tnd_nat_val& v) {
    if (k.dir == TND_NAT_IN && (v.flags & TND_NAT_F_SERVICE) &&
        wanted.contains(flow(k.proto, k.saddr, k.sport, v.to_addr, v.to_port)))
      in.emplace_back(k, v);
  }));
  std::vector<tnd_nat_key> dead;
  for (const auto& [k, v] : in) {
    dead.push_back(k);
    // An older pair's out entry, if it maps back to this in entry.
    tnd_nat_key o = NatPartnerKey(k, v);
    TND_ASSIGN_OR_RETURN(auto ov, nat.Lookup(o));
    if (ov && ov->to_port == k.dport && memcmp(ov->to_addr, k.daddr, 16) == 0) dead.push_back(o);
  }
  uint32_t n = 0;
  for (const tnd_nat_key& k : dead) {
    auto st = nat.Delete(k);
    if (st.ok()) n++;
    else if (!absl::IsNotFound(st)) return st;
  }
  return n;
}

}  // namespace

absl::StatusOr<FlowDeleteResult> DeleteBackendFlows(CtMap& ct, NatMap* nat, const std::vector<BackendRef>& backends) {
  FlowDeleteResult r;
  // (service, protocol, backend id) of forward entries; (service, protocol,
  // address, port) of reply entries.
  absl::flat_hash_set<std::tuple<uint32_t, uint8_t, uint32_t>> by_id;
  absl::flat_hash_set<std::tuple<uint32_t, uint8_t, std::string, uint16_t>> by_addr;
  for (const BackendRef& b : backends) {
    by_id.emplace(b.svc_id, b.proto, b.id);
    by_addr.emplace(b.svc_id, b.proto, std::string(reinterpret_cast<const char*>(b.addr), 16), b.port_be);
  }
  auto is_backend = [&](const tnd_ct_key& k, const tnd_ct_val& v) {
    return by_addr.contains(
        std::make_tuple(v.svc_id, k.proto, std::string(reinterpret_cast<const char*>(k.saddr), 16), k.sport));
  };
  std::vector<tnd_ct_key> dead, snat_replies;
  TND_RETURN_IF_ERROR(ct.ForEach([&](const tnd_ct_key& k, const tnd_ct_val& v) {
    bool fwd = (v.flags & TND_CT_F_SERVICE) && by_id.contains(std::make_tuple(v.svc_id, k.proto, v.backend_id));
    bool reply = (v.flags & TND_CT_F_REPLY) && is_backend(k, v);
    if (!fwd && !reply) return;
    dead.push_back(k);
    r.flows += fwd;
    if (reply && (v.flags & TND_CT_F_SNAT)) snat_replies.push_back(k);
  }));
  for (const tnd_ct_key& k : dead) {
    TND_RETURN_IF_ERROR(ct.Delete(k));
    r.ct_entries++;
  }
  if (!nat || snat_replies.empty()) return r;
  TND_ASSIGN_OR_RETURN(r.nat_entries, DeleteNatOf(*nat, snat_replies));
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
