// Per-packet cost of the NodePort paths (XDP in bpf_xdp.o, tc in
// bpf_host.o) and of eBPF host routing from a pod (tc in bpf_lxc.o), next to
// bare XDP_PASS / TC_ACT_OK programs in the same run.
//
// BPF_PROG_TEST_RUN with `repeat` reruns a program on one buffer, and a NAT
// program rewrites that buffer; so every run goes through a wrapper
// (test/progs/bench_pass.c) that restores the frame's headers and then
// tail-calls either the program under test or the bare pass program. The
// NodePort cost is wrapped(NodePort) - wrapped(pass) + bare; the ratio is
// that over bare. Runs inside a test namespace whose routes and neighbours
// the FIB lookups use (test/support/lb_node.h).
//
// Cases: one established flow (the same frame every run; after its first
// packet it takes the cached path, bpf/lib/conntrack.h); 60,000 established
// flows in turn (a new source port each run, so each lookup misses the CPU
// caches); a new flow's first packet (one run per call only: the flow
// tables are emptied first and every call has a port not seen before; the
// repeat method would need 200,000 new flows a round, past the NAT range).
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "datapath/attach.h"
#include "datapath/loader.h"
#include "lb/services.h"
#include "network/route_table.h"
#include "maps/abi.h"
#include "maps/node_gen.h"
#include "maps/pinned_map.h"
#include "test/bench/bench_util.h"
#include "test/support/kernel.h"
#include "test/support/lb_node.h"
#include "test/support/packet.h"

namespace tendril::test {
namespace {

constexpr uint32_t kRepeat = 200000;
constexpr int kRounds = 5;
constexpr size_t kHead = kBenchHead;

double NsPerPacket(int prog_fd, const Bytes& frame, uint32_t* verdict) {
  return test::NsPerPacket(prog_fd, frame, kRepeat, kRounds, verdict);
}

constexpr int kSingles = 3001;  // one run per call: the median of this many

// The node's device, a NodePort service with three backends on the other
// node (DNAT + SNAT, the XDP fast path's case), two pods behind lx0
// (endpoints 1 and 2, veths that take XDP frames), a NodePort service whose
// backend is pod 1 and a ClusterIP whose backend is pod 2.
bool Declare(const TempPinRoot& pins, uint32_t tn0) {
  auto maps = OpenLbMaps(pins.path());
  auto devices = Map<uint32_t, tnd_device>::OpenPin(pins.path() + "/" TND_MAP_DEVICES, "devices");
  auto eps = Map<tnd_ep_key, tnd_endpoint>::OpenPin(pins.path() + "/" TND_MAP_ENDPOINTS, "endpoints");
  if (!maps.ok() || !devices.ok() || !eps.ok()) return false;
  tnd_device d{};
  inet_pton(AF_INET, "10.0.0.1", &d.ipv4);
  if (!devices->Update(tn0, d).ok()) return false;
  NodeView node;
  node.addresses = {*ParseIp("10.0.0.1")};
  ServiceManager mgr(std::move(*maps), ServiceLimits{}, 16381, node);
  Service s;
  s.frontend = *ParseFrontend("10.96.0.10:80/TCP");
  s.type = ServiceType::kNodePort;
  s.node_port = 30080;
  for (const char* b : {"10.1.2.2:8080", "10.1.2.3:8080", "10.1.2.4:8080"}) s.backends.push_back(*ParseBackend(b));
  if (auto st = mgr.Add(s); !st.ok()) {
    std::fprintf(stderr, "service: %s\n", std::string(st.status().message()).c_str());
    return false;
  }
  Service local = s;  // one backend: pod 1
  local.frontend = *ParseFrontend("10.96.0.11:80/TCP");
  local.node_port = 30081;
  local.backends = {*ParseBackend("10.1.1.2:8080")};
  if (!mgr.Add(local).ok()) return false;
  uint32_t lx0 = static_cast<uint32_t>(*IfIndex("lx0"));
  for (uint32_t id : {1u, 2u}) {
    tnd_ep_key k{};
    inet_pton(AF_INET, id == 1 ? "10.1.1.2" : "10.1.1.3", k.addr);
    k.family = 4;
    tnd_endpoint v{};
    v.ifindex = lx0;
    v.id = id;
    std::memcpy(v.mac, id == 1 ? kMacLocal.b : kMacPeer.b, 6);
    std::memcpy(v.node_mac, kMacLx.b, 6);
    v.flags = TND_EP_F_XDP_RX;  // veths the agent made
    v.mtu = 1500;
    if (!eps->Update(k, v).ok()) return false;
  }
  // Pod CIDRs keep their addresses (what the agent writes from --no-masquerade).
  auto nomasq = Map<tnd_lpm_v4_key, tnd_nomasq_val>::OpenPin(pins.path() + "/" TND_MAP_NOMASQ_V4, "nomasq");
  tnd_lpm_v4_key nk{16, {10, 1, 0, 0}};
  if (!nomasq.ok() || !nomasq->Update(nk, tnd_nomasq_val{1}).ok()) return false;
  Service cip;
  cip.frontend = *ParseFrontend("10.96.0.20:80/TCP");
  cip.backends.push_back(*ParseBackend("10.1.1.3:8080"));
  return mgr.Add(cip).ok();
}

struct Row {
  std::string hook, name;
  double bare, wrapped_pass, wrapped_np, net;
  uint32_t verdict;
  double single_bare, single;  // one run per call (SingleRunNs)
  bool wrapped = true;         // the repeat figures were measured
  double paired = 0;           // A/B rows: median of this row's ratio over its partner's, pair by pair
};

// What changes between the runs of a case.
enum class Vary {
  kNone,         // the same frame: one established flow
  kFlowsInTurn,  // a new source port each run, 60,000 in turn: established flows, cache-cold
  kNewFlows,     // one run per call only, each a flow never seen (flow tables emptied first)
};

// The wrapper's program fds and maps (test/progs/bench_pass.c).
struct Wrapper {
  int xdp_wrap, tc_wrap, xdp_pass, tc_pass, frame_map, xdp_calls, tc_calls;
  explicit Wrapper(const BpfObject& b)
      : xdp_wrap(*b.ProgramFd("bench_xdp_wrap")), tc_wrap(*b.ProgramFd("bench_tc_wrap")),
        xdp_pass(*b.ProgramFd("bench_xdp_pass")), tc_pass(*b.ProgramFd("bench_tc_pass")),
        frame_map(*b.MapFd("bench_frame")), xdp_calls(*b.MapFd("bench_xdp_calls")),
        tc_calls(*b.MapFd("bench_tc_calls")) {}

  // bare(pass), wrapped(pass) and wrapped(prog) on `frame`; the net cost is
  // wrapped(prog) - wrapped(pass) + bare.
  // `flush` empties the flow tables (for Vary::kNewFlows).
  Row Measure(const std::string& hook, const std::string& name, const Bytes& frame, Vary vary, int prog,
              const std::function<void()>& flush = nullptr, uint32_t mark = 0) const {
    Row r{hook, name, 0, 0, 0, 0, 0, 0, 0};
    // NODEPORT_BENCH_ONLY=text: measure only the cases whose hook and name
    // contain it (to profile one path with perf).
    if (const char* only = std::getenv("NODEPORT_BENCH_ONLY"); only && (hook + " " + name).find(only) == std::string::npos)
      return r;
    BenchFrame bf{};
    std::memcpy(bf.head, frame.data(), kHead);
    bf.vary_sport = vary != Vary::kNone;
    bf.sport_off = 34;
    bf.mark = mark;
    uint32_t zero = 0;
    bpf_map_update_elem(frame_map, &zero, &bf, BPF_ANY);
    bool is_xdp = hook == "XDP";
    int calls = is_xdp ? xdp_calls : tc_calls, wrap = is_xdp ? xdp_wrap : tc_wrap, pass = is_xdp ? xdp_pass : tc_pass;
    uint32_t v = 0, vb = 0, vp = 0;
    r.bare = NsPerPacket(pass, frame, &vb);
    r.wrapped = vary != Vary::kNewFlows;  // 200,000 new flows a round would exhaust the NAT range
    if (r.wrapped) {
      bpf_map_update_elem(calls, &zero, &pass, BPF_ANY);
      r.wrapped_pass = NsPerPacket(wrap, frame, &vp);
      bpf_map_update_elem(calls, &zero, &prog, BPF_ANY);
      r.wrapped_np = NsPerPacket(wrap, frame, &v);
      r.net = r.wrapped_np - r.wrapped_pass + r.bare;
    }
    if (vary == Vary::kNewFlows && flush) flush();
    const test::SingleRuns single = test::SingleRunNs(kSingles, pass, prog, frame, vary != Vary::kNone, 34, mark);
    r.single_bare = single.base;
    r.single = single.prog;
    if (!r.wrapped) r.verdict = static_cast<uint32_t>(RunProgram(prog, frame).value_or(ProgRun{}).retval);
    else r.verdict = v;
    return r;
  }
};

constexpr int kAbRounds = 6;  // alternated pairs of the hop-sharing A/B

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

// A new flow's first packet with next hops shared (tnd_hops) and not (as
// with a policy rule: every new flow asks the FIB), measured in alternation,
// A B B A A B ..., so that neither side always runs first on a warm or cold
// cache. Each row's figures are medians over the rounds; `paired` is the
// median over the pairs of shared/not shared, each against its own bare.
std::vector<Row> MeasureSharing(const Wrapper& w, const std::string& hook, const Bytes& frame, int prog,
                                const std::function<void()>& flush, const std::function<void(bool)>& share) {
  const std::string names[2] = {"NodePort, new flow (its first packet)", "NodePort, new flow, next hops not shared"};
  std::vector<Row> runs[2];
  for (int i = 0; i < kAbRounds; ++i) {
    for (int k = 0; k < 2; ++k) {
      int side = (i + k) % 2;  // 0 1, 1 0, 0 1, ...
      share(side == 0);
      runs[side].push_back(w.Measure(hook, names[side], frame, Vary::kNewFlows, prog, flush));
    }
  }
  share(true);
  std::vector<Row> out;
  std::vector<double> pairs;
  for (int i = 0; i < kAbRounds; ++i)
    if (runs[0][i].single_bare > 0 && runs[1][i].single > 0)
      pairs.push_back((runs[0][i].single / runs[0][i].single_bare) / (runs[1][i].single / runs[1][i].single_bare));
  for (int side = 0; side < 2; ++side) {
    Row r = runs[side].back();
    std::vector<double> single, bare;
    for (const Row& x : runs[side]) {
      single.push_back(x.single);
      bare.push_back(x.single_bare);
    }
    r.single = Median(single);
    r.single_bare = Median(bare);
    r.paired = side == 0 ? Median(pairs) : 0;
    out.push_back(r);
  }
  return out;
}

void Print(const std::vector<Row>& rows, bool json_out) {
  if (json_out) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& r : rows) {
      if (r.bare <= 0) continue;
      nlohmann::json e = {{"hook", r.hook}, {"case", r.name}, {"baseline_ns", r.bare}, {"verdict", r.verdict},
                          {"single_run_ns", r.single}, {"single_run_baseline_ns", r.single_bare},
                          {"single_run_ratio", r.single / r.single_bare}};
      if (r.paired > 0) e["paired_ratio_to_next_row"] = r.paired;
      if (r.wrapped) {
        e["ns_per_packet"] = r.net;
        e["ratio"] = r.net / r.bare;
        e["wrapped_ns"] = r.wrapped_np;
        e["wrapped_baseline_ns"] = r.wrapped_pass;
      }
      j.push_back(e);
    }
    PrintJson(j);
    return;
  }
  std::printf("BPF_PROG_TEST_RUN, repeat %u, median of %d; baseline = bare XDP_PASS / TC_ACT_OK\n", kRepeat,
              kRounds);
  std::printf("and one run per call (repeat 1, fresh frame, kernel-reported duration, median of %d)\n", kSingles);
  std::printf("%-5s %-46s %9s %9s %7s | %9s %9s %7s %8s\n", "HOOK", "CASE", "NS/PKT", "BASELINE", "RATIO", "1 RUN",
              "BASELINE", "RATIO", "VERDICT");
  for (const auto& r : rows) {
    if (r.bare <= 0) continue;
    if (r.wrapped)
      std::printf("%-5s %-46s %9.1f %9.1f %6.2fx | ", r.hook.c_str(), r.name.c_str(), r.net, r.bare, r.net / r.bare);
    else
      std::printf("%-5s %-46s %9s %9.1f %7s | ", r.hook.c_str(), r.name.c_str(), "-", r.bare, "-");
    std::printf("%9.1f %9.1f %6.2fx %8u\n", r.single, r.single_bare, r.single / r.single_bare, r.verdict);
  }
  for (const auto& r : rows)
    if (r.paired > 0)
      std::printf("%s, new flow, next hops shared / not shared: %.2fx (median of %d alternated pairs)\n", r.hook.c_str(),
                  r.paired, kAbRounds);
}

template <typename K, typename V>
void FlushMap(const std::string& path) {
  auto m = Map<K, V>::OpenPin(path, path);
  if (!m.ok()) return;
  std::vector<K> keys;
  (void)m->ForEach([&](const K& k, const V&) { keys.push_back(k); });
  for (const K& k : keys) (void)m->Delete(k);
}

// Empties the IPv4 conntrack and NAT tables: the next flows are new.
void FlushFlows(const std::string& pins) {
  FlushMap<tnd_ct_key, tnd_ct_val>(pins + "/" TND_MAP_CT_V4);
  FlushMap<tnd_nat_key, tnd_nat_val>(pins + "/" TND_MAP_NAT_V4);
}

int Main(bool json_out) {
  Netns ns("npbench");
  uint32_t tn0 = BuildLbNode(ns);
  if (!tn0) return 1;
  NetnsGuard in_ns(ns);
  TempPinRoot pins;
  auto host = BpfObject::Load({BpfObjectPath("bpf_host"), pins.path()});
  auto xdp = BpfObject::Load({BpfObjectPath("bpf_xdp"), pins.path()});
  auto lxc = BpfObject::Load({BpfObjectPath("bpf_lxc"), pins.path()});
  auto bench = BpfObject::Load({BpfObjectPath("bench_pass"), "", {}});
  if (!host.ok() || !xdp.ok() || !lxc.ok() || !bench.ok() || !Declare(pins, tn0)) {
    std::fprintf(stderr, "bench: loading or declaring failed\n");
    return 1;
  }
  const int lxc_in = *lxc->ProgramFd(kLxcIngressProgram), xdp_np = *xdp->ProgramFd(kXdpEntryProgram),
            tc_np = *host->ProgramFd(kHostIngressProgram), tc_out = *host->ProgramFd(kHostEgressProgram);
  const std::string pay(64, 'x');
  auto pod_frame = [&](const char* dst, uint16_t dport) {
    return Frame().Eth(kMacLx, kMacLocal).Ipv4("10.1.1.2", dst).Tcp(40000, dport, 0x10).Payload(pay).Build();
  };
  Bytes fwd = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30080, 0x10).Payload(pay).Build();
  Bytes to_pod = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 30081, 0x10).Payload(pay).Build();
  Bytes other = Frame().Eth(kMacNode, kMacClient).Ipv4("10.0.0.100", "10.0.0.1").Tcp(40000, 22, 0x10).Payload(pay).Build();
  // The reply of the forward frame's flow, as its node port is now: a real
  // run establishes the flow (again, after a new-flow row emptied the
  // tables) and says which port and backend it has.
  auto reply_frame = [&]() -> Bytes {
    auto first = RunProgram(tc_np, fwd);
    if (!first.ok()) return {};
    uint16_t nport = static_cast<uint16_t>(first->out[34] << 8 | first->out[35]);
    std::string backend = absl::StrCat(static_cast<int>(first->out[30]), ".", static_cast<int>(first->out[31]), ".",
                                       static_cast<int>(first->out[32]), ".", static_cast<int>(first->out[33]));
    return Frame().Eth(kMacNode, kMacPeer).Ipv4(backend, "10.0.0.1").Tcp(8080, nport, 0x10).Payload(pay).Build();
  };

  // Next hops shared by new flows (tnd_hops) as the agent decides it: only
  // where the FIB answers by destination alone (it does in this namespace).
  auto table = RouteTable::Load();
  const bool per_destination = table.ok() && table->has_value() && (*table)->PerDestination();
  auto share = [&](bool on) {
    (void)SetNodeFlag(pins.path() + "/" TND_MAP_NODE, TND_NODE_F_HOPS_SHARED, on && per_destination);
  };
  share(true);
  if (!json_out) std::printf("next hops shared by new flows: %s\n", per_destination ? "yes" : "no (the FIB says no)");

  Wrapper w(*bench);
  std::vector<Row> rows;
  auto flush = [&] { FlushFlows(pins.path()); };
  for (const char* hook : {"XDP", "tc"}) {
    int np = std::string(hook) == "XDP" ? xdp_np : tc_np;
    rows.push_back(w.Measure(hook, "NodePort, established flow (DNAT+SNAT)", fwd, Vary::kNone, np));
    rows.push_back(w.Measure(hook, "NodePort, 60,000 established flows in turn", fwd, Vary::kFlowsInTurn, np));
    for (Row& r : MeasureSharing(w, hook, fwd, np, flush, share)) rows.push_back(r);
    rows.push_back(w.Measure(hook, "reply of a NodePort flow (revSNAT+revDNAT)", reply_frame(), Vary::kNone, np));
    rows.push_back(w.Measure(hook, "NodePort to a local pod, established (DNAT)", to_pod, Vary::kNone, np));
    rows.push_back(w.Measure(hook, "not a service (passes)", other, Vary::kNone, np));
  }
  const Vary same = Vary::kNone;
  rows.push_back(w.Measure("lxc", "pod to pod on the node (redirect_peer)", pod_frame("10.1.1.3", 8080), same, lxc_in));
  rows.push_back(w.Measure("lxc", "pod to another node (FIB, redirect)", pod_frame("10.1.2.9", 80), same, lxc_in));
  // The same packet leaving through the node device: its egress program's
  // full path (no reply of a local backend, not masqueraded), and the same
  // packet as bpf_lxc marks it once egress has said so (TND_MARK_ROUTED).
  Bytes routed = Frame().Eth(kMacPeer, kMacNode).Ipv4("10.1.1.2", "10.1.2.9").Ttl(63).Tcp(40000, 80, 0x10).Payload(pay).Build();
  rows.push_back(w.Measure("tc", "egress: a pod's packet to another node", routed, same, tc_out));
  rows.push_back(w.Measure("tc", "egress: the same, marked by bpf_lxc", routed, same, tc_out, nullptr, TND_MARK_ROUTED));
  // Its counterpart on the far node: the node device's ingress delivering
  // another node's pod's packet into a pod here.
  const Bytes from_pod = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.9", "10.1.1.3").Tcp(40000, 8080, 0x10).Payload(pay).Build();
  rows.push_back(w.Measure("tc", "ingress: another node's pod to a pod here", from_pod, same, tc_np));
  // The replies of both flows above, which have no conntrack entry of their
  // own (the cache their flow's entry keeps for them). Each flow's first
  // packet goes first, so that a row measured alone answers a flow too.
  (void)RunProgram(tc_np, from_pod);
  (void)RunProgram(lxc_in, pod_frame("10.1.2.9", 80));
  const Bytes pod_reply = Frame().Eth(kMacLx, kMacPeer).Ipv4("10.1.1.3", "10.1.2.9").Tcp(8080, 40000, 0x10).Payload(pay).Build();
  rows.push_back(w.Measure("lxc", "reply: a pod answers another node's pod", pod_reply, same, lxc_in));
  const Bytes net_reply = Frame().Eth(kMacNode, kMacPeer).Ipv4("10.1.2.9", "10.1.1.2").Tcp(80, 40000, 0x10).Payload(pay).Build();
  rows.push_back(w.Measure("tc", "ingress: reply from another node to a pod here", net_reply, same, tc_np));
  rows.push_back(w.Measure("lxc", "pod to a ClusterIP, established (DNAT)", pod_frame("10.96.0.20", 80), same, lxc_in));
  rows.push_back(w.Measure("lxc", "pod to pod, 60,000 flows in turn", pod_frame("10.1.1.3", 8080), Vary::kFlowsInTurn,
                           lxc_in));
  rows.push_back(w.Measure("lxc", "pod to pod, new flow (its first packet)", pod_frame("10.1.1.3", 8080), Vary::kNewFlows,
                           lxc_in, flush));
  Print(rows, json_out);
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) { return tendril::test::BenchMain(argc, argv, tendril::test::Main); }
