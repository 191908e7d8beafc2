// XorShift64: a tiny per-thread pseudo-random generator for scheduling decisions (victim
// choice, scan start), where speed matters and statistical quality barely does.
//
// Marsaglia's xorshift64 (13, 7, 17): three shifts and xors per number, period 2^64 - 1. The
// seed goes through splitmix64 first, so consecutive worker indices give unrelated streams and
// the state is never the all-zero fixed point. below(n) uses Lemire's multiply-shift instead of
// `%`, which avoids a division on the steal path.
//
// Thread-safety: none; each thread (worker) keeps its own generator.
#pragma once

#include <cstdint>

namespace shardloop {

class XorShift64 {
 public:
  explicit XorShift64(uint64_t seed) : state_(splitmix64(seed)) {
    if (state_ == 0) state_ = 0x9E3779B97F4A7C15ull;  // zero is xorshift's fixed point
  }

  uint64_t next() {
    uint64_t x = state_;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    state_ = x;
    return x;
  }

  // Uniform-enough integer in [0, n), n > 0.
  uint32_t below(uint32_t n) {
    return static_cast<uint32_t>(((next() >> 32) * static_cast<uint64_t>(n)) >> 32);
  }

 private:
  static uint64_t splitmix64(uint64_t z) {
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }

  uint64_t state_;
};

}  // namespace shardloop
