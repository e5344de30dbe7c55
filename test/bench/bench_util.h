// What the benchmarks share: the entry point (root check, --json), how
// results are printed, connect rounds with their rate and percentiles, and
// readings of the machine (kernel memory, RSS, CPU, pinned maps' memory).
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tendril::test {

using Clock = std::chrono::steady_clock;
inline double Seconds(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// The value of bench_pass.c's bench_frame map (test/progs/bench_pass.c):
// the frame's first bytes that its wrappers and its XDP sender write back
// every run, and what they vary.
constexpr size_t kBenchHead = 64;  // BENCH_HEAD
struct BenchFrame {
  uint8_t head[kBenchHead];
  uint32_t vary_sport;
  uint32_t sport_off;
  uint32_t mark;  // tc: the skb's mark
};

// main() of a benchmark whose only flag is --json: refuses to run without
// root, then `run(json)`.
int BenchMain(int argc, char** argv, int (*run)(bool json));
// The machine-readable form of a benchmark's figures, on stdout.
void PrintJson(const nlohmann::json& j);

// Connects (connect + close) to one address: latencies and time spent.
struct ConnectPath {
  std::vector<double> lat;  // us
  double secs = 0;
  std::string error;
  // Up to `max_n` connects or `max_secs` seconds, whichever ends first;
  // false (and `error` set) when a connect fails.
  bool Round(const char* addr, uint16_t port, int max_n, double max_secs = 1e9);
  double Rate() const { return secs > 0 ? static_cast<double>(lat.size()) / secs : 0; }
  double Percentile(int p) const;
  // {connects, rate_per_s, p50_us, p99_us}, or {error}.
  nlohmann::json Json() const;
};

bool WriteFile(const std::string& path, const std::string& data);
// Moves this process into cgroup `cg` (its socket programs apply to it).
void JoinCgroup(const std::string& cg);
// Slab + VmallocUsed + Percpu of /proc/meminfo, kB.
long KernelMemKb();
long RssKb(pid_t pid);
// Jiffies of one line of /proc/stat ("cpu": all CPUs, "cpu1": CPU 1);
// idle counts iowait too.
struct CpuTimes {
  uint64_t total = 0, idle = 0;
};
CpuTimes ReadCpuTimes(const std::string& cpu = "cpu");
// The busy share between two readings (0 when no time passed).
double BusyShare(const CpuTimes& a, const CpuTimes& b);
// Busy share of all CPUs over `ms` milliseconds, from /proc/stat.
double CpuBusy(int ms);
// Waits (bounded) until kernel memory is back near `mem_before` and the
// machine is quiet: a deleted namespace's rules are freed in the background.
void Settle(long mem_before);
// Sum of memlock of every map pinned under `dir` (recursively), kB.
long PinnedMapKb(const std::string& dir);

}  // namespace tendril::test
