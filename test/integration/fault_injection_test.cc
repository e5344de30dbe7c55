// Fault injection at the agent's boundaries (AgentSeams): the N-th map
// write, the N-th write or sync of the state store's files fails, for every
// N along an apply of 1,000 services (a third of them Maglev), an endpoint
// add and a restart's restore. After each: the error names what failed,
// the maps equal the previous state (or the new one, when the change was
// acknowledged), and the agent goes on serving. The agent runs in this
// process (the seams are constructor arguments), in a network namespace of
// the test's, with XDP disabled and no devices.
//
// CI tries every N up to kDenseUpTo and then a stride; TND_FAULT_EVERY=1 tries
// every N (scripts/fault-sweep.sh: several minutes).
#include <gtest/gtest.h>

#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "agent/config.h"
#include "lb/lb_writer.h"
#include "lb/services.h"
#include "maps/abi.h"
#include "tendril_build_config.h"
#include "test/support/faults.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

using Dump = std::map<std::string, std::string>;

std::string Hex(const void* p, size_t n) {
  return absl::BytesToHexString(absl::string_view(static_cast<const char*>(p), n));
}

template <typename M>
void DumpInto(const M& m, const std::string& tag, Dump& out) {
  auto st = m.ForEach([&](const auto& k, const auto& v) { out[tag + ":" + Hex(&k, sizeof(k))] = Hex(&v, sizeof(v)); });
  ASSERT_TRUE(st.ok()) << st;
}

// Endpoint entries by key only: a veth made again has another ifindex and MAC.
template <typename M>
void KeysInto(const M& m, const std::string& tag, Dump& out) {
  auto st = m.ForEach([&](const auto& k, const auto&) { out[tag + ":" + Hex(&k, sizeof(k))] = "present"; });
  ASSERT_TRUE(st.ok()) << st;
}

// Every LB map entry and every endpoint entry, as bytes; a Maglev table as
// its positions.
Dump DumpMaps(const std::string& pins) {
  Dump out;
  auto lb = OpenLbMaps(pins);
  EXPECT_TRUE(lb.ok()) << lb.status();
  if (!lb.ok()) return out;
  DumpInto(lb->svc4, "svc4", out);
  DumpInto(lb->svc6, "svc6", out);
  DumpInto(lb->backends, "backend", out);
  DumpInto(lb->revnat, "revnat", out);
  DumpInto(lb->srng4, "srange4", out);
  DumpInto(lb->srng6, "srange6", out);
  uint32_t key = 0, next = 0;
  for (const void* prev = nullptr; bpf_map_get_next_key(lb->maglev.get(), prev, &next) == 0; prev = &key) {
    key = next;
    uint32_t inner_id = 0;
    if (bpf_map_lookup_elem(lb->maglev.get(), &key, &inner_id) != 0) continue;
    UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
    auto info = GetMapInfo(inner.get());
    auto table = ReadU32Array(inner.get(), info.ok() ? info->max_entries : 0);
    EXPECT_TRUE(table.ok()) << table.status();
    if (table.ok()) out[absl::StrCat("maglev:", key)] = Hex(table->data(), table->size() * 4);
  }
  auto eps = Map<tnd_ep_key, tnd_endpoint>::OpenPin(pins + "/" TND_MAP_ENDPOINTS, "endpoints");
  EXPECT_TRUE(eps.ok()) << eps.status();
  if (eps.ok()) KeysInto(*eps, "endpoint", out);
  return out;
}

// The first few differences, for a readable failure.
std::string Diff(const Dump& want, const Dump& got) {
  std::string out;
  int n = 0;
  for (const auto& [k, v] : want)
    if (auto it = got.find(k); (it == got.end() || it->second != v) && n++ < 5)
      out += absl::StrCat("\n  ", k, it == got.end() ? " missing" : " differs");
  for (const auto& [k, v] : got)
    if (!want.count(k) && n++ < 5) out += absl::StrCat("\n  ", k, " extra");
  return absl::StrCat(n, " differences", out);
}

// `got` is `want` plus backend entries of the rolled-back change: backends it
// added retire like removed ones, deleted after the grace period (a packet
// may have picked one from a slot before the undo).
std::string RetiringOnly(const Dump& want, const Dump& got) {
  Dump kept;
  for (const auto& [k, v] : got)
    if (want.count(k) || k.rfind("backend:", 0) != 0) kept[k] = v;
  return kept == want ? "" : Diff(want, kept);
}

// N = 1, 2, ... dense_up_to, then every stride-th (every one with
// TND_FAULT_EVERY=1).
long NextN(long n, long dense_up_to = 24, long stride = 97) {
  const char* every = std::getenv("TND_FAULT_EVERY");
  if ((every && std::string(every) == "1") || n < dense_up_to) return n + 1;
  return n + stride;
}

nlohmann::json B(const std::string& address) { return {{"address", address}}; }

// 1,000 ClusterIP services of 2 backends, every third Maglev; `variant`
// moves backends of every other service and drops/adds a tenth.
nlohmann::json ServiceSet(int variant) {
  nlohmann::json arr = nlohmann::json::array();
  for (int i = 0; i < 1000; ++i) {
    if (variant && i % 10 == 0) continue;
    const int shift = variant && i % 2 ? 100 : 0;
    nlohmann::json s = {{"frontend", absl::StrCat("10.96.", i / 250, ".", i % 250 + 1, ":80/TCP")},
                        {"backends", {B(absl::StrCat("10.1.", i / 100, ".", i % 100 + 1 + shift, ":8080")),
                                      B(absl::StrCat("10.2.", i / 100, ".", i % 100 + 1, ":8080"))}}};
    if (i % 3 == 0) s["algorithm"] = "maglev";
    arr.push_back(s);
  }
  if (variant)
    for (int i = 0; i < 100; ++i)
      arr.push_back({{"frontend", absl::StrCat("10.97.0.", i + 1, ":443/TCP")},
                     {"backends", {B(absl::StrCat("10.3.0.", i + 1, ":8443"))}}});
  return {{"services", arr}};
}

class FaultInjectionTest : public ::testing::Test {
 protected:
  // The backends a change retired are gone once their grace period is.
  void Settle() {
    std::this_thread::sleep_for(std::chrono::milliseconds(ServiceManager::kBackendGraceMs + 100));
    agent_->OnTimer();
  }
  // After a rollback: the previous state with the retiring backends; the
  // first time, also waits out their grace period: then exactly `want`.
  void ExpectRolledBack(const Dump& want, const std::string& what, bool first) {
    EXPECT_EQ(RetiringOnly(want, DumpMaps(pins_.path())), "") << what;
    if (!first) return;
    Settle();
    EXPECT_EQ(DumpMaps(pins_.path()), want) << what << ", after the grace period: " << Diff(want, DumpMaps(pins_.path()));
  }

  void SetUp() override {
    TND_REQUIRE_ROOT();
    node_ = std::make_unique<Netns>("fault");
    in_node_ = std::make_unique<NetnsGuard>(*node_);
    (void)FaultyVfs::Name();  // registered before the store opens
  }
  void TearDown() override {
    agent_.reset();
    in_node_.reset();
  }

  absl::Status StartAgent(const std::string& state_dir, MapOps* ops) {
    agent_.reset();
    std::vector<std::string> args = {"tendril-agent", "--bpffs-root", pins_.path(), "--state-dir", state_dir,
                                     "--api-socket", sock_.path() + "/api.sock", "--cgroup-root", cgroup_.path(),
                                     "--xdp-mode", "disabled", "--max-backends-per-service", "64",
                                     "--maglev-table-size", "251", "--log-level", "warning"};
    for (const std::string& f : AgentTestFlags()) args.push_back(f);
    std::vector<const char*> argv;
    for (const std::string& a : args) argv.push_back(a.c_str());
    auto parsed = ParseAgentArgs(static_cast<int>(argv.size()), argv.data());
    if (!parsed.ok()) return parsed.status();
    agent_ = std::make_unique<Agent>(parsed->config, AgentSeams{ops, FaultyVfs::Name()});
    return agent_->Start();
  }

  void Apply(const nlohmann::json& set) {
    auto r = agent_->ServiceApply(set);
    ASSERT_TRUE(r.ok()) << r.status();
  }

  // The agent answers and holds `services` services.
  void ExpectServing(size_t services) {
    EXPECT_EQ(agent_->ServiceList().size(), services);
    auto probe = agent_->ServiceAdd({{"service", {{"frontend", "10.99.0.1:80/TCP"}}}});
    ASSERT_TRUE(probe.ok()) << "the agent refuses a change after the fault: " << probe.status();
    ASSERT_TRUE(agent_->ServiceDelete({{"id", (*probe)["id"]}}).ok());
  }

  std::unique_ptr<Netns> node_;
  std::unique_ptr<NetnsGuard> in_node_;
  TempPinRoot pins_;
  TempDir state_, other_state_, sock_;
  TempCgroup cgroup_;
  FaultyMapOps ops_;
  std::unique_ptr<Agent> agent_;
};

TEST_F(FaultInjectionTest, EveryMapWriteOfAnApplyFailingLeavesThePreviousState) {
  ASSERT_TRUE(StartAgent(state_.path(), &ops_).ok());
  ASSERT_NO_FATAL_FAILURE(Apply(ServiceSet(0)));
  const Dump before = DumpMaps(pins_.path());
  const size_t declared = agent_->ServiceList().size();
  long n = 1, tried = 0;
  for (; n < 1000000; n = NextN(n), ++tried) {
    ops_.FailNth(n);
    auto r = agent_->ServiceApply(ServiceSet(1));
    ops_.Disarm();
    if (!ops_.fired()) {
      ASSERT_TRUE(r.ok()) << "no fault, yet: " << r.status();
      break;
    }
    ASSERT_FALSE(r.ok()) << "write " << n << " failed, yet the apply was acknowledged";
    EXPECT_NE(r.status().message().find("Cannot allocate memory"), std::string::npos) << r.status();
    ExpectRolledBack(before, absl::StrCat("write ", n), tried == 0);
    ExpectServing(declared);
    if (HasFailure()) return;
  }
  EXPECT_GT(n, 1000) << "an apply of this size writes more than that";
  EXPECT_EQ(agent_->ServiceList().size(), 1000u);
  // What the faultless apply wrote is what a restart with nothing changed
  // finds: no write.
  Settle();
  const Dump after = DumpMaps(pins_.path());
  ASSERT_TRUE(StartAgent(state_.path(), &ops_).ok());
  EXPECT_EQ(DumpMaps(pins_.path()), after);
  std::printf("apply of 1000 services: %ld map writes, faults injected at %ld of them\n", n - 1, tried);
}

TEST_F(FaultInjectionTest, EveryFailedStoreWriteOrSyncRollsTheMapsBack) {
  ASSERT_TRUE(StartAgent(state_.path(), &ops_).ok());
  for (FaultyVfs::Op op : {FaultyVfs::Op::kSync, FaultyVfs::Op::kWrite}) {
    const char* what = op == FaultyVfs::Op::kSync ? "sync" : "write";
    // (Set 0 again gets new backend ids for the services set 1 dropped.)
    ASSERT_NO_FATAL_FAILURE(Apply(ServiceSet(0)));
    Settle();
    const Dump before = DumpMaps(pins_.path());
    long n = 1;
    for (; n < 100000; n = NextN(n)) {
      FaultyVfs::FailNth(op, n);
      auto r = agent_->ServiceApply(ServiceSet(1));
      FaultyVfs::Disarm();
      if (!FaultyVfs::Fired()) {
        ASSERT_TRUE(r.ok()) << r.status();
        break;
      }
      ASSERT_FALSE(r.ok()) << what << " " << n << " failed, yet the apply was acknowledged";
      EXPECT_NE(r.status().message().find("state store"), std::string::npos) << r.status();
      EXPECT_NE(r.status().message().find("maps rolled back"), std::string::npos) << r.status();
      ExpectRolledBack(before, absl::StrCat(what, " ", n), n == 1);
      ExpectServing(1000);
      if (HasFailure()) return;
    }
    EXPECT_GT(n, 1) << "the commit of an apply does a " << what;
    std::printf("store commit of an apply: %ld %ss\n", n - 1, what);
  }
}

TEST_F(FaultInjectionTest, EveryMapWriteOfAnEndpointAddFailing) {
  Netns pod("faultpod");
  ASSERT_TRUE(StartAgent(state_.path(), &ops_).ok());
  // Services with a backend at the pod: the add moves them to local.
  nlohmann::json arr = nlohmann::json::array();
  for (int i = 0; i < 20; ++i)
    arr.push_back({{"frontend", absl::StrCat("10.96.9.", i + 1, ":80/TCP")},
                   {"backends", {B("10.200.1.10:8080"), B(absl::StrCat("10.1.9.", i + 1, ":8080"))}},
                   {"algorithm", i % 3 ? "random" : "maglev"}});
  ASSERT_NO_FATAL_FAILURE(Apply({{"services", arr}}));
  const nlohmann::json ep = {
      {"endpoint", {{"id", 1}, {"ifname", "lxcf1"}, {"netns", pod.path()}, {"ips", {"10.200.1.10"}}}}};
  const Dump before = DumpMaps(pins_.path());
  ASSERT_TRUE(agent_->EndpointAdd(ep).ok());
  const Dump added = DumpMaps(pins_.path());
  ASSERT_NE(added, before);
  ASSERT_TRUE(agent_->EndpointDelete({{"id", 1}}).ok());
  ASSERT_EQ(DumpMaps(pins_.path()), before) << Diff(before, DumpMaps(pins_.path()));
  for (long n = 1; n < 10000; ++n) {
    ops_.FailNth(n);
    auto r = agent_->EndpointAdd(ep);
    ops_.Disarm();
    if (!ops_.fired()) {
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_GT(n, 5);
      break;
    }
    if (!r.ok()) {
      // Refused whole: the endpoint's own entry could not be written.
      EXPECT_NE(r.status().message().find("nothing was left behind"), std::string::npos) << r.status();
      EXPECT_EQ(DumpMaps(pins_.path()), before) << "write " << n << ": " << Diff(before, DumpMaps(pins_.path()));
      EXPECT_TRUE(agent_->EndpointList().empty());
    } else {
      // Acknowledged; a service's placement write failed and was undone:
      // the agent's timer finishes it.
      agent_->OnTimer();
      EXPECT_EQ(DumpMaps(pins_.path()), added) << "write " << n << ": " << Diff(added, DumpMaps(pins_.path()));
      ASSERT_TRUE(agent_->EndpointDelete({{"id", 1}}).ok());
      EXPECT_EQ(DumpMaps(pins_.path()), before) << Diff(before, DumpMaps(pins_.path()));
    }
    ExpectServing(20);
    if (HasFailure()) return;
  }
}

// A restart whose maps hold another state (an apply the store never took,
// here: another state dir's) restores the stored one; a write failing half
// way stops that start with the error, and the next start finishes it.
// Each step is three starts; a start that restores 1,000 services over
// another state publishes and drops Maglev tables, each waiting for an RCU
// grace period (the kernel's rule for map-in-map writes), 5-12 s on a slow
// VM: CI samples every 1,997th write, scripts/fault-sweep.sh every one.
TEST_F(FaultInjectionTest, EveryMapWriteOfARestoreFailing) {
  ASSERT_TRUE(StartAgent(other_state_.path(), nullptr).ok());
  ASSERT_NO_FATAL_FAILURE(Apply(ServiceSet(1)));
  ASSERT_TRUE(StartAgent(state_.path(), nullptr).ok());
  ASSERT_NO_FATAL_FAILURE(Apply(ServiceSet(0)));
  const Dump stored = DumpMaps(pins_.path());
  long tried = 0;
  for (long n = 1; n < 1000000; n = NextN(n, 4, 1997), ++tried) {
    ASSERT_TRUE(StartAgent(other_state_.path(), nullptr).ok());  // the maps hold the other state
    ops_.FailNth(n);
    absl::Status st = StartAgent(state_.path(), &ops_);
    ops_.Disarm();
    if (!ops_.fired()) {
      ASSERT_TRUE(st.ok()) << st;
      break;
    }
    ASSERT_FALSE(st.ok()) << "write " << n << " failed, yet the start succeeded";
    EXPECT_NE(st.message().find("Cannot allocate memory"), std::string::npos) << st;
    // systemd starts it again.
    ASSERT_TRUE(StartAgent(state_.path(), &ops_).ok());
    EXPECT_EQ(DumpMaps(pins_.path()), stored) << "write " << n << ": " << Diff(stored, DumpMaps(pins_.path()));
    ExpectServing(1000);
    if (HasFailure()) return;
  }
  EXPECT_EQ(DumpMaps(pins_.path()), stored);
  std::printf("restore of 1000 services over another state: faults injected at %ld writes\n", tried);
}

}  // namespace
}  // namespace tendril::test
