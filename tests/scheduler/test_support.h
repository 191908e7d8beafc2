// Helpers shared by the scheduler tests: suite naming for the small-queue build and workload
// scaling under sanitizers (seeds and wait_until come from the net and runtime test helpers).
#pragma once

#include <cstdint>

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

}  // namespace shardloop::testing
