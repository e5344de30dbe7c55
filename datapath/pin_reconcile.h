// What the loader does with a map already pinned under a name the object
// pins by: reuse it when it is the same map (type, key and value sizes,
// size, flags, and the BTF layout of key and value: a field moved inside a
// value of the same size is a different map), replace it otherwise. A
// replaced hash, LRU hash or LPM trie whose layout is unchanged (only its
// size or flags differ: a setting changed) has its entries carried into the
// new map once the object is loaded, so a restart with other table sizes
// keeps the flows; the running programs use the old map until they are
// swapped, so what they write after the copy is lost.
#pragma once

#include <bpf/btf.h>
#include <bpf/libbpf.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "common/fd.h"

namespace tendril {

// The layout of BTF type `id`: members by name, offset and layout, integers
// and arrays by size, typedefs and qualifiers looked through. Two types of
// the same layout are read the same way.
std::string BtfLayout(const btf* b, uint32_t id);

struct PinDecision {
  bool replace = false;
  // Replaced with its layout unchanged: the old map, to copy from after load.
  UniqueFd carry_from;
  std::string why;  // what differs
};

// Decides for `map` (of an opened, not yet loaded object whose BTF is
// `obj_btf`) and unpins a map to replace.
absl::StatusOr<PinDecision> ReconcilePin(bpf_map* map, const btf* obj_btf);

}  // namespace tendril
