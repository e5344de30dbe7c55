#include "maps/pinned_map.h"

#include <linux/bpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>

#include "maps/growable.h"

namespace tendril {

absl::StatusOr<MapInfo> GetMapInfo(int fd) {
  bpf_map_info info;
  std::memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd, &info, &len) != 0)
    return ErrnoError(errno, "read map info");
  MapInfo out;
  out.id = info.id;
  out.type = info.type;
  out.key_size = info.key_size;
  out.value_size = info.value_size;
  out.max_entries = info.max_entries;
  out.map_flags = info.map_flags;
  out.name = info.name;
  return out;
}

bool IsGrowable(const MapInfo& info) {
  return info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS && info.max_entries == 1 && info.key_size == 4;
}

absl::StatusOr<UniqueFd> OpenPinned(const std::string& path) {
  int fd = bpf_obj_get(path.c_str());
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open pinned object ", path));
  return UniqueFd(fd);
}

absl::StatusOr<UniqueFd> OpenPinnedMap(const std::string& path, uint32_t key_size,
                                       uint32_t value_size) {
  TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinned(path));
  TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(fd.get()));
  if (IsGrowable(info)) {
    // A growable map (maps/growable.h): its readers want the table in it.
    TND_ASSIGN_OR_RETURN(fd, OpenTable(fd.get(), path));
    TND_ASSIGN_OR_RETURN(info, GetMapInfo(fd.get()));
  }
  if (info.key_size != key_size || info.value_size != value_size)
    return absl::FailedPreconditionError(absl::StrCat(
        "pinned map ", path, " has key/value size ", info.key_size, "/", info.value_size,
        ", this build expects ", key_size, "/", value_size,
        " (map ABI changed; restart the agent to migrate it)"));
  return fd;
}

namespace {
absl::StatusOr<uint64_t> Memlock(int fd) {
  std::ifstream info(absl::StrCat("/proc/self/fdinfo/", fd));
  std::string line;
  while (std::getline(info, line))
    if (line.rfind("memlock:", 0) == 0) return std::strtoull(line.c_str() + 8, nullptr, 10);
  return absl::NotFoundError(absl::StrCat("no memlock in /proc/self/fdinfo/", fd));
}
}  // namespace

absl::StatusOr<uint64_t> MapBytes(int fd) {
  TND_ASSIGN_OR_RETURN(uint64_t bytes, Memlock(fd));
  TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(fd));
  if (info.type != BPF_MAP_TYPE_ARRAY_OF_MAPS && info.type != BPF_MAP_TYPE_HASH_OF_MAPS) return bytes;
  std::vector<uint8_t> key(info.key_size), next(info.key_size);
  const void* prev = nullptr;
  for (uint32_t n = 0; n <= info.max_entries; ++n) {
    if (bpf_map_get_next_key(fd, prev, next.data()) != 0) break;
    uint32_t id = 0;
    if (bpf_map_lookup_elem(fd, next.data(), &id) == 0) {
      UniqueFd inner(bpf_map_get_fd_by_id(id));
      if (inner.valid())
        if (auto b = Memlock(inner.get()); b.ok()) bytes += *b;
    }
    key.swap(next);
    prev = key.data();
  }
  return bytes;
}

absl::StatusOr<uint32_t> CountEntries(int fd, uint32_t key_size) {
  std::vector<uint8_t> key(key_size), next(key_size);
  const void* prev = nullptr;
  uint32_t n = 0;
  for (;;) {
    if (bpf_map_get_next_key(fd, prev, next.data()) != 0) {
      if (errno == ENOENT) return n;
      return ErrnoError(errno, "walk map keys");
    }
    ++n;
    key.swap(next);
    prev = key.data();
    if (n == UINT32_MAX) return n;
  }
}

bool BatchUnsupported(int err) {
  return err == EINVAL || err == ENOTSUP || err == EOPNOTSUPP || err == 524 /* ENOTSUPP */;
}

absl::StatusOr<std::vector<uint32_t>> ReadU32Array(int fd, uint32_t n) {
  // An array made with BPF_F_MMAPABLE is read through a mapping: no copy per
  // element (the kernel's batch lookup of a 16,381-entry Maglev table costs
  // milliseconds). Any other array goes the batch way.
  // The kernel lays an array's values out 8-byte aligned: a 4-byte value
  // every 8 bytes.
  constexpr size_t kStride = 8;
  const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
  const size_t len = (static_cast<size_t>(n) * kStride + page - 1) / page * page;
  if (void* p = n ? ::mmap(nullptr, len, PROT_READ, MAP_SHARED, fd, 0) : MAP_FAILED; p != MAP_FAILED) {
    std::vector<uint32_t> out(n);
    const auto* base = static_cast<const uint8_t*>(p);
    for (uint32_t i = 0; i < n; ++i) std::memcpy(&out[i], base + i * kStride, sizeof(uint32_t));
    ::munmap(p, len);
    return out;
  }
  std::vector<uint32_t> keys(n), values(n);
  uint32_t out_batch = 0, done = 0;
  bool first = true;
  while (done < n) {
    __u32 count = n - done;
    int r = bpf_map_lookup_batch(fd, first ? nullptr : &out_batch, &out_batch, keys.data() + done,
                                 values.data() + done, &count, nullptr);
    int err = r ? errno : 0;
    first = false;
    if (r && err != ENOENT) {
      if (!BatchUnsupported(err) || done) return ErrnoError(err, "read array map in batches");
      // Element by element.
      for (uint32_t k = 0; k < n; ++k)
        if (bpf_map_lookup_elem(fd, &k, &values[k]) != 0) return ErrnoError(errno, "read array map");
      return values;
    }
    done += count;
    if (err == ENOENT) break;
  }
  std::vector<uint32_t> out(n, 0);
  for (uint32_t i = 0; i < done; ++i)
    if (keys[i] < n) out[keys[i]] = values[i];
  return out;
}

absl::Status UpdateU32Batch(int fd, const std::vector<uint32_t>& keys, const std::vector<uint32_t>& values,
                            const std::string& what, MapOps& ops) {
  if (keys.empty()) return absl::OkStatus();
  __u32 count = static_cast<__u32>(keys.size());
  if (ops.UpdateBatch(fd, keys.data(), values.data(), &count) == 0) return absl::OkStatus();
  if (!BatchUnsupported(errno)) return ErrnoError(errno, absl::StrCat("write ", what, " in a batch"));
  for (size_t i = 0; i < keys.size(); ++i)
    if (ops.Update(fd, &keys[i], &values[i], BPF_ANY) != 0) return ErrnoError(errno, absl::StrCat("write ", what));
  return absl::OkStatus();
}

}  // namespace tendril
