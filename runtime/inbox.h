// Inbox: messages from any thread to one worker (multi-producer, single-consumer).
//
// A mutex-protected vector that the consumer swaps out whole, so the consumer takes the lock
// once per batch and producers hold it for one push. Wakeup is the worker's business (it
// writes the poller's eventfd only when it is parked); the inbox only exposes a `maybe_nonempty`
// flag that the park protocol reads.
//
// Thread-safety: push() any thread; take_all() owner only. `pending_` is seq_cst because it
// takes part in the Dekker-style park handshake in worker.cc (store here, load of `parked`
// there; store of `parked` there, load here): with seq_cst on all four, at least one side sees
// the other's store, so a message can never sit in the inbox of a parked worker unnoticed.
#pragma once

#include <atomic>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "runtime/mutex.h"

namespace shardloop {

class Inbox {
 public:
  using Message = absl::AnyInvocable<void()>;

  void push(Message message) {
    {
      MutexLock lock(&mu_);
      messages_.push_back(std::move(message));
    }
    pending_.store(true, std::memory_order_seq_cst);
  }

  // Moves every queued message into `out` (which must be empty).
  void take_all(std::vector<Message>& out) {
    // Clear the flag before taking: a push that races with us either lands in this batch or
    // sets the flag again after we cleared it.
    pending_.store(false, std::memory_order_seq_cst);
    MutexLock lock(&mu_);
    out.swap(messages_);
  }

  bool maybe_nonempty() const { return pending_.load(std::memory_order_seq_cst); }

 private:
  Mutex mu_;
  std::vector<Message> messages_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> pending_{false};
};

}  // namespace shardloop
