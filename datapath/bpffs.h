#pragma once

#include <string>

#include "absl/status/statusor.h"

namespace tendril {

// Makes sure `root` is a directory on a BPF filesystem. If the nearest
// existing ancestor is not on bpffs, mounts one: at /sys/fs/bpf when `root`
// lies under it (the conventional place), else at that ancestor.
absl::Status EnsureBpffs(const std::string& root);

bool IsOnBpffs(const std::string& path);

// The first cgroup v2 mount in /proc/mounts.
absl::StatusOr<std::string> FindCgroup2Mount();

// `path` if it is a directory on cgroup v2; the cgroup2 mount if empty.
absl::StatusOr<std::string> ResolveCgroupRoot(const std::string& path);

}  // namespace tendril
