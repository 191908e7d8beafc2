// The three poll designs bench/storm compares, written directly on raw epoll (no shardloop
// Worker), and the state a run shares between its driver and its T worker threads.
//
//   sharded   each worker thread has its own epoll instance holding the sockets it owns (a
//             contiguous block of N/T), level-triggered: only the owner reads, so it never sees
//             an fd again before it has read it.
//   global    one epoll instance shared by every worker; every idle worker blocks in epoll_wait
//             on it. Sockets are armed EPOLLONESHOT and re-armed with EPOLL_CTL_MOD after the
//             read (one thread per socket at a time, at the cost of one epoll_ctl per event), or
//             with --arm=edge EPOLLET and no re-arm, which is what Go's netpoller does.
//   throttled one shared epoll instance, but at most one worker polls at a time: it takes the
//             poller token (kFree -> kPolling), polls, keeps the first event, pushes the rest to
//             a shared run queue, gives the token back and wakes as many parked workers as it
//             pushed events. The others take events from the queue and park on a condition
//             variable when it is empty and the token is taken. Same arming as global. The run
//             queue is a std::deque behind one std::mutex with one std::condition_variable: the
//             simplest correct version, whose lock is part of what this design costs here (a
//             work-stealing runtime would use per-worker lock-free deques).
//
// Patterns (what the driver does; the designs only react):
//   burst       the driver writes 1 byte to all N sockets, then waits until all N were read;
//   trickle     the driver writes 1 byte to one socket (picked at random) and waits until it
//               was read, so the workers are parked between events;
//   stay-ready  the driver writes 1 byte to every socket once and nobody reads it: every socket
//               stays readable, the handler is empty and what is measured is the poll call.
//               All designs register level-triggered without EPOLLONESHOT for it (a one-shot or
//               edge-triggered socket would be reported once and never again): sharded polls its
//               own block; global has every thread poll the whole set at once, so two threads
//               may be handed the same socket in the same instant; throttled's poller polls only
//               when the run queue is empty, which bounds the queue to one poll's worth.
//
// A stop eventfd is registered level-triggered in every epoll instance; the driver makes it
// readable (and never reads it) to wake every blocked worker at the end of a run.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/storm/connection_set.h"

namespace shardloop::bench::storm {

// The first three are the bare designs on raw epoll (above); the rt-* ones are the shardloop
// Runtime itself in each poll mode (runtime_design.h).
enum class Design {
  kSharded,
  kGlobal,
  kThrottled,
  kRtSharded,
  kRtGlobal,
  kRtThrottled,
  kRtAdaptive,
  kRtShardedUring,
  kRtAdaptiveUring,
};
inline constexpr Design kAllDesigns[] = {
    Design::kSharded,    Design::kGlobal,         Design::kThrottled,
    Design::kRtSharded,  Design::kRtGlobal,       Design::kRtThrottled,
    Design::kRtAdaptive, Design::kRtShardedUring, Design::kRtAdaptiveUring};
enum class Pattern { kBurst, kTrickle, kStayReady };
enum class Arm { kOneshot, kEdge };
// Who makes the sockets ready: the storm's own driver thread, outside every design (the
// default), or a task on worker 0 of the runtime designs, as the Go peer's driver is a goroutine
// on the same Ps as its readers (runtime_design.h).
enum class Driver { kThread, kTask };

const char* design_name(Design d);
const char* pattern_name(Pattern p);
const char* arm_name(Arm a);

struct RunConfig {
  Design design = Design::kSharded;
  Pattern pattern = Pattern::kBurst;
  Arm arm = Arm::kOneshot;  // global and throttled, burst and trickle only
  int threads = 1;
  int max_events = 128;  // epoll_wait capacity; throttled's fairness bound per poll
  // What reading the thread CPU clock itself adds to a bracketed interval (it is a system call),
  // subtracted from each poll's CPU time; see calibrate_cpu_clock().
  uint64_t cpu_clock_overhead_ns = 0;
  // Runtime designs only: time every poll call (RuntimeOptions::time_every_poll), for the poll
  // figures. Off, the runtime runs as it does in production (two thread-CPU clock system calls
  // fewer per loop iteration) and reports no poll figures: the fair setting for events/s and CPU
  // per event against the Go peer, which times nothing. The bare designs always time.
  bool time_polls = true;
  Driver driver = Driver::kThread;
};

// The design's name as runs report it: "rt-adaptive", or "rt-adaptive+task" with the task driver.
std::string run_label(const RunConfig& config);

// When a run ends: whichever bound comes first.
struct RunLimits {
  double duration_s = 1.0;
  // The other bound: burst rounds, trickle events, stay-ready events.
  uint64_t max_iterations = 100'000'000;
  // Burst and trickle: seconds of the same rounds before the measured part, measured by nothing
  // (storm_run.h says why).
  double warmup_s = 0;
};

// The median CPU time between two back-to-back CLOCK_THREAD_CPUTIME_ID reads on this thread.
uint64_t calibrate_cpu_clock();

// A count with one writer: a relaxed load and store (no read-modify-write, nobody else
// writes), so that another thread may read it while it runs.
class Tally {
 public:
  Tally& operator++() { return *this += 1; }
  Tally& operator+=(uint64_t n) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
    return *this;
  }
  Tally& operator=(uint64_t n) {
    v_.store(n, std::memory_order_relaxed);
    return *this;
  }
  operator uint64_t() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

// What one worker thread counted. Written only by that thread. The driver reads it after the
// thread was joined (join orders the accesses), and at the end of a warm-up, when every event
// of it was handled and published (publish_consumed's seq_cst addition to `consumed` orders the
// counts before the driver's load that saw it; what the thread counts later, polls that found
// nothing, may land on either side). `progress`: the driver reads it during a stay-ready run,
// a rough count for the --max_iterations bound. alignas(64): one cache line per thread, so
// counting never bounces a line between cores.
struct alignas(64) ThreadStats {
  Tally polls;          // epoll_wait calls that did not time out
  Tally polled_events;  // events they returned (the stop fd not counted)
  Tally handled;        // events handled: bytes read, or stay-ready events processed
  Tally stale_events;   // events whose read found nothing (another thread had it)
  Tally spurious;       // polls with 0 events or only stale ones; futile condvar wakeups
  Tally idle_timeouts;  // polls or parks that ended by timeout (idle, not spurious)
  Tally poll_wall_ns;   // CLOCK_MONOTONIC inside epoll_wait
  Tally poll_cpu_ns;    // this thread's CPU clock inside epoll_wait
  std::atomic<uint64_t> progress{0};
};

// Shared between the driver and the workers of one run.
//
// Thread-safety: `consumed` is added to by workers (after the events were handled, before the
// worker blocks again) and read by the driver; `target` is written by the driver before it makes
// the round's sockets readable and read by workers after they read a byte; the kernel's socket
// locks order the driver's store before the worker's load in practice. The driver thread also
// re-checks `consumed` every few milliseconds, so for it a stale `target` could delay a round
// but never lose it; the task driver (runtime_design.cc) relies on that order alone, since only
// the reader that sees its addition reach `target` resumes it.
// `done_seq` is a futex word: the worker whose addition reaches `target` increments it and wakes
// the driver. All three are seq_cst: the driver reads done_seq, then consumed, then sleeps on
// done_seq; the worker adds to consumed, then bumps done_seq, so either the driver sees the new
// count or its futex_wait sees the changed word and returns at once. `stop` is set by the driver
// and read by workers (seq_cst; the stop eventfd wakes the blocked ones).
struct RunState {
  RunState(const RunConfig& config, const ConnectionSet& conns, int stop_fd)
      : config(config), conns(conns), stop_fd(stop_fd), stats(config.threads) {}

  // Called by a worker before it blocks with `n` handled events not yet published: adds them
  // and wakes the driver thread if they reached the target.
  void publish_consumed(uint64_t n);
  // Adds `n` to consumed; true for the one addition that reached the target (its caller ends
  // the round). publish_consumed without the wakeup, for the task driver.
  bool add_consumed(uint64_t n);

  const RunConfig config;
  const ConnectionSet& conns;
  const int stop_fd;
  std::vector<ThreadStats> stats;  // [thread]
  alignas(64) std::atomic<uint64_t> consumed{0};
  std::atomic<uint64_t> target{0};
  alignas(64) std::atomic<uint32_t> done_seq{0};
  std::atomic<bool> stop{false};
  // Trickle's socket order (DriverRounds), seeded alike for every design: the driver's (one at
  // a time, thread or task), kept across a warm-up and the measured part.
  std::mt19937 trickle_rng{12345};
};

// One poll design set up for one run. setup() creates the epoll instance(s) and registers every
// worker-side fd and the stop fd; run_worker(t) is worker thread t's body, which returns once
// RunState::stop is set and the thread has seen it; wake_all() (driver, after setting stop and
// making the stop fd readable) wakes anything the stop fd does not reach. The destructor closes
// the epoll instances (after every worker was joined).
class PollDesign {
 public:
  virtual ~PollDesign() = default;
  virtual absl::Status setup() = 0;
  virtual void run_worker(int t) = 0;
  virtual void wake_all() {}
  // True if the design runs the driver itself (RunConfig::driver == kTask): then drive(), on
  // the storm's calling thread, makes the rounds and returns how many, setting *stop to what
  // ended the run, in place of the storm's driver thread (twice with a warm-up: for it, then
  // for the measured part).
  virtual bool drives_itself() const { return false; }
  virtual absl::StatusOr<uint64_t> drive(const RunLimits& /*limits*/, double /*start*/,
                                         const char** /*stop*/) {
    return absl::UnimplementedError("this design has no driver of its own");
  }
  // Between the warm-up and the measured part (driver): counters the design keeps outside
  // RunState::stats start over.
  virtual void measure_from_here() {}
};

std::unique_ptr<PollDesign> make_design(RunState& run);

}  // namespace shardloop::bench::storm
