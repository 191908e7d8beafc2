// Helpers shared by the runtime tests: seeds, sanitizer scaling, bounded waiting, and a driver
// that runs a Task to completion on the calling thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <exception>
#include <optional>
#include <stdexcept>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/task.h"

namespace shardloop::testing {

// Sanitizer builds are several times slower; stress sizes shrink by this factor there.
#ifdef SHARDLOOP_SANITIZED
inline constexpr int kSanitizerScale = 4;
#else
inline constexpr int kSanitizerScale = 1;
#endif

// Options for an n-worker epoll runtime (the runtime tests' default backend).
inline RuntimeOptions workers(size_t n) {
  RuntimeOptions options;
  options.workers = n;
  options.backend = Backend::kEpoll;
  return options;
}

// Generous bound for "this should happen promptly": only a hang should ever reach it.
inline constexpr std::chrono::seconds kPatience{10};

// Seeds for randomized tests: SHARDLOOP_TEST_SEED if set (to replay one failure), else a fixed
// list so that every run is the same. Tests print the seed they use with SCOPED_TRACE.
inline std::vector<uint64_t> test_seeds(size_t count) {
  if (const char* env = std::getenv("SHARDLOOP_TEST_SEED")) {
    return {std::strtoull(env, nullptr, 10)};
  }
  std::vector<uint64_t> seeds;
  for (size_t i = 0; i < count; ++i) seeds.push_back(0x5eed0000 + i);
  return seeds;
}

// Polls `pred` until it is true or `limit` passes; returns the last value of `pred`.
template <typename Pred>
bool wait_until(Pred pred, std::chrono::milliseconds limit = kPatience) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() >= deadline) return pred();
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

namespace internal {
template <typename T>
Task<void> store_result(Task<T> task, std::optional<T>* out) {
  out->emplace(co_await std::move(task));
}
inline Task<void> store_result(Task<void> task, bool* done) {
  co_await std::move(task);
  *done = true;
}
}  // namespace internal

// Runs `task` on this thread. Only for tasks that complete without a worker (no sleeps, no I/O,
// no submit_to): they finish synchronously. Rethrows the task's exception.
template <typename T>
T run_sync(Task<T> task) {
  if constexpr (std::is_void_v<T>) {
    bool done = false;
    auto h = internal::store_result(std::move(task), &done).release();
    h.resume();
    struct Destroy {
      std::coroutine_handle<> h;
      ~Destroy() { h.destroy(); }
    } destroy{h};
    if (!h.done()) throw std::logic_error("run_sync: the task suspended (needs a worker)");
    h.promise().take();
  } else {
    std::optional<T> out;
    auto h = internal::store_result(std::move(task), &out).release();
    h.resume();
    struct Destroy {
      std::coroutine_handle<> h;
      ~Destroy() { h.destroy(); }
    } destroy{h};
    if (!h.done()) throw std::logic_error("run_sync: the task suspended (needs a worker)");
    h.promise().take();
    return std::move(*out);
  }
}

}  // namespace shardloop::testing
