#include "lb/maglev.h"

#include <algorithm>

namespace tendril {
namespace {

uint64_t Fnv1a64(const std::string& s, uint64_t seed) {
  uint64_t h = 0xcbf29ce484222325ULL ^ seed;
  for (unsigned char c : s) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  // Final avalanche so that similar names spread.
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdULL;
  h ^= h >> 33;
  return h;
}

}  // namespace

bool IsPrime(uint32_t n) {
  if (n < 2) return false;
  for (uint32_t d = 2; static_cast<uint64_t>(d) * d <= n; ++d)
    if (n % d == 0) return false;
  return true;
}

std::vector<uint32_t> MaglevTable(const std::vector<MaglevBackend>& input, uint32_t m) {
  // Order by name so that the table does not depend on the order in which
  // backends were declared.
  std::vector<MaglevBackend> backends;
  for (const auto& b : input)
    if (b.weight > 0) backends.push_back(b);
  if (backends.empty() || m == 0) return {};
  std::sort(backends.begin(), backends.end(),
            [](const MaglevBackend& a, const MaglevBackend& b) { return a.name < b.name; });

  const size_t n = backends.size();
  // Each backend's preference list is offset, offset + skip, ... (mod m):
  // `pos` is its next candidate, stepped by addition, not a division.
  std::vector<uint32_t> pos(n), skip(n);
  uint32_t max_weight = 0;
  for (size_t i = 0; i < n; ++i) {
    pos[i] = static_cast<uint32_t>(Fnv1a64(backends[i].name, 0x5eed0ff5e7ULL) % m);
    skip[i] = static_cast<uint32_t>(Fnv1a64(backends[i].name, 0x5eed5c1bULL) % (m - 1) + 1);
    max_weight = std::max(max_weight, backends[i].weight);
  }
  std::vector<uint32_t> table(m, 0);
  std::vector<uint8_t> taken(m, 0);
  std::vector<uint64_t> credit(n, 0);
  uint32_t filled = 0;
  // Each round every backend earns its weight in credit and claims one
  // position per max_weight of credit: shares follow the weights.
  while (filled < m) {
    for (size_t i = 0; i < n && filled < m; ++i) {
      credit[i] += backends[i].weight;
      while (credit[i] >= max_weight && filled < m) {
        credit[i] -= max_weight;
        uint32_t p;
        do {
          p = pos[i];
          pos[i] += skip[i];
          if (pos[i] >= m) pos[i] -= m;
        } while (taken[p]);
        taken[p] = 1;
        table[p] = backends[i].id;
        ++filled;
      }
    }
  }
  return table;
}

}  // namespace tendril
