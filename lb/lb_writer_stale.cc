// The writer's clean-up at restart: entries that belong to no declared
// service (services removed while the agent was down, or a crash half way
// through a change) are removed, masters first so that a stale service
// stops being selected at once.
#include <bpf/bpf.h>

#include <algorithm>
#include <string>

#include "absl/container/flat_hash_set.h"
#include "common/status.h"
#include "lb/lb_writer.h"
#include "lb/service_codec.h"

namespace tendril {
namespace {

// Deletes every key of `m` not in `want` (keys as bytes), those for which
// `first` is true before the others. How many went.
template <typename K, typename V, template <typename, typename> class M>
absl::StatusOr<int> DeleteUnwanted(M<K, V>& m, const absl::flat_hash_set<std::string>& want,
                                   bool (*first)(const K&) = nullptr) {
  std::vector<K> stale;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V&) {
    if (!want.count(KeyBytes(k))) stale.push_back(k);
  }));
  if (first) std::stable_partition(stale.begin(), stale.end(), first);
  for (const K& k : stale) TND_RETURN_IF_ERROR(m.Delete(k));
  return static_cast<int>(stale.size());
}

template <typename K>
bool IsMaster(const K& k) {
  return k.slot == 0;
}

}  // namespace

absl::Status LbWriter::RemoveStaleFrontends(const std::map<ServiceId, Service>& services,
                                            const std::vector<IpAddr>& node_addresses) {
  absl::flat_hash_set<std::string> want4, want6;
  for (const auto& [id, s] : services)
    for (const FrontendEntry& e : FrontendEntries(s, node_addresses))
      for (size_t slot = 0; slot <= e.slots.size(); ++slot) {
        const Frontend& f = e.frontend;
        if (f.ip.family == Family::kV4)
          want4.insert(KeyBytes(Key4(f, e.scope, static_cast<uint16_t>(slot))));
        else
          want6.insert(KeyBytes(Key6(f, e.scope, static_cast<uint16_t>(slot))));
      }
  TND_ASSIGN_OR_RETURN(int n4, DeleteUnwanted(maps_.svc4, want4, &IsMaster<tnd_svc4_key>));
  TND_ASSIGN_OR_RETURN(int n6, DeleteUnwanted(maps_.svc6, want6, &IsMaster<tnd_svc6_key>));
  stats_.deletes += n4 + n6;
  return absl::OkStatus();
}

absl::Status LbWriter::RemoveStaleRanges(const std::map<ServiceId, Service>& services) {
  absl::flat_hash_set<std::string> want4, want6;
  for (const auto& [id, s] : services)
    for (const Cidr& c : s.source_ranges) {
      if (c.family == Family::kV4)
        want4.insert(KeyBytes(Range4(id, c)));
      else
        want6.insert(KeyBytes(Range6(id, c)));
    }
  TND_ASSIGN_OR_RETURN(int n4, DeleteUnwanted(maps_.srng4, want4));
  TND_ASSIGN_OR_RETURN(int n6, DeleteUnwanted(maps_.srng6, want6));
  stats_.deletes += n4 + n6;
  return absl::OkStatus();
}

// Maglev tables, reverse NAT and backends, keyed by service or backend id.
absl::Status LbWriter::RemoveStaleByService(const std::map<ServiceId, Service>& services) {
  std::vector<uint32_t> maglev_keys;
  uint32_t k = 0, next = 0;
  for (const void* prev = nullptr; bpf_map_get_next_key(maps_.maglev.get(), prev, &next) == 0; prev = &k) {
    maglev_keys.push_back(next);
    k = next;
  }
  for (uint32_t key : maglev_keys) {
    auto it = services.find(static_cast<ServiceId>(key));
    if (it != services.end() && it->second.algorithm == Algorithm::kMaglev) continue;
    if (OpsOr(maps_.ops).Delete(maps_.maglev.get(), &key) == 0)
      stats_.deletes++;
    else if (errno != ENOENT)
      return ErrnoError(errno, absl::StrCat("delete the stale Maglev table of service ", key));
  }
  absl::flat_hash_set<std::string> want_ids, want_backends;
  for (const auto& [id, s] : services) {
    want_ids.insert(KeyBytes(static_cast<uint32_t>(id)));
    for (const Backend& b : s.backends) want_backends.insert(KeyBytes(b.id));
  }
  TND_ASSIGN_OR_RETURN(int revnat, DeleteUnwanted(maps_.revnat, want_ids));
  TND_ASSIGN_OR_RETURN(int backends, DeleteUnwanted(maps_.backends, want_backends));
  stats_.deletes += revnat + backends;
  return absl::OkStatus();
}

absl::Status LbWriter::RemoveStale(const std::map<ServiceId, Service>& services,
                                   const std::vector<IpAddr>& node_addresses) {
  TND_RETURN_IF_ERROR(RemoveStaleFrontends(services, node_addresses));
  TND_RETURN_IF_ERROR(RemoveStaleRanges(services));
  return RemoveStaleByService(services);
}

}  // namespace tendril
