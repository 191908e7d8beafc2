// Wakeup: one coroutine waits until another coroutine of the same worker says "something
// changed". The waiter re-checks its condition in a loop, so a notify() with nobody waiting is
// simply dropped:
//
//   while (state.out.empty() && !state.closing) co_await state.writer_wake.wait();
//   ...                                    // elsewhere, on the same worker:
//   state.out += reply;  state.writer_wake.notify();
//
// notify() queues the waiter on the worker's run queue (it never resumes it inline), so the
// notifier finishes what it was doing first. A waiter whose frame is destroyed while it waits
// withdraws itself. At most one coroutine may wait at a time.
//
// Thread-safety: owner worker only; the waiter and every notifier run on that worker.
#pragma once

#include <cassert>
#include <coroutine>
#include <utility>

#include "runtime/worker.h"

namespace shardloop::examples {

class Wakeup {
 public:
  class Awaiter {
   public:
    explicit Awaiter(Wakeup* w) : w_(w) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (h_ && w_->waiter_ == h_) w_->waiter_ = {};  // destroyed while waiting
    }
    bool await_ready() const { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      assert(!w_->waiter_ && "Wakeup: one waiter at a time");
      h_ = h;
      w_->waiter_ = h;
    }
    void await_resume() const {}

   private:
    Wakeup* w_;
    std::coroutine_handle<> h_;
  };

  Wakeup() = default;
  Wakeup(const Wakeup&) = delete;
  Wakeup& operator=(const Wakeup&) = delete;

  Awaiter wait() { return Awaiter(this); }
  void notify() {
    if (waiter_) Worker::current()->schedule(std::exchange(waiter_, {}));
  }
  bool has_waiter() const { return static_cast<bool>(waiter_); }

 private:
  std::coroutine_handle<> waiter_;
};

}  // namespace shardloop::examples
