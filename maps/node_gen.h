// The node's generation (tnd_node_info.gen in maps/tendril_maps.h): every
// flow's cached path (tnd_ct_val.hop_*) holds only while it is unchanged.
// Whoever changes what the per-packet programs would decide (services,
// backends, endpoints, devices, routes, neighbours) bumps it once after the
// change is written.
#ifndef TENDRIL_MAPS_NODE_GEN_H_
#define TENDRIL_MAPS_NODE_GEN_H_

#include <string>

#include "absl/status/status.h"

namespace tendril {

// Adds one to the generation in the node map `node_fd` (TND_MAP_NODE).
absl::Status BumpNodeGeneration(int node_fd);
// The same on the map pinned at `path`.
absl::Status BumpNodeGeneration(const std::string& path);

}  // namespace tendril

#endif  // TENDRIL_MAPS_NODE_GEN_H_
