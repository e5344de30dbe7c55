// The frame builder (explain/frame.h, shared with `tendril explain`) under
// the tests' names.
#pragma once

#include "explain/frame.h"

namespace tendril::test {
using ::tendril::Bytes;
using ::tendril::Frame;
using ::tendril::InetChecksum;
using ::tendril::kMacA;
using ::tendril::kMacB;
using Mac = ::tendril::EthMac;
}  // namespace tendril::test
