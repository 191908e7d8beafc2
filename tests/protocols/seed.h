// The seed of a property test: SHARDLOOP_TEST_SEED if set, else random (tests/net/test_support.h),
// printed on every run, not only on failure, so that any run seen in a CI log can be replayed.
//
// Thread-safety: call from the test's thread.
#pragma once

#include <cstdint>
#include <cstdio>

#include "tests/net/test_support.h"

namespace shardloop::testing {

inline uint64_t announced_seed() {
  const uint64_t seed = test_seed();
  std::printf("[   SEED   ] %llu (rerun with SHARDLOOP_TEST_SEED=%llu)\n",
              static_cast<unsigned long long>(seed), static_cast<unsigned long long>(seed));
  std::fflush(stdout);
  return seed;
}

}  // namespace shardloop::testing
