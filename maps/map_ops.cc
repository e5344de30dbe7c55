#include "maps/map_ops.h"

namespace tendril {

int MapOps::Update(int fd, const void* key, const void* value, uint64_t flags) {
  return bpf_map_update_elem(fd, key, value, flags);
}

int MapOps::Delete(int fd, const void* key) { return bpf_map_delete_elem(fd, key); }

int MapOps::UpdateBatch(int fd, const void* keys, const void* values, uint32_t* count) {
  return bpf_map_update_batch(fd, keys, values, count, nullptr);
}

int MapOps::Create(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size,
                   uint32_t max_entries, const bpf_map_create_opts* opts) {
  return bpf_map_create(type, name, key_size, value_size, max_entries, opts);
}

MapOps& KernelMapOps() {
  static MapOps ops;
  return ops;
}

}  // namespace tendril
