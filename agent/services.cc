#include "agent/services.h"

#include <arpa/inet.h>
#include <bpf/bpf.h>

#include <cstring>
#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "agent/maglev.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {
namespace {

tnd_svc4_key Key4(const Frontend& f, uint16_t slot) {
  tnd_svc4_key k{};
  std::memcpy(&k.addr, f.ip.bytes.data(), 4);
  k.port = htons(f.port);
  k.proto = static_cast<uint8_t>(f.proto);
  k.slot = slot;
  return k;
}

tnd_svc6_key Key6(const Frontend& f, uint16_t slot) {
  tnd_svc6_key k{};
  std::memcpy(k.addr, f.ip.bytes.data(), 16);
  k.port = htons(f.port);
  k.proto = static_cast<uint8_t>(f.proto);
  k.slot = slot;
  return k;
}

tnd_backend BackendValue(const Service& s, const Backend& b) {
  tnd_backend v{};
  std::memcpy(v.addr, b.ip.bytes.data(), 16);
  v.port = htons(b.port);
  v.svc_id = s.id;
  v.proto = static_cast<uint8_t>(s.frontend.proto);
  v.family = b.ip.family == Family::kV4 ? 4 : 6;
  v.state = static_cast<uint8_t>(b.state);
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

tnd_svc_val MasterValue(const Service& s, size_t count) {
  tnd_svc_val v{};
  v.count = static_cast<uint16_t>(count);
  v.svc_id = s.id;
  v.affinity_timeout = s.affinity_timeout;
  v.flags = static_cast<uint8_t>((s.algorithm == Algorithm::kMaglev ? TND_SVC_F_MAGLEV : 0) |
                                 (s.affinity_timeout ? TND_SVC_F_AFFINITY : 0));
  return v;
}

tnd_svc_val SlotValue(const Service& s, uint32_t backend_id) {
  tnd_svc_val v{};
  v.backend_id = backend_id;
  v.svc_id = s.id;
  return v;
}

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

absl::Status ServiceManager::WriteMaglev(const Service& s) {
  std::vector<MaglevBackend> mb;
  for (const Backend& b : s.backends)
    if (b.state == BackendState::kActive) mb.push_back({b.id, MaglevName(s, b), b.weight});
  std::vector<uint32_t> table = MaglevTable(mb, maglev_size_);
  uint32_t key = s.id;
  if (table.empty()) {
    // No active backend: the master's count of 0 refuses connects; the old
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

absl::Status ServiceManager::Apply(const Service* old, const Service* neu) {
  const bool v4_old = old && old->frontend.ip.family == Family::kV4;
  const bool v4_new = neu && neu->frontend.ip.family == Family::kV4;
  size_t old_count = old ? ActiveSlots(*old).size() : 0;
  size_t new_count = 0;
  bool same_frontend = old && neu && old->frontend == neu->frontend;

  if (neu) {
    // 1. backends, 2. reverse NAT, 3. Maglev table, 4. slots, 5. master.
    for (const Backend& b : neu->backends)
      TND_RETURN_IF_ERROR(Upsert(maps_.backends, b.id, BackendValue(*neu, b), stats_));
    TND_RETURN_IF_ERROR(Upsert(maps_.revnat, static_cast<uint32_t>(neu->id), RevnatValue(*neu), stats_));
    if (neu->algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(WriteMaglev(*neu));
    std::vector<uint32_t> slots = ActiveSlots(*neu);
    new_count = slots.size();
    for (size_t i = 0; i < slots.size(); ++i) {
      uint16_t slot = static_cast<uint16_t>(i + 1);
      absl::Status s = v4_new ? Upsert(maps_.svc4, Key4(neu->frontend, slot), SlotValue(*neu, slots[i]), stats_)
                              : Upsert(maps_.svc6, Key6(neu->frontend, slot), SlotValue(*neu, slots[i]), stats_);
      TND_RETURN_IF_ERROR(s);
    }
    TND_RETURN_IF_ERROR(v4_new ? Upsert(maps_.svc4, Key4(neu->frontend, 0), MasterValue(*neu, new_count), stats_)
                               : Upsert(maps_.svc6, Key6(neu->frontend, 0), MasterValue(*neu, new_count), stats_));
  }
  if (!old) return absl::OkStatus();

  // Removal, the other way round: master (if the service goes), slots past
  // the new count, Maglev table, reverse NAT, backends.
  size_t keep = same_frontend ? new_count : 0;
  for (size_t slot = same_frontend ? keep + 1 : 0; slot <= old_count; ++slot) {
    auto s = v4_old ? Remove(maps_.svc4, Key4(old->frontend, static_cast<uint16_t>(slot)), stats_)
                    : Remove(maps_.svc6, Key6(old->frontend, static_cast<uint16_t>(slot)), stats_);
    TND_RETURN_IF_ERROR(s);
  }
  if (old->algorithm == Algorithm::kMaglev && (!neu || neu->algorithm != Algorithm::kMaglev)) {
    uint32_t key = old->id;
    if (bpf_map_delete_elem(maps_.maglev.get(), &key) == 0) stats_.deletes++;
  }
  if (!neu || neu->id != old->id)
    TND_RETURN_IF_ERROR(Remove(maps_.revnat, static_cast<uint32_t>(old->id), stats_));
  std::set<uint32_t> still;
  if (neu)
    for (const Backend& b : neu->backends) still.insert(b.id);
  for (const Backend& b : old->backends)
    if (!still.count(b.id)) TND_RETURN_IF_ERROR(Remove(maps_.backends, b.id, stats_));
  return absl::OkStatus();
}

absl::Status ServiceManager::CheckConflicts(const Service& s, uint16_t ignore_id) const {
  for (const auto& [id, other] : services_) {
    if (id == ignore_id) continue;
    if (other.frontend == s.frontend)
      return absl::AlreadyExistsError(
          absl::StrCat("frontend ", s.frontend.ToString(), " is already service ", id));
  }
  return absl::OkStatus();
}

uint16_t ServiceManager::FreeServiceId() const {
  for (uint32_t id = 1; id <= 65535; ++id)
    if (!services_.count(static_cast<uint16_t>(id))) return static_cast<uint16_t>(id);
  return 0;
}

void ServiceManager::AssignBackendIds(Service& s, const Service* previous) const {
  std::set<uint32_t> used;
  for (const auto& [id, svc] : services_)
    if (id != s.id)
      for (const Backend& b : svc.backends) used.insert(b.id);
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

absl::StatusOr<SyncStats> ServiceManager::Restore(std::vector<Service> services) {
  stats_ = {};
  services_.clear();
  for (Service& s : services) {
    TND_RETURN_IF_ERROR(ValidateService(s, limits_));
    TND_RETURN_IF_ERROR(CheckConflicts(s, s.id));
    if (s.id == 0 || services_.count(s.id))
      return absl::DataLossError(absl::StrCat("state: service ", s.frontend.ToString(), " has a bad or duplicate id"));
    services_[s.id] = s;
  }
  for (auto& [id, s] : services_) {
    AssignBackendIds(s, nullptr);
    TND_RETURN_IF_ERROR(Apply(nullptr, &s));
  }
  // Garbage: entries of services that are no longer declared.
  std::set<std::string> want4, want6;
  std::set<uint32_t> want_backends, want_ids;
  for (const auto& [id, s] : services_) {
    size_t n = ActiveSlots(s).size();
    for (size_t slot = 0; slot <= n; ++slot) {
      if (s.frontend.ip.family == Family::kV4) {
        auto k = Key4(s.frontend, static_cast<uint16_t>(slot));
        want4.insert(std::string(reinterpret_cast<const char*>(&k), sizeof(k)));
      } else {
        auto k = Key6(s.frontend, static_cast<uint16_t>(slot));
        want6.insert(std::string(reinterpret_cast<const char*>(&k), sizeof(k)));
      }
    }
    for (const Backend& b : s.backends) want_backends.insert(b.id);
    want_ids.insert(id);
  }
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
  return stats_;
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
  for (const auto& [addr, state] : u.states) {
    auto hp = ParseHostPort(addr);
    if (!hp.ok()) return hp.status();
    bool found = false;
    for (Backend& b : neu.backends)
      if (b.ip == hp->first && b.port == hp->second) {
        b.state = state;
        found = true;
      }
    if (!found)
      return absl::NotFoundError(absl::StrCat("service ", id, " has no backend ", addr));
  }
  if (u.algorithm) neu.algorithm = *u.algorithm;
  if (u.affinity_timeout) neu.affinity_timeout = *u.affinity_timeout;
  TND_RETURN_IF_ERROR(ValidateService(neu, limits_));
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
    if (s.frontend == f) return id;
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
