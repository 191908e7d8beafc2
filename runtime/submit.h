// co_await submit_to(w, fn): run `fn` on worker `w`, get its result back on the calling worker.
//
//   int n = co_await submit_to(1, [] { return local_count(); });
//   std::string s = co_await submit_to(0, []() -> Task<std::string> { co_return "x"; });
//
// The caller suspends; `fn` runs on worker w (if it returns a Task, that task is awaited there
// as a root of w); the result travels back through the caller's inbox and the caller resumes on
// its own worker, never on w. Exceptions thrown by `fn` are rethrown at the co_await. When w is
// the calling worker, `fn` runs inline.
//
// Thread-safety: call on a worker. The awaiter lives in the caller's suspended frame and is
// written by w before the resume message is posted back; the inbox's mutex orders that write
// before the caller reads it.
#pragma once

#include <cassert>
#include <coroutine>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

#include "runtime/result_slot.h"
#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/worker.h"

namespace shardloop {
namespace internal {

template <typename F>
using SubmitResult = std::conditional_t<is_task<std::invoke_result_t<F&>>::value,
                                        typename is_task<std::invoke_result_t<F&>>::value_type,
                                        std::invoke_result_t<F&>>;

template <typename F>
class SubmitAwaiter {
 public:
  using Result = SubmitResult<F>;
  static constexpr bool kReturnsTask = is_task<std::invoke_result_t<F&>>::value;

  SubmitAwaiter(size_t target, F fn) : target_(target), fn_(std::move(fn)) {}

  bool await_ready() {
    reply_.origin = Worker::current();
    assert(reply_.origin != nullptr && "submit_to outside a worker");
    return reply_.origin->index() == target_ && !kReturnsTask;
  }

  void await_suspend(std::coroutine_handle<> caller) {
    reply_.caller = caller;
    Runtime& rt = reply_.origin->runtime();
    if constexpr (kReturnsTask) {
      rt.worker(target_).post([this] { Worker::current()->spawn(run_remote_task()); });
    } else {
      rt.worker(target_).post([this] {
        reply_.slot.run(fn_);
        reply_.resume_caller();
      });
    }
  }

  Result await_resume() {
    if constexpr (!kReturnsTask) {
      // Ran inline (the target is the caller's worker).
      if (reply_.caller == nullptr) reply_.slot.run(fn_);
    }
    return reply_.slot.take();
  }

 private:
  Task<void> run_remote_task() {
    try {
      if constexpr (std::is_void_v<Result>) {
        co_await fn_();
      } else {
        reply_.slot.value.emplace(co_await fn_());
      }
    } catch (...) {
      reply_.slot.error = std::current_exception();
    }
    reply_.resume_caller();
  }

  size_t target_;
  F fn_;
  CallerReply<Result> reply_;
};

}  // namespace internal

template <typename F>
internal::SubmitAwaiter<F> submit_to(size_t worker, F fn) {
  return internal::SubmitAwaiter<F>(worker, std::move(fn));
}

}  // namespace shardloop
