#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tendril {

// Runs argv (PATH lookup), waits, returns its exit status (128+N for a
// signal); stdout and stderr go to *output when given.
absl::StatusOr<int> RunCommand(const std::vector<std::string>& argv, std::string* output);

// As RunCommand, with stdout and stderr kept apart.
absl::StatusOr<int> RunCommandSplit(const std::vector<std::string>& argv, std::string* out,
                                    std::string* err);

}  // namespace tendril
