#include "lb/planner_index.h"

#include "absl/strings/str_cat.h"

namespace tendril {
namespace {

std::string Named(const std::map<ServiceId, Service>& services, ServiceId id) {
  auto it = services.find(id);
  return it == services.end() ? absl::StrCat("service ", id)
                              : absl::StrCat("service ", id, " (", it->second.frontend.ToString(), ")");
}

// The first of `ids` that is not `ignore`.
std::optional<ServiceId> Other(const std::set<ServiceId>& ids, ServiceId ignore) {
  for (ServiceId id : ids)
    if (id != ignore) return id;
  return std::nullopt;
}

}  // namespace

size_t SvcEntries(const std::vector<FrontendEntry>& entries, Family f) {
  size_t n = 0;
  for (const FrontendEntry& e : entries)
    if (e.frontend.ip.family == f) n += 1 + e.slots.size();
  return n;
}

void ServiceIndex::Add(const Service& s, const std::vector<FrontendEntry>& entries) {
  for (const FrontendEntry& e : entries) frontends_[e.frontend] = s.id;
  svc_entries_[0] += SvcEntries(entries, Family::kV4);
  svc_entries_[1] += SvcEntries(entries, Family::kV6);
  if (s.HasNodePort() && s.node_port) {
    node_ports_[{s.frontend.ip.family, s.frontend.proto, s.node_port}] = s.id;
    any_node_port_[s.node_port].insert(s.id);
  }
  if (s.health_check_port) health_[s.health_check_port].insert(s.id);
  maglev_ += s.algorithm == Algorithm::kMaglev;
  service_ids_.Take(s.id);
  for (const Backend& b : s.backends) backend_ids_.Take(b.id);
}

void ServiceIndex::Remove(const Service& s, const std::vector<FrontendEntry>& entries) {
  svc_entries_[0] -= SvcEntries(entries, Family::kV4);
  svc_entries_[1] -= SvcEntries(entries, Family::kV6);
  for (const FrontendEntry& e : entries)
    if (auto it = frontends_.find(e.frontend); it != frontends_.end() && it->second == s.id) frontends_.erase(it);
  auto drop = [&](std::map<uint16_t, std::set<ServiceId>>& m, uint16_t port) {
    auto it = m.find(port);
    if (it == m.end()) return;
    it->second.erase(s.id);
    if (it->second.empty()) m.erase(it);
  };
  if (s.HasNodePort() && s.node_port) {
    auto it = node_ports_.find({s.frontend.ip.family, s.frontend.proto, s.node_port});
    if (it != node_ports_.end() && it->second == s.id) node_ports_.erase(it);
    drop(any_node_port_, s.node_port);
  }
  if (s.health_check_port) drop(health_, s.health_check_port);
  maglev_ -= s.algorithm == Algorithm::kMaglev;
  service_ids_.Release(s.id);
}

void ServiceIndex::Clear() {
  frontends_.clear();
  node_ports_.clear();
  any_node_port_.clear();
  health_.clear();
  maglev_ = 0;
  svc_entries_[0] = svc_entries_[1] = 0;
  service_ids_.Clear();
  backend_ids_.Clear();
}

std::optional<ServiceId> ServiceIndex::FrontendOwner(const Frontend& f) const {
  auto it = frontends_.find(f);
  if (it == frontends_.end()) return std::nullopt;
  return it->second;
}

bool ServiceIndex::PortTaken(uint16_t port, ServiceId ignore) const {
  auto n = any_node_port_.find(port);
  if (n != any_node_port_.end() && Other(n->second, ignore)) return true;
  auto h = health_.find(port);
  return h != health_.end() && Other(h->second, ignore).has_value();
}

// A node port is unique per family and protocol and is no health check
// port; a health check port is no node port and is shared only by services
// of different families (the halves of one dual-stack Service).
absl::Status ServiceIndex::CheckPorts(const Service& s, ServiceId ignore,
                                      const std::map<ServiceId, Service>& services) const {
  if (s.HasNodePort() && s.node_port) {
    auto it = node_ports_.find({s.frontend.ip.family, s.frontend.proto, s.node_port});
    if (it != node_ports_.end() && it->second != ignore)
      return absl::AlreadyExistsError(absl::StrCat("node port ", s.node_port, "/", L4ProtoName(s.frontend.proto),
                                                   " is already used by ", Named(services, it->second)));
    if (auto h = health_.find(s.node_port); h != health_.end())
      if (auto o = Other(h->second, ignore))
        return absl::AlreadyExistsError(
            absl::StrCat("node port ", s.node_port, " is the health check port of ", Named(services, *o)));
  }
  if (s.health_check_port) {
    if (auto n = any_node_port_.find(s.health_check_port); n != any_node_port_.end())
      if (auto o = Other(n->second, ignore))
        return absl::AlreadyExistsError(absl::StrCat("health check port ", s.health_check_port,
                                                     " is the node port of ", Named(services, *o)));
    if (auto h = health_.find(s.health_check_port); h != health_.end())
      for (ServiceId id : h->second) {
        auto o = services.find(id);
        if (id != ignore && o != services.end() && o->second.frontend.ip.family == s.frontend.ip.family)
          return absl::AlreadyExistsError(absl::StrCat("health check port ", s.health_check_port,
                                                       " is already used by ", Named(services, id)));
      }
  }
  return absl::OkStatus();
}

}  // namespace tendril
