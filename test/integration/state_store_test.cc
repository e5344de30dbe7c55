// The state store under a real agent: a change the API acknowledged
// survives kill -9 at any moment, one not acknowledged is wholly there or
// not at all, and the maps equal the stored state after the restart; a full
// disk refuses changes with a clear error and leaves the datapath as it was.
// The agent runs with XDP disabled and no devices: nothing is attached to
// this machine's interfaces.
#include <gtest/gtest.h>
#include <arpa/inet.h>
#include <sys/mount.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "agent/state.h"
#include "agent/state_json.h"
#include "common/api_client.h"
#include "common/file_util.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "tendril_build_config.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

class StateStoreTest : public ::testing::Test {
 protected:
  void SetUp() override { TND_REQUIRE_ROOT(); }

  void Start(const std::string& state_dir) {
    std::vector<std::string> argv = {BinaryPath("tendril-agent"), "--bpffs-root", pins_.path(), "--state-dir",
                                     state_dir, "--api-socket", Socket(), "--cgroup-root", cgroup_.path(),
                                     "--xdp-mode", "disabled", "--bpf-object-dir",
                                     absl::StrCat(TENDRIL_BINARY_DIR, "/bpf")};
    agent_ = std::make_unique<Subprocess>(argv);
    ASSERT_TRUE(WaitForAgent(*agent_, Socket()));
  }
  std::string Socket() const { return sock_dir_.path() + "/api.sock"; }

  // Master entries (slot 0) in the IPv4 service map.
  size_t CountFrontends() {
    size_t n = 0;
    auto m = Map<tnd_svc4_key, tnd_svc_val>::OpenPin(pins_.path() + "/" TND_MAP_SVC_V4, "svc4");
    EXPECT_TRUE(m.ok()) << m.status();
    if (m.ok()) {
      EXPECT_TRUE(m->ForEach([&](const tnd_svc4_key& k, const tnd_svc_val&) { n += k.slot == 0; }).ok());
    }
    return n;
  }
  // The backend ports in the pinned backend map.
  std::vector<uint16_t> MapBackendPorts() {
    std::vector<uint16_t> ports;
    auto m = Map<uint32_t, tnd_backend>::OpenPin(pins_.path() + "/" TND_MAP_BACKENDS, "backends");
    EXPECT_TRUE(m.ok()) << m.status();
    if (!m.ok()) return ports;
    EXPECT_TRUE(m->ForEach([&](const uint32_t&, const tnd_backend& b) { ports.push_back(ntohs(b.port)); }).ok());
    return ports;
  }

  TempPinRoot pins_;
  TempDir state_, sock_dir_;
  TempCgroup cgroup_;
  std::unique_ptr<Subprocess> agent_;
};

nlohmann::json Backends(int port) { return nlohmann::json::array({absl::StrCat("10.0.1.2:", port)}); }

TEST_F(StateStoreTest, AcknowledgedChangesSurviveKillNineAtAnyMoment) {
  Start(state_.path());
  auto added = CallAgent(Socket(), "service.add",
                         {{"service", {{"frontend", "10.96.0.10:80/TCP"}, {"backends", {{{"address", "10.0.1.2:1000"}}}}}}});
  ASSERT_TRUE(added.ok()) << added.status();
  const int id = (*added)["id"].get<int>();
  std::mt19937 rng(11);
  int port = 1000;
  for (int round = 0; round < 4; ++round) {
    // Changes one after another, each acknowledged before the next is sent,
    // until the agent dies under them.
    std::atomic<int> acked{port}, sent{port};
    std::atomic<bool> stop{false};
    std::thread writer([&] {
      for (int p = port + 1; p < port + 5000 && !stop; ++p) {
        sent = p;
        if (!CallAgent(Socket(), "service.update", {{"id", id}, {"backends", Backends(p)}}, 2000).ok()) return;
        acked = p;
      }
    });
    std::this_thread::sleep_for(std::chrono::milliseconds(100 + rng() % 400));
    agent_->Stop(9);
    stop = true;
    writer.join();
    ASSERT_GT(acked.load(), port) << "round " << round << ": no change was acknowledged before the kill";
    Start(state_.path());
    auto got = CallAgent(Socket(), "service.get", {{"id", id}});
    ASSERT_TRUE(got.ok()) << got.status();
    const std::string addr = (*got)["backends"][0]["address"];
    const int stored = std::stoi(addr.substr(addr.rfind(':') + 1));
    EXPECT_TRUE(stored == acked || stored == sent)
        << "round " << round << ": stored " << stored << ", acknowledged " << acked << ", in flight " << sent;
    EXPECT_EQ(MapBackendPorts(), std::vector<uint16_t>{static_cast<uint16_t>(stored)})
        << "the maps hold exactly the stored state";
    port = stored;
  }
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
}

TEST_F(StateStoreTest, AFullDiskRefusesChangesAndLeavesTheDatapathAlone) {
  TempDir small;
  ASSERT_EQ(::mount("tmpfs", small.path().c_str(), "tmpfs", 0, "size=4m"), 0) << std::strerror(errno);
  struct Unmount {
    std::string path;
    ~Unmount() { ::umount2(path.c_str(), MNT_DETACH); }
  } unmount{small.path()};
  Start(small.path() + "/state");
  ASSERT_TRUE(CallAgent(Socket(), "service.add",
                        {{"service", {{"frontend", "10.96.0.10:80/TCP"}, {"backends", {{{"address", "10.0.1.2:1000"}}}}}}})
                  .ok());
  const std::string filler = small.path() + "/filler";
  {
    std::ofstream f(filler, std::ios::binary);
    std::string mb(1 << 20, 'x');
    for (int i = 0; i < 8 && f; ++i) f.write(mb.data(), static_cast<std::streamsize>(mb.size()));
  }
  auto refused = CallAgent(Socket(), "service.add",
                           {{"service", {{"frontend", "10.96.0.11:80/TCP"}, {"backends", {{{"address", "10.0.1.3:2000"}}}}}}});
  ASSERT_FALSE(refused.ok()) << "a change the store cannot hold is not acknowledged";
  EXPECT_NE(refused.status().message().find("state.db"), std::string::npos) << refused.status();
  EXPECT_NE(refused.status().message().find("full"), std::string::npos) << refused.status();
  // The refused service is out of the maps at once; its backend entry
  // retires (2 s of grace, for a packet that read its id just before).
  EXPECT_EQ(CountFrontends(), 1u) << "the refused service was taken out of the maps again";
  std::vector<uint16_t> ports;
  for (int i = 0; i < 50 && (ports = MapBackendPorts()) != std::vector<uint16_t>{1000}; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(ports, std::vector<uint16_t>{1000}) << "the refused service's backend is gone after its grace period";
  auto list = CallAgent(Socket(), "service.list");
  ASSERT_TRUE(list.ok());
  EXPECT_EQ(list->size(), 1u);
  ::unlink(filler.c_str());
  EXPECT_TRUE(CallAgent(Socket(), "service.add",
                        {{"service", {{"frontend", "10.96.0.11:80/TCP"}, {"backends", {{{"address", "10.0.1.3:2000"}}}}}}})
                  .ok())
      << "with room again, changes go through";
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
}

TEST_F(StateStoreTest, AnEarlierVersionsStateJsonIsServedAfterTheUpgrade) {
  DesiredState old;
  Service svc;
  svc.id = 3;
  svc.frontend = *ParseFrontend("10.96.0.30:80/TCP");
  svc.backends.push_back(*ParseBackend("10.0.1.2:3000"));
  svc.backends.back().id = 7;
  old.services.push_back(svc);
  ASSERT_TRUE(WriteFileAtomic(state_.path() + "/state.json", StateToJson(old)).ok());
  Start(state_.path());
  auto got = CallAgent(Socket(), "service.get", {{"id", 3}});
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["frontend"], "10.96.0.30:80/TCP");
  EXPECT_EQ(MapBackendPorts(), std::vector<uint16_t>{3000});
  EXPECT_TRUE(std::filesystem::exists(state_.path() + "/state.json.migrated"));
  EXPECT_EQ(agent_->Stop(), 0) << agent_->Log();
}

}  // namespace
}  // namespace tendril::test
