// The writer's batched path: many services added at once (an apply from
// nothing, a controller's first sync) are written phase by phase across all
// of them, each phase in BPF_MAP_UPDATE_BATCH calls, instead of a syscall
// per entry. The order stays safe under traffic: every backend, reverse-NAT
// entry, Maglev table and source range exists before the first slot, and
// every slot before the first master publishes its service.
#include <vector>

#include "common/status.h"
#include "lb/lb_writer.h"
#include "lb/service_codec.h"

namespace tendril {
namespace {

template <typename K>
struct Entries {
  std::vector<K> keys;
  std::vector<tnd_svc_val> values;
};

// Service map entries by family.
struct FrontendBatch {
  Entries<tnd_svc4_key> v4;
  Entries<tnd_svc6_key> v6;
  void Add(const FrontendEntry& e, uint16_t slot, const tnd_svc_val& v) {
    if (e.frontend.ip.family == Family::kV4) {
      v4.keys.push_back(Key4(e.frontend, e.scope, slot));
      v4.values.push_back(v);
    } else {
      v6.keys.push_back(Key6(e.frontend, e.scope, slot));
      v6.values.push_back(v);
    }
  }
  absl::Status Write(LbMaps& m, SyncStats& st) const {
    TND_RETURN_IF_ERROR(m.svc4.UpdateBatch(v4.keys, v4.values));
    TND_RETURN_IF_ERROR(m.svc6.UpdateBatch(v6.keys, v6.values));
    st.writes += static_cast<int>(v4.keys.size() + v6.keys.size());
    return absl::OkStatus();
  }
};

}  // namespace

absl::Status LbWriter::WriteAdditions(const std::vector<const ServiceChange*>& adds) {
  prior_ = Prior::kOld;  // an added service's keys are not in the maps
  std::vector<uint32_t> backend_ids, revnat_ids;
  std::vector<tnd_backend> backends;
  std::vector<tnd_revnat> revnats;
  FrontendBatch slots, masters;
  for (const ServiceChange* c : adds) {
    const Service& s = *c->neu;
    const BackendSets sets = SelectBackendSets(s);
    for (size_t i = 0; i < s.backends.size(); ++i) {
      backend_ids.push_back(s.backends[i].id);
      backends.push_back(BackendValue(s, i, sets));
    }
    revnat_ids.push_back(s.id);
    revnats.push_back(RevnatValue(s));
    for (const FrontendEntry& e : c->new_entries) {
      for (size_t i = 0; i < e.slots.size(); ++i) slots.Add(e, static_cast<uint16_t>(i + 1), SlotValue(s, e.slots[i]));
      masters.Add(e, 0, e.master);
    }
  }
  TND_RETURN_IF_ERROR(maps_.backends.UpdateBatch(backend_ids, backends));
  stats_.writes += static_cast<int>(backend_ids.size());
  TND_RETURN_IF_ERROR(maps_.revnat.UpdateBatch(revnat_ids, revnats));
  stats_.writes += static_cast<int>(revnat_ids.size());
  for (const ServiceChange* c : adds) {
    const Service& s = *c->neu;
    if (s.algorithm == Algorithm::kMaglev) TND_RETURN_IF_ERROR(WriteMaglev(s.id, c->maglev));
    TND_RETURN_IF_ERROR(PutSourceRanges(nullptr, s));
  }
  TND_RETURN_IF_ERROR(slots.Write(maps_, stats_));
  return masters.Write(maps_, stats_);
}

}  // namespace tendril
