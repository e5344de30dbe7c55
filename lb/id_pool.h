// Ids in use out of 1..max, with the lowest free one and the one above the
// highest in use found in O(log n): the planner's service and backend ids.
// The free ids below the highest in use are kept as disjoint ranges, so
// memory follows how fragmented the ids are, not how large they are (taking
// id 1,000,000 first costs one range, not a million entries).
#pragma once

#include <cstdint>
#include <iterator>
#include <map>

namespace tendril {

class IdPool {
 public:
  explicit IdPool(uint32_t max) : max_(max) {}

  uint32_t max() const { return max_; }
  bool InUse(uint32_t id) const { return id >= 1 && id < next_ && !Hole(id); }
  // Above every id in use (max + 1 when the highest is max).
  uint32_t Next() const { return next_; }
  // The lowest free id; 0 when none is.
  uint32_t Lowest() const {
    if (!holes_.empty()) return holes_.begin()->first;
    return next_ <= max_ ? next_ : 0;
  }
  size_t size() const { return next_ - 1 - free_below_; }

  void Take(uint32_t id) {
    if (id == 0 || id > max_ || InUse(id)) return;
    if (id >= next_) {
      if (id > next_) AddHole(next_, id - 1);
      next_ = id + 1;
      return;
    }
    auto it = std::prev(holes_.upper_bound(id));  // the range holding id
    const uint32_t lo = it->first, hi = it->second;
    holes_.erase(it);
    free_below_ -= 1;
    if (lo < id) holes_[lo] = id - 1;
    if (id < hi) holes_[id + 1] = hi;
  }
  void Release(uint32_t id) {
    if (!InUse(id)) return;
    if (id + 1 == next_) {
      next_ = id;
      // The range just below the new top joins the free space above.
      if (!holes_.empty() && std::prev(holes_.end())->second + 1 == next_) {
        auto last = std::prev(holes_.end());
        free_below_ -= last->second - last->first + 1;
        next_ = last->first;
        holes_.erase(last);
      }
      return;
    }
    AddHole(id, id);
  }
  void Clear() {
    holes_.clear();
    free_below_ = 0;
    next_ = 1;
  }

 private:
  bool Hole(uint32_t id) const {
    auto it = holes_.upper_bound(id);
    return it != holes_.begin() && std::prev(it)->second >= id;
  }
  // Adds the free range lo..hi (not free before), merged with its neighbours.
  void AddHole(uint32_t lo, uint32_t hi) {
    free_below_ += hi - lo + 1;
    auto next = holes_.upper_bound(lo);
    if (next != holes_.end() && next->first == hi + 1) {
      hi = next->second;
      next = holes_.erase(next);
    }
    if (next != holes_.begin()) {
      auto prev = std::prev(next);
      if (prev->second + 1 == lo) {
        prev->second = hi;
        return;
      }
    }
    holes_[lo] = hi;
  }

  uint32_t max_;
  uint32_t next_ = 1;                   // every id >= next_ is free
  std::map<uint32_t, uint32_t> holes_;  // free ranges below next_: first -> last
  size_t free_below_ = 0;               // ids in those ranges
};

}  // namespace tendril
