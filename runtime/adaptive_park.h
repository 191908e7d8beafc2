// The adaptive poll mode's spin-before-park rule (poll_mode.h).
//
// A worker about to block in its poller may first poll without blocking for a short window:
// if the next event or message arrives within it, the worker skips a sleep and a wakeup (two
// context switches, and the waker's eventfd write). Spinning burns CPU that another thread
// could use, so whether to spin is decided from what spinning achieved recently:
//
//   - a worker spins only while its spins have paid: of its last kWindow spins, at least
//     kMinHitsPerWindow found work. Below that it stops spinning for `backoff` parks, then
//     probes with one window again; each failed probe doubles the backoff (up to kMaxBackoff),
//     a successful one resets it;
//   - a park whose timer is due sooner than the spin window does not spin (it would be a
//     busy-wait for the timer);
//   - a spinner needs a CPU that no worker would otherwise use: with W workers on C CPUs, at
//     most min(max(1, C / 2), C - W) workers spin at once (SpinGate), and none when W >= C.
//     Measured on 2 cores (bench/storm, burst, N = 1024): with 1 worker the spare CPU makes
//     spinning pay (+11% events/s over sharded); with 8 or 64 workers a spinner takes the CPU
//     from the threads that produce its events (the client, the other workers) and adaptive ran
//     12-26% below sharded until spinning was limited to spare CPUs.
//
// Why these numbers: on this project's 2-core test machines a park-and-wake round trip costs
// ~10-20 µs of CPU across both threads (eventfd write, futex wake, two switches), so a 20 µs
// window pays when events come closer than that and a quarter hit rate is where the saved
// wakeups stop covering the spinning. bench/storm measures the mode against the others.
//
// Thread-safety: SpinPolicy is owned by one worker (owner-only). SpinGate is shared by a
// runtime's workers: a relaxed counter, since it only bounds how many spin, it publishes nothing.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shardloop {

class SpinPolicy {
 public:
  static constexpr uint32_t kWindow = 16;
  static constexpr uint32_t kMinHitsPerWindow = 4;
  static constexpr uint32_t kInitialBackoff = 64;
  static constexpr uint32_t kMaxBackoff = 4096;

  // Whether the coming park should spin first. Counts down the backoff when it says no.
  bool should_spin() {
    if (parks_to_skip_ == 0) return true;
    --parks_to_skip_;
    return false;
  }

  // The outcome of one spin: `hit` if it found work before its window ran out.
  void record(bool hit) {
    ++spins_;
    hits_ += hit ? 1 : 0;
    if (spins_ < kWindow) return;
    if (hits_ >= kMinHitsPerWindow) {
      backoff_ = kInitialBackoff;  // spinning pays: keep spinning
    } else {
      parks_to_skip_ = backoff_;
      backoff_ = std::min(backoff_ * 2, kMaxBackoff);
    }
    spins_ = hits_ = 0;
  }

  bool backing_off() const { return parks_to_skip_ > 0; }

 private:
  uint32_t spins_ = 0;
  uint32_t hits_ = 0;
  uint32_t parks_to_skip_ = 0;
  uint32_t backoff_ = kInitialBackoff;
};

class SpinGate {
 public:
  SpinGate(size_t cpus, size_t workers)
      : limit_(workers >= cpus ? 0 : std::min(std::max<size_t>(1, cpus / 2), cpus - workers)) {}

  bool try_enter() {
    if (spinning_.fetch_add(1, std::memory_order_relaxed) < limit_) return true;
    spinning_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void leave() { spinning_.fetch_sub(1, std::memory_order_relaxed); }

 private:
  const size_t limit_;
  std::atomic<size_t> spinning_{0};
};

}  // namespace shardloop
