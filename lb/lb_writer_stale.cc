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
template <typename K, typename V>
absl::StatusOr<int> DeleteUnwanted(Map<K, V>& m, const absl::flat_hash_set<std::string>& want) {
  std::vector<K> stale;
  TND_RETURN_IF_ERROR(m.ForEach([&](const K& k, const V&) {
    if (!want.count(KeyBytes(k))) stale.push_back(k);
  }));
  for (const K& k : stale) TND_RETURN_IF_ERROR(m.Delete(k));
  return static_cast<int>(stale.size());
}

template <typename K>
bool IsMaster(const K& k) {
  return k.slot == 0;
}

}  // namespace

// The growable tables were read whole before the restore's writes
// (CacheTables): what no declared service looked up or wrote is stale.
template <typename K, typename V>
absl::StatusOr<int> DeleteUntouched(Growable<K, V>& m, bool (*first)(const K&) = nullptr) {
  if (!m.cached())
    return absl::FailedPreconditionError("stale entries are found from the cached tables: CacheTables first");
  std::vector<K> stale = m.Untouched();
  if (first) std::stable_partition(stale.begin(), stale.end(), first);
  for (const K& k : stale) TND_RETURN_IF_ERROR(m.Delete(k));
  return static_cast<int>(stale.size());
}

absl::Status LbWriter::RemoveStaleFrontends() {
  TND_ASSIGN_OR_RETURN(int n4, DeleteUntouched(maps_.svc4, &IsMaster<tnd_svc4_key>));
  TND_ASSIGN_OR_RETURN(int n6, DeleteUntouched(maps_.svc6, &IsMaster<tnd_svc6_key>));
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
  TND_ASSIGN_OR_RETURN(int revnat, DeleteUntouched(maps_.revnat));
  TND_ASSIGN_OR_RETURN(int backends, DeleteUntouched(maps_.backends));
  stats_.deletes += revnat + backends;
  return absl::OkStatus();
}

absl::Status LbWriter::RemoveStale(const std::map<ServiceId, Service>& services) {
  TND_RETURN_IF_ERROR(RemoveStaleFrontends());
  TND_RETURN_IF_ERROR(RemoveStaleRanges(services));
  return RemoveStaleByService(services);
}

}  // namespace tendril
