// The ports service frontends use, for the datapath's port filter
// (tnd_svc_ports in maps/tendril_maps.h): how many frontend entries hold
// each port, and the bitmap that follows from it. A change's new entries
// are counted before it is written (a port is set before its first frontend
// exists) and its old entries after (cleared after its last is gone).
#ifndef TENDRIL_LB_PORT_REFS_H_
#define TENDRIL_LB_PORT_REFS_H_

#include <array>
#include <cstdint>
#include <vector>

#include "lb/service_codec.h"
#include "maps/tendril_maps.h"

namespace tendril {

class PortRefs {
 public:
  PortRefs() { Reset(); }
  // Nothing counted (a restore counts every service again).
  void Reset();
  void Add(const std::vector<FrontendEntry>& entries);
  void Remove(const std::vector<FrontendEntry>& entries);
  // Whether the bitmap changed since the last Written().
  bool dirty() const { return dirty_; }
  const tnd_svc_ports& bitmap() const { return map_; }
  void Written() { dirty_ = false; }

 private:
  std::array<uint32_t, 65536> refs_{};
  tnd_svc_ports map_{};
  bool dirty_ = false;
};

}  // namespace tendril

#endif  // TENDRIL_LB_PORT_REFS_H_
