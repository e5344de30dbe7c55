// Loader tests on the real kernel: pinned map reuse and ABI replacement, the
// tail-call table, and errors that say what failed.
#include <bpf/bpf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include "datapath/loader.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

class LoaderTest : public ::testing::Test {
 protected:
  void SetUp() override { TND_REQUIRE_ROOT(); }

  LoadOptions Opts() {
    LoadOptions lo;
    lo.object_path = BpfObjectPath("bpf_xdp");
    lo.pin_root = pins_.path();
    return lo;
  }
  std::string Pin(const char* name) { return pins_.path() + "/" + name; }

  TempPinRoot pins_;
};

TEST_F(LoaderTest, PinsSharedMapsAndReusesThemOnReload) {
  uint32_t first_id;
  {
    auto obj = BpfObject::Load(Opts());
    ASSERT_TRUE(obj.ok()) << obj.status();
    auto fd = OpenPinned(Pin(TND_MAP_PREFILTER_V4));
    ASSERT_TRUE(fd.ok()) << fd.status();
    first_id = GetMapInfo(fd->get())->id;
    tnd_lpm_v4_key k{24, {10, 9, 8, 0}};
    tnd_prefilter_val v{};
    ASSERT_EQ(bpf_map_update_elem(fd->get(), &k, &v, BPF_ANY), 0);
  }
  // The object is closed; the pin keeps the map and its entry.
  auto obj = BpfObject::Load(Opts());
  ASSERT_TRUE(obj.ok()) << obj.status();
  int map_fd = *obj->MapFd(TND_MAP_PREFILTER_V4);
  EXPECT_EQ(GetMapInfo(map_fd)->id, first_id);
  tnd_lpm_v4_key k{32, {10, 9, 8, 7}};
  tnd_prefilter_val v;
  EXPECT_EQ(bpf_map_lookup_elem(map_fd, &k, &v), 0) << "entry lost across reload";
  // Per-object prog arrays and scratch maps are not pinned by name.
  struct stat st;
  EXPECT_NE(stat(Pin(TND_MAP_XDP_CALLS).c_str(), &st), 0);
  EXPECT_NE(stat(Pin(TND_MAP_XDP_SCRATCH).c_str(), &st), 0);
}

TEST_F(LoaderTest, ReplacesPinnedMapWhoseAbiChanged) {
  // A map left by an older build: same name, different value size.
  bpf_map_create_opts o;
  std::memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  o.map_flags = BPF_F_NO_PREALLOC;
  int old_fd = bpf_map_create(BPF_MAP_TYPE_LPM_TRIE, TND_MAP_PREFILTER_V4,
                              sizeof(tnd_lpm_v4_key), 8, 128, &o);
  ASSERT_GE(old_fd, 0) << strerror(errno);
  UniqueFd old(old_fd);
  ASSERT_EQ(bpf_obj_pin(old.get(), Pin(TND_MAP_PREFILTER_V4).c_str()), 0);
  uint32_t old_id = GetMapInfo(old.get())->id;

  auto obj = BpfObject::Load(Opts());
  ASSERT_TRUE(obj.ok()) << obj.status();
  auto fd = OpenPinned(Pin(TND_MAP_PREFILTER_V4));
  ASSERT_TRUE(fd.ok());
  auto info = GetMapInfo(fd->get());
  EXPECT_NE(info->id, old_id);
  EXPECT_EQ(info->value_size, sizeof(tnd_prefilter_val));
  EXPECT_EQ(info->max_entries, static_cast<uint32_t>(TND_PREFILTER_MAX));
}

// The Maglev map of an older build, whose tables were not mappable: the
// object's tables could not go into it, so it is replaced; the new one takes
// them and is kept on the next load, with or without tables in it.
TEST_F(LoaderTest, ReplacesAMapOfMapsWhoseInnerMapsChanged) {
  auto table = [](uint32_t flags) {
    LIBBPF_OPTS(bpf_map_create_opts, o, .map_flags = flags);
    return UniqueFd(bpf_map_create(BPF_MAP_TYPE_ARRAY, "tbl", 4, 4, TENDRIL_MAGLEV_TABLE_SIZE, &o));
  };
  UniqueFd old_tbl = table(0);
  ASSERT_TRUE(old_tbl.valid()) << strerror(errno);
  LIBBPF_OPTS(bpf_map_create_opts, oo, .inner_map_fd = static_cast<__u32>(old_tbl.get()), .map_flags = BPF_F_NO_PREALLOC);
  UniqueFd old(bpf_map_create(BPF_MAP_TYPE_HASH_OF_MAPS, TND_MAP_MAGLEV, 4, 4, TND_MAGLEV_SVC_MAX_DEFAULT, &oo));
  ASSERT_TRUE(old.valid()) << strerror(errno);
  uint32_t key = 5, val = static_cast<uint32_t>(old_tbl.get());
  ASSERT_EQ(bpf_map_update_elem(old.get(), &key, &val, BPF_ANY), 0) << strerror(errno);
  ASSERT_EQ(bpf_obj_pin(old.get(), Pin(TND_MAP_MAGLEV).c_str()), 0);
  const uint32_t old_id = GetMapInfo(old.get())->id;

  auto load = [&]() {
    auto obj = BpfObject::Load(Opts());
    EXPECT_TRUE(obj.ok()) << obj.status();
    auto fd = OpenPinned(Pin(TND_MAP_MAGLEV));
    EXPECT_TRUE(fd.ok()) << fd.status();
    return fd.ok() ? GetMapInfo(fd->get())->id : 0u;
  };
  const uint32_t new_id = load();
  EXPECT_NE(new_id, old_id) << "replaced";
  EXPECT_EQ(load(), new_id) << "an empty map of the right kind is kept";
  auto fd = OpenPinned(Pin(TND_MAP_MAGLEV));
  ASSERT_TRUE(fd.ok());
  UniqueFd new_tbl = table(TND_MAGLEV_INNER_FLAGS);
  val = static_cast<uint32_t>(new_tbl.get());
  EXPECT_EQ(bpf_map_update_elem(fd->get(), &key, &val, BPF_ANY), 0) << "a mappable table goes in: " << strerror(errno);
  val = static_cast<uint32_t>(old_tbl.get());
  EXPECT_NE(bpf_map_update_elem(fd->get(), &key, &val, BPF_ANY), 0) << "an old one does not";
  EXPECT_EQ(load(), new_id) << "and with a table in it, it is kept too";
}

TEST_F(LoaderTest, ProgArrayWithAnEmptySlotIsAClearError) {
  LoadOptions lo = Opts();
  lo.object_path = BpfObjectPath("test_tail_gap");
  auto obj = BpfObject::Load(lo);
  ASSERT_FALSE(obj.ok());
  std::string msg(obj.status().message());
  EXPECT_NE(msg.find("test_gap_calls"), std::string::npos) << msg;
  EXPECT_NE(msg.find("slot 1"), std::string::npos) << msg;
}

// Each object's prog array, as libbpf filled it from the initialiser in its
// source: every slot holds the program the ABI's index names.
TEST_F(LoaderTest, ProgArraysHoldTheirProgramsInEverySlot) {
  struct Want {
    const char* object;
    const char* map;
    std::vector<std::pair<uint32_t, const char*>> slots;
  };
  const Want wants[] = {
      {"bpf_xdp", TND_MAP_XDP_CALLS, {{TND_TAIL_XDP_V4, "tnd_xdp_v4"}, {TND_TAIL_XDP_V6, "tnd_xdp_v6"}}},
      {"bpf_host", TND_MAP_HOST_CALLS, {{TND_TAIL_HOST_V4, "tnd_host_in_v4"}, {TND_TAIL_HOST_V6, "tnd_host_in_v6"}}},
      {"bpf_lxc", TND_MAP_LXC_CALLS, {{TND_TAIL_LXC_V4, "tnd_lxc_in_v4"}, {TND_TAIL_LXC_V6, "tnd_lxc_in_v6"}}},
  };
  for (const Want& w : wants) {
    LoadOptions lo = Opts();
    lo.object_path = BpfObjectPath(w.object);
    auto obj = BpfObject::Load(lo);
    ASSERT_TRUE(obj.ok()) << w.object << ": " << obj.status();
    int calls = *obj->MapFd(w.map);
    EXPECT_EQ(GetMapInfo(calls)->max_entries, w.slots.size()) << w.map;
    for (const auto& [slot, program] : w.slots) {
      uint32_t key = slot, prog_id = 0;
      ASSERT_EQ(bpf_map_lookup_elem(calls, &key, &prog_id), 0) << w.map << " slot " << slot;
      EXPECT_EQ(prog_id, GetProgramInfo(*obj->ProgramFd(program))->id) << w.map << " slot " << slot;
    }
  }
}

TEST_F(LoaderTest, MissingObjectFileNamesIt) {
  LoadOptions lo = Opts();
  lo.object_path = "/nonexistent/tendril.o";
  auto obj = BpfObject::Load(lo);
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(obj.status().message().find("/nonexistent/tendril.o"), std::string::npos);
}

TEST_F(LoaderTest, VerifierRejectionCarriesTheLog) {
  LoadOptions lo;
  lo.object_path = BpfObjectPath("test_reject");
  lo.pin_root = pins_.path();
  auto obj = BpfObject::Load(lo);
  ASSERT_FALSE(obj.ok());
  std::string msg(obj.status().message());
  EXPECT_NE(msg.find("test_reject"), std::string::npos) << msg;
  // The verifier's own words about the unchecked packet read.
  EXPECT_NE(msg.find("invalid access to packet"), std::string::npos) << msg;
}

TEST_F(LoaderTest, OffloadToADeviceWithoutSupportIsRefusedAtLoad) {
  LoadOptions lo = Opts();
  lo.offload_ifindex = 1;  // loopback: no BPF offload
  auto obj = BpfObject::Load(lo);
  ASSERT_FALSE(obj.ok());
  EXPECT_NE(obj.status().message().find("libbpf"), std::string::npos) << obj.status();
}

}  // namespace
}  // namespace tendril::test
