// Root tasks: the detached coroutines that spawn() starts, and the per-worker list that keeps
// them findable so a stopping worker can destroy the ones still suspended.
//
// A root frame destroys itself when its task finishes (final_suspend never suspends). Its
// promise links itself into its worker's RootList while alive; Worker teardown destroys what
// is left, which destroys the awaited child frames with it (Task owns its frame).
//
// Thread-safety: a root and its list belong to one worker; only the owner touches them.
#pragma once

#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>

#include "runtime/task.h"

namespace shardloop {

class Worker;

namespace internal {

struct RootPromise;

class RootList {
 public:
  void link(RootPromise* p);
  void unlink(RootPromise* p);
  // Destroys every root still linked (they are all suspended: only the owner runs them, and it
  // is the caller).
  void destroy_all();
  size_t size() const { return size_; }

 private:
  RootPromise* head_ = nullptr;
  size_t size_ = 0;
};

struct RootCoroutine {
  struct promise_type;
  std::coroutine_handle<promise_type> handle;
};

struct RootPromise {
  Worker* worker = nullptr;
  RootPromise* root = this;  // what tasks awaited by this root inherit (root_of in task.h)
  RootPromise* prev = nullptr;
  RootPromise* next = nullptr;
  // Stealable roots only (Worker::spawn_stealable): what the work belongs to (0: nothing), and
  // the worker that spawned it, which is told when another worker starts it (steal_hint_ring.h).
  uint64_t affinity = 0;
  Worker* origin = nullptr;

  std::suspend_always initial_suspend() noexcept { return {}; }
  std::suspend_never final_suspend() noexcept { return {}; }
  void return_void() noexcept {}
  void unhandled_exception() noexcept;
  ~RootPromise();
};

struct RootCoroutine::promise_type : RootPromise {
  RootCoroutine get_return_object() noexcept {
    return RootCoroutine{std::coroutine_handle<promise_type>::from_promise(*this)};
  }
};

// The coroutine handle of a root, from its promise (every RootPromise is a
// RootCoroutine::promise_type).
inline std::coroutine_handle<RootCoroutine::promise_type> root_handle(RootPromise* root) {
  return std::coroutine_handle<RootCoroutine::promise_type>::from_promise(
      *static_cast<RootCoroutine::promise_type*>(root));
}

// The coroutine body of every root: await the user's task.
RootCoroutine make_root(Task<void> task);

}  // namespace internal
}  // namespace shardloop
