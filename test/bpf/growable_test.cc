// The growable LB tables (maps/growable.h) against the kernel: they start
// small, grow before a change that would fill them, keep every entry across
// the replacement (a reader through the pinned array of maps never misses
// one), shrink at a restart that finds them mostly empty, and the loader
// carries a resized flow table's entries into its new size.
#include <arpa/inet.h>
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "absl/strings/str_cat.h"
#include "datapath/loader.h"
#include "lb/services.h"
#include "maps/growable.h"
#include "test/support/kernel.h"

namespace tendril::test {
namespace {

constexpr uint32_t kMaglevM = 16381;

Service Make(uint32_t i, int backends) {
  Service s;
  s.frontend = *ParseFrontend(absl::StrCat("10.", 96 + (i >> 16), ".", (i >> 8) & 255, ".", i & 255, ":80/TCP"));
  for (int b = 0; b < backends; ++b)
    s.backends.push_back(*ParseBackend(absl::StrCat("10.", 200 + b, ".", (i >> 8) & 255, ".", i & 255, ":8080")));
  return s;
}

class GrowableTest : public ::testing::Test {
 protected:
  void SetUp() override {
    TND_REQUIRE_ROOT();
    pins_ = std::make_unique<TempPinRoot>();
    auto obj = BpfObject::Load({BpfObjectPath("bpf_host"), pins_->path()});
    ASSERT_TRUE(obj.ok()) << obj.status();
    obj_ = std::make_unique<BpfObject>(std::move(*obj));
  }
  std::unique_ptr<ServiceManager> Manager() {
    return std::make_unique<ServiceManager>(*OpenLbMaps(pins_->path()), ServiceLimits{}, kMaglevM);
  }
  // The master entry of `s`, read as a program reads it: through the array.
  bool MasterVisible(const Service& s) {
    auto outer = OpenPinned(pins_->path() + "/" TND_MAP_SVC_V4);
    if (!outer.ok()) return false;
    auto table = OpenTable(outer->get(), "svc4");
    if (!table.ok()) return false;
    tnd_svc4_key k{};
    std::memcpy(&k.addr, s.frontend.ip.bytes.data(), 4);
    k.port = htons(s.frontend.port);
    k.proto = static_cast<uint8_t>(s.frontend.proto);
    tnd_svc_val v{};
    return bpf_map_lookup_elem(table->get(), &k, &v) == 0 && v.count == 2;
  }

  std::unique_ptr<TempPinRoot> pins_;
  std::unique_ptr<BpfObject> obj_;
};

TEST_F(GrowableTest, TablesGrowBeforeTheyFillAndNoEntryIsEverMissing) {
  auto m = Manager();
  Service first = Make(0, 2);
  first.id = 1;  // a restored service has its id
  auto restored = m->Restore({first});
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(m->TableSizes(), (std::vector<uint32_t>{TND_TABLE_MIN_ENTRIES, TND_TABLE_MIN_ENTRIES,
                                                    TND_TABLE_MIN_ENTRIES, TND_TABLE_MIN_ENTRIES}));
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0}, misses{0};
  std::thread reader([&] {
    while (!stop) {
      misses += !MasterVisible(first);
      reads++;
    }
  });
  // 13,000 services of 2 backends: 39,000 service entries, 26,000 backends;
  // a table grows past three quarters full, to twice the need.
  std::vector<Service> many;
  for (uint32_t i = 0; i < 13000; ++i) many.push_back(Make(i, 2));
  auto r = m->Replace(many);
  while (reads < 100) std::this_thread::yield();
  stop = true;
  reader.join();
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(misses, 0) << "of " << reads << " reads during the growth";
  std::vector<uint32_t> sizes = m->TableSizes();
  EXPECT_EQ(sizes[0], 131072u) << "svc4: twice 39,000 rounded up to a power of two";
  EXPECT_EQ(sizes[1], TND_TABLE_MIN_ENTRIES) << "svc6 has nothing to hold";
  EXPECT_EQ(sizes[2], 65536u) << "backends";
  EXPECT_EQ(sizes[3], 32768u) << "service ids";
  EXPECT_TRUE(MasterVisible(Make(12999, 2)));
  // Back to one service: kept at its size while running...
  ASSERT_TRUE(m->Replace({first}).ok());
  EXPECT_EQ(m->TableSizes()[0], 131072u);
  first = *m->Get(1);  // with its backend ids
  // ...and shrunk by the next start, which finds it mostly empty.
  m = Manager();
  ASSERT_TRUE(m->Restore({first}).ok());
  EXPECT_EQ(m->TableSizes()[0], TND_TABLE_MIN_ENTRIES);
  EXPECT_TRUE(MasterVisible(first));
  EXPECT_FALSE(MasterVisible(Make(12999, 2)));
}

TEST_F(GrowableTest, ACapSettingRefusesBeforeAnyWrite) {
  ServiceLimits small;
  small.service_map_entries = 2048;
  ServiceManager m(*OpenLbMaps(pins_->path()), small, kMaglevM);
  ASSERT_TRUE(m.Restore({}).ok());
  std::vector<Service> many;
  for (uint32_t i = 0; i < 700; ++i) many.push_back(Make(i, 2));
  auto r = m.Replace(many);
  ASSERT_FALSE(r.ok());
  EXPECT_TRUE(absl::IsResourceExhausted(r.status())) << r.status();
  EXPECT_NE(std::string(r.status().message()).find("lb-service-map-max is 2048"), std::string::npos) << r.status();
  EXPECT_TRUE(m.services().empty());
  EXPECT_FALSE(MasterVisible(many[0]));
}

// A restart with another conntrack size: the loader makes the new map and
// carries the flows over; a change of layout is never carried.
TEST_F(GrowableTest, AResizedFlowTableKeepsItsEntries) {
  auto ct = Map<tnd_ct_key, tnd_ct_val>::OpenPin(pins_->path() + "/" TND_MAP_CT_V4, "ct4");
  ASSERT_TRUE(ct.ok()) << ct.status();
  for (uint32_t i = 0; i < 3000; ++i) {
    tnd_ct_key k{};
    std::memcpy(k.saddr, &i, 4);
    k.proto = 6;
    tnd_ct_val v{};
    v.backend_id = i + 1;
    ASSERT_TRUE(ct->Update(k, v).ok());
  }
  LoadOptions lo{BpfObjectPath("bpf_host"), pins_->path()};
  lo.max_entries = {{TND_MAP_CT_V4, 8192}};
  auto again = BpfObject::Load(lo);
  ASSERT_TRUE(again.ok()) << again.status();
  auto resized = Map<tnd_ct_key, tnd_ct_val>::OpenPin(pins_->path() + "/" TND_MAP_CT_V4, "ct4");
  ASSERT_TRUE(resized.ok());
  EXPECT_EQ(GetMapInfo(resized->fd())->max_entries, 8192u);
  EXPECT_NE(GetMapInfo(resized->fd())->id, GetMapInfo(ct->fd())->id);
  int found = 0;
  for (uint32_t i = 0; i < 3000; ++i) {
    tnd_ct_key k{};
    std::memcpy(k.saddr, &i, 4);
    k.proto = 6;
    auto v = resized->Lookup(k);
    found += v.ok() && *v && (*v)->backend_id == i + 1;
  }
  EXPECT_EQ(found, 3000);
}

}  // namespace
}  // namespace tendril::test
