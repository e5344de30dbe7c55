#include "datapath/dry_run.h"

#include <bpf/btf.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "maps/pinned_map.h"

namespace tendril {
namespace {

constexpr char kDryRunVar[] = "tnd_dry_run";

// Sets the one-byte variable `name` of the object's .rodata to `value`.
absl::Status SetRodataByte(bpf_object* obj, const char* name, uint8_t value) {
  const btf* b = bpf_object__btf(obj);
  if (!b) return absl::FailedPreconditionError("the BPF object has no BTF");
  const int sec = btf__find_by_name_kind(b, ".rodata", BTF_KIND_DATASEC);
  if (sec < 0) return absl::NotFoundError(absl::StrCat("the BPF object has no .rodata (no ", name, ")"));
  const btf_type* t = btf__type_by_id(b, sec);
  const btf_var_secinfo* vs = btf_var_secinfos(t);
  for (int i = 0; i < btf_vlen(t); ++i, ++vs) {
    const btf_type* var = btf__type_by_id(b, vs->type);
    if (std::strcmp(btf__name_by_offset(b, var->name_off), name) != 0) continue;
    bpf_map* m;
    bpf_object__for_each_map(m, obj) {
      if (!absl::EndsWith(bpf_map__name(m), ".rodata")) continue;
      size_t size = 0;
      const void* init = bpf_map__initial_value(m, &size);
      if (!init || vs->offset + 1 > size) break;
      std::vector<uint8_t> data(static_cast<const uint8_t*>(init), static_cast<const uint8_t*>(init) + size);
      data[vs->offset] = value;
      if (int err = bpf_map__set_initial_value(m, data.data(), data.size()); err)
        return ErrnoError(-err, absl::StrCat("set ", name, " in .rodata"));
      return absl::OkStatus();
    }
    break;
  }
  return absl::NotFoundError(absl::StrCat("the BPF object has no ", name, " in .rodata: not a tendril object"));
}

}  // namespace

absl::Status PrepareDryRun(bpf_object* obj) {
  TND_RETURN_IF_ERROR(SetRodataByte(obj, kDryRunVar, 1));
  bpf_map* m;
  bpf_object__for_each_map(m, obj) {
    const char* pin = bpf_map__pin_path(m);
    if (!pin) continue;
    if (::access(pin, F_OK) != 0) {  // not the node's: the object's own
      bpf_map__set_pin_path(m, nullptr);
      continue;
    }
    TND_ASSIGN_OR_RETURN(UniqueFd fd, OpenPinned(pin));
    TND_ASSIGN_OR_RETURN(MapInfo info, GetMapInfo(fd.get()));
    if (info.max_entries != bpf_map__max_entries(m))
      if (int err = bpf_map__set_max_entries(m, info.max_entries); err)
        return ErrnoError(-err, absl::StrCat("size map ", bpf_map__name(m), " as its pin ", pin));
  }
  return absl::OkStatus();
}

}  // namespace tendril
