#include "cli/cli.h"

#include <cstdio>

#include "absl/strings/str_join.h"

namespace tendril::cli {

int Fail(const absl::Status& s) {
  std::fprintf(stderr, "Error: %s\n", std::string(s.message()).c_str());
  return absl::IsInvalidArgument(s) || absl::IsNotFound(s) || absl::IsAlreadyExists(s) ||
                 absl::IsResourceExhausted(s)
             ? 2
             : 1;
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

int PrintAnswer(const Cli& c, const absl::StatusOr<nlohmann::json>& r, void (*table)(const nlohmann::json&)) {
  if (!r.ok()) return Fail(r.status());
  if (c.g.json())
    PrintJson(*r);
  else
    table(*r);
  return 0;
}

absl::Status BadInput(const std::vector<std::string>& errors) {
  return absl::InvalidArgumentError(absl::StrJoin(errors, "; ") + " (nothing changed)");
}

}  // namespace tendril::cli
