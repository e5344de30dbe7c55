// maps/abi.h's kPinnedMaps against the built objects' BTF: every map an
// object pins by name is in the table with the type, key and value sizes
// and size the object declares, and every map in the table is pinned by
// some object. Opening an object reads its ELF and BTF only (no root).
#include <bpf/libbpf.h>
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "maps/abi.h"
#include "tendril_build_config.h"

namespace tendril {
namespace {

struct Declared {
  bpf_map_type type;
  uint32_t key_size, value_size, max_entries;
  std::string object;
  bool growable = false;  // a one-slot array of maps; the sizes are its inner table's
};

std::map<std::string, Declared> PinnedByObjects() {
  std::map<std::string, Declared> out;
  for (const char* name : TENDRIL_BPF_PROGS) {
    std::string path = std::string(TENDRIL_BINARY_DIR) + "/bpf/" + name + ".o";
    bpf_object* obj = bpf_object__open_file(path.c_str(), nullptr);
    EXPECT_NE(obj, nullptr) << "open " << path;
    if (!obj) continue;
    bpf_map* m;
    bpf_object__for_each_map(m, obj) {
      if (!bpf_map__pin_path(m)) continue;  // not LIBBPF_PIN_BY_NAME
      Declared d{bpf_map__type(m), bpf_map__key_size(m), bpf_map__value_size(m), bpf_map__max_entries(m), name};
      if (d.type == BPF_MAP_TYPE_ARRAY_OF_MAPS) {
        EXPECT_EQ(d.max_entries, 1u) << bpf_map__name(m) << ": a growable map has one slot";
        const bpf_map* inner = bpf_map__inner_map(m);
        EXPECT_NE(inner, nullptr) << bpf_map__name(m);
        if (!inner) continue;
        d = Declared{bpf_map__type(inner), bpf_map__key_size(inner), bpf_map__value_size(inner), 0, name, true};
      }
      auto [it, fresh] = out.emplace(bpf_map__name(m), d);
      if (!fresh) {  // every object that names a pinned map must agree on it
        EXPECT_EQ(it->second.type, d.type) << bpf_map__name(m) << " in " << name << " and " << it->second.object;
        EXPECT_EQ(it->second.key_size, d.key_size) << bpf_map__name(m);
        EXPECT_EQ(it->second.value_size, d.value_size) << bpf_map__name(m);
        EXPECT_EQ(it->second.max_entries, d.max_entries) << bpf_map__name(m);
      }
    }
    bpf_object__close(obj);
  }
  return out;
}

TEST(PinnedMapsTest, TheTableMatchesWhatTheObjectsPin) {
  std::map<std::string, Declared> pinned = PinnedByObjects();
  ASSERT_FALSE(pinned.empty());
  std::set<std::string> in_table;
  for (const abi::PinnedMapSpec& spec : abi::kPinnedMaps) {
    in_table.insert(spec.name);
    auto it = pinned.find(spec.name);
    if (it == pinned.end()) {
      ADD_FAILURE() << spec.name << " is in kPinnedMaps but no object pins it";
      continue;
    }
    const Declared& d = it->second;
    EXPECT_EQ(d.growable, spec.growable) << spec.name;
    EXPECT_EQ(d.type, spec.type) << spec.name;
    // Ring buffers have no key or value; BTF-less sizes are what the kernel sees.
    if (spec.type != BPF_MAP_TYPE_RINGBUF) {
      EXPECT_EQ(d.key_size, spec.key_size) << spec.name;
      EXPECT_EQ(d.value_size, spec.value_size) << spec.name;
    }
    if (!spec.growable) {
      EXPECT_EQ(d.max_entries, spec.max_entries) << spec.name << " (" << d.object << ")";
    }
  }
  for (const auto& [name, d] : pinned)
    EXPECT_TRUE(in_table.count(name)) << name << " is pinned by " << d.object << " but missing from kPinnedMaps";
}

}  // namespace
}  // namespace tendril
