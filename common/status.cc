#include "common/status.h"

#include <cstring>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"

namespace tendril {

absl::Status ErrnoError(int err, absl::string_view what) {
  if (err < 0) err = -err;
  // 524 is the kernel-internal ENOTSUPP, which leaks out of some BPF paths
  // and which libc has no text for.
  constexpr int kKernelEnotsupp = 524;
  std::string text = err == kKernelEnotsupp ? "Operation not supported by the kernel or driver"
                                            : std::strerror(err);
  std::string msg = absl::StrCat(what, ": ", text, " (errno ", err, ")");
  switch (err) {
    case ENOENT:
    case ENODEV:
    case ESRCH:
      return absl::NotFoundError(msg);
    case EEXIST:
      return absl::AlreadyExistsError(msg);
    case EPERM:
    case EACCES:
      return absl::PermissionDeniedError(msg);
    case EINVAL:
    case E2BIG:
      return absl::InvalidArgumentError(msg);
    case EOPNOTSUPP:
    case kKernelEnotsupp:
      return absl::UnimplementedError(msg);
    case ENOSPC:
    case ENOMEM:
      return absl::ResourceExhaustedError(msg);
    case EBUSY:
    case EAGAIN:
      return absl::UnavailableError(msg);
    default:
      return absl::InternalError(msg);
  }
}

absl::Status Annotate(const absl::Status& s, absl::string_view context) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat(context, ": ", s.message()));
}

absl::Status WithDetail(const absl::Status& s, absl::string_view detail) {
  if (s.ok() || detail.empty()) return s;
  return absl::Status(s.code(), absl::StrCat(s.message(), "\n", detail));
}

}  // namespace tendril
