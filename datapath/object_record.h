// Which BPF objects the node runs, recorded by the agent in its state
// directory (datapath.json) each time it starts, so that `tendril explain`
// can load the same objects for a dry run, with the agent up or down.
#pragma once

#include <map>
#include <string>

#include "absl/status/statusor.h"

namespace tendril {

struct ObjectRecord {
  std::string bpffs_root;
  std::map<std::string, std::string> objects;  // bpf_xdp, bpf_host, ... -> .o path
  std::string build_key;  // the compile cache key ("prebuilt" for --bpf-object-dir)
  std::string cgroup_root;  // where the socket programs are attached
};

std::string ObjectRecordPath(const std::string& state_dir);
absl::Status WriteObjectRecord(const std::string& state_dir, const ObjectRecord& r);
// NotFound (naming the file) when the agent never started with this state
// directory; each object must still exist.
absl::StatusOr<ObjectRecord> ReadObjectRecord(const std::string& state_dir);

}  // namespace tendril
