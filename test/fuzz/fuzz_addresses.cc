// Addresses, CIDRs, frontends and backends as operators and API clients write
// them. Invariant: whatever parses prints as text that parses to the same
// value (what `service list` shows can be given back to `service add`).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "lb/service.h"
#include "network/cidr.h"

using namespace tendril;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  if (auto c = ParseCidr(text); c.ok()) {
    auto again = ParseCidr(c->ToString());
    if (!again.ok() || !(*again == *c)) std::abort();
  }
  if (auto ip = ParseIp(text); ip.ok()) {
    auto again = ParseIp(ip->ToString());
    if (!again.ok() || !(*again == *ip)) std::abort();
  }
  if (auto f = ParseFrontend(text); f.ok()) {
    auto again = ParseFrontend(f->ToString());
    if (!again.ok() || !(*again == *f)) std::abort();
  }
  if (auto b = ParseBackend(text); b.ok()) {
    if (b->weight > 1000 || b->port == 0) std::abort();
    auto again = ParseBackend(absl::StrCat(b->Address(), "@", b->weight));
    if (!again.ok() || again->ip != b->ip || again->port != b->port || again->weight != b->weight) std::abort();
  }
  (void)ParseHostPort(text);
  return 0;
}
