// Where everything lives on bpffs, under the agent's root (bpffs-root,
// /sys/fs/bpf/tendril by default). The one place that knows the layout:
//   ROOT/tnd_*                 the maps (pinned by name, see maps/abi.h)
//   ROOT/calls/<map>_<prog id> the prog arrays of each loaded entry program
//   ROOT/links/cg_<program>    cgroup links of the socket programs
//   ROOT/links/tcx_<dev>_<dir> tcx links of the tc programs
#pragma once

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace tendril {

class BpffsPaths {
 public:
  explicit BpffsPaths(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }
  std::string Map(absl::string_view name) const { return absl::StrCat(root_, "/", name); }
  std::string CallsDir() const { return root_ + "/calls"; }
  std::string LinksDir() const { return root_ + "/links"; }
  std::string CgroupLink(absl::string_view program) const { return absl::StrCat(LinksDir(), "/cg_", program); }

 private:
  std::string root_;
};

}  // namespace tendril
