// Per-worker counters.
//
// Thread-safety: each counter has one writer (the owner worker, except `wakeups_sent`, which
// any posting thread increments) and any number of readers. Single-writer counters are updated
// with a relaxed load+store instead of an atomic read-modify-write (no lock prefix on the hot
// path); readers get a relaxed snapshot, which may be mid-update across fields but never torn.
// The struct is cache-line aligned so that the owner's hot writes do not share a line with the
// fields around it in Worker, which other threads read and write (inbox, parked flag).
#pragma once

#include <atomic>
#include <cstdint>

namespace shardloop {

struct WorkerStats {
  uint64_t tasks_run = 0;  // jobs executed from the run queue
  uint64_t loop_iterations = 0;
  uint64_t polls = 0;         // calls into the poller
  uint64_t events = 0;        // events dispatched to a live handle
  uint64_t stale_events = 0;  // events dropped because their token's generation was old
  uint64_t timers_fired = 0;
  uint64_t inbox_messages = 0;
  uint64_t parks = 0;         // polls that were allowed to block
  uint64_t wakeups_sent = 0;  // eventfd writes made by others to wake this worker
  uint64_t uncaught_exceptions = 0;
  uint64_t live_tasks = 0;         // root tasks alive now
  uint64_t steal_searches = 0;     // searches of other workers' stealable queues
  uint64_t tasks_stolen = 0;       // stealable roots this worker took from others
  uint64_t stealable_started = 0;  // stealable roots this worker started (its own or stolen)
  // Time spent blocked in the poller (the rest of the wall time is busy); less the CPU used
  // inside those waits while Worker::set_measure_wait_cpu is on or with time_every_poll. Plus
  // the adaptive mode's yielding spins, their yields and the polls that found nothing (the
  // poll that found work counts as busy).
  uint64_t idle_ns = 0;
  // Wall time inside poller wait calls (the poll call's own cost plus any time blocked in it):
  // those allowed to block, and the non-blocking ones too with RuntimeOptions::time_every_poll.
  uint64_t poll_ns = 0;
  // With RuntimeOptions::time_every_poll: this thread's CPU time inside poller wait calls (raw:
  // it includes the cost of one CPU clock read per call, ~0.3 µs here, which callers comparing
  // it with other figures subtract). 0 otherwise.
  uint64_t poll_cpu_ns = 0;
  // Shared poll modes: events this worker fetched for fds another worker owns, handed over.
  uint64_t events_forwarded = 0;
  // Adaptive mode: non-blocking polls made while spinning before a park, and those that found
  // work (so the park was avoided).
  uint64_t spin_polls = 0;
  uint64_t spin_hits = 0;
  // Adaptive mode, yielding spins: yields that came back too late and ended the spin (another
  // thread, typically another process's CPU-bound one, held the CPU; adaptive_park.h).
  uint64_t spin_long_yields = 0;
  // Adaptive mode: moves this worker started for streams whose reader kept waking another, idle
  // worker (wake affinity, wake_affinity.h). Each starts at once, in the job it queues, unless
  // the stream is closed or its read interrupted first (then the move is given up).
  uint64_t wake_affinity_moves = 0;
  // Adaptive mode on epoll: loop iterations that had work queued and did not poll, since fewer
  // than 61 jobs had run since the last poll (Worker::skip_busy_poll).
  uint64_t busy_polls_skipped = 0;
};

class alignas(64) WorkerCounters {
 public:
  struct Counter {
    std::atomic<uint64_t> v{0};
    // Owner-only increment: a plain load and store, since no one else writes.
    void bump(uint64_t n = 1) {
      v.store(v.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    }
    void set(uint64_t n) { v.store(n, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };

  Counter tasks_run, loop_iterations, polls, events, stale_events, timers_fired, inbox_messages,
      parks, uncaught_exceptions, live_tasks, steal_searches, tasks_stolen, stealable_started,
      idle_ns, poll_ns, poll_cpu_ns, events_forwarded, spin_polls, spin_hits, spin_long_yields,
      wake_affinity_moves, busy_polls_skipped;
  // Written by other threads, so a real read-modify-write.
  std::atomic<uint64_t> wakeups_sent{0};

  WorkerStats snapshot() const {
    WorkerStats s;
    s.tasks_run = tasks_run.get();
    s.loop_iterations = loop_iterations.get();
    s.polls = polls.get();
    s.events = events.get();
    s.stale_events = stale_events.get();
    s.timers_fired = timers_fired.get();
    s.inbox_messages = inbox_messages.get();
    s.parks = parks.get();
    s.wakeups_sent = wakeups_sent.load(std::memory_order_relaxed);
    s.uncaught_exceptions = uncaught_exceptions.get();
    s.live_tasks = live_tasks.get();
    s.steal_searches = steal_searches.get();
    s.tasks_stolen = tasks_stolen.get();
    s.stealable_started = stealable_started.get();
    s.idle_ns = idle_ns.get();
    s.poll_ns = poll_ns.get();
    s.poll_cpu_ns = poll_cpu_ns.get();
    s.events_forwarded = events_forwarded.get();
    s.spin_polls = spin_polls.get();
    s.spin_hits = spin_hits.get();
    s.spin_long_yields = spin_long_yields.get();
    s.wake_affinity_moves = wake_affinity_moves.get();
    s.busy_polls_skipped = busy_polls_skipped.get();
    return s;
  }
};

}  // namespace shardloop
