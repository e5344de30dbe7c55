// The planner's view of the node: where each backend is (placement, from
// the node's routes) and which addresses serve node ports. Both change
// under the declared services, which then follow them.
#include "absl/strings/str_cat.h"
#include "common/status.h"
#include "lb/planner.h"

namespace tendril {

absl::StatusOr<Plan> ServicePlanner::NodeAddresses(std::vector<IpAddr> addresses) const {
  Plan plan;
  if (addresses == node_.addresses) return plan;
  TND_RETURN_IF_ERROR(Annotate(CheckConflicts(services_, addresses), "node addresses not taken for node ports"));
  for (const auto& [id, s] : services_) {
    if (!s.HasNodePort()) continue;
    ServiceChange c = Change(&s, &s);
    c.new_entries = FrontendEntries(s, addresses);
    plan.changes.push_back(std::move(c));
  }
  plan.node_addresses = std::move(addresses);
  return plan;
}

void ServicePlanner::Place(Service& s) const {
  for (Backend& b : s.backends) b.place = node_.place(b.ip);
}

Plan ServicePlanner::Placement(const std::function<bool(const IpAddr&)>& affected) const {
  Plan plan;
  for (const auto& [id, cur] : services_) {
    bool touch = false;
    for (const Backend& b : cur.backends) touch = touch || affected(b.ip);
    if (!touch) continue;
    Service neu = cur;
    Place(neu);
    bool moved = false;
    for (size_t i = 0; i < neu.backends.size(); ++i) moved = moved || neu.backends[i].place != cur.backends[i].place;
    if (moved) plan.changes.push_back(Change(&cur, &neu));
  }
  return plan;
}

}  // namespace tendril
