// run_once(): one storm run — a poll design, T worker threads and the driver over a set of
// connections — and what it measured. The caller (bench/storm/storm.cc, tests) picks the design,
// pattern and limits and formats the result.
//
// Method. The workers are started and parked before anything is measured. With a warm-up
// (RunLimits::warmup_s; burst and trickle) they are released into the same rounds for that long
// first, so that what a design adapts while it runs has settled before the figures start: the
// runtime's spin policy (adaptive_park.h), and streams that follow their wakes to the driver's
// worker (wake_affinity.h), which takes a few passes over the N connections. The measured part
// begins after it (or when the workers are released) and ends when the driver sets stop (wall
// time), and CPU and context switches cover it up to the workers' exit: process CPU and
// voluntary context switches (getrusage RUSAGE_SELF) minus the driver thread's own
// (CLOCK_THREAD_CPUTIME_ID and RUSAGE_THREAD), so the figures are the workers' cost; the totals
// with the driver are kept too. The workers' counts are their ThreadStats at the end less
// those at the end of the warm-up.
//
// Thread-safety: run_once blocks the calling thread (which is the driver) until the run ended and
// every worker was joined; one run at a time per ConnectionSet.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/storm/connection_set.h"
#include "bench/storm/poll_designs.h"

namespace shardloop::bench::storm {

// What one run measured.
struct RunResult {
  RunConfig config;
  int repeat = 0;
  double wall_s = 0;
  const char* stop = "duration";  // what ended the run: duration or iterations
  uint64_t rounds = 0;
  uint64_t events = 0;
  double cpu_s = 0;        // process CPU minus the driver thread's
  long vcsw = 0;           // voluntary context switches, process minus driver thread
  double total_cpu_s = 0;  // process CPU, driver included (what the Go peer can report)
  long total_vcsw = 0;     // voluntary context switches, driver included
  // The workers' ThreadStats added up.
  struct Sum {
    uint64_t polls = 0, polled_events = 0, handled = 0, stale_events = 0, spurious = 0,
             idle_timeouts = 0, poll_wall_ns = 0, poll_cpu_ns = 0;
  } sum;
};

// Runs `config` on `conns` until `limits` ends it, then drains the connections so the next run
// starts with none readable. Fails (rather than hangs) when a design loses events: a round that
// makes no progress for 5 seconds.
absl::StatusOr<RunResult> run_once(const RunConfig& config, ConnectionSet& conns,
                                   const RunLimits& limits, int repeat);

}  // namespace shardloop::bench::storm
