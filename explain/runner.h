// Runs a frame through the node's own programs in a dry run (bpf/lib/explain.h,
// datapath/dry_run.h): each object the node runs loaded again beside the
// attached ones with tnd_dry_run set and the pinned maps reused, then
// BPF_PROG_TEST_RUN, and the record the run left (bpf/lib/explain.h).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "datapath/loader.h"
#include "explain/frame.h"
#include "maps/abi.h"

namespace tendril {

struct DryRunOutcome {
  uint32_t retval = 0;  // XDP_* or TC_ACT_*
  Bytes out;            // the frame as the program left it
  tnd_explain rec{};    // what the path did (maps/tendril_maps_explain.h)
};

// The program fd's hook kind: XDP or tc (sched_cls).
enum class RunCtx { kXdp, kTc };

// One BPF_PROG_TEST_RUN of `frame` through `prog_fd` (any program of the
// kind), as received on / seen by device `ifindex` (0: no context, the
// kernel's loopback); the record is not read.
absl::StatusOr<DryRunOutcome> TestRunFrame(int prog_fd, RunCtx kind, const Bytes& frame, uint32_t ifindex);

class DryRunner {
 public:
  // `objects`: object name (bpf_xdp, bpf_host, bpf_lxc) -> .o path, as the
  // agent recorded them; `pin_root`: the node's bpffs root. An object is
  // loaded on first use.
  DryRunner(std::map<std::string, std::string> objects, std::string pin_root)
      : objects_(std::move(objects)), pin_root_(std::move(pin_root)) {}

  // `frame` through `program` of `object`, as received on (XDP) or seen by
  // (tc) device `ifindex` of the caller's network namespace.
  absl::StatusOr<DryRunOutcome> Run(const std::string& object, const std::string& program, RunCtx kind,
                                    const Bytes& frame, uint32_t ifindex);

  // For programs the caller runs itself (the socket programs, attached to a
  // throwaway cgroup: explain/sock_run.h): a program of the dry-run load,
  // and its record cleared before and read after.
  absl::StatusOr<int> ProgramFd(const std::string& object, const std::string& program);
  absl::Status ClearRecord(const std::string& object);
  absl::StatusOr<tnd_explain> Record(const std::string& object);

 private:
  absl::StatusOr<BpfObject*> Object(const std::string& name);

  std::map<std::string, std::string> objects_;
  std::string pin_root_;
  std::map<std::string, std::unique_ptr<BpfObject>> loaded_;
};

}  // namespace tendril
