// co_await run_blocking(pool, fn): run a blocking function on a BlockingPool thread and resume
// on the calling worker with its result. run_blocking(fn) uses the runtime's own pool.
//
//   std::string text = co_await run_blocking([path] { return read_whole_file(path); });
//
// The coroutine suspends; `fn` is submitted under the calling worker's consumer index (its
// worker index; the shared queue if the pool has fewer consumers); when it finishes, the pool
// thread posts the resumption to the calling worker's inbox (Worker::post), so the coroutine
// always resumes on its own worker, never on the pool thread. An exception thrown by `fn` is
// rethrown at the co_await; if the pool was shut down before `fn` ran, the co_await throws
// BlockingRejected carrying the pool's status.
//
// Lifetimes: the result travels in a heap block shared by the job and the resumption message,
// not in the coroutine frame, so a frame destroyed by Runtime::stop() while `fn` runs is never
// written to. `fn` itself runs on another thread while the coroutine is suspended: it may
// reference the coroutine's locals only if the pool is shut down (drained) before the runtime
// stops, which is the order an owner of both should use anyway (a stopped worker's frames die).
// One pool serves the workers of one Runtime: two runtimes' worker 0 would share consumer 0.
//
// Thread-safety: call on a worker thread. The pool thread writes the result before posting the
// resumption; the inbox's mutex orders that write before the worker reads it.
#pragma once

#include <cassert>
#include <coroutine>
#include <exception>
#include <memory>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

#include "absl/status/status.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"
#include "scheduler/blocking_pool.h"

namespace shardloop::scheduler {

// Thrown at `co_await run_blocking(...)` when the pool refused or cancelled the function.
class BlockingRejected : public std::runtime_error {
 public:
  explicit BlockingRejected(absl::Status status)
      : std::runtime_error(status.ToString()), status_(std::move(status)) {}
  const absl::Status& status() const { return status_; }

 private:
  absl::Status status_;
};

namespace internal {

template <typename R>
struct BlockingResult {
  std::optional<R> value;
  template <typename F>
  void run(F& fn) {
    value.emplace(fn());
  }
  R take() { return std::move(*value); }
};

template <>
struct BlockingResult<void> {
  template <typename F>
  void run(F& fn) {
    fn();
  }
  void take() {}
};

template <typename F>
class RunBlockingAwaiter {
 public:
  using Result = std::invoke_result_t<F&>;
  static_assert(!std::is_reference_v<Result>, "run_blocking returns values, not references");

  RunBlockingAwaiter(BlockingPool& pool, F fn) : pool_(pool), fn_(std::move(fn)) {}

  bool await_ready() noexcept { return false; }

  void await_suspend(std::coroutine_handle<> caller) {
    Worker* origin = Worker::current();
    assert(origin != nullptr && "run_blocking outside a worker");
    state_ = std::make_shared<State>(std::move(fn_));
    BlockingPool::Fn job = [state = state_] {
      try {
        state->result.run(state->fn);
      } catch (...) {
        state->error = std::current_exception();
      }
    };
    BlockingPool::Done done = [state = state_, origin, caller](BlockingOutcome outcome) mutable {
      state->status = std::move(outcome.status);
      // Captures no `this`: if the runtime stops first, the frame (and this awaiter) is gone
      // and the posted message is destroyed unrun, while `state` stays valid until then.
      origin->post([caller] { caller.resume(); });
    };
    // `done` may run inside submit() (a shut-down pool rejects inline); the resumption it posts
    // still waits for this worker's next run phase, after await_suspend has returned.
    // Consumer index = worker index (the shared queue if the pool has fewer consumers).
    pool_.submit(origin->index(), std::move(job), std::move(done));
  }

  Result await_resume() {
    if (!state_->status.ok()) throw BlockingRejected(state_->status);
    // Moved out, so the exception's last reference is this thread's: the pool thread may drop
    // the shared state later, and the exception's reference count lives in the uninstrumented
    // C++ runtime, where ThreadSanitizer cannot see it order the two threads.
    if (state_->error) std::rethrow_exception(std::exchange(state_->error, nullptr));
    return state_->result.take();
  }

 private:
  struct State {
    explicit State(F f) : fn(std::move(f)) {}
    F fn;
    BlockingResult<Result> result;
    std::exception_ptr error;
    absl::Status status;
  };

  BlockingPool& pool_;
  F fn_;
  std::shared_ptr<State> state_;
};

}  // namespace internal

template <typename F>
internal::RunBlockingAwaiter<F> run_blocking(BlockingPool& pool, F fn) {
  return internal::RunBlockingAwaiter<F>(pool, std::move(fn));
}

// The blocking pool of `runtime`: created on first use with RuntimeOptions::blocking_threads
// threads and one consumer per worker, shut down (queued functions rejected, running ones
// finished) when the runtime stops. Any thread.
BlockingPool& runtime_blocking_pool(Runtime& runtime);

// co_await run_blocking(fn): run_blocking on the calling worker's runtime's pool.
template <typename F>
internal::RunBlockingAwaiter<F> run_blocking(F fn) {
  Worker* w = Worker::current();
  assert(w != nullptr && "run_blocking outside a worker");
  return internal::RunBlockingAwaiter<F>(runtime_blocking_pool(w->runtime()), std::move(fn));
}

}  // namespace shardloop::scheduler
