// tendril against kube-proxy, side by side in one run on this machine.
//
// Modes: kube-proxy's iptables mode (rules generated as kube-proxy writes
// them, loaded with iptables-restore) on the legacy and the nf_tables back
// end, its nftables mode (nft -f), tendril with socket LB (connect4 in the
// client's cgroup) and tendril with socket LB off (per-packet LB in tc at the
// client pod's veth). For each mode and each number of services S, a fresh
// node:
//
//   client pod 10.244.0.10 --veth-- node --veth-- backend pods 10.244.1.1, .2
//
// (pods wired as tendril wires them: /32 addresses, a default route via
// 169.254.1.1 whose neighbour entry is the host side's MAC; the kube-proxy modes
// route on the node's kernel, the tendril modes adopt the veths as endpoints
// and route in eBPF). S services of 2 endpoints each are programmed; the last
// one programmed is the one measured, its endpoints are the two backend pods;
// the others' endpoints are addresses that do not exist. One more service,
// 10.96.0.1:5201 -> backend 1, carries iperf3.
//
// Measured per (mode, S): time to program the S services from nothing; new
// connections (connect + RST close) to the last ClusterIP and, in the same
// alternating rounds, straight to a backend pod (rate, p50, p99), with the
// nodes of all modes of an S up at once and their rounds taking turns (this
// VM's speed drifts by a third over minutes); the time of
// one backend change (the measured service loses an endpoint; the bench then
// checks the removed backend gets no more connections); kernel memory taken by
// programming (Slab + VmallocUsed + Percpu of /proc/meminfo); for tendril the
// agent's RSS and the pinned maps' memory. iperf3 through the service and
// straight to the backend at one S.
#include <sched.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "test/bench/bench_util.h"
#include "test/bench/kube_proxy_cell.h"

namespace tendril::test {
namespace {

// Largest S loaded by default, per mode, and why: kept so that the whole run
// stays under 15 minutes on this 2-vCPU machine. --full lifts them.
struct Cap {
  int max;
  const char* why;
};
std::map<std::string, Cap> Caps() {
  return {{"nftables", {10000, "nft -f of one transaction grows quadratically here (14-78 s at 10000 services)"}},
          {"iptables-nft", {10000, "iptables-nft-restore took 188 s at 100000 services; run with --full"}}};
}

// The pinned maps' memory with no service declared: the flow tables (LRU,
// preallocated at load) by their size settings; the LB tables follow what
// is declared (their growth is in the per-S rows).
nlohmann::json MapMemory() {
  nlohmann::json out = nlohmann::json::array();
  struct Variant {
    const char* name;
    std::vector<std::string> flags;
  };
  std::vector<Variant> variants = {
      {"defaults (flow tables: 0.0025 of the node's memory)", {}},
      {"map-dynamic-size-ratio 0.00125", {"--map-dynamic-size-ratio", "0.00125"}},
      {"flow tables at their floor (16384 entries)",
       {"--ct-max-entries", "16384", "--nat-max-entries", "16384", "--sock-revnat-max-entries", "16384",
        "--affinity-max-entries", "16384"}},
      {"ct/nat 262144 (the defaults before they followed memory)",
       {"--ct-max-entries", "262144", "--nat-max-entries", "262144", "--sock-revnat-max-entries", "65536",
        "--affinity-max-entries", "65536"}},
  };
  for (const Variant& v : variants) {
    Node n(9);
    Tendril t;
    nlohmann::json row = {{"tables", v.name}};
    if (!n.Build()) {
      row["error"] = "could not build the namespaces";
    } else if (auto st = t.Start(n, true, v.flags, false); !st.ok()) {
      row["error"] = std::string(st.message());
    } else {
      row["pinned_map_kb"] = PinnedMapKb(t.pins.path());
      row["agent_rss_kb"] = RssKb(t.agent->pid());
    }
    out.push_back(row);
  }
  return out;
}

double Num(const nlohmann::json& j, const char* a, const char* b = nullptr) {
  const nlohmann::json* p = &j;
  if (!p->contains(a)) return NAN;
  p = &(*p)[a];
  if (b) {
    if (!p->contains(b)) return NAN;
    p = &(*p)[b];
  }
  return p->is_number() ? p->get<double>() : NAN;
}

std::string F(double v, const char* fmt = "%.0f") { return std::isnan(v) || v < 0 ? "-" : absl::StrFormat(fmt, v); }

std::string Ratio(double a, double b) { return std::isnan(a) || std::isnan(b) || b <= 0 ? "-" : absl::StrFormat("%.2f", a / b); }

void PrintTables(const nlohmann::json& results, const nlohmann::json& iperf, const nlohmann::json& memory,
                 const Options& o) {
  std::map<int, std::vector<const nlohmann::json*>> by_size;
  for (const auto& r : results) by_size[r["services"].get<int>()].push_back(&r);
  for (const auto& [s, rows] : by_size) {
    std::printf("\n-- %d services (+1 for iperf3), 2 endpoints each; measured: the last one programmed\n", s);
    std::printf("%-16s %10s %10s | %9s %8s %8s | %9s %8s %8s | %9s %9s %9s\n", "mode", "program", "1 change",
                "VIP c/s", "p50 us", "p99 us", "direct", "p50 us", "p99 us", "kmem kB", "agent kB", "maps kB");
    for (const nlohmann::json* r : rows) {
      if (r->contains("error")) {
        std::printf("%-16s %s\n", (*r)["mode"].get<std::string>().c_str(),
                    ("not measured: " + (*r)["error"].get<std::string>()).c_str());
        continue;
      }
      const auto& j = *r;
      std::printf("%-16s %10s %10s | %9s %8s %8s | %9s %8s %8s | %9s %9s %9s%s\n", j["mode"].get<std::string>().c_str(),
                  Ms(Num(j, "program_s")).c_str(), Ms(Num(j, "change_s")).c_str(), F(Num(j, "vip", "rate_per_s")).c_str(),
                  F(Num(j, "vip", "p50_us"), "%.1f").c_str(), F(Num(j, "vip", "p99_us"), "%.1f").c_str(),
                  F(Num(j, "direct", "rate_per_s")).c_str(), F(Num(j, "direct", "p50_us"), "%.1f").c_str(),
                  F(Num(j, "direct", "p99_us"), "%.1f").c_str(), F(Num(j, "kernel_mem_kb")).c_str(),
                  F(Num(j, "agent_rss_kb")).c_str(), F(Num(j, "pinned_map_kb")).c_str(),
                  j.value("change_verified", true) ? "" : "  (change NOT verified)");
    }
    for (const nlohmann::json* r : rows)
      if (r->contains("change_api_s"))
        std::printf("   %s: one backend change through the API socket (no CLI process, median of 21): %s (the agent's "
                    "own handling: %s); through the CLI (median of 9): %s; a CLI command that does nothing (tendril "
                    "version): %s; the same set applied again: %s\n",
                    (*r)["mode"].get<std::string>().c_str(), Ms(Num(*r, "change_api_s")).c_str(),
                    Ms(Num(*r, "change_agent_s")).c_str(), Ms(Num(*r, "change_cli_s")).c_str(),
                    Ms(Num(*r, "cli_start_s")).c_str(),
                    Ms(Num(*r, "reapply_s")).c_str());
    for (const nlohmann::json* r : rows)
      if (r->contains("restart_ready_s") || r->contains("restart_error"))
        std::printf("   %s: kill -9 and start: ready in %s, %s map writes and %s deletes at restore; a client "
                    "connecting in a loop: %s failures of %s%s\n",
                    (*r)["mode"].get<std::string>().c_str(), Ms(Num(*r, "restart_ready_s")).c_str(),
                    F(Num(*r, "restart_map_writes")).c_str(), F(Num(*r, "restart_map_deletes")).c_str(),
                    F(Num(*r, "restart_failures")).c_str(), F(Num(*r, "restart_connects")).c_str(),
                    r->contains("restart_error") ? ("  (" + (*r)["restart_error"].get<std::string>() + ")").c_str()
                                                 : "");
    // Ratios: each tendril mode over each kube-proxy mode (lower is better
    // for times, higher for rates).
    for (const nlohmann::json* t : rows) {
      std::string tm = (*t)["mode"];
      if (tm.rfind("tendril", 0) != 0 || t->contains("error")) continue;
      for (const nlohmann::json* b : rows) {
        std::string bm = (*b)["mode"];
        if (bm.rfind("tendril", 0) == 0 || b->contains("error")) continue;
        std::printf("   %s / %s: VIP p50 %s, p99 %s, rate %s, program %s, change %s\n", tm.c_str(), bm.c_str(),
                    Ratio(Num(*t, "vip", "p50_us"), Num(*b, "vip", "p50_us")).c_str(),
                    Ratio(Num(*t, "vip", "p99_us"), Num(*b, "vip", "p99_us")).c_str(),
                    Ratio(Num(*t, "vip", "rate_per_s"), Num(*b, "vip", "rate_per_s")).c_str(),
                    Ratio(Num(*t, "program_s"), Num(*b, "program_s")).c_str(),
                    Ratio(Num(*t, "change_s"), Num(*b, "change_s")).c_str());
      }
    }
  }
  if (!memory.empty()) {
    std::printf("\n-- tendril's pinned maps with no service, by flow table size settings\n");
    std::printf("%-58s %12s %12s\n", "tables", "maps kB", "agent kB");
    for (const auto& m : memory)
      std::printf("%-58s %12s %12s\n", m["tables"].get<std::string>().c_str(), F(Num(m, "pinned_map_kb")).c_str(),
                  F(Num(m, "agent_rss_kb")).c_str());
  }
  if (!iperf.empty()) {
    std::printf("\n-- iperf3 %gs, client pod -> service 10.96.0.1:5201 and straight to the backend pod, at %d services\n",
                o.iperf_seconds, o.iperf_size);
    std::printf("%-16s %14s %14s %8s\n", "mode", "via VIP Gb/s", "direct Gb/s", "ratio");
    for (const auto& r : iperf)
      std::printf("%-16s %14s %14s %8s\n", r["mode"].get<std::string>().c_str(), F(Num(r, "vip_gbit_s"), "%.2f").c_str(),
                  F(Num(r, "direct_gbit_s"), "%.2f").c_str(), Ratio(Num(r, "vip_gbit_s"), Num(r, "direct_gbit_s")).c_str());
  }
}

// gnuplot data: one row per S; per mode VIP p50, VIP p99, program seconds.
void WriteDat(const std::string& path, const nlohmann::json& results, const Options& o) {
  std::ofstream f(path);
  f << "# services";
  for (const auto& m : o.modes) f << " " << m << "_p50 " << m << "_p99 " << m << "_program_s";
  f << "\n";
  for (int s : o.sizes) {
    f << s;
    for (const auto& m : o.modes) {
      const nlohmann::json* hit = nullptr;
      for (const auto& r : results)
        if (r["mode"] == m && r["services"] == s) hit = &r;
      auto put = [&](double v) { f << " " << (hit && !std::isnan(v) && v >= 0 ? absl::StrCat(v) : "NaN"); };
      put(hit ? Num(*hit, "vip", "p50_us") : NAN);
      put(hit ? Num(*hit, "vip", "p99_us") : NAN);
      put(hit ? Num(*hit, "program_s") : NAN);
    }
    f << "\n";
  }
}

int Main(const Options& o) {
  if (geteuid() != 0) {
    std::fprintf(stderr, "bench: needs root\n");
    return 1;
  }
  if (o.cpu != -1) {
    int cpu = o.cpu == -2 ? static_cast<int>(std::thread::hardware_concurrency()) - 1 : o.cpu;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof(set), &set) != 0) {
      std::fprintf(stderr, "bench: pin to CPU %d: %s\n", cpu, std::strerror(errno));
      return 1;
    }
    std::fprintf(stderr, "pinned to CPU %d (children inherit it)\n", cpu);
  }
  TempDir work;
  nlohmann::json results = nlohmann::json::array(), iperf = nlohmann::json::array();
  auto caps = Caps();
  auto start = Clock::now();
  // A first round, not recorded: the first measurements of a run were
  // slower (caches, page cache, the CPU's clock ramping up).
  {
    Options warm = o;
    warm.rounds = 1;
    long mem_before = KernelMemKb();
    {
      std::fprintf(stderr, "warm-up: %s, 1 service (not recorded)\n", o.modes.front().c_str());
      Cell c(o.modes.front(), 1, 0, warm, work.path());
      c.Program();
      c.Round();
    }
    Settle(mem_before);
  }
  for (int s : o.sizes) {
    long mem_before = KernelMemKb();
    {
      std::vector<std::unique_ptr<Cell>> cells;
      std::vector<nlohmann::json> rows(o.modes.size());
      for (size_t m = 0; m < o.modes.size(); ++m) {
        const std::string& mode = o.modes[m];
        auto cap = caps.find(mode);
        if (!o.full && cap != caps.end() && s > cap->second.max) {
          rows[m] = {{"mode", mode}, {"services", s}, {"error", absl::StrCat("skipped: ", cap->second.why)}};
          continue;
        }
        std::fprintf(stderr, "[%5.0fs] %s, %d services\n", Seconds(start, Clock::now()), mode.c_str(), s);
        cells.push_back(std::make_unique<Cell>(mode, s, static_cast<int>(m), o, work.path()));
        cells.back()->Program();
      }
      // Connection rounds: every mode in turn, so that whatever the machine
      // does meanwhile falls on all of them alike.
      std::fprintf(stderr, "[%5.0fs] connections, %d rounds over %zu modes\n", Seconds(start, Clock::now()), o.rounds,
                   cells.size());
      for (int r = 0; r < o.rounds; ++r)
        for (auto& c : cells) c->Round();
      for (auto& c : cells) c->Change();
      for (auto& c : cells) c->Restart();
      if (s == o.iperf_size)
        for (auto& c : cells)
          if (auto ip = c->Iperf(); !ip.is_null()) iperf.push_back(ip);
      for (auto& c : cells) {
        nlohmann::json r = c->Result();
        if (r.contains("error"))
          std::fprintf(stderr, "         %s: %s\n", c->mode().c_str(), r["error"].get<std::string>().c_str());
        rows[static_cast<size_t>(std::find(o.modes.begin(), o.modes.end(), c->mode()) - o.modes.begin())] = r;
      }
      for (auto& r : rows) results.push_back(r);
    }
    Settle(mem_before);
  }
  nlohmann::json memory = nlohmann::json::array();
  if (std::find(o.modes.begin(), o.modes.end(), "tendril") != o.modes.end()) memory = MapMemory();
  nlohmann::json all = {{"endpoints_per_service", 2}, {"results", results}, {"iperf", iperf}, {"map_memory", memory},
                        {"seconds", Seconds(start, Clock::now())}};
  if (!o.json_path.empty()) WriteFile(o.json_path, all.dump(2) + "\n");
  if (!o.dat_path.empty()) WriteDat(o.dat_path, results, o);
  PrintTables(results, iperf, memory, o);
  std::printf("\n(whole comparison: %.0f s)\n", Seconds(start, Clock::now()));
  return 0;
}

}  // namespace
}  // namespace tendril::test

int main(int argc, char** argv) {
  tendril::test::Options o;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--sizes") {
      o.sizes.clear();
      for (absl::string_view p : absl::StrSplit(next(), ',')) {
        int v = 0;
        if (!absl::SimpleAtoi(p, &v) || v < 1) {
          std::fprintf(stderr, "--sizes: \"%s\" is not a positive number\n", std::string(p).c_str());
          return 2;
        }
        o.sizes.push_back(v);
      }
    } else if (a == "--modes") {
      o.modes = absl::StrSplit(next(), ',');
      for (const auto& m : o.modes)
        if (std::find(tendril::test::kAllModes.begin(), tendril::test::kAllModes.end(), m) ==
            tendril::test::kAllModes.end()) {
          std::fprintf(stderr, "--modes: unknown mode \"%s\" (%s)\n", m.c_str(),
                       absl::StrJoin(tendril::test::kAllModes, ", ").c_str());
          return 2;
        }
    } else if (a == "--full") {
      o.full = true;
    } else if (a == "--json") {
      o.json_path = next();
    } else if (a == "--dat") {
      o.dat_path = next();
    } else if (a == "--iperf-size") {
      if (!absl::SimpleAtoi(next(), &o.iperf_size)) return 2;
    } else if (a == "--cpu") {
      if (!absl::SimpleAtoi(next(), &o.cpu) || o.cpu < -1) {
        std::fprintf(stderr, "--cpu: a CPU number, or -1 for no pinning\n");
        return 2;
      }
    } else if (a == "--quick") {
      o.rounds = 2;
      o.round_seconds = 0.2;
      o.iperf_seconds = 1;
    } else {
      std::fprintf(stderr,
                   "usage: kube_proxy_bench [--sizes 1,1000,10000,100000] [--modes %s] [--full] [--json FILE] "
                   "[--dat FILE] [--iperf-size S] [--cpu N|-1] [--quick]\n",
                   absl::StrJoin(tendril::test::kAllModes, ",").c_str());
      return 2;
    }
  }
  return tendril::test::Main(o);
}
