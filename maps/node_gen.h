// The node's generation (tnd_node_info.gen in maps/tendril_maps.h): every
// flow's cached path (tnd_ct_val.hop_*) holds only while it is unchanged.
// Whoever changes what the per-packet programs would decide (services,
// backends, endpoints, devices, routes, neighbours) bumps it once after the
// change is written.
#ifndef TENDRIL_MAPS_NODE_GEN_H_
#define TENDRIL_MAPS_NODE_GEN_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"

namespace tendril {

// Adds one to the generation in the node map `node_fd` (TND_MAP_NODE).
absl::Status BumpNodeGeneration(int node_fd);
// The same on the map pinned at `path`.
absl::Status BumpNodeGeneration(const std::string& path);

// Sets (on) or clears a TND_NODE_F_* flag and bumps the generation with it,
// so nothing cached under the flag's other value is taken. Reads and writes
// of the node map by this process are serialized (a bump on another thread
// does not undo a flag).
absl::Status SetNodeFlag(int node_fd, uint32_t flag, bool on);
absl::Status SetNodeFlag(const std::string& path, uint32_t flag, bool on);

}  // namespace tendril

#endif  // TENDRIL_MAPS_NODE_GEN_H_
