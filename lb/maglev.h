// Maglev consistent hashing (Eisenbud et al., NSDI 2016), with weights:
// a lookup table of size M (a prime) in which each backend owns a share of
// positions proportional to its weight, and which changes little when the
// backend set changes. Pure computation; the agent writes the result into a
// per-service BPF array.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tendril {

struct MaglevBackend {
  uint32_t id;        // written into the table
  std::string name;   // stable identity that seeds the permutation ("10.0.1.2:8080/TCP")
  uint32_t weight = 1;
};

bool IsPrime(uint32_t n);

// The table (size m, m prime and > the number of backends). Backends with
// weight 0 get no positions. Empty if there are no weighted backends.
std::vector<uint32_t> MaglevTable(const std::vector<MaglevBackend>& backends, uint32_t m);

}  // namespace tendril
