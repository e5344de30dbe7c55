#include "datapath/attach.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fcntl.h>
#include <linux/if_link.h>
#include <net/if.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cstring>

#include "absl/strings/string_view.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "datapath/loader.h"
#include "common/fd.h"
#include "common/file_util.h"
#include "common/log.h"
#include "common/status.h"
#include "maps/pinned_map.h"

namespace tendril {
namespace {

// TCX attach types (kernel 6.6). Debian 12's uapi headers predate them.
constexpr int kBpfTcxIngress = 46;
constexpr int kBpfTcxEgress = 47;
constexpr int kEnolink = ENOLINK;

uint32_t ModeFlag(XdpMode m) {
  switch (m) {
    case XdpMode::kNative: return XDP_FLAGS_DRV_MODE;
    case XdpMode::kGeneric: return XDP_FLAGS_SKB_MODE;
    case XdpMode::kOffload: return XDP_FLAGS_HW_MODE;
    default: return 0;
  }
}

std::string ProgName(uint32_t id) {
  auto info = GetProgramInfoById(id);
  return info.ok() ? info->name : std::string("?");
}

absl::Status XdpError(const std::string& ifname, XdpMode mode, int err,
                      const LibbpfCapture& cap, absl::string_view what) {
  std::string kmsg = cap.KernelMessage();
  return Annotate(ErrnoError(err, absl::StrCat(what, " on device ", ifname, " in ",
                                               XdpModeName(mode), " mode")),
                  kmsg.empty() ? "" : absl::StrCat("kernel: ", kmsg));
}

absl::StatusOr<XdpMode> AttachXdpMode(const std::string& ifname, int ifindex, int prog_fd,
                                      XdpMode mode) {
  bpf_xdp_query_opts q;
  std::memset(&q, 0, sizeof(q));
  q.sz = sizeof(q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0)
    return ErrnoError(errno, absl::StrCat("query XDP on device ", ifname));

  struct Slot {
    XdpMode mode;
    uint32_t id;
  } slots[] = {{XdpMode::kNative, q.drv_prog_id},
               {XdpMode::kGeneric, q.skb_prog_id},
               {XdpMode::kOffload, q.hw_prog_id}};
  uint32_t same_mode_id = 0;
  std::optional<Slot> other;  // ours, in another mode: must go for this one to attach
  for (const Slot& s : slots) {
    if (!s.id) continue;
    std::string name = ProgName(s.id);
    if (!IsOwnedProgram(name))
      return absl::FailedPreconditionError(absl::StrCat(
          "device ", ifname, " already has XDP program ", name, " (id ", s.id, ") in ",
          XdpModeName(s.mode), " mode that tendril did not attach; refusing to replace it"));
    if (s.mode == mode)
      same_mode_id = s.id;
    else if (mode != XdpMode::kOffload && s.mode != XdpMode::kOffload)
      other = s;  // native and generic cannot coexist
  }

  LibbpfCapture cap;
  bpf_xdp_attach_opts ao;
  std::memset(&ao, 0, sizeof(ao));
  ao.sz = sizeof(ao);
  UniqueFd old_fd;
  uint32_t flags = ModeFlag(mode);
  if (same_mode_id) {
    old_fd.Reset(bpf_prog_get_fd_by_id(same_mode_id));
    if (!old_fd.valid())
      return ErrnoError(errno, absl::StrCat("open attached XDP program id ", same_mode_id));
    ao.old_prog_fd = old_fd.get();  // libbpf adds XDP_FLAGS_REPLACE: atomic swap
  } else {
    flags |= XDP_FLAGS_UPDATE_IF_NOEXIST;
  }

  if (other) {
    // Switching between native and generic: the kernel allows only one, so
    // there is a short window with no program. Restore the old one on failure.
    TND_LOG_WARN("device ", ifname, ": switching XDP from ", XdpModeName(other->mode), " to ",
                 XdpModeName(mode), " mode (brief detach)");
    UniqueFd prev(bpf_prog_get_fd_by_id(other->id));
    if (!prev.valid()) return ErrnoError(errno, "open attached XDP program");
    bpf_xdp_attach_opts d;
    std::memset(&d, 0, sizeof(d));
    d.sz = sizeof(d);
    d.old_prog_fd = prev.get();
    if (bpf_xdp_detach(ifindex, ModeFlag(other->mode), &d) != 0)
      return XdpError(ifname, other->mode, errno, cap, "detach XDP");
    if (bpf_xdp_attach(ifindex, prog_fd, flags, &ao) != 0) {
      int err = errno;
      if (bpf_xdp_attach(ifindex, prev.get(), ModeFlag(other->mode), nullptr) != 0)
        TND_LOG_ERROR("device ", ifname, ": could not restore previous XDP program: ",
                      strerror(errno));
      return XdpError(ifname, mode, err, cap, "attach XDP");
    }
    return mode;
  }
  if (bpf_xdp_attach(ifindex, prog_fd, flags, &ao) != 0)
    return XdpError(ifname, mode, errno, cap, "attach XDP");
  return mode;
}

// Creates a link with `create`, or atomically updates the one pinned at `pin`.
template <typename CreateFn>
absl::Status UpsertPinnedLink(const std::string& pin, int prog_fd, CreateFn create,
                              absl::string_view what) {
  struct stat st;
  if (::stat(pin.c_str(), &st) == 0) {
    TND_ASSIGN_OR_RETURN(UniqueFd link, OpenPinned(pin));
    if (bpf_link_update(link.get(), prog_fd, nullptr) == 0) return absl::OkStatus();
    int err = errno;
    if (err != kEnolink)
      return ErrnoError(err, absl::StrCat("replace program of ", what, " (link ", pin, ")"));
    // The link's target is gone (device deleted): drop the stale pin.
    TND_LOG_INFO("stale link ", pin, " (target gone), recreating");
    ::unlink(pin.c_str());
  }
  int fd = create();
  if (fd < 0) return ErrnoError(errno, absl::StrCat("create link for ", what));
  UniqueFd link(fd);
  size_t slash = pin.rfind('/');
  if (slash != std::string::npos) TND_RETURN_IF_ERROR(MakeDirs(pin.substr(0, slash), 0700));
  if (bpf_obj_pin(link.get(), pin.c_str()) != 0)
    return ErrnoError(errno, absl::StrCat("pin link for ", what, " at ", pin));
  return absl::OkStatus();
}

absl::Status UnpinLink(const std::string& pin) {
  if (::unlink(pin.c_str()) != 0 && errno != ENOENT)
    return ErrnoError(errno, absl::StrCat("unpin link ", pin));
  return absl::OkStatus();
}

std::string TcxPin(const std::string& link_dir, const std::string& ifname, TcDir dir) {
  return absl::StrCat(link_dir, "/tcx_", ifname, "_", TcDirName(dir));
}

int TcxLinkCreate(int prog_fd, int ifindex, TcDir dir) {
  union bpf_attr attr;
  std::memset(&attr, 0, sizeof(attr));
  attr.link_create.prog_fd = static_cast<uint32_t>(prog_fd);
  attr.link_create.target_fd = static_cast<uint32_t>(ifindex);  // target_ifindex
  attr.link_create.attach_type =
      static_cast<uint32_t>(dir == TcDir::kIngress ? kBpfTcxIngress : kBpfTcxEgress);
  return static_cast<int>(syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr)));
}

bpf_tc_hook TcHook(int ifindex, TcDir dir) {
  bpf_tc_hook h;
  std::memset(&h, 0, sizeof(h));
  h.sz = sizeof(h);
  h.ifindex = ifindex;
  h.attach_point = dir == TcDir::kIngress ? BPF_TC_INGRESS : BPF_TC_EGRESS;
  return h;
}

bpf_tc_opts TcOpts() {
  bpf_tc_opts o;
  std::memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  o.handle = kTcHandle;
  o.priority = kTcPriority;
  return o;
}

}  // namespace

bool IsOwnedProgram(const std::string& name) { return absl::StartsWith(name, kOwnedProgPrefix); }

absl::string_view TcDirName(TcDir d) { return d == TcDir::kIngress ? "ingress" : "egress"; }
absl::string_view TcBackendName(TcBackend b) { return b == TcBackend::kTcx ? "tcx" : "clsact"; }

absl::StatusOr<int> IfIndex(const std::string& ifname) {
  unsigned idx = if_nametoindex(ifname.c_str());
  if (idx == 0)
    return ErrnoError(errno, absl::StrCat("device ", ifname, " (in this network namespace)"));
  return static_cast<int>(idx);
}

absl::StatusOr<std::optional<XdpAttachment>> QueryXdp(const std::string& ifname) {
  TND_ASSIGN_OR_RETURN(int ifindex, IfIndex(ifname));
  bpf_xdp_query_opts q;
  std::memset(&q, 0, sizeof(q));
  q.sz = sizeof(q);
  if (bpf_xdp_query(ifindex, 0, &q) != 0)
    return ErrnoError(errno, absl::StrCat("query XDP on device ", ifname));
  XdpAttachment a;
  if (q.drv_prog_id) {
    a.prog_id = q.drv_prog_id;
    a.mode = XdpMode::kNative;
  } else if (q.skb_prog_id) {
    a.prog_id = q.skb_prog_id;
    a.mode = XdpMode::kGeneric;
  } else if (q.hw_prog_id) {
    a.prog_id = q.hw_prog_id;
    a.mode = XdpMode::kOffload;
  } else {
    return std::optional<XdpAttachment>();
  }
  a.prog_name = ProgName(a.prog_id);
  return std::optional<XdpAttachment>(a);
}

absl::StatusOr<XdpMode> AttachXdp(const std::string& ifname, int prog_fd, XdpMode mode) {
  TND_ASSIGN_OR_RETURN(int ifindex, IfIndex(ifname));
  if (mode == XdpMode::kDisabled)
    return absl::InvalidArgumentError("AttachXdp called with mode disabled");
  if (mode != XdpMode::kAuto) return AttachXdpMode(ifname, ifindex, prog_fd, mode);
  auto native = AttachXdpMode(ifname, ifindex, prog_fd, XdpMode::kNative);
  if (native.ok()) return native;
  if (absl::IsFailedPrecondition(native.status())) return native.status();  // foreign program
  TND_LOG_INFO("device ", ifname, ": native XDP refused (", native.status().message(),
               "), falling back to generic");
  auto generic = AttachXdpMode(ifname, ifindex, prog_fd, XdpMode::kGeneric);
  if (generic.ok()) return generic;
  return absl::Status(generic.status().code(),
                      absl::StrCat("auto XDP mode: ", native.status().message(), "; then ",
                                   generic.status().message()));
}

absl::Status DetachXdp(const std::string& ifname) {
  TND_ASSIGN_OR_RETURN(std::optional<XdpAttachment> cur, QueryXdp(ifname));
  if (!cur) return absl::OkStatus();
  if (!IsOwnedProgram(cur->prog_name)) {
    TND_LOG_INFO("device ", ifname, ": XDP program ", cur->prog_name,
                 " is not tendril's; leaving it");
    return absl::OkStatus();
  }
  TND_ASSIGN_OR_RETURN(int ifindex, IfIndex(ifname));
  UniqueFd old(bpf_prog_get_fd_by_id(cur->prog_id));
  if (!old.valid()) return ErrnoError(errno, "open attached XDP program");
  LibbpfCapture cap;
  bpf_xdp_attach_opts d;
  std::memset(&d, 0, sizeof(d));
  d.sz = sizeof(d);
  d.old_prog_fd = old.get();
  if (bpf_xdp_detach(ifindex, ModeFlag(cur->mode), &d) != 0)
    return XdpError(ifname, cur->mode, errno, cap, "detach XDP");
  return absl::OkStatus();
}

bool KernelHasTcx() {
  static const bool has = [] {
    // r0 = 0; exit
    bpf_insn insns[2];
    std::memset(insns, 0, sizeof(insns));
    insns[0].code = BPF_ALU64 | BPF_MOV | BPF_K;
    insns[1].code = BPF_JMP | BPF_EXIT;
    int prog = bpf_prog_load(BPF_PROG_TYPE_SCHED_CLS, "tnd_probe_tcx", "GPL", insns, 2, nullptr);
    if (prog < 0) return false;
    UniqueFd owned(prog);
    // ifindex 0 never exists: a TCX-aware kernel answers ENODEV, an older one
    // rejects the attach type with EINVAL. Nothing is attached either way.
    int fd = TcxLinkCreate(prog, 0, TcDir::kIngress);
    if (fd >= 0) {
      ::close(fd);
      return true;
    }
    return errno == ENODEV;
  }();
  return has;
}

absl::StatusOr<TcBackend> AttachTc(const TcAttachOptions& o) {
  TND_ASSIGN_OR_RETURN(int ifindex, IfIndex(o.ifname));
  std::string what = absl::StrCat("tc ", TcDirName(o.dir), " on device ", o.ifname);
  if (KernelHasTcx() && !o.force_clsact) {
    TND_RETURN_IF_ERROR(UpsertPinnedLink(
        TcxPin(o.link_dir, o.ifname, o.dir), o.prog_fd,
        [&] { return TcxLinkCreate(o.prog_fd, ifindex, o.dir); }, what));
    return TcBackend::kTcx;
  }
  LibbpfCapture cap;
  bpf_tc_hook hook = TcHook(ifindex, o.dir);
  int err = bpf_tc_hook_create(&hook);  // clsact qdisc; EEXIST when present
  if (err && err != -EEXIST)
    return Annotate(ErrnoError(-err, absl::StrCat("create clsact qdisc on device ", o.ifname)),
                    cap.KernelMessage());
  bpf_tc_opts opts = TcOpts();
  opts.prog_fd = o.prog_fd;
  // Same handle and priority as before: the kernel swaps the filter in place.
  err = bpf_tc_attach(&hook, &opts);
  if (err == -EEXIST) {
    opts = TcOpts();
    opts.prog_fd = o.prog_fd;
    opts.flags = BPF_TC_F_REPLACE;
    err = bpf_tc_attach(&hook, &opts);
  }
  if (err) {
    std::string kmsg = cap.KernelMessage();
    return Annotate(ErrnoError(-err, absl::StrCat("attach ", what, " (clsact)")),
                    kmsg.empty() ? "" : absl::StrCat("kernel: ", kmsg));
  }
  return TcBackend::kClsact;
}

absl::StatusOr<std::optional<TcAttachment>> QueryTc(const std::string& ifname, TcDir dir,
                                                    const std::string& link_dir) {
  std::string pin = TcxPin(link_dir, ifname, dir);
  struct stat st;
  if (::stat(pin.c_str(), &st) == 0) {
    TND_ASSIGN_OR_RETURN(UniqueFd link, OpenPinned(pin));
    bpf_link_info info;
    std::memset(&info, 0, sizeof(info));
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(link.get(), &info, &len) != 0)
      return ErrnoError(errno, absl::StrCat("read link info ", pin));
    return std::optional<TcAttachment>(TcAttachment{TcBackend::kTcx, info.prog_id});
  }
  TND_ASSIGN_OR_RETURN(int ifindex, IfIndex(ifname));
  LibbpfCapture cap;
  bpf_tc_hook hook = TcHook(ifindex, dir);
  bpf_tc_opts opts = TcOpts();
  int err = bpf_tc_query(&hook, &opts);
  if (err == -ENOENT || err == -EINVAL) return std::optional<TcAttachment>();
  if (err) return ErrnoError(-err, absl::StrCat("query tc on device ", ifname));
  return std::optional<TcAttachment>(TcAttachment{TcBackend::kClsact, opts.prog_id});
}

absl::Status DetachTc(const std::string& ifname, TcDir dir, const std::string& link_dir) {
  std::string pin = TcxPin(link_dir, ifname, dir);
  struct stat st;
  if (::stat(pin.c_str(), &st) == 0) return UnpinLink(pin);  // last reference: detaches
  auto ifindex = IfIndex(ifname);
  if (!ifindex.ok()) return absl::OkStatus();  // device gone, nothing attached
  LibbpfCapture cap;
  bpf_tc_hook hook = TcHook(*ifindex, dir);
  bpf_tc_opts opts = TcOpts();
  int err = bpf_tc_detach(&hook, &opts);
  if (err && err != -ENOENT && err != -EINVAL)
    return ErrnoError(-err, absl::StrCat("detach tc ", TcDirName(dir), " on device ", ifname));
  return absl::OkStatus();
}

absl::Status AttachCgroup(const std::string& cgroup_path, bpf_attach_type type, int prog_fd,
                          const std::string& link_pin_path) {
  UniqueFd cg(::open(cgroup_path.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!cg.valid()) return ErrnoError(errno, absl::StrCat("open cgroup ", cgroup_path));
  std::string what = absl::StrCat(libbpf_bpf_attach_type_str(type), " on cgroup ", cgroup_path);
  return UpsertPinnedLink(
      link_pin_path, prog_fd,
      [&] { return bpf_link_create(prog_fd, cg.get(), type, nullptr); }, what);
}

absl::Status DetachCgroup(const std::string& link_pin_path) { return UnpinLink(link_pin_path); }

}  // namespace tendril
