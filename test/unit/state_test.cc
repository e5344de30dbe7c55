// The state store (SQLite) and the migration of an earlier version's
// state.json, without root.
#include "agent/state.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "agent/state_json.h"
#include "common/file_util.h"
#include "test/support/faults.h"

namespace tendril {
namespace {

class StateTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/tendril-state-test-XXXXXX";
    dir_ = mkdtemp(tmpl);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  static Service Svc(ServiceId id, const std::string& fe) {
    Service s;
    s.id = id;
    s.frontend = *ParseFrontend(fe);
    s.backends.push_back(*ParseBackend("10.0.1.2:8080"));
    s.backends.back().id = id * 10u;
    return s;
  }
  std::string dir_;
};

TEST_F(StateTest, ANewDirectoryIsAnEmptyStateInAPrivateDatabase) {
  auto store = StateStore::Open(dir_ + "/sub");
  ASSERT_TRUE(store.ok()) << store.status();
  auto s = store->Load();
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_TRUE(s->services.empty() && s->endpoints.empty() && s->prefilter.empty());
  struct stat st;
  ASSERT_EQ(::stat(store->path().c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(StateTest, ChangesTouchOnlyTheirRowsAndSurviveAReopen) {
  {
    auto store = *StateStore::Open(dir_);
    StateChange a;
    a.put_services = {Svc(1, "10.96.0.1:80/TCP"), Svc(2, "10.96.0.2:80/TCP")};
    a.prefilter = std::set<Cidr>{*ParseCidr("10.0.0.0/8"), *ParseCidr("fd00::/16")};
    ASSERT_TRUE(store.Commit(a).ok());
    StateChange b;
    b.drop_services = {1};
    b.put_services = {Svc(3, "10.96.0.3:53/UDP")};
    ASSERT_TRUE(store.Commit(b).ok());
    EXPECT_EQ(store.commits(), 2u);
    EXPECT_TRUE(store.Commit({}).ok());
    EXPECT_EQ(store.commits(), 2u) << "an empty change is no transaction";
  }
  auto back = StateStore::Open(dir_)->Load();
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->services.size(), 2u);
  EXPECT_EQ(back->services[0].id, 2);
  EXPECT_EQ(back->services[1].frontend.ToString(), "10.96.0.3:53/UDP");
  EXPECT_EQ(back->services[1].backends[0].id, 30u);
  EXPECT_EQ(back->prefilter.size(), 2u);
}

// A commit whose write or fsync fails is refused with the error, and the
// store reads as before it (in this connection and after a reopen, as a
// restart would see it), for every write and sync of the commit.
TEST_F(StateTest, ACommitWhoseWriteOrSyncFailsLeavesThePreviousState) {
  using Op = test::FaultyVfs::Op;
  for (Op op : {Op::kWrite, Op::kSync}) {
    std::filesystem::remove_all(dir_);
    auto store = StateStore::Open(dir_, test::FaultyVfs::Name());
    ASSERT_TRUE(store.ok()) << store.status();
    StateChange a;
    for (ServiceId id = 1; id <= 200; ++id) a.put_services.push_back(Svc(id, "10.96.0.1:80/TCP"));
    ASSERT_TRUE(store->Commit(a).ok());
    StateChange b;
    for (ServiceId id = 1; id <= 100; ++id) b.drop_services.push_back(id);
    for (ServiceId id = 300; id <= 400; ++id) b.put_services.push_back(Svc(id, "10.96.0.2:80/TCP"));
    long n = 1;
    for (;; ++n) {
      test::FaultyVfs::FailNth(op, n);
      absl::Status st = store->Commit(b);
      test::FaultyVfs::Disarm();
      if (!test::FaultyVfs::Fired()) {
        ASSERT_TRUE(st.ok()) << st;
        break;
      }
      ASSERT_FALSE(st.ok()) << "fault " << n << " of the commit, yet it succeeded";
      EXPECT_NE(st.message().find("state store"), std::string::npos) << st;
      auto now = store->Load();
      ASSERT_TRUE(now.ok()) << now.status();
      ASSERT_EQ(now->services.size(), 200u) << (op == Op::kWrite ? "write " : "sync ") << n;
      ASSERT_EQ(now->services.front().id, 1u);
      auto reopened = StateStore::Open(dir_);
      ASSERT_TRUE(reopened.ok()) << reopened.status();
      ASSERT_EQ(reopened->Load()->services.size(), 200u) << (op == Op::kWrite ? "write " : "sync ") << n;
    }
    EXPECT_GT(n, 1) << "the commit " << (op == Op::kWrite ? "writes" : "syncs");
    ASSERT_EQ(store->Load()->services.size(), 201u);
  }
}

// A node with more than 65,535 services: rows with 32-bit ids read back (a
// 16-bit check once made such a node's agent refuse to start).
TEST_F(StateTest, ServicesWithIdsPastSixteenBitsReadBack) {
  {
    auto store = *StateStore::Open(dir_);
    StateChange c;
    c.put_services = {Svc(65536, "10.97.0.0:80/TCP"), Svc(100001, "10.97.1.0:80/TCP")};
    ASSERT_TRUE(store.Commit(c).ok());
  }
  auto back = StateStore::Open(dir_)->Load();
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->services.size(), 2u);
  EXPECT_EQ(back->services[0].id, 65536u);
  EXPECT_EQ(back->services[1].id, 100001u);
  EXPECT_EQ(back->services[1].backends[0].id, 1000010u);
}

TEST_F(StateTest, EndpointsAreStoredWithoutKernelFacts) {
  auto store = *StateStore::Open(dir_);
  Endpoint e;
  e.id = 7;
  e.ifname = "lxc7";
  e.netns = "/run/netns/pod7";
  e.ips = {*ParseIp("10.200.1.7"), *ParseIp("fd20::7")};
  e.ifindex = 42;  // a fact: read again at start, not persisted
  Endpoint f = e;
  f.id = 8;
  f.ifname = "lxc8";
  StateChange c;
  c.put_endpoints = {e, f};
  ASSERT_TRUE(store.Commit(c).ok());
  StateChange d;
  d.drop_endpoints = {8};
  ASSERT_TRUE(store.Commit(d).ok());
  auto back = store.Load();
  ASSERT_TRUE(back.ok()) << back.status();
  ASSERT_EQ(back->endpoints.size(), 1u);
  EXPECT_EQ(back->endpoints[0].id, 7u);
  EXPECT_EQ(back->endpoints[0].ifname, "lxc7");
  EXPECT_EQ(back->endpoints[0].netns, "/run/netns/pod7");
  EXPECT_EQ(back->endpoints[0].ips, e.ips);
  EXPECT_EQ(back->endpoints[0].ifindex, 0);
  StateChange all;
  all.put_endpoints = {f};
  all.all_endpoints = true;
  ASSERT_TRUE(store.Commit(all).ok());
  ASSERT_EQ(store.Load()->endpoints.size(), 1u);
  EXPECT_EQ(store.Load()->endpoints[0].id, 8u);
}

TEST_F(StateTest, AnEarlierVersionsStateJsonIsMigratedOnce) {
  DesiredState old;
  old.services = {Svc(4, "10.96.0.4:80/TCP")};
  old.prefilter = {*ParseCidr("192.0.2.0/24")};
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", StateToJson(old)).ok());
  {
    auto store = StateStore::Open(dir_);
    ASSERT_TRUE(store.ok()) << store.status();
    auto s = store->Load();
    ASSERT_EQ(s->services.size(), 1u);
    EXPECT_EQ(s->services[0].id, 4);
    EXPECT_EQ(s->prefilter, old.prefilter);
  }
  EXPECT_FALSE(std::filesystem::exists(dir_ + "/state.json"));
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/state.json.migrated"));
  auto again = StateStore::Open(dir_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->Load()->services.size(), 1u);
}

TEST_F(StateTest, ACorruptStateJsonStopsTheOpenNamingIt) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.json", "{not json").ok());
  auto s = StateStore::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("state.json"), std::string::npos) << s.status();
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/state.json")) << "kept for the operator";
  EXPECT_FALSE(ParseStateJson("{\"prefilter\": [\"10.0.0.0/33\"]}", "x").ok());
  EXPECT_FALSE(ParseStateJson("[]", "x").ok());
}

TEST_F(StateTest, ACorruptRowIsAnErrorNamingTableAndRow) {
  ASSERT_TRUE(StateStore::Open(dir_).ok());
  sqlite3* db = nullptr;
  ASSERT_EQ(sqlite3_open((dir_ + "/state.db").c_str(), &db), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(db, "INSERT INTO services (id, doc) VALUES (9, '{\"frontend\": 5}')", nullptr, nullptr,
                         nullptr),
            SQLITE_OK);
  sqlite3_close(db);
  auto s = StateStore::Open(dir_)->Load();
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("services row 9"), std::string::npos) << s.status();
}

TEST_F(StateTest, ATornOrForeignDatabaseIsAnErrorNamingIt) {
  ASSERT_TRUE(WriteFileAtomic(dir_ + "/state.db", std::string(4096, 'x')).ok());
  auto s = StateStore::Open(dir_);
  ASSERT_FALSE(s.ok());
  EXPECT_NE(s.status().message().find("state.db"), std::string::npos) << s.status();
}

TEST(EndpointValidationTest, NamesWhatIsWrong) {
  Endpoint a;
  a.id = 1;
  a.ifname = "lxc1";
  a.ips = {*ParseIp("10.200.1.1")};
  EXPECT_TRUE(ValidateEndpoint(a, {}, {"eth0"}).ok());
  auto check = [&](Endpoint e, const std::vector<Endpoint>& existing, const std::string& says) {
    auto st = ValidateEndpoint(e, existing, {"eth0"});
    EXPECT_FALSE(st.ok()) << says;
    EXPECT_NE(st.message().find(says), std::string::npos) << st;
  };
  Endpoint b = a;
  b.id = 0;
  check(b, {}, "1-65535");
  b = a;
  b.ifname = "eth0";
  check(b, {}, "native device");
  b = a;
  b.ifname = "a/b";
  check(b, {}, "valid device name");
  b = a;
  b.ips = {*ParseIp("224.0.0.1")};
  check(b, {}, "cannot be an endpoint address");
  b = a;
  b.ips = {*ParseIp("fe80::1")};
  check(b, {}, "cannot be an endpoint address");
  b = a;
  b.ips = {*ParseIp("10.0.0.1"), *ParseIp("10.0.0.2")};
  check(b, {}, "one address per family");
  b = a;
  b.id = 2;
  b.ifname = "lxc2";
  check(b, {a}, "belongs to endpoint 1");
  b = a;
  b.ips = {*ParseIp("10.200.1.2")};
  check(b, {a}, "endpoint id 1 is taken");
  b = a;
  b.id = 2;
  b.netns = "/run/netns/tndt-surely-not-there";
  b.ips = {*ParseIp("10.200.1.2")};
  b.ifname = "lxc2";
  check(b, {a}, "tndt-surely-not-there");
}

}  // namespace
}  // namespace tendril
