// Where `tendril explain`'s packet meets the node: the device or endpoint
// it enters by (and its MACs), the hooks tendril has attached there, in
// the order the kernel runs them, and the frame as it arrives.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "cli/cli.h"
#include "explain/packet_spec.h"
#include "explain/runner.h"
#include "network/addr.h"

namespace tendril::cli {

struct ExplainOpts {
  std::string proto, src, dst, flags, device, hook, src_mac, dst_mac, from_monitor;
  std::string state_dir = "/var/lib/tendril";
  int endpoint = 0;
  int vlan = 0;
  bool reply = false;
};

// One program the packet meets: the object and program the node attached
// there, how the kernel runs it, where.
struct HookPlan {
  std::string hook, object, program;
  RunCtx kind;
  std::string device;
  uint32_t ifindex;
};

// Where the packet enters: a device or an endpoint's veth, its MACs.
struct Where {
  std::string device;
  uint32_t ifindex = 0;
  Mac local_mac{};             // the device's, or the endpoint's gateway (host side)
  std::optional<Mac> ep_mac;   // the endpoint's own
};

absl::StatusOr<Where> ResolveDevice(const std::string& dev);
absl::StatusOr<Where> ResolveEndpoint(const Globals& g, int id);
// The endpoint whose address `ip` is, 0 if none.
int EndpointByAddress(const Globals& g, const IpAddr& ip);
// The hooks to run, each checked to hold tendril's program (else an
// InvalidArgument naming the hook and device).
absl::StatusOr<std::vector<HookPlan>> PlanHooks(const Globals& g, const ExplainOpts& o, const Where& w);
// The frame as it arrives at the first hook (MACs from `w`, --src-mac, --dst-mac).
absl::StatusOr<Bytes> FrameFor(const ExplainOpts& o, const PacketSpec& p, const Where& w);

}  // namespace tendril::cli
