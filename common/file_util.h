#pragma once

#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/statusor.h"

namespace tendril {

absl::StatusOr<std::string> ReadFile(const std::string& path);

// Writes `contents` to `path` so that a reader sees either the old file or
// the whole new one: temp file in the same directory, fsync, rename, fsync of
// the directory.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, int mode = 0600);

// mkdir -p with `mode` for the directories it creates.
absl::Status MakeDirs(const std::string& path, int mode = 0755);

}  // namespace tendril
