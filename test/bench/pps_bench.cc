// Live packet rate through a NodePort: UDP packets per second forwarded to a
// remote backend by tendril's XDP (native), by tendril's tc programs, and by
// kube-proxy's iptables rules (the generator of test/support/
// kube_proxy_rules.h, loaded with iptables-legacy and with iptables-nft),
// each on a fresh copy of the same veth topology:
//
//   client ns  eth0 10.0.0.100 ── eth0 10.0.0.1  node ns  eth1 10.1.2.1 ── eth0 10.1.2.2  backend ns
//
// Two senders, each in a child process pinned to CPU 0, sending 1,024
// flows (source ports) to 10.0.0.1:30080 as fast as they can; the node's
// receive runs in a threaded NAPI kthread pinned to CPU 1.
//  - XDP frames (SendXdpLive): bench_xdp_gen run by BPF_PROG_TEST_RUN in
//    live-frames mode, as xdp-trafficgen does, redirecting each frame into
//    the client's veth, which hands it to the node's NAPI as an XDP frame:
//    the node's native XDP gets the frame before any socket buffer exists,
//    as from a NIC's driver. The frames' pages belong to the sender's page
//    pool; the backend's drop returns them across CPUs, in every mode.
//  - Socket buffers (Send): a raw AF_PACKET socket (the qdisc bypassed, 64
//    frames per sendmmsg). The veth makes each socket buffer an XDP buffer
//    (a copy: the head is the socket's) before native XDP runs, so XDP's
//    lead over the stack is smaller: what a pod's packet looks like.
// Why not a packaged generator: Debian's xdp-tools 1.3.1 xdp-trafficgen
// does not load on this kernel (a tracepoint it names is gone), there is no
// pktgen module, and netsniff-ng's trafgen ends with "Flushing TX_RING
// failed" as soon as a veth whose peer runs XDP pushes back (EAGAIN).
#include <bpf/bpf.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <linux/if_packet.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "datapath/attach.h"
#include "datapath/loader.h"
#include "network/addr.h"
#include "test/bench/bench_util.h"
#include "test/support/kernel.h"
#include "test/support/kube_proxy_rules.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

constexpr double kWarmupSecs = 1.5;
constexpr double kWindowSecs = 3.0;
constexpr uint16_t kFlows = 1024;

struct Mode {
  std::string name;
  std::string agent_xdp;  // "native", "disabled"; empty: no agent (iptables)
  std::string iptables;   // "iptables-legacy-restore", "iptables-nft-restore"; empty: none
  bool sink = false;      // the node's eth0 counts and drops: what the sender can offer
};

// Where a sender (a forked child) runs: the namespace at `netns`, CPU 0
// only. 0, or the child's exit code for what failed.
int EnterSenderPlace(const std::string& netns) {
  int nsfd = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
  if (nsfd < 0 || setns(nsfd, CLONE_NEWNET) != 0) return 2;
  cpu_set_t cpus;
  CPU_ZERO(&cpus);
  CPU_SET(0, &cpus);
  return sched_setaffinity(0, sizeof(cpus), &cpus) != 0 ? 3 : 0;
}

// The sender (a forked child): joins the namespace at `netns`, runs on CPU 0
// only, and sends `frames` in turn out of eth0 through a raw packet socket
// (the qdisc bypassed), 64 per sendmmsg, until it is killed. A full device
// queue (EAGAIN, ENOBUFS) is a frame not sent, not an error.
int Send(const std::string& netns, const std::vector<Bytes>& frames) {
  if (int rc = EnterSenderPlace(netns); rc != 0) return rc;
  int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
  int one = 1;
  if (fd < 0 || setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(one)) != 0) return 4;
  sockaddr_ll to{};
  to.sll_family = AF_PACKET;
  to.sll_ifindex = static_cast<int>(if_nametoindex("eth0"));
  to.sll_halen = 6;
  constexpr size_t kBatch = 64;
  std::vector<iovec> iov(frames.size());
  std::vector<mmsghdr> msgs(frames.size());
  for (size_t i = 0; i < frames.size(); ++i) {
    iov[i] = {const_cast<uint8_t*>(frames[i].data()), frames[i].size()};
    msgs[i].msg_hdr.msg_name = &to;
    msgs[i].msg_hdr.msg_namelen = sizeof(to);
    msgs[i].msg_hdr.msg_iov = &iov[i];
    msgs[i].msg_hdr.msg_iovlen = 1;
  }
  for (size_t at = 0;; at = (at + kBatch) % frames.size()) {
    int n = sendmmsg(fd, &msgs[at], static_cast<unsigned>(std::min(kBatch, frames.size() - at)), 0);
    if (n < 0 && errno != EAGAIN && errno != ENOBUFS && errno != EINTR) return 5;
  }
}

// The XDP sender (a forked child): joins the namespace at `netns`, runs on
// CPU 0 only, and runs bench_xdp_gen (test/progs/bench_pass.c) by
// BPF_PROG_TEST_RUN in live-frames mode on `frame`, a million frames a
// call, until it is killed: each frame leaves through the client's veth as
// an XDP frame.
int SendXdpLive(const std::string& netns, int prog_fd, const Bytes& frame) {
  if (int rc = EnterSenderPlace(netns); rc != 0) return rc;
  LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
              .repeat = 1 << 20, .flags = BPF_F_TEST_XDP_LIVE_FRAMES, .batch_size = 64);
  for (;;) {
    if (bpf_prog_test_run_opts(prog_fd, &o) != 0 && errno != EINTR) {
      std::fprintf(stderr, "pps: the XDP sender: %s\n", std::strerror(errno));
      return 5;
    }
  }
}

struct Result {
  std::string mode;
  double rx = -1, tx = -1;
  double busy = -1;  // the node CPU's busy share in the window
  // Packets per second the node's CPU would forward fully busy.
  double Capacity() const { return busy > 0 ? rx / busy : -1; }
};

// One copy of the topology, its counter program and (in tendril modes) its agent.
class Bed {
 public:
  Bed(const Mode& m, bool xdp_sender) : mode_(m), xdp_sender_(xdp_sender) {}
  ~Bed() {
    if (agent_) agent_->Stop();
  }

  bool Build() {
    ConnectVeth(client_, "eth0", "10.0.0.100/24", node_, "eth0", "10.0.0.1/24");
    ConnectVeth(node_, "eth1", "10.1.2.1/24", backend_, "eth0", "10.1.2.2/24");
    if (backend_.Exec({"ip", "route", "add", "default", "via", "10.1.2.1"}) != 0) return false;
    if (node_.Exec({"sysctl", "-qw", "net.ipv4.ip_forward=1"}) != 0) return false;
    // NAPI on the node's receiving side (GRO), run by a kthread pinned to CPU
    // 1. A veth hands a packet to its peer's NAPI only if the sender cannot
    // build TSO packets (else through the sending CPU's backlog): no TSO on
    // the client's device.
    if (client_.Exec({"ethtool", "-K", "eth0", "tso", "off"}) != 0) return false;
    if (node_.Exec({"ethtool", "-K", "eth0", "gro", "on"}) != 0) return false;
    if (!ThreadedNapiOn(node_, "1")) return false;
    return mode_.sink ? AttachCounter(node_) : AttachCounter(backend_);
  }

  bool Start() {
    if (!mode_.agent_xdp.empty()) return StartAgent();
    if (!mode_.iptables.empty()) return LoadIptables();
    return true;
  }

  // Packets per second counted at the backend and sent by the client, and
  // how busy the node's CPU (1) was, over `secs`.
  Result Measure(double secs) {
    const uint64_t rx0 = Received(), tx0 = ClientTx();
    const CpuTimes c0 = ReadCpuTimes("cpu1");
    auto t0 = Clock::now();
    std::this_thread::sleep_for(std::chrono::duration<double>(secs));
    const double dt = Seconds(t0, Clock::now());
    const CpuTimes c1 = ReadCpuTimes("cpu1");
    return {mode_.name, (Received() - rx0) / dt, (ClientTx() - tx0) / dt, BusyShare(c0, c1)};
  }

  // The sender, a child process in the client namespace on CPU 0 (Send).
  pid_t StartSender() {
    std::string mac_text;
    node_.Exec({"cat", "/sys/class/net/eth0/address"}, &mac_text);
    auto mac = ParseMac(std::string(absl::StripAsciiWhitespace(mac_text)));
    if (!mac.ok()) return -1;
    Mac dst{}, src{{0x02, 0, 0, 0, 0, 0x64}};
    std::memcpy(dst.b, mac->data(), 6);
    std::vector<Bytes> frames;
    for (uint16_t sport = 1024; sport < 1024 + kFlows; ++sport)
      frames.push_back(
          Frame().Eth(dst, src).Ipv4("10.0.0.100", "10.0.0.1").Udp(sport, 30080).Payload(std::string(22, 'A')).Build());
    if (xdp_sender_ && !SetUpXdpSender(frames[0])) return -1;
    const int gen_fd = xdp_sender_ ? *counter_->ProgramFd("bench_xdp_gen") : -1;
    pid_t pid = fork();
    if (pid == 0) _exit(xdp_sender_ ? SendXdpLive(client_.path(), gen_fd, frames[0]) : Send(client_.path(), frames));
    return pid;
  }

 private:
  // Turns on threaded NAPI for `ns`'s eth0 and pins its kthread (named
  // napi/eth0-<id>, the one that was not there before) to `cpu`.
  bool ThreadedNapiOn(const Netns& ns, const std::string& cpu) {
    const std::string list = "pgrep '^napi/eth0-' | sort";
    std::string before, after, out;
    Sh({"sh", "-c", list}, &before);
    if (ns.Exec({"sh", "-c", "echo 1 > /sys/class/net/eth0/threaded"}) != 0) return false;
    Sh({"sh", "-c", list}, &after);
    std::vector<std::string> had = absl::StrSplit(before, '\n', absl::SkipWhitespace());
    for (absl::string_view pid : absl::StrSplit(after, '\n', absl::SkipWhitespace()))
      if (std::find(had.begin(), had.end(), pid) == had.end()) return Sh({"taskset", "-pc", cpu, std::string(pid)}, &out) == 0;
    std::fprintf(stderr, "pps: no threaded NAPI kthread for eth0 in %s\n", ns.path().c_str());
    return false;
  }

  // The counter on `ns`'s eth0.
  bool AttachCounter(const Netns& ns) {
    auto obj = BpfObject::Load({BpfObjectPath("bench_pass"), "", {}});
    if (!obj.ok()) return false;
    counter_ = std::make_unique<BpfObject>(std::move(*obj));
    NetnsGuard g(ns);
    auto r = AttachXdp("eth0", *counter_->ProgramFd("bench_xdp_count_drop"), XdpMode::kNative);
    if (!r.ok()) std::fprintf(stderr, "pps: attach the counter: %s\n", std::string(r.status().message()).c_str());
    return r.ok();
  }

  uint64_t Received() const {
    const int fd = *counter_->MapFd("bench_rx");
    const int ncpu = libbpf_num_possible_cpus();
    std::vector<uint64_t> v(static_cast<size_t>(ncpu));
    uint32_t zero = 0;
    if (bpf_map_lookup_elem(fd, &zero, v.data()) != 0) return 0;
    uint64_t n = 0;
    for (uint64_t x : v) n += x;
    return n;
  }

  // bench_xdp_gen's frame (the first kBenchHead bytes of `frame`, the source
  // port at 34) and where it sends (the client's eth0).
  bool SetUpXdpSender(const Bytes& frame) {
    BenchFrame f{};
    struct {  // bench_pass.c's struct bench_gen
      uint32_t ifindex, flows;
    } g{};
    if (frame.size() < sizeof(f.head)) return false;
    std::memcpy(f.head, frame.data(), sizeof(f.head));
    f.sport_off = 34;
    {
      NetnsGuard in(client_);
      g.ifindex = if_nametoindex("eth0");
    }
    g.flows = kFlows;
    uint32_t zero = 0;
    return g.ifindex != 0 && bpf_map_update_elem(*counter_->MapFd("bench_frame"), &zero, &f, 0) == 0 &&
           bpf_map_update_elem(*counter_->MapFd("bench_gen"), &zero, &g, 0) == 0;
  }

  uint64_t ClientTx() const {
    if (xdp_sender_) {  // bench_xdp_gen's runs (per CPU, 32 bits each)
      const int ncpu = libbpf_num_possible_cpus();
      std::vector<uint32_t> v(static_cast<size_t>(ncpu));
      uint32_t zero = 0;
      if (bpf_map_lookup_elem(*counter_->MapFd("bench_counter"), &zero, v.data()) != 0) return 0;
      uint64_t n = 0;
      for (uint32_t x : v) n += x;
      return n;
    }
    std::string out;
    client_.Exec({"cat", "/sys/class/net/eth0/statistics/tx_packets"}, &out);
    uint64_t n = 0;
    (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(out), &n);
    return n;
  }

  bool StartAgent() {
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--netns", node_.path(), "--devices", "eth0,eth1",
                                     "--xdp-mode", mode_.agent_xdp, "--bpffs-root", pins_.path(), "--state-dir",
                                     state_.path(), "--api-socket", Socket(), "--cgroup-root", cgroup_.path()};
    for (const auto& f : AgentTestFlags()) argv.push_back(f);
    agent_ = std::make_unique<Subprocess>(argv);
    if (!WaitForAgent(*agent_, Socket())) return false;
    CliResult r = RunCli(Socket(), pins_.path(),
                         {"service", "add", "--frontend", "10.96.0.10:80/UDP", "--type", "NodePort", "--node-port",
                          "30080", "--backends", "10.1.2.2:8080"});
    if (r.rc != 0) std::fprintf(stderr, "pps: service add: %s%s\n", r.out.c_str(), r.err.c_str());
    return r.rc == 0;
  }

  bool LoadIptables() {
    bench::KpService s;
    s.ns = "default";
    s.name = "pps";
    s.cluster_ip = "10.96.0.10";
    s.port = 80;
    s.proto = "udp";
    s.node_port = 30080;
    s.endpoints = {{"10.1.2.2", 8080}};
    const std::string rules = bench::IptablesFull({s});
    const std::string file = state_.path() + "/rules";
    if (FILE* f = std::fopen(file.c_str(), "w")) {
      std::fputs(rules.c_str(), f);
      std::fclose(f);
    }
    std::string out;
    int rc = node_.Exec({"sh", "-c", mode_.iptables + " < " + file}, &out);
    if (rc != 0) std::fprintf(stderr, "pps: %s: %s\n", mode_.iptables.c_str(), out.c_str());
    return rc == 0;
  }

  std::string Socket() const { return state_.path() + "/api.sock"; }

  Mode mode_;
  bool xdp_sender_;  // SendXdpLive, else Send
  Netns client_{"ppc"}, node_{"ppn"}, backend_{"ppb"};
  TempPinRoot pins_;
  TempDir state_;
  TempCgroup cgroup_;
  std::unique_ptr<BpfObject> counter_;
  std::unique_ptr<Subprocess> agent_;
};

constexpr int kRounds = 3;  // the modes in turn, this many times; medians

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? -1 : v[v.size() / 2];
}

Result RunMode(const Mode& m, bool xdp_sender) {
  Result r{m.name};
  Bed bed(m, xdp_sender);
  if (!bed.Build() || !bed.Start()) return r;
  const pid_t sender = bed.StartSender();
  if (sender < 0) return r;
  std::this_thread::sleep_for(std::chrono::duration<double>(kWarmupSecs));
  int status = 0;
  if (waitpid(sender, &status, WNOHANG) == sender) {
    std::fprintf(stderr, "pps: the sender exited (%d)\n", WEXITSTATUS(status));
    return r;
  }
  r = bed.Measure(kWindowSecs);
  kill(sender, SIGKILL);
  waitpid(sender, &status, 0);
  return r;
}

const std::vector<Mode>& Modes() {
  static const std::vector<Mode> modes = {
      {"the sender alone (node drops)", "", "", true},
      {"kube-proxy iptables (legacy)", "", "iptables-legacy-restore"},
      {"kube-proxy iptables (nft)", "", "iptables-nft-restore"},
      {"tendril tc", "disabled", ""},
      {"tendril XDP native", "native", ""},
  };
  return modes;
}
constexpr size_t kBaseline = 1;  // iptables (legacy): what the ratios divide by

// PPS_BENCH_ONLY=text: only the modes whose name holds it (for a profile).
bool Selected(const std::string& mode) {
  const char* only = std::getenv("PPS_BENCH_ONLY");
  return only == nullptr || mode.find(only) != std::string::npos;
}

// Rounds of every mode in turn with one sender, so that the machine's slow
// spells fall on all of them; each mode's median round.
std::vector<Result> RunSender(bool xdp_sender) {
  const std::vector<Mode>& modes = Modes();
  std::vector<std::vector<double>> rx(modes.size()), tx(modes.size()), busy(modes.size());
  for (int round = 0; round < kRounds; ++round)
    for (size_t i = 0; i < modes.size(); ++i) {
      if (!Selected(modes[i].name)) continue;
      Result r = RunMode(modes[i], xdp_sender);
      if (r.rx < 0) continue;
      rx[i].push_back(r.rx);
      tx[i].push_back(r.tx);
      busy[i].push_back(r.busy);
    }
  std::vector<Result> results;
  for (size_t i = 0; i < modes.size(); ++i)
    results.push_back({modes[i].name, Median(rx[i]), Median(tx[i]), Median(busy[i])});
  return results;
}

nlohmann::json Json(const std::vector<Result>& results) {
  const double base = results[kBaseline].rx, base_cap = results[kBaseline].Capacity();
  nlohmann::json j = nlohmann::json::array();
  for (const Result& r : results)
    j.push_back({{"mode", r.mode}, {"received_pps", r.rx}, {"offered_pps", r.tx}, {"node_cpu_busy", r.busy},
                 {"capacity_pps", r.Capacity()}, {"ratio_to_iptables_legacy", base > 0 ? r.rx / base : 0},
                 {"capacity_ratio_to_iptables_legacy", base_cap > 0 ? r.Capacity() / base_cap : 0}});
  return j;
}

void Print(const std::vector<Result>& results) {
  const double base = results[kBaseline].rx, base_cap = results[kBaseline].Capacity();
  std::printf("%-30s %12s %12s %7s %12s %8s %8s\n", "MODE", "FORWARDED/S", "OFFERED/S", "CPU1", "CAPACITY/S", "RATIO",
              "CAP.RATIO");
  for (const Result& r : results) {
    if (r.rx < 0) {
      std::printf("%-30s %12s\n", r.mode.c_str(), Selected(r.mode) ? "failed" : "not run (PPS_BENCH_ONLY)");
      continue;
    }
    std::printf("%-30s %12.0f %12.0f %6.0f%% %12.0f %7.2fx %7.2fx\n", r.mode.c_str(), r.rx, r.tx, r.busy * 100,
                r.Capacity(), base > 0 ? r.rx / base : 0, base_cap > 0 ? r.Capacity() / base_cap : 0);
  }
}

int Main(bool json_out) {
  const std::vector<Result> frames = RunSender(true), skbs = RunSender(false);
  if (json_out) {
    PrintJson({{"xdp_frames", Json(frames)}, {"socket_buffers", Json(skbs)}});
    return 0;
  }
  std::printf("UDP through a NodePort to a remote backend, 1,024 flows; the sender on CPU 0, the node's receive\n"
              "(threaded NAPI) on CPU 1; counted at the backend over %.0f s after %.1f s, median of %d rounds of\n"
              "the modes in turn. First row: what the sender offers when the node's device drops everything in\n"
              "XDP (the ceiling). CAPACITY = forwarded / the node CPU's busy share: what one fully busy core\n"
              "would forward. RATIO: to kube-proxy's iptables (legacy) rules with the same sender.\n",
              kWindowSecs, kWarmupSecs, kRounds);
  std::printf("\nSender: XDP frames (BPF_PROG_TEST_RUN live frames, redirected into the client's veth; the node's\n"
              "device gets them as a NIC's driver does, with no socket buffer)\n");
  Print(frames);
  std::printf("\nSender: socket buffers (AF_PACKET, qdisc bypassed; the veth makes each an XDP buffer, a copy,\n"
              "before native XDP runs: a pod's packet to a service looks like this)\n");
  Print(skbs);
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) { return tendril::test::BenchMain(argc, argv, tendril::test::Main); }
