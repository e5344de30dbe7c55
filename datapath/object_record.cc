#include "datapath/object_record.h"

#include <unistd.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace tendril {

std::string ObjectRecordPath(const std::string& state_dir) { return state_dir + "/datapath.json"; }

absl::Status WriteObjectRecord(const std::string& state_dir, const ObjectRecord& r) {
  nlohmann::json j = {{"bpffs_root", r.bpffs_root}, {"objects", r.objects}, {"build_key", r.build_key},
                      {"cgroup_root", r.cgroup_root}};
  return WriteFileAtomic(ObjectRecordPath(state_dir), j.dump(2) + "\n", 0600);
}

absl::StatusOr<ObjectRecord> ReadObjectRecord(const std::string& state_dir) {
  const std::string path = ObjectRecordPath(state_dir);
  auto text = ReadFile(path);
  if (!text.ok())
    return absl::NotFoundError(absl::StrCat("no record of the node's BPF objects at ", path,
                                            " (has tendril-agent run with --state-dir ", state_dir, "?): ",
                                            text.status().message()));
  auto j = nlohmann::json::parse(*text, nullptr, false);
  if (j.is_discarded() || !j.is_object() || !j.contains("objects") || !j["objects"].is_object())
    return absl::DataLossError(absl::StrCat(path, " is not a record of BPF objects"));
  ObjectRecord r;
  r.bpffs_root = j.value("bpffs_root", "");
  r.build_key = j.value("build_key", "");
  r.cgroup_root = j.value("cgroup_root", "");
  for (const auto& [name, p] : j["objects"].items()) {
    if (!p.is_string()) return absl::DataLossError(absl::StrCat(path, ": object ", name, " has no path"));
    const std::string obj = p.get<std::string>();
    if (::access(obj.c_str(), R_OK) != 0)
      return ErrnoError(errno, absl::StrCat("read ", name, " object ", obj, " (recorded in ", path, ")"));
    r.objects[name] = obj;
  }
  return r;
}

}  // namespace tendril
