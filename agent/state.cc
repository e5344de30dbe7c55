#include "agent/state.h"

#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "absl/strings/str_cat.h"
#include "common/file_util.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "lb/service_json.h"

namespace tendril {

absl::StatusOr<DesiredState> StateStore::Load() const {
  struct stat st;
  if (::stat(path().c_str(), &st) != 0 && errno == ENOENT) return DesiredState{};
  TND_ASSIGN_OR_RETURN(std::string text, ReadFile(path()));
  DesiredState s;
  absl::StatusOr<nlohmann::json> parsed = jsonf::Parse(text);
  if (!parsed.ok()) return absl::DataLossError(absl::StrCat("state file ", path(), ": ", parsed.status().message()));
  nlohmann::json j = std::move(*parsed);
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
  // Written a line per service and endpoint: no document of everything is
  // built (at tens of thousands of services that was most of the cost of a
  // one-service change, and megabytes of heap).
  nlohmann::json prefilter = nlohmann::json::array();
  for (const Cidr& c : s.prefilter) prefilter.push_back(c.ToString());
  std::string out = absl::StrCat("{\n\"version\": 1,\n\"prefilter\": ", prefilter.dump(), ",\n\"services\": [");
  out.reserve(out.size() + s.services.size() * 200);
  for (size_t i = 0; i < s.services.size(); ++i)
    absl::StrAppend(&out, i ? ",\n  " : "\n  ", ServiceToJson(s.services[i]).dump());
  out += "\n],\n\"endpoints\": [";
  for (size_t i = 0; i < s.endpoints.size(); ++i) {
    nlohmann::json ej = EndpointToJson(s.endpoints[i]);
    // Facts are read from the kernel again at start.
    for (const char* k : {"ifindex", "mac", "node_mac", "state", "adopted"}) ej.erase(k);
    absl::StrAppend(&out, i ? ",\n  " : "\n  ", ej.dump());
  }
  out += "\n]\n}\n";
  return WriteFileAtomic(path(), out);
}

}  // namespace tendril
