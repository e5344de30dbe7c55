#include "agent/k8s_watch.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>

#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status.h"

namespace tendril {

using nlohmann::json;

absl::StatusOr<std::unique_ptr<K8sWatch>> K8sWatch::Open(const AgentConfig& cfg) {
  absl::StatusOr<k8s::ClusterConfig> cc = cfg.k8s_in_cluster ? k8s::InClusterConfig()
                                                             : k8s::LoadKubeconfig(cfg.k8s_kubeconfig, cfg.k8s_context);
  if (!cc.ok()) return Annotate(cc.status(), "kubernetes");
  std::unique_ptr<K8sWatch> w(new K8sWatch());
  TND_ASSIGN_OR_RETURN(w->node_name_, k8s::NodeName(cfg.k8s_node_name));
  TND_ASSIGN_OR_RETURN(w->client_, k8s::ApiClient::Create(*cc));
  w->event_fd_ = UniqueFd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  if (!w->event_fd_.valid()) return ErrnoError(errno, "eventfd for kubernetes changes");
  k8s::ReflectorOptions so, eo, no;
  so.path = "/api/v1/services";
  eo.path = "/apis/discovery.k8s.io/v1/endpointslices";
  // kube-proxy's own filter: Services another proxy serves are not watched.
  so.label_selector = "!service.kubernetes.io/service-proxy-name";
  // This node's Node object alone: its deletion and the autoscaler's taint
  // make /healthz answer 503.
  no.path = "/api/v1/nodes";
  no.field_selector = "metadata.name=" + w->node_name_;
  K8sWatch* self = w.get();
  w->services_ = std::make_unique<k8s::Reflector>(w->client_.get(), so,
                                                  [self](const k8s::ReflectorChange& c) { self->OnServiceChange(c); });
  w->slices_ = std::make_unique<k8s::Reflector>(w->client_.get(), eo,
                                                [self](const k8s::ReflectorChange& c) { self->OnSliceChange(c); });
  w->node_ = std::make_unique<k8s::Reflector>(w->client_.get(), no,
                                              [self](const k8s::ReflectorChange&) { self->OnNodeChange(); });
  w->services_->Start();
  w->slices_->Start();
  w->node_->Start();
  TND_LOG_INFO("kubernetes: following Services and EndpointSlices of ", cc->server, " (", cc->source, "), node ",
               w->node_name_);
  return w;
}

K8sWatch::~K8sWatch() {
  if (services_) services_->Stop();
  if (slices_) slices_->Stop();
  if (node_) node_->Stop();
}

void K8sWatch::Notify() {
  int64_t zero = 0;
  first_change_ns_.compare_exchange_strong(zero, absl::ToUnixNanos(absl::Now()));
  uint64_t one = 1;
  (void)!::write(event_fd_.get(), &one, sizeof(one));
}

void K8sWatch::OnServiceChange(const k8s::ReflectorChange& c) {
  {
    std::lock_guard<std::mutex> l(dirty_mu_);
    if (c.relist) dirty_.full = true;
    else dirty_.services.insert(c.key);
  }
  Notify();
}

// Keeps the slices-by-Service index; a slice's change dirties the Service
// it belonged to and the one it belongs to now.
void K8sWatch::OnSliceChange(const k8s::ReflectorChange& c) {
  if (c.relist) {
    std::map<std::string, std::set<std::string>> index;
    for (const auto& [key, s] : slices_->Snapshot())
      if (std::string svc = k8s::SliceService(s); !svc.empty()) index[svc].insert(key);
    std::lock_guard<std::mutex> l(dirty_mu_);
    slices_of_ = std::move(index);
    dirty_.full = true;
  } else {
    const std::string before = c.before.is_null() ? "" : k8s::SliceService(c.before);
    const std::string after = c.after.is_null() ? "" : k8s::SliceService(c.after);
    std::lock_guard<std::mutex> l(dirty_mu_);
    if (!before.empty()) {
      auto& set = slices_of_[before];
      set.erase(c.key);
      if (set.empty()) slices_of_.erase(before);
      dirty_.services.insert(before);
    }
    if (!after.empty()) {
      slices_of_[after].insert(c.key);
      dirty_.services.insert(after);
    }
  }
  Notify();
}

void K8sWatch::OnNodeChange() {
  auto nodes = node_->Snapshot();
  const json* node = nullptr;
  for (const auto& [key, obj] : nodes)
    if (obj.value("metadata", json::object()).value("name", "") == node_name_) node = &obj;
  std::lock_guard<std::mutex> l(node_mu_);
  if (!node && !node_seen_) return;  // not known yet: eligible, as kube-proxy starts
  node_seen_ = true;
  k8s::NodeEligibility e = k8s::EligibilityOf(node ? *node : json(nullptr));
  if (e.eligible != node_eligibility_.eligible)
    TND_LOG_INFO("kubernetes: node ", node_name_, e.eligible ? " is eligible again" : " is not eligible: ", e.reason);
  node_eligibility_ = std::move(e);
}

k8s::NodeEligibility K8sWatch::Eligibility() const {
  std::lock_guard<std::mutex> l(node_mu_);
  return node_eligibility_;
}

K8sWatch::Dirty K8sWatch::TakeDirty() {
  std::lock_guard<std::mutex> l(dirty_mu_);
  Dirty d = std::move(dirty_);
  dirty_ = Dirty{};
  return d;
}

std::map<std::string, json> K8sWatch::ServiceOnly(const std::string& key) const {
  std::map<std::string, json> out;
  if (json s = services_->Get(key); !s.is_null()) out[key] = std::move(s);
  return out;
}

std::map<std::string, json> K8sWatch::SlicesOf(const std::string& key) const {
  std::set<std::string> keys;
  {
    std::lock_guard<std::mutex> l(dirty_mu_);
    auto it = slices_of_.find(key);
    if (it != slices_of_.end()) keys = it->second;
  }
  std::map<std::string, json> out;
  for (const std::string& k : keys)
    if (json s = slices_->Get(k); !s.is_null()) out[k] = std::move(s);
  return out;
}

size_t K8sWatch::SkippedCount() const {
  size_t n = 0;
  for (const auto& [svc, objs] : skipped_) n += objs.size();
  return n;
}

bool K8sWatch::Drain() {
  uint64_t n = 0;
  bool any = ::read(event_fd_.get(), &n, sizeof(n)) == static_cast<ssize_t>(sizeof(n)) && n > 0;
  int64_t first = first_change_ns_.exchange(0);
  if (first) pending_since_ = absl::FromUnixNanos(first);
  return any || first;
}

bool K8sWatch::Synced() const { return services_->State().synced && slices_->State().synced; }

void K8sWatch::SyncDone(SyncResult r, bool full, const std::set<std::string>& keys) {
  syncs_++;
  full_syncs_ += full ? 1 : 0;
  needs_retry_ = !r.ok;
  if (!r.ok) {
    failed_syncs_++;
    TND_LOG_WARN("kubernetes: sync failed, the datapath keeps the previous services: ", r.error);
    std::lock_guard<std::mutex> l(dirty_mu_);
    dirty_.full = true;  // the next try maps the whole cluster
  } else {
    last_ok_ = absl::Now();
    pending_since_ = absl::InfinitePast();
    sync_seconds_.Observe(absl::ToDoubleSeconds(r.took));
    if (r.since_change > absl::ZeroDuration()) programming_seconds_.Observe(absl::ToDoubleSeconds(r.since_change));
  }
  // Each object skipped is logged once per reason (later syncs would repeat
  // it for every change elsewhere).
  std::map<std::string, std::map<std::string, std::string>> now;
  for (const k8s::Skipped& s : r.skipped) {
    std::string& why = now[s.service][s.object];
    why += (why.empty() ? "" : "; ") + s.reason;
  }
  for (const auto& [svc, objs] : now)
    for (const auto& [obj, why] : objs) {
      auto it = skipped_.find(svc);
      if (it == skipped_.end() || !it->second.count(obj) || it->second.at(obj) != why)
        TND_LOG_WARN("kubernetes: ", obj, " skipped: ", why);
    }
  if (full) {
    skipped_ = std::move(now);
  } else {
    for (const std::string& k : keys) skipped_.erase(k);
    for (auto& [svc, objs] : now) skipped_[svc] = std::move(objs);
  }
  last_ = std::move(r);
}

namespace {

json ReflectorJson(const k8s::ReflectorState& s) {
  json j = {{"synced", s.synced},
            {"watching", s.watching},
            {"resource_version", s.resource_version},
            {"lists", s.lists},
            {"watches", s.watches},
            {"events", s.events},
            {"bookmarks", s.bookmarks},
            {"gone", s.gone},
            {"failures", s.failures}};
  if (!s.last_error.empty()) {
    j["last_error"] = s.last_error;
    j["last_error_at"] = absl::FormatTime(absl::RFC3339_sec, s.last_error_at, absl::UTCTimeZone());
  }
  if (s.last_sync != absl::Time()) j["last_sync"] = absl::FormatTime(absl::RFC3339_sec, s.last_sync, absl::UTCTimeZone());
  return j;
}

}  // namespace

json K8sWatch::Status() const {
  const k8s::ReflectorState sv = services_->State(), sl = slices_->State();
  const bool connected = sv.watching && sl.watching && sv.last_error.empty() && sl.last_error.empty();
  json j = {{"server", client_->config().server},
            {"source", client_->config().source},
            {"state", !Synced() ? "not-synced" : connected ? "connected" : "unreachable-serving-last-known"},
            {"services", ReflectorJson(sv)},
            {"endpointslices", ReflectorJson(sl)},
            {"syncs", syncs_},
            {"failed_syncs", failed_syncs_},
            {"full_syncs", full_syncs_},
            {"declared_services", last_.services},
            {"ignored_services", last_.ignored},
            {"skipped_objects", SkippedCount()}};
  if (last_ok_ != absl::InfinitePast())
    j["last_sync"] = absl::FormatTime(absl::RFC3339_sec, last_ok_, absl::UTCTimeZone());
  if (!last_.ok && syncs_) j["last_sync_error"] = last_.error;
  json sk = json::array();
  for (const auto& [svc, objs] : skipped_)
    for (const auto& [obj, why] : objs)
      if (sk.size() < 20) sk.push_back({{"object", obj}, {"reason", why}});
  j["skipped"] = std::move(sk);
  const k8s::NodeEligibility e = Eligibility();
  j["node"] = {{"name", node_name_}, {"eligible", e.eligible}, {"watch", ReflectorJson(node_->State())}};
  if (!e.reason.empty()) j["node"]["reason"] = e.reason;
  return j;
}

absl::Time K8sWatch::OldestPending() const {
  if (last_ok_ == absl::InfinitePast()) return opened_at_;
  const int64_t queued = first_change_ns_.load();
  if (pending_since_ != absl::InfinitePast()) return pending_since_;
  return queued ? absl::FromUnixNanos(queued) : absl::InfinitePast();
}

void K8sWatch::WriteMetrics(PromText& t) const {
  sync_seconds_.Write(t, "kubeproxy_sync_proxy_rules_duration_seconds",
                      "Time a sync of the cluster's services into the maps took (kube-proxy's name)");
  programming_seconds_.Write(t, "kubeproxy_network_programming_duration_seconds",
                             "From a Service or EndpointSlice change reaching the agent to its maps written");
  t.Family("kubeproxy_sync_proxy_rules_last_timestamp_seconds", "gauge", "When the last sync succeeded");
  t.Sample("kubeproxy_sync_proxy_rules_last_timestamp_seconds",
           last_ok_ == absl::InfinitePast() ? 0 : absl::ToDoubleSeconds(last_ok_ - absl::UnixEpoch()));
  const std::pair<const char*, k8s::ReflectorState> rs[] = {
      {"services", services_->State()}, {"endpointslices", slices_->State()}, {"nodes", node_->State()}};
  auto each = [&](const char* name, const char* type, const char* help, auto value) {
    t.Family(name, type, help);
    for (const auto& [res, st] : rs) t.Sample(name, {{"resource", res}}, static_cast<double>(value(st)));
  };
  each("tendril_k8s_watch_up", "gauge", "1 while the watch streams without error",
       [](const k8s::ReflectorState& s) { return s.watching && s.last_error.empty() ? 1 : 0; });
  each("tendril_k8s_synced", "gauge", "1 once the resource has been listed whole",
       [](const k8s::ReflectorState& s) { return s.synced ? 1 : 0; });
  each("tendril_k8s_lists_total", "counter", "Lists (the first, and every relist)",
       [](const k8s::ReflectorState& s) { return s.lists; });
  each("tendril_k8s_watch_events_total", "counter", "Watch events applied to the store",
       [](const k8s::ReflectorState& s) { return s.events; });
  each("tendril_k8s_watch_gone_total", "counter", "410 Gone answers (a relist followed)",
       [](const k8s::ReflectorState& s) { return s.gone; });
  each("tendril_k8s_watch_failures_total", "counter", "Failed lists and broken watches",
       [](const k8s::ReflectorState& s) { return s.failures; });
  t.Family("tendril_k8s_syncs_total", "counter", "Syncs of the cluster's services, by result");
  t.Sample("tendril_k8s_syncs_total", {{"result", "ok"}}, static_cast<double>(syncs_ - failed_syncs_));
  t.Sample("tendril_k8s_syncs_total", {{"result", "error"}}, static_cast<double>(failed_syncs_));
  t.Family("tendril_k8s_full_syncs_total", "counter", "Syncs that mapped the whole cluster (after a list or a failure)");
  t.Sample("tendril_k8s_full_syncs_total", static_cast<double>(full_syncs_));
  t.Family("tendril_k8s_node_eligible", "gauge", "1 while this node's Node object lets load balancers pick it");
  t.Sample("tendril_k8s_node_eligible", {{"node", node_name_}}, Eligibility().eligible ? 1 : 0);
  t.Family("tendril_k8s_skipped_objects", "gauge", "Services and EndpointSlices the last sync could not represent");
  t.Sample("tendril_k8s_skipped_objects", static_cast<double>(SkippedCount()));
}

}  // namespace tendril
