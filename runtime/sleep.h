// Time awaitables: co_await sleep_for(d), sleep_until(t), yield_now().
//
// Each suspends the calling coroutine and resumes it on the same worker (the timer lives in that
// worker's TimerQueue). Destroying a sleeping coroutine cancels its timer.
// Thread-safety: call on a worker, from a coroutine that worker owns.
#pragma once

#include <cassert>
#include <coroutine>

#include "runtime/timer_queue.h"
#include "runtime/worker.h"

namespace shardloop {

class SleepAwaiter {
 public:
  explicit SleepAwaiter(TimePoint deadline) : deadline_(deadline) {}
  SleepAwaiter(const SleepAwaiter&) = delete;
  SleepAwaiter& operator=(const SleepAwaiter&) = delete;
  ~SleepAwaiter() {
    if (worker_ != nullptr) worker_->cancel_timer(timer_);
  }

  bool await_ready() const { return deadline_ <= Clock::now(); }
  void await_suspend(std::coroutine_handle<> h) {
    worker_ = Worker::current();
    assert(worker_ != nullptr && "sleep outside a worker");
    timer_ = worker_->add_timer(deadline_, [this, h] {
      worker_ = nullptr;  // fired: nothing to cancel
      h.resume();
    });
  }
  void await_resume() const {}

 private:
  TimePoint deadline_;
  Worker* worker_ = nullptr;
  TimerId timer_ = 0;
};

inline SleepAwaiter sleep_until(TimePoint deadline) { return SleepAwaiter(deadline); }

template <typename Rep, typename Period>
SleepAwaiter sleep_for(std::chrono::duration<Rep, Period> d) {
  return SleepAwaiter(Clock::now() + std::chrono::duration_cast<Clock::duration>(d));
}

// Lets every other job queued on this worker run (and one poll happen) before continuing.
struct YieldAwaiter {
  bool await_ready() const { return false; }
  void await_suspend(std::coroutine_handle<> h) const { Worker::current()->schedule(h); }
  void await_resume() const {}
};
inline YieldAwaiter yield_now() { return {}; }

}  // namespace shardloop
