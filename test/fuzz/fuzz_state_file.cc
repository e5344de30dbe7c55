// The state.json an earlier version wrote, read once to migrate it into the
// state store (a disk, an operator's editor or a crash mid-write can leave
// anything in it). Invariants: parsing never crashes; a state that parses
// prints to a document that parses to the same services, endpoints and
// prefilter.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "agent/state_json.h"
#include "lb/service_json.h"

using namespace tendril;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  auto s = ParseStateJson(text, "state.json");
  if (!s.ok()) return 0;
  auto again = ParseStateJson(StateToJson(*s), "state.json");
  if (!again.ok() || again->prefilter != s->prefilter || again->services.size() != s->services.size() ||
      again->endpoints.size() != s->endpoints.size())
    std::abort();
  for (size_t i = 0; i < s->services.size(); ++i)
    if (ServiceToJson(again->services[i]) != ServiceToJson(s->services[i])) std::abort();
  return 0;
}
