// Error helpers: absl::Status values that carry the operation, the object and
// the errno text, and the two propagation macros absl does not ship publicly.
#pragma once

#include <cerrno>
#include <string>
#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace tendril {

// "what: strerror(err) (errno N)" with the absl code that matches the errno.
absl::Status ErrnoError(int err, absl::string_view what);

// Prefixes a status's message with context, keeping its code.
absl::Status Annotate(const absl::Status& s, absl::string_view context);

// Appends detail (for example a verifier log) after a status's message.
absl::Status WithDetail(const absl::Status& s, absl::string_view detail);

}  // namespace tendril

#define TND_CONCAT_INNER(a, b) a##b
#define TND_CONCAT(a, b) TND_CONCAT_INNER(a, b)

#define TND_RETURN_IF_ERROR(expr)                  \
  do {                                             \
    ::absl::Status tnd_status_ = (expr);           \
    if (!tnd_status_.ok()) return tnd_status_;     \
  } while (0)

#define TND_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                              \
  if (!tmp.ok()) return tmp.status();             \
  lhs = std::move(tmp).value()

#define TND_ASSIGN_OR_RETURN(lhs, expr) \
  TND_ASSIGN_OR_RETURN_IMPL(TND_CONCAT(tnd_statusor_, __LINE__), lhs, expr)
