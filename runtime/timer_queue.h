// TimerQueue: a worker's timers, as a binary min-heap with O(log n) cancel.
//
// Why a heap and not a hierarchical timing wheel: deadlines here are exact (no tick rounding,
// so tests with a manual clock are precise), the common timers (sleeps, per-connection
// deadlines) are few per connection and re-armed lazily by their owners rather than on every
// request, and at 10k timers a heap is 14 levels deep. A wheel would win only if every request
// inserted and cancelled a timer, which the connection layer avoids by design.
//
// Time is passed in by the caller (fire_due(now)), so the queue itself needs no clock and is
// tested with a manual one. Thread-safety: owner worker only.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace shardloop {

using Clock = std::chrono::steady_clock;
using TimePoint = Clock::time_point;

// Identifies a timer for cancel(). Ids are never reused within one queue.
using TimerId = uint64_t;

class TimerQueue {
 public:
  using Callback = absl::AnyInvocable<void()>;

  TimerId add(TimePoint deadline, Callback callback);
  // Returns false when the timer already fired or was cancelled.
  bool cancel(TimerId id);

  // Runs every callback whose deadline is <= now, earliest first (ties in insertion order).
  // Callbacks may add or cancel timers; a timer added with a deadline <= now runs in this
  // call too. Returns how many ran.
  size_t fire_due(TimePoint now);

  std::optional<TimePoint> next_deadline() const;
  size_t size() const { return heap_.size(); }
  // Drops every timer without running it (worker teardown).
  void clear();

 private:
  struct Node {
    TimePoint deadline;
    uint64_t seq = 0;  // insertion order, to break ties and to detect stale ids
    Callback callback;
    size_t heap_pos = 0;
    bool live = false;
  };
  bool before(uint32_t a, uint32_t b) const;
  void sift_up(size_t pos);
  void sift_down(size_t pos);
  void swap_at(size_t a, size_t b);
  void remove_at(size_t pos);

  std::vector<Node> nodes_;     // slab indexed by the low 32 bits of a TimerId
  std::vector<uint32_t> free_;  // free node indices
  std::vector<uint32_t> heap_;  // node indices ordered as a min-heap on (deadline, seq)
  uint64_t next_seq_ = 1;
};

}  // namespace shardloop
