// Clocks: monotonic milliseconds (deadlines inside the agent) and the wall
// clock as text (status, GC reports).
#pragma once

#include <time.h>

#include <cstdint>
#include <ctime>
#include <string>

namespace tendril {

inline int64_t MonotonicMs() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

// "2026-12-01T20:32:19Z".
inline std::string NowUtcText() {
  time_t t = ::time(nullptr);
  tm tm_utc{};
  gmtime_r(&t, &tm_utc);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", &tm_utc);
  return buf;
}

}  // namespace tendril
