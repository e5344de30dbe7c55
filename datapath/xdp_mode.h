// XDP attach modes, as settings name them (xdp-mode, device-xdp-mode).
#pragma once

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tendril {

enum class XdpMode { kNative, kGeneric, kOffload, kAuto, kDisabled };

absl::StatusOr<XdpMode> ParseXdpMode(absl::string_view s);
absl::string_view XdpModeName(XdpMode m);

}  // namespace tendril
