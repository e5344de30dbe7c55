#include "test/bench/bench_util.h"

#include <bpf/bpf.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "maps/pinned_map.h"
#include "test/support/tcp.h"

namespace tendril::test {

int BenchMain(int argc, char** argv, int (*run)(bool json)) {
  bool json = false;
  for (int i = 1; i < argc; ++i) {
    if (std::string(argv[i]) != "--json") {
      std::fprintf(stderr, "usage: %s [--json]\n", argv[0]);
      return 2;
    }
    json = true;
  }
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench: needs root\n");
    return 1;
  }
  return run(json);
}

void PrintJson(const nlohmann::json& j) { std::printf("%s\n", j.dump(2).c_str()); }

bool ConnectPath::Round(const char* addr, uint16_t port, int max_n, double max_secs) {
  auto t0 = Clock::now();
  for (int i = 0; i < max_n; ++i) {
    double us = ConnectOnce(addr, port);
    if (us < 0) {
      error = absl::StrCat("connect ", addr, ":", port, ": ", std::strerror(static_cast<int>(-us)));
      secs += Seconds(t0, Clock::now());
      return false;
    }
    lat.push_back(us);
    if (Seconds(t0, Clock::now()) > max_secs) break;
  }
  secs += Seconds(t0, Clock::now());
  return true;
}

double ConnectPath::Percentile(int p) const {
  if (lat.empty()) return 0;
  std::vector<double> v = lat;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, v.size() * static_cast<size_t>(p) / 100)];
}

nlohmann::json ConnectPath::Json() const {
  if (!error.empty() || lat.empty()) return {{"error", error.empty() ? "no samples" : error}};
  return {{"connects", lat.size()}, {"rate_per_s", Rate()}, {"p50_us", Percentile(50)}, {"p99_us", Percentile(99)}};
}

bool WriteFile(const std::string& path, const std::string& data) {
  std::ofstream f(path, std::ios::binary);
  f << data;
  return static_cast<bool>(f);
}

void JoinCgroup(const std::string& cg) { std::ofstream(cg + "/cgroup.procs") << ::getpid() << std::endl; }

long KernelMemKb() {
  std::ifstream f("/proc/meminfo");
  std::string line;
  long sum = 0;
  while (std::getline(f, line)) {
    for (const char* k : {"Slab:", "VmallocUsed:", "Percpu:"})
      if (line.rfind(k, 0) == 0) sum += std::strtol(line.c_str() + std::strlen(k), nullptr, 10);
  }
  return sum;
}

long RssKb(pid_t pid) {
  std::ifstream f(absl::StrCat("/proc/", pid, "/status"));
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("VmRSS:", 0) == 0) return std::strtol(line.c_str() + 6, nullptr, 10);
  return -1;
}

CpuTimes ReadCpuTimes(const std::string& cpu) {
  std::ifstream f("/proc/stat");
  std::string line;
  CpuTimes t;
  while (std::getline(f, line)) {
    std::istringstream in(line);
    std::string name;
    if (!(in >> name) || name != cpu) continue;
    uint64_t v;
    for (int i = 0; i < 10 && in >> v; ++i) {
      t.total += v;
      if (i == 3 || i == 4) t.idle += v;  // idle, iowait
    }
    break;
  }
  return t;
}

double BusyShare(const CpuTimes& a, const CpuTimes& b) {
  const double dt = static_cast<double>(b.total - a.total);
  return dt > 0 ? 1.0 - static_cast<double>(b.idle - a.idle) / dt : 0;
}

double CpuBusy(int ms) {
  const CpuTimes a = ReadCpuTimes();
  std::this_thread::sleep_for(std::chrono::milliseconds(ms));
  return BusyShare(a, ReadCpuTimes());
}

// The kernel frees a deleted namespace's rules in the background (tens of
// seconds for 100000 iptables rules), on any CPU.
void Settle(long mem_before) {
  auto t0 = Clock::now();
  while (Seconds(t0, Clock::now()) < 120 && KernelMemKb() > mem_before + 8192)
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  while (Seconds(t0, Clock::now()) < 150 && CpuBusy(500) > 0.08) {
  }
}

namespace {
// Memory of the map pinned at `path` (with its inner maps), kB; 0 for
// anything else.
long MapKb(const std::string& path) {
  auto fd = OpenPinned(path);
  if (!fd.ok() || !GetMapInfo(fd->get()).ok()) return 0;
  auto bytes = MapBytes(fd->get());
  return bytes.ok() ? static_cast<long>(*bytes / 1024) : 0;
}
}  // namespace

long PinnedMapKb(const std::string& dir) {
  long sum = 0;
  DIR* d = opendir(dir.c_str());
  if (!d) return 0;
  while (dirent* e = readdir(d)) {
    std::string name = e->d_name;
    if (name == "." || name == "..") continue;
    std::string path = dir + "/" + name;
    struct stat st {};
    if (stat(path.c_str(), &st) != 0) continue;
    sum += S_ISDIR(st.st_mode) ? PinnedMapKb(path) : MapKb(path);
  }
  closedir(d);
  return sum;
}

}  // namespace tendril::test
