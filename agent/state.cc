#include "agent/state.h"

#include <sqlite3.h>
#include <sys/stat.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "agent/json_tape.h"
#include "agent/state_json.h"
#include "common/file_util.h"
#include "common/json_fields.h"
#include "common/status.h"
#include "lb/service_json.h"
#include "lb/service_json_read.h"

namespace tendril {
namespace {

constexpr const char* kSchema =
    "CREATE TABLE IF NOT EXISTS services (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS endpoints (id INTEGER PRIMARY KEY, doc TEXT NOT NULL);"
    "CREATE TABLE IF NOT EXISTS prefilter (cidr TEXT PRIMARY KEY);";

// Finalizes a prepared statement however the scope is left.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

}  // namespace

bool StateChange::empty() const {
  return put_services.empty() && drop_services.empty() && put_endpoints.empty() && drop_endpoints.empty() &&
         !all_endpoints && !prefilter;
}

nlohmann::json StoredEndpointJson(const Endpoint& e) {
  nlohmann::json j = EndpointToJson(e);
  for (const char* k : {"ifindex", "mac", "node_mac", "state", "adopted"}) j.erase(k);
  return j;
}

absl::Status StateStore::Error(const std::string& doing) const {
  int code = db_ ? sqlite3_errcode(db_) : SQLITE_CANTOPEN;
  std::string msg = absl::StrCat("state store ", path_, ": ", doing, ": ", db_ ? sqlite3_errmsg(db_) : "not open");
  if (code == SQLITE_FULL) return absl::ResourceExhaustedError(msg);
  if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB) return absl::DataLossError(msg);
  return absl::UnavailableError(msg);
}

absl::Status StateStore::Exec(const char* sql) {
  if (sqlite3_exec(db_, sql, nullptr, nullptr, nullptr) != SQLITE_OK) return Error(sql);
  return absl::OkStatus();
}

absl::StatusOr<StateStore> StateStore::Open(const std::string& dir, const std::string& vfs) {
  TND_RETURN_IF_ERROR(MakeDirs(dir, 0700));
  StateStore s;
  s.path_ = dir + "/state.db";
  if (sqlite3_open_v2(s.path_.c_str(), &s.db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                      vfs.empty() ? nullptr : vfs.c_str()) != SQLITE_OK)
    return s.Error("open");
  ::chmod(s.path_.c_str(), 0600);
  // WAL with synchronous FULL: a commit is on disk when it returns.
  TND_RETURN_IF_ERROR(s.Exec("PRAGMA journal_mode=WAL"));
  TND_RETURN_IF_ERROR(s.Exec("PRAGMA synchronous=FULL"));
  TND_RETURN_IF_ERROR(s.Exec(kSchema));
  const std::pair<const char*, sqlite3_stmt**> stmts[] = {
      {"INSERT OR REPLACE INTO services (id, doc) VALUES (?, ?)", &s.put_service_},
      {"DELETE FROM services WHERE id = ?", &s.drop_service_},
      {"INSERT OR REPLACE INTO endpoints (id, doc) VALUES (?, ?)", &s.put_endpoint_},
      {"DELETE FROM endpoints WHERE id = ?", &s.drop_endpoint_}};
  for (const auto& [sql, out] : stmts)
    if (sqlite3_prepare_v2(s.db_, sql, -1, out, nullptr) != SQLITE_OK) return s.Error(sql);
  TND_RETURN_IF_ERROR(s.Migrate(dir));
  return s;
}

// A state.json beside the database was written by an earlier version (or
// one that ran after this database was last written): it is the newest
// declared state. It replaces the database's content in one transaction and
// is then renamed state.json.migrated; a crash in between imports it again.
absl::Status StateStore::Migrate(const std::string& dir) {
  const std::string json = dir + "/state.json";
  struct stat st;
  if (::stat(json.c_str(), &st) != 0) return absl::OkStatus();
  TND_ASSIGN_OR_RETURN(std::string text, ReadFile(json));
  TND_ASSIGN_OR_RETURN(DesiredState old, ParseStateJson(text, json));
  TND_ASSIGN_OR_RETURN(DesiredState now, Load());
  StateChange c;
  for (const Service& s : now.services) c.drop_services.push_back(s.id);
  c.put_services = std::move(old.services);
  c.put_endpoints = std::move(old.endpoints);
  c.all_endpoints = true;
  c.prefilter = std::move(old.prefilter);
  TND_RETURN_IF_ERROR(Annotate(Commit(c), absl::StrCat("migrating ", json)));
  if (std::rename(json.c_str(), (json + ".migrated").c_str()) != 0)
    return ErrnoError(errno, absl::StrCat("rename ", json, " after migrating it"));
  return absl::OkStatus();
}

namespace {

absl::Status Step(sqlite3_stmt* st) {
  int rc = sqlite3_step(st);
  sqlite3_reset(st);
  sqlite3_clear_bindings(st);
  return rc == SQLITE_DONE ? absl::OkStatus() : absl::UnknownError("step");
}

absl::Status Put(sqlite3_stmt* st, int64_t id, const std::string& doc) {
  sqlite3_bind_int64(st, 1, id);
  sqlite3_bind_text(st, 2, doc.data(), static_cast<int>(doc.size()), SQLITE_TRANSIENT);
  return Step(st);
}

absl::Status Drop(sqlite3_stmt* st, int64_t id) {
  sqlite3_bind_int64(st, 1, id);
  return Step(st);
}

}  // namespace

// Inside the transaction: drops first (a row may be dropped and put again).
absl::Status StateStore::Write(const StateChange& c) {
  auto check = [&](absl::Status st, const char* what) { return st.ok() ? st : Error(what); };
  for (ServiceId id : c.drop_services) TND_RETURN_IF_ERROR(check(Drop(drop_service_, id), "delete a service"));
  for (const Service& s : c.put_services)
    TND_RETURN_IF_ERROR(check(Put(put_service_, s.id, ServiceToJson(s).dump()), "write a service"));
  if (c.all_endpoints) TND_RETURN_IF_ERROR(Exec("DELETE FROM endpoints"));
  for (uint32_t id : c.drop_endpoints) TND_RETURN_IF_ERROR(check(Drop(drop_endpoint_, id), "delete an endpoint"));
  for (const Endpoint& e : c.put_endpoints)
    TND_RETURN_IF_ERROR(check(Put(put_endpoint_, e.id, StoredEndpointJson(e).dump()), "write an endpoint"));
  if (c.prefilter) {
    TND_RETURN_IF_ERROR(Exec("DELETE FROM prefilter"));
    Stmt ins;
    if (sqlite3_prepare_v2(db_, "INSERT INTO prefilter (cidr) VALUES (?)", -1, &ins.s, nullptr) != SQLITE_OK)
      return Error("prepare the prefilter insert");
    for (const Cidr& cidr : *c.prefilter) {
      std::string text = cidr.ToString();
      sqlite3_bind_text(ins.s, 1, text.data(), static_cast<int>(text.size()), SQLITE_TRANSIENT);
      TND_RETURN_IF_ERROR(check(Step(ins.s), "write a prefilter CIDR"));
    }
  }
  return absl::OkStatus();
}

absl::Status StateStore::Commit(const StateChange& c) {
  if (c.empty()) return absl::OkStatus();
  TND_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status st = Write(c);
  if (st.ok()) st = Exec("COMMIT");
  if (!st.ok()) {
    (void)sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
    return st;
  }
  commits_++;
  return absl::OkStatus();
}

absl::StatusOr<DesiredState> StateStore::Load() const {
  DesiredState s;
  auto rows = [&](const char* table, const char* sql, auto each) -> absl::Status {
    Stmt q;
    if (sqlite3_prepare_v2(db_, sql, -1, &q.s, nullptr) != SQLITE_OK) return Error(sql);
    int rc;
    while ((rc = sqlite3_step(q.s)) == SQLITE_ROW) {
      int64_t id = sqlite3_column_int64(q.s, 0);
      const unsigned char* text = sqlite3_column_text(q.s, 1);
      std::string doc = text ? reinterpret_cast<const char*>(text) : "";
      TND_RETURN_IF_ERROR(Annotate(each(id, doc), absl::StrCat("state store ", path_, ": ", table, " row ", id)));
    }
    return rc == SQLITE_DONE ? absl::OkStatus() : Error(sql);
  };
  // Rows of documents, each naming its own id; `decode` reads one.
  auto docs = [&](const char* table, const char* sql, auto decode, auto& out) {
    return rows(table, sql, [&](int64_t id, const std::string& doc) -> absl::Status {
      TND_ASSIGN_OR_RETURN(auto v, decode(doc));
      if (static_cast<int64_t>(v.id) != id) return absl::DataLossError(absl::StrCat("holds id ", v.id));
      out.push_back(std::move(v));
      return absl::OkStatus();
    });
  };
  auto dom = [](const std::string& doc) -> absl::StatusOr<nlohmann::json> {
    auto j = jsonf::Parse(doc);
    if (!j.ok()) return absl::DataLossError(j.status().message());
    return j;
  };
  // Services may be 100,000 rows: read from simdjson's tape, one parser for all.
  simdjson::dom::parser parser;
  auto service = [&](const std::string& doc) -> absl::StatusOr<Service> {
    auto e = jsonf::ParseTape(parser, doc);
    if (e.ok()) return ServiceFromJsonValue(*e);
    TND_ASSIGN_OR_RETURN(nlohmann::json j, dom(doc));  // the error says where it broke
    return ServiceFromJson(j);
  };
  auto endpoint = [&](const std::string& doc) -> absl::StatusOr<Endpoint> {
    TND_ASSIGN_OR_RETURN(nlohmann::json j, dom(doc));
    return EndpointFromJson(j);
  };
  TND_RETURN_IF_ERROR(docs("services", "SELECT id, doc FROM services ORDER BY id", service, s.services));
  TND_RETURN_IF_ERROR(docs("endpoints", "SELECT id, doc FROM endpoints ORDER BY id", endpoint, s.endpoints));
  TND_RETURN_IF_ERROR(rows("prefilter", "SELECT rowid, cidr FROM prefilter",
                           [&](int64_t, const std::string& text) -> absl::Status {
                             TND_ASSIGN_OR_RETURN(Cidr c, ParseCidr(text));
                             s.prefilter.insert(c);
                             return absl::OkStatus();
                           }));
  return s;
}

void StateStore::Close() {
  for (sqlite3_stmt** st : {&put_service_, &drop_service_, &put_endpoint_, &drop_endpoint_}) {
    sqlite3_finalize(*st);
    *st = nullptr;
  }
  if (db_) sqlite3_close(db_);
  db_ = nullptr;
}

StateStore::~StateStore() { Close(); }

StateStore::StateStore(StateStore&& o) noexcept { *this = std::move(o); }

StateStore& StateStore::operator=(StateStore&& o) noexcept {
  if (this == &o) return *this;
  Close();
  path_ = std::move(o.path_);
  commits_ = o.commits_;
  db_ = std::exchange(o.db_, nullptr);
  put_service_ = std::exchange(o.put_service_, nullptr);
  drop_service_ = std::exchange(o.drop_service_, nullptr);
  put_endpoint_ = std::exchange(o.put_endpoint_, nullptr);
  drop_endpoint_ = std::exchange(o.drop_endpoint_, nullptr);
  return *this;
}

}  // namespace tendril
