// Minimal journal-friendly logging: one line per message on stderr, with the
// sd-daemon "<N>" priority prefix when running under systemd so journald
// records the level.
#pragma once

#include <string_view>

#include "absl/strings/string_view.h"
#include "absl/strings/str_cat.h"

namespace tendril {

enum class LogLevel { kDebug = 7, kInfo = 6, kWarning = 4, kError = 3 };

void SetLogLevel(LogLevel min_level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, absl::string_view msg);

template <typename... Args>
void Log(LogLevel level, const Args&... args) {
  if (LogEnabled(level)) LogLine(level, absl::StrCat(args...));
}

#define TND_LOG_DEBUG(...) ::tendril::Log(::tendril::LogLevel::kDebug, __VA_ARGS__)
#define TND_LOG_INFO(...) ::tendril::Log(::tendril::LogLevel::kInfo, __VA_ARGS__)
#define TND_LOG_WARN(...) ::tendril::Log(::tendril::LogLevel::kWarning, __VA_ARGS__)
#define TND_LOG_ERROR(...) ::tendril::Log(::tendril::LogLevel::kError, __VA_ARGS__)

}  // namespace tendril
