// Attaching programs to hooks, atomically where the kernel allows it:
//  - XDP through netlink in native, generic or offload mode (replace with
//    XDP_FLAGS_REPLACE: no moment without a program);
//  - tc ingress/egress through TCX links where the kernel has them (probed),
//    else through clsact with tendril's own priority and handle (replace in
//    place), leaving other filters on the device alone;
//  - cgroup sock_addr programs through pinned BPF links (multi-attach;
//    replace with bpf_link_update).
// Only programs whose names start with "tnd_" are ever replaced or detached:
// an attach that would clobber someone else's program is refused.
#pragma once

#include <linux/bpf.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"
#include "datapath/xdp_mode.h"

namespace tendril {

inline constexpr absl::string_view kOwnedProgPrefix = "tnd_";

// Was this program attached by tendril (by its name)?
bool IsOwnedProgram(const std::string& prog_name);

absl::StatusOr<int> IfIndex(const std::string& ifname);

struct XdpAttachment {
  uint32_t prog_id = 0;
  std::string prog_name;
  XdpMode mode = XdpMode::kNative;  // native, generic or offload
};

// What is attached at XDP on the device now (in the caller's netns).
absl::StatusOr<std::optional<XdpAttachment>> QueryXdp(const std::string& ifname);

// Attaches `prog_fd`; `mode` is native, generic, offload or auto (native, else
// generic). Returns the mode used. On failure, whatever was attached before
// is still attached and the error names the device, the mode and the reason.
absl::StatusOr<XdpMode> AttachXdp(const std::string& ifname, int prog_fd, XdpMode mode);

// Detaches tendril's XDP program from the device, if one is attached.
absl::Status DetachXdp(const std::string& ifname);

enum class TcDir { kIngress, kEgress };
enum class TcBackend { kTcx, kClsact };
absl::string_view TcDirName(TcDir d);
absl::string_view TcBackendName(TcBackend b);

// Does the running kernel have TCX links (6.6+)? Probed once by asking the
// kernel to create a TCX link on a nonexistent device, cached.
bool KernelHasTcx();

inline constexpr uint32_t kTcPriority = 1;
inline constexpr uint32_t kTcHandle = 0x7e4d;

struct TcAttachOptions {
  std::string ifname;
  TcDir dir = TcDir::kIngress;
  int prog_fd = -1;
  // Directory (on bpffs) where TCX links are pinned so they outlive the agent.
  std::string link_dir;
  // Use clsact even where TCX exists.
  bool force_clsact = false;
};

absl::StatusOr<TcBackend> AttachTc(const TcAttachOptions& opts);
absl::Status DetachTc(const std::string& ifname, TcDir dir, const std::string& link_dir);

struct TcAttachment {
  TcBackend backend;
  uint32_t prog_id;
};
// tendril's tc program on the device in that direction, if any.
absl::StatusOr<std::optional<TcAttachment>> QueryTc(const std::string& ifname, TcDir dir,
                                                    const std::string& link_dir);

// Attaches through a BPF link pinned at `link_pin_path`; if the pin exists, the
// link's program is replaced atomically.
absl::Status AttachCgroup(const std::string& cgroup_path, bpf_attach_type type, int prog_fd,
                          const std::string& link_pin_path);
absl::Status DetachCgroup(const std::string& link_pin_path);

}  // namespace tendril
