// Helpers for tests that use the real kernel: root check, bpffs pin roots,
// network namespaces, child processes. Every resource is named with the
// "tndt" prefix and removed by its destructor; test/cleanup-leftovers.sh
// removes what a crashed test could not.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "absl/status/statusor.h"
#include "test/support/packet.h"

namespace tendril::test {

#define TND_REQUIRE_ROOT()                                              \
  do {                                                                  \
    if (::geteuid() != 0) GTEST_SKIP() << "needs root (CAP_BPF, CAP_NET_ADMIN)"; \
  } while (0)

// "tndt<pid><tag>", short enough for device and namespace names.
std::string UniqueName(const std::string& tag);

// Path of an object built by Makefile.bpf (build/bpf/<name>.o).
std::string BpfObjectPath(const std::string& name);
std::string BinaryPath(const std::string& name);  // tendril, tendril-agent

// Flags every test agent gets: with TENDRIL_TEST_PREBUILT_BPF=1 (the kernel
// matrix VM has no clang) the prebuilt objects instead of a run-time build;
// otherwise a BPF object cache shared by the run's agents (each distinct
// config header is compiled once), unless `shared_bpf_cache` is false (the
// cache's own tests: each agent's state dir holds its cache).
bool PrebuiltBpfOnly();
std::vector<std::string> AgentTestFlags(bool shared_bpf_cache = true);

// A fresh directory on bpffs under /sys/fs/bpf, removed with all its pins.
class TempPinRoot {
 public:
  TempPinRoot();
  ~TempPinRoot();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A temporary directory under /tmp, removed recursively.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A child cgroup (v2) named tndt...; processes left in it are moved back to
// the root before it is removed.
class TempCgroup {
 public:
  TempCgroup();
  ~TempCgroup();
  const std::string& path() const { return path_; }
  // Runs argv inside this cgroup and, if `ns` is given, that network namespace
  // (through nsenter, which keeps /sys and so the cgroup mount visible).
  int Run(const std::vector<std::string>& argv, std::string* out = nullptr,
          const std::string& netns_path = "") const;

 private:
  std::string root_, path_;
};

struct ProgRun {
  uint32_t retval = 0;
  Bytes out;
};
// BPF_PROG_TEST_RUN on `frame`; tc programs see `ifindex` (a device of the
// caller's namespace) as the device they run on, when given.
absl::StatusOr<ProgRun> RunProgram(int prog_fd, const Bytes& frame, uint32_t ifindex = 0);

// The programs' cache clock now (TND_CACHE_TICK_SHIFT: the kernel's jiffies,
// read from /proc/timer_list, over 256); 0 if it cannot be read.
uint32_t BpfCacheTick();

// Benchmarks: ns per run of the program on `frame`, BPF_PROG_TEST_RUN with
// `repeat`, the kernel-reported average duration (whole ns; wall time would
// add the call's set-up: for XDP with repeat > 1 a fixed cost of about 15 ms
// on this kernel), median of `rounds` after one warm-up. Exits the process if
// the kernel refuses the run.
double NsPerPacket(int prog_fd, const Bytes& frame, uint32_t repeat, int rounds, uint32_t* verdict);

// The other way to measure: one run per BPF_PROG_TEST_RUN call (repeat 1),
// each on the original frame, the kernel-reported duration of that run,
// median of `calls`. The figure carries the kernel's fixed cost of timing one
// run (a bare program reads 20-60 ns this way) and a cold start of each run;
// it needs no wrapper. `vary`: a new source port every call (a new flow each
// time), at byte `sport_off`; `mark` (tc programs only): the skb's mark.
// -1 if the kernel refuses a run.
// `base_fd` (the bare baseline, on the original frame, no mark) and
// `prog_fd` run in alternating blocks of 100 calls, so that both sample the
// machine in the same states: this VM swings between a fast and a slow state
// for seconds at a time, which one block of each could straddle. (Blocks,
// not single calls: right after the program, the baseline's run would find
// the caches the program used and read up to 30 ns more.) The medians.
struct SingleRuns {
  double base, prog;
};
SingleRuns SingleRunNs(int calls, int base_fd, int prog_fd, Bytes frame, bool vary, size_t sport_off,
                       uint32_t mark = 0);

// The `tendril` CLI against an agent's socket and pins.
struct CliResult {
  int rc = -1;
  std::string out, err;
};
CliResult RunCli(const std::string& api_socket, const std::string& pins, const std::vector<std::string>& args);

// Runs a command, returns exit code; output in *out (stdout+stderr).
int Sh(const std::vector<std::string>& argv, std::string* out = nullptr);

// A network namespace (ip netns add), deleted with everything in it.
class Netns {
 public:
  explicit Netns(const std::string& tag);
  ~Netns();
  Netns(const Netns&) = delete;
  const std::string& name() const { return name_; }
  std::string path() const { return "/run/netns/" + name_; }
  // Runs argv inside the namespace (ip netns exec).
  int Exec(const std::vector<std::string>& argv, std::string* out = nullptr) const;
  // Runs `ip` commands ("link add ...", one per entry) in the namespace, all
  // in one `ip -batch`. Returns ip's exit code (-1 if it could not run).
  int IpBatch(const std::vector<std::string>& commands, std::string* out = nullptr) const;

 private:
  std::string name_;
};

// Creates a veth pair with one end in each namespace, addresses (optional,
// "10.0.0.1/24"), and sets both ends up.
void ConnectVeth(const Netns& a, const std::string& ifa, const std::string& addr_a,
                 const Netns& b, const std::string& ifb, const std::string& addr_b);

// A LAN between test namespaces: a bridge (br0) in a namespace of its own.
class Lan {
 public:
  explicit Lan(const std::string& tag);
  const Netns& ns() const { return ns_; }
  // A veth from `ns` (its eth0: `v4`, and `v6` without duplicate address
  // detection) to port `port` on the bridge.
  void Join(const Netns& ns, const std::string& port, const std::string& v4, const std::string& v6) const;

 private:
  Netns ns_;
};

// Moves the calling thread into a namespace and back when destroyed.
class NetnsGuard {
 public:
  explicit NetnsGuard(const Netns& ns);
  ~NetnsGuard();

 private:
  int orig_ = -1;
};

// A child process with output to a log file; SIGTERM then SIGKILL on Stop or
// destruction, each wait bounded.
class Subprocess {
 public:
  explicit Subprocess(std::vector<std::string> argv);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  pid_t pid() const { return pid_; }
  bool Running();
  // Sends SIGTERM (or `sig`), waits up to `timeout_ms`, then SIGKILL. Returns
  // the exit status (128+N for a signal).
  int Stop(int sig = 15, int timeout_ms = 10000);
  std::string Log() const;

 private:
  pid_t pid_ = -1;
  int status_ = -1;
  std::string log_path_;
};

// Waits, at most `seconds` (times TENDRIL_TEST_TIME_SCALE when set, as in
// the kernel matrix's emulated guest), until the agent started as `agent`
// answers on its API socket: success, or why not (it exited, or never
// answered) with its log.
::testing::AssertionResult WaitForAgent(Subprocess& agent, const std::string& socket, int seconds = 15);

// What the state store in `state_dir` holds, as one JSON document (read
// beside a running agent: WAL readers do not block it), or the error.
std::string StoredState(const std::string& state_dir);

}  // namespace tendril::test
