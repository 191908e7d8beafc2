// VictimPicker: the order in which an idle worker visits the other workers' deques to steal.
//
// Every other worker exactly once per round, starting at a random one and going round the ring
// (as Tokio does). The random start spreads concurrent thieves over different victims, so they
// do not all CAS the same `top`; the ring walk guarantees a round visits everyone, so work on
// any worker is found within one round.
//
// Thread-safety: none; each worker owns its picker (and its XorShift64 state).
#pragma once

#include <cassert>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "runtime/xorshift.h"

namespace shardloop {

class VictimPicker {
 public:
  // `self` is the picking worker's index among `workers`; `seed` should differ per worker (the
  // worker index will do: XorShift64 scrambles it).
  VictimPicker(size_t self, size_t workers, uint64_t seed)
      : self_(self), workers_(workers), rng_(seed) {
    assert(self < workers);
  }

  // Calls `try_victim(v)` for each other worker v, in round order, until it returns true;
  // returns that v, or nullopt if every victim was tried.
  template <typename F>
  std::optional<size_t> pick(F&& try_victim) {
    if (workers_ < 2) return std::nullopt;
    const size_t start = rng_.below(static_cast<uint32_t>(workers_));
    for (size_t i = 0; i < workers_; ++i) {
      size_t v = start + i;
      if (v >= workers_) v -= workers_;
      if (v == self_) continue;
      if (try_victim(v)) return v;
    }
    return std::nullopt;
  }

  size_t self() const { return self_; }
  size_t workers() const { return workers_; }

 private:
  size_t self_;
  size_t workers_;
  XorShift64 rng_;
};

}  // namespace shardloop
