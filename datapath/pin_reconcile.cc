#include "datapath/pin_reconcile.h"

#include <bpf/bpf.h>
#include <linux/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/fd.h"
#include "common/log.h"
#include "common/status.h"
#include "maps/pinned_map.h"

namespace tendril {
namespace {

struct BtfCloser {
  void operator()(btf* b) const { btf__free(b); }
};

std::string Layout(const btf* b, uint32_t id, int depth) {
  if (!b || id == 0) return "void";
  if (depth > 8) return "...";
  const int32_t resolved = btf__resolve_type(b, id);  // through typedefs and qualifiers
  if (resolved < 0) return "?";
  const btf_type* t = btf__type_by_id(b, static_cast<uint32_t>(resolved));
  if (!t) return "?";
  switch (btf_kind(t)) {
    case BTF_KIND_INT:
      return absl::StrCat("i", t->size);
    case BTF_KIND_ENUM:
    case BTF_KIND_ENUM64:
      return absl::StrCat("e", t->size);
    case BTF_KIND_PTR:
      return "p";
    case BTF_KIND_ARRAY: {
      const struct btf_array* a = btf_array(t);
      return absl::StrCat("[", a->nelems, "]", Layout(b, a->type, depth + 1));
    }
    case BTF_KIND_STRUCT:
    case BTF_KIND_UNION: {
      std::vector<std::string> fields;
      const struct btf_member* m = btf_members(t);
      for (uint16_t i = 0; i < btf_vlen(t); ++i, ++m)
        fields.push_back(absl::StrCat(btf__name_by_offset(b, m->name_off), "@", btf_member_bit_offset(t, i), ":",
                                      Layout(b, m->type, depth + 1)));
      return absl::StrCat(btf_kind(t) == BTF_KIND_UNION ? "u" : "s", t->size, "{", absl::StrJoin(fields, ","), "}");
    }
    default:
      return absl::StrCat("k", btf_kind(t));
  }
}

bool Carriable(uint32_t type) {
  return type == BPF_MAP_TYPE_HASH || type == BPF_MAP_TYPE_LRU_HASH || type == BPF_MAP_TYPE_LPM_TRIE;
}

// A pinned map of maps whose inner maps differ from the object's template
// (type, key or value size, flags) takes none of the object's inner maps:
// compared with one of its inner maps, or, when it has none, by inserting a
// map of the template under key 0 (no service id) and taking it out again.
bool InnerDiffers(int outer_fd, bpf_map* map) {
  bpf_map* tmpl = bpf_map__type(map) == BPF_MAP_TYPE_HASH_OF_MAPS ? bpf_map__inner_map(map) : nullptr;
  if (!tmpl) return false;
  uint32_t key = 0, inner_id = 0;
  if (bpf_map_get_next_key(outer_fd, nullptr, &key) == 0 && bpf_map_lookup_elem(outer_fd, &key, &inner_id) == 0) {
    UniqueFd inner(bpf_map_get_fd_by_id(inner_id));
    bpf_map_info info;
    std::memset(&info, 0, sizeof(info));
    uint32_t len = sizeof(info);
    if (!inner.valid() || bpf_obj_get_info_by_fd(inner.get(), &info, &len) != 0) return false;
    return info.type != static_cast<uint32_t>(bpf_map__type(tmpl)) || info.key_size != bpf_map__key_size(tmpl) ||
           info.value_size != bpf_map__value_size(tmpl) || info.map_flags != bpf_map__map_flags(tmpl);
  }
  LIBBPF_OPTS(bpf_map_create_opts, opts, .map_flags = bpf_map__map_flags(tmpl));
  UniqueFd probe(bpf_map_create(bpf_map__type(tmpl), "tnd_probe", bpf_map__key_size(tmpl), bpf_map__value_size(tmpl),
                                bpf_map__max_entries(tmpl), &opts));
  if (!probe.valid()) return false;
  key = 0;
  uint32_t val = static_cast<uint32_t>(probe.get());
  if (bpf_map_update_elem(outer_fd, &key, &val, BPF_NOEXIST) != 0) return errno == EINVAL;
  bpf_map_delete_elem(outer_fd, &key);
  return false;
}

}  // namespace

std::string BtfLayout(const btf* b, uint32_t id) { return Layout(b, id, 0); }

absl::StatusOr<PinDecision> ReconcilePin(bpf_map* map, const btf* obj_btf) {
  PinDecision d;
  const char* path = bpf_map__pin_path(map);
  struct stat st;
  if (!path || ::stat(path, &st) != 0) return d;  // not pinned (yet)
  auto fd = OpenPinned(path);
  if (!fd.ok()) return Annotate(fd.status(), "check pinned map");
  bpf_map_info info;
  std::memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(fd->get(), &info, &len) != 0) return ErrnoError(errno, "read pinned map info");

  std::vector<std::string> size_diffs, layout_diffs;
  auto cmp = [](std::vector<std::string>& out, const char* what, uint32_t pinned, uint32_t want) {
    if (pinned != want) out.push_back(absl::StrCat(what, " ", pinned, " -> ", want));
  };
  cmp(layout_diffs, "type", info.type, static_cast<uint32_t>(bpf_map__type(map)));
  cmp(layout_diffs, "key_size", info.key_size, bpf_map__key_size(map));
  cmp(layout_diffs, "value_size", info.value_size, bpf_map__value_size(map));
  cmp(size_diffs, "max_entries", info.max_entries, bpf_map__max_entries(map));
  cmp(size_diffs, "map_flags", info.map_flags, bpf_map__map_flags(map));
  if (InnerDiffers(fd->get(), map)) layout_diffs.push_back("inner map type or flags");
  // Both sides described by BTF: the layouts must agree too.
  if (layout_diffs.empty() && info.btf_id && obj_btf && bpf_map__btf_value_type_id(map)) {
    std::unique_ptr<btf, BtfCloser> pinned_btf(btf__load_from_kernel_by_id(info.btf_id));
    if (pinned_btf) {
      if (BtfLayout(pinned_btf.get(), info.btf_key_type_id) != BtfLayout(obj_btf, bpf_map__btf_key_type_id(map)))
        layout_diffs.push_back("key layout");
      if (BtfLayout(pinned_btf.get(), info.btf_value_type_id) != BtfLayout(obj_btf, bpf_map__btf_value_type_id(map)))
        layout_diffs.push_back("value layout");
    }
  }
  if (layout_diffs.empty() && size_diffs.empty()) {
    TND_LOG_DEBUG("reusing pinned map ", path);
    return d;
  }
  d.replace = true;
  layout_diffs.insert(layout_diffs.end(), size_diffs.begin(), size_diffs.end());
  d.why = absl::StrJoin(layout_diffs, ", ");
  if (layout_diffs.size() == size_diffs.size() && Carriable(info.type)) {
    d.carry_from = std::move(*fd);
    TND_LOG_INFO("resizing pinned map ", path, " (", d.why, "): its entries are carried over");
  } else {
    TND_LOG_WARN("replacing pinned map ", path, ": ABI changed (", d.why, "); its entries are not carried over");
  }
  if (::unlink(path) != 0) return ErrnoError(errno, absl::StrCat("unpin incompatible map ", path));
  return d;
}

}  // namespace tendril
