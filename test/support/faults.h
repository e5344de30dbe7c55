// Fault injection at the agent's two boundaries (agent/agent.h AgentSeams):
// a MapOps whose N-th map write fails, and an SQLite VFS (a wrapper of the
// default one: the real disk underneath) whose N-th write or sync fails.
// Test tree only: the agent knows nothing of them.
#pragma once

#include <atomic>
#include <cerrno>
#include <cstdint>

#include "maps/map_ops.h"

namespace tendril::test {

// Counts every map write (update, delete, batch update, create) and fails
// the one armed; the others reach the kernel.
class FaultyMapOps : public MapOps {
 public:
  // The n-th write from now fails with `err` (1: the next); 0 fails none.
  void FailNth(long n, int err = ENOMEM) {
    count_ = 0;
    fired_ = false;
    fail_at_ = n;
    err_ = err;
  }
  // No more faults; fired() still tells whether the armed one fired.
  void Disarm() { fail_at_ = 0; }
  long count() const { return count_; }
  bool fired() const { return fired_; }

  int Update(int fd, const void* key, const void* value, uint64_t flags) override;
  int Delete(int fd, const void* key) override;
  int UpdateBatch(int fd, const void* keys, const void* values, uint32_t* count) override;
  int Create(bpf_map_type type, const char* name, uint32_t key_size, uint32_t value_size, uint32_t max_entries,
             const bpf_map_create_opts* opts) override;

 private:
  bool Hit();
  std::atomic<long> count_{0};
  std::atomic<bool> fired_{false};
  long fail_at_ = 0;
  int err_ = ENOMEM;
};

// The VFS "tnd_faulty", registered on first use (not as the default).
class FaultyVfs {
 public:
  enum class Op { kWrite, kSync };
  static const char* Name();
  // The n-th `op` from now fails with an I/O error (1: the next); 0: none.
  static void FailNth(Op op, long n);
  // No more faults; Fired() still tells whether the armed one fired.
  static void Disarm();
  static long Count(Op op);
  static bool Fired();
};

}  // namespace tendril::test
