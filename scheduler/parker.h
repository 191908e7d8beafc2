// Parker: lets one thread sleep until another wakes it, on a futex, with a saved token.
//
// unpark() before park() is not lost: the next park() returns at once (a binary semaphore that
// starts empty). The three-state futex protocol is Rust's std::thread::park on Linux:
//   EMPTY (0)     no token, nobody asleep
//   PARKED (-1)   the owner is asleep or about to sleep
//   NOTIFIED (1)  a token is waiting
// park(): EMPTY -> PARKED (sleep), or NOTIFIED -> EMPTY (return). unpark(): anything ->
// NOTIFIED, and a FUTEX_WAKE only if the owner was PARKED, so an unpark of a running thread
// costs one atomic exchange and no system call.
//
// Thread-safety: park() only by the owning thread; unpark() from any thread.
#pragma once

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>

namespace shardloop::scheduler {

class Parker {
 public:
  void park() {
    // Acquire pairs with the release exchange in unpark(): what the unparker wrote before
    // unparking is visible when we return.
    if (state_.fetch_sub(1, std::memory_order_acquire) == kNotified) return;
    for (;;) {
      futex_wait(kParked);
      int32_t expected = kNotified;
      if (state_.compare_exchange_strong(expected, kEmpty, std::memory_order_acquire)) return;
      // Spurious wakeup (signal, or FUTEX_WAIT found the word changed and it was not NOTIFIED
      // yet): sleep again.
    }
  }

  void unpark() {
    // Release pairs with the acquire in park().
    if (state_.exchange(kNotified, std::memory_order_release) == kParked) futex_wake();
  }

 private:
  static constexpr int32_t kEmpty = 0;
  static constexpr int32_t kParked = -1;
  static constexpr int32_t kNotified = 1;

  void futex_wait(int32_t expected) {
    // Returns at once (EAGAIN) if the word is no longer `expected`: an unpark that raced with
    // the fetch_sub above is not slept through.
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&state_), FUTEX_WAIT_PRIVATE, expected, nullptr,
            nullptr, 0);
  }
  void futex_wake() {
    syscall(SYS_futex, reinterpret_cast<int32_t*>(&state_), FUTEX_WAKE_PRIVATE, 1, nullptr, nullptr,
            0);
  }

  static_assert(sizeof(std::atomic<int32_t>) == sizeof(int32_t));
  std::atomic<int32_t> state_{kEmpty};
};

}  // namespace shardloop::scheduler
