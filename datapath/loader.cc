#include "datapath/loader.h"

#include <bpf/bpf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdarg>
#include <cstring>
#include <mutex>

#include "absl/strings/string_view.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "datapath/dry_run.h"
#include "datapath/pin_reconcile.h"
#include "maps/growable.h"
#include "maps/pinned_map.h"

namespace tendril {
namespace {

// libbpf reports verifier logs through its print callback. While a load is
// running on this thread, its messages are also captured so that the error
// can carry the tail of the log.
thread_local std::string* t_capture = nullptr;

// A verifier log's end says why a program was refused: the whole message
// is formatted and captured; the log line keeps its last kLogKeep bytes.
constexpr size_t kLogKeep = 8192;

int LibbpfPrint(enum libbpf_print_level level, const char* fmt, va_list args) {
  va_list again;
  va_copy(again, args);
  char buf[8192];
  int n = vsnprintf(buf, sizeof(buf), fmt, args);
  std::string big;
  if (n >= static_cast<int>(sizeof(buf))) {
    big.resize(static_cast<size_t>(n) + 1);
    vsnprintf(big.data(), big.size(), fmt, again);
    big.resize(static_cast<size_t>(n));
  }
  va_end(again);
  if (n <= 0) return n;
  absl::string_view msg = big.empty() ? absl::string_view(buf, static_cast<size_t>(n)) : absl::string_view(big);
  if (t_capture) t_capture->append(msg.data(), msg.size());
  if (msg.size() > kLogKeep) msg.remove_prefix(msg.size() - kLogKeep);
  while (!msg.empty() && msg.back() == '\n') msg.remove_suffix(1);
  if (absl::StartsWith(msg, "libbpf: ")) msg.remove_prefix(8);
  // The kernel's netlink extack text is expected on some probing paths
  // (EEXIST from an existing clsact qdisc); callers quote it in their errors
  // when it matters, so it is logged at debug only.
  if (level == LIBBPF_WARN && !absl::StartsWith(msg, "Kernel error message"))
    TND_LOG_WARN("libbpf: ", msg);
  else
    TND_LOG_DEBUG("libbpf: ", msg);
  return n;
}

std::string LastLines(const std::string& text, size_t max_lines) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipEmpty());
  if (lines.size() > max_lines) lines.erase(lines.begin(), lines.end() - static_cast<long>(max_lines));
  return absl::StrJoin(lines, "\n  ");
}

}  // namespace

LibbpfCapture::LibbpfCapture() : prev_(t_capture) {
  InstallLibbpfLogger();
  t_capture = &text_;
}

LibbpfCapture::~LibbpfCapture() {
  t_capture = prev_;
  if (prev_) prev_->append(text_);
}

std::string LibbpfCapture::KernelMessage() const {
  static constexpr char kMarker[] = "Kernel error message: ";
  size_t pos = text_.rfind(kMarker);
  if (pos == std::string::npos) return "";
  size_t start = pos + sizeof(kMarker) - 1;
  size_t end = text_.find('\n', start);
  return text_.substr(start, end == std::string::npos ? std::string::npos : end - start);
}

std::string LibbpfCapture::Tail(size_t max_lines) const { return LastLines(text_, max_lines); }

void InstallLibbpfLogger() {
  static std::once_flag once;
  std::call_once(once, [] { libbpf_set_print(LibbpfPrint); });
}

absl::StatusOr<ProgramInfo> GetProgramInfo(int prog_fd) {
  bpf_prog_info info;
  std::memset(&info, 0, sizeof(info));
  uint32_t len = sizeof(info);
  if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0)
    return ErrnoError(errno, "read program info");
  ProgramInfo out;
  out.name = info.name;
  out.id = info.id;
  out.verified_insns = info.verified_insns;
  out.xlated_len = info.xlated_prog_len;
  return out;
}

absl::StatusOr<ProgramInfo> GetProgramInfoById(uint32_t id) {
  int fd = bpf_prog_get_fd_by_id(id);
  if (fd < 0) return ErrnoError(errno, absl::StrCat("open program id ", id));
  UniqueFd owned(fd);
  return GetProgramInfo(fd);
}

absl::StatusOr<BpfObject> BpfObject::Load(const LoadOptions& opts) {
  InstallLibbpfLogger();
  const std::string& path = opts.object_path;
  std::string pin_root = opts.offload_ifindex ? "" : opts.pin_root;
  if (!pin_root.empty()) TND_RETURN_IF_ERROR(MakeDirs(pin_root, 0700));

  bpf_object_open_opts oo;
  std::memset(&oo, 0, sizeof(oo));
  oo.sz = sizeof(oo);
  oo.pin_root_path = pin_root.empty() ? nullptr : pin_root.c_str();
  bpf_object* raw = bpf_object__open_file(path.c_str(), &oo);
  if (!raw) return ErrnoError(errno, absl::StrCat("open BPF object ", path));
  BpfObject obj(raw);

  std::vector<std::pair<bpf_map*, UniqueFd>> carry;  // resized pinned maps: their old selves
  if (opts.dry_run) TND_RETURN_IF_ERROR(PrepareDryRun(raw));
  bpf_map* map;
  bpf_object__for_each_map(map, raw) {
    if (opts.dry_run) break;
    if (opts.offload_ifindex) {
      bpf_map__set_pin_path(map, nullptr);
      bpf_map__set_ifindex(map, static_cast<uint32_t>(opts.offload_ifindex));
      continue;
    }
    if (auto it = opts.max_entries.find(bpf_map__name(map)); it != opts.max_entries.end()) {
      if (int err = bpf_map__set_max_entries(map, it->second); err)
        return ErrnoError(-err, absl::StrCat("size map ", it->first, " to ", it->second, " entries"));
    }
    if (pin_root.empty()) {
      bpf_map__set_pin_path(map, nullptr);
      continue;
    }
    TND_ASSIGN_OR_RETURN(PinDecision d, ReconcilePin(map, bpf_object__btf(raw)));
    if (d.carry_from.valid()) carry.emplace_back(map, std::move(d.carry_from));
  }
  if (opts.offload_ifindex) {
    bpf_program* prog;
    bpf_object__for_each_program(prog, raw) {
      bpf_program__set_ifindex(prog, static_cast<uint32_t>(opts.offload_ifindex));
    }
  }

  LibbpfCapture capture;
  int err = bpf_object__load(raw);
  if (err) {
    return WithDetail(ErrnoError(-err, absl::StrCat("load BPF object ", path)),
                      absl::StrCat("libbpf and the verifier said:\n  ", capture.Tail(25)));
  }
  TND_RETURN_IF_ERROR(obj.CheckTailCalls());
  for (auto& [m, old] : carry) {
    const std::string what = bpf_map__name(m);
    auto n = CopyEntries(old.get(), bpf_map__fd(m), TableShape{bpf_map__key_size(m), bpf_map__value_size(m)}, what);
    if (!n.ok()) TND_LOG_WARN("carrying the entries of ", what, " into its new size: ", n.status().message());
    else TND_LOG_INFO("carried ", *n, " entries of ", what, " into its new size");
  }
  return obj;
}

absl::Status BpfObject::CheckTailCalls() {
  bpf_map* m;
  bpf_object__for_each_map(m, obj_.get()) {
    if (bpf_map__type(m) != BPF_MAP_TYPE_PROG_ARRAY) continue;
    const char* name = bpf_map__name(m);
    // An array its initialiser filled must be filled in every slot (a gap is
    // a tail call that silently falls through); one left empty is filled at
    // run time by its user (the benchmarks' wrappers).
    std::vector<uint32_t> empty;
    for (uint32_t slot = 0; slot < bpf_map__max_entries(m); ++slot) {
      uint32_t prog_id = 0;
      if (bpf_map_lookup_elem(bpf_map__fd(m), &slot, &prog_id) != 0) empty.push_back(slot);
    }
    if (!empty.empty() && empty.size() < bpf_map__max_entries(m))
      return absl::FailedPreconditionError(absl::StrCat(
          "prog array ", name, ": slot ", absl::StrJoin(empty, ", "), " left empty by its initialiser; every slot up to "
          "max_entries must name a program"));
    tail_call_maps_.push_back(name);
  }
  return absl::OkStatus();
}

absl::StatusOr<int> BpfObject::ProgramFd(const std::string& name) const {
  bpf_program* p = bpf_object__find_program_by_name(obj_.get(), name.c_str());
  if (!p) return absl::NotFoundError(absl::StrCat("program ", name, " not in BPF object"));
  int fd = bpf_program__fd(p);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("program ", name, " not loaded"));
  return fd;
}

absl::StatusOr<int> BpfObject::MapFd(const std::string& name) const {
  bpf_map* m = bpf_object__find_map_by_name(obj_.get(), name.c_str());
  if (!m) return absl::NotFoundError(absl::StrCat("map ", name, " not in BPF object"));
  int fd = bpf_map__fd(m);
  if (fd < 0) return absl::FailedPreconditionError(absl::StrCat("map ", name, " not created"));
  return fd;
}

std::vector<std::string> BpfObject::ProgramNames() const {
  std::vector<std::string> out;
  bpf_program* p;
  bpf_object__for_each_program(p, obj_.get()) out.emplace_back(bpf_program__name(p));
  return out;
}

std::vector<std::pair<std::string, int>> BpfObject::Maps() const {
  std::vector<std::pair<std::string, int>> out;
  bpf_map* m;
  bpf_object__for_each_map(m, obj_.get()) {
    if (!bpf_map__is_internal(m)) out.emplace_back(bpf_map__name(m), bpf_map__fd(m));
  }
  return out;
}

absl::Status BpfObject::PinTailCallMaps(const std::string& dir, const std::string& tag) {
  TND_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  for (const std::string& name : tail_call_maps_) {
    TND_ASSIGN_OR_RETURN(int fd, MapFd(name));
    // bpffs refuses names with a dot.
    std::string pin = absl::StrCat(dir, "/", name, "_", tag);
    if (bpf_obj_pin(fd, pin.c_str()) != 0)
      return ErrnoError(errno, absl::StrCat("pin prog array ", name, " at ", pin));
    tail_call_pins_.push_back(pin);
  }
  return absl::OkStatus();
}

void BpfObject::UnpinTailCallMaps() {
  for (const std::string& pin : tail_call_pins_) ::unlink(pin.c_str());
  tail_call_pins_.clear();
}

void BpfObject::UnpinMaps() {
  bpf_map* m;
  bpf_object__for_each_map(m, obj_.get()) {
    if (bpf_map__pin_path(m) && bpf_map__is_pinned(m)) {
      int err = bpf_map__unpin(m, nullptr);
      if (err) TND_LOG_WARN("unpin map ", bpf_map__name(m), ": ", strerror(-err));
    }
  }
}

}  // namespace tendril
