// The per-packet test bed: bpf_host.o, bpf_xdp.o and bpf_lxc.o loaded into
// the running kernel with their maps pinned under a temporary root, and the
// one-node network of lb_node.h in a test namespace (the programs' FIB
// lookups run there). Helpers write services as the agent writes them.
#pragma once

#include <arpa/inet.h>
#include <bpf/libbpf.h>
#include <gtest/gtest.h>
#include <linux/bpf.h>

#include <array>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "datapath/programs.h"
#include "lb/lb_writer.h"
#include "lb/service_codec.h"
#include "datapath/loader.h"
#include "maps/abi.h"
#include "maps/pinned_map.h"
#include "test/support/kernel.h"
#include "test/support/lb_node.h"
#include "test/support/map_dump.h"
#include "test/support/packet.h"

namespace tendril::test {

inline std::array<uint8_t, 16> Addr(const char* text) {
  std::array<uint8_t, 16> a{};
  if (inet_pton(AF_INET, text, a.data()) != 1) inet_pton(AF_INET6, text, a.data());
  return a;
}

// An object's load options for the packet tests: the conntrack and NAT
// tables at 32,768 entries (enough for every test here, and an eighth of the
// defaults' preallocation, most of a test's set-up time on an emulated
// kernel). Objects sharing a pin root must be loaded with the same sizes.
inline LoadOptions TestLoadOptions(const char* object, const std::string& pin_root) {
  LoadOptions o{BpfObjectPath(object), pin_root};
  for (const char* m : {TND_MAP_CT_V4, TND_MAP_CT_V6, TND_MAP_NAT_V4, TND_MAP_NAT_V6}) o.max_entries[m] = 32768;
  return o;
}

inline uint16_t PortAt(const Bytes& f, size_t off) { return static_cast<uint16_t>(f[off] << 8 | f[off + 1]); }

// The objects are loaded once per test suite (on an emulated kernel a load
// is most of a test's time) and shared by its tests: each test starts with
// every map of the three objects, pinned or not, reset to how the load left
// it (ResetMap, test/support/map_dump.h) and a namespace of its own.
struct LbObjects {
  TempPinRoot pins;
  std::unique_ptr<BpfObject> host, xdp, lxc;
};

class LbFixture : public ::testing::Test {
 protected:
  static void TearDownTestSuite() { shared_.reset(); }

  // The suite's objects: loaded by its first test, reset for the others.
  void Objects() {
    if (shared_) {  // every map of the three, pinned or not (a rate limit's window)
      for (BpfObject* obj : {shared_->host.get(), shared_->xdp.get(), shared_->lxc.get()})
        for (const auto& [name, fd] : obj->Maps()) {
          auto st = ResetMap(fd, name);
          ASSERT_TRUE(st.ok()) << st;
        }
      return;
    }
    auto o = std::make_unique<LbObjects>();
    pins_ = &o->pins;
    auto host = BpfObject::Load(Options("bpf_host"));
    ASSERT_TRUE(host.ok()) << host.status();
    o->host = std::make_unique<BpfObject>(std::move(*host));
    {  // The growable LB tables, as the agent creates them at start.
      auto lb = OpenLbMaps(pins_->path());
      ASSERT_TRUE(lb.ok()) << lb.status();
      LbWriter writer(std::move(*lb));
      auto made = writer.Reserve(MapNeeds{}, ServiceLimits{}, false);
      ASSERT_TRUE(made.ok()) << made.status();
    }
    auto xdp = BpfObject::Load(Options("bpf_xdp"));
    ASSERT_TRUE(xdp.ok()) << xdp.status();
    o->xdp = std::make_unique<BpfObject>(std::move(*xdp));
    auto lxc = BpfObject::Load(Options("bpf_lxc"));
    ASSERT_TRUE(lxc.ok()) << lxc.status();
    o->lxc = std::make_unique<BpfObject>(std::move(*lxc));
    shared_ = std::move(o);
  }

  void SetUp() override {
    TND_REQUIRE_ROOT();
    ns_ = std::make_unique<Netns>("np");
    tn0_ = BuildLbNode(*ns_);
    ASSERT_NE(tn0_, 0u);
    Objects();
    if (HasFatalFailure()) return;
    pins_ = &shared_->pins;
    host_ = shared_->host.get();
    xdp_ = shared_->xdp.get();
    lxc_ = shared_->lxc.get();
    tc_in_ = *host_->ProgramFd(kHostIngressProgram);
    tc_out_ = *host_->ProgramFd(kHostEgressProgram);
    xdp_in_ = *xdp_->ProgramFd(kXdpEntryProgram);
    lxc_in_ = *lxc_->ProgramFd(kLxcIngressProgram);
    lxc_out_ = *lxc_->ProgramFd(kLxcEgressProgram);
    endpoints_ = Open<tnd_ep_key, tnd_endpoint>(TND_MAP_ENDPOINTS);
    nomasq4_ = Open<tnd_lpm_v4_key, tnd_nomasq_val>(TND_MAP_NOMASQ_V4);

    svc4_ = Open<tnd_svc4_key, tnd_svc_val>(TND_MAP_SVC_V4);
    svc6_ = Open<tnd_svc6_key, tnd_svc_val>(TND_MAP_SVC_V6);
    backends_ = Open<uint32_t, tnd_backend>(TND_MAP_BACKENDS);
    devices_ = Open<uint32_t, tnd_device>(TND_MAP_DEVICES);
    ct4_ = Open<tnd_ct_key, tnd_ct_val>(TND_MAP_CT_V4);
    ct6_ = Open<tnd_ct_key, tnd_ct_val>(TND_MAP_CT_V6);
    nat4_ = Open<tnd_nat_key, tnd_nat_val>(TND_MAP_NAT_V4);
    nat6_ = Open<tnd_nat_key, tnd_nat_val>(TND_MAP_NAT_V6);
    srng4_ = Open<tnd_srange_v4_key, uint32_t>(TND_MAP_SRCRANGE_V4);

    tnd_device d{};
    auto a4 = Addr("10.0.0.1");
    std::memcpy(&d.ipv4, a4.data(), 4);
    auto a6 = Addr("fd00::1");
    std::memcpy(d.ipv6, a6.data(), 16);
    std::memcpy(d.mac, kMacNode.b, 6);
    ASSERT_TRUE(devices_->Update(tn0_, d).ok());
    std::string idx;
    ASSERT_EQ(ns_->Exec({"cat", "/sys/class/net/lx0/ifindex"}, &idx), 0);
    lx0_ = static_cast<uint32_t>(std::stoul(idx));
  }

  // A local endpoint (pod) behind lx0 as its host-side veth, as the agent
  // writes it: `flags` TND_EP_F_*, `mtu` its namespace side's.
  void AddEndpoint(const char* addr, uint32_t id, Mac mac, uint16_t flags = 0, uint16_t mtu = 1500) {
    bool v6 = std::string(addr).find(':') != std::string::npos;
    tnd_ep_key k{};
    auto a = Addr(addr);
    std::memcpy(k.addr, a.data(), v6 ? 16 : 4);
    k.family = v6 ? 6 : 4;
    tnd_endpoint v{};
    v.ifindex = lx0_;
    v.id = id;
    std::memcpy(v.mac, mac.b, 6);
    std::memcpy(v.node_mac, kMacLx.b, 6);
    v.flags = flags;
    v.mtu = mtu;
    ASSERT_TRUE(endpoints_->Update(k, v).ok());
  }

  LoadOptions Options(const char* object) const { return TestLoadOptions(object, pins_->path()); }

  template <typename K, typename V>
  std::unique_ptr<Map<K, V>> Open(const char* name) {
    auto m = Map<K, V>::OpenPin(pins_->path() + "/" + name, name);
    EXPECT_TRUE(m.ok()) << m.status();
    return m.ok() ? std::make_unique<Map<K, V>>(std::move(*m)) : nullptr;
  }

  // A service frontend with one backend per entry of `backends` (ids from
  // `first_id`), written as the agent writes them: backends, slots, master.
  void AddService(const char* addr, uint16_t port, uint8_t proto, uint16_t svc_id, uint8_t flags,
                  std::vector<std::pair<const char*, uint16_t>> backends, uint32_t first_id,
                  uint8_t backend_flags = 0) {
    bool v6 = std::string(addr).find(':') != std::string::npos;
    uint16_t slot = 0;
    for (auto& [baddr, bport] : backends) {
      tnd_backend b{};
      auto a = Addr(baddr);
      std::memcpy(b.addr, a.data(), 16);
      b.port = htons(bport);
      b.svc_id = svc_id;
      b.proto = proto;
      b.family = v6 ? 6 : 4;
      b.flags = backend_flags;
      uint32_t id = first_id + slot;
      ASSERT_TRUE(backends_->Update(id, b).ok());
      ++slot;
      PutSlot(addr, port, proto, slot, tnd_svc_val{id, svc_id, 0, 0, 0, 0});
    }
    PutSlot(addr, port, proto, 0, tnd_svc_val{0, svc_id, 0, slot, flags, 0});
  }

  // The key as the agent encodes it (lb/service_codec.h), in the external scope.
  void PutSlot(const char* addr, uint16_t port, uint8_t proto, uint16_t slot, tnd_svc_val v) {
    auto ip = ParseIp(addr);
    ASSERT_TRUE(ip.ok()) << ip.status();
    Frontend f{*ip, port, static_cast<L4Proto>(proto)};
    if (ip->family == Family::kV4)
      ASSERT_TRUE(svc4_->Update(Key4(f, TND_SCOPE_EXTERNAL, slot), v).ok());
    else
      ASSERT_TRUE(svc6_->Update(Key6(f, TND_SCOPE_EXTERNAL, slot), v).ok());
  }
  ProgRun Run(int fd, const Bytes& in, uint32_t ifindex = 0) {
    NetnsGuard g(*ns_);
    auto r = RunProgram(fd, in, ifindex);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : ProgRun{};
  }

  int CountEntries4() {
    int n = 0;
    EXPECT_TRUE(ct4_->ForEach([&](const tnd_ct_key&, const tnd_ct_val&) { n++; }).ok());
    return n;
  }

  std::map<int, uint64_t> Drops() {
    std::map<int, uint64_t> out;
    auto m = PerCpuMap<uint32_t, tnd_metrics_val>::OpenPin(pins_->path() + "/" TND_MAP_METRICS, "metrics");
    EXPECT_TRUE(m.ok());
    if (!m.ok()) return out;
    (void)m->ForEach([&](const uint32_t& idx, const std::vector<tnd_metrics_val>& v) {
      for (const auto& x : v) out[abi::DecodeMetricsIndex(idx).reason] += x.packets;
    });
    return out;
  }

  void ClearFlows() {
    for (auto* m : {ct4_.get(), ct6_.get()}) {
      std::vector<tnd_ct_key> ks;
      (void)m->ForEach([&](const tnd_ct_key& k, const tnd_ct_val&) { ks.push_back(k); });
      for (auto& k : ks) (void)m->Delete(k);
    }
    for (auto* m : {nat4_.get(), nat6_.get()}) {
      std::vector<tnd_nat_key> ks;
      (void)m->ForEach([&](const tnd_nat_key& k, const tnd_nat_val&) { ks.push_back(k); });
      for (auto& k : ks) (void)m->Delete(k);
    }
  }

  // Everything on the event ring buffer now, oldest first.
  std::vector<tnd_event> Events() {
    std::vector<tnd_event> events;
    auto rb_fd = OpenPinned(pins_->path() + "/" TND_MAP_EVENTS);
    EXPECT_TRUE(rb_fd.ok()) << rb_fd.status();
    if (!rb_fd.ok()) return events;
    auto collect = [](void* ctx, void* data, size_t size) -> int {
      auto* out = static_cast<std::vector<tnd_event>*>(ctx);
      if (size >= sizeof(tnd_event)) out->push_back(*static_cast<tnd_event*>(data));
      return 0;
    };
    ring_buffer* rb = ring_buffer__new(rb_fd->get(), collect, &events, nullptr);
    EXPECT_NE(rb, nullptr);
    if (!rb) return events;
    ring_buffer__consume(rb);
    ring_buffer__free(rb);
    return events;
  }

  static inline std::unique_ptr<LbObjects> shared_;
  std::unique_ptr<Netns> ns_;
  TempPinRoot* pins_ = nullptr;
  BpfObject *host_ = nullptr, *xdp_ = nullptr, *lxc_ = nullptr;
  int tc_in_ = -1, tc_out_ = -1, xdp_in_ = -1, lxc_in_ = -1, lxc_out_ = -1;
  std::unique_ptr<Map<tnd_ep_key, tnd_endpoint>> endpoints_;
  std::unique_ptr<Map<tnd_lpm_v4_key, tnd_nomasq_val>> nomasq4_;
  uint32_t tn0_ = 0, lx0_ = 0;
  std::unique_ptr<Map<tnd_svc4_key, tnd_svc_val>> svc4_;
  std::unique_ptr<Map<tnd_svc6_key, tnd_svc_val>> svc6_;
  std::unique_ptr<Map<uint32_t, tnd_backend>> backends_;
  std::unique_ptr<Map<uint32_t, tnd_device>> devices_;
  std::unique_ptr<Map<tnd_ct_key, tnd_ct_val>> ct4_, ct6_;
  std::unique_ptr<Map<tnd_nat_key, tnd_nat_val>> nat4_, nat6_;
  std::unique_ptr<Map<tnd_srange_v4_key, uint32_t>> srng4_;
};


}  // namespace tendril::test
