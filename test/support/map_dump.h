// Every map pinned under a bpffs directory, read whole: for tests that show
// something changed no map (tendril explain's dry run); or reset. Map-in-map values
// are followed into their inner maps; prog arrays and ring buffers (no
// entries to read) are left out.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tendril::test {

// Map path (and "/inner@key" for inner maps) -> its entries, each the key's
// and the value's bytes in hex, sorted.
using MapDump = std::map<std::string, std::vector<std::string>>;

absl::StatusOr<MapDump> DumpPinnedMaps(const std::string& dir);

// A map back to how a load leaves it: a hash or trie emptied, an array
// zeroed (a map-in-map slot keeps its map, which is reset), a ring buffer
// drained; a prog array kept. For test fixtures that load objects once and
// share them between tests.
absl::Status ResetMap(int fd, const std::string& name);

// The differences of two dumps, a line each ("" when equal).
std::string DumpDiff(const MapDump& before, const MapDump& after);

}  // namespace tendril::test
