// The planner's rules for shared names: frontends, node ports,
// health check ports, Maglev tables. Every rule is here, checked before a
// change writes anything:
//   - a frontend (address, port, protocol) belongs to one service;
//   - a node port is unique per family and protocol (the IPv4 and IPv6
//     halves of a dual-stack Service share theirs, as Kubernetes gives both
//     one nodePort);
//   - a health check port is no service's node port, and is shared only by
//     services of different families (the halves of one dual-stack Service:
//     the port answers for both);
//   - a new health check port must be free on the node (the agent's hook
//     tries to bind it);
//   - no more Maglev services than the Maglev map holds.
#include <functional>
#include <map>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "lb/planner.h"
#include "common/status.h"

namespace tendril {
namespace {

std::string Named(const Service& s) { return absl::StrCat("service ", s.id, " (", s.frontend.ToString(), ")"); }

// The ports a set of services holds, claimed one service at a time.
class PortBook {
 public:
  absl::Status Claim(const Service& s) {
    if (s.HasNodePort() && s.node_port) {
      auto key = std::make_tuple(s.frontend.ip.family, s.frontend.proto, s.node_port);
      if (auto it = node_.find(key); it != node_.end())
        return absl::AlreadyExistsError(absl::StrCat("node port ", s.node_port, "/", L4ProtoName(s.frontend.proto),
                                                     " is already used by ", Named(*it->second)));
      if (auto it = health_.find(s.node_port); it != health_.end())
        return absl::AlreadyExistsError(absl::StrCat("node port ", s.node_port, " is the health check port of ",
                                                     Named(*it->second.front())));
      node_.emplace(key, &s);
      any_node_.emplace(s.node_port, &s);
    }
    if (s.health_check_port) {
      if (auto it = any_node_.find(s.health_check_port); it != any_node_.end())
        return absl::AlreadyExistsError(absl::StrCat("health check port ", s.health_check_port,
                                                     " is the node port of ", Named(*it->second)));
      for (const Service* o : health_[s.health_check_port])
        if (o->frontend.ip.family == s.frontend.ip.family)
          return absl::AlreadyExistsError(absl::StrCat("health check port ", s.health_check_port,
                                                       " is already used by ", Named(*o)));
      health_[s.health_check_port].push_back(&s);
    }
    return absl::OkStatus();
  }

 private:
  std::map<std::tuple<Family, L4Proto, uint16_t>, const Service*> node_;
  std::map<uint16_t, const Service*> any_node_;
  std::map<uint16_t, std::vector<const Service*>> health_;
};

// The lowest port of the node port range that is not `taken` and not in
// `picked` (which gets it).
absl::StatusOr<uint16_t> PickPort(const std::function<bool(uint16_t)>& taken, std::set<uint16_t>& picked,
                                  const ServiceLimits& limits, const char* what) {
  for (uint32_t p = limits.node_port_min; p <= limits.node_port_max; ++p) {
    const uint16_t port = static_cast<uint16_t>(p);
    if (!taken(port) && picked.insert(port).second) return port;
  }
  return absl::ResourceExhaustedError(absl::StrCat("no free port in the node port range ", limits.node_port_min, "-",
                                                   limits.node_port_max, " for the ", what));
}

// For a set whose own ports are all in `picked` already.
const std::function<bool(uint16_t)> kNone = [](uint16_t) { return false; };

}  // namespace

// One service against the declared set, through the indexes: port clashes
// first (they name the port), then frontends.
absl::Status ServicePlanner::CheckConflicts(const Service& s, ServiceId ignore_id) const {
  TND_RETURN_IF_ERROR(index_.CheckPorts(s, ignore_id, services_));
  for (const FrontendEntry& e : Entries(s)) {
    std::optional<ServiceId> owner = index_.FrontendOwner(e.frontend);
    if (!owner || *owner == ignore_id) continue;
    const Service* other = Get(*owner);
    return absl::AlreadyExistsError(absl::StrCat(
        "frontend ", e.frontend.ToString(), " is already service ", *owner,
        e.frontend == s.frontend || !other ? "" : absl::StrCat(" (", other->frontend.ToString(), ")")));
  }
  return absl::OkStatus();
}

absl::Status ServicePlanner::CheckConflicts(const std::map<ServiceId, Service>& all,
                                            const std::vector<IpAddr>& addresses) const {
  std::map<Frontend, ServiceId> owner;
  PortBook book;
  for (const auto& [id, s] : all) {
    TND_RETURN_IF_ERROR(book.Claim(s));
    for (const FrontendEntry& e : FrontendEntries(s, addresses)) {
      auto [it, fresh] = owner.emplace(e.frontend, id);
      if (!fresh && it->second != id)
        return absl::AlreadyExistsError(absl::StrCat("frontend ", e.frontend.ToString(), " is declared by both ",
                                                     all.at(it->second).frontend.ToString(), " and ",
                                                     s.frontend.ToString()));
    }
  }
  return absl::OkStatus();
}

// New ports are picked from those no service holds in any family or
// protocol; a port given by the user is kept (CheckConflicts judges it).
// `taken` says whether a port is held by another service.
absl::Status ServicePlanner::AllocatePortsWith(Service& s, const Service* previous,
                                               const std::function<bool(uint16_t)>& taken) const {
  if (!s.HasNodePort()) s.node_port = 0;
  if (!s.ExternalLocal()) s.health_check_port = 0;
  if (s.HasNodePort() && !s.node_port && previous && previous->HasNodePort()) s.node_port = previous->node_port;
  if (s.ExternalLocal() && !s.health_check_port && previous) s.health_check_port = previous->health_check_port;
  std::set<uint16_t> picked;
  if (s.node_port) picked.insert(s.node_port);
  if (s.HasNodePort() && !s.node_port) {
    TND_ASSIGN_OR_RETURN(s.node_port, PickPort(taken, picked, limits_, "node port"));
  }
  if (s.ExternalLocal() && !s.health_check_port) {
    TND_ASSIGN_OR_RETURN(s.health_check_port, PickPort(taken, picked, limits_, "health check port"));
  }
  return absl::OkStatus();
}

absl::Status ServicePlanner::AllocatePorts(Service& s, const Service* previous) const {
  return AllocatePortsWith(s, previous, [&](uint16_t port) { return index_.PortTaken(port, s.id); });
}

absl::Status ServicePlanner::AllocatePorts(std::map<ServiceId, Service>& next) const {
  // Kept services keep theirs; the rest are allocated from what the new set
  // leaves free.
  std::set<uint16_t> used;
  for (auto& [id, s] : next) {
    auto prev = services_.find(id);
    if (prev != services_.end() && s.HasNodePort() && !s.node_port) s.node_port = prev->second.node_port;
    if (prev != services_.end() && !s.health_check_port) s.health_check_port = prev->second.health_check_port;
    if (!s.HasNodePort()) s.node_port = 0;
    if (!s.ExternalLocal()) s.health_check_port = 0;
    if (s.node_port) used.insert(s.node_port);
    if (s.health_check_port) used.insert(s.health_check_port);
  }
  for (auto& [id, s] : next) {
    if (s.HasNodePort() && !s.node_port) {
      TND_ASSIGN_OR_RETURN(s.node_port, PickPort(kNone, used, limits_, "node port"));
    }
    if (s.ExternalLocal() && !s.health_check_port) {
      TND_ASSIGN_OR_RETURN(s.health_check_port, PickPort(kNone, used, limits_, "health check port"));
    }
  }
  return absl::OkStatus();
}

absl::Status ServicePlanner::CheckNewHealthPorts(const std::vector<const Service*>& changed) const {
  if (!health_port_check_) return absl::OkStatus();
  std::set<uint16_t> asked;
  for (const Service* s : changed)
    if (s->health_check_port && !index_.HealthPortHeld(s->health_check_port) && asked.insert(s->health_check_port).second)
      TND_RETURN_IF_ERROR(Annotate(health_port_check_(s->health_check_port),
                                   absl::StrCat("health check port ", s->health_check_port, " of service ",
                                                s->frontend.ToString())));
  return absl::OkStatus();
}

absl::Status ServicePlanner::CheckMaglevCapacity(size_t maglev_services) const {
  if (maglev_services <= limits_.max_maglev_services) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(maglev_services, " services would use Maglev; the Maglev map holds ",
                                                   limits_.max_maglev_services, " (maglev-max-services)"));
}

size_t ServicePlanner::MaglevServices(ServiceId ignore_id) const {
  const Service* s = Get(ignore_id);
  return index_.maglev_services() - (s && s->algorithm == Algorithm::kMaglev ? 1 : 0);
}

}  // namespace tendril
