// The adaptive poll mode's spin-before-park rule (poll_mode.h).
//
// A worker about to block in its poller may first poll without blocking for a short window:
// if the next event or message arrives within it, the worker skips a sleep and a wakeup (two
// context switches, and the waker's eventfd write). Spinning burns CPU that another thread
// could use, so whether to spin is decided from what spinning achieved recently:
//
//   - a worker spins only while its spins have paid: of its last kWindow spins, at least
//     kMinHitsPerWindow found work. Below that it stops spinning for `backoff` parks, then
//     probes with one spin; each failed probe doubles the backoff (up to kMaxBackoff), a
//     successful one resets it and starts a new window. A worker starts with a probe too.
//     (Probing with a whole window cost trickle 16 futile spins per probe, which short runs
//     never amortised.);
//   - a park whose timer is due sooner than the spin window does not spin (it would be a
//     busy-wait for the timer);
//   - a busy spinner needs a CPU that no worker would otherwise use: with W workers on C CPUs,
//     at most min(max(1, C / 2), C - W) workers spin at once (SpinGate), and none when W >= C.
//     Measured on 2 cores (bench/storm, burst, N = 1024): with 1 worker the spare CPU makes
//     spinning pay (+11% events/s over sharded); with 8 or 64 workers a busy spinner takes the
//     CPU from the threads that produce its events (the client, the other workers) and adaptive
//     ran 12-26% below sharded until busy spinning was limited to spare CPUs;
//   - with no CPU spare (W >= C) a worker spins by yielding instead: up to
//     RuntimeOptions::adaptive_spin_yields times (default 8) it calls sched_yield(), which runs
//     whoever else is runnable on its CPU (often the thread about to make its next event), then
//     polls without blocking. A woken worker that found one event would otherwise sleep again
//     at once and be woken for the next one: a voluntary switch and a wakeup per event. Measured
//     (burst, N = 1024, 2 CPUs): events/s at T = 2 / 8 / 64 from 179k / 126k / 100k (sharded)
//     to 245k / 212k / 214k, voluntary switches per 1,000 events from ~700-950 to 10-90; trickle
//     unchanged within noise (its yields rarely find work, so the hit-rate rule backs off).
//     How many yields it takes depends on the host: one 2-core machine gave the same burst
//     figures for 1, 2, 4 and 8; another, same kernel, ran burst at T = 4 / 16 / 32 / 64 at
//     ~165k / 140k / 120k / 110k events/s with 2 and ~200k / 185k / 185k / 180k with 8 (4 runs
//     each, side by side), trickle and the servers' CPU per request unchanged within noise (the
//     hit-rate rule stops futile spins); 16 and 32 were no better than 8. So the default is 8.
//     A yield that lasts longer than kLongYieldNs per worker sharing the CPU (ceil(W / C)) ends
//     the spin (a miss): the CPU went to a thread that runs whole scheduler slices, typically
//     another process's CPU-bound work, and a worker that keeps yielding to it reacts
//     milliseconds late, where a parked worker's wakeup preempts it. Measured with a busy loop
//     on each of the 2 CPUs, 2 workers: trickle at T = 2 / 8 ran 430-680 events/s without the
//     rule and 3,500-26,000 with it, and a worker that had to steal an offloaded task within
//     ~100 us took 0.05-10+ s to collect the steal-affinity evidence that needs, 0.05 s with
//     it. Unloaded, 250 us flat cut burst at T = 64 from ~150-185k to ~95-130k events/s (32
//     workers per CPU pass a yield round for longer than that), hence the per-worker scaling.
//     With one worker per CPU (W <= C, SpinGate::one_per_cpu) a yielding spin also lasts the
//     whole spin window (20 us), however many yields that takes: where no other worker shares
//     the CPU, a yield usually finds nobody else to run and returns in well under a
//     microsecond, so 8 yields end the spin after a few microseconds, shorter than the round
//     trip to another worker. Measured on 2 CPUs, 2 workers, 3 alternating runs per side:
//     a task waiting for a reply from the other worker (bench/storm trickle, rt-adaptive+task,
//     T = 2) 36-46k -> 224-233k events/s and 17-21 -> 8.4 CPU s per million events; http_server
//     under wrk with 2 connections 36-54k -> 80-187k requests/s at 12-14 -> 5-13 us of server
//     CPU per request; with 50 connections unchanged (254-258k both); burst T = 2 unchanged
//     within noise. The cost: trickle from the external driver thread at T = 2 ran the same
//     events/s (23-57k vs 28-45k) at 20-27 instead of 9-15 CPU s per million events, its spins
//     paying often enough for the hit-rate rule to keep them. Where workers share CPUs (W > C)
//     it measured worse (trickle, rt-adaptive+task, at T = 64 106k -> 56k events/s: 32 workers per
//     CPU spinning through their windows), so there the yield count alone bounds the spin.
//
// Why these numbers: on this project's 2-core test machines a park-and-wake round trip costs
// ~10-20 µs of CPU across both threads (eventfd write, futex wake, two switches), so a 20 µs
// window pays when events come closer than that and a quarter hit rate is where the saved
// wakeups stop covering the spinning. bench/storm measures the mode against the others.
//
// Thread-safety: SpinPolicy is owned by one worker (owner-only). SpinGate is shared by a
// runtime's workers: a relaxed counter, since it only bounds how many spin, it publishes nothing;
// its limits are fixed at construction.
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>

namespace shardloop {

// A sched_yield() that took longer than this, per worker sharing the CPU, gave the CPU to a
// whole scheduler slice (above).
inline constexpr int64_t kLongYieldNs = 250'000;

class SpinPolicy {
 public:
  static constexpr uint32_t kWindow = 16;
  static constexpr uint32_t kMinHitsPerWindow = 4;
  static constexpr uint32_t kInitialBackoff = 64;
  static constexpr uint32_t kMaxBackoff = 4096;

  // Whether the coming park should spin first. Counts down the backoff when it says no.
  bool should_spin() {
    if (parks_to_skip_ == 0) return true;
    if (--parks_to_skip_ == 0) probing_ = true;
    return false;
  }

  // The outcome of one spin: `hit` if it found work before its window ran out.
  void record(bool hit) {
    if (probing_) {
      // One spin decides a probe: a hit resumes spinning with a fresh window, a miss backs
      // off twice as long.
      probing_ = false;
      if (hit) {
        backoff_ = kInitialBackoff;
      } else {
        back_off();
      }
      return;
    }
    ++spins_;
    hits_ += hit ? 1 : 0;
    if (spins_ < kWindow) return;
    if (hits_ >= kMinHitsPerWindow) {
      backoff_ = kInitialBackoff;  // spinning pays: keep spinning
    } else {
      back_off();
    }
    spins_ = hits_ = 0;
  }

  bool backing_off() const { return parks_to_skip_ > 0; }

 private:
  void back_off() {
    parks_to_skip_ = backoff_;
    backoff_ = std::min(backoff_ * 2, kMaxBackoff);
  }

  uint32_t spins_ = 0;
  uint32_t hits_ = 0;
  uint32_t parks_to_skip_ = 0;
  uint32_t backoff_ = kInitialBackoff;
  // The next spin is a probe: after a backoff, and first of all, so a worker spins only once
  // a spin has paid (a worker whose spins never pay pays one, not a window of 16).
  bool probing_ = true;
};

class SpinGate {
 public:
  SpinGate(size_t cpus, size_t workers)
      : limit_(workers >= cpus ? 0 : std::min(std::max<size_t>(1, cpus / 2), cpus - workers)),
        long_yield_ns_(kLongYieldNs * workers_per_cpu(cpus, workers)),
        one_per_cpu_(workers <= std::max<size_t>(1, cpus)) {}

  bool try_enter() {
    if (spinning_.fetch_add(1, std::memory_order_relaxed) < limit_) return true;
    spinning_.fetch_sub(1, std::memory_order_relaxed);
    return false;
  }
  void leave() { spinning_.fetch_sub(1, std::memory_order_relaxed); }
  // As many workers as CPUs or more: where adaptive workers spin by yielding instead.
  bool no_spare_cpu() const { return limit_ == 0; }
  // A yield longer than this ends a yielding spin: kLongYieldNs for each worker that may share
  // the CPU, since a yield passes the CPU round them first.
  int64_t long_yield_ns() const { return long_yield_ns_; }
  // No more workers than CPUs (an unknown CPU count counts as one): a yielding spin then lasts
  // the spin window too, since its yields rarely have another worker to run.
  bool one_per_cpu() const { return one_per_cpu_; }

 private:
  // ceil(workers / cpus), at least 1; an unknown CPU count (0) counts as one CPU.
  static int64_t workers_per_cpu(size_t cpus, size_t workers) {
    const size_t c = std::max<size_t>(1, cpus);
    return static_cast<int64_t>(std::max<size_t>(1, (workers + c - 1) / c));
  }

  const size_t limit_;
  const int64_t long_yield_ns_;
  const bool one_per_cpu_;
  std::atomic<size_t> spinning_{0};
};

}  // namespace shardloop
