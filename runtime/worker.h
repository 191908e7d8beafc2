// Worker: one thread, one Poller, one run queue, one timer queue, one inbox.
//
// The loop (worker.cc, Worker::run_loop) is:
//
//   run ready jobs -> start stealable roots -> take inbox messages
//     -> (about to park?) steal roots from a busy worker -> poll (0 timeout if work remains)
//     -> fire timers
//
// Stealable roots (spawn_stealable, worker_stealing.cc) are the only work that moves between
// workers: a root that has not started has touched no fd, timer or frame of its worker, so the
// worker that starts it becomes its owner as if it had been spawned there. A stealable root may
// carry an affinity (what its work belongs to, e.g. a connection); while steal hints are
// collected, the spawning worker learns who started each such root (steal_hint_ledger.h).
//
// Everything a worker owns (its fds, timers, coroutines) is touched only by its thread. Other
// threads reach it only through post(), which queues a message in the inbox and writes the
// poller's wakeup fd only when the worker is parked (about to block, or blocked, in the poller).
//
// Thread-safety: methods marked "owner only" must be called on this worker's thread (checked
// by assert_owner() in debug builds); post(), stats(), index() and runtime() from any thread.
#pragma once

#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/functional/any_invocable.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "runtime/adaptive_park.h"
#include "runtime/fd_registry.h"
#include "runtime/inbox.h"
#include "runtime/poller.h"
#include "runtime/root_task.h"
#include "runtime/run_queue.h"
#include "runtime/steal_hint_ledger.h"
#include "runtime/steal_hint_ring.h"
#include "runtime/task.h"
#include "runtime/timer_queue.h"
#include "runtime/victim_picker.h"
#include "runtime/work_stealing_deque.h"
#include "runtime/worker_stats.h"

namespace shardloop {

class AsyncFd;
class Runtime;

class Worker {
 public:
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;
  ~Worker();

  // The worker running on this thread, or nullptr on a thread that is not a worker.
  static Worker* current();

  size_t index() const { return index_; }
  Runtime& runtime() const { return runtime_; }
  // The backend this worker polls with (fixed once the runtime has started).
  Backend backend() const { return backend_; }
  // CPU this worker is pinned to, or -1.
  int cpu() const { return cpu_; }
  bool is_current() const { return current() == this; }

  // --- owner only ---------------------------------------------------------------------------
  // Queues a coroutine to be resumed in this worker's next run phase.
  void schedule(std::coroutine_handle<> h);
  // Queues a callback to run in this worker's next run phase.
  void defer(absl::AnyInvocable<void()> fn);
  // Starts `task` as a detached root on this worker (it first runs in the next run phase).
  // `already_counted`: the runtime's live-task count already includes it (Runtime::spawn_on).
  void spawn(Task<void> task, bool already_counted = false);
  // Like spawn(), but the root waits in this worker's stealable queue, from which an idle worker
  // may take it (half a queue at a time) before it parks. Once started, the root belongs to the
  // worker that started it, for good. Use it for work that may run anywhere: the task must not
  // capture this worker's connections, fds or timers (it may create its own once running).
  // `affinity` (opaque, 0: none) names what the work belongs to; while steal hints are
  // collected, who starts it is recorded here (take_steal_hints()).
  void spawn_stealable(Task<void> task, uint64_t affinity = 0);

  // Steal hints for this worker's affinity roots since the last call (see steal_hint_ledger.h
  // for what is counted and in which order); starts a new interval. One reader per runtime.
  StealHintReport take_steal_hints();

  absl::StatusOr<Token> register_fd(int fd, IoHandle* handle, uint32_t interest);
  // Stops delivering events for `fd`; events already fetched for it are dropped.
  void deregister_fd(int fd, Token token);
  size_t registered_fds() const { return registry_.live(); }

  // For handles that use completion operations instead of readiness: a token without a poller
  // registration, and its release once the handle's last completion has arrived.
  Token register_handle(IoHandle* handle) { return registry_.add(handle); }
  // The live handle registered under `token`, or nullptr once it was released.
  IoHandle* find_handle(Token token) const { return registry_.find(token.encode()); }
  void release_handle(Token token) { registry_.release(token); }
  // The poller's completion operations, or nullptr on a readiness-only backend.
  CompletionIo* completion_io() { return poller_->completion_io(); }
  PollerCounters poller_counters() const { return poller_->counters(); }

  // A handle that was closed while completions for it were still in flight keeps itself alive
  // until they arrive; it lingers here so that a stopping worker can wait for (or reclaim) it.
  void add_lingering(AsyncFd* fd) { lingering_.insert(fd); }
  void remove_lingering(AsyncFd* fd) { lingering_.erase(fd); }

  // Migration (AsyncFd::migrate_to): a started root leaves this worker's root list, and joins
  // the target's. Owner only, except attach_root() on a stopped worker (a discarded handoff).
  void detach_root(internal::RootPromise* root);
  void attach_root(internal::RootPromise* root);

  TimerId add_timer(TimePoint deadline, TimerQueue::Callback callback);
  bool cancel_timer(TimerId id);

  void assert_owner() const;

  // Cooperative budget: each job may complete this many I/O operations without suspending.
  // Past it, an operation that completed at once still suspends the coroutine (with its result)
  // and re-queues it behind the other jobs, so a connection whose data never runs out cannot
  // keep its worker from polling, taking messages or serving other connections.
  // Returns true when the caller should yield.
  bool spend_budget() { return --budget_ < 0; }

  // A buffer for readiness-mode zero-copy reads (AsyncFd::read_chunk), shared by every
  // connection of this worker: its contents are valid only until the reader's next co_await.
  absl::Span<char> scratch() {
    if (scratch_.empty()) scratch_.resize(kScratchBytes);
    return absl::MakeSpan(scratch_);
  }

  // Wake affinity (wake_affinity.h): the post()s made on this worker's thread that found another
  // worker of this runtime idle (parked, or spinning before a park), and the last one found so.
  uint64_t idle_wakes() const { return idle_wakes_; }
  size_t last_idle_woken() const { return last_idle_woken_; }
  // Jobs this worker has begun (run-queue jobs, dispatched events, started roots): unchanged
  // between two points of one task's run means nothing else ran in between.
  uint64_t jobs_begun() const { return jobs_begun_; }
  // Reads in a row that must each wake the same idle worker before a following stream moves
  // there; 0 (wake affinity off) outside the adaptive mode.
  uint32_t wake_affinity_reads() const { return wake_affinity_reads_; }
  void count_wake_affinity_move() { counters_.wake_affinity_moves.bump(); }

  // --- any thread ---------------------------------------------------------------------------
  // Runs `fn` on this worker. Messages posted after the worker stopped are destroyed unrun.
  void post(Inbox::Message fn);
  WorkerStats stats() const { return counters_.snapshot(); }
  // While on, the idle time in stats() excludes the CPU time this thread spends inside its
  // blocking polls (two clock reads per park; load sampling turns it on).
  void set_measure_wait_cpu(bool on) { measure_wait_cpu_.store(on, std::memory_order_relaxed); }
  // Stealable roots queued here (a hint: thieves and the owner race with it).
  size_t stealable_hint() const { return stealer_.size_hint(); }
  // While on, starts of this worker's affinity roots are recorded (here when it starts them
  // itself, through its StealHintRing when another worker does). Off by default: the
  // rebalancer turns it on. Switching it off discards what was collected (in the worker's next
  // run phase). Relaxed: a switch; a record racing with it is harmless.
  void set_collect_steal_hints(bool on) {
    collect_steal_hints_.store(on, std::memory_order_relaxed);
  }

 private:
  friend class Runtime;
  friend struct internal::RootPromise;

  // A stealable root waiting to start: its promise (a pointer, as the deque needs).
  using UnstartedRoot = internal::RootPromise*;
  using StealableDeque = std::pair<DequeLocal<UnstartedRoot>, DequeStealer<UnstartedRoot>>;

  Worker(Runtime& runtime, size_t index, size_t workers, Backend backend, int cpu);
  Worker(Runtime& runtime, size_t index, size_t workers, Backend backend, int cpu,
         StealableDeque deque);

  // Creates the poller on this worker's own thread (io_uring rings are single-issuer).
  absl::Status init_on_thread();
  void thread_main();
  void run_loop();
  void run_ready();
  // True if it took any message.
  bool take_inbox();
  // worker_stealing.cc
  // spawn_stealable(), for Runtime::spawn's roots that are already counted as live.
  void push_stealable(Task<void> task, uint64_t affinity, bool already_counted);
  void start_root(UnstartedRoot root);
  // Records who starts an affinity root (start_root), and folds thieves' records (owner).
  void note_affinity_start(UnstartedRoot root);
  void fold_steal_hints();
  void run_stealable();
  bool has_local_work() const;
  bool try_steal();
  bool stealable_elsewhere() const;  // seq_cst re-check half of the park handshake
  void adopt_unstarted_roots();
  // Any thread: wakes this worker if it is parked; true if this call woke it.
  bool wake_if_parked();
  // post(), on the posting thread: counts an idle wake for the worker running there, if it is
  // another worker of this runtime (wake affinity).
  void note_idle_wake_by_current();
  int64_t poll_timeout_ns();
  // With work queued (a poll timeout of 0): whether this loop iteration skips its poll (adaptive
  // mode on epoll, until kJobsPerBusyPoll jobs ran since the last poll).
  bool skip_busy_poll();
  void poll(int64_t timeout_ns);
  // Adaptive mode: polls without blocking for a short window before a park; true if that found
  // work (the park is skipped). See adaptive_park.h for when it spins. A spin that found nothing
  // takes its time off a positive `timeout_ns` (0 once a timer is due), so it delays no timer.
  bool spin_found_work(int64_t& timeout_ns);
  // Hands one event to the handle it names, if that is still registered (owner only).
  void dispatch(const PollEvent& ev);
  // Shared poll modes: events fetched for fds other workers own, batched per owner and posted.
  std::vector<PollEvent>& forward_batch(uint32_t owner);
  void forward_events();
  void teardown();
  void request_stop();  // any thread
  static int64_t thread_cpu_ns();

  Runtime& runtime_;
  const size_t index_;
  const int cpu_;
  const Backend backend_;
  std::unique_ptr<Poller> poller_;
  std::thread thread_;

  // Owner-only state.
  RunQueue ready_;
  TimerQueue timers_;
  FdRegistry registry_;
  internal::RootList roots_;
  std::vector<PollEvent> events_;
  const bool adaptive_;
  const bool time_every_poll_;  // RuntimeOptions::time_every_poll
  const uint32_t wake_affinity_reads_;
  uint64_t idle_wakes_ = 0;
  size_t last_idle_woken_ = 0;
  uint64_t jobs_begun_ = 0;
  SpinPolicy spin_policy_;
  std::vector<std::vector<PollEvent>> forward_;  // per owner; sized on first use
  bool forwarding_ = false;                      // some batch in forward_ is non-empty
  std::vector<Inbox::Message> inbox_batch_;
  absl::flat_hash_set<AsyncFd*> lingering_;
  // 64 KiB: a receive this large amortises the syscall well past the point of diminishing returns.
  static constexpr size_t kScratchBytes = 64 * 1024;
  std::vector<char> scratch_;
  // 128 operations per turn, as in Tokio's cooperative scheduling: large enough that a busy
  // connection amortises its turn, small enough that a turn lasts microseconds.
  static constexpr int kBudget = 128;
  int budget_ = kBudget;
  // Jobs run since the last poll, and how many may run before a poll that cannot block is made
  // anyway (skip_busy_poll; Tokio's event_interval).
  static constexpr size_t kJobsPerBusyPoll = 61;
  size_t jobs_since_poll_ = 0;
  // Stealable roots: the ring's owner end, and the excess when the ring is full (FIFO, never
  // stolen until it moves into the ring). `notify_pending_`: the refill pushed roots to the ring
  // since the last notify.
  DequeLocal<UnstartedRoot> stealable_;
  std::deque<UnstartedRoot> stealable_overflow_;
  VictimPicker victims_;
  bool notify_pending_ = false;
  // Steal hints: who started this worker's affinity roots in the current interval.
  StealHintLedger steal_hints_;
  uint64_t ring_drops_reported_ = 0;  // steal_hint_ring_.dropped() at the last take
  // Stealable roots started per run phase at most (see worker_stealing.cc).
  static constexpr size_t kStartsPerTurn = 256;

  // Shared with other threads.
  // The thieves' end of `stealable_`: any worker may steal through it (see the deque's rules).
  DequeStealer<UnstartedRoot> stealer_;  // assigned once, at construction
  // Thieves' records of this worker's affinity roots they started; consumed by the owner.
  StealHintRing steal_hint_ring_;
  std::atomic<bool> collect_steal_hints_{false};
  Inbox inbox_;
  // True while the worker is about to block, or blocked, in the poller. seq_cst: see inbox.h.
  std::atomic<bool> parked_{false};
  // True from the start of a spin or a park until the worker is back from it (unlike `parked_`,
  // which the waker clears): whether a post() found the worker idle. Written by the owner, read
  // by post()ers for wake affinity only, so relaxed: a stale value miscounts one wake of a
  // heuristic that needs a streak of them.
  std::atomic<bool> idle_{false};
  // Set by load sampling from any thread, read by the loop. Relaxed: a measurement switch.
  std::atomic<bool> measure_wait_cpu_{false};
  // Release by request_stop(), acquire by the loop; also read seq_cst in the park handshake.
  std::atomic<bool> stop_requested_{false};
  WorkerCounters counters_;
};

}  // namespace shardloop
