#include "agent/state.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<DesiredState> StateStore::Load() const {
  struct stat st;
  if (::stat(path().c_str(), &st) != 0 && errno == ENOENT) return DesiredState{};
  TND_ASSIGN_OR_RETURN(std::string text, ReadFile(path()));
  DesiredState s;
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    return absl::DataLossError(absl::StrCat("state file ", path(), " is not valid JSON: ", e.what()));
  }
  if (!j.is_object()) return absl::DataLossError(absl::StrCat("state file ", path(), ": not an object"));
  if (j.contains("prefilter")) {
    if (!j["prefilter"].is_array())
      return absl::DataLossError(absl::StrCat("state file ", path(), ": prefilter is not a list"));
    for (const auto& c : j["prefilter"]) {
      if (!c.is_string())
        return absl::DataLossError(absl::StrCat("state file ", path(), ": prefilter entry is not a string"));
      auto cidr = ParseCidr(c.get<std::string>());
      if (!cidr.ok()) return Annotate(cidr.status(), absl::StrCat("state file ", path()));
      s.prefilter.insert(*cidr);
    }
  }
  if (j.contains("services")) {
    if (!j["services"].is_array())
      return absl::DataLossError(absl::StrCat("state file ", path(), ": services is not a list"));
    for (const auto& sj : j["services"]) {
      auto svc = ServiceFromJson(sj);
      if (!svc.ok()) return Annotate(svc.status(), absl::StrCat("state file ", path()));
      s.services.push_back(*svc);
    }
  }
  if (j.contains("endpoints")) {
    if (!j["endpoints"].is_array())
      return absl::DataLossError(absl::StrCat("state file ", path(), ": endpoints is not a list"));
    for (const auto& ej : j["endpoints"]) {
      auto ep = EndpointFromJson(ej);
      if (!ep.ok()) return Annotate(ep.status(), absl::StrCat("state file ", path()));
      s.endpoints.push_back(*ep);
    }
  }
  return s;
}

absl::Status StateStore::Save(const DesiredState& s) const {
  TND_RETURN_IF_ERROR(MakeDirs(dir_, 0700));
  nlohmann::json j;
  j["version"] = 1;
  j["prefilter"] = nlohmann::json::array();
  for (const Cidr& c : s.prefilter) j["prefilter"].push_back(c.ToString());
  j["services"] = nlohmann::json::array();
  for (const Service& svc : s.services) j["services"].push_back(ServiceToJson(svc));
  j["endpoints"] = nlohmann::json::array();
  for (const Endpoint& e : s.endpoints) {
    nlohmann::json ej = EndpointToJson(e);
    // Facts are read from the kernel again at start.
    for (const char* k : {"ifindex", "mac", "node_mac", "state", "adopted"}) ej.erase(k);
    j["endpoints"].push_back(ej);
  }
  return WriteFileAtomic(path(), j.dump(2) + "\n");
}

}  // namespace tendril
