#include "datapath/xdp_mode.h"

#include "absl/strings/str_cat.h"

namespace tendril {
namespace {
// Each mode and its name: the one list Parse and Name read.
constexpr std::pair<XdpMode, absl::string_view> kModes[] = {
    {XdpMode::kNative, "native"}, {XdpMode::kGeneric, "generic"}, {XdpMode::kOffload, "offload"},
    {XdpMode::kAuto, "auto"},     {XdpMode::kDisabled, "disabled"},
};
}  // namespace

absl::StatusOr<XdpMode> ParseXdpMode(absl::string_view s) {
  for (const auto& [mode, name] : kModes)
    if (s == name) return mode;
  return absl::InvalidArgumentError(
      absl::StrCat("invalid XDP mode \"", s, "\": expected native, generic, offload, auto or disabled"));
}

absl::string_view XdpModeName(XdpMode m) {
  for (const auto& [mode, name] : kModes)
    if (m == mode) return name;
  return "?";
}

}  // namespace tendril
