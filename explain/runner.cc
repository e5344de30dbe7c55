#include "explain/runner.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/bpf.h>

#include <cstring>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status.h"

namespace tendril {
namespace {

// bpf/lib/explain.h's record: the one variable of its own data section.
constexpr char kRecordMap[] = ".data.explain";

absl::Status ZeroRecord(int fd) {
  tnd_explain zero{};
  uint32_t key = 0;
  if (bpf_map_update_elem(fd, &key, &zero, BPF_ANY) != 0) return ErrnoError(errno, "clear the explain record");
  return absl::OkStatus();
}

absl::StatusOr<tnd_explain> ReadRecord(int fd) {
  tnd_explain rec{};
  uint32_t key = 0;
  if (bpf_map_lookup_elem(fd, &key, &rec) != 0) return ErrnoError(errno, "read the explain record");
  return rec;
}

}  // namespace

absl::StatusOr<DryRunOutcome> TestRunFrame(int prog_fd, RunCtx kind, const Bytes& frame, uint32_t ifindex) {
  DryRunOutcome r;
  r.out.resize(frame.size() + 512);
  bpf_test_run_opts o;
  std::memset(&o, 0, sizeof(o));
  o.sz = sizeof(o);
  xdp_md xctx{};
  __sk_buff sctx{};
  if (ifindex == 0) {
    // no context: the kernel runs it as seen on loopback
  } else if (kind == RunCtx::kXdp) {
    xctx.data_end = static_cast<uint32_t>(frame.size());
    xctx.ingress_ifindex = ifindex;
    o.ctx_in = &xctx;
    o.ctx_size_in = sizeof(xctx);
  } else {
    sctx.ifindex = ifindex;
    o.ctx_in = &sctx;
    o.ctx_size_in = sizeof(sctx);
  }
  o.data_in = frame.data();
  o.data_size_in = static_cast<uint32_t>(frame.size());
  o.data_out = r.out.data();
  o.data_size_out = static_cast<uint32_t>(r.out.size());
  o.repeat = 1;
  if (bpf_prog_test_run_opts(prog_fd, &o) != 0)
    return ErrnoError(errno, absl::StrCat("run the frame through the program (BPF_PROG_TEST_RUN, ifindex ", ifindex, ")"));
  r.retval = o.retval;
  r.out.resize(o.data_size_out);
  return r;
}

absl::StatusOr<BpfObject*> DryRunner::Object(const std::string& name) {
  if (auto it = loaded_.find(name); it != loaded_.end()) return it->second.get();
  auto path = objects_.find(name);
  if (path == objects_.end())
    return absl::NotFoundError(absl::StrCat("the agent recorded no ", name, " object (is the datapath loaded?)"));
  LoadOptions o;
  o.object_path = path->second;
  o.pin_root = pin_root_;
  o.dry_run = true;
  auto obj = BpfObject::Load(o);
  if (!obj.ok()) return Annotate(obj.status(), absl::StrCat("load ", name, " for a dry run"));
  auto* p = loaded_.emplace(name, std::make_unique<BpfObject>(std::move(*obj))).first->second.get();
  return p;
}

absl::StatusOr<int> DryRunner::ProgramFd(const std::string& object, const std::string& program) {
  TND_ASSIGN_OR_RETURN(BpfObject * obj, Object(object));
  return obj->ProgramFd(program);
}

absl::Status DryRunner::ClearRecord(const std::string& object) {
  TND_ASSIGN_OR_RETURN(BpfObject * obj, Object(object));
  TND_ASSIGN_OR_RETURN(int fd, obj->MapFd(kRecordMap));
  return ZeroRecord(fd);
}

absl::StatusOr<tnd_explain> DryRunner::Record(const std::string& object) {
  TND_ASSIGN_OR_RETURN(BpfObject * obj, Object(object));
  TND_ASSIGN_OR_RETURN(int fd, obj->MapFd(kRecordMap));
  return ReadRecord(fd);
}

absl::StatusOr<DryRunOutcome> DryRunner::Run(const std::string& object, const std::string& program, RunCtx kind,
                                             const Bytes& frame, uint32_t ifindex) {
  TND_ASSIGN_OR_RETURN(BpfObject * obj, Object(object));
  TND_ASSIGN_OR_RETURN(int prog, obj->ProgramFd(program));
  TND_ASSIGN_OR_RETURN(int rec_fd, obj->MapFd(kRecordMap));
  TND_RETURN_IF_ERROR(ZeroRecord(rec_fd));
  TND_ASSIGN_OR_RETURN(DryRunOutcome r, TestRunFrame(prog, kind, frame, ifindex));
  TND_ASSIGN_OR_RETURN(r.rec, ReadRecord(rec_fd));
  return r;
}

}  // namespace tendril
