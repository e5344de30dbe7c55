// `tendril monitor`'s decoder, on ring buffer records of any size and
// content. Invariants: never reads past the record, never crashes, and the
// line it prints is built from the decoded JSON.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "cli/monitor_event.h"

using namespace tendril::cli;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto e = EventFromBytes(data, size);
  if (!e.ok()) {
    if (size >= sizeof(tnd_event)) std::abort();
    return 0;
  }
  nlohmann::json j = DecodeEvent(*e, 0);
  std::string line = EventLine(j);
  if (line.empty() || !j.contains("type")) std::abort();
  (void)j.dump(-1, ' ', false, nlohmann::json::error_handler_t::strict);  // valid UTF-8
  return 0;
}
