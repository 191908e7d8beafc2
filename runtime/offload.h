// co_await offload(affinity, fn): run `fn` as a stealable root tagged with `affinity`, get its
// result back on the calling worker.
//
//   uint64_t sum = co_await offload(key, [n] { return checksum(n); });
//
// The caller suspends; `fn` becomes a stealable root on the caller's worker
// (Worker::spawn_stealable), so an idle worker may take it while this one is busy, and the
// steal is reported to this worker as a steal hint for `affinity` (steal_hint_ledger.h). The
// result (or the exception `fn` threw, rethrown at the co_await) travels back through the
// caller's inbox and the caller resumes on its own worker, never on the one that ran `fn`.
// `fn` must be safe to run on any worker: it must not touch the caller's connections, fds or
// timers. A caller that awaits an offload is not waiting to read, so a connection migration
// asked for meanwhile waits for its next read (Connection::migrate).
//
// GCC 12: when `fn` is a lambda that captures something with a destructor (a std::string,
// say), do not write the lambda inside the co_await expression: GCC 12 destroys that closure
// temporary's copy in the awaiter wrongly (an invalid free of the capture). Name the awaiter
// (or the lambda) first:
//   auto op = offload(key, [req] { return render(req); });
//   std::string reply = co_await op;
//
// Stop: if the runtime stops first, the root may be destroyed unstarted or its reply dropped;
// the caller, suspended on its own worker, is destroyed with that worker's other tasks.
//
// Thread-safety: call on a worker. The awaiter lives in the caller's suspended frame; the
// worker that runs `fn` writes the result there before posting the resume, and the inbox's
// mutex orders that write before the caller reads it.
#pragma once

#include <cassert>
#include <coroutine>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "runtime/result_slot.h"
#include "runtime/task.h"
#include "runtime/worker.h"

namespace shardloop {
namespace internal {

template <typename F>
class OffloadAwaiter {
 public:
  using Result = std::invoke_result_t<F&>;
  static_assert(!is_task<Result>::value, "offload() runs plain callables; await tasks inline");

  OffloadAwaiter(uint64_t affinity, F fn) : affinity_(affinity), fn_(std::move(fn)) {}

  bool await_ready() noexcept { return false; }

  void await_suspend(std::coroutine_handle<> caller) {
    reply_.origin = Worker::current();
    assert(reply_.origin != nullptr && "offload outside a worker");
    reply_.caller = caller;
    reply_.origin->spawn_stealable(run(), affinity_);
  }

  Result await_resume() { return reply_.slot.take(); }

 private:
  // The stealable root. It touches the awaiter only before posting the resume: once posted,
  // the caller may resume and destroy the awaiter while this frame finishes.
  Task<void> run() {
    reply_.slot.run(fn_);
    reply_.resume_caller();
    co_return;
  }

  uint64_t affinity_;
  F fn_;
  CallerReply<Result> reply_;
};

}  // namespace internal

template <typename F>
internal::OffloadAwaiter<F> offload(uint64_t affinity, F fn) {
  return internal::OffloadAwaiter<F>(affinity, std::move(fn));
}

}  // namespace shardloop
