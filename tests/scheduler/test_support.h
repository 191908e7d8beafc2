// Helpers shared by the scheduler tests: suite naming for the small-queue build, workload
// scaling under sanitizers, and a seed that tests print on failure.
#pragma once

#include <chrono>
#include <cstdint>
#include <thread>

#include "tests/net/test_support.h"

// The small-queue test binary compiles the same test files with SHARDLOOP_SMALL_QUEUES; its
// suites get a suffix so that ctest names stay unique across the two binaries.
#ifdef SHARDLOOP_SMALL_QUEUES
#define SCHED_SUITE(name) name##SmallQueues
#else
#define SCHED_SUITE(name) name
#endif

namespace shardloop::testing {

// Stress sizes: the full figure normally, a tenth under sanitizers (TSan runs atomics-heavy
// code 10-50x slower).
#ifdef SHARDLOOP_SANITIZED
inline constexpr uint64_t kStressDivisor = 10;
#else
inline constexpr uint64_t kStressDivisor = 1;
#endif

// Polls `done()` until it holds or `timeout` passes; returns whether it held.
template <typename F>
bool wait_until(F done, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!done()) {
    if (std::chrono::steady_clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

}  // namespace shardloop::testing
