// The service manager's view of the node: where each backend is (placement,
// from the node's routes) and which addresses serve node ports. Both change
// under the declared services, which then follow them.
#include "absl/strings/str_cat.h"
#include "lb/services.h"
#include "common/status.h"

namespace tendril {

absl::StatusOr<int> ServiceManager::SetNodeAddresses(std::vector<IpAddr> addresses) {
  stats_ = {};
  if (addresses == node_.addresses) return 0;
  std::vector<IpAddr> old = std::move(node_.addresses);
  node_.addresses = std::move(addresses);
  if (auto st = CheckConflicts(services_); !st.ok()) {
    node_.addresses = std::move(old);
    return Annotate(st, "node addresses not taken for node ports");
  }
  int changed = 0;
  for (const auto& [id, s] : services_) {
    if (!s.HasNodePort()) continue;
    TND_RETURN_IF_ERROR(Annotate(Write(&s, FrontendEntries(s, old), &s, Entries(s)),
                                 absl::StrCat("service ", s.frontend.ToString())));
    changed++;
  }
  return changed;
}

void ServiceManager::Place(Service& s) const {
  for (Backend& b : s.backends) b.place = node_.place(b.ip);
}

absl::StatusOr<int> ServiceManager::RefreshPlacement(const std::function<bool(const IpAddr&)>& affected) {
  stats_ = {};
  int changed = 0;
  for (auto& [id, cur] : services_) {
    bool touch = false;
    for (const Backend& b : cur.backends) touch = touch || affected(b.ip);
    if (!touch) continue;
    Service neu = cur;
    Place(neu);
    bool moved = false;
    for (size_t i = 0; i < neu.backends.size(); ++i) moved = moved || neu.backends[i].place != cur.backends[i].place;
    if (!moved) continue;
    TND_RETURN_IF_ERROR(Annotate(Apply(&cur, &neu), absl::StrCat("service ", neu.frontend.ToString())));
    cur = std::move(neu);
    changed++;
  }
  return changed;
}

}  // namespace tendril
