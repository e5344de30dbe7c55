#include "lb/services.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <time.h>

#include <cstring>
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "lb/maglev.h"
#include "lb/service_codec.h"
#include "common/clock.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {
namespace {

std::string KeyBytes(const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); }

template <typename K, typename V>
absl::Status Upsert(Map<K, V>& m, const K& k, const V& v, SyncStats& st) {
  TND_ASSIGN_OR_RETURN(std::optional<V> cur, m.Lookup(k));
  if (cur && std::memcmp(&*cur, &v, sizeof(V)) == 0) return absl::OkStatus();
  TND_RETURN_IF_ERROR(m.Update(k, v));
  st.writes++;
  return absl::OkStatus();
}

template <typename K, typename V>
absl::Status Remove(Map<K, V>& m, const K& k, SyncStats& st) {
  TND_ASSIGN_OR_RETURN(std::optional<V> cur, m.Lookup(k));
  if (!cur) return absl::OkStatus();
  TND_RETURN_IF_ERROR(m.Delete(k));
  st.deletes++;
  return absl::OkStatus();
}


std::string MaglevName(const Service& s, const Backend& b) {
  return absl::StrCat(b.Address(), "/", L4ProtoName(s.frontend.proto));
}

}  // namespace

absl::StatusOr<LbMaps> OpenLbMaps(const std::string& pin_root) {
  auto open = [&](const char* name) { return OpenPinned(pin_root + "/" + name); };
  TND_ASSIGN_OR_RETURN(UniqueFd svc4, open(TND_MAP_SVC_V4));
  TND_ASSIGN_OR_RETURN(UniqueFd svc6, open(TND_MAP_SVC_V6));
  TND_ASSIGN_OR_RETURN(UniqueFd backends, open(TND_MAP_BACKENDS));
  TND_ASSIGN_OR_RETURN(UniqueFd revnat, open(TND_MAP_REVNAT));
  TND_ASSIGN_OR_RETURN(UniqueFd maglev, open(TND_MAP_MAGLEV));
  TND_ASSIGN_OR_RETURN(UniqueFd srng4, open(TND_MAP_SRCRANGE_V4));
  TND_ASSIGN_OR_RETURN(UniqueFd srng6, open(TND_MAP_SRCRANGE_V6));
  return LbMaps{{std::move(svc4), TND_MAP_SVC_V4},         {std::move(svc6), TND_MAP_SVC_V6},
                {std::move(backends), TND_MAP_BACKENDS},   {std::move(revnat), TND_MAP_REVNAT},
                std::move(maglev),                         {std::move(srng4), TND_MAP_SRCRANGE_V4},
                {std::move(srng6), TND_MAP_SRCRANGE_V6}};
}

absl::Status ServiceManager::WriteMaglev(const Service& s) {
  std::vector<MaglevBackend> mb;
  const BackendSets sets = SelectBackendSets(s);
  for (size_t i = 0; i < s.backends.size(); ++i)
    if (sets.cluster[i]) mb.push_back({s.backends[i].id, MaglevName(s, s.backends[i]), s.backends[i].weight});
  std::vector<uint32_t> table = MaglevTable(mb, maglev_size_);
  uint32_t key = s.id;
  if (table.empty()) {
    // No backend in the set: the master's count of 0 refuses connects; the old
    // table is dropped so no stale backend is ever chosen through it.
    if (bpf_map_delete_elem(maps_.maglev.get(), &key) == 0) stats_.deletes++;
    return absl::OkStatus();
  }
  UniqueFd inner;
  uint32_t inner_id = 0;
  if (bpf_map_lookup_elem(maps_.maglev.get(), &key, &inner_id) == 0) {
    inner.Reset(bpf_map_get_fd_by_id(inner_id));
    if (inner.valid()) {
      auto info = GetMapInfo(inner.get());
      if (!info.ok() || info->max_entries != maglev_size_) inner.Reset();  // table size changed
    }
  }
  if (inner.valid()) {
    // Only positions that changed are written.
    for (uint32_t pos = 0; pos < table.size(); ++pos) {
      uint32_t cur = 0;
      if (bpf_map_lookup_elem(inner.get(), &pos, &cur) == 0 && cur == table[pos]) continue;
      if (bpf_map_update_elem(inner.get(), &pos, &table[pos], BPF_ANY) != 0)
        return ErrnoError(errno, absl::StrCat("write Maglev table of service ", s.id));
      stats_.writes++;
    }
    return absl::OkStatus();
  }
  // A new table, filled completely before it is published in the outer map.
  int fd = bpf_map_create(BPF_MAP_TYPE_ARRAY, "tnd_maglev_tbl", 4, 4, maglev_size_, nullptr);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("create Maglev table for service ", s.id));
  inner.Reset(fd);
  for (uint32_t pos = 0; pos < table.size(); ++pos)
    if (bpf_map_update_elem(inner.get(), &pos, &table[pos], BPF_ANY) != 0)
      return ErrnoError(errno, absl::StrCat("fill Maglev table of service ", s.id));
  uint32_t val = static_cast<uint32_t>(inner.get());
  if (bpf_map_update_elem(maps_.maglev.get(), &key, &val, BPF_ANY) != 0)
    return ErrnoError(errno, absl::StrCat("publish Maglev table of service ", s.id));
  stats_.writes += static_cast<int>(table.size()) + 1;
  return absl::OkStatus();
}

std::vector<FrontendEntry> ServiceManager::Entries(const Service& s) const {
  return FrontendEntries(s, node_.addresses);
}

size_t ServiceManager::LocalBackends(const Service& s) const { return ReadyLocalBackends(s); }

absl::Status ServiceManager::SyncSourceRanges(const Service* old, const Service* neu) {
  std::set<Cidr> want, had;
  if (neu)
    for (const Cidr& c : neu->source_ranges) want.insert(c);
  if (old)
    for (const Cidr& c : old->source_ranges) had.insert(c);
  uint16_t nid = neu ? neu->id : 0, oid = old ? old->id : 0;
  for (const Cidr& c : want) {
    auto st = c.family == Family::kV4 ? Upsert(maps_.srng4, Range4(nid, c), 1u, stats_)
                                      : Upsert(maps_.srng6, Range6(nid, c), 1u, stats_);
    TND_RETURN_IF_ERROR(st);
  }
  for (const Cidr& c : had) {
    if (want.count(c) && nid == oid) continue;
    auto st = c.family == Family::kV4 ? Remove(maps_.srng4, Range4(oid, c), stats_)
                                      : Remove(maps_.srng6, Range6(oid, c), stats_);
    TND_RETURN_IF_ERROR(st);
  }
  return absl::OkStatus();
}

namespace {
absl::Status PutSvc(LbMaps& m, const FrontendEntry& e, uint16_t slot, const tnd_svc_val& v, SyncStats& st) {
  const Frontend& f = e.frontend;
  return f.ip.family == Family::kV4 ? Upsert(m.svc4, Key4(f, e.scope, slot), v, st)
                                    : Upsert(m.svc6, Key6(f, e.scope, slot), v, st);
}
absl::Status DropSvc(LbMaps& m, const FrontendEntry& e, uint16_t slot, SyncStats& st) {
  const Frontend& f = e.frontend;
  return f.ip.family == Family::kV4 ? Remove(m.svc4, Key4(f, e.scope, slot), st)
                                    : Remove(m.svc6, Key6(f, e.scope, slot), st);
}
}  // namespace

absl::Status ServiceManager::Apply(const Service* old, const Service* neu) {
  return Write(old, old ? Entries(*old) : std::vector<FrontendEntry>{}, neu,
               neu ? Entries(*neu) : std::vector<FrontendEntry>{});
}

absl::Status ServiceManager::Write(const Service* old, const std::vector<FrontendEntry>& old_entries,
                                   const Service* neu, const std::vector<FrontendEntry>& new_entries) {

  if (neu) {
    // 1. backends, 2. reverse NAT, 3. Maglev table, 4. source ranges,
    // 5. per frontend: slots, then the master that publishes them.
    const BackendSets sets = SelectBackendSets(*neu);
    for (size_t i = 0; i < neu->backends.size(); ++i)
      TND_RETURN_IF_ERROR(Upsert(maps_.backends, neu->backends[i].id, BackendValue(*neu, i, sets), stats_));
    TND_RETURN_IF_ERROR(Upsert(maps_.revnat, static_cast<uint32_t>(neu->id), RevnatValue(*neu), stats_));
    if (neu->algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(WriteMaglev(*neu));
    TND_RETURN_IF_ERROR(SyncSourceRanges(nullptr, neu));
    for (const FrontendEntry& e : new_entries) {
      for (size_t i = 0; i < e.slots.size(); ++i)
        TND_RETURN_IF_ERROR(PutSvc(maps_, e, static_cast<uint16_t>(i + 1), SlotValue(*neu, e.slots[i]), stats_));
      TND_RETURN_IF_ERROR(PutSvc(maps_, e, 0, e.master, stats_));
    }
  }
  if (!old) return absl::OkStatus();

  // Removal, the other way round: masters of frontends that go, slots past
  // the new count, Maglev table, source ranges, reverse NAT, backends.
  for (const FrontendEntry& oe : old_entries) {
    size_t keep = 0;
    bool stays = false;
    for (const FrontendEntry& ne : new_entries)
      if (ne.SameKey(oe)) {
        stays = true;
        keep = ne.slots.size();
      }
    if (!stays) TND_RETURN_IF_ERROR(DropSvc(maps_, oe, 0, stats_));
    for (size_t slot = keep + 1; slot <= oe.slots.size(); ++slot)
      TND_RETURN_IF_ERROR(DropSvc(maps_, oe, static_cast<uint16_t>(slot), stats_));
  }
  if (old->algorithm == Algorithm::kMaglev && (!neu || neu->algorithm != Algorithm::kMaglev)) {
    uint32_t key = old->id;
    if (bpf_map_delete_elem(maps_.maglev.get(), &key) == 0) stats_.deletes++;
  }
  TND_RETURN_IF_ERROR(SyncSourceRanges(old, neu));
  if (!neu || neu->id != old->id)
    TND_RETURN_IF_ERROR(Remove(maps_.revnat, static_cast<uint32_t>(old->id), stats_));
  std::set<uint32_t> still;
  if (neu)
    for (const Backend& b : neu->backends) still.insert(b.id);
  std::vector<Backend> removed;
  for (const Backend& b : old->backends)
    if (!still.count(b.id)) {
      retired_.emplace(b.id, MonotonicMs());
      removed.push_back(b);
    }
  if (!removed.empty() && on_removed_) on_removed_(old->id, old->frontend.proto, removed);
  return absl::OkStatus();
}

uint16_t ServiceManager::FreeServiceId() const {
  for (uint32_t id = 1; id <= 65535; ++id)
    if (!services_.count(static_cast<uint16_t>(id))) return static_cast<uint16_t>(id);
  return 0;
}

std::set<uint32_t> ServiceManager::BackendIdsInUse(uint16_t ignore_id) const {
  std::set<uint32_t> used;
  for (const auto& [id, t] : retired_) used.insert(id);  // still in the map
  for (const auto& [id, svc] : services_)
    if (id != ignore_id)
      for (const Backend& b : svc.backends) used.insert(b.id);
  return used;
}

void ServiceManager::AssignBackendIds(Service& s, const Service* previous) const {
  std::set<uint32_t> used = BackendIdsInUse(s.id);
  AssignBackendIds(s, previous, used);
}

void ServiceManager::AssignBackendIds(Service& s, const Service* previous, std::set<uint32_t>& used) {
  for (Backend& b : s.backends) {
    if (b.id) {
      used.insert(b.id);
      continue;
    }
    if (previous)
      for (const Backend& p : previous->backends)
        if (p.ip == b.ip && p.port == b.port) b.id = p.id;
    if (b.id) used.insert(b.id);
  }
  uint32_t next = used.empty() ? 1 : *used.rbegin() + 1;
  for (Backend& b : s.backends) {
    if (b.id) continue;
    if (next == 0 || next > TND_BACKENDS_MAX) next = 1;  // wrapped: lowest free
    while (used.count(next)) ++next;
    b.id = next;
    used.insert(next++);
  }
}

// New services take ids no current service has, so that conntrack entries
// of a removed service never translate to a new one; only when those run out
// are the ids of removed services reused.
void ServiceManager::GiveNewIds(std::vector<Service>& desired) const {
  std::set<uint16_t> kept;
  for (const Service& s : desired)
    if (s.id) kept.insert(s.id);
  uint32_t cand = 1;
  std::vector<uint16_t> reusable;
  for (const auto& [id, s] : services_)
    if (!kept.count(id)) reusable.push_back(id);
  size_t reuse = 0;
  for (Service& s : desired) {
    if (s.id) continue;
    while (cand <= 65535 && services_.count(static_cast<uint16_t>(cand))) ++cand;
    s.id = cand <= 65535 ? static_cast<uint16_t>(cand++) : reusable.at(reuse++);
  }
}

// The maps must hold the new set next to what is being removed (removals
// are written first, but retired backends stay for a while).
absl::Status ServiceManager::CheckMapCapacity(const std::map<uint16_t, Service>& next) const {
  size_t entries[2] = {0, 0}, backends = retired_.size();
  for (const auto& [id, s] : next) {
    for (const FrontendEntry& e : Entries(s)) entries[e.frontend.ip.family == Family::kV4 ? 0 : 1] += 1 + e.slots.size();
    backends += s.backends.size();
  }
  for (const auto& [id, s] : services_)
    if (!next.count(id)) backends += s.backends.size();  // retired by this change
  if (entries[0] > TND_SVC_MAX || entries[1] > TND_SVC_MAX)
    return absl::ResourceExhaustedError(absl::StrCat("the services need ", std::max(entries[0], entries[1]),
                                                     " service map entries (frontends + backend slots) in one "
                                                     "family; the map holds ", TND_SVC_MAX));
  if (backends > TND_BACKENDS_MAX)
    return absl::ResourceExhaustedError(absl::StrCat("the services need ", backends,
                                                     " backend map entries (removed ones stay ",
                                                     kBackendGraceMs, " ms); the map holds ", TND_BACKENDS_MAX));
  return absl::OkStatus();
}

// Writes a checked Replace: removed services first (frees their
// frontends), then changed, then new ones.
absl::StatusOr<ReplaceStats> ServiceManager::WriteReplace(std::map<uint16_t, Service>& next) {
  ReplaceStats rs;
  std::vector<uint16_t> gone;
  for (const auto& [id, s] : services_)
    if (!next.count(id)) gone.push_back(id);
  for (uint16_t id : gone) {
    TND_RETURN_IF_ERROR(Apply(&services_.at(id), nullptr));
    services_.erase(id);
    rs.removed++;
  }
  for (auto& [id, s] : next) {
    auto prev = services_.find(id);
    if (prev == services_.end()) continue;
    int before = stats_.writes + stats_.deletes;
    TND_RETURN_IF_ERROR(Apply(&prev->second, &s));
    prev->second = s;
    if (stats_.writes + stats_.deletes != before) rs.changed++;
  }
  for (auto& [id, s] : next) {
    if (services_.count(id)) continue;
    TND_RETURN_IF_ERROR(Apply(nullptr, &s));
    services_.emplace(id, s);
    rs.added++;
  }
  rs.writes = stats_.writes;
  rs.deletes = stats_.deletes;
  return rs;
}

absl::StatusOr<ReplaceStats> ServiceManager::Replace(std::vector<Service> desired) {
  stats_ = {};
  // Everything is checked and every id chosen before the first map write.
  std::map<Frontend, uint16_t> current;
  for (const auto& [id, s] : services_) current.emplace(s.frontend, id);
  std::map<uint16_t, Service> next;
  std::set<Frontend> seen;
  for (Service& s : desired) {
    TND_RETURN_IF_ERROR(Annotate(ValidateService(s, limits_), absl::StrCat("service ", s.frontend.ToString())));
    if (!seen.insert(s.frontend).second)
      return absl::InvalidArgumentError(absl::StrCat("service ", s.frontend.ToString(), " is declared twice"));
    for (Backend& b : s.backends) b.id = 0;
    auto it = current.find(s.frontend);
    s.id = it == current.end() ? 0 : it->second;  // a declared frontend keeps its id
  }
  if (desired.size() > 65535)
    return absl::ResourceExhaustedError(absl::StrCat(desired.size(),
                                                     " services declared; at most 65535 (service ids are 16 bits)"));
  GiveNewIds(desired);
  for (Service& s : desired) next.emplace(s.id, s);
  for (auto& [id, s] : next) Place(s);
  TND_RETURN_IF_ERROR(AllocatePorts(next));
  TND_RETURN_IF_ERROR(CheckConflicts(next));
  size_t maglev = 0;
  std::vector<const Service*> changed;
  for (const auto& [id, s] : next) {
    maglev += s.algorithm == Algorithm::kMaglev;
    changed.push_back(&s);
  }
  TND_RETURN_IF_ERROR(CheckMaglevCapacity(maglev));
  TND_RETURN_IF_ERROR(CheckNewHealthPorts(changed));
  TND_RETURN_IF_ERROR(CheckMapCapacity(next));
  std::set<uint32_t> used_backends;
  for (const auto& [id, t] : retired_) used_backends.insert(id);
  for (const auto& [id, s] : services_)
    for (const Backend& b : s.backends) used_backends.insert(b.id);
  for (auto& [id, s] : next) {
    auto prev = services_.find(id);
    AssignBackendIds(s, prev == services_.end() ? nullptr : &prev->second, used_backends);
  }

  return WriteReplace(next);
}

absl::StatusOr<SyncStats> ServiceManager::Restore(std::vector<Service> services) {
  stats_ = {};
  services_.clear();
  retired_.clear();  // what no declared service names is removed below
  for (Service& s : services) {
    TND_RETURN_IF_ERROR(ValidateService(s, limits_));
    if (s.id == 0 || services_.count(s.id))
      return absl::DataLossError(absl::StrCat("state: service ", s.frontend.ToString(), " has a bad or duplicate id"));
    Place(s);
    services_[s.id] = s;
  }
  for (auto& [id, s] : services_) TND_RETURN_IF_ERROR(AllocatePorts(s, &s));
  TND_RETURN_IF_ERROR(CheckConflicts(services_));
  std::set<uint32_t> used_backends;
  for (const auto& [id, s] : services_)
    for (const Backend& b : s.backends)
      if (b.id) used_backends.insert(b.id);
  for (auto& [id, s] : services_) {
    AssignBackendIds(s, nullptr, used_backends);
    TND_RETURN_IF_ERROR(Apply(nullptr, &s));
  }
  TND_RETURN_IF_ERROR(RemoveStale());
  return stats_;
}

// Entries that belong to no declared service (a restart after services were
// removed while the agent was down, or a crash half way): removed, masters
// first so that a stale service stops being selected at once.
absl::Status ServiceManager::RemoveStale() {
  std::set<std::string> want4, want6;
  std::set<uint32_t> want_backends, want_ids;
  std::set<std::string> want_ranges;
  for (const auto& [id, s] : services_) {
    for (const FrontendEntry& e : Entries(s)) {
      for (size_t slot = 0; slot <= e.slots.size(); ++slot) {
        if (e.frontend.ip.family == Family::kV4) {
          auto k = Key4(e.frontend, e.scope, static_cast<uint16_t>(slot));
          want4.insert(KeyBytes(&k, sizeof(k)));
        } else {
          auto k = Key6(e.frontend, e.scope, static_cast<uint16_t>(slot));
          want6.insert(KeyBytes(&k, sizeof(k)));
        }
      }
    }
    for (const Cidr& c : s.source_ranges) {
      if (c.family == Family::kV4) {
        auto k = Range4(id, c);
        want_ranges.insert(KeyBytes(&k, sizeof(k)));
      } else {
        auto k = Range6(id, c);
        want_ranges.insert(KeyBytes(&k, sizeof(k)));
      }
    }
    for (const Backend& b : s.backends) want_backends.insert(b.id);
    want_ids.insert(id);
  }
  std::vector<tnd_srange_v4_key> stale_r4;
  std::vector<tnd_srange_v6_key> stale_r6;
  TND_RETURN_IF_ERROR(maps_.srng4.ForEach([&](const tnd_srange_v4_key& k, const uint32_t&) {
    if (!want_ranges.count(KeyBytes(&k, sizeof(k)))) stale_r4.push_back(k);
  }));
  TND_RETURN_IF_ERROR(maps_.srng6.ForEach([&](const tnd_srange_v6_key& k, const uint32_t&) {
    if (!want_ranges.count(KeyBytes(&k, sizeof(k)))) stale_r6.push_back(k);
  }));
  std::vector<tnd_svc4_key> stale4;
  std::vector<tnd_svc6_key> stale6;
  std::vector<uint32_t> stale_backends, stale_revnat;
  // Masters go first so that a stale service stops being selected at once.
  TND_RETURN_IF_ERROR(maps_.svc4.ForEach([&](const tnd_svc4_key& k, const tnd_svc_val&) {
    if (!want4.count(std::string(reinterpret_cast<const char*>(&k), sizeof(k)))) stale4.push_back(k);
  }));
  TND_RETURN_IF_ERROR(maps_.svc6.ForEach([&](const tnd_svc6_key& k, const tnd_svc_val&) {
    if (!want6.count(std::string(reinterpret_cast<const char*>(&k), sizeof(k)))) stale6.push_back(k);
  }));
  std::stable_partition(stale4.begin(), stale4.end(), [](const auto& k) { return k.slot == 0; });
  std::stable_partition(stale6.begin(), stale6.end(), [](const auto& k) { return k.slot == 0; });
  for (const auto& k : stale4) TND_RETURN_IF_ERROR(Remove(maps_.svc4, k, stats_));
  for (const auto& k : stale6) TND_RETURN_IF_ERROR(Remove(maps_.svc6, k, stats_));
  for (const auto& k : stale_r4) TND_RETURN_IF_ERROR(Remove(maps_.srng4, k, stats_));
  for (const auto& k : stale_r6) TND_RETURN_IF_ERROR(Remove(maps_.srng6, k, stats_));
  std::vector<uint32_t> maglev_keys;
  {
    uint32_t k, next;
    const void* prev = nullptr;
    while (bpf_map_get_next_key(maps_.maglev.get(), prev, &next) == 0) {
      maglev_keys.push_back(next);
      k = next;
      prev = &k;
    }
  }
  for (uint32_t k : maglev_keys) {
    auto it = services_.find(static_cast<uint16_t>(k));
    if (it == services_.end() || it->second.algorithm != Algorithm::kMaglev)
      if (bpf_map_delete_elem(maps_.maglev.get(), &k) == 0) stats_.deletes++;
  }
  TND_RETURN_IF_ERROR(maps_.revnat.ForEach([&](const uint32_t& id, const tnd_revnat&) {
    if (!want_ids.count(id)) stale_revnat.push_back(id);
  }));
  for (uint32_t id : stale_revnat) TND_RETURN_IF_ERROR(Remove(maps_.revnat, id, stats_));
  TND_RETURN_IF_ERROR(maps_.backends.ForEach([&](const uint32_t& id, const tnd_backend&) {
    if (!want_backends.count(id)) stale_backends.push_back(id);
  }));
  for (uint32_t id : stale_backends) TND_RETURN_IF_ERROR(Remove(maps_.backends, id, stats_));
  return absl::OkStatus();
}

absl::StatusOr<Service> ServiceManager::Add(Service s) {
  stats_ = {};
  TND_RETURN_IF_ERROR(ValidateService(s, limits_));
  if (s.id != 0 && services_.count(s.id))
    return absl::AlreadyExistsError(absl::StrCat("service id ", s.id, " is taken by ",
                                                 services_.at(s.id).frontend.ToString()));
  TND_RETURN_IF_ERROR(CheckConflicts(s, 0));
  for (Backend& b : s.backends) b.id = 0;  // ids are the agent's to give
  if (s.id == 0) s.id = FreeServiceId();
  if (s.id == 0) return absl::ResourceExhaustedError("all 65535 service ids are in use");
  Place(s);
  TND_RETURN_IF_ERROR(AllocatePorts(s, nullptr));
  TND_RETURN_IF_ERROR(CheckConflicts(s, s.id));
  if (s.algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(CheckMaglevCapacity(MaglevServices(0) + 1));
  TND_RETURN_IF_ERROR(CheckNewHealthPorts({&s}));
  AssignBackendIds(s, nullptr);
  if (auto st = Apply(nullptr, &s); !st.ok()) {
    (void)Apply(&s, nullptr);
    return st;
  }
  services_[s.id] = s;
  return s;
}

absl::StatusOr<Service> ServiceManager::Update(uint16_t id, const ServiceUpdate& u) {
  stats_ = {};
  auto it = services_.find(id);
  if (it == services_.end()) return absl::NotFoundError(absl::StrCat("no service with id ", id));
  const Service old = it->second;
  Service neu = old;
  if (u.backends) {
    neu.backends.clear();
    for (Backend b : *u.backends) {
      b.id = 0;
      for (const Backend& p : old.backends)
        if (p.ip == b.ip && p.port == b.port) b.state = p.state;  // keep what was set on it
      neu.backends.push_back(b);
    }
  }
  for (const BackendStateChange& c : u.states) {
    bool found = false;
    for (Backend& b : neu.backends)
      if (b.ip == c.ip && b.port == c.port) {
        b.state = c.state;
        found = true;
      }
    if (!found)
      return absl::NotFoundError(absl::StrCat("service ", id, " has no backend ", HostPort(c.ip, c.port)));
  }
  if (u.algorithm) neu.algorithm = *u.algorithm;
  if (u.affinity_timeout) neu.affinity_timeout = *u.affinity_timeout;
  if (u.traffic_policy) neu.traffic_policy = *u.traffic_policy;
  if (u.internal_traffic_policy) neu.internal_traffic_policy = *u.internal_traffic_policy;
  if (!neu.ExternalLocal()) neu.health_check_port = 0;
  if (u.source_ranges) neu.source_ranges = *u.source_ranges;
  if (u.external_ips) neu.external_ips = *u.external_ips;
  if (u.dsr) neu.dsr = *u.dsr;
  TND_RETURN_IF_ERROR(ValidateService(neu, limits_));
  Place(neu);
  TND_RETURN_IF_ERROR(AllocatePorts(neu, &old));
  TND_RETURN_IF_ERROR(CheckConflicts(neu, id));
  if (neu.algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(CheckMaglevCapacity(MaglevServices(id) + 1));
  TND_RETURN_IF_ERROR(CheckNewHealthPorts({&neu}));
  AssignBackendIds(neu, &old);
  if (auto st = Apply(&old, &neu); !st.ok()) {
    (void)Apply(&neu, &old);
    return st;
  }
  it->second = neu;
  return neu;
}

absl::StatusOr<Service> ServiceManager::Delete(uint16_t id) {
  stats_ = {};
  auto it = services_.find(id);
  if (it == services_.end()) return absl::NotFoundError(absl::StrCat("no service with id ", id));
  Service old = it->second;
  if (auto st = Apply(&old, nullptr); !st.ok()) {
    (void)Apply(nullptr, &old);
    return st;
  }
  services_.erase(it);
  return old;
}

absl::StatusOr<uint16_t> ServiceManager::IdOf(const Frontend& f) const {
  for (const auto& [id, s] : services_)
    for (const FrontendEntry& e : Entries(s))
      if (e.frontend == f) return id;
  return absl::NotFoundError(absl::StrCat("no service with frontend ", f.ToString()));
}

const Service* ServiceManager::Get(uint16_t id) const {
  auto it = services_.find(id);
  return it == services_.end() ? nullptr : &it->second;
}

std::vector<Service> ServiceManager::List() const {
  std::vector<Service> out;
  for (const auto& [id, s] : services_) out.push_back(s);
  return out;
}

}  // namespace tendril
