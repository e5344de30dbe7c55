#include "lb/lb_writer.h"

#include <bpf/bpf.h>

#include <algorithm>
#include <cstring>
#include <set>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "common/log.h"
#include "lb/service_codec.h"
#include "maps/node_gen.h"

namespace tendril {
namespace {

// Writes `v` at `k` unless the map holds it already: under Prior::kOld what
// it holds is `was` (null: nothing), known without a look; under kUnknown it
// is read first.
template <typename K, typename V, template <typename, typename> class M>
absl::Status Upsert(M<K, V>& m, const K& k, const V& v, const V* was, Prior prior, SyncStats& st) {
  if (prior == Prior::kOld) {
    if (was && std::memcmp(was, &v, sizeof(V)) == 0) return absl::OkStatus();
  } else {
    TND_ASSIGN_OR_RETURN(std::optional<V> cur, m.Lookup(k));
    if (cur && std::memcmp(&*cur, &v, sizeof(V)) == 0) return absl::OkStatus();
  }
  TND_RETURN_IF_ERROR(m.Update(k, v));
  st.writes++;
  return absl::OkStatus();
}

// One delete; absent is not an error (and not counted).
template <typename K, typename V, template <typename, typename> class M>
absl::Status Remove(M<K, V>& m, const K& k, SyncStats& st) {
  TND_ASSIGN_OR_RETURN(bool gone, m.Erase(k));
  st.deletes += gone;
  return absl::OkStatus();
}

absl::Status PutSvc(LbMaps& m, const FrontendEntry& e, uint16_t slot, const tnd_svc_val& v, const tnd_svc_val* was,
                    Prior prior, SyncStats& st) {
  const Frontend& f = e.frontend;
  return f.ip.family == Family::kV4 ? Upsert(m.svc4, Key4(f, e.scope, slot), v, was, prior, st)
                                    : Upsert(m.svc6, Key6(f, e.scope, slot), v, was, prior, st);
}

absl::Status DropSvc(LbMaps& m, const FrontendEntry& e, uint16_t slot, SyncStats& st) {
  const Frontend& f = e.frontend;
  return f.ip.family == Family::kV4 ? Remove(m.svc4, Key4(f, e.scope, slot), st)
                                    : Remove(m.svc6, Key6(f, e.scope, slot), st);
}

// The old entry of the same frontend and scope, if the old service had it.
const FrontendEntry* OldEntry(const ServiceChange& c, const FrontendEntry& e) {
  for (const FrontendEntry& oe : c.old_entries)
    if (oe.SameKey(e)) return &oe;
  return nullptr;
}

std::set<Cidr> RangeSet(const Service* s) {
  return s ? std::set<Cidr>(s->source_ranges.begin(), s->source_ranges.end()) : std::set<Cidr>();
}

}  // namespace

absl::StatusOr<LbMaps> OpenLbMaps(const std::string& pin_root, MapOps* ops) {
  auto path = [&](const char* name) { return pin_root + "/" + name; };
  TND_ASSIGN_OR_RETURN(auto svc4, (Growable<tnd_svc4_key, tnd_svc_val>::OpenPin(path(TND_MAP_SVC_V4), TND_MAP_SVC_V4, ops)));
  TND_ASSIGN_OR_RETURN(auto svc6, (Growable<tnd_svc6_key, tnd_svc_val>::OpenPin(path(TND_MAP_SVC_V6), TND_MAP_SVC_V6, ops)));
  TND_ASSIGN_OR_RETURN(auto backends,
                       (Growable<uint32_t, tnd_backend>::OpenPin(path(TND_MAP_BACKENDS), TND_MAP_BACKENDS, ops)));
  TND_ASSIGN_OR_RETURN(auto revnat, (Growable<uint32_t, tnd_revnat>::OpenPin(path(TND_MAP_REVNAT), TND_MAP_REVNAT, ops)));
  TND_ASSIGN_OR_RETURN(UniqueFd maglev, OpenPinnedMap(path(TND_MAP_MAGLEV), sizeof(uint32_t), sizeof(uint32_t)));
  TND_ASSIGN_OR_RETURN(auto srng4,
                       (Map<tnd_srange_v4_key, uint32_t>::OpenPin(path(TND_MAP_SRCRANGE_V4), TND_MAP_SRCRANGE_V4, ops)));
  TND_ASSIGN_OR_RETURN(auto srng6,
                       (Map<tnd_srange_v6_key, uint32_t>::OpenPin(path(TND_MAP_SRCRANGE_V6), TND_MAP_SRCRANGE_V6, ops)));
  // The node map is bpf_host.o's too; a test that loads no such object has none.
  UniqueFd node = OpenPinnedMap(path(TND_MAP_NODE), sizeof(uint32_t), sizeof(tnd_node_info)).value_or(UniqueFd());
  UniqueFd ports =
      OpenPinnedMap(path(TND_MAP_SVC_PORTS), sizeof(uint32_t), sizeof(tnd_svc_ports)).value_or(UniqueFd());
  return LbMaps{std::move(svc4),  std::move(svc6),  std::move(backends), std::move(revnat), std::move(maglev),
                std::move(srng4), std::move(srng6), ops,                 std::move(node),   std::move(ports)};
}

absl::StatusOr<int> LbWriter::Reserve(const MapNeeds& needs, const ServiceLimits& limits, bool shrink) {
  // The planner has checked the exact needs against the caps; these bounds
  // may count a changed service twice, so they are held to the caps.
  auto within = [](uint64_t need, uint32_t cap) { return std::min<uint64_t>(need, cap); };
  int replaced = 0;
  auto count = [&](absl::StatusOr<bool> r) -> absl::Status {
    if (!r.ok()) return r.status();
    replaced += *r;
    return absl::OkStatus();
  };
  const uint32_t svc_cap = limits.service_map_entries;
  TND_RETURN_IF_ERROR(count(maps_.backends.Reserve(within(needs.backends, limits.backend_map_entries),
                                                   limits.backend_map_entries, shrink)));
  TND_RETURN_IF_ERROR(count(maps_.revnat.Reserve(within(needs.services, limits.service_ids), limits.service_ids,
                                                 shrink)));
  TND_RETURN_IF_ERROR(count(maps_.svc4.Reserve(within(needs.svc_entries[0], svc_cap), svc_cap, shrink)));
  TND_RETURN_IF_ERROR(count(maps_.svc6.Reserve(within(needs.svc_entries[1], svc_cap), svc_cap, shrink)));
  return replaced;
}

absl::Status LbWriter::CacheTables() {
  TND_RETURN_IF_ERROR(maps_.svc4.Cache());
  TND_RETURN_IF_ERROR(maps_.svc6.Cache());
  TND_RETURN_IF_ERROR(maps_.backends.Cache());
  return maps_.revnat.Cache();
}

void LbWriter::UncacheTables() {
  maps_.svc4.Uncache();
  maps_.svc6.Uncache();
  maps_.backends.Uncache();
  maps_.revnat.Uncache();
}

std::vector<uint32_t> LbWriter::TableSizes() const {
  return {maps_.svc4.size(), maps_.svc6.size(), maps_.backends.size(), maps_.revnat.size()};
}

absl::Status LbWriter::DropMaglev(ServiceId id) {
  uint32_t key = id;
  if (OpsOr(maps_.ops).Delete(maps_.maglev.get(), &key) == 0) {
    stats_.deletes++;
  } else if (errno != ENOENT) {
    return ErrnoError(errno, absl::StrCat("drop the Maglev table of service ", id));
  }
  return absl::OkStatus();
}

absl::Status LbWriter::WriteMaglev(ServiceId id, const std::vector<uint32_t>& table) {
  // No backend in the set: the master's count of 0 refuses connects; the old
  // table is dropped so no stale backend is ever chosen through it.
  if (table.empty()) return DropMaglev(id);
  uint32_t key = id;
  UniqueFd inner;
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(maps_.maglev.get(), &key, &inner_id) == 0) {
    inner.Reset(bpf_map_get_fd_by_id(inner_id));
    if (inner.valid()) {
      auto info = GetMapInfo(inner.get());
      if (!info.ok() || info->max_entries != table.size()) inner.Reset();  // table size changed
    }
  }
  const std::string what = absl::StrCat("Maglev table of service ", id);
  std::vector<uint32_t> keys, values;
  if (inner.valid()) {
    // Read whole, compared in memory; only positions that changed are written.
    TND_ASSIGN_OR_RETURN(std::vector<uint32_t> cur, ReadU32Array(inner.get(), static_cast<uint32_t>(table.size())));
    for (uint32_t pos = 0; pos < table.size(); ++pos)
      if (cur[pos] != table[pos]) {
        keys.push_back(pos);
        values.push_back(table[pos]);
      }
    TND_RETURN_IF_ERROR(UpdateU32Batch(inner.get(), keys, values, what, OpsOr(maps_.ops)));
    stats_.writes += static_cast<int>(keys.size());
    return absl::OkStatus();
  }
  // A new table, filled completely before it is published in the outer map.
  // The flags of the BPF side's inner template (bpf/lib/maps_lb.h).
  LIBBPF_OPTS(bpf_map_create_opts, mmapable, .map_flags = TND_MAGLEV_INNER_FLAGS);
  int fd = OpsOr(maps_.ops).Create(BPF_MAP_TYPE_ARRAY, "tnd_maglev_tbl", 4, 4, static_cast<uint32_t>(table.size()),
                                   &mmapable);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("create Maglev table for service ", id));
  inner.Reset(fd);
  for (uint32_t pos = 0; pos < table.size(); ++pos) keys.push_back(pos);
  TND_RETURN_IF_ERROR(UpdateU32Batch(inner.get(), keys, table, what, OpsOr(maps_.ops)));
  uint32_t val = static_cast<uint32_t>(inner.get());
  if (OpsOr(maps_.ops).Update(maps_.maglev.get(), &key, &val, BPF_ANY) != 0)
    return ErrnoError(errno, absl::StrCat("publish Maglev table of service ", id));
  stats_.writes += static_cast<int>(table.size()) + 1;
  return absl::OkStatus();
}

absl::Status LbWriter::PutSourceRanges(const Service* old, const Service& neu) {
  const uint32_t one = 1;
  const std::set<Cidr> had = old && old->id == neu.id ? RangeSet(old) : std::set<Cidr>();
  for (const Cidr& c : RangeSet(&neu)) {
    const uint32_t* was = had.count(c) ? &one : nullptr;
    auto st = c.family == Family::kV4 ? Upsert(maps_.srng4, Range4(neu.id, c), one, was, prior_, stats_)
                                      : Upsert(maps_.srng6, Range6(neu.id, c), one, was, prior_, stats_);
    TND_RETURN_IF_ERROR(st);
  }
  return absl::OkStatus();
}

absl::Status LbWriter::DropSourceRanges(const Service& old, const Service* neu) {
  const std::set<Cidr> kept = neu && neu->id == old.id ? RangeSet(neu) : std::set<Cidr>();
  for (const Cidr& c : RangeSet(&old)) {
    if (kept.count(c)) continue;
    auto st = c.family == Family::kV4 ? Remove(maps_.srng4, Range4(old.id, c), stats_)
                                      : Remove(maps_.srng6, Range6(old.id, c), stats_);
    TND_RETURN_IF_ERROR(st);
  }
  return absl::OkStatus();
}

// 1. backends, 2. reverse NAT, 3. Maglev table, 4. source ranges,
// 5. per frontend: slots, then the master that publishes them.
absl::Status LbWriter::WriteNew(const Service& neu, const ServiceChange& c) {
  const Service* old = c.old ? &*c.old : nullptr;
  absl::flat_hash_map<uint32_t, tnd_backend> had;  // the old backends' values, by id
  if (old && prior_ == Prior::kOld) {
    const BackendSets old_sets = SelectBackendSets(*old);
    for (size_t j = 0; j < old->backends.size(); ++j) had[old->backends[j].id] = BackendValue(*old, j, old_sets);
  }
  const BackendSets sets = SelectBackendSets(neu);
  for (size_t i = 0; i < neu.backends.size(); ++i) {
    auto it = had.find(neu.backends[i].id);
    TND_RETURN_IF_ERROR(Upsert(maps_.backends, neu.backends[i].id, BackendValue(neu, i, sets),
                               it == had.end() ? nullptr : &it->second, prior_, stats_));
  }
  const tnd_revnat old_revnat = old ? RevnatValue(*old) : tnd_revnat{};
  TND_RETURN_IF_ERROR(Upsert(maps_.revnat, static_cast<uint32_t>(neu.id), RevnatValue(neu),
                             old && old->id == neu.id ? &old_revnat : nullptr, prior_, stats_));
  if (neu.algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(WriteMaglev(neu.id, c.maglev));
  TND_RETURN_IF_ERROR(PutSourceRanges(old, neu));
  for (const FrontendEntry& e : c.new_entries) {
    const FrontendEntry* oe = OldEntry(c, e);
    for (size_t i = 0; i < e.slots.size(); ++i) {
      const bool had_slot = oe && i < oe->slots.size();
      const tnd_svc_val was = had_slot ? SlotValue(*old, oe->slots[i]) : tnd_svc_val{};
      TND_RETURN_IF_ERROR(PutSvc(maps_, e, static_cast<uint16_t>(i + 1), SlotValue(neu, e.slots[i]),
                                 had_slot ? &was : nullptr, prior_, stats_));
    }
    TND_RETURN_IF_ERROR(PutSvc(maps_, e, 0, e.master, oe ? &oe->master : nullptr, prior_, stats_));
  }
  return absl::OkStatus();
}

// Removal, the other way round: masters of frontends that go, slots past
// the new count, Maglev table, source ranges, reverse NAT. Removed backends
// stay for their grace period (the planner retires them).
absl::Status LbWriter::RemoveOld(const Service& old, const ServiceChange& c) {
  const Service* neu = c.neu ? &*c.neu : nullptr;
  for (const FrontendEntry& oe : c.old_entries) {
    size_t keep = 0;
    bool stays = false;
    for (const FrontendEntry& ne : c.new_entries)
      if (ne.SameKey(oe)) {
        stays = true;
        keep = ne.slots.size();
      }
    if (!stays) TND_RETURN_IF_ERROR(DropSvc(maps_, oe, 0, stats_));
    for (size_t slot = keep + 1; slot <= oe.slots.size(); ++slot)
      TND_RETURN_IF_ERROR(DropSvc(maps_, oe, static_cast<uint16_t>(slot), stats_));
  }
  if (old.algorithm == Algorithm::kMaglev && (!neu || neu->algorithm != Algorithm::kMaglev))
    TND_RETURN_IF_ERROR(DropMaglev(old.id));
  TND_RETURN_IF_ERROR(DropSourceRanges(old, neu));
  if (!neu || neu->id != old.id) TND_RETURN_IF_ERROR(Remove(maps_.revnat, static_cast<uint32_t>(old.id), stats_));
  return RetireBackends(old, c.removed);
}

// Each removed backend's entry, marked retired and in no set: the per-packet
// flows pinned to it choose again (no conntrack walk in the change).
absl::Status LbWriter::RetireBackends(const Service& old, const std::vector<Backend>& removed) {
  if (removed.empty()) return absl::OkStatus();
  absl::flat_hash_set<uint32_t> gone;
  for (const Backend& b : removed) gone.insert(b.id);
  const BackendSets sets = SelectBackendSets(old);
  for (size_t j = 0; j < old.backends.size(); ++j) {
    if (!gone.contains(old.backends[j].id)) continue;
    const tnd_backend was = BackendValue(old, j, sets);
    tnd_backend v = was;
    v.flags = static_cast<uint8_t>((v.flags & ~(TND_BACKEND_F_SEL_CLUSTER | TND_BACKEND_F_SEL_LOCAL)) |
                                   TND_BACKEND_F_RETIRED);
    TND_RETURN_IF_ERROR(Upsert(maps_.backends, old.backends[j].id, v, &was, prior_, stats_));
  }
  return absl::OkStatus();
}

absl::Status LbWriter::Write(const ServiceChange& c, Prior prior) {
  prior_ = prior;
  if (c.neu) TND_RETURN_IF_ERROR(WriteNew(*c.neu, c));
  if (c.old) TND_RETURN_IF_ERROR(RemoveOld(*c.old, c));
  return absl::OkStatus();
}

absl::StatusOr<bool> LbWriter::DeleteBackend(uint32_t id) { return maps_.backends.Erase(id); }

absl::Status LbWriter::WritePorts(const tnd_svc_ports& bitmap) {
  if (!maps_.ports.valid()) return absl::OkStatus();
  const uint32_t zero = 0;
  tnd_svc_ports cur{};
  if (bpf_map_lookup_elem(maps_.ports.get(), &zero, &cur) == 0 && std::memcmp(&cur, &bitmap, sizeof(cur)) == 0)
    return absl::OkStatus();
  if (OpsOr(maps_.ops).Update(maps_.ports.get(), &zero, &bitmap, BPF_ANY) != 0)
    return ErrnoError(errno, "update map " TND_MAP_SVC_PORTS);
  stats_.writes++;
  return absl::OkStatus();
}

void LbWriter::BumpGeneration() {
  if (!maps_.node.valid()) return;
  if (absl::Status st = BumpNodeGeneration(maps_.node.get()); !st.ok()) TND_LOG_WARN(st.message());
}

}  // namespace tendril
