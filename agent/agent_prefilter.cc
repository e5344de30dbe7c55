// The XDP prefilter: every loaded XDP object's deny maps kept equal to the
// declared CIDRs, and the prefilter.* API.
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "agent/agent.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {

absl::Status Agent::SyncPrefilter(const std::set<Cidr>& want) {
  for (size_t i = 0; i < loaded_.size(); ++i) {
    auto st = loaded_[i].prefilter->Sync(want);
    if (!st.ok()) {
      for (size_t j = 0; j < i; ++j) (void)loaded_[j].prefilter->Sync(desired_.prefilter);
      return st.status();
    }
    if (st->added || st->removed)
      TND_LOG_INFO("prefilter maps synced: +", st->added, " -", st->removed);
  }
  return absl::OkStatus();
}

absl::Status Agent::CommitPrefilter(std::set<Cidr> want) {
  TND_RETURN_IF_ERROR(SyncPrefilter(want));
  StateChange c;
  c.prefilter = want;
  TND_RETURN_IF_ERROR(Persist(c, [this] { (void)SyncPrefilter(desired_.prefilter); }));
  desired_.prefilter = std::move(want);
  return absl::OkStatus();
}

absl::StatusOr<nlohmann::json> Agent::PrefilterAdd(const std::vector<std::string>& texts) {
  TND_ASSIGN_OR_RETURN(std::vector<Cidr> cidrs, ParseCidrList(texts));
  std::set<Cidr> want = desired_.prefilter;
  nlohmann::json added = nlohmann::json::array(), present = nlohmann::json::array();
  for (const Cidr& c : cidrs) {
    if (want.insert(c).second)
      added.push_back(c.ToString());
    else
      present.push_back(c.ToString());
  }
  TND_RETURN_IF_ERROR(CheckPrefilterCapacity(want));
  TND_RETURN_IF_ERROR(CommitPrefilter(std::move(want)));
  return nlohmann::json{{"added", added}, {"already_present", present}};
}

absl::StatusOr<nlohmann::json> Agent::PrefilterDelete(const std::vector<std::string>& texts) {
  TND_ASSIGN_OR_RETURN(std::vector<Cidr> cidrs, ParseCidrList(texts));
  std::set<Cidr> want = desired_.prefilter;
  std::vector<std::string> missing;
  nlohmann::json deleted = nlohmann::json::array();
  for (const Cidr& c : cidrs) {
    if (want.erase(c))
      deleted.push_back(c.ToString());
    else if (!desired_.prefilter.count(c))
      missing.push_back(c.ToString());
  }
  if (!missing.empty())
    return absl::NotFoundError(absl::StrCat("not in the prefilter: ", absl::StrJoin(missing, ", "),
                                            " (nothing deleted)"));
  TND_RETURN_IF_ERROR(CommitPrefilter(std::move(want)));
  return nlohmann::json{{"deleted", deleted}};
}

nlohmann::json Agent::PrefilterList() const {
  nlohmann::json out = nlohmann::json::array();
  for (const Cidr& c : desired_.prefilter)
    out.push_back({{"cidr", c.ToString()}, {"family", c.family == Family::kV4 ? "ipv4" : "ipv6"}});
  return out;
}

}  // namespace tendril
