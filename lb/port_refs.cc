#include "lb/port_refs.h"

namespace tendril {

void PortRefs::Reset() {
  refs_.fill(0);
  map_ = tnd_svc_ports{};
  map_.valid = 1;
  dirty_ = true;
}

void PortRefs::Add(const std::vector<FrontendEntry>& entries) {
  for (const FrontendEntry& e : entries) {
    const uint16_t p = e.frontend.port;
    if (refs_[p]++ == 0) {
      map_.bits[p >> 6] |= uint64_t{1} << (p & 63);
      dirty_ = true;
    }
  }
}

void PortRefs::Remove(const std::vector<FrontendEntry>& entries) {
  for (const FrontendEntry& e : entries) {
    const uint16_t p = e.frontend.port;
    if (refs_[p] == 0) continue;  // not counted (cannot happen; never below zero)
    if (--refs_[p] == 0) {
      map_.bits[p >> 6] &= ~(uint64_t{1} << (p & 63));
      dirty_ = true;
    }
  }
}

}  // namespace tendril
