// Helpers shared by the net tests: fd counting and seeded randomness that reports its seed.
#pragma once

#include <dirent.h>

#include <cstdint>
#include <cstdlib>
#include <random>

namespace shardloop::testing {

// Open fds of this process (entries of /proc/self/fd, minus the one opendir holds).
inline int count_open_fds() {
  DIR* d = opendir("/proc/self/fd");
  if (d == nullptr) return -1;
  int n = 0;
  while (readdir(d) != nullptr) ++n;
  closedir(d);
  return n - 3;  // ".", ".." and the directory's own fd
}

// Seed from SHARDLOOP_TEST_SEED if set, else from the clock; tests print it with SCOPED_TRACE.
inline uint64_t test_seed() {
  if (const char* env = std::getenv("SHARDLOOP_TEST_SEED")) return std::strtoull(env, nullptr, 10);
  return std::random_device{}();
}

// Sanitizer builds are 5-20x slower; stress sizes shrink by this factor there.
#ifdef SHARDLOOP_SANITIZED
inline constexpr int kSanitizerScale = 4;
#else
inline constexpr int kSanitizerScale = 1;
#endif

}  // namespace shardloop::testing
