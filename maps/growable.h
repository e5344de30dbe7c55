// Growable tables: the declared-state hashes (services, backends, reverse
// NAT) that the programs reach through a one-slot array of maps (see
// bpf/lib/maps_lb.h). The agent creates each table at the size what is
// declared needs and, before a change that would fill it, replaces it by a
// larger copy with one atomic update of the slot: no program reload, no
// moment without the entries. Memory follows what is declared (a hash's
// fixed cost is its bucket array, 16 bytes per entry of size), not a
// maximum fixed at load.
#pragma once

#include <cstdint>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "common/fd.h"
#include "maps/pinned_map.h"

namespace tendril {

// The size a table gets for `need` entries: twice the need rounded up to a
// power of two (the kernel's bucket count), at least TND_TABLE_MIN_ENTRIES,
// at most `cap` (the setting that bounds it).
uint32_t TableSizeFor(uint64_t need, uint32_t cap);

// The table in a growable map's slot; NotFound while none was created.
absl::StatusOr<UniqueFd> OpenTable(int outer_fd, const std::string& what);

struct TableShape {
  uint32_t key_size;
  uint32_t value_size;
};

// Makes the table in `outer_fd`'s slot hold `need` entries: creates it when
// there is none, replaces it by a copy of size TableSizeFor(need, cap) when
// `need` is over three quarters of it (unless it is that size already), it
// is larger than `cap`, or (with `shrink`) more than four times that size. Returns the table to use from now on and whether it
// was replaced. Refuses `need` above `cap`, touching nothing.
struct TableResult {
  UniqueFd fd;
  uint32_t size = 0;
  bool replaced = false;
};
absl::StatusOr<TableResult> EnsureTable(int outer_fd, const std::string& what, TableShape shape, uint64_t need,
                                        uint32_t cap, bool shrink, MapOps& ops = KernelMapOps());

// Every entry of `from` written into `to` (same key and value sizes): in
// batches where the kernel has them, else one by one. How many.
absl::StatusOr<uint64_t> CopyEntries(int from, int to, TableShape shape, const std::string& what,
                                     MapOps& ops = KernelMapOps());

// A growable map as the writer sees it: the Map<K, V> operations act on the
// current table; Reserve() makes room first.
template <typename K, typename V>
class Growable {
 public:
  static absl::StatusOr<Growable> OpenPin(const std::string& path, const std::string& name, MapOps* ops = nullptr) {
    TND_ASSIGN_OR_RETURN(UniqueFd outer, OpenPinned(path));
    Growable g(std::move(outer), name, ops);
    auto t = OpenTable(g.outer_.get(), name);
    if (t.ok()) {
      TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(t->get()));
      if (info.key_size != sizeof(K) || info.value_size != sizeof(V))
        return absl::FailedPreconditionError(absl::StrCat("table of ", path, " has key/value size ", info.key_size,
                                                          "/", info.value_size, ", this build expects ", sizeof(K),
                                                          "/", sizeof(V)));
      g.size_ = info.max_entries;
      g.table_.emplace(std::move(*t), name, g.ops_);
    } else if (!absl::IsNotFound(t.status())) {
      return t.status();
    }
    return g;
  }

  // Room for `need` entries (see EnsureTable); whether the table was replaced.
  absl::StatusOr<bool> Reserve(uint64_t need, uint32_t cap, bool shrink = false) {
    TND_ASSIGN_OR_RETURN(TableResult r,
                         EnsureTable(outer_.get(), name_, TableShape{sizeof(K), sizeof(V)}, need, cap, shrink, *ops_));
    size_ = r.size;
    table_.emplace(std::move(r.fd), name_, ops_);
    return r.replaced;
  }

  bool has_table() const { return table_.has_value(); }
  uint32_t size() const { return size_; }  // the table's max_entries
  Map<K, V>& table() { return *table_; }
  const Map<K, V>& table() const { return *table_; }

  // Reads the table whole (in batches) and answers Lookup and ForEach from
  // that copy until Uncache(); Update and Erase keep it in step. For a
  // restore, which compares every declared entry with the table: one read
  // of the table instead of a lookup per entry. The copy remembers which
  // keys were looked up or written since: Untouched() lists the others
  // (after a restore, the entries no declared service has).
  absl::Status Cache() {
    cache_.emplace();
    if (!table_) return absl::OkStatus();
    cache_->reserve(size_ / 2);  // what a table of this size holds before it grows
    return table_->ForEach([this](const K& k, const V& v) { (*cache_)[k] = Cached{v, false}; });
  }
  void Uncache() { cache_.reset(); }
  bool cached() const { return cache_.has_value(); }
  std::vector<K> Untouched() const {
    std::vector<K> out;
    if (cache_)
      for (const auto& [k, c] : *cache_)
        if (!c.touched) out.push_back(k);
    return out;
  }

  absl::StatusOr<std::optional<V>> Lookup(const K& k) const {
    if (cache_) {
      auto it = cache_->find(k);
      if (it == cache_->end()) return std::optional<V>();
      it->second.touched = true;
      return std::optional<V>(it->second.v);
    }
    if (!table_) return std::optional<V>();
    return table_->Lookup(k);
  }
  absl::Status Update(const K& k, const V& v) {
    if (!table_) return absl::FailedPreconditionError(absl::StrCat(name_, ": no table yet (Reserve first)"));
    TND_RETURN_IF_ERROR(table_->Update(k, v));
    if (cache_) (*cache_)[k] = Cached{v, true};
    return absl::OkStatus();
  }
  absl::Status Delete(const K& k) { return Erase(k).status(); }
  absl::StatusOr<bool> Erase(const K& k) {
    if (!table_) return false;
    TND_ASSIGN_OR_RETURN(bool gone, table_->Erase(k));
    if (cache_) cache_->erase(k);
    return gone;
  }
  absl::Status UpdateBatch(const std::vector<K>& keys, const std::vector<V>& values) {
    if (!table_) return absl::FailedPreconditionError(absl::StrCat(name_, ": no table yet (Reserve first)"));
    absl::Status st = table_->UpdateBatch(keys, values);
    if (cache_ && !st.ok()) cache_.reset();  // which prefix went in is unknown: read the table again
    if (cache_)
      for (size_t i = 0; i < keys.size(); ++i) (*cache_)[keys[i]] = Cached{values[i], true};
    return st;
  }
  absl::Status ForEach(const std::function<void(const K&, const V&)>& fn) const {
    if (cache_) {
      for (const auto& [k, c] : *cache_) fn(k, c.v);
      return absl::OkStatus();
    }
    return table_ ? table_->ForEach(fn) : absl::OkStatus();
  }

 private:
  Growable(UniqueFd outer, std::string name, MapOps* ops)
      : outer_(std::move(outer)), name_(std::move(name)), ops_(&OpsOr(ops)) {}
  UniqueFd outer_;
  std::string name_;
  MapOps* ops_;
  std::optional<Map<K, V>> table_;
  // Keys hashed and compared as bytes, as the kernel compares them.
  struct KeyHash {
    size_t operator()(const K& k) const {
      return absl::Hash<absl::string_view>()(absl::string_view(reinterpret_cast<const char*>(&k), sizeof(K)));
    }
  };
  struct KeyEq {
    bool operator()(const K& a, const K& b) const { return std::memcmp(&a, &b, sizeof(K)) == 0; }
  };
  struct Cached {
    V v;
    bool touched;  // looked up or written since Cache()
  };
  // See Cache(); mutable: a lookup marks its key.
  mutable std::optional<absl::flat_hash_map<K, Cached, KeyHash, KeyEq>> cache_;
  uint32_t size_ = 0;
};

}  // namespace tendril
