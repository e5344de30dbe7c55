// Per-packet cost of the XDP prefilter, next to a bare XDP_PASS program in
// the same run: BPF_PROG_TEST_RUN with `repeat`, the kernel's own average
// duration per run, median of several rounds; and one run per call. A passed
// packet goes on through the whole XDP program (per-packet LB's "is this
// mine" included), as on a node. Prints a table and, with --json, the raw
// numbers.
#include <bpf/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "agent/agent.h"
#include "datapath/bpffs.h"
#include "datapath/loader.h"
#include "agent/prefilter.h"
#include "lb/lb_writer.h"
#include "lb/port_refs.h"
#include "test/bench/bench_util.h"
#include "test/support/kernel.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

constexpr uint32_t kRepeat = 1000000;
constexpr int kRounds = 5;

constexpr int kSingles = 3001;  // one run per call: the median of this many

double NsPerPacket(int prog_fd, const Bytes& frame, uint32_t* verdict) {
  return test::NsPerPacket(prog_fd, frame, kRepeat, kRounds, verdict);
}

std::set<Cidr> RandomCidrs(Family f, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::set<Cidr> out;
  while (out.size() < n) {
    Cidr c;
    c.family = f;
    c.prefix_len = static_cast<uint8_t>(f == Family::kV4 ? 16 + rng() % 17 : 48 + rng() % 81);
    for (int i = 0; i < c.AddrLen(); ++i) c.addr[i] = static_cast<uint8_t>(rng());
    c.addr[0] = 100;  // keep clear of the benchmark's own addresses
    std::string text = c.ToString();
    out.insert(*ParseCidr(text.substr(0, text.find('/')) + "/" + std::to_string(c.prefix_len)));
  }
  return out;
}

struct Row {
  std::string name;
  size_t entries;
  double ns, base_ns;
  double single, single_base;  // one run per call (SingleRunNs)
  uint32_t verdict;
};

void Print(const std::vector<Row>& rows, bool json_out) {
  if (json_out) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows)
      j.push_back({{"case", r.name}, {"deny_entries", r.entries}, {"ns_per_packet", r.ns},
                   {"baseline_ns_per_packet", r.base_ns}, {"ratio", r.ns / r.base_ns},
                   {"one_run_ns", r.single}, {"one_run_baseline_ns", r.single_base},
                   {"one_run_ratio", r.single / r.single_base},
                   {"verdict", r.verdict == XDP_DROP ? "drop" : "pass"}});
    PrintJson(j);
    return;
  }
  std::printf("XDP prefilter per-packet cost (BPF_PROG_TEST_RUN, repeat %u, kernel-reported duration, median of %d;\n",
              kRepeat, kRounds);
  std::printf("and one run per call: repeat 1, kernel-reported duration, median of %d)\n", kSingles);
  std::printf("baseline: bench_xdp_pass (return XDP_PASS) on the same frame, same run\n\n");
  std::printf("%-32s %8s %9s %9s %7s | %9s %9s %7s\n", "case", "verdict", "ns/pkt", "baseline", "ratio", "1 run",
              "baseline", "ratio");
  for (const auto& r : rows)
    std::printf("%-32s %8s %9.1f %9.1f %6.2fx | %9.1f %9.1f %6.2fx\n", r.name.c_str(),
                r.verdict == XDP_DROP ? "drop" : "pass", r.ns, r.base_ns, r.ns / r.base_ns, r.single, r.single_base,
                r.single / r.single_base);
}

int Main(bool json_out) {
  TempPinRoot pins;
  LoadOptions lo{BpfObjectPath("bpf_xdp"), pins.path()};
  auto obj = BpfObject::Load(lo);
  auto base = BpfObject::Load({BpfObjectPath("bench_pass"), "", {}});
  if (!obj.ok() || !base.ok()) {
    std::fprintf(stderr, "load: %s %s\n", std::string(obj.status().message()).c_str(),
                 std::string(base.status().message()).c_str());
    return 1;
  }
  {  // The port filter as the agent writes it for a node without services:
     // a passed packet meets the node as it runs, not an unwritten map.
    auto lb = OpenLbMaps(pins.path());
    if (!lb.ok() || !LbWriter(std::move(*lb)).WritePorts(PortRefs().bitmap()).ok()) {
      std::fprintf(stderr, "could not write the port filter\n");
      return 1;
    }
  }
  int entry = *obj->ProgramFd(kXdpEntryProgram);
  int pass = *base->ProgramFd("bench_xdp_pass");
  Prefilter pf(*PrefilterV4Map::OpenPin(pins.path() + "/" TND_MAP_PREFILTER_V4, "v4"),
               *PrefilterV6Map::OpenPin(pins.path() + "/" TND_MAP_PREFILTER_V6, "v6"),
               *PrefilterStateMap::OpenPin(pins.path() + "/" TND_MAP_PREFILTER_STATE, "state"));

  Bytes v4 = Frame().Eth().Ipv4("10.1.2.3", "10.0.0.1").Tcp(40000, 80).Payload(std::string(18, 'x')).Build();
  Bytes v4_denied = Frame().Eth().Ipv4("198.51.100.7", "10.0.0.1").Tcp(40000, 80).Payload(std::string(18, 'x')).Build();
  Bytes v6 = Frame().Eth().Ipv6("fd00::3", "fd00::1").Tcp(40000, 80).Build();
  Bytes vlan = Frame().Eth().Vlan(100).Ipv4("10.1.2.3", "10.0.0.1").Tcp(40000, 80).Build();

  std::vector<Row> rows;
  auto measure = [&](const std::string& name, size_t entries, const Bytes& frame) {
    uint32_t v, bv;
    double base_ns = NsPerPacket(pass, frame, &bv);
    double ns = NsPerPacket(entry, frame, &v);
    const SingleRuns runs = SingleRunNs(kSingles, pass, entry, frame, false, 0);
    double single_base = runs.base, single = runs.prog;
    rows.push_back({name, entries, ns, base_ns, single, single_base, v});
  };

  std::set<Cidr> want;
  if (!pf.Sync(want).ok()) return 1;
  measure("v4 pass, empty deny list", 0, v4);
  measure("v6 pass, empty deny list", 0, v6);
  measure("v4 pass, 802.1Q tag", 0, vlan);
  for (size_t n : {size_t{1000}, size_t{TND_PREFILTER_MAX - 1}}) {
    want = RandomCidrs(Family::kV4, n, 1);
    for (const auto& c : RandomCidrs(Family::kV6, n, 2)) want.insert(c);
    want.insert(*ParseCidr("198.51.100.0/24"));
    auto st = pf.Sync(want);
    if (!st.ok()) {
      std::fprintf(stderr, "sync: %s\n", std::string(st.status().message()).c_str());
      return 1;
    }
    std::string tag = std::to_string(n + 1) + " CIDRs";
    measure("v4 pass, " + tag, n + 1, v4);
    measure("v4 drop, " + tag, n + 1, v4_denied);
    measure("v6 pass, " + tag, n, v6);
  }

  Print(rows, json_out);
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) { return tendril::test::BenchMain(argc, argv, tendril::test::Main); }
