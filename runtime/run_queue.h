// RunQueue: a worker's local FIFO of runnable jobs (resumptions and callbacks).
//
// A power-of-two ring that grows by doubling and never shrinks, so a steady-state worker does no
// allocation per job. Jobs are AnyInvocable; a coroutine resumption captures one handle and
// fits in AnyInvocable's inline storage.
//
// Thread-safety: owner worker only. Cross-thread submission goes through the Inbox.
#pragma once

#include <cstddef>
#include <utility>
#include <vector>

#include "absl/functional/any_invocable.h"

namespace shardloop {

class RunQueue {
 public:
  using Job = absl::AnyInvocable<void()>;

  RunQueue() : ring_(kInitialCapacity) {}

  void push(Job job) {
    if (size_ == ring_.size()) grow();
    ring_[(head_ + size_) & (ring_.size() - 1)] = std::move(job);
    ++size_;
  }

  Job pop() {
    Job job = std::move(ring_[head_]);
    head_ = (head_ + 1) & (ring_.size() - 1);
    --size_;
    return job;
  }

  bool empty() const { return size_ == 0; }
  size_t size() const { return size_; }

  void clear() {
    while (!empty()) pop();
  }

 private:
  // Enough for a worker's typical burst of resumptions without growing.
  static constexpr size_t kInitialCapacity = 256;

  void grow() {
    std::vector<Job> bigger(ring_.size() * 2);
    for (size_t i = 0; i < size_; ++i)
      bigger[i] = std::move(ring_[(head_ + i) & (ring_.size() - 1)]);
    ring_.swap(bigger);
    head_ = 0;
  }

  std::vector<Job> ring_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace shardloop
