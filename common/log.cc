#include "common/log.h"

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>

namespace tendril {
namespace {

LogLevel g_min_level = LogLevel::kInfo;
std::mutex g_mu;

const char* LevelName(LogLevel l) {
  switch (l) {
    case LogLevel::kDebug: return "debug";
    case LogLevel::kInfo: return "info";
    case LogLevel::kWarning: return "warning";
    case LogLevel::kError: return "error";
  }
  return "?";
}

bool UnderJournal() {
  static const bool journal = std::getenv("JOURNAL_STREAM") != nullptr;
  return journal;
}

}  // namespace

void SetLogLevel(LogLevel min_level) { g_min_level = min_level; }

bool LogEnabled(LogLevel level) { return static_cast<int>(level) <= static_cast<int>(g_min_level); }

void LogLine(LogLevel level, absl::string_view msg) {
  std::lock_guard<std::mutex> lock(g_mu);
  if (UnderJournal()) {
    std::fprintf(stderr, "<%d>%.*s\n", static_cast<int>(level), static_cast<int>(msg.size()), msg.data());
  } else {
    char ts[32];
    timespec now{};
    clock_gettime(CLOCK_REALTIME, &now);
    tm tm_utc{};
    gmtime_r(&now.tv_sec, &tm_utc);
    std::strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm_utc);
    std::fprintf(stderr, "%s.%03ldZ %s %.*s\n", ts, now.tv_nsec / 1000000, LevelName(level),
                 static_cast<int>(msg.size()), msg.data());
  }
  std::fflush(stderr);
}

}  // namespace tendril
