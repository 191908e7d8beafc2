// BlockingPool: M threads that run blocking functions (file I/O, DNS, compression, a slow
// library call) for N consumers, normally the N workers of one Runtime, so that a worker never
// blocks its poller.
//
//   BlockingPool pool({.threads = 2, .consumers = rt.size()});
//   pool.submit(worker_index, [] { fsync(fd); },
//               [w](BlockingOutcome outcome) { w->post([outcome] { ... }); });
//
// Most users want `co_await run_blocking(pool, fn)` (scheduler/run_blocking.h), built on this.
//
// Queue design (seed 000, "N consumers vs M workers"): the submission path takes no lock
// shared by the consumers. Each consumer has its own single-producer ring (a Chase-Lev deque of
// which only the push end is used by the consumer and only the steal end by the pool), and
// every pool thread scans all rings round-robin from where it last found work. That is the
// seed's N-queues-M-workers design (its "P3-S4"): one shared lock (P3-S1) made every submit
// contend on one cache line and scaled worst; one pool thread (P3-S2) serialised the work;
// a thread per consumer (P3-S3) burned a core per consumer busy-waiting. A consumer's ring
// holds kDefaultDequeCapacity jobs; beyond that, and for threads that are not consumers
// (submit_shared), jobs go to one mutex-protected shared queue, which the pool scans as one
// more ring. A consumer with 256 jobs outstanding has saturated the pool; the lock is not what
// limits it then.
//
// Pool threads take one job at a time, never a batch: a blocking job can last milliseconds,
// and a thread must not sit on queued jobs that another, idle thread could run.
//
// Sleeping: a thread that finds nothing spins (re-scanning) for at most `spin`, and only if no
// other thread is already spinning, then parks on its own futex. A submit wakes a parked thread
// only if nobody is spinning; a spinner that finds work and was the last one wakes another
// thread if more work is visible (Tokio's rule, so a burst submitted while one thread was
// spinning is not run by that thread alone). The handshake is in blocking_pool.cc.
//
// Completion: `done(outcome)` is called exactly once per submitted job: on the pool thread
// after `fn` ran (outcome.status OK, outcome.exception what `fn` threw, if anything); on the
// shutting-down thread if shutdown(kReject) found the job still queued (kCancelled); or inline
// in submit() if the pool was already shut down (kFailedPrecondition). `done` must not throw
// and should be short: it typically posts to the consumer's inbox. Nothing is dropped silently.
//
// Thread-safety: submit(c, ...) from one thread at a time per consumer index c (worker c's
// thread); submit_shared() and stats() from any thread; shutdown() from any thread that is not
// a pool thread (concurrent calls are serialised; later ones return at once).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/functional/any_invocable.h"
#include "absl/status/status.h"
#include "runtime/mutex.h"
#include "scheduler/parker.h"
#include "runtime/work_stealing_deque.h"

namespace shardloop::scheduler {

// Idle pool threads scan for this long before parking. See blocking_pool.cc for the figure.
inline constexpr std::chrono::nanoseconds kDefaultBlockingSpin = std::chrono::microseconds(5);

// Pool threads when BlockingPoolOptions::threads is 0. See blocking_pool.cc for the reason.
size_t default_blocking_threads();

struct BlockingPoolOptions {
  size_t threads = 0;    // M; 0 means default_blocking_threads(). At most 64.
  size_t consumers = 1;  // N; consumer indices are 0..N-1
  std::chrono::nanoseconds spin = kDefaultBlockingSpin;
  std::string name = "blocking";  // thread name prefix (15 characters at most are kept)
};

enum class ShutdownMode {
  kDrain,   // run everything already queued, then stop
  kReject,  // finish the functions already running; complete the queued ones with kCancelled
};

struct BlockingOutcome {
  // OK: the function ran. kCancelled: shutdown(kReject) found it queued. kFailedPrecondition:
  // submitted after shutdown began. In the last two cases the function never ran.
  absl::Status status;
  // What the function threw, if it ran and threw.
  std::exception_ptr exception;
};

struct BlockingPoolStats {
  uint64_t jobs_run = 0;
  uint64_t jobs_rejected = 0;   // completed without running (shutdown)
  uint64_t parks = 0;           // times a pool thread went to sleep
  uint64_t wakeups = 0;         // times a submitter (or spinner) woke a parked thread
  uint64_t overflowed = 0;      // consumer submits that found their ring full
  uint64_t shared_submits = 0;  // submit_shared() calls
};

class BlockingPool {
 public:
  using Fn = absl::AnyInvocable<void() &&>;
  using Done = absl::AnyInvocable<void(BlockingOutcome) &&>;

  explicit BlockingPool(BlockingPoolOptions options = {});
  // shutdown(kDrain) if not shut down yet.
  ~BlockingPool();
  BlockingPool(const BlockingPool&) = delete;
  BlockingPool& operator=(const BlockingPool&) = delete;

  // Queues `fn` from consumer `consumer`; `done` receives the outcome (see the file comment).
  // An index >= consumers() goes through the shared queue, like submit_shared().
  void submit(size_t consumer, Fn fn, Done done);
  // The same from any thread, through the shared queue (one mutex): for threads that are not
  // consumers, and for jobs submitted from inside pool threads.
  void submit_shared(Fn fn, Done done);

  // Stops accepting work, deals with what is queued according to `mode`, joins the threads.
  // Returns after every submitted job's `done` has been called.
  void shutdown(ShutdownMode mode);

  size_t threads() const { return threads_.size(); }
  size_t consumers() const { return consumers_; }
  BlockingPoolStats stats() const;

 private:
  struct Job {
    Fn fn;
    Done done;
  };

  // Single-writer counter: a relaxed load+store, no locked instruction (as in WorkerCounters).
  struct Counter {
    std::atomic<uint64_t> v{0};
    void bump() { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
    uint64_t get() const { return v.load(std::memory_order_relaxed); }
  };

  // One consumer's submission ring. Aligned so that two consumers' hot words never share a
  // line (128: see internal::kFalseSharingRange).
  struct alignas(internal::kFalseSharingRange) ConsumerSlot {
    std::optional<DequeLocal<Job*>> local;  // push end: the consumer's thread only
    DequeStealer<Job*> stealer;             // steal end: pool threads
    // True while the consumer is inside submit(); shutdown() waits for it to drop (Dekker
    // with `closed_`, see submit()).
    std::atomic<bool> submitting{false};
    Counter overflowed;
  };

  struct alignas(internal::kFalseSharingRange) PoolThread {
    Parker parker;
    Counter jobs_run;
    Counter parks;
    std::thread thread;
  };

  enum Stop : int { kRunning = 0, kDraining = 1, kRejecting = 2 };

  void thread_main(size_t self);
  Job* find_job(size_t& cursor);
  bool any_job_visible() const;
  Job* spin_for_job(size_t& cursor, bool& spinning);
  Job* park(size_t self, size_t& cursor, bool& spinning);
  void stop_spinning_with_work();
  void run_job(PoolThread& me, Job* job) noexcept;
  void notify_new_job();
  void wake_one();
  void wake_all();
  void push_shared(Job* job);
  void reject(Job* job, absl::Status status) noexcept;

  const size_t consumers_;
  const std::chrono::nanoseconds spin_;
  const std::string name_;
  std::unique_ptr<ConsumerSlot[]> slots_;
  std::deque<PoolThread> threads_;  // deque: PoolThread is neither movable nor copyable

  // Read on every submit, written only when threads start/stop spinning or park: kept apart
  // from the slots and threads, which are written constantly.
  alignas(internal::kFalseSharingRange) std::atomic<bool> closed_{false};
  std::atomic<int> stop_{kRunning};
  // Threads that are scanning for work without having found any (or were woken to do so).
  std::atomic<uint32_t> spinning_{0};
  // Bit i set: pool thread i is parked, or about to park, and no one has claimed its wakeup.
  std::atomic<uint64_t> sleepers_{0};
  // Jobs in shared_, readable without the lock (the pool's scan skips the lock when zero).
  std::atomic<size_t> shared_count_{0};

  alignas(internal::kFalseSharingRange) Mutex shared_mu_;
  std::deque<Job*> shared_ ABSL_GUARDED_BY(shared_mu_);

  std::atomic<uint64_t> rejected_{0};
  std::atomic<uint64_t> wakeups_{0};
  std::atomic<uint64_t> shared_submits_{0};

  Mutex shutdown_mu_;
  bool shut_down_ ABSL_GUARDED_BY(shutdown_mu_) = false;
};

}  // namespace shardloop::scheduler
