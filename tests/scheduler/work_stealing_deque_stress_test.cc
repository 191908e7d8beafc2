// Acceptance stress test for the work-stealing deque: 10,000,000 tasks (1,000,000 under
// sanitizers) spawned by 4 owner threads, executed with random stealing (one at a time and
// steal-half), each executed exactly once, counted with a per-task flag.
//
// A task is a pointer to a record whose plain (non-atomic) payload the spawner writes just
// before pushing and the executor checks and clears: under ThreadSanitizer, a missing
// happens-before edge in the deque (push -> steal or pop) or a task run twice shows up as a
// data race on the payload, not only as a wrong count.
//
// Each thread spawns its share in random bursts into its own deque, keeps what does not fit in
// a private overflow FIFO (the caller's overflow policy) and refills the deque from it, runs its
// own tasks from the bottom, and now and then steals from a random victim; when its share is
// spawned and it has nothing left, it keeps stealing until every task has run. Built twice:
// default capacity and SHARDLOOP_SMALL_QUEUES (capacity 4, so push overflows constantly).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <deque>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/victim_picker.h"
#include "runtime/work_stealing_deque.h"
#include "runtime/xorshift.h"
#include "tests/scheduler/test_support.h"

namespace shardloop::scheduler {
namespace {

struct TaskRecord {
  uint64_t payload;  // plain on purpose (see the file comment)
};
using Task = TaskRecord*;

constexpr size_t kThreads = 4;
constexpr uint64_t kMagic = 0x5eed5eed5eed5eedull;

struct Shared {
  explicit Shared(uint64_t tasks)
      : total(tasks), records(new TaskRecord[tasks]()), runs(new std::atomic<uint8_t>[tasks]()) {}
  const uint64_t total;
  std::unique_ptr<TaskRecord[]> records;
  std::unique_ptr<std::atomic<uint8_t>[]> runs;  // times each task ran
  std::atomic<uint64_t> executed{0};             // published in batches
  std::atomic<uint64_t> duplicates{0};
  std::atomic<uint64_t> corrupt{0};  // payload not what the spawner wrote
  std::atomic<uint64_t> stolen{0};
  std::atomic<bool> give_up{false};  // a thread hit the deadline: stop everyone
  std::vector<DequeStealer<Task>> stealers;
};

class Owner {
 public:
  Owner(Shared& shared, size_t self, uint64_t seed, DequeLocal<Task> local)
      : shared_(shared), rng_(seed), picker_(self, kThreads, seed + 1), local_(std::move(local)) {}

  void run(uint64_t first, uint64_t last) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    uint64_t next = first;
    while (next < last) {
      // Spawn a burst: sometimes more than the deque holds, to exercise overflow.
      const uint64_t burst = 1 + rng_.below(static_cast<uint32_t>(2 * local_.capacity()));
      for (uint64_t i = 0; i < burst && next < last; ++i) spawn(next++);
      // Run part of what is queued.
      const uint32_t to_run = 1 + rng_.below(static_cast<uint32_t>(burst));
      for (uint32_t i = 0; i < to_run; ++i) {
        if (!run_one_local()) break;
      }
      if (rng_.below(16) == 0) steal_some();
      if (shared_.give_up.load(std::memory_order_relaxed)) return;
    }
    // Our share is spawned: drain our own, then help until everything has run.
    while (run_one_local()) {
    }
    flush();
    uint64_t idle_rounds = 0;
    while (shared_.executed.load(std::memory_order_acquire) < shared_.total) {
      if (steal_some()) {
        while (run_one_local()) {
        }
        flush();
      } else if (++idle_rounds % 1024 == 0) {
        if (std::chrono::steady_clock::now() > deadline) {
          shared_.give_up.store(true);
          return;
        }
        std::this_thread::yield();
      }
      if (shared_.give_up.load(std::memory_order_relaxed)) return;
    }
  }

 private:
  void spawn(uint64_t id) {
    Task t = &shared_.records[id];
    t->payload = id ^ kMagic;
    if (!overflow_.empty() || !local_.push(t)) overflow_.push_back(t);
  }

  // Pops one of our tasks (refilling the deque from the overflow FIFO first) and runs it.
  // False only when the deque and the overflow are both empty: thieves may empty the deque
  // between the refill and the pop, and the overflow is invisible to them.
  bool run_one_local() {
    for (;;) {
      while (!overflow_.empty() && local_.push(overflow_.front())) overflow_.pop_front();
      if (std::optional<Task> t = local_.pop()) {
        execute(*t);
        return true;
      }
      if (overflow_.empty()) return false;
    }
  }

  // Random victim, random kind of steal. Returns whether anything was taken.
  bool steal_some() {
    bool got = false;
    picker_.pick([&](size_t victim) {
      DequeStealer<Task>& s = shared_.stealers[victim];
      if (rng_.below(2) == 0) {
        if (std::optional<Task> t = s.steal()) {
          shared_.stolen.fetch_add(1, std::memory_order_relaxed);
          execute(*t);
          got = true;
        }
      } else if (size_t n = s.steal_half_into(local_)) {
        shared_.stolen.fetch_add(n, std::memory_order_relaxed);
        got = true;
      }
      return got;
    });
    return got;
  }

  void execute(Task t) {
    const uint64_t id = static_cast<uint64_t>(t - shared_.records.get());
    if (t->payload != (id ^ kMagic)) shared_.corrupt.fetch_add(1, std::memory_order_relaxed);
    t->payload = 0;
    if (shared_.runs[id].fetch_add(1, std::memory_order_relaxed) != 0) {
      shared_.duplicates.fetch_add(1, std::memory_order_relaxed);
    }
    if (++unpublished_ == 4096) flush();
  }

  void flush() {
    // Release pairs with the acquire loads of `executed`: a thread that sees the total also
    // sees every flag increment (they are relaxed RMWs, sequenced before this).
    shared_.executed.fetch_add(unpublished_, std::memory_order_release);
    unpublished_ = 0;
  }

  Shared& shared_;
  XorShift64 rng_;
  VictimPicker picker_;
  DequeLocal<Task> local_;
  std::deque<Task> overflow_;
  uint64_t unpublished_ = 0;
};

TEST(SCHED_SUITE(WorkStealingDequeStress), EveryTaskRunsExactlyOnce) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (SHARDLOOP_TEST_SEED to rerun)");
  const uint64_t kTasks = 10'000'000 / testing::kStressDivisor;
  Shared shared(kTasks);
  std::vector<DequeLocal<Task>> locals;
  for (size_t i = 0; i < kThreads; ++i) {
    auto [local, stealer] = make_work_stealing_deque<Task>();
    locals.push_back(std::move(local));
    shared.stealers.push_back(std::move(stealer));
  }
  std::vector<std::thread> threads;
  for (size_t i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i, local = std::move(locals[i])]() mutable {
      Owner owner(shared, i, seed * 31 + i, std::move(local));
      owner.run(kTasks * i / kThreads, kTasks * (i + 1) / kThreads);
    });
  }
  for (std::thread& t : threads) t.join();

  ASSERT_FALSE(shared.give_up.load()) << "tasks went missing: " << shared.executed.load() << " of "
                                      << kTasks << " ran before the deadline";
  EXPECT_EQ(shared.duplicates.load(), 0u);
  EXPECT_EQ(shared.corrupt.load(), 0u);
  EXPECT_EQ(shared.executed.load(), kTasks);
  EXPECT_GT(shared.stolen.load(), 0u) << "the test did not exercise stealing";
  uint64_t bad = 0;
  for (uint64_t i = 0; i < kTasks; ++i) {
    if (shared.runs[i].load(std::memory_order_relaxed) != 1) {
      if (bad++ < 10)
        ADD_FAILURE() << "task " << i << " ran " << int(shared.runs[i].load()) << " times";
    }
  }
  EXPECT_EQ(bad, 0u);
  ::testing::Test::RecordProperty("stolen", std::to_string(shared.stolen.load()));
}

}  // namespace
}  // namespace shardloop::scheduler
