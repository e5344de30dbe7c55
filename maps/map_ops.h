// The map writes of the agent's writers behind one interface: the kernel's
// bpf(2) calls by default (KernelMapOps). Whoever builds the agent's map
// handles may pass another (the fault injection test passes one that fails
// the N-th write). Reads stay direct: a failed read changes nothing.
#pragma once

#include <bpf/bpf.h>

#include <cstdint>

namespace tendril {

class MapOps {
 public:
  virtual ~MapOps() = default;
  // bpf(2)'s convention: 0, or -1 with errno set.
  virtual int Update(int fd, const void* key, const void* value, uint64_t flags);
  virtual int Delete(int fd, const void* key);
  // `count` in: how many; out: how many were written.
  virtual int UpdateBatch(int fd, const void* keys, const void* values, uint32_t* count);
  // A new map's fd, or -1 with errno set.
  virtual int Create(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size,
                     uint32_t max_entries, const bpf_map_create_opts* opts);
};

// The kernel's (one instance, stateless).
MapOps& KernelMapOps();

// `ops`, or the kernel's when null.
inline MapOps& OpsOr(MapOps* ops) { return ops ? *ops : KernelMapOps(); }

}  // namespace tendril
