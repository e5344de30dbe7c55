// The service planner without root and without maps: ids, backend ids,
// slots, Maglev tables, capacities, node and health ports, conflicts,
// placement and node addresses, as plans. Each test commits the plans it
// takes, as the manager does after a successful write.
#include "lb/planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <random>

#include "absl/strings/str_cat.h"
#include "lb/id_pool.h"
#include "lb/maglev.h"

namespace tendril {
namespace {

constexpr uint32_t kM = 251;  // a small prime Maglev table

Service Make(const std::string& fe, std::vector<std::string> backends, ServiceType type = ServiceType::kClusterIP) {
  Service s;
  s.frontend = *ParseFrontend(fe);
  s.type = type;
  for (const auto& b : backends) s.backends.push_back(*ParseBackend(b));
  return s;
}

IpAddr Ip(const std::string& text) { return *ParseIp(text); }

class PlannerTest : public ::testing::Test {
 protected:
  // Takes a plan as written.
  void Commit(const Plan& p, int64_t now = 0) {
    planner_.Begin(p);
    for (const ServiceChange& c : p.changes) planner_.Commit(c, now);
  }
  Service Add(Service s) {
    auto p = planner_.Add(std::move(s));
    EXPECT_TRUE(p.ok()) << p.status();
    if (!p.ok()) return {};
    Commit(*p);
    return *p->changes.front().neu;
  }
  static void ExpectError(const absl::Status& st, absl::StatusCode code, const std::string& fragment) {
    ASSERT_FALSE(st.ok()) << "expected: " << fragment;
    EXPECT_EQ(st.code(), code) << st;
    EXPECT_NE(st.message().find(fragment), std::string::npos) << st.message();
  }

  ServiceLimits limits_{64, 4096, 30000, 30009, 2};
  ServicePlanner planner_{limits_, kM, NodeView{{Ip("192.168.1.1")}}};
};

TEST_F(PlannerTest, AddGivesTheLowestFreeIdAndFreshBackendIds) {
  Service a = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  Service b = Add(Make("10.96.0.11:80/TCP", {"10.0.1.4:8080"}));
  EXPECT_EQ(a.id, 1);
  EXPECT_EQ(b.id, 2);
  EXPECT_EQ(a.backends[0].id, 1u);
  EXPECT_EQ(a.backends[1].id, 2u);
  EXPECT_EQ(b.backends[0].id, 3u);
  Service given = Make("10.96.0.12:80/TCP", {"10.0.1.5:8080"});
  given.id = 77;
  EXPECT_EQ(Add(given).id, 77);
  auto taken = Make("10.96.0.13:80/TCP", {});
  taken.id = 77;
  ExpectError(planner_.Add(taken).status(), absl::StatusCode::kAlreadyExists, "service id 77 is taken");
}

TEST_F(PlannerTest, SlotsFollowWeightsAndTheMasterPublishesTheCount) {
  auto p = planner_.Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080@2", "10.0.1.3:8080@4"}));
  ASSERT_TRUE(p.ok()) << p.status();
  const ServiceChange& c = p->changes.at(0);
  EXPECT_FALSE(c.old.has_value());
  ASSERT_EQ(c.new_entries.size(), 1u) << "a ClusterIP has one frontend";
  const FrontendEntry& e = c.new_entries[0];
  EXPECT_EQ(e.master.count, 3) << "weights 2 and 4 -> 1 and 2 slots";
  EXPECT_EQ(e.master.svc_id, c.neu->id);
  std::map<uint32_t, int> per;
  for (uint32_t id : e.slots) per[id]++;
  EXPECT_EQ(per[c.neu->backends[0].id], 1);
  EXPECT_EQ(per[c.neu->backends[1].id], 2);
}

TEST_F(PlannerTest, UpdateKeepsBackendIdsByAddressAndRetiresTheRemovedOnes) {
  Service s = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  ServiceUpdate u;
  u.backends = {*ParseBackend("10.0.1.3:8080"), *ParseBackend("10.0.1.9:8080")};
  auto p = planner_.Update(s.id, u);
  ASSERT_TRUE(p.ok()) << p.status();
  const ServiceChange& c = p->changes.at(0);
  EXPECT_EQ(c.neu->backends[0].id, s.backends[1].id) << "10.0.1.3 keeps its id";
  EXPECT_NE(c.neu->backends[1].id, s.backends[0].id) << "a new backend never takes a retiring id";
  ASSERT_EQ(c.removed.size(), 1u);
  EXPECT_EQ(c.removed[0].id, s.backends[0].id);
  Commit(*p, /*now=*/1000);
  EXPECT_TRUE(planner_.RetiredDue(1000 + ServicePlanner::kBackendGraceMs - 1, false).empty());
  EXPECT_EQ(planner_.RetiredDue(1000 + ServicePlanner::kBackendGraceMs, false),
            std::vector<uint32_t>{s.backends[0].id});
  EXPECT_EQ(*planner_.NextRetiredDeadlineMs(), 1000 + ServicePlanner::kBackendGraceMs);
  // Until it is forgotten, its id is not given again.
  auto again = planner_.Update(s.id, ServiceUpdate{.backends = std::vector<Backend>{*ParseBackend("10.0.1.2:8080")}});
  ASSERT_TRUE(again.ok());
  EXPECT_NE(again->changes[0].neu->backends[0].id, s.backends[0].id);
  planner_.ForgetRetired(s.backends[0].id);
  EXPECT_FALSE(planner_.NextRetiredDeadlineMs().has_value());
}

TEST_F(PlannerTest, UpdateOfAnUnknownServiceOrBackendIsNotFound) {
  Service s = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  ExpectError(planner_.Update(99, {}).status(), absl::StatusCode::kNotFound, "no service with id 99");
  ServiceUpdate u;
  u.states = {*ParseBackendStateChange("10.0.1.7:8080=terminating")};
  ExpectError(planner_.Update(s.id, u).status(), absl::StatusCode::kNotFound, "has no backend 10.0.1.7:8080");
  ExpectError(planner_.Delete(99).status(), absl::StatusCode::kNotFound, "no service with id 99");
}

TEST_F(PlannerTest, TerminatingBackendsServeOnlyWhenNoneIsReady) {
  Service s = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  ServiceUpdate u;
  u.states = {*ParseBackendStateChange("10.0.1.2:8080=terminating")};
  auto p = planner_.Update(s.id, u);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->changes[0].new_entries[0].slots, std::vector<uint32_t>{s.backends[1].id});
  Commit(*p);
  u.states = {*ParseBackendStateChange("10.0.1.3:8080=maintenance")};
  p = planner_.Update(s.id, u);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->changes[0].new_entries[0].slots, std::vector<uint32_t>{s.backends[0].id})
      << "the terminating one is the fallback";
}

TEST_F(PlannerTest, MaglevTablesArePlannedAndTheirCountIsCapped) {
  Service m = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"});
  m.algorithm = Algorithm::kMaglev;
  auto p = planner_.Add(m);
  ASSERT_TRUE(p.ok()) << p.status();
  const ServiceChange& c = p->changes[0];
  ASSERT_EQ(c.maglev.size(), kM);
  size_t first = 0;
  for (uint32_t id : c.maglev) first += id == c.neu->backends[0].id;
  EXPECT_GT(first, kM / 3);
  EXPECT_LT(first, 2 * kM / 3);
  Commit(*p);
  m.frontend.port = 81;
  Add(m);
  m.frontend.port = 82;
  ExpectError(planner_.Add(m).status(), absl::StatusCode::kResourceExhausted, "3 services would use Maglev");
  m.algorithm = Algorithm::kRandom;
  auto plain = planner_.Add(m);
  ASSERT_TRUE(plain.ok());
  EXPECT_TRUE(plain->changes[0].maglev.empty());
}

TEST_F(PlannerTest, NodePortsAreAllocatedKeptAndUniquePerFamilyAndProtocol) {
  Service a = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}, ServiceType::kNodePort));
  EXPECT_EQ(a.node_port, 30000);
  ASSERT_EQ(planner_.Entries(a).size(), 2u) << "ClusterIP and node address";
  EXPECT_EQ(planner_.Entries(a)[1].frontend.ToString(), "192.168.1.1:30000/TCP");
  // Kept across an update.
  auto u = planner_.Update(a.id, ServiceUpdate{.dsr = true});
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(u->changes[0].neu->node_port, 30000);
  // Given ports: the same one on UDP is fine, on TCP it is taken.
  Service udp = Make("10.96.0.11:53/UDP", {"10.0.1.2:53"}, ServiceType::kNodePort);
  udp.node_port = 30000;
  EXPECT_EQ(Add(udp).node_port, 30000);
  Service tcp = Make("10.96.0.12:80/TCP", {"10.0.1.2:8080"}, ServiceType::kNodePort);
  tcp.node_port = 30000;
  ExpectError(planner_.Add(tcp).status(), absl::StatusCode::kAlreadyExists, "node port 30000/TCP is already used");
  // The range runs out.
  for (int i = 0; i < 9; ++i) Add(Make(absl::StrCat("10.96.1.", i, ":80/TCP"), {}, ServiceType::kNodePort));
  ExpectError(planner_.Add(Make("10.96.2.1:80/TCP", {}, ServiceType::kNodePort)).status(),
              absl::StatusCode::kResourceExhausted, "no free port in the node port range 30000-30009");
}

TEST_F(PlannerTest, HealthCheckPortsAreCheckedOnTheNodeBeforeAnythingIsPlanned) {
  std::vector<uint16_t> asked;
  planner_.OnNewHealthPort([&](uint16_t port) {
    asked.push_back(port);
    return port == 30001 ? absl::UnavailableError("address in use") : absl::OkStatus();
  });
  Service local = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}, ServiceType::kNodePort);
  local.traffic_policy = TrafficPolicy::kLocal;
  ExpectError(planner_.Add(local).status(), absl::StatusCode::kUnavailable, "health check port 30001");
  local.health_check_port = 30005;
  Service s = Add(local);
  EXPECT_EQ(s.health_check_port, 30005);
  EXPECT_EQ(asked, (std::vector<uint16_t>{30001, 30005}));
  Service clash = Make("10.96.0.11:80/TCP", {}, ServiceType::kNodePort);
  clash.node_port = 30005;
  ExpectError(planner_.Add(clash).status(), absl::StatusCode::kAlreadyExists, "is the health check port of");
}

TEST_F(PlannerTest, FrontendConflictsNameTheOwner) {
  Service a = Add(Make("10.96.0.10:80/TCP", {}));
  ExpectError(planner_.Add(Make("10.96.0.10:80/TCP", {})).status(), absl::StatusCode::kAlreadyExists,
              "frontend 10.96.0.10:80/TCP is already service 1");
  Service ext = Make("10.96.0.11:80/TCP", {}, ServiceType::kExternalIP);
  ext.external_ips = {Ip("10.96.0.10")};
  ExpectError(planner_.Add(ext).status(), absl::StatusCode::kAlreadyExists, "already service 1");
  EXPECT_EQ(*planner_.IdOf(a.frontend), a.id);
  EXPECT_FALSE(planner_.IdOf(*ParseFrontend("10.96.0.99:80/TCP")).ok());
}

TEST_F(PlannerTest, ReplaceKeepsIdsRemovesFirstAndNeverReusesAnId) {
  Service a = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  Service b = Add(Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"}));
  auto p = planner_.Replace({Make("10.96.0.12:80/TCP", {"10.0.1.4:8080"}),
                             Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.5:8080"})});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->changes.size(), 3u);
  EXPECT_TRUE(p->changes[0].old && !p->changes[0].neu) << "b goes first";
  EXPECT_EQ(p->changes[0].old->id, b.id);
  EXPECT_EQ(p->changes[1].neu->id, a.id) << "a keeps its id";
  EXPECT_EQ(p->changes[1].neu->backends[0].id, a.backends[0].id) << "and its backend ids";
  EXPECT_FALSE(p->changes[2].old.has_value());
  EXPECT_EQ(p->changes[2].neu->id, 3) << "new: an id no current service has";
  Commit(*p);
  EXPECT_EQ(planner_.services().size(), 2u);
  EXPECT_EQ(planner_.Get(b.id), nullptr);
}

TEST_F(PlannerTest, ReplaceRefusesABadSetWhole) {
  Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  auto twice = planner_.Replace({Make("10.96.0.12:80/TCP", {}), Make("10.96.0.12:80/TCP", {})});
  ExpectError(twice.status(), absl::StatusCode::kInvalidArgument, "10.96.0.12:80/TCP is declared twice");
  auto bad = planner_.Replace({Make("10.96.0.12:80/TCP", {"[fd00::1]:80"})});
  ExpectError(bad.status(), absl::StatusCode::kInvalidArgument, "service 10.96.0.12:80/TCP");
  Service m = Make("10.96.0.20:80/TCP", {});
  m.algorithm = Algorithm::kMaglev;
  std::vector<Service> three(3, m);
  for (int i = 0; i < 3; ++i) three[i].frontend.port = static_cast<uint16_t>(80 + i);
  ExpectError(planner_.Replace(three).status(), absl::StatusCode::kResourceExhausted, "Maglev");
  EXPECT_EQ(planner_.services().size(), 1u) << "a refused plan changes nothing";
}

TEST_F(PlannerTest, RestoreKeepsSavedIdsAndPortsAndRefusesDuplicates) {
  Service a = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}, ServiceType::kNodePort);
  a.id = 5;
  a.node_port = 30007;
  a.backends[0].id = 40;
  Service b = Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"}, ServiceType::kNodePort);
  b.id = 6;
  auto p = planner_.Restore({a, b});
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_TRUE(p->reset);
  Commit(*p);
  EXPECT_EQ(planner_.Get(5)->node_port, 30007);
  EXPECT_EQ(planner_.Get(5)->backends[0].id, 40u);
  EXPECT_EQ(planner_.Get(6)->node_port, 30000);
  EXPECT_EQ(planner_.Get(6)->backends[0].id, 41u);
  b.id = 5;
  ExpectError(planner_.Restore({a, b}).status(), absl::StatusCode::kDataLoss, "bad or duplicate id");
}

// Ids past 16 bits (a node with more than 65,535 services) are whole
// everywhere: a service updates without "conflicting" with the service
// whose id is its id's low 16 bits.
TEST_F(PlannerTest, ServicesWithIdsPastSixteenBitsUpdateAndConflictByTheirWholeId) {
  Service low = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"});
  low.id = 34465;
  Service high = Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"});
  high.id = 100001;  // 100001 - 65536 = 34465
  auto p = planner_.Restore({low, high});
  ASSERT_TRUE(p.ok()) << p.status();
  Commit(*p);
  auto upd = planner_.Update(100001, ServiceUpdate{.backends = std::vector<Backend>{*ParseBackend("10.0.1.4:8080")}});
  ASSERT_TRUE(upd.ok()) << upd.status();
  Commit(*upd);
  EXPECT_EQ(planner_.Get(100001)->backends[0].Address(), "10.0.1.4:8080");
  ExpectError(planner_.Add(Make("10.96.0.11:80/TCP", {})).status(), absl::StatusCode::kAlreadyExists,
              "is already service 100001");
}

TEST_F(PlannerTest, LocalPolicyUsesPlacementAndFollowsIt) {
  std::set<IpAddr> here = {Ip("10.0.1.2")};
  ServicePlanner planner(limits_, kM,
                         NodeView{{Ip("192.168.1.1")}, [&](const IpAddr& ip) {
                                    return here.count(ip) ? BackendPlace::kLocal : BackendPlace::kRemote;
                                  }});
  Service s = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}, ServiceType::kNodePort);
  s.traffic_policy = TrafficPolicy::kLocal;
  auto p = planner.Add(s);
  ASSERT_TRUE(p.ok()) << p.status();
  const Service& neu = *p->changes[0].neu;
  // ClusterIP, node address in-cluster scope (every backend), external (local only).
  ASSERT_EQ(p->changes[0].new_entries.size(), 3u);
  EXPECT_EQ(p->changes[0].new_entries[2].slots, std::vector<uint32_t>{neu.backends[0].id});
  EXPECT_EQ(p->changes[0].new_entries[1].slots.size(), 2u);
  planner.Begin(*p);
  planner.Commit(p->changes[0], 0);
  // 10.0.1.3 moves onto the node: only services with an affected backend are planned.
  here.insert(Ip("10.0.1.3"));
  EXPECT_TRUE(planner.Placement([](const IpAddr&) { return false; }).changes.empty());
  Plan moved = planner.Placement([](const IpAddr& ip) { return ip == Ip("10.0.1.3"); });
  ASSERT_EQ(moved.changes.size(), 1u);
  EXPECT_EQ(moved.changes[0].new_entries[2].slots.size(), 2u);
}

// Backends that name their node (a cluster's nodeName): another node's is
// remote whatever the route says (an overlay's device is not a native one);
// this node's is local even when the route says remote, and keeps host
// when the address is the node's own. Unnamed ones follow the route.
TEST_F(PlannerTest, ABackendsNodeNameDecidesWhetherItIsLocal) {
  NodeView view{{Ip("192.168.1.1")}, [](const IpAddr& ip) {
                  return ip == Ip("192.168.1.1") ? BackendPlace::kHost
                         : ip == Ip("10.0.1.9")  ? BackendPlace::kRemote
                                                 : BackendPlace::kLocal;
                }};
  view.name = "node1";
  ServicePlanner planner(limits_, kM, view);
  Service s = Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080", "10.0.1.9:8080", "192.168.1.1:8080",
                                         "10.0.1.4:8080"},
                   ServiceType::kNodePort);
  s.traffic_policy = TrafficPolicy::kLocal;
  const std::vector<std::pair<int, std::string>> named = {{0, "node1"}, {1, "node2"}, {2, "node1"}, {3, "node1"}};
  for (const auto& [i, node] : named) s.backends[i].node = node;
  auto p = planner.Add(s);
  ASSERT_TRUE(p.ok()) << p.status();
  std::map<std::string, BackendPlace> got;
  for (const Backend& b : p->changes[0].neu->backends) got[b.Address()] = b.place;
  EXPECT_EQ(got, (std::map<std::string, BackendPlace>{{"10.0.1.2:8080", BackendPlace::kLocal},
                                                      {"10.0.1.3:8080", BackendPlace::kRemote},
                                                      {"10.0.1.9:8080", BackendPlace::kLocal},
                                                      {"192.168.1.1:8080", BackendPlace::kHost},
                                                      {"10.0.1.4:8080", BackendPlace::kLocal}}));
  planner.Begin(*p);
  planner.Commit(p->changes[0], 0);
  // The pod moves to node2 (same address): an update places it again.
  ServiceUpdate u;
  u.backends = planner.Get(p->changes[0].neu->id)->backends;
  (*u.backends)[0].node = "node2";
  auto moved = planner.Update(p->changes[0].neu->id, u);
  ASSERT_TRUE(moved.ok()) << moved.status();
  EXPECT_EQ(moved->changes[0].neu->backends[0].place, BackendPlace::kRemote);
}

TEST_F(PlannerTest, NodeAddressesMoveNodePortFrontendsAndRefuseATakenOne) {
  Service np = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}, ServiceType::kNodePort));
  Service ext = Make("10.96.0.11:80/TCP", {}, ServiceType::kExternalIP);
  ext.frontend.port = np.node_port;
  ext.external_ips = {Ip("192.168.1.7")};
  Add(ext);
  auto p = planner_.NodeAddresses({Ip("192.168.1.2")});
  ASSERT_TRUE(p.ok()) << p.status();
  ASSERT_EQ(p->changes.size(), 1u) << "only NodePort services follow";
  EXPECT_EQ(p->changes[0].old_entries[1].frontend.ToString(), "192.168.1.1:30000/TCP");
  EXPECT_EQ(p->changes[0].new_entries[1].frontend.ToString(), "192.168.1.2:30000/TCP");
  EXPECT_TRUE(p->changes[0].removed.empty());
  Commit(*p);
  EXPECT_EQ(planner_.node_addresses(), std::vector<IpAddr>{Ip("192.168.1.2")});
  ExpectError(planner_.NodeAddresses({Ip("192.168.1.7")}).status(), absl::StatusCode::kAlreadyExists,
              "node addresses not taken for node ports");
  EXPECT_TRUE(planner_.NodeAddresses({Ip("192.168.1.2")})->changes.empty()) << "unchanged: nothing to do";
}

TEST_F(PlannerTest, UndoSwapsTheSidesAndRetiresNothing) {
  Service s = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  ServiceUpdate u;
  u.backends = {*ParseBackend("10.0.1.2:8080")};
  auto p = planner_.Update(s.id, u);
  ASSERT_TRUE(p.ok());
  ServiceChange undo = planner_.Undo(p->changes[0]);
  EXPECT_EQ(undo.neu->backends.size(), 2u);
  EXPECT_EQ(undo.old->backends.size(), 1u);
  EXPECT_EQ(undo.new_entries[0].slots.size(), 2u);
  EXPECT_TRUE(undo.removed.empty());
}

TEST_F(PlannerTest, TheHighestBackendIdRemovedIsNotGivenAgainInTheSameChange) {
  Service s = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  ServiceUpdate u;  // drops 10.0.1.3 (id 2, the highest), adds 10.0.1.4
  u.backends = {*ParseBackend("10.0.1.2:8080"), *ParseBackend("10.0.1.4:8080")};
  auto p = planner_.Update(s.id, u);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->changes[0].removed.at(0).id, 2u);
  EXPECT_EQ(p->changes[0].neu->backends[1].id, 3u) << "its flows' conntrack entries still name id 2";
}

TEST_F(PlannerTest, ReplacePlansOnlyTheServicesThatChanged) {
  Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  Add(Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"}));
  auto same = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}), Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"})});
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_TRUE(same->changes.empty()) << "declared as it is: nothing to write";
  auto one = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}), Make("10.96.0.11:80/TCP", {"10.0.1.9:8080"})});
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->changes.size(), 1u);
  EXPECT_EQ(one->changes[0].neu->frontend.ToString(), "10.96.0.11:80/TCP");
}

// The fast case of Replace (RemovalsOnly): a set declared as it is, or a
// part of it, plans only removals; anything else takes the full path.
TEST_F(PlannerTest, ReplaceOfTheDeclaredSetOrAPartOfItPlansOnlyRemovals) {
  Service np = Make("10.96.0.12:80/TCP", {"10.0.1.4:8080"}, ServiceType::kNodePort);
  const Service a = Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  const Service n = Add(np);
  ASSERT_NE(n.node_port, 0) << "allocated";
  Add(Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"}));
  // The node port left to the planner matches the one it chose; the third
  // service goes.
  auto part = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}), np});
  ASSERT_TRUE(part.ok()) << part.status();
  ASSERT_EQ(part->changes.size(), 1u);
  EXPECT_FALSE(part->changes[0].neu);
  EXPECT_EQ(part->changes[0].old->frontend.ToString(), "10.96.0.11:80/TCP");
  // Backends in another order, another weight, a frontend twice, or a
  // frontend owned as another service's node port: the full path.
  auto reordered = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.3:8080", "10.0.1.2:8080"})});
  ASSERT_TRUE(reordered.ok()) << reordered.status();
  ASSERT_EQ(reordered->changes.size(), 3u) << "two removals and the reordered service";
  EXPECT_EQ(reordered->changes.back().neu->backends[0].id, a.backends[1].id) << "ids follow address and port";
  auto weighted = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080@5", "10.0.1.3:8080"})});
  ASSERT_TRUE(weighted.ok());
  EXPECT_EQ(weighted->changes.back().neu->backends[0].weight, 5u);
  auto twice = planner_.Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}),
                                 Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"})});
  ExpectError(twice.status(), absl::StatusCode::kInvalidArgument, "declared twice");
  auto as_node_port = planner_.Replace({Make(absl::StrCat("10.0.0.1:", n.node_port, "/TCP"), {})});
  EXPECT_FALSE(as_node_port.ok() && as_node_port->changes.size() == 3 && !as_node_port->changes[2].neu)
      << "a frontend that is another service's node port is never taken as that service";
}

TEST_F(PlannerTest, ASingleChangeIsCheckedAgainstTheServiceMapsCapacity) {
  ServiceLimits limits{256, 4096};
  limits.service_map_entries = 65536;  // lb-service-map-max
  ServicePlanner big(limits, kM, NodeView{});
  auto wide = [](int i) {
    Service s = Make(absl::StrCat("10.97.0.", i, ":80/TCP"), {});
    for (int b = 0; b < 256; ++b) {
      s.backends.push_back(*ParseBackend(absl::StrCat("10.", 100 + i, ".", b, ".1:80@", b ? 16 : 1)));
    }
    return s;
  };
  size_t entries = 0;
  int i = 0;
  for (; entries + 4082 <= limits.service_map_entries; ++i) {
    auto p = big.Add(wide(i));
    ASSERT_TRUE(p.ok()) << i << ": " << p.status();
    entries += 1 + p->changes[0].new_entries[0].slots.size();
    big.Begin(*p);
    big.Commit(p->changes[0], 0);
  }
  EXPECT_EQ(i, 16) << "16 services of 4081 slots fill the map";
  auto refused = big.Add(wide(i));
  ExpectError(refused.status(), absl::StatusCode::kResourceExhausted, "lb-service-map-max is 65536");
}

TEST_F(PlannerTest, IndexesAgreeWithTheDeclaredSetAfterChurn) {
  std::mt19937 rng(7);
  std::vector<ServiceId> ids;
  for (int step = 0; step < 600; ++step) {
    int op = static_cast<int>(rng() % 4);  // 0, 3: add; 1: update; 2: delete
    if (op == 3) op = 0;
    if (op == 0 || ids.empty()) {
      Service s = Make(absl::StrCat("10.96.", rng() % 4, ".", rng() % 250, ":80/TCP"),
                       {absl::StrCat("10.0.1.", rng() % 250, ":8080")},
                       rng() % 2 ? ServiceType::kNodePort : ServiceType::kClusterIP);
      auto p = planner_.Add(s);
      if (!p.ok()) {  // a clash or a full port range: refused whole
        EXPECT_TRUE(absl::IsAlreadyExists(p.status()) || absl::IsResourceExhausted(p.status())) << p.status();
        continue;
      }
      Commit(*p);
      ids.push_back(p->changes[0].neu->id);
    } else if (op == 1) {
      uint16_t id = ids[rng() % ids.size()];
      ServiceUpdate u;
      u.backends = {*ParseBackend(absl::StrCat("10.0.2.", rng() % 250, ":8080"))};
      auto p = planner_.Update(id, u);
      ASSERT_TRUE(p.ok()) << p.status();
      Commit(*p, step);
    } else {
      size_t k = rng() % ids.size();
      auto p = planner_.Delete(ids[k]);
      ASSERT_TRUE(p.ok());
      Commit(*p, step);
      ids.erase(ids.begin() + static_cast<long>(k));
    }
    for (uint32_t id : planner_.RetiredDue(step, false)) planner_.ForgetRetired(id);
  }
  EXPECT_GT(planner_.services().size(), 20u);
  for (const auto& [id, s] : planner_.services())
    for (const FrontendEntry& e : planner_.Entries(s)) EXPECT_EQ(*planner_.IdOf(e.frontend), id);
  std::vector<Service> all;
  for (const auto& [id, s] : planner_.services()) all.push_back(s);
  auto again = planner_.Restore(all);
  EXPECT_TRUE(again.ok()) << "the set the indexes let in is consistent as a whole: " << again.status();
}

// One service's change is planned through the indexes: its cost does not
// grow with the number of services (before them, every check scanned every
// service and computed its entries: thousands of times slower at 20,000).
TEST_F(PlannerTest, OneChangeCostsTheSameAtOneServiceAndAtTwentyThousand) {
  auto median_update_us = [](ServicePlanner& planner, uint16_t id) {
    std::vector<double> us;
    for (int i = 0; i < 201; ++i) {
      ServiceUpdate u;
      u.backends = {*ParseBackend(absl::StrCat("10.0.9.", i % 200 + 1, ":8080"))};
      auto t0 = std::chrono::steady_clock::now();
      auto p = planner.Update(id, u);
      us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
      EXPECT_TRUE(p.ok()) << p.status();
    }
    std::sort(us.begin(), us.end());
    return us[us.size() / 2];
  };
  auto fill = [](ServicePlanner& planner, int n) {
    for (int i = 0; i < n; ++i) {
      auto p = planner.Add(Make(absl::StrCat("10.", 96 + i / 60000, ".", i / 250 % 240, ".", i % 250 + 1, ":80/TCP"),
                                {absl::StrCat("10.1.", i / 250 % 240, ".", i % 250 + 1, ":8080")}));
      EXPECT_TRUE(p.ok()) << p.status();
      if (!p.ok()) return;
      planner.Begin(*p);
      planner.Commit(p->changes[0], 0);
    }
  };
  ServicePlanner one(ServiceLimits{}, kM), many(ServiceLimits{}, kM);
  fill(one, 1);
  fill(many, 20000);
  const double at_one = median_update_us(one, 1), at_many = median_update_us(many, 20000);
  RecordProperty("us_at_1", std::to_string(at_one));
  RecordProperty("us_at_20000", std::to_string(at_many));
  EXPECT_LT(at_many, 10 * at_one + 20) << "one change: " << at_one << " us at 1 service, " << at_many
                                       << " us at 20,000";
}

TEST(IdPoolTest, LowestFreeNextAndHoles) {
  IdPool pool(10);
  EXPECT_EQ(pool.Lowest(), 1u);
  pool.Take(1);
  pool.Take(2);
  pool.Take(5);
  EXPECT_EQ(pool.Lowest(), 3u);
  EXPECT_EQ(pool.Next(), 6u);
  EXPECT_EQ(pool.size(), 3u);
  pool.Release(5);
  EXPECT_EQ(pool.Next(), 3u) << "the holes below go with it";
  pool.Release(1);
  EXPECT_EQ(pool.Lowest(), 1u);
  EXPECT_FALSE(pool.InUse(1));
  EXPECT_TRUE(pool.InUse(2));
  for (uint32_t i = 1; i <= 10; ++i) pool.Take(i);
  EXPECT_EQ(pool.Lowest(), 0u) << "full";
  pool.Take(11);
  EXPECT_FALSE(pool.InUse(11)) << "out of range";
}

}  // namespace
}  // namespace tendril
