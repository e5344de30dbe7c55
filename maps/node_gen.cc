#include "maps/node_gen.h"

#include <bpf/bpf.h>

#include <cerrno>
#include <mutex>

#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "maps/pinned_map.h"
#include "maps/tendril_maps.h"

namespace tendril {

namespace {

std::mutex node_mu;

// Applies `change` to the node map's one entry under node_mu.
absl::Status Modify(int node_fd, const char* what, void (*change)(tnd_node_info&, uint32_t, bool), uint32_t flag,
                    bool on) {
  std::lock_guard<std::mutex> lock(node_mu);
  uint32_t key = 0;
  tnd_node_info info{};
  // An array entry always exists; a read failure is the map's.
  if (bpf_map_lookup_elem(node_fd, &key, &info) != 0) return ErrnoError(errno, absl::StrCat("read the node map (", what, ")"));
  change(info, flag, on);
  if (bpf_map_update_elem(node_fd, &key, &info, BPF_ANY) != 0) return ErrnoError(errno, what);
  return absl::OkStatus();
}

}  // namespace

absl::Status BumpNodeGeneration(int node_fd) {
  return Modify(node_fd, "bump the node generation", [](tnd_node_info& i, uint32_t, bool) { i.gen += 1; }, 0, false);
}

absl::Status SetNodeFlag(int node_fd, uint32_t flag, bool on) {
  return Modify(
      node_fd, "set a node flag",
      [](tnd_node_info& i, uint32_t f, bool set) {
        i.flags = set ? (i.flags | f) : (i.flags & ~f);
        i.gen += 1;
      },
      flag, on);
}

absl::Status SetNodeFlag(const std::string& path, uint32_t flag, bool on) {
  TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinnedMap(path, sizeof(uint32_t), sizeof(tnd_node_info)));
  return SetNodeFlag(fd.get(), flag, on);
}

absl::Status BumpNodeGeneration(const std::string& path) {
  TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinnedMap(path, sizeof(uint32_t), sizeof(tnd_node_info)));
  return BumpNodeGeneration(fd.get());
}

}  // namespace tendril
