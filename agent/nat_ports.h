// The NAT port range beside the node's own sockets. SNAT (NodePort flows to
// remote backends, pod masquerade) gives each flow a source port of the
// node; were that port one the node's own connections can get, a reply to
// a node socket and a reply to a translated flow would share a tuple, and
// one of them would be delivered to the other. So the range must lie
// outside net.ipv4.ip_local_port_range (the ports connect() picks), and
// the agent adds it to net.ipv4.ip_local_reserved_ports, so that a later
// widening of the ephemeral range still leaves it alone. Both sysctls are
// per network namespace: the agent's.
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tendril {

struct PortRange {
  uint16_t min = 0, max = 0;
};

// "32768\t60999" (the sysctl's format) -> {32768, 60999}.
absl::StatusOr<PortRange> ParseLocalPortRange(const std::string& text);
// The reserved list ("10000-29999,8080") with `r` added, unless a listed
// range covers it already; unchanged text then.
std::string AddReservedPorts(const std::string& reserved, PortRange r);

// Refuses a NAT range that overlaps the ephemeral range (FailedPrecondition
// naming both), then reserves it. `proc_sys_net_ipv4`: normally
// /proc/sys/net/ipv4.
absl::Status ReserveNatPorts(PortRange nat, const std::string& proc_sys_net_ipv4 = "/proc/sys/net/ipv4");

}  // namespace tendril
