// Work inside another network namespace, and per-device settings that only
// a socket in the device's namespace can change.
#ifndef TENDRIL_NETWORK_NETNS_H_
#define TENDRIL_NETWORK_NETNS_H_

#include <string>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"

namespace tendril {

// Runs fn on a short-lived thread that has joined the network namespace at
// netns_path (setns moves only the calling thread). Sockets fn opens stay in
// that namespace after it returns.
absl::Status InNetns(const std::string& netns_path, absl::FunctionRef<absl::Status()> fn);

// Turns generic receive offload on or off for device `ifname` in the
// caller's namespace (the ethtool ioctl). On a veth, GRO on runs its
// receive side under NAPI, which is what lets XDP redirect frames into it.
absl::Status SetGro(const std::string& ifname, bool on);

}  // namespace tendril

#endif  // TENDRIL_NETWORK_NETNS_H_
