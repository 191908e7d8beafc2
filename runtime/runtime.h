// Runtime: owns N workers, starts and stops them, and drains them gracefully.
//
//   Runtime rt({.workers = 4});
//   rt.start();
//   rt.spawn_on(0, [] -> Task<void> { co_await sleep_for(10ms); });
//   rt.drain(absl::Seconds(5));   // or rt.stop()
//
// A Runtime runs once: start() after stop() is an error. Destroying a running Runtime stops it.
//
// Thread-safety: start(), stop() and drain() from one controlling thread that is not a worker;
// spawn_on(), post_to(), call_on(), add_drain_hook() and the accessors from any thread
// (call_on() blocks, so never from a worker).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <future>
#include <memory>
#include <type_traits>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/functional/any_invocable.h"
#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "runtime/adaptive_park.h"
#include "runtime/mutex.h"
#include "runtime/poll_mode.h"
#include "runtime/poller.h"
#include "runtime/steal_coordinator.h"
#include "runtime/task.h"
#include "runtime/worker.h"

namespace shardloop {

class SharedEpoll;

struct RuntimeOptions {
  // 0: one worker per CPU this process may run on (sched_getaffinity).
  size_t workers = 0;
  // Pin worker i to the i-th allowed CPU (modulo their count).
  bool pin_cpus = false;
  Backend backend = Backend::kAuto;
  // How workers poll (poll_mode.h). global and throttled need epoll: with kAuto they use it,
  // with kIoUring start() fails.
  PollMode poll_mode = PollMode::kAdaptive;
  // Adaptive mode: how long a worker polls without blocking before it parks (adaptive_park.h
  // says when it does; 0 turns spinning off).
  int64_t adaptive_spin_ns = 20'000;
  // Adaptive mode with no spare CPU (as many workers as CPUs, or more): a worker about to park
  // gives its CPU away with sched_yield() up to this many times, polling without blocking after
  // each, before it sleeps (adaptive_park.h says why; 0 turns it off). With exactly as many
  // workers as CPUs the yielding spin goes on past this count until adaptive_spin_ns has passed.
  int adaptive_spin_yields = 8;
  // Adaptive mode, wake affinity (wake_affinity.h): a stream that opted in (AsyncFd::follow_wakes,
  // net::Connection::follow_wakes) moves to another worker once this many of its reads in a row
  // each woke that worker from idle; 0 turns it off.
  uint32_t wake_affinity_reads = 2;
  // Time every poll call, wall and thread CPU, for WorkerStats::poll_ns and poll_cpu_ns: four
  // clock reads per loop iteration (two of them system calls), which benchmarks of the poll
  // path want (bench/storm) and a server does not. Off, only polls allowed to block are timed
  // (they are anyway, for the idle time) and poll_cpu_ns stays 0.
  bool time_every_poll = false;
  PollerOptions poller;
  // Threads of the runtime's blocking pool (scheduler::run_blocking(fn)), created on first use;
  // 0: scheduler::default_blocking_threads().
  size_t blocking_threads = 0;
};

struct DrainReport {
  size_t tasks_at_start = 0;   // root tasks alive when drain began
  size_t tasks_cancelled = 0;  // still alive at the deadline, destroyed by the stop
  bool deadline_hit = false;
  absl::Duration elapsed;
};

class Runtime {
 public:
  explicit Runtime(RuntimeOptions options = {});
  ~Runtime();
  Runtime(const Runtime&) = delete;
  Runtime& operator=(const Runtime&) = delete;

  // Resolves the backend (kAuto probes the kernel), starts the worker threads and has each create
  // its poller. Fails, with no worker left running, when the requested backend is refused or a
  // poller cannot be created.
  absl::Status start();
  // Stops every worker now: loops exit, suspended tasks are destroyed on their worker, threads
  // are joined. Idempotent.
  void stop();
  // Graceful stop: runs the drain hooks (listeners stop accepting), waits for every root task to
  // finish or `deadline` to pass, then stop()s.
  DrainReport drain(absl::Duration deadline);

  bool running() const { return state_.load(std::memory_order_acquire) == State::kRunning; }
  size_t size() const { return workers_.size(); }
  Worker& worker(size_t i) { return *workers_[i]; }
  const RuntimeOptions& options() const { return options_; }
  // Root tasks alive across all workers.
  size_t live_tasks() const {
    return static_cast<size_t>(live_tasks_.load(std::memory_order_acquire));
  }

  static Worker* current_worker() { return Worker::current(); }

  // Runs `fn` on worker `w` (any thread, non-blocking).
  void post_to(size_t w, absl::AnyInvocable<void()> fn) { workers_[w]->post(std::move(fn)); }

  // Starts the task that `make_task()` returns as a root on worker `w`. The factory runs on that
  // worker, so the coroutine frame is created by its owner, and it is kept alive until the task
  // finishes, so `make_task` may itself be a coroutine lambda that uses its captures.
  void spawn_on(size_t w, absl::AnyInvocable<Task<void>()> make_task);

  // Starts the task as a stealable root (Worker::spawn_stealable): on the calling worker when
  // called from one of this runtime's workers, else queued on the workers in turn; an idle
  // worker may take it and run it. `make_task` runs on whichever worker starts the task, which
  // owns it from then on. `affinity`: see Worker::spawn_stealable (the worker it is queued on
  // is the one told who started it).
  void spawn(absl::AnyInvocable<Task<void>()> make_task, uint64_t affinity = 0);

  // Runs `fn` on worker `w` and blocks until it returns; for threads that are not workers.
  template <typename F>
  auto call_on(size_t w, F fn) -> std::invoke_result_t<F&> {
    using R = std::invoke_result_t<F&>;
    std::promise<R> done;
    auto result = done.get_future();
    post_to(w, [&fn, &done] {
      if constexpr (std::is_void_v<R>) {
        fn();
        done.set_value();
      } else {
        done.set_value(fn());
      }
    });
    return result.get();
  }

  // Hooks run by drain() on the draining thread, before it waits for tasks (listeners use this
  // to stop accepting). A hook must not block on workers.
  uint64_t add_drain_hook(absl::AnyInvocable<void()> hook);
  void remove_drain_hook(uint64_t id);

  // Hooks run once by stop() on the stopping thread, after every worker has exited, in the
  // reverse order of registration (companions such as the blocking pool shut down here). A hook
  // added after the stop runs at once.
  void add_stop_hook(absl::AnyInvocable<void()> hook);

  // An object of another layer that lives as long as this Runtime (the blocking pool, say):
  // the one stored under `key` (the address of something static of that layer's), made by
  // `make` on first use. Any thread; `make` runs under a lock and must not call companion().
  std::shared_ptr<void> companion(const void* key, absl::FunctionRef<std::shared_ptr<void>()> make);

 private:
  friend class Worker;
  friend struct internal::RootPromise;
  enum class State { kNew, kRunning, kStopped };

  void task_started() { live_tasks_.fetch_add(1, std::memory_order_relaxed); }
  // Wakes one parked worker to steal, unless none is idle or one is already searching
  // (worker_stealing.cc has the handshake).
  void notify_idle_worker();

 public:
  // For spawn_on()'s bookkeeping only: a counted spawn whose message was never run.
  void spawn_abandoned() { task_finished(); }

 private:
  // Release pairs with the acquire in live_tasks(): drain() then sees the task's effects.
  void task_finished() { live_tasks_.fetch_sub(1, std::memory_order_release); }
  // Called by each worker once it has tried to create its poller; blocks until every worker has
  // reported and returns whether they all succeeded (and so whether to run).
  bool report_init(absl::Status status);
  // Called by each worker after its loop exits; returns once every worker's loop has exited,
  // so teardown never races with a worker still running messages that point into another's tasks.
  void wait_all_loops_exited();
  void run_stop_hooks();

  RuntimeOptions options_;
  // The global and throttled modes' shared epoll instance (else null). Created by start()
  // before any worker; the workers' pollers refer to it, so it outlives them.
  std::unique_ptr<SharedEpoll> shared_epoll_;
  // Adaptive mode: bounds how many workers spin before parking at once. Created by start().
  std::unique_ptr<SpinGate> spin_gate_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<State> state_{State::kNew};
  std::atomic<int64_t> live_tasks_{0};

  // Work stealing (worker_stealing.cc). Created by start() before any worker runs, then shared.
  std::unique_ptr<StealCoordinator> steal_coordinator_;
  // Workers announced as about to block in their poller. seq_cst read-modify-writes only (both
  // sides of the park handshake), except the relaxed decrement after waking.
  std::atomic<size_t> idle_workers_{0};
  // Rotates which parked worker notify_idle_worker() tries first. Relaxed: only a hint.
  std::atomic<size_t> next_notify_{0};
  std::atomic<size_t> next_spawn_{0};  // spawn() from outside: round robin. Relaxed: a hint.

  Mutex init_mu_;
  std::condition_variable_any init_cv_;
  size_t init_reported_ ABSL_GUARDED_BY(init_mu_) = 0;
  absl::Status init_error_ ABSL_GUARDED_BY(init_mu_);

  Mutex loops_mu_;
  std::condition_variable_any loops_cv_;
  size_t loops_running_ ABSL_GUARDED_BY(loops_mu_) = 0;

  Mutex hooks_mu_;
  uint64_t next_hook_id_ ABSL_GUARDED_BY(hooks_mu_) = 1;
  absl::flat_hash_map<uint64_t, absl::AnyInvocable<void()>> hooks_ ABSL_GUARDED_BY(hooks_mu_);
  std::vector<absl::AnyInvocable<void()>> stop_hooks_ ABSL_GUARDED_BY(hooks_mu_);
  Mutex companions_mu_;
  absl::flat_hash_map<const void*, std::shared_ptr<void>> companions_
      ABSL_GUARDED_BY(companions_mu_);
  bool stop_hooks_ran_ ABSL_GUARDED_BY(hooks_mu_) = false;
};

// CPUs this process may run on, in ascending order.
std::vector<int> allowed_cpus();

// Starts `task` as a root on the current worker. Must be called on a worker.
void spawn(Task<void> task);
// Starts `task` as a stealable root (Worker::spawn_stealable) on the current worker.
void spawn_stealable(Task<void> task);
// The same with an affinity (0: none): the current worker records who starts it while it
// collects steal hints (Worker::take_steal_hints).
void spawn_stealable(Task<void> task, uint64_t affinity);

}  // namespace shardloop
