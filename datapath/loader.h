// Loads a BPF object into the kernel: pins shared maps under a bpffs root
// (reusing a pinned map whose ABI matches, replacing one whose ABI changed),
// captures the verifier's log for errors, and fills the prog arrays of tail
// calls from a declared table.
#pragma once

#include <bpf/libbpf.h>

#include <cstdint>
#include <memory>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace tendril {

struct LoadOptions {
  std::string object_path;
  // bpffs directory for maps pinned by name; empty disables pinning.
  std::string pin_root;
  // Non-zero: bind every program and map to this device (XDP offload). The
  // maps then live on the device and are not pinned.
  int offload_ifindex = 0;
  // Sizes that differ from the object's (settings such as ct-max-entries),
  // by map name. A pinned map of another size is replaced (see ReconcilePin).
  std::map<std::string, uint32_t> max_entries;
  // A dry run of the node's object (datapath/dry_run.h, for explain): the
  // pinned maps reused as they are, nothing pinned, replaced or resized.
  bool dry_run = false;
};

struct ProgramInfo {
  std::string name;
  uint32_t id = 0;
  uint32_t verified_insns = 0;
  uint32_t xlated_len = 0;
};

absl::StatusOr<ProgramInfo> GetProgramInfo(int prog_fd);
absl::StatusOr<ProgramInfo> GetProgramInfoById(uint32_t id);

class BpfObject {
 public:
  static absl::StatusOr<BpfObject> Load(const LoadOptions& opts);

  BpfObject(BpfObject&&) noexcept = default;
  BpfObject& operator=(BpfObject&&) noexcept = default;

  absl::StatusOr<int> ProgramFd(const std::string& name) const;
  absl::StatusOr<int> MapFd(const std::string& name) const;
  std::vector<std::string> ProgramNames() const;
  // The maps the object defines (SEC(".maps"), not its .rodata or .data),
  // by name and fd.
  std::vector<std::pair<std::string, int>> Maps() const;

  // Removes the pins of this object's pinned maps (for --cleanup-on-exit).
  void UnpinMaps();

  // The kernel empties a prog array when its last user-space reference goes,
  // which would break the tail calls of a program left attached after the
  // agent exits. So each object's prog arrays are pinned under `dir` with
  // `tag` (unique per load) in the name: <dir>/<map>_<tag>.
  absl::Status PinTailCallMaps(const std::string& dir, const std::string& tag);
  // Removes this object's tail-call pins (its programs are not attached).
  void UnpinTailCallMaps();
  const std::vector<std::string>& tail_call_pins() const { return tail_call_pins_; }

 private:
  struct Closer {
    void operator()(bpf_object* o) const { bpf_object__close(o); }
  };
  explicit BpfObject(bpf_object* obj) : obj_(obj) {}
  // Every prog array that libbpf filled from an initialiser has every slot
  // filled; their names are kept for PinTailCallMaps.
  absl::Status CheckTailCalls();

  std::unique_ptr<bpf_object, Closer> obj_;
  std::vector<std::string> tail_call_maps_;
  std::vector<std::string> tail_call_pins_;
};

// While alive, collects what libbpf prints on this thread (verifier logs, the
// kernel's netlink extack message), so errors can quote the kernel's reason.
class LibbpfCapture {
 public:
  LibbpfCapture();
  ~LibbpfCapture();
  LibbpfCapture(const LibbpfCapture&) = delete;
  LibbpfCapture& operator=(const LibbpfCapture&) = delete;

  const std::string& text() const { return text_; }
  // The last "Kernel error message: ..." that netlink returned, or "".
  std::string KernelMessage() const;
  // The last `max_lines` lines, indented, for an error message.
  std::string Tail(size_t max_lines) const;

 private:
  std::string text_;
  std::string* prev_;
};

// Routes libbpf's messages into tendril's log (warnings as warnings, the rest
// at debug). Called once by Load; idempotent.
void InstallLibbpfLogger();

}  // namespace tendril
