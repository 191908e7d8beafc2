#include "bench/storm/storm_run.h"

#include <sys/eventfd.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <latch>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "bench/storm/driver_rounds.h"
#include "runtime/errno_status.h"

namespace shardloop::bench::storm {
namespace {

struct Usage {
  double cpu_s = 0;
  long nvcsw = 0;
};

Usage usage(int who) {
  rusage ru{};
  getrusage(who, &ru);
  return {static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
              static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6,
          ru.ru_nvcsw};
}

// Blocks until run.consumed >= target. False if nothing was consumed for kStallSeconds.
bool wait_consumed(RunState& run, uint64_t target) {
  StallWatch watch(run);
  for (;;) {
    const uint32_t seq = run.done_seq.load();
    if (run.consumed.load() >= target) return true;
    if (watch.stalled()) return false;
    wait_on(run.done_seq, seq);
  }
}

// The driver's part of one run, on the calling thread. Returns the rounds it made.
absl::StatusOr<uint64_t> drive(RunState& run, const RunLimits& limits, double start,
                               const char** stop) {
  if (run.config.pattern != Pattern::kStayReady) {
    DriverRounds script(run, limits, start);
    for (;;) {
      auto more = script.begin_round();
      if (!more.ok()) return more.status();
      if (!*more) break;
      if (!wait_consumed(run, script.target())) return script.lost();
    }
    *stop = script.stop();
    return script.rounds();
  }
  // stay-ready: every socket made readable once, then the workers run until a bound.
  for (int i = 0; i < run.conns.size(); ++i) {
    if (auto s = poke(run.conns, i); !s.ok()) return s;
  }
  const uint64_t max_iter = std::max<uint64_t>(1, limits.max_iterations);
  while (now_s(CLOCK_MONOTONIC) - start < limits.duration_s) {
    uint64_t handled = 0;
    for (const ThreadStats& st : run.stats) handled += st.progress.load(std::memory_order_relaxed);
    if (handled >= max_iter) {
      *stop = "iterations";
      break;
    }
    timespec pause{.tv_sec = 0, .tv_nsec = 2'000'000};
    nanosleep(&pause, nullptr);
  }
  return 1;
}

RunResult::Sum sum_of(const std::vector<ThreadStats>& stats) {
  RunResult::Sum sum;
  for (const ThreadStats& st : stats) {
    sum.polls += st.polls;
    sum.polled_events += st.polled_events;
    sum.handled += st.handled;
    sum.stale_events += st.stale_events;
    sum.spurious += st.spurious;
    sum.idle_timeouts += st.idle_timeouts;
    sum.poll_wall_ns += st.poll_wall_ns;
    sum.poll_cpu_ns += st.poll_cpu_ns;
  }
  return sum;
}

RunResult::Sum minus(const RunResult::Sum& a, const RunResult::Sum& b) {
  return {.polls = a.polls - b.polls,
          .polled_events = a.polled_events - b.polled_events,
          .handled = a.handled - b.handled,
          .stale_events = a.stale_events - b.stale_events,
          .spurious = a.spurious - b.spurious,
          .idle_timeouts = a.idle_timeouts - b.idle_timeouts,
          .poll_wall_ns = a.poll_wall_ns - b.poll_wall_ns,
          .poll_cpu_ns = a.poll_cpu_ns - b.poll_cpu_ns};
}

// The driver's rounds for `limits`: the storm's driver thread's, or the design's own.
absl::StatusOr<uint64_t> drive_with(PollDesign& design, RunState& run, const RunLimits& limits,
                                    double start, const char** stop) {
  return design.drives_itself() ? design.drive(limits, start, stop)
                                : drive(run, limits, start, stop);
}

}  // namespace

absl::StatusOr<RunResult> run_once(const RunConfig& config, ConnectionSet& conns,
                                   const RunLimits& limits, int repeat) {
  int stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (stop_fd < 0) return errno_status(errno, "eventfd");
  RunResult result{.config = config, .repeat = repeat};
  absl::Status status;
  {
    RunState run(config, conns, stop_fd);
    std::unique_ptr<PollDesign> design = make_design(run);
    status = design->setup();
    if (status.ok()) {
      std::latch ready(config.threads);
      std::latch go(1);
      std::vector<std::thread> workers;
      workers.reserve(static_cast<size_t>(config.threads));
      for (int t = 0; t < config.threads; ++t) {
        workers.emplace_back([&, t] {
          ready.count_down();
          go.wait();
          design->run_worker(t);
        });
      }
      ready.wait();
      go.count_down();
      absl::StatusOr<uint64_t> rounds = 0;
      if (limits.warmup_s > 0 && config.pattern != Pattern::kStayReady) {
        const RunLimits warmup{.duration_s = limits.warmup_s,
                               .max_iterations = limits.max_iterations};
        const char* warmup_stop = nullptr;
        rounds = drive_with(*design, run, warmup, now_s(CLOCK_MONOTONIC), &warmup_stop);
      }
      // Every warm-up event was handled and published: the workers' counts start from here.
      const RunResult::Sum warmed = sum_of(run.stats);
      design->measure_from_here();
      Usage process0 = usage(RUSAGE_SELF), driver0 = usage(RUSAGE_THREAD);
      double driver_cpu0 = now_s(CLOCK_THREAD_CPUTIME_ID);
      double start = now_s(CLOCK_MONOTONIC);
      if (rounds.ok()) rounds = drive_with(*design, run, limits, start, &result.stop);

      run.stop.store(true);
      uint64_t one = 1;
      if (write(stop_fd, &one, sizeof one) != sizeof one) {
        std::fprintf(stderr, "storm: eventfd write: %s\n", errno_description(errno));
      }
      design->wake_all();
      result.wall_s = now_s(CLOCK_MONOTONIC) - start;
      for (auto& w : workers) w.join();
      double driver_cpu = now_s(CLOCK_THREAD_CPUTIME_ID) - driver_cpu0;
      Usage process1 = usage(RUSAGE_SELF), driver1 = usage(RUSAGE_THREAD);

      if (!rounds.ok()) {
        status = rounds.status();
      } else {
        result.rounds = *rounds;
        result.cpu_s = process1.cpu_s - process0.cpu_s - driver_cpu;
        result.vcsw = (process1.nvcsw - process0.nvcsw) - (driver1.nvcsw - driver0.nvcsw);
        result.total_cpu_s = process1.cpu_s - process0.cpu_s;
        result.total_vcsw = process1.nvcsw - process0.nvcsw;
        result.sum = minus(sum_of(run.stats), warmed);
        result.events = result.sum.handled;
      }
    }
  }  // epoll instances closed here, after the workers were joined
  close(stop_fd);
  conns.drain();
  if (!status.ok()) return status;
  return result;
}

}  // namespace shardloop::bench::storm
