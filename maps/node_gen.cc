#include "maps/node_gen.h"

#include <bpf/bpf.h>

#include <cerrno>

#include "common/status.h"
#include "maps/pinned_map.h"
#include "maps/tendril_maps.h"

namespace tendril {

absl::Status BumpNodeGeneration(int node_fd) {
  uint32_t key = 0;
  tnd_node_info info{};
  // An array entry always exists; a read failure is the map's.
  if (bpf_map_lookup_elem(node_fd, &key, &info) != 0) return ErrnoError(errno, "read the node map (generation)");
  info.gen += 1;
  if (bpf_map_update_elem(node_fd, &key, &info, BPF_ANY) != 0)
    return ErrnoError(errno, "bump the node generation");
  return absl::OkStatus();
}

absl::Status BumpNodeGeneration(const std::string& path) {
  TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinnedMap(path, sizeof(uint32_t), sizeof(tnd_node_info)));
  return BumpNodeGeneration(fd.get());
}

}  // namespace tendril
