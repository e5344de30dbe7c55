// Typed access to BPF maps by fd: Map<K, V> for ordinary maps and
// PerCpuMap<K, V> for per-CPU maps (one V per possible CPU). Both own their fd.
#pragma once

#include <bpf/bpf.h>
#include <bpf/libbpf.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "common/fd.h"
#include "common/status.h"
#include "maps/map_ops.h"

namespace tendril {

struct MapInfo {
  uint32_t id = 0;
  uint32_t type = 0;
  uint32_t key_size = 0;
  uint32_t value_size = 0;
  uint32_t max_entries = 0;
  uint32_t map_flags = 0;
  std::string name;
};

absl::StatusOr<MapInfo> GetMapInfo(int fd);
// A growable map's outer array (maps/growable.h).
bool IsGrowable(const MapInfo& info);

// Opens a pinned object (map, program or link) by path.
absl::StatusOr<UniqueFd> OpenPinned(const std::string& path);

// Opens a pinned map and checks its key and value sizes against K and V; of a
// growable map, the table in it.
absl::StatusOr<UniqueFd> OpenPinnedMap(const std::string& path, uint32_t key_size,
                                       uint32_t value_size);

// The memory the kernel charges for a map (its fdinfo memlock), bytes; of a
// map of maps (growable tables, Maglev), its own and every inner map's.
absl::StatusOr<uint64_t> MapBytes(int fd);

// Number of entries, by walking the keys.
absl::StatusOr<uint32_t> CountEntries(int fd, uint32_t key_size);

// An array map of `n` u32 values read whole: in batches of the kernel's
// BPF_MAP_LOOKUP_BATCH where it has them (5.6+), else element by element.
absl::StatusOr<std::vector<uint32_t>> ReadU32Array(int fd, uint32_t n);
// values[i] written at keys[i] (u32 keys and values): one
// BPF_MAP_UPDATE_BATCH where the kernel has it, else element by element.
// `what` names the map in errors; the writes go through `ops`.
absl::Status UpdateU32Batch(int fd, const std::vector<uint32_t>& keys, const std::vector<uint32_t>& values,
                            const std::string& what, MapOps& ops = KernelMapOps());

// A map key's bytes, for sets and maps of keys of any layout.
template <typename K>
std::string KeyBytes(const K& k) {
  return std::string(reinterpret_cast<const char*>(&k), sizeof(K));
}

// Whether a batch operation failed with `err` because the kernel or the map
// type has no batch operations (the caller goes element by element).
bool BatchUnsupported(int err);

// Writes go through a MapOps (maps/map_ops.h): the kernel's unless one is
// given.
template <typename K, typename V>
class Map {
 public:
  Map(UniqueFd fd, std::string name, MapOps* ops = nullptr)
      : fd_(std::move(fd)), name_(std::move(name)), ops_(&OpsOr(ops)) {}

  static absl::StatusOr<Map> OpenPin(const std::string& path, std::string name, MapOps* ops = nullptr) {
    TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinnedMap(path, sizeof(K), sizeof(V)));
    return Map(std::move(fd), std::move(name), ops);
  }

  int fd() const { return fd_.get(); }
  const std::string& name() const { return name_; }
  MapOps& ops() const { return *ops_; }

  absl::StatusOr<std::optional<V>> Lookup(const K& key) const {
    V v{};
    if (bpf_map_lookup_elem(fd_.get(), &key, &v) != 0) {
      if (errno == ENOENT) return std::optional<V>();
      return ErrnoError(errno, absl::StrCat("lookup in map ", name_));
    }
    return std::optional<V>(v);
  }

  absl::Status Update(const K& key, const V& value, uint64_t flags = BPF_ANY) {
    if (ops_->Update(fd_.get(), &key, &value, flags) != 0)
      return ErrnoError(errno, absl::StrCat("update map ", name_));
    return absl::OkStatus();
  }

  // Deleting an absent key is not an error.
  absl::Status Delete(const K& key) { return Erase(key).status(); }
  // One syscall: whether the key was there (and is gone now).
  absl::StatusOr<bool> Erase(const K& key) {
    if (ops_->Delete(fd_.get(), &key) == 0) return true;
    if (errno == ENOENT) return false;
    return ErrnoError(errno, absl::StrCat("delete from map ", name_));
  }

  // values[i] at keys[i]: in BPF_MAP_UPDATE_BATCH calls where the kernel has
  // them (5.6+), else one by one. After an error any prefix may be written.
  absl::Status UpdateBatch(const std::vector<K>& keys, const std::vector<V>& values) {
    for (size_t done = 0; done < keys.size();) {
      uint32_t count = static_cast<uint32_t>(std::min<size_t>(keys.size() - done, kBatch));
      if (ops_->UpdateBatch(fd_.get(), &keys[done], &values[done], &count) == 0) {
        done += count;
        continue;
      }
      if (!BatchUnsupported(errno) || count != 0) return ErrnoError(errno, absl::StrCat("update map ", name_, " in a batch"));
      for (; done < keys.size(); ++done) TND_RETURN_IF_ERROR(Update(keys[done], values[done]));
    }
    return absl::OkStatus();
  }

  // Every entry: read in BPF_MAP_LOOKUP_BATCH calls where the map type has
  // them (hash maps, arrays: 5.6+), else key by key.
  absl::Status ForEach(const std::function<void(const K&, const V&)>& fn) const {
    std::vector<K> keys(kReadBatch);
    std::vector<V> values(kReadBatch);
    alignas(8) unsigned char token[sizeof(K) > 8 ? sizeof(K) : 8];  // the kernel's place in the map
    for (bool first = true;; first = false) {
      uint32_t n = kReadBatch;
      const int err = bpf_map_lookup_batch(fd_.get(), first ? nullptr : token, token, keys.data(), values.data(),
                                           &n, nullptr) == 0 ? 0 : errno;
      if (err != 0 && err != ENOENT) {
        if (first && BatchUnsupported(err)) return Walk(fn);
        return ErrnoError(err, absl::StrCat("read map ", name_, " in batches"));
      }
      for (uint32_t i = 0; i < n; ++i) fn(keys[i], values[i]);
      if (err == ENOENT) return absl::OkStatus();
    }
  }

  // Key by key (get_next_key), for maps without batch reads.
  absl::Status Walk(const std::function<void(const K&, const V&)>& fn) const {
    K key{}, next{};
    const void* prev = nullptr;
    // Bounded: a map cannot hold more than max_entries; stop at twice that in
    // case concurrent deletes restart the walk.
    for (uint64_t i = 0; i < kMaxWalk; ++i) {
      if (bpf_map_get_next_key(fd_.get(), prev, &next) != 0) {
        if (errno == ENOENT) return absl::OkStatus();
        return ErrnoError(errno, absl::StrCat("walk map ", name_));
      }
      V v{};
      if (bpf_map_lookup_elem(fd_.get(), &next, &v) == 0) fn(next, v);
      key = next;
      prev = &key;
    }
    return absl::OkStatus();
  }

 private:
  static constexpr uint64_t kMaxWalk = 1u << 24;
  static constexpr size_t kBatch = 16384;     // entries per batch write
  static constexpr size_t kReadBatch = 4096;  // entries per batch read
  UniqueFd fd_;
  std::string name_;
  MapOps* ops_;
};

// Per-CPU maps return one value per possible CPU, each padded to 8 bytes.
template <typename K, typename V>
class PerCpuMap {
  static_assert(sizeof(V) % 8 == 0, "per-CPU values must be 8-byte multiples");

 public:
  PerCpuMap(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {
    ncpus_ = libbpf_num_possible_cpus();
    if (ncpus_ < 1) ncpus_ = 1;
  }

  static absl::StatusOr<PerCpuMap> OpenPin(const std::string& path, std::string name) {
    TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinnedMap(path, sizeof(K), sizeof(V)));
    return PerCpuMap(std::move(fd), std::move(name));
  }

  int fd() const { return fd_.get(); }

  absl::Status ForEach(const std::function<void(const K&, const std::vector<V>&)>& fn) const {
    K key{}, next{};
    const void* prev = nullptr;
    std::vector<V> values(static_cast<size_t>(ncpus_));
    for (uint64_t i = 0; i < (1u << 24); ++i) {
      if (bpf_map_get_next_key(fd_.get(), prev, &next) != 0) {
        if (errno == ENOENT) return absl::OkStatus();
        return ErrnoError(errno, absl::StrCat("walk map ", name_));
      }
      if (bpf_map_lookup_elem(fd_.get(), &next, values.data()) == 0) fn(next, values);
      key = next;
      prev = &key;
    }
    return absl::OkStatus();
  }

 private:
  UniqueFd fd_;
  std::string name_;
  int ncpus_ = 1;
};

}  // namespace tendril
