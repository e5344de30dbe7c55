#include "test/support/kernel.h"

#include "explain/runner.h"

#include <bpf/bpf.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <chrono>
#include <filesystem>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/match.h"
#include "agent/state.h"
#include "agent/state_json.h"
#include "maps/abi.h"
#include "common/api_client.h"
#include "datapath/bpffs.h"
#include "common/file_util.h"
#include "common/status.h"
#include "common/subprocess.h"
#include "tendril_build_config.h"

extern char** environ;

namespace tendril::test {
namespace fs = std::filesystem;

std::string UniqueName(const std::string& tag) {
  return absl::StrCat("tndt", ::getpid() % 100000, tag);
}

std::string BpfObjectPath(const std::string& name) {
  return absl::StrCat(TENDRIL_BINARY_DIR, "/bpf/", name, ".o");
}

std::string BinaryPath(const std::string& name) { return absl::StrCat(TENDRIL_BINARY_DIR, "/", name); }

uint32_t BpfCacheTick() {
  std::ifstream in("/proc/timer_list");
  std::string line;
  while (std::getline(in, line)) {
    uint64_t jiffies = 0;
    if (absl::StartsWith(line, "jiffies: ") && absl::SimpleAtoi(line.substr(9), &jiffies))
      return static_cast<uint32_t>(jiffies >> TND_CACHE_TICK_SHIFT);
  }
  return 0;
}

bool PrebuiltBpfOnly() {
  const char* e = std::getenv("TENDRIL_TEST_PREBUILT_BPF");
  return e && std::string(e) == "1";
}

std::vector<std::string> AgentTestFlags(bool shared_bpf_cache) {
  if (PrebuiltBpfOnly()) return {"--bpf-object-dir", absl::StrCat(TENDRIL_BINARY_DIR, "/bpf")};
  // One cache for every agent of the run: each set of settings compiles once
  // (the first start of each still goes through clang at run time).
  if (shared_bpf_cache) return {"--bpf-cache-dir", absl::StrCat(TENDRIL_BINARY_DIR, "/test-bpf-cache")};
  return {};
}

namespace {
std::atomic<int> g_counter{0};
}

TempPinRoot::TempPinRoot() {
  path_ = absl::StrCat("/sys/fs/bpf/", UniqueName(absl::StrCat("pin", g_counter++)));
  auto s = EnsureBpffs(path_);
  if (!s.ok()) ADD_FAILURE() << "bpffs: " << s;
}

TempPinRoot::~TempPinRoot() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

TempDir::TempDir() {
  std::string tmpl = absl::StrCat("/tmp/", UniqueName("XXXXXX"));
  char* p = ::mkdtemp(tmpl.data());
  if (!p) ADD_FAILURE() << "mkdtemp failed";
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  fs::remove_all(path_, ec);
}

TempCgroup::TempCgroup() {
  auto root = FindCgroup2Mount();
  if (!root.ok()) {
    ADD_FAILURE() << root.status();
    return;
  }
  root_ = *root;
  path_ = absl::StrCat(root_, "/", UniqueName(absl::StrCat("cg", g_counter++)));
  if (::mkdir(path_.c_str(), 0755) != 0) ADD_FAILURE() << "mkdir " << path_ << ": " << strerror(errno);
}

TempCgroup::~TempCgroup() {
  if (path_.empty()) return;
  auto procs = ReadFile(path_ + "/cgroup.procs");
  if (procs.ok() && !procs->empty()) {
    std::ofstream root_procs(root_ + "/cgroup.procs");
    for (const std::string& pid : std::vector<std::string>(absl::StrSplit(*procs, '\n', absl::SkipEmpty()))) root_procs << pid << std::endl;
  }
  ::rmdir(path_.c_str());
}

int TempCgroup::Run(const std::vector<std::string>& argv, std::string* out,
                    const std::string& netns_path) const {
  std::vector<std::string> full = {"sh", "-c", "echo $$ > \"$0\"/cgroup.procs && exec \"$@\"", path_};
  if (!netns_path.empty()) {
    full.push_back("nsenter");
    full.push_back("--net=" + netns_path);
  }
  full.insert(full.end(), argv.begin(), argv.end());
  return Sh(full, out);
}

absl::StatusOr<ProgRun> RunProgram(int prog_fd, const Bytes& frame, uint32_t ifindex) {
  // A tc program's context carries the device; XDP programs here run without one.
  TND_ASSIGN_OR_RETURN(DryRunOutcome o, TestRunFrame(prog_fd, RunCtx::kTc, frame, ifindex));
  return ProgRun{o.retval, std::move(o.out)};
}

double NsPerPacket(int prog_fd, const Bytes& frame, uint32_t repeat, int rounds, uint32_t* verdict) {
  std::vector<double> times;
  for (int r = -1; r < rounds; ++r) {  // round -1 warms up
    bpf_test_run_opts o;
    std::memset(&o, 0, sizeof(o));
    o.sz = sizeof(o);
    o.data_in = frame.data();
    o.data_size_in = static_cast<uint32_t>(frame.size());
    o.repeat = repeat;
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0) {
      std::perror("BPF_PROG_TEST_RUN");
      std::exit(1);
    }
    *verdict = o.retval;
    // The kernel's own average per run (ns): wall time would add the call's
    // set-up, which for XDP with repeat > 1 is a fixed cost of milliseconds.
    if (r >= 0) times.push_back(static_cast<double>(o.duration));
  }
  std::sort(times.begin(), times.end());
  return times[times.size() / 2];
}

namespace {

// One BPF_PROG_TEST_RUN of `prog_fd` on `frame`, repeat 1: the kernel's
// duration, or -1 if the kernel refuses the run.
double OneRunNs(int prog_fd, const Bytes& frame, uint32_t mark, Bytes& out) {
  bpf_test_run_opts o;
  std::memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  o.data_in = frame.data();
  o.data_size_in = static_cast<uint32_t>(frame.size());
  o.data_out = out.data();
  o.data_size_out = static_cast<uint32_t>(out.size());
  o.repeat = 1;
  __sk_buff ctx{};
  ctx.mark = mark;
  if (mark) {
    o.ctx_in = &ctx;
    o.ctx_size_in = sizeof(ctx);
  }
  if (bpf_prog_test_run_opts(prog_fd, &o) != 0) return -1;
  return static_cast<double>(o.duration);
}

double MedianOf(std::vector<double>& d) {
  std::sort(d.begin(), d.end());
  return d.empty() ? -1 : d[d.size() / 2];
}

}  // namespace

SingleRuns SingleRunNs(int calls, int base_fd, int prog_fd, Bytes frame, bool vary, size_t sport_off,
                       uint32_t mark) {
  constexpr int kBlock = 100;
  const Bytes original = frame;
  std::vector<double> base, prog;
  Bytes out(frame.size() + 512);
  for (int at = 0; at < calls; at += kBlock) {
    const int n = std::min(kBlock, calls - at);
    for (int i = 0; i < n; ++i) {
      const double b = OneRunNs(base_fd, original, 0, out);
      if (b < 0) return {-1, -1};
      base.push_back(b);
    }
    for (int i = at; i < at + n; ++i) {
      if (vary) {
        const uint16_t port = static_cast<uint16_t>(1024 + i % 60000);
        frame[sport_off] = static_cast<uint8_t>(port >> 8);
        frame[sport_off + 1] = static_cast<uint8_t>(port);
        // TCP checksum: the programs check only the IP header's; the ports
        // are rewritten incrementally, so a stale L4 sum stays stale.
      }
      const double p = OneRunNs(prog_fd, frame, mark, out);
      if (p < 0) return {-1, -1};
      prog.push_back(p);
    }
  }
  return {MedianOf(base), MedianOf(prog)};
}

CliResult RunCli(const std::string& api_socket, const std::string& pins, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {BinaryPath("tendril"), "--api-socket", api_socket, "--bpffs-root", pins};
  argv.insert(argv.end(), args.begin(), args.end());
  CliResult r;
  auto rc = RunCommandSplit(argv, &r.out, &r.err);
  r.rc = rc.ok() ? *rc : -1;
  return r;
}

int Sh(const std::vector<std::string>& argv, std::string* out) {
  auto rc = RunCommand(argv, out);
  if (!rc.ok()) {
    if (out) *out = std::string(rc.status().message());
    return -1;
  }
  return *rc;
}

Netns::Netns(const std::string& tag) : name_(UniqueName(tag)) {
  Sh({"ip", "netns", "del", name_});  // a leftover of a crashed run
  std::string out;
  if (Sh({"ip", "netns", "add", name_}, &out) != 0) ADD_FAILURE() << "ip netns add " << name_ << ": " << out;
  Sh({"ip", "-n", name_, "link", "set", "lo", "up"});
}

Netns::~Netns() { Sh({"ip", "netns", "del", name_}); }

int Netns::Exec(const std::vector<std::string>& argv, std::string* out) const {
  std::vector<std::string> full = {"ip", "netns", "exec", name_};
  full.insert(full.end(), argv.begin(), argv.end());
  return Sh(full, out);
}

int Netns::IpBatch(const std::vector<std::string>& commands, std::string* out) const {
  // One `ip` process for the whole list (a fork and exec per command is most
  // of a fixture's set-up time, and far more under emulation).
  char path[] = "/tmp/tnd-ipbatch-XXXXXX";
  int fd = ::mkstemp(path);
  if (fd < 0) return -1;
  std::string text;
  for (const auto& c : commands) text += c + "\n";
  bool written = ::write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size());
  ::close(fd);
  int rc = written ? Sh({"ip", "-n", name_, "-batch", path}, out) : -1;
  ::unlink(path);
  return rc;
}

void ConnectVeth(const Netns& a, const std::string& ifa, const std::string& addr_a,
                 const Netns& b, const std::string& ifb, const std::string& addr_b) {
  std::string out;
  // Both ends are created directly inside the namespaces: nothing ever
  // appears among the host's own interfaces.
  ASSERT_EQ(Sh({"ip", "link", "add", ifa, "netns", a.name(), "type", "veth", "peer", "name", ifb,
                "netns", b.name()},
               &out),
            0)
      << out;
  if (!addr_a.empty()) {
    ASSERT_EQ(a.Exec({"ip", "addr", "add", addr_a, "dev", ifa}, &out), 0) << out;
  }
  if (!addr_b.empty()) {
    ASSERT_EQ(b.Exec({"ip", "addr", "add", addr_b, "dev", ifb}, &out), 0) << out;
  }
  ASSERT_EQ(a.Exec({"ip", "link", "set", ifa, "up"}, &out), 0) << out;
  ASSERT_EQ(b.Exec({"ip", "link", "set", ifb, "up"}, &out), 0) << out;
}

Lan::Lan(const std::string& tag) : ns_(tag) {
  EXPECT_EQ(ns_.Exec({"ip", "link", "add", "br0", "type", "bridge"}), 0);
  EXPECT_EQ(ns_.Exec({"ip", "link", "set", "br0", "up"}), 0);
}

void Lan::Join(const Netns& ns, const std::string& port, const std::string& v4, const std::string& v6) const {
  ConnectVeth(ns, "eth0", v4, ns_, port, "");
  ASSERT_EQ(ns.Exec({"ip", "-6", "addr", "add", v6, "dev", "eth0", "nodad"}), 0);
  ASSERT_EQ(ns_.Exec({"ip", "link", "set", port, "master", "br0"}), 0);
}

NetnsGuard::NetnsGuard(const Netns& ns) {
  orig_ = ::open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
  int fd = ::open(ns.path().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 || ::setns(fd, CLONE_NEWNET) != 0) ADD_FAILURE() << "setns " << ns.path();
  if (fd >= 0) ::close(fd);
}

NetnsGuard::~NetnsGuard() {
  if (orig_ >= 0) {
    if (::setns(orig_, CLONE_NEWNET) != 0) std::abort();  // never continue in the wrong netns
    ::close(orig_);
  }
}

Subprocess::Subprocess(std::vector<std::string> argv) {
  log_path_ = absl::StrCat("/tmp/", UniqueName(absl::StrCat("log", g_counter++)), ".log");
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  if (posix_spawnp(&pid_, args[0], &fa, nullptr, args.data(), environ) != 0) {
    ADD_FAILURE() << "spawn " << absl::StrJoin(argv, " ");
    pid_ = -1;
  }
  posix_spawn_file_actions_destroy(&fa);
}

bool Subprocess::Running() {
  if (pid_ < 0) return false;
  int st;
  pid_t r = ::waitpid(pid_, &st, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    pid_ = -1;
    return false;
  }
  return true;
}

int Subprocess::Stop(int sig, int timeout_ms) {
  if (!Running()) return status_;
  ::kill(pid_, sig);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    if (!Running()) return status_;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ::kill(pid_, SIGKILL);
  int st;
  ::waitpid(pid_, &st, 0);
  pid_ = -1;
  status_ = 128 + SIGKILL;
  return status_;
}

Subprocess::~Subprocess() {
  Stop(SIGTERM, 5000);
  ::unlink(log_path_.c_str());
}

std::string Subprocess::Log() const { return ReadFile(log_path_).value_or(""); }

::testing::AssertionResult WaitForAgent(Subprocess& agent, const std::string& socket, int seconds) {
  int scale = 1;
  if (const char* s = std::getenv("TENDRIL_TEST_TIME_SCALE"); s && absl::SimpleAtoi(s, &scale) && scale > 1)
    seconds *= scale;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    if (CallAgent(socket, "status").ok()) return ::testing::AssertionSuccess();
    if (!agent.Running()) return ::testing::AssertionFailure() << "agent exited: " << agent.Log();
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return ::testing::AssertionFailure() << "agent not ready after " << seconds << " s: " << agent.Log();
}

std::string StoredState(const std::string& state_dir) {
  auto store = StateStore::Open(state_dir);
  if (!store.ok()) return std::string(store.status().message());
  auto state = store->Load();
  return state.ok() ? StateToJson(*state) : std::string(state.status().message());
}

}  // namespace tendril::test
