// Ids in use out of 1..max, with the lowest free one and the one above the
// highest in use found in O(log n): the planner's service and backend ids.
// Memory follows the ids below the highest in use that are free, not max.
#pragma once

#include <cstdint>
#include <set>

namespace tendril {

class IdPool {
 public:
  explicit IdPool(uint32_t max) : max_(max) {}

  bool InUse(uint32_t id) const { return id >= 1 && id < next_ && !holes_.count(id); }
  // Above every id in use (max + 1 when the highest is max).
  uint32_t Next() const { return next_; }
  // The lowest free id; 0 when none is.
  uint32_t Lowest() const {
    if (!holes_.empty()) return *holes_.begin();
    return next_ <= max_ ? next_ : 0;
  }
  size_t size() const { return next_ - 1 - holes_.size(); }

  void Take(uint32_t id) {
    if (id == 0 || id > max_ || InUse(id)) return;
    if (id < next_) {
      holes_.erase(id);
      return;
    }
    for (uint32_t i = next_; i < id; ++i) holes_.insert(i);
    next_ = id + 1;
  }
  void Release(uint32_t id) {
    if (!InUse(id)) return;
    if (id + 1 != next_) {
      holes_.insert(id);
      return;
    }
    next_ = id;
    while (next_ > 1 && holes_.count(next_ - 1)) holes_.erase(--next_);
  }
  void Clear() {
    holes_.clear();
    next_ = 1;
  }

 private:
  uint32_t max_;
  uint32_t next_ = 1;        // every id >= next_ is free
  std::set<uint32_t> holes_;  // free ids below next_
};

}  // namespace tendril
