// The socket programs' dry run: bpf_sock's connect program, loaded as a dry
// run, attached (a BPF link) to a throwaway child cgroup of the one the
// node's socket programs are attached to; a child process in it connects.
// The dry-run program records its decision and refuses the connect, so no
// packet leaves, and hands the node's own program (the parent cgroup's,
// which runs after it) an address that is no service. The cgroup and the
// link are gone when this returns, also on failure.
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "explain/packet_spec.h"
#include "explain/runner.h"

namespace tendril {

struct DryConnect {
  tnd_explain rec{};
  std::string program;
  int connect_errno = 0;  // what the child's connect() got (EPERM: refused by the dry run)
};

absl::StatusOr<DryConnect> RunDryConnect(DryRunner& runner, const std::string& cgroup_root, const PacketSpec& p);

}  // namespace tendril
