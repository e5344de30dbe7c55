// The service manager against the real pinned maps of bpf_sock.o: what it
// writes, that it writes only what changed, that restart removes stale
// entries, and that a concurrent reader never sees an inconsistent service.
#include <arpa/inet.h>
#include <bpf/bpf.h>
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/agent.h"
#include "datapath/loader.h"
#include "lb/maglev.h"
#include "lb/services.h"
#include "test/support/faults.h"
#include "test/support/kernel.h"
#include "test/support/lb_fixture.h"

namespace tendril::test {
namespace {

constexpr uint32_t kMaglevM = 16381;  // the prebuilt object's table size

class ServicesMapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    pins_ = std::make_unique<TempPinRoot>();
    auto obj = BpfObject::Load(TestLoadOptions("bpf_host", pins_->path()));
    ASSERT_TRUE(obj.ok()) << obj.status();
    obj_ = std::make_unique<BpfObject>(std::move(*obj));
    manager_ = NewManager();
  }

  std::unique_ptr<ServiceManager> NewManager() {
    LbMaps maps = *OpenLbMaps(pins_->path());
    return std::make_unique<ServiceManager>(std::move(maps), ServiceLimits{64, 4096}, kMaglevM);
  }

  // The port filter's bit for `port` (tnd_svc_ports), as the datapath reads it.
  bool PortUsed(uint16_t port) {
    auto m = Map<uint32_t, tnd_svc_ports>::OpenPin(pins_->path() + "/" TND_MAP_SVC_PORTS, "ports");
    EXPECT_TRUE(m.ok()) << m.status();
    auto v = m.ok() ? m->Lookup(0) : absl::StatusOr<std::optional<tnd_svc_ports>>(std::nullopt);
    if (!v.ok() || !v->has_value()) return false;
    return !(*v)->valid || (((*v)->bits[port >> 6] >> (port & 63)) & 1);  // not written yet: every port
  }
  Map<tnd_svc4_key, tnd_svc_val> Svc4() {
    return *Map<tnd_svc4_key, tnd_svc_val>::OpenPin(pins_->path() + "/" TND_MAP_SVC_V4, "svc4");
  }
  Map<uint32_t, tnd_backend> Backends() {
    return *Map<uint32_t, tnd_backend>::OpenPin(pins_->path() + "/" TND_MAP_BACKENDS, "be");
  }

  static Service Make(const std::string& fe, std::vector<std::string> backends) {
    Service s;
    s.frontend = *ParseFrontend(fe);
    for (const auto& b : backends) s.backends.push_back(*ParseBackend(b));
    return s;
  }

  static tnd_svc4_key Key(const Service& s, uint16_t slot) {
    tnd_svc4_key k{};
    std::memcpy(&k.addr, s.frontend.ip.bytes.data(), 4);
    k.port = htons(s.frontend.port);
    k.proto = static_cast<uint8_t>(s.frontend.proto);
    k.slot = slot;
    return k;
  }

  uint32_t CountEntries4() {
    uint32_t n = 0;
    EXPECT_TRUE(Svc4().ForEach([&](const tnd_svc4_key&, const tnd_svc_val&) { n++; }).ok());
    return n;
  }

  std::unique_ptr<TempPinRoot> pins_;
  std::unique_ptr<BpfObject> obj_;
  std::unique_ptr<ServiceManager> manager_;
};

TEST_F(ServicesMapTest, AddWritesMasterSlotsBackendsAndRevNat) {
  auto s = manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080@2"}));
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->id, 1);
  auto svc4 = Svc4();
  auto master = *svc4.Lookup(Key(*s, 0));
  ASSERT_TRUE(master);
  EXPECT_EQ(master->count, 3) << "weights 1 and 2 -> 3 slots";
  EXPECT_EQ(master->svc_id, 1);
  std::map<uint32_t, int> per_backend;
  for (uint16_t slot = 1; slot <= 3; ++slot) {
    auto v = *svc4.Lookup(Key(*s, slot));
    ASSERT_TRUE(v) << "slot " << slot;
    per_backend[v->backend_id]++;
  }
  EXPECT_EQ(per_backend[s->backends[0].id], 1);
  EXPECT_EQ(per_backend[s->backends[1].id], 2);
  auto be = *Backends().Lookup(s->backends[1].id);
  ASSERT_TRUE(be);
  EXPECT_EQ(ntohs(be->port), 8080);
  EXPECT_EQ(be->svc_id, 1);
  EXPECT_EQ(be->family, 4);
  EXPECT_EQ(be->state, TND_BACKEND_ACTIVE);
  EXPECT_EQ(CountEntries4(), 4u);
}

TEST_F(ServicesMapTest, UpdatesWriteOnlyWhatChanged) {
  auto s = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080", "10.0.1.4:8080"}));
  // Same backends again: nothing to write.
  ServiceUpdate same;
  same.backends = {*ParseBackend("10.0.1.2:8080"), *ParseBackend("10.0.1.3:8080"), *ParseBackend("10.0.1.4:8080")};
  ASSERT_TRUE(manager_->Update(s.id, same).ok());
  EXPECT_EQ(manager_->last_stats().writes, 0);
  EXPECT_EQ(manager_->last_stats().deletes, 0);
  // Terminating the middle one: its backend entry, the moved slot, the master
  // and the dropped last slot.
  ServiceUpdate term;
  term.states = {*ParseBackendStateChange("10.0.1.3:8080=terminating")};
  auto t = manager_->Update(s.id, term);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_LE(manager_->last_stats().writes, 3);
  EXPECT_EQ(manager_->last_stats().deletes, 1);
  EXPECT_EQ((*Svc4().Lookup(Key(s, 0)))->count, 2);
  auto be = *Backends().Lookup(t->backends[1].id);
  ASSERT_TRUE(be) << "a terminating backend stays for the sockets that use it";
  EXPECT_EQ(be->state, TND_BACKEND_TERMINATING);
  for (uint16_t slot = 1; slot <= 2; ++slot)
    EXPECT_NE((*Svc4().Lookup(Key(s, slot)))->backend_id, t->backends[1].id);
  // Removing it: its entry stays for the grace period (a reader may have
  // read its id from a slot a moment ago), then goes; ids of the others stay.
  ServiceUpdate drop;
  drop.backends = {*ParseBackend("10.0.1.2:8080"), *ParseBackend("10.0.1.4:8080")};
  auto d = manager_->Update(s.id, drop);
  ASSERT_TRUE(d.ok());
  EXPECT_TRUE(*Backends().Lookup(t->backends[1].id));
  EXPECT_EQ(manager_->FlushRetiredBackends(), 0) << "not yet due";
  ASSERT_TRUE(manager_->NextRetiredDeadlineMs().has_value());
  EXPECT_EQ(manager_->FlushRetiredBackends(/*all=*/true), 1);
  EXPECT_FALSE(*Backends().Lookup(t->backends[1].id));
  EXPECT_FALSE(manager_->NextRetiredDeadlineMs().has_value());
  EXPECT_EQ(d->backends[0].id, s.backends[0].id);
  EXPECT_EQ(d->backends[1].id, s.backends[2].id);
}

TEST_F(ServicesMapTest, MaglevTableIsPublishedAndUpdatedInPlace) {
  Service in = Make("10.96.0.11:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080", "10.0.1.4:8080"});
  in.algorithm = Algorithm::kMaglev;
  auto s = *manager_->Add(in);
  auto outer_fd = *OpenPinned(pins_->path() + "/" TND_MAP_MAGLEV);
  uint32_t key = s.id, inner_id = 0;
  ASSERT_EQ(bpf_map_lookup_elem(outer_fd.get(), &key, &inner_id), 0);
  UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
  std::vector<MaglevBackend> mb;
  for (const auto& b : s.backends) mb.push_back({b.id, b.Address() + "/TCP", 1});
  auto want = MaglevTable(mb, kMaglevM);
  for (uint32_t pos = 0; pos < kMaglevM; pos += 97) {
    uint32_t id = 0;
    ASSERT_EQ(bpf_map_lookup_elem(inner.get(), &pos, &id), 0);
    EXPECT_EQ(id, want[pos]) << "position " << pos;
  }
  // Draining one backend rewrites about its third of the table, not all of it.
  ServiceUpdate u;
  u.states = {*ParseBackendStateChange("10.0.1.3:8080=maintenance")};
  ASSERT_TRUE(manager_->Update(s.id, u).ok());
  EXPECT_GT(manager_->last_stats().writes, static_cast<int>(kMaglevM / 4));
  EXPECT_LT(manager_->last_stats().writes, static_cast<int>(kMaglevM / 2));
  uint32_t same_inner = 0;
  ASSERT_EQ(bpf_map_lookup_elem(outer_fd.get(), &key, &same_inner), 0);
  EXPECT_EQ(same_inner, inner_id) << "table updated in place";
  // Back to random: the table is unpublished.
  u = {};
  u.algorithm = Algorithm::kRandom;
  ASSERT_TRUE(manager_->Update(s.id, u).ok());
  EXPECT_NE(bpf_map_lookup_elem(outer_fd.get(), &key, &same_inner), 0);
}

// The port filter holds a port while any frontend of any service uses it:
// set before the first is written, cleared after the last is removed.
TEST_F(ServicesMapTest, ThePortFilterFollowsTheFrontendsPorts) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  auto b = *manager_->Add(Make("10.96.0.11:80/TCP", {"10.0.1.3:8080"}));
  EXPECT_TRUE(PortUsed(80));
  EXPECT_FALSE(PortUsed(8080)) << "a backend's port is not a frontend's";
  ASSERT_TRUE(manager_->Delete(a.id).ok());
  EXPECT_TRUE(PortUsed(80)) << "b still uses it";
  ASSERT_TRUE(manager_->Delete(b.id).ok());
  EXPECT_FALSE(PortUsed(80));
  EXPECT_TRUE(manager_->Add(Make("[fd00::10]:443/TCP", {"[fd00::2]:8443"})).ok());
  EXPECT_TRUE(PortUsed(443)) << "one filter for both families";
}

TEST_F(ServicesMapTest, RestoreRemovesStaleEntriesAndKeepsDeclaredOnes) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  auto b = *manager_->Add(Make("[fd00::10]:53/UDP", {"[fd00::2]:53", "[fd00::3]:53"}));
  // What a crash half way through a change of a can leave: a slot past its
  // count and a backend no service names.
  ASSERT_TRUE(Svc4().Update(Key(a, 7), tnd_svc_val{}).ok());
  ASSERT_TRUE(Backends().Update(9999, tnd_backend{}).ok());
  // The agent restarts knowing only service a (b was deleted while it was down).
  auto fresh = NewManager();
  auto st = fresh->Restore({a});
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_EQ(st->writes, 1) << "a's entries were already right; the port filter lost b's port 53";
  EXPECT_TRUE(PortUsed(80));
  EXPECT_FALSE(PortUsed(53));
  EXPECT_EQ(st->deletes, 3 /* b: master + 2 slots */ + 2 /* backends */ + 1 /* revnat */ + 2 /* strays */);
  EXPECT_TRUE(*Svc4().Lookup(Key(a, 0)));
  EXPECT_TRUE(*Svc4().Lookup(Key(a, 1)));
  EXPECT_FALSE(*Svc4().Lookup(Key(a, 7)));
  EXPECT_FALSE(*Backends().Lookup(9999));
  EXPECT_TRUE(*Backends().Lookup(a.backends[0].id));
  uint32_t n6 = 0;
  auto svc6 = *Map<tnd_svc6_key, tnd_svc_val>::OpenPin(pins_->path() + "/" TND_MAP_SVC_V6, "svc6");
  ASSERT_TRUE(svc6.ForEach([&](const tnd_svc6_key&, const tnd_svc_val&) { n6++; }).ok());
  EXPECT_EQ(n6, 0u);
  (void)b;
}

// What the LB maps hold: service and backend entries, as bytes.
std::map<std::string, std::string> LbBytes(const std::string& pins) {
  std::map<std::string, std::string> out;
  auto lb = OpenLbMaps(pins);
  EXPECT_TRUE(lb.ok()) << lb.status();
  auto hex = [](const void* p, size_t n) { return std::string(static_cast<const char*>(p), n); };
  auto put = [&](const auto& m, const char* tag) {
    EXPECT_TRUE(m.ForEach([&](const auto& k, const auto& v) {
                   out[tag + hex(&k, sizeof(k))] = hex(&v, sizeof(v));
                 }).ok());
  };
  put(lb->svc4, "svc4:");
  put(lb->backends, "backend:");
  put(lb->revnat, "revnat:");
  return out;
}

// A change whose commit fails (the agent could not store it) is undone in
// the maps and in the declared set: the backends it removed are in use
// again (never flushed, their flows never cleared), those it added retire.
TEST_F(ServicesMapTest, AChangeWhoseCommitFailsIsUndoneWhole) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  auto b = *manager_->Add(Make("10.96.0.11:80/TCP", {"10.0.1.4:8080"}));
  const auto before = LbBytes(pins_->path());
  int removed_calls = 0, commits = 0;
  manager_->OnBackendsRemoved([&](ServiceId, L4Proto, const std::vector<Backend>&) { removed_calls++; });
  manager_->OnCommit([&](const std::vector<ServiceId>& touched) {
    commits++;
    EXPECT_EQ(touched.size(), 3u);
    return absl::UnavailableError("disk I/O error");
  });
  auto r = manager_->Replace({Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.9:8080"}),
                              Make("10.96.0.12:80/TCP", {"10.0.1.5:8080"})});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "disk I/O error");
  EXPECT_EQ(commits, 1);
  EXPECT_FALSE(manager_->needs_restore());
  ASSERT_EQ(manager_->size(), 2u);
  EXPECT_EQ(manager_->Get(a.id)->backends, a.backends);
  EXPECT_EQ(manager_->Get(b.id)->backends, b.backends);
  EXPECT_EQ(manager_->FlushRetiredBackends(/*all=*/true), 2) << "10.0.1.9 and 10.0.1.5 retire";
  EXPECT_EQ(LbBytes(pins_->path()), before);
  EXPECT_EQ(removed_calls, 2) << "only for the backends the undo removed";

  // A change that declares a service as it is stores nothing.
  commits = 0;
  manager_->OnCommit([&](const std::vector<ServiceId>&) {
    commits++;
    return absl::OkStatus();
  });
  ServiceUpdate same;
  same.backends = manager_->Get(a.id)->backends;
  ASSERT_TRUE(manager_->Update(a.id, same).ok());
  EXPECT_EQ(commits, 0);
  same.affinity_timeout = 30;  // a real change is stored
  ASSERT_TRUE(manager_->Update(a.id, same).ok());
  EXPECT_EQ(commits, 1);
  same.affinity_timeout = a.affinity_timeout;  // and back
  ASSERT_TRUE(manager_->Update(a.id, same).ok());

  // An undo that cannot be written: the maps are written again whole.
  FaultyMapOps ops;
  LbMaps maps = *OpenLbMaps(pins_->path(), &ops);
  ServiceManager faulty(std::move(maps), ServiceLimits{64, 4096}, kMaglevM);
  ASSERT_TRUE(faulty.Restore({*manager_->Get(a.id), *manager_->Get(b.id)}).ok());
  faulty.OnCommit([&](const std::vector<ServiceId>&) {
    ops.FailNth(1);  // the undo's first write
    return absl::UnavailableError("disk I/O error");
  });
  auto u = faulty.Delete(a.id);
  ops.Disarm();
  ASSERT_FALSE(u.ok());
  EXPECT_NE(u.status().message().find("rolling the maps back failed too"), std::string::npos) << u.status();
  EXPECT_TRUE(faulty.needs_restore());
  ASSERT_TRUE(faulty.Restore({*manager_->Get(a.id), *manager_->Get(b.id)}).ok());
  EXPECT_FALSE(faulty.needs_restore());
  EXPECT_EQ(LbBytes(pins_->path()), before);
}

TEST_F(ServicesMapTest, ConflictsAndUnknownIdsChangeNothing) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  uint32_t before = CountEntries4();
  auto dup = manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.3:8080"}));
  ASSERT_FALSE(dup.ok());
  EXPECT_TRUE(absl::IsAlreadyExists(dup.status())) << dup.status();
  Service taken = Make("10.96.0.11:80/TCP", {});
  taken.id = a.id;
  EXPECT_TRUE(absl::IsAlreadyExists(manager_->Add(taken).status()));
  ServiceUpdate u;
  u.states = {*ParseBackendStateChange("10.9.9.9:1=terminating")};
  EXPECT_TRUE(absl::IsNotFound(manager_->Update(a.id, u).status()));
  EXPECT_TRUE(absl::IsNotFound(manager_->Delete(99).status()));
  EXPECT_EQ(CountEntries4(), before);
  ASSERT_TRUE(manager_->Delete(a.id).ok());
  EXPECT_EQ(CountEntries4(), 0u);
  manager_->FlushRetiredBackends(/*all=*/true);
  uint32_t nb = 0;
  ASSERT_TRUE(Backends().ForEach([&](const uint32_t&, const tnd_backend&) { nb++; }).ok());
  EXPECT_EQ(nb, 0u);
}

TEST_F(ServicesMapTest, ReplaceKeepsIdsOfDeclaredFrontendsAndRemovesTheRest) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080", "10.0.1.3:8080"}));
  auto b = *manager_->Add(Make("10.96.0.11:80/TCP", {"10.0.1.4:8080"}));
  // The new set: a keeps one backend, b goes, c and d are new.
  auto rs = manager_->Replace({Make("10.96.0.12:80/TCP", {"10.0.1.5:8080"}),
                               Make("10.96.0.10:80/TCP", {"10.0.1.3:8080"}),
                               Make("10.96.0.13:53/UDP", {"10.0.1.6:53", "10.0.1.7:53"})});
  ASSERT_TRUE(rs.ok()) << rs.status();
  EXPECT_EQ(rs->added, 2);
  EXPECT_EQ(rs->changed, 1);
  EXPECT_EQ(rs->removed, 1);
  auto id_a = manager_->IdOf(a.frontend);
  ASSERT_TRUE(id_a.ok());
  EXPECT_EQ(*id_a, a.id) << "a declared frontend keeps its id (its flows' conntrack entries name it)";
  const Service* now_a = manager_->Get(a.id);
  ASSERT_NE(now_a, nullptr);
  ASSERT_EQ(now_a->backends.size(), 1u);
  EXPECT_EQ(now_a->backends[0].id, a.backends[1].id) << "a backend that stays keeps its id";
  EXPECT_FALSE(manager_->IdOf(b.frontend).ok());
  for (const Service& s : manager_->List()) EXPECT_NE(s.id, b.id) << "new services do not reuse a removed id";
  // Maps: a (master + 1 slot), c (1 + 1), d (1 + 2); b gone.
  EXPECT_EQ(CountEntries4(), 7u);
  EXPECT_FALSE(*Svc4().Lookup(Key(b, 0)));
  auto master = *Svc4().Lookup(Key(a, 0));
  ASSERT_TRUE(master);
  EXPECT_EQ(master->count, 1);
  // The same set again writes nothing.
  auto again = manager_->Replace(manager_->List());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->writes + again->deletes, 0);
  EXPECT_EQ(again->added + again->changed + again->removed, 0);
}

TEST_F(ServicesMapTest, ReplaceChecksEverythingBeforeWriting) {
  auto a = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  uint32_t before = CountEntries4();
  struct Case {
    std::vector<Service> set;
    std::string message;
  };
  Service np1 = Make("10.96.0.21:80/TCP", {"10.0.1.9:80"}), np2 = Make("10.96.0.22:80/TCP", {"10.0.1.9:80"});
  np1.type = np2.type = ServiceType::kNodePort;
  np1.node_port = np2.node_port = 30080;
  Service big = Make("10.96.0.23:80/TCP", {});
  for (int i = 0; i < 65; ++i) big.backends.push_back(*ParseBackend("10.0.2." + std::to_string(i + 1) + ":80"));
  std::vector<Case> cases = {
      {{Make("10.96.0.20:80/TCP", {}), Make("10.96.0.20:80/TCP", {})}, "10.96.0.20:80/TCP is declared twice"},
      {{Make("10.96.0.20:80/TCP", {}), np1, np2}, "node port 30080/TCP is already used by service"},
      {{Make("10.96.0.20:80/TCP", {}), big}, "10.96.0.23:80/TCP"},
  };
  for (const Case& c : cases) {
    auto r = manager_->Replace(c.set);
    ASSERT_FALSE(r.ok());
    EXPECT_NE(std::string(r.status().message()).find(c.message), std::string::npos) << r.status();
    EXPECT_EQ(manager_->last_stats().writes + manager_->last_stats().deletes, 0) << c.message;
    EXPECT_EQ(CountEntries4(), before) << c.message;
    ASSERT_NE(manager_->Get(a.id), nullptr) << "nothing removed: " << c.message;
  }
  // More services than lb-revnat-map-max allows ids for.
  ServiceLimits few_ids{64, 4096};
  few_ids.service_ids = 1024;
  manager_ = std::make_unique<ServiceManager>(*OpenLbMaps(pins_->path()), few_ids, kMaglevM);
  ASSERT_TRUE(manager_->Restore({a}).ok());
  std::vector<Service> many(1025, Make("10.96.0.30:80/TCP", {}));
  for (size_t i = 0; i < many.size(); ++i) {
    uint32_t v = (10u << 24) | (100u << 16) | static_cast<uint32_t>(i);
    many[i].frontend = *ParseFrontend(absl::StrCat(v >> 24, ".", (v >> 16) & 255, ".", (v >> 8) & 255, ".", v & 255, ":80"));
  }
  auto r = manager_->Replace(many);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("lb-revnat-map-max allows 1024"), std::string::npos) << r.status();
  EXPECT_EQ(CountEntries4(), before);
}

TEST_F(ServicesMapTest, ConcurrentReaderNeverSeesAnInconsistentService) {
  auto s = *manager_->Add(Make("10.96.0.10:80/TCP", {"10.0.1.2:8080"}));
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, bad{0};
  // Reads exactly as bpf_sock.c does: master, then a slot below its count,
  // then that slot's backend; if the service shrank in between, slot 1.
  std::thread reader([&] {
    auto svc4 = Svc4();
    auto backends = Backends();
    std::mt19937 rng(1);
    auto backend_of = [&](uint16_t slot) -> bool {
      auto v = *svc4.Lookup(Key(s, slot));
      return v && (*backends.Lookup(v->backend_id)).has_value();
    };
    while (!stop) {
      auto m = *svc4.Lookup(Key(s, 0));
      if (!m || m->count == 0) {
        bad++;
        continue;
      }
      if (!backend_of(static_cast<uint16_t>(rng() % m->count + 1)) && !backend_of(1)) bad++;
      reads++;
    }
  });
  // The reader must be running through the updates (on a busy machine it
  // may start late): wait for its first reads, then update at least 300
  // times and until it has read 1,000 times (bounded: 20,000 updates).
  for (int i = 0; i < 2000 && reads.load() == 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::mt19937 rng(2);
  for (int i = 0; i < 20000 && (i < 300 || reads.load() < 1000); ++i) {
    ServiceUpdate u;
    std::vector<Backend> bs;
    int n = 1 + static_cast<int>(rng() % 8);
    for (int j = 0; j < n; ++j) bs.push_back(*ParseBackend("10.0.2." + std::to_string(rng() % 20 + 1) + ":80"));
    std::sort(bs.begin(), bs.end(), [](const Backend& a, const Backend& b) { return a.ip < b.ip; });
    bs.erase(std::unique(bs.begin(), bs.end(), [](const Backend& a, const Backend& b) { return a.ip == b.ip; }), bs.end());
    u.backends = bs;
    ASSERT_TRUE(manager_->Update(s.id, u).ok());
  }
  stop = true;
  reader.join();
  EXPECT_GE(reads.load(), 1000);
  EXPECT_EQ(bad.load(), 0) << "of " << reads.load() << " reads";
}

}  // namespace
}  // namespace tendril::test
