// List+watch of one resource kind across all namespaces, as client-go's
// reflector does it: a paged list (limit/continue) gives a consistent
// snapshot and its resourceVersion; a watch from there with bookmarks keeps
// it current. A watch that ends is resumed from the last resourceVersion
// seen; "410 Gone" (the version is too old) or a list that fails means a
// new list, which replaces the store. Failures back off exponentially with
// jitter. The store keeps the last known state all along: whoever reads it
// keeps serving while the API server is away.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "absl/time/time.h"
#include "k8s/client.h"

namespace tendril::k8s {

struct ReflectorOptions {
  std::string path;             // "/api/v1/services", "/apis/discovery.k8s.io/v1/endpointslices"
  std::string label_selector;   // optional, as the API takes it
  std::string field_selector;   // likewise ("metadata.name=node1")
  int page_size = 500;
  int watch_timeout_s = 300;    // the server ends each watch after this (a little jitter added)
  absl::Duration idle = absl::Seconds(90);  // no byte for this long: the stream is dead
  absl::Duration min_backoff = absl::Milliseconds(200);
  absl::Duration max_backoff = absl::Seconds(30);
};

// What a reflector has done, for status and metrics.
struct ReflectorState {
  bool synced = false;          // a list has completed (the store is whole)
  bool watching = false;        // a watch stream is open now
  std::string resource_version;
  std::string last_error;       // empty while healthy
  absl::Time last_error_at;
  absl::Time last_sync;         // end of the last list, or the last event
  uint64_t lists = 0, watches = 0, events = 0, bookmarks = 0, gone = 0, failures = 0;
};

// What changed in a reflector's store: all of it (a list), or one object.
struct ReflectorChange {
  bool relist = false;
  std::string key;                 // "namespace/name" of the object
  nlohmann::json before, after;    // null where it did not exist
};

class Reflector {
 public:
  // `on_change` runs on the reflector's thread after the store changed
  // (a list, or an event); it must not block.
  Reflector(const ApiClient* client, ReflectorOptions opts, std::function<void(const ReflectorChange&)> on_change);
  ~Reflector();
  Reflector(const Reflector&) = delete;

  void Start();
  void Stop();

  // The objects, by "namespace/name", as of the last change.
  std::map<std::string, nlohmann::json> Snapshot() const;
  // One object (null when the store has none by that key).
  nlohmann::json Get(const std::string& key) const;
  ReflectorState State() const;

 private:
  void Run();
  // One list (all pages); false on failure (recorded).
  bool List();
  // One watch from the current resourceVersion; returns when it ends. True
  // when the next step is another watch, false when it is a list.
  bool Watch();
  // One watch event line; false ends the watch (and sets relist_ on 410).
  bool OnEvent(std::string_view line);
  void Fail(const std::string& what);
  void Backoff();
  std::string Query(const std::string& extra) const;

  const ApiClient* client_;
  const ReflectorOptions opts_;
  std::function<void(const ReflectorChange&)> on_change_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::mutex wait_mu_;
  std::condition_variable wait_cv_;

  mutable std::mutex mu_;
  std::map<std::string, nlohmann::json> store_;
  ReflectorState state_;
  bool relist_ = false;     // the watch ended in a way only a list repairs
  bool got_event_ = false;  // the current watch delivered something
  absl::Duration backoff_;
};

// "namespace/name" of an object (its metadata).
std::string ObjectKey(const nlohmann::json& obj);

}  // namespace tendril::k8s
