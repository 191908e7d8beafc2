#include "scheduler/blocking_pool.h"

#include <pthread.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <string>
#include <utility>

#include "runtime/runtime.h"

// The sleep/wake handshake. Three seq_cst words: each consumer ring's `bottom` (written by the
// consumer's push_seq_cst), `spinning_` and `sleepers_` (the shared queue's `shared_count_`
// plays the role of a ring). Every operation below on them is seq_cst, so all of them lie in
// one total order S that respects program order.
//
//   submitter                               pool thread going to sleep
//   1. push the job (seq_cst store)         1. set my bit in sleepers_
//   2. if spinning_ > 0: done               2. if I was spinning: spinning_ -= 1
//   3. claim a bit of sleepers_ (CAS),      3. scan every ring again
//      spinning_ += 1 for that thread,      4. found a job or stopping: withdraw my bit (if a
//      unpark it                               submitter claimed it first, take its unpark)
//                                           5. else sleep until unparked; on waking I count
//                                              as spinning (the waker added me)
//
// Why no job is stranded with every thread asleep: take a submitter S and a thread T that
// ends asleep. If S's load in 2 or 3 came after T's step 1 in the order S, S sees T's bit, or
// T counted as a spinner in step 2 (step 1 precedes step 2); if S saw a spinner, that spinner
// leaves spinning either by parking (whose step 3 follows S's load, so it sees the job) or by
// finding work, and the last spinner to leave re-checks all rings and wakes a sleeper if it
// sees a job (stop_spinning_with_work). If S's loads came before T's step 1, S's push precedes
// T's step 3, which sees the job. A thread claimed in step 3 is counted in spinning_ before it
// is unparked, so concurrent submitters do not wake a second thread for the same work.
//
// A thread whose scan fails spins only if no other thread is spinning; the others park at
// once. (Threads woken for work count as spinners from the moment they are claimed, so a burst
// can briefly have several.) So an idle pool burns at most about one core, for at most `spin`.
//
// Shutdown: `closed_` against each consumer's `submitting` flag is a second Dekker pair
// (submit: set submitting, then read closed_; shutdown: set closed_, then wait for every
// submitting flag to drop), so a submit either sees closed_ and rejects, or its job is queued
// before shutdown looks at the queues.

namespace shardloop::scheduler {
namespace {

void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Pauses between scans while spinning, so a spinner re-reads the rings every few hundred
// nanoseconds instead of hammering their cache lines.
constexpr int kPausesPerScan = 16;
// How long the spin uses pause instructions before it switches to yielding between scans.
constexpr std::chrono::nanoseconds kPauseSpin = std::chrono::microseconds(1);

constexpr size_t kMaxThreads = 64;  // sleepers_ is a 64-bit mask

}  // namespace

// Default M: half the CPUs this process may use, at least 2. What M buys depends on the calls:
//  - Calls that block (sleep in the kernel) run M at a time: BM_BlockingPoolSleepingCalls
//    scales linearly, 5.2k/s at M = 1 to 21k/s at M = 4 for 100 us sleeps, and with M = 1 one
//    slow call stalls every worker's blocking work. Hence at least 2.
//  - For calls that are pure CPU, each pool thread competes with the workers for a CPU; seed
//    000 found M >= 2 within noise of one thread per consumer and suggested NumCPU/2.
//  - Near-empty calls measure only the pool's overhead, and one thread keeps up with them: on
//    our 2-CPU VM, in a quiet run of N = 1..8 x M = 1..4, the M values for a given N are within
//    20% of each other (5.7-9.2M calls/s; the one-mutex baseline, 0.38-0.69M), and on a loaded
//    machine the run-to-run variation exceeds the differences. That grid does not argue for a
//    larger M.
size_t default_blocking_threads() {
  const size_t cpus = allowed_cpus().size();
  return std::clamp<size_t>(cpus / 2, 2, kMaxThreads);
}

BlockingPool::BlockingPool(BlockingPoolOptions options)
    : consumers_(std::max<size_t>(options.consumers, 1)),
      spin_(std::max(options.spin, std::chrono::nanoseconds(0))),
      name_(std::move(options.name)),
      slots_(new ConsumerSlot[consumers_]) {
  for (size_t i = 0; i < consumers_; ++i) {
    auto [local, stealer] = make_work_stealing_deque<Job*>();
    slots_[i].local.emplace(std::move(local));
    slots_[i].stealer = std::move(stealer);
  }
  size_t m = options.threads == 0 ? default_blocking_threads() : options.threads;
  assert(m <= kMaxThreads && "BlockingPool supports at most 64 threads");
  m = std::min(m, kMaxThreads);
  for (size_t i = 0; i < m; ++i) threads_.emplace_back();
  for (size_t i = 0; i < m; ++i) threads_[i].thread = std::thread([this, i] { thread_main(i); });
}

BlockingPool::~BlockingPool() { shutdown(ShutdownMode::kDrain); }

// --- submitting ----------------------------------------------------------------------------

void BlockingPool::submit(size_t consumer, Fn fn, Done done) {
  if (consumer >= consumers_) {
    submit_shared(std::move(fn), std::move(done));  // no ring of its own: the shared queue
    return;
  }
  ConsumerSlot& slot = slots_[consumer];
  // Allocated first, so nothing can throw while `submitting` is set (shutdown waits on it).
  auto* job = new Job{std::move(fn), std::move(done)};
  slot.submitting.store(true, std::memory_order_seq_cst);
  if (closed_.load(std::memory_order_seq_cst)) {
    // Release: nothing to publish, but keeps every store to the flag at least release.
    slot.submitting.store(false, std::memory_order_release);
    reject(job,
           absl::FailedPreconditionError("BlockingPool is shut down; the function was not run"));
    return;
  }
  if (!slot.local->push_seq_cst(job)) {
    slot.overflowed.bump();
    push_shared(job);
  }
  // Release pairs with the seq_cst (acquire) load in shutdown(): once shutdown() sees false,
  // our push is visible to its final sweep of the queues.
  slot.submitting.store(false, std::memory_order_release);
  notify_new_job();
}

void BlockingPool::submit_shared(Fn fn, Done done) {
  auto* job = new Job{std::move(fn), std::move(done)};
  shared_submits_.fetch_add(1, std::memory_order_relaxed);  // statistics only
  {
    MutexLock lock(&shared_mu_);
    // closed_ is set under this lock, so the check and the push are atomic with respect to it.
    if (!closed_.load(std::memory_order_seq_cst)) {
      shared_.push_back(job);
      shared_count_.store(shared_.size(), std::memory_order_seq_cst);
      job = nullptr;
    }
  }
  if (job != nullptr) {
    reject(job,
           absl::FailedPreconditionError("BlockingPool is shut down; the function was not run"));
    return;
  }
  notify_new_job();
}

void BlockingPool::push_shared(Job* job) {
  MutexLock lock(&shared_mu_);
  shared_.push_back(job);
  // seq_cst: this store is the "push" of the sleep handshake for the shared queue.
  shared_count_.store(shared_.size(), std::memory_order_seq_cst);
}

void BlockingPool::notify_new_job() {
  // A spinner will see the job: it re-scans before it parks (see the file comment).
  if (spinning_.load(std::memory_order_seq_cst) != 0) return;
  wake_one();
}

void BlockingPool::wake_one() {
  uint64_t mask = sleepers_.load(std::memory_order_seq_cst);
  while (mask != 0) {
    const uint64_t bit = mask & (~mask + 1);  // lowest: reuse the same few threads, keep them warm
    if (sleepers_.compare_exchange_weak(mask, mask & ~bit, std::memory_order_seq_cst)) {
      spinning_.fetch_add(1, std::memory_order_seq_cst);  // the woken thread starts as a spinner
      threads_[std::countr_zero(bit)].parker.unpark();
      wakeups_.fetch_add(1, std::memory_order_relaxed);  // statistics only
      return;
    }
  }
}

void BlockingPool::wake_all() {
  uint64_t mask = sleepers_.exchange(0, std::memory_order_seq_cst);
  while (mask != 0) {
    const int i = std::countr_zero(mask);
    mask &= mask - 1;
    spinning_.fetch_add(1, std::memory_order_seq_cst);  // same accounting as wake_one()
    threads_[i].parker.unpark();
  }
}

// --- pool threads --------------------------------------------------------------------------

void BlockingPool::thread_main(size_t self) {
  std::string name = name_.substr(0, 11) + "-" + std::to_string(self);
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
  PoolThread& me = threads_[self];
  // Threads start their scans at different consumers, so they do not all CAS the same ring.
  size_t cursor = self * (consumers_ + 1) / threads_.size();
  bool spinning = false;  // whether this thread is counted in spinning_
  for (;;) {
    const int stop = stop_.load(std::memory_order_seq_cst);
    if (stop == kRejecting) break;
    Job* job = find_job(cursor);
    if (job == nullptr && stop == kRunning) job = spin_for_job(cursor, spinning);
    if (job == nullptr && stop == kRunning) job = park(self, cursor, spinning);
    if (job != nullptr) {
      if (spinning) {
        spinning = false;
        stop_spinning_with_work();
      }
      run_job(me, job);
      continue;
    }
    // Draining and nothing found: once draining, no submit can add work (shutdown() waited
    // for the submitters), so empty queues stay empty.
    if (stop == kDraining) break;
  }
  if (spinning) spinning_.fetch_sub(1, std::memory_order_seq_cst);
}

BlockingPool::Job* BlockingPool::find_job(size_t& cursor) {
  // Sources 0..N-1 are the consumer rings, N is the shared queue; round-robin from where this
  // thread last found work, so no consumer (nor the shared queue) can be starved by the others.
  const size_t sources = consumers_ + 1;
  for (size_t i = 0; i < sources; ++i) {
    size_t s = cursor + i;
    if (s >= sources) s -= sources;
    Job* job = nullptr;
    if (s < consumers_) {
      if (std::optional<Job*> stolen = slots_[s].stealer.steal()) job = *stolen;
    } else if (shared_count_.load(std::memory_order_seq_cst) != 0) {
      MutexLock lock(&shared_mu_);
      if (!shared_.empty()) {
        job = shared_.front();
        shared_.pop_front();
        shared_count_.store(shared_.size(), std::memory_order_seq_cst);
      }
    }
    if (job != nullptr) {
      cursor = s + 1 == sources ? 0 : s + 1;
      return job;
    }
  }
  return nullptr;
}

bool BlockingPool::any_job_visible() const {
  for (size_t i = 0; i < consumers_; ++i) {
    if (!slots_[i].stealer.empty()) return true;
  }
  return shared_count_.load(std::memory_order_seq_cst) != 0;
}

// Spin length (kDefaultBlockingSpin = 5 us). Parking costs the next submitter a futex wake
// (a system call) and its job the sleeper's wake-up latency; bench/scheduler measures a
// park/unpark round trip (BM_ParkUnparkRoundTrip) at 2.2-3.1 us on our 2-CPU VMs. By the
// ski-rental argument, spinning about as long as a park and wake cost wastes at most twice what
// the best choice in hindsight would, so the spin is one round trip, rounded up. The spin sweep
// in the same benchmark agrees: with no spin, 10-50% of calls park and throughput drops 2.5-9x;
// 2 us recovers part of it; from 5 us on the figures plateau (differences within run-to-run
// noise), and a longer spin only burns more CPU each time the pool goes idle.
// After the first microsecond the spinner yields between scans instead of pausing, so on a
// machine with more runnable threads than CPUs it does not keep the submitter it waits for off
// the CPU (without that, a 200 us spin made the pool 10x slower on 2 CPUs).
BlockingPool::Job* BlockingPool::spin_for_job(size_t& cursor, bool& spinning) {
  if (!spinning) {
    // One spinner is enough to catch the next job; the rest park straight away. (Threads
    // woken for work count as spinners too, so a burst can have several.)
    uint32_t none = 0;
    if (!spinning_.compare_exchange_strong(none, 1, std::memory_order_seq_cst)) return nullptr;
    spinning = true;
  }
  if (spin_.count() == 0) return nullptr;
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + spin_;
  auto now = start;
  do {
    if (now - start < kPauseSpin) {
      for (int i = 0; i < kPausesPerScan; ++i) cpu_relax();
    } else {
      // Past the first microsecond, scan between yields: if the submitter we are waiting for
      // shares our CPU (more runnable threads than CPUs), it gets to run instead of our spin.
      std::this_thread::yield();
    }
    if (Job* job = find_job(cursor)) return job;
    // Relaxed: an early look; the main loop re-reads stop_ with seq_cst.
    if (stop_.load(std::memory_order_relaxed) != kRunning) return nullptr;
    now = std::chrono::steady_clock::now();
  } while (now < deadline);
  return nullptr;
}

BlockingPool::Job* BlockingPool::park(size_t self, size_t& cursor, bool& spinning) {
  PoolThread& me = threads_[self];
  const uint64_t bit = uint64_t{1} << self;
  // Steps 1-2 of the handshake: announce, then stop counting as a spinner (in this order).
  sleepers_.fetch_or(bit, std::memory_order_seq_cst);
  if (spinning) {
    spinning = false;
    spinning_.fetch_sub(1, std::memory_order_seq_cst);
  }
  // Step 3: look again now that submitters can see us.
  Job* job = find_job(cursor);
  if (job != nullptr || stop_.load(std::memory_order_seq_cst) != kRunning) {
    if ((sleepers_.fetch_and(~bit, std::memory_order_seq_cst) & bit) == 0) {
      // A submitter (or shutdown) claimed our bit first: it counted us as spinning and is
      // about to unpark us. Take that token now, or our next park would return at once.
      me.parker.park();
      spinning = true;
    } else if (job != nullptr && any_job_visible()) {
      // We stopped spinning in step 2 without running the last-spinner check (a submitter
      // that saw us spinning woke nobody); we are about to be busy, so pass the rest on.
      wake_one();
    }
    return job;
  }
  me.parks.bump();
  me.parker.park();
  spinning = true;  // whoever unparked us added us to spinning_
  return nullptr;
}

void BlockingPool::stop_spinning_with_work() {
  // The last spinner leaving: submitters that saw it spinning woke nobody, so if more work is
  // visible, hand it to a sleeper instead of leaving it for this thread alone.
  if (spinning_.fetch_sub(1, std::memory_order_seq_cst) == 1 && any_job_visible()) wake_one();
}

void BlockingPool::run_job(PoolThread& me, Job* job) noexcept {
  std::unique_ptr<Job> owned(job);
  BlockingOutcome outcome;
  try {
    std::move(owned->fn)();
  } catch (...) {
    outcome.exception = std::current_exception();
  }
  Done done = std::move(owned->done);
  // The function and its captures die here, before the consumer learns the job finished (it
  // may free what they point to as soon as it does).
  owned.reset();
  me.jobs_run.bump();
  std::move(done)(std::move(outcome));
}

void BlockingPool::reject(Job* job, absl::Status status) noexcept {
  std::unique_ptr<Job> owned(job);
  Done done = std::move(owned->done);
  owned.reset();
  rejected_.fetch_add(1, std::memory_order_relaxed);  // statistics only
  std::move(done)(BlockingOutcome{std::move(status), nullptr});
}

// --- shutdown ------------------------------------------------------------------------------

void BlockingPool::shutdown(ShutdownMode mode) {
  MutexLock once(&shutdown_mu_);
  if (shut_down_) return;
  for (const PoolThread& t : threads_) {
    assert(t.thread.get_id() != std::this_thread::get_id() && "shutdown() from a pool thread");
    (void)t;
  }
  {
    // Under the shared lock so that submit_shared() checks and pushes atomically with it.
    MutexLock lock(&shared_mu_);
    closed_.store(true, std::memory_order_seq_cst);
  }
  // A submit that did not see closed_ is inside its critical section; wait it out (a few
  // instructions). After this, no job can be added anywhere.
  for (size_t i = 0; i < consumers_; ++i) {
    while (slots_[i].submitting.load(std::memory_order_seq_cst)) std::this_thread::yield();
  }
  stop_.store(mode == ShutdownMode::kDrain ? kDraining : kRejecting, std::memory_order_seq_cst);
  wake_all();
  for (PoolThread& t : threads_) t.thread.join();
  // After kDrain the queues are empty; after kReject they hold what never ran.
  const absl::Status cancelled =
      absl::CancelledError("BlockingPool shut down before the function ran");
  for (size_t i = 0; i < consumers_; ++i) {
    while (std::optional<Job*> job = slots_[i].stealer.steal()) reject(*job, cancelled);
  }
  std::deque<Job*> left;
  {
    MutexLock lock(&shared_mu_);
    left.swap(shared_);
    shared_count_.store(0, std::memory_order_seq_cst);
  }
  for (Job* job : left) reject(job, cancelled);
  shut_down_ = true;
}

BlockingPoolStats BlockingPool::stats() const {
  BlockingPoolStats s;
  for (const PoolThread& t : threads_) {
    s.jobs_run += t.jobs_run.get();
    s.parks += t.parks.get();
  }
  for (size_t i = 0; i < consumers_; ++i) s.overflowed += slots_[i].overflowed.get();
  s.jobs_rejected = rejected_.load(std::memory_order_relaxed);
  s.wakeups = wakeups_.load(std::memory_order_relaxed);
  s.shared_submits = shared_submits_.load(std::memory_order_relaxed);
  return s;
}

}  // namespace shardloop::scheduler
