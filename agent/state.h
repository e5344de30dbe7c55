// The agent's desired state (services, endpoints, prefilter CIDRs), kept in
// an SQLite database in the state dir (state.db, WAL mode, synchronous
// FULL): each change is one transaction that writes only the rows it
// touches, durable when Commit returns, so its cost does not grow with the
// number of services, and after a crash (kill -9 at any moment) a change is
// either wholly there or not at all. A state.json of an earlier version is
// migrated into it on first open.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "absl/status/statusor.h"
#include "agent/endpoints.h"
#include "lb/service.h"
#include "network/cidr.h"

struct sqlite3;
struct sqlite3_stmt;

namespace tendril {

struct DesiredState {
  std::set<Cidr> prefilter;
  std::vector<Service> services;  // with their ids and backend ids
  std::vector<Endpoint> endpoints;
};

// What one change does to the stored state.
struct StateChange {
  std::vector<Service> put_services;  // written whole, by id
  std::vector<ServiceId> drop_services;
  std::vector<Endpoint> put_endpoints;
  std::vector<uint32_t> drop_endpoints;
  bool all_endpoints = false;  // put_endpoints is the whole set (others go)
  std::optional<std::set<Cidr>> prefilter;  // the whole list (it is small)
  bool empty() const;
};

// An endpoint as stored: what was declared, without the facts read from the
// kernel again at start (ifindex, MACs, state).
nlohmann::json StoredEndpointJson(const Endpoint& e);

class StateStore {
 public:
  // Opens DIR/state.db, creating it (and DIR) if needed; through the SQLite
  // VFS named `vfs` (registered by the caller) when not empty.
  static absl::StatusOr<StateStore> Open(const std::string& dir, const std::string& vfs = "");
  StateStore(StateStore&&) noexcept;
  StateStore& operator=(StateStore&&) noexcept;
  ~StateStore();

  const std::string& path() const { return path_; }
  // Corrupt rows are an error naming the database, the table and the row.
  absl::StatusOr<DesiredState> Load() const;
  // One transaction: all of `c`, durably, or nothing (the error says why:
  // a full disk, a read-only directory, ...).
  absl::Status Commit(const StateChange& c);
  // How many changes were committed since open (status, tests).
  uint64_t commits() const { return commits_; }

 private:
  StateStore() = default;
  absl::Status Exec(const char* sql);
  absl::Status Error(const std::string& doing) const;
  absl::Status Migrate(const std::string& dir);
  absl::Status Write(const StateChange& c);
  void Close();

  std::string path_;
  sqlite3* db_ = nullptr;
  // Prepared statements: put and drop per table.
  sqlite3_stmt* put_service_ = nullptr;
  sqlite3_stmt* drop_service_ = nullptr;
  sqlite3_stmt* put_endpoint_ = nullptr;
  sqlite3_stmt* drop_endpoint_ = nullptr;
  uint64_t commits_ = 0;
};

}  // namespace tendril
