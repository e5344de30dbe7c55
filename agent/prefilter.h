// Keeps the prefilter LPM maps equal to the desired set of denied CIDRs with
// the minimum of writes.
#pragma once

#include <memory>
#include <set>
#include <vector>

#include "absl/status/statusor.h"
#include "network/cidr.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"

namespace tendril {

using PrefilterV4Map = Map<tnd_lpm_v4_key, tnd_prefilter_val>;
using PrefilterV6Map = Map<tnd_lpm_v6_key, tnd_prefilter_val>;
using PrefilterStateMap = Map<uint32_t, tnd_prefilter_state>;

// Parses every text; the error names each one that is bad.
absl::StatusOr<std::vector<Cidr>> ParseCidrList(const std::vector<std::string>& texts);

// Checks a desired set against the maps' capacity.
absl::Status CheckPrefilterCapacity(const std::set<Cidr>& want);

// The first level of the deny lists `set`: per family and first 16 bits of
// an address, TND_PF_DENY where an entry of /16 or shorter covers them,
// else TND_PF_TRIE where a longer entry starts there, else TND_PF_PASS.
std::unique_ptr<tnd_prefilter_state> PrefilterLevel(const std::set<Cidr>& set);

// While the tries change from `from` to `to`: a bucket whose answer is the
// same in both keeps it, every other asks the trie.
std::unique_ptr<tnd_prefilter_state> PrefilterTransition(const tnd_prefilter_state& from,
                                                         const tnd_prefilter_state& to);

class Prefilter {
 public:
  // `state`: the tries' first level (PrefilterLevel), which the programs
  // read before any trie.
  Prefilter(PrefilterV4Map v4, PrefilterV6Map v6, PrefilterStateMap state)
      : v4_(std::move(v4)), v6_(std::move(v6)), state_(std::move(state)) {}

  // What the kernel maps hold now.
  absl::StatusOr<std::set<Cidr>> Current() const;

  struct SyncStats {
    int added = 0;
    int removed = 0;
  };
  // Makes the maps hold exactly `want`: adds first, then removes. If a write
  // fails, restores what the maps held before and returns the error. The
  // first level (tnd_prefilter_state) asks the trie in every bucket whose
  // answer changes while the entries change, and is written whole after.
  absl::StatusOr<SyncStats> Sync(const std::set<Cidr>& want);

 private:
  absl::Status Insert(const Cidr& c);
  absl::Status Remove(const Cidr& c);
  absl::Status WriteState(const tnd_prefilter_state& level);

  PrefilterV4Map v4_;
  PrefilterV6Map v6_;
  PrefilterStateMap state_;
};

}  // namespace tendril
