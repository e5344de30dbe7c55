// The planner's view of the node: where each backend is (placement, from
// the node's routes) and which addresses serve node ports. Both change
// under the declared services, which then follow them.
#include <algorithm>
#include <map>

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

void ServicePlanner::Place(const std::vector<std::pair<Service*, const Service*>>& todo) const {
  std::vector<IpAddr> ask;
  std::map<IpAddr, size_t> asked;  // address -> its index in `ask`
  std::vector<std::pair<Backend*, size_t>> fill;
  for (auto [s, previous] : todo)
    for (Backend& b : s->backends) {
      const Backend* had = nullptr;
      if (previous)
        for (const Backend& p : previous->backends)
          if (p.ip == b.ip && p.node == b.node) had = &p;
      if (had) {
        b.place = had->place;
        continue;
      }
      if (!node_.name.empty() && !b.node.empty() && b.node != node_.name) {
        b.place = BackendPlace::kRemote;
        continue;
      }
      auto [it, fresh] = asked.emplace(b.ip, ask.size());
      if (fresh) ask.push_back(b.ip);
      fill.emplace_back(&b, it->second);
    }
  if (ask.empty()) return;
  std::vector<BackendPlace> places;
  if (node_.place_all) places = node_.place_all(ask);
  if (places.size() != ask.size()) {
    places.clear();
    for (const IpAddr& ip : ask) places.push_back(node_.place(ip));
  }
  for (auto [b, i] : fill) {
    b->place = places[i];
    // Named this node's: a pod here whatever the route says (an overlay's
    // device is not a native one either way).
    if (b->place == BackendPlace::kRemote && !node_.name.empty() && b->node == node_.name)
      b->place = BackendPlace::kLocal;
  }
}

Plan ServicePlanner::Placement(const std::function<bool(const IpAddr&)>& affected) const {
  // Every affected service placed again in one call (the route lookups go
  // in batches), then compared with what it has.
  std::vector<const Service*> cur;
  std::vector<Service> neu;
  for (const auto& [id, s] : services_)
    if (std::any_of(s.backends.begin(), s.backends.end(), [&](const Backend& b) { return affected(b.ip); })) {
      cur.push_back(&s);
      neu.push_back(s);
    }
  std::vector<std::pair<Service*, const Service*>> todo;
  for (Service& s : neu) todo.emplace_back(&s, nullptr);
  Place(todo);
  Plan plan;
  for (size_t k = 0; k < neu.size(); ++k) {
    bool moved = false;
    for (size_t i = 0; i < neu[k].backends.size(); ++i)
      moved = moved || neu[k].backends[i].place != cur[k]->backends[i].place;
    if (moved) plan.changes.push_back(Change(cur[k], &neu[k]));
  }
  return plan;
}

}  // namespace tendril
