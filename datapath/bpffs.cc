#include "datapath/bpffs.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {
namespace {
constexpr long kBpfFsMagic = 0xcafe4a11;
constexpr long kCgroup2Magic = 0x63677270;
}  // namespace

absl::StatusOr<std::string> ResolveCgroupRoot(const std::string& path) {
  std::string p = path;
  if (p.empty()) {
    TND_ASSIGN_OR_RETURN(p, FindCgroup2Mount());
  }
  struct statfs st;
  if (::statfs(p.c_str(), &st) != 0) return ErrnoError(errno, absl::StrCat("cgroup-root ", p));
  if (static_cast<long>(st.f_type) != kCgroup2Magic)
    return absl::InvalidArgumentError(absl::StrCat("cgroup-root ", p, " is not on a cgroup v2 filesystem"));
  return p;
}

bool IsOnBpffs(const std::string& path) {
  struct statfs st;
  return ::statfs(path.c_str(), &st) == 0 && static_cast<long>(st.f_type) == kBpfFsMagic;
}

absl::Status EnsureBpffs(const std::string& root) {
  if (root.empty() || root[0] != '/')
    return absl::InvalidArgumentError(absl::StrCat("bpffs root \"", root, "\" must be absolute"));
  std::filesystem::path p(root);
  std::filesystem::path existing = p;
  while (!std::filesystem::exists(existing) && existing.has_parent_path() &&
         existing != existing.parent_path())
    existing = existing.parent_path();
  if (!IsOnBpffs(existing.string())) {
    std::string target = existing.string();
    if (absl::StartsWith(root, "/sys/fs/bpf/") || root == "/sys/fs/bpf") target = "/sys/fs/bpf";
    if (!IsOnBpffs(target)) {
      TND_RETURN_IF_ERROR(MakeDirs(target, 0700));
      if (::mount("bpf", target.c_str(), "bpf", 0, "mode=0700") != 0)
        return ErrnoError(errno, absl::StrCat("mount bpffs at ", target));
      TND_LOG_INFO("mounted bpffs at ", target);
    }
  }
  TND_RETURN_IF_ERROR(MakeDirs(root, 0700));
  if (!IsOnBpffs(root))
    return absl::FailedPreconditionError(
        absl::StrCat("bpffs root ", root, " is not on a BPF filesystem"));
  return absl::OkStatus();
}

absl::StatusOr<std::string> FindCgroup2Mount() {
  std::ifstream in("/proc/mounts");
  if (!in) return absl::NotFoundError("cannot read /proc/mounts");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ss(line);
    std::string dev, mnt, type;
    ss >> dev >> mnt >> type;
    if (type == "cgroup2") return mnt;
  }
  return absl::NotFoundError("no cgroup2 filesystem in /proc/mounts");
}

}  // namespace tendril
