// The LB map writer: applies the planner's service changes to the pinned
// maps with the minimum of writes (an entry already equal is not written),
// in an order that is safe under traffic (see maps/tendril_maps.h): backends,
// reverse NAT, Maglev table, source ranges, then per frontend its slots and
// the master that publishes them; removal the other way round. It decides
// nothing: what to write comes from lb/planner.h.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/fd.h"
#include "lb/planner.h"
#include "maps/abi.h"
#include "maps/growable.h"
#include "maps/pinned_map.h"

namespace tendril {

struct LbMaps {
  // Growable (maps/growable.h): sized by LbWriter::Reserve.
  Growable<tnd_svc4_key, tnd_svc_val> svc4;
  Growable<tnd_svc6_key, tnd_svc_val> svc6;
  Growable<uint32_t, tnd_backend> backends;
  Growable<uint32_t, tnd_revnat> revnat;
  UniqueFd maglev;  // hash of maps: service id -> array of backend ids
  Map<tnd_srange_v4_key, uint32_t> srng4;
  Map<tnd_srange_v6_key, uint32_t> srng6;
  MapOps* ops = nullptr;  // every write goes through it (null: the kernel's)
  UniqueFd node;          // TND_MAP_NODE, for the generation (maps/node_gen.h); may be absent
  UniqueFd ports;         // TND_MAP_SVC_PORTS, the port filter (lb/port_refs.h); may be absent
};

// Opens the LB maps pinned under `pin_root` (by bpf_host.o, which has them
// all), their writes going through `ops` (maps/map_ops.h; null: the kernel's).
absl::StatusOr<LbMaps> OpenLbMaps(const std::string& pin_root, MapOps* ops = nullptr);

// What the maps hold when a change is written.
enum class Prior {
  // Exactly the old service's entries (what this writer wrote last), each
  // key its old or its new value: an entry the old service had with the
  // same value is not written; the others are written without a look.
  kOld,
  // Anything (a restart, or after an undo failed): each entry is read and
  // written only if it differs.
  kUnknown,
};

struct SyncStats {
  int writes = 0;
  int deletes = 0;
};

class LbWriter {
 public:
  explicit LbWriter(LbMaps maps) : maps_(std::move(maps)) {}

  // Makes the growable tables hold `needs` (within the caps of `limits`),
  // before a plan is written; with `shrink` (a restart) a table much larger
  // than needed is replaced by a smaller copy. How many were replaced.
  absl::StatusOr<int> Reserve(const MapNeeds& needs, const ServiceLimits& limits, bool shrink);
  // A restore reads the growable tables whole first (Growable::Cache) and
  // compares in memory; Uncache when it is done.
  absl::Status CacheTables();
  void UncacheTables();
  // The growable tables' sizes (max_entries): svc4, svc6, backends, revnat.
  std::vector<uint32_t> TableSizes() const;
  // Writes what `c.neu` needs and removes what only `c.old` had.
  absl::Status Write(const ServiceChange& c, Prior prior);
  // Changes that only add services (no c.old; Prior::kOld), written phase
  // by phase across all of them, each phase in batches: backends, reverse
  // NAT, Maglev tables and source ranges, every slot, then every master.
  // After an error any part may be written (the caller undoes them all).
  absl::Status WriteAdditions(const std::vector<const ServiceChange*>& adds);
  // After a restore's writes into the cached tables: removes the entries
  // that belong to none of `services` (a restart after services were
  // removed while the agent was down, or a crash half way): masters first,
  // so that a stale service stops being selected at once. In the growable
  // tables those are the entries the writes did not touch (CacheTables).
  absl::Status RemoveStale(const std::map<ServiceId, Service>& services);
  // A retired backend's entry; absent is not an error. Whether it was there.
  absl::StatusOr<bool> DeleteBackend(uint32_t id);

  // The port filter's bitmap, unless the map holds it already (then no
  // write is counted).
  absl::Status WritePorts(const tnd_svc_ports& bitmap);
  // After a change is written: cached flow paths are decided again
  // (maps/node_gen.h). A failure is logged; the caches end with their second.
  void BumpGeneration();

  // Map operations since the last ResetStats.
  const SyncStats& stats() const { return stats_; }
  void ResetStats() { stats_ = {}; }

 private:
  absl::Status WriteNew(const Service& neu, const ServiceChange& c);
  absl::Status RemoveOld(const Service& old, const ServiceChange& c);
  absl::Status RetireBackends(const Service& old, const std::vector<Backend>& removed);
  absl::Status WriteMaglev(ServiceId id, const std::vector<uint32_t>& table);
  absl::Status DropMaglev(ServiceId id);
  absl::Status PutSourceRanges(const Service* old, const Service& neu);
  absl::Status DropSourceRanges(const Service& old, const Service* neu);
  absl::Status RemoveStaleFrontends();
  absl::Status RemoveStaleRanges(const std::map<ServiceId, Service>& services);
  absl::Status RemoveStaleByService(const std::map<ServiceId, Service>& services);

  LbMaps maps_;
  SyncStats stats_;
  Prior prior_ = Prior::kUnknown;  // of the change being written
};

}  // namespace tendril
