#include "k8s/reflector.h"

#include <curl/curl.h>

#include <random>

#include "absl/strings/str_cat.h"
#include "common/log.h"

namespace tendril::k8s {

using nlohmann::json;

std::string ObjectKey(const json& obj) {
  const json& m = obj.contains("metadata") ? obj["metadata"] : json::object();
  return absl::StrCat(m.value("namespace", ""), "/", m.value("name", ""));
}

namespace {

std::string Escape(const std::string& s) {
  char* e = curl_easy_escape(nullptr, s.c_str(), static_cast<int>(s.size()));
  std::string out = e ? e : "";
  curl_free(e);
  return out;
}

// The message of a Status object (or of whatever came instead).
std::string StatusMessage(const json& j, const std::string& raw) {
  if (j.is_object() && j.contains("message") && j["message"].is_string()) return j["message"].get<std::string>();
  return raw.substr(0, 200);
}

}  // namespace

Reflector::Reflector(const ApiClient* client, ReflectorOptions opts,
                     std::function<void(const ReflectorChange&)> on_change)
    : client_(client), opts_(std::move(opts)), on_change_(std::move(on_change)), backoff_(opts_.min_backoff) {}

Reflector::~Reflector() { Stop(); }

void Reflector::Start() {
  stop_ = false;
  thread_ = std::thread([this] { Run(); });
}

void Reflector::Stop() {
  stop_ = true;
  wait_cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::map<std::string, json> Reflector::Snapshot() const {
  std::lock_guard<std::mutex> l(mu_);
  return store_;
}

json Reflector::Get(const std::string& key) const {
  std::lock_guard<std::mutex> l(mu_);
  auto it = store_.find(key);
  return it == store_.end() ? json(nullptr) : it->second;
}

ReflectorState Reflector::State() const {
  std::lock_guard<std::mutex> l(mu_);
  return state_;
}

std::string Reflector::Query(const std::string& extra) const {
  std::string q = opts_.path + "?" + extra;
  if (!opts_.label_selector.empty()) q += "&labelSelector=" + Escape(opts_.label_selector);
  if (!opts_.field_selector.empty()) q += "&fieldSelector=" + Escape(opts_.field_selector);
  return q;
}

void Reflector::Fail(const std::string& what) {
  TND_LOG_WARN("kubernetes ", opts_.path, ": ", what);
  std::lock_guard<std::mutex> l(mu_);
  state_.last_error = what;
  state_.last_error_at = absl::Now();
  state_.failures++;
  state_.watching = false;
}

void Reflector::Backoff() {
  static thread_local std::mt19937_64 rng(std::random_device{}());
  const double jitter = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
  const absl::Duration d = backoff_ * (1.0 + jitter);
  backoff_ = std::min(backoff_ * 2, opts_.max_backoff);
  std::unique_lock<std::mutex> l(wait_mu_);
  wait_cv_.wait_for(l, absl::ToChronoMilliseconds(d), [this] { return stop_.load(); });
}

bool Reflector::List() {
  std::map<std::string, json> fresh;
  std::string cont, rv;
  do {
    std::string q = Query(absl::StrCat("limit=", opts_.page_size));
    if (!cont.empty()) q += "&continue=" + Escape(cont);
    auto r = client_->Get(q, absl::Seconds(60));
    if (!r.ok()) {
      Fail(std::string(r.status().message()));
      return false;
    }
    json j = json::parse(r->body, nullptr, false);
    if (r->code == 410 && !cont.empty()) {  // the snapshot's version expired between pages: start over
      std::lock_guard<std::mutex> l(mu_);
      state_.gone++;
      fresh.clear();
      cont.clear();
      continue;
    }
    if (r->code != 200 || !j.is_object() || !j.contains("items") || !j["items"].is_array()) {
      Fail(absl::StrCat("list ", q, ": HTTP ", r->code, ": ", StatusMessage(j, r->body)));
      return false;
    }
    for (json& item : j["items"]) {
      std::string key = ObjectKey(item);  // before the move below
      fresh[key] = std::move(item);
    }
    const json& meta = j.value("metadata", json::object());
    cont = meta.value("continue", "");
    rv = meta.value("resourceVersion", "");
  } while (!cont.empty() && !stop_);
  if (stop_) return false;
  {
    std::lock_guard<std::mutex> l(mu_);
    store_ = std::move(fresh);
    state_.synced = true;
    state_.resource_version = rv;
    state_.last_sync = absl::Now();
    state_.last_error.clear();
    state_.lists++;
  }
  ReflectorChange all;
  all.relist = true;
  on_change_(all);
  return true;
}

bool Reflector::OnEvent(std::string_view line) {
  json ev = json::parse(line, nullptr, false);
  if (!ev.is_object() || !ev.contains("type") || !ev.contains("object") || !ev["object"].is_object()) {
    Fail(absl::StrCat("watch: an event that is not one: ", std::string(line.substr(0, 200))));
    relist_ = true;
    return false;
  }
  const std::string type = ev["type"].get<std::string>();
  json& obj = ev["object"];
  if (type == "ERROR") {
    const int code = obj.value("code", 0);
    if (code == 410) {
      std::lock_guard<std::mutex> l(mu_);
      state_.gone++;
    } else {
      Fail(absl::StrCat("watch: ERROR ", code, ": ", StatusMessage(obj, "")));
    }
    relist_ = true;  // the watch cannot go on from where it is
    return false;
  }
  const std::string rv = obj.value("metadata", json::object()).value("resourceVersion", "");
  const bool bookmark = type == "BOOKMARK";
  const bool change = type == "ADDED" || type == "MODIFIED" || type == "DELETED";
  got_event_ = true;
  ReflectorChange c;
  {
    std::lock_guard<std::mutex> l(mu_);
    state_.last_error.clear();  // the watch is healthy
    if (!rv.empty()) state_.resource_version = rv;
    state_.last_sync = absl::Now();
    if (bookmark) state_.bookmarks++;
    if (change) {
      c.key = ObjectKey(obj);
      auto it = store_.find(c.key);
      if (it != store_.end()) c.before = it->second;
      if (type == "DELETED") {
        if (it != store_.end()) store_.erase(it);
      } else {
        c.after = obj;
        store_[c.key] = std::move(obj);
      }
      state_.events++;
    }
  }
  if (change) on_change_(c);
  return !stop_;
}

bool Reflector::Watch() {
  std::string rv;
  {
    std::lock_guard<std::mutex> l(mu_);
    rv = state_.resource_version;
    state_.watches++;
    state_.watching = true;
  }
  static thread_local std::mt19937 rng(std::random_device{}());
  const int timeout = opts_.watch_timeout_s + std::uniform_int_distribution<int>(0, opts_.watch_timeout_s / 5)(rng);
  relist_ = false;
  got_event_ = false;
  auto r = client_->Stream(
      Query(absl::StrCat("watch=1&allowWatchBookmarks=true&resourceVersion=", Escape(rv), "&timeoutSeconds=", timeout)),
      [this](std::string_view line) { return OnEvent(line); }, [this] { return stop_.load(); }, opts_.idle);
  {
    std::lock_guard<std::mutex> l(mu_);
    state_.watching = false;
  }
  if (stop_) return true;
  if (got_event_) backoff_ = opts_.min_backoff;  // it was healthy until it ended
  if (!r.ok()) {  // the connection broke: resume from the last version seen
    Fail(absl::StrCat("watch: ", r.status().message()));
    Backoff();
    return true;
  }
  if (r->code == 410) {
    std::lock_guard<std::mutex> l(mu_);
    state_.gone++;
    return false;
  }
  if (r->code != 200) {
    Fail(absl::StrCat("watch: HTTP ", r->code, ": ", StatusMessage(json::parse(r->body, nullptr, false), r->body)));
    Backoff();
    return true;
  }
  if (relist_) {
    if (State().last_error_at > absl::Now() - absl::Seconds(1)) Backoff();
    return false;
  }
  backoff_ = opts_.min_backoff;  // a watch that ended as watches end
  return true;
}

void Reflector::Run() {
  bool need_list = true;
  while (!stop_) {
    if (need_list) {
      if (!List()) {
        Backoff();
        continue;
      }
      backoff_ = opts_.min_backoff;
      need_list = false;
    }
    need_list = !Watch();
  }
}

}  // namespace tendril::k8s
