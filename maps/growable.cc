#include "maps/growable.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>

#include <algorithm>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "maps/tendril_maps.h"

namespace tendril {
namespace {

absl::StatusOr<UniqueFd> CreateTable(const std::string& what, TableShape shape, uint32_t size, MapOps& ops) {
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = BPF_F_NO_PREALLOC);
  // The name the kernel shows (bpftool): the pin's, truncated to 15 bytes.
  std::string name = what.substr(0, 15);
  int fd = ops.Create(BPF_MAP_TYPE_HASH, name.c_str(), shape.key_size, shape.value_size, size, &opts);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("create table of ", what, " with ", size, " entries"));
  return UniqueFd(fd);
}

// One by one: kernels or map types without batch operations.
absl::StatusOr<uint64_t> CopyEach(int from, int to, TableShape shape, const std::string& what, MapOps& ops) {
  std::vector<uint8_t> key(shape.key_size), next(shape.key_size), value(shape.value_size);
  const void* prev = nullptr;
  uint64_t n = 0;
  for (;;) {
    if (bpf_map_get_next_key(from, prev, next.data()) != 0) {
      if (errno == ENOENT) return n;
      return ErrnoError(errno, absl::StrCat("walk ", what));
    }
    if (bpf_map_lookup_elem(from, next.data(), value.data()) == 0) {
      if (ops.Update(to, next.data(), value.data(), BPF_ANY) != 0)
        return ErrnoError(errno, absl::StrCat("copy an entry of ", what));
      ++n;
    }
    key.swap(next);
    prev = key.data();
  }
}
}  // namespace

uint32_t TableSizeFor(uint64_t need, uint32_t cap) {
  uint64_t size = TND_TABLE_MIN_ENTRIES;
  while (size < 2 * need && size < (1ull << 31)) size *= 2;
  return static_cast<uint32_t>(std::min<uint64_t>(size, std::max<uint32_t>(cap, 1)));
}

absl::StatusOr<UniqueFd> OpenTable(int outer_fd, const std::string& what) {
  uint32_t zero = 0, id = 0;
  if (bpf_map_lookup_elem(outer_fd, &zero, &id) != 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat(what, ": no table yet (the agent creates it)"));
    return ErrnoError(errno, absl::StrCat("read the table slot of ", what));
  }
  int fd = bpf_map_get_fd_by_id(id);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open the table of ", what, " (map id ", id, ")"));
  return UniqueFd(fd);
}

absl::StatusOr<uint64_t> CopyEntries(int from, int to, TableShape shape, const std::string& what, MapOps& ops) {
  constexpr uint32_t kBatch = 4096;
  std::vector<uint8_t> keys(size_t{kBatch} * shape.key_size), values(size_t{kBatch} * shape.value_size);
  // The resume token: a bucket index for hashes, a key for others.
  std::vector<uint8_t> token(std::max<uint32_t>(shape.key_size, 8)), next_token(token.size());
  uint64_t n = 0;
  for (bool first = true;; first = false) {
    __u32 count = kBatch;
    int r = bpf_map_lookup_batch(from, first ? nullptr : token.data(), next_token.data(), keys.data(),
                                 values.data(), &count, nullptr);
    const int err = r ? errno : 0;
    if (r && err != ENOENT) {
      if (BatchUnsupported(err) && first) return CopyEach(from, to, shape, what, ops);
      return ErrnoError(err, absl::StrCat("read ", what, " in batches"));
    }
    if (count > 0) {
      __u32 wrote = count;
      if (ops.UpdateBatch(to, keys.data(), values.data(), &wrote) != 0)
        return ErrnoError(errno, absl::StrCat("write the copy of ", what, " in batches"));
      n += count;
    }
    if (err == ENOENT) return n;
    token.swap(next_token);
  }
}

absl::StatusOr<TableResult> EnsureTable(int outer_fd, const std::string& what, TableShape shape, uint64_t need,
                                        uint32_t cap, bool shrink, MapOps& ops) {
  if (need > cap)
    return absl::ResourceExhaustedError(
        absl::StrCat(what, ": ", need, " entries needed, the setting caps the table at ", cap));
  const uint32_t want = TableSizeFor(need, cap);
  TableResult out;
  auto cur = OpenTable(outer_fd, what);
  if (!cur.ok() && !absl::IsNotFound(cur.status())) return cur.status();
  if (cur.ok()) {
    TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(cur->get()));
    // Kept while at most three quarters full (or as large as the cap allows).
    const bool roomy = need * 4 <= uint64_t{info.max_entries} * 3 || info.max_entries >= want;
    const bool keep = info.max_entries >= need && roomy && info.max_entries <= cap &&
                      !(shrink && info.max_entries > 4ull * want && info.max_entries > TND_TABLE_MIN_ENTRIES);
    if (keep) {
      out.fd = std::move(*cur);
      out.size = info.max_entries;
      return out;
    }
  }
  // A new table, filled before it is published: readers see the old table
  // or the complete new one.
  TND_ASSIGN_OR_RETURN(out.fd, CreateTable(what, shape, want, ops));
  if (cur.ok()) {
    absl::StatusOr<uint64_t> copied = CopyEntries(cur->get(), out.fd.get(), shape, what, ops);
    if (!copied.ok()) {
      // A shrink that the old entries do not fit (stale ones a restore is
      // about to remove): the old table stays.
      TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(cur->get()));
      if (info.max_entries < need || info.max_entries > cap) return copied.status();
      out.fd = std::move(*cur);
      out.size = info.max_entries;
      return out;
    }
  }
  uint32_t zero = 0, fd = static_cast<uint32_t>(out.fd.get());
  if (ops.Update(outer_fd, &zero, &fd, BPF_ANY) != 0)
    return ErrnoError(errno, absl::StrCat("publish the new table of ", what));
  out.size = want;
  out.replaced = true;
  return out;
}

}  // namespace tendril
