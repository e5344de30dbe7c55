// The frame reader (explain/frame_inspect.h, shared with `tendril explain`)
// under the tests' names.
#pragma once

#include "explain/frame_inspect.h"
#include "test/support/packet.h"

namespace tendril::test {
using ::tendril::FixIpv4HeaderChecksum;
using ::tendril::FrameFacts;
using ::tendril::Inspect;
using ::tendril::Ipv4HeaderChecksumOk;
}  // namespace tendril::test
