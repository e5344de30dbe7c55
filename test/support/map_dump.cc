#include "test/support/map_dump.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <functional>
#include <set>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "maps/pinned_map.h"

namespace tendril::test {
namespace {

bool PerCpu(uint32_t type) {
  return type == BPF_MAP_TYPE_PERCPU_ARRAY || type == BPF_MAP_TYPE_PERCPU_HASH || type == BPF_MAP_TYPE_LRU_PERCPU_HASH;
}

std::string Hex(const std::vector<uint8_t>& b) {
  return absl::BytesToHexString(absl::string_view(reinterpret_cast<const char*>(b.data()), b.size()));
}

absl::Status DumpFd(int fd, const std::string& name, MapDump& out, int depth) {
  TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(fd));
  if (info.type == BPF_MAP_TYPE_PROG_ARRAY || info.type == BPF_MAP_TYPE_RINGBUF) return absl::OkStatus();
  const bool of_maps = info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS || info.type == BPF_MAP_TYPE_HASH_OF_MAPS;
  const int cpus = libbpf_num_possible_cpus();
  const size_t vsize = PerCpu(info.type) ? ((info.value_size + 7) / 8) * 8 * cpus : info.value_size;
  std::vector<uint8_t> key(info.key_size), next(info.key_size), val(of_maps ? sizeof(uint32_t) : vsize);
  std::vector<std::string>& entries = out[name];
  void* prev = nullptr;
  for (int n = 0; n < 4'000'000; ++n) {
    if (bpf_map_get_next_key(fd, prev, next.data()) != 0) break;
    key = next;
    prev = key.data();
    if (bpf_map_lookup_elem(fd, key.data(), val.data()) != 0) continue;  // gone meanwhile
    if (of_maps) {
      uint32_t id;
      std::memcpy(&id, val.data(), sizeof(id));
      int inner = bpf_map_get_fd_by_id(id);
      if (inner < 0) return ErrnoError(errno, absl::StrCat("open inner map ", id, " of ", name));
      absl::Status st = depth < 2 ? DumpFd(inner, absl::StrCat(name, "/inner@", Hex(key)), out, depth + 1)
                                  : absl::OkStatus();
      ::close(inner);
      TND_RETURN_IF_ERROR(st);
      continue;
    }
    entries.push_back(Hex(key) + "=" + Hex(val));
  }
  std::sort(entries.begin(), entries.end());
  return absl::OkStatus();
}

}  // namespace

// Calls fn(fd, path) for every map pinned under dir (programs and links
// pinned there are passed over).
absl::Status ForEachPinnedMap(const std::string& dir, const std::function<absl::Status(int, const std::string&)>& fn) {
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!e.is_regular_file(ec) && !e.is_other(ec)) continue;
    auto fd = OpenPinned(e.path().string());
    if (!fd.ok()) continue;  // a program or link
    bpf_map_info mi{};
    uint32_t len = sizeof(mi);
    if (bpf_obj_get_info_by_fd(fd->get(), &mi, &len) != 0 || mi.type == 0) continue;
    TND_RETURN_IF_ERROR(fn(fd->get(), e.path().string()));
  }
  if (ec) return absl::InternalError(absl::StrCat("read ", dir, ": ", ec.message()));
  return absl::OkStatus();
}

bool Hashed(uint32_t type) {
  return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_PERCPU_HASH ||
         type == BPF_MAP_TYPE_LRU_PERCPU_HASH || type == BPF_MAP_TYPE_LPM_TRIE || type == BPF_MAP_TYPE_HASH_OF_MAPS;
}

// Every key, then every delete (deleting while walking restarts the walk).
absl::Status Empty(int fd, const MapInfo& info, const std::string& name) {
  std::vector<std::vector<uint8_t>> keys;
  std::vector<uint8_t> key(info.key_size), next(info.key_size);
  void* prev = nullptr;
  for (uint32_t n = 0; n <= info.max_entries; ++n) {
    if (bpf_map_get_next_key(fd, prev, next.data()) != 0) break;
    keys.push_back(next);
    key = next;
    prev = key.data();
  }
  for (const auto& k : keys)
    if (bpf_map_delete_elem(fd, k.data()) != 0 && errno != ENOENT)
      return ErrnoError(errno, absl::StrCat("empty ", name));
  return absl::OkStatus();
}

// Array slots back to zero (only those that are not).
absl::Status Zero(int fd, const MapInfo& info, const std::string& name) {
  const size_t vsize = PerCpu(info.type) ? ((info.value_size + 7) / 8) * 8 * libbpf_num_possible_cpus()
                                         : info.value_size;
  std::vector<uint8_t> val(vsize), zero(vsize, 0);
  for (uint32_t k = 0; k < info.max_entries; ++k) {
    if (bpf_map_lookup_elem(fd, &k, val.data()) != 0) return ErrnoError(errno, absl::StrCat("read ", name));
    if (val != zero && bpf_map_update_elem(fd, &k, zero.data(), BPF_ANY) != 0)
      return ErrnoError(errno, absl::StrCat("zero ", name));
  }
  return absl::OkStatus();
}

absl::Status ResetFd(int fd, const std::string& name, int depth) {
  TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(fd));
  if (info.type == BPF_MAP_TYPE_PROG_ARRAY) return absl::OkStatus();  // the tail calls stay
  if (info.type == BPF_MAP_TYPE_RINGBUF) {
    ring_buffer* rb = ring_buffer__new(fd, [](void*, void*, size_t) { return 0; }, nullptr, nullptr);
    if (!rb) return ErrnoError(errno, absl::StrCat("open ring buffer ", name));
    ring_buffer__consume(rb);
    ring_buffer__free(rb);
    return absl::OkStatus();
  }
  if (info.type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {  // the slots keep their maps; those are reset
    for (uint32_t k = 0; k < info.max_entries && depth < 2; ++k) {
      uint32_t id = 0;
      if (bpf_map_lookup_elem(fd, &k, &id) != 0) continue;  // an empty slot
      int inner = bpf_map_get_fd_by_id(id);
      if (inner < 0) return ErrnoError(errno, absl::StrCat("open inner map ", id, " of ", name));
      absl::Status st = ResetFd(inner, absl::StrCat(name, "/inner@", k), depth + 1);
      ::close(inner);
      TND_RETURN_IF_ERROR(st);
    }
    return absl::OkStatus();
  }
  if (Hashed(info.type)) return Empty(fd, info, name);
  if (info.type == BPF_MAP_TYPE_ARRAY || info.type == BPF_MAP_TYPE_PERCPU_ARRAY) return Zero(fd, info, name);
  return absl::UnimplementedError(absl::StrCat("cannot reset ", name, ": map type ", info.type));
}

absl::StatusOr<MapDump> DumpPinnedMaps(const std::string& dir) {
  MapDump out;
  TND_RETURN_IF_ERROR(
      ForEachPinnedMap(dir, [&](int fd, const std::string& path) { return DumpFd(fd, path, out, 0); }));
  return out;
}

absl::Status ResetMap(int fd, const std::string& name) { return ResetFd(fd, name, 0); }

std::string DumpDiff(const MapDump& a, const MapDump& b) {
  std::string d;
  std::set<std::string> names;
  for (const auto& [n, _] : a) names.insert(n);
  for (const auto& [n, _] : b) names.insert(n);
  for (const std::string& n : names) {
    auto ia = a.find(n), ib = b.find(n);
    if (ia == a.end() || ib == b.end()) {
      absl::StrAppend(&d, n, ": ", ia == a.end() ? "appeared" : "disappeared", "\n");
      continue;
    }
    std::vector<std::string> gone, came;
    std::set_difference(ia->second.begin(), ia->second.end(), ib->second.begin(), ib->second.end(),
                        std::back_inserter(gone));
    std::set_difference(ib->second.begin(), ib->second.end(), ia->second.begin(), ia->second.end(),
                        std::back_inserter(came));
    for (const auto& g : gone) absl::StrAppend(&d, n, ": - ", g.substr(0, 160), "\n");
    for (const auto& c : came) absl::StrAppend(&d, n, ": + ", c.substr(0, 160), "\n");
  }
  return d;
}

}  // namespace tendril::test
