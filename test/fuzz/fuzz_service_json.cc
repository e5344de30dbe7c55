// A service as JSON (`service add`'s and `service apply -f`'s wire form, and
// the state file's). Invariants: parsing never throws or crashes; a service
// that parses and validates has bounded slots; writing it and reading it back
// gives the same service.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lb/service.h"
#include "lb/service_json.h"
#include "common/json_fields.h"

using namespace tendril;

namespace {
bool Same(const Service& a, const Service& b) {
  if (a.id != b.id || !(a.frontend == b.frontend) || a.type != b.type || a.algorithm != b.algorithm ||
      a.affinity_timeout != b.affinity_timeout || a.backends.size() != b.backends.size())
    return false;
  for (size_t i = 0; i < a.backends.size(); ++i) {
    const Backend &x = a.backends[i], &y = b.backends[i];
    if (x.id != y.id || x.ip != y.ip || x.port != y.port || x.weight != y.weight || x.state != y.state) return false;
  }
  if (!a.HasExternal()) return true;
  return a.external_ips == b.external_ips && a.traffic_policy == b.traffic_policy && a.dsr == b.dsr &&
         a.source_ranges == b.source_ranges && (!a.HasNodePort() || a.node_port == b.node_port) &&
         a.health_check_port == b.health_check_port;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto j = jsonf::Parse(std::string(reinterpret_cast<const char*>(data), size));
  if (!j.ok()) return 0;
  auto s = ServiceFromJson(*j);
  if (!s.ok()) return 0;
  ServiceLimits limits;
  if (!ValidateService(*s, limits).ok()) return 0;
  if (MaxSlots(*s) > limits.max_slots) std::abort();
  std::string text = jsonf::Dump(ServiceToJson(*s));
  auto back = ServiceFromJson(*jsonf::Parse(text));
  if (!back.ok() || !Same(*s, *back)) std::abort();
  return 0;
}
