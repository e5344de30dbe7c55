// The programs the agent attaches, by object and hook. Tail-called programs
// are not here: each object's prog array names them (bpf/bpf_*.c).
#pragma once

#include <linux/bpf.h>

namespace tendril {

// bpf_xdp.o: XDP on native devices.
inline constexpr const char* kXdpEntryProgram = "tnd_xdp_entry";
// bpf_host.o: tc on native devices.
inline constexpr const char* kHostIngressProgram = "tnd_host_ingress";
inline constexpr const char* kHostEgressProgram = "tnd_host_egress";
// bpf_lxc.o: tc on endpoints' veths.
inline constexpr const char* kLxcIngressProgram = "tnd_lxc_ingress";
inline constexpr const char* kLxcEgressProgram = "tnd_lxc_egress";

// bpf_sock.o: the socket programs and the cgroup hook each attaches to.
struct SockHook {
  const char* program;
  bpf_attach_type type;
  bool v6;
};
inline constexpr SockHook kSockHooks[] = {
    {"tnd_sock_connect4", BPF_CGROUP_INET4_CONNECT, false},
    {"tnd_sock_sendmsg4", BPF_CGROUP_UDP4_SENDMSG, false},
    {"tnd_sock_recvmsg4", BPF_CGROUP_UDP4_RECVMSG, false},
    {"tnd_sock_getpeername4", BPF_CGROUP_INET4_GETPEERNAME, false},
    {"tnd_sock_connect6", BPF_CGROUP_INET6_CONNECT, true},
    {"tnd_sock_sendmsg6", BPF_CGROUP_UDP6_SENDMSG, true},
    {"tnd_sock_recvmsg6", BPF_CGROUP_UDP6_RECVMSG, true},
    {"tnd_sock_getpeername6", BPF_CGROUP_INET6_GETPEERNAME, true},
};

}  // namespace tendril
