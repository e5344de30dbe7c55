// The datapath's drop and trace events as `tendril monitor` shows them:
// decoded from the bytes the BPF programs wrote to the ring buffer (which the
// CLI does not trust: a record of the wrong size or with values the ABI does
// not name is shown as such, never read past).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "maps/tendril_maps.h"

namespace tendril::cli {

// A ring buffer record as an event; an error when it is not one's size.
absl::StatusOr<tnd_event> EventFromBytes(const void* data, size_t size);
// The event as `-o json` shows it; times from the monotonic clock
// (bpf_ktime_get_ns) are shifted by mono_to_real_ns to wall-clock time.
nlohmann::json DecodeEvent(const tnd_event& e, int64_t mono_to_real_ns);
// One line for the table output, from DecodeEvent's JSON.
std::string EventLine(const nlohmann::json& j);

}  // namespace tendril::cli
