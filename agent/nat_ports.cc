#include "agent/nat_ports.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "common/file_util.h"
#include "common/status.h"

namespace tendril {
namespace {

// A sysctl is written with one write(2).
absl::Status WriteSysctl(const std::string& path, const std::string& value) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open ", path));
  ssize_t n = ::write(fd, value.data(), value.size());
  int err = errno;
  ::close(fd);
  if (n != static_cast<ssize_t>(value.size())) return ErrnoError(err, absl::StrCat("write \"", value, "\" to ", path));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<PortRange> ParseLocalPortRange(const std::string& text) {
  std::vector<std::string> f = absl::StrSplit(text, absl::ByAnyChar(" \t\n"), absl::SkipEmpty());
  uint32_t lo = 0, hi = 0;
  if (f.size() != 2 || !absl::SimpleAtoi(f[0], &lo) || !absl::SimpleAtoi(f[1], &hi) || lo > hi || hi > 65535)
    return absl::InvalidArgumentError(absl::StrCat("ip_local_port_range: cannot read \"", text, "\""));
  return PortRange{static_cast<uint16_t>(lo), static_cast<uint16_t>(hi)};
}

std::string AddReservedPorts(const std::string& reserved, PortRange r) {
  std::string trimmed(absl::StripAsciiWhitespace(reserved));
  for (absl::string_view item : absl::StrSplit(trimmed, ',', absl::SkipEmpty())) {
    std::vector<std::string> ends = absl::StrSplit(item, '-');
    uint32_t lo = 0, hi = 0;
    if (!absl::SimpleAtoi(ends[0], &lo)) continue;
    hi = lo;
    if (ends.size() == 2 && !absl::SimpleAtoi(ends[1], &hi)) continue;
    if (lo <= r.min && r.max <= hi) return trimmed;
  }
  std::string add = absl::StrCat(r.min, "-", r.max);
  return trimmed.empty() ? add : absl::StrCat(trimmed, ",", add);
}

absl::Status ReserveNatPorts(PortRange nat, const std::string& dir) {
  TND_ASSIGN_OR_RETURN(std::string text, ReadFile(dir + "/ip_local_port_range"));
  TND_ASSIGN_OR_RETURN(PortRange eph, ParseLocalPortRange(text));
  if (nat.min <= eph.max && eph.min <= nat.max)
    return absl::FailedPreconditionError(absl::StrCat(
        "nat-port-range ", nat.min, "-", nat.max, " overlaps net.ipv4.ip_local_port_range ", eph.min, "-", eph.max,
        ": the node's own connections would get ports that SNAT hands out, and replies would go to the wrong "
        "one; choose a nat-port-range outside it or narrow ip_local_port_range"));
  TND_ASSIGN_OR_RETURN(std::string reserved, ReadFile(dir + "/ip_local_reserved_ports"));
  std::string want = AddReservedPorts(reserved, nat);
  if (want == absl::StripAsciiWhitespace(reserved)) return absl::OkStatus();
  return WriteSysctl(dir + "/ip_local_reserved_ports", want + "\n");
}

}  // namespace tendril
