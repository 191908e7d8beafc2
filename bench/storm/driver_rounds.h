// DriverRounds: what a storm driver does, round after round, for the burst and trickle patterns,
// whoever runs it: the storm's own driver thread (storm_run.cc) or a task inside the runtime
// (runtime_design.cc, designs named +task). Each round sets RunState::target and then makes the
// round's sockets readable: all N (burst) or one picked at random with a fixed seed, so every
// design and driver gets the same socket order (trickle); the generator lives in RunState, so
// the measured part goes on where a warm-up left off rather than replaying its sockets. The caller
// waits for `target` to be consumed in its own way between rounds.
//
// Thread-safety: one driver (thread or task) owns it; not shared.
#pragma once

#include <atomic>
#include <cstdint>
#include <random>
#include <string>

#include "absl/status/statusor.h"
#include "bench/storm/poll_designs.h"

namespace shardloop::bench::storm {

// A round that makes no progress for this long means a design lost events: the run fails
// instead of hanging (both drivers).
inline constexpr double kStallSeconds = 5.0;
// How often a waiting driver re-checks progress, in case a wakeup was missed.
inline constexpr long kDriverRecheckNs = 20'000'000;

// Watches RunState::consumed while a driver waits for it.
class StallWatch {
 public:
  explicit StallWatch(const RunState& run);
  // True once consumed has not moved for kStallSeconds.
  bool stalled();

 private:
  const RunState& run_;
  uint64_t last_;
  double last_change_;
};

// Sleeps until the futex word no longer holds `seen`, a wakeup, or kDriverRecheckNs.
void wait_on(std::atomic<uint32_t>& word, uint32_t seen);
// Wakes one thread waiting on the futex word (after the caller changed it).
void wake_one(std::atomic<uint32_t>& word);

// Writes one byte to connection i's driver end.
absl::Status poke(const ConnectionSet& conns, int i);

// CLOCK_MONOTONIC or another clock, in seconds.
double now_s(clockid_t clock);

class DriverRounds {
 public:
  // `start`: CLOCK_MONOTONIC seconds when these rounds began (the warm-up's or the measured
  // part's). Targets continue from RunState::target, where a warm-up's rounds left it.
  DriverRounds(RunState& run, const RunLimits& limits, double start);

  // Starts the next round: sets the target, then pokes. False (and nothing poked) once the
  // duration or the iteration bound ended the run; stop() then says which.
  absl::StatusOr<bool> begin_round();
  // The consumed count that ends the round begin_round() started.
  uint64_t target() const { return target_; }
  uint64_t rounds() const { return rounds_; }
  // What ended the run: "duration" or "iterations".
  const char* stop() const { return stop_; }
  // The error for a round whose events were never all consumed.
  absl::Status lost() const;

 private:
  RunState& run_;
  const RunLimits limits_;
  const double start_;
  std::uniform_int_distribution<int> pick_;  // draws from RunState::trickle_rng
  uint64_t target_ = 0;
  uint64_t rounds_ = 0;  // rounds completed: begin_round() counts the previous one
  bool started_ = false;
  const char* stop_ = "duration";
};

}  // namespace shardloop::bench::storm
