// The state file the agent reads at start (written by it, but a disk, an
// operator's editor or a crash mid-write can leave anything). Invariants:
// loading never crashes; a state that loads saves to a file that loads to
// the same services, endpoints and prefilter.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <string>

#include "agent/state.h"
#include "lb/service_json.h"
#include "common/file_util.h"

using namespace tendril;

namespace {
const std::string& Dir() {
  static const std::string dir = [] {
    char tmpl[] = "/tmp/tnd-fuzz-stateXXXXXX";
    char* d = ::mkdtemp(tmpl);
    if (!d) std::abort();
    return std::string(d);
  }();
  return dir;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  StateStore store(Dir());
  {
    std::ofstream out(store.path(), std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
  }
  auto s = store.Load();
  if (!s.ok()) return 0;
  if (!store.Save(*s).ok()) std::abort();
  auto again = store.Load();
  if (!again.ok() || again->prefilter != s->prefilter || again->services.size() != s->services.size() ||
      again->endpoints.size() != s->endpoints.size())
    std::abort();
  for (size_t i = 0; i < s->services.size(); ++i)
    if (ServiceToJson(again->services[i]) != ServiceToJson(s->services[i])) std::abort();
  return 0;
}
