// The agent's desired state, persisted atomically as JSON in the state dir
// and re-applied on restart.
#pragma once

#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "agent/endpoints.h"
#include "lb/service.h"
#include "network/cidr.h"

namespace tendril {

struct DesiredState {
  std::set<Cidr> prefilter;
  std::vector<Service> services;  // with their ids and backend ids
  std::vector<Endpoint> endpoints;
};

class StateStore {
 public:
  explicit StateStore(std::string state_dir) : dir_(std::move(state_dir)) {}

  std::string path() const { return dir_ + "/state.json"; }
  // A missing file is an empty state; a corrupt one is an error naming it.
  absl::StatusOr<DesiredState> Load() const;
  absl::Status Save(const DesiredState& s) const;

 private:
  std::string dir_;
};

}  // namespace tendril
