// Stealable roots: every one runs exactly once whichever worker takes it, a started root stays
// with the worker that started it, idle workers are woken to steal from a busy one, and roots
// still queued when the runtime stops are destroyed and uncounted. On both backends, since the
// wakeups go through each poller's wake mechanism.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <memory>
#include <thread>
#include <vector>

#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

class WorkStealing : public testing::PerBackendTest {};

uint64_t mix(uint64_t x) {
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  return x;
}

struct StressState {
  explicit StressState(size_t n) : runs(n) {}
  std::vector<std::atomic<uint8_t>> runs;
  std::atomic<size_t> done{0};
  std::atomic<size_t> moved_after_start{0};
  std::atomic<size_t> per_worker[4] = {};
};

// One stress task: marks itself run, sometimes spins (so queues build up behind it) and
// sometimes suspends (checking it resumes on the worker that started it).
Task<void> stress_task(StressState* st, size_t i) {
  Worker* start = Worker::current();
  st->per_worker[start->index()].fetch_add(1, std::memory_order_relaxed);
  st->runs[i].fetch_add(1, std::memory_order_relaxed);
  const uint64_t r = mix(i);
  if (r % 64 == 0) {
    const auto until = std::chrono::steady_clock::now() + 2us;
    while (std::chrono::steady_clock::now() < until) {
    }
  }
  if (r % 251 == 0) {
    co_await yield_now();
    if (Worker::current() != start) st->moved_after_start.fetch_add(1, std::memory_order_relaxed);
  }
  st->done.fetch_add(1, std::memory_order_release);
}

// Acceptance: 10 million stealable tasks (1 million under sanitizers) across 4 workers, each
// run exactly once. They are all spawned on worker 0 (by four spawners, so the others have
// to steal to get any), in bursts separated by yields.
TEST_P(WorkStealing, TenMillionTasksRunExactlyOnceAcrossFourWorkers) {
#ifdef SHARDLOOP_SANITIZED
  const size_t kTasks = 1'000'000;
#else
  const size_t kTasks = 10'000'000;
#endif
  auto st = std::make_unique<StressState>(kTasks);
  Runtime rt(options(4));
  ASSERT_TRUE(rt.start().ok());
  const size_t kSpawners = 4;
  for (size_t s = 0; s < kSpawners; ++s) {
    rt.spawn_on(0, [&st, s, kTasks]() -> Task<void> {
      for (size_t i = s; i < kTasks; i += kSpawners) {
        spawn_stealable(stress_task(st.get(), i));
        if (i % 4096 < kSpawners) co_await yield_now();
      }
    });
  }
  ASSERT_TRUE(testing::wait_until([&] { return st->done.load() == kTasks; }, 120s))
      << st->done.load() << " of " << kTasks << " done";
  ASSERT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  uint64_t stolen = 0, started = 0;
  for (size_t w = 0; w < rt.size(); ++w) {
    stolen += rt.worker(w).stats().tasks_stolen;
    started += rt.worker(w).stats().stealable_started;
  }
  rt.stop();
  size_t wrong = 0;
  for (size_t i = 0; i < kTasks; ++i) wrong += st->runs[i].load() != 1;
  EXPECT_EQ(wrong, 0u) << "tasks not run exactly once";
  EXPECT_EQ(started, kTasks);
  EXPECT_GT(stolen, 0u) << "three idle workers never stole from the one spawning";
  EXPECT_EQ(st->moved_after_start.load(), 0u) << "a started task resumed on another worker";
  size_t workers_used = 0;
  for (auto& n : st->per_worker) workers_used += n.load() > 0;
  EXPECT_GE(workers_used, 2u);
  std::printf("tasks per worker: %zu %zu %zu %zu; stolen %llu\n", st->per_worker[0].load(),
              st->per_worker[1].load(), st->per_worker[2].load(), st->per_worker[3].load(),
              static_cast<unsigned long long>(stolen));
}

// A busy worker's queued roots are taken by an idle one: worker 0 spawns, then keeps its thread
// busy, so every root that runs before it returns was stolen (and woke a parked worker).
TEST_P(WorkStealing, IdleWorkerIsWokenAndStealsFromABusyOne) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  // Let worker 1 park.
  ASSERT_TRUE(testing::wait_until([&] { return rt.worker(1).stats().parks > 0; }));
  std::atomic<size_t> ran_on_1{0};
  std::atomic<bool> release{false};
  const size_t kRoots = 100;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < kRoots; ++i) {
      spawn_stealable([](std::atomic<size_t>* n) -> Task<void> {
        if (Worker::current()->index() == 1) n->fetch_add(1);
        co_return;
      }(&ran_on_1));
    }
    // Busy: no run phase on worker 0 until the test says so.
    while (!release.load()) std::this_thread::yield();
    co_return;
  });
  EXPECT_TRUE(testing::wait_until([&] { return ran_on_1.load() == kRoots; }))
      << ran_on_1.load() << " of " << kRoots << " stolen while worker 0 was busy";
  release = true;
  ASSERT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  EXPECT_GT(rt.worker(1).stats().tasks_stolen, 0u);
  rt.stop();
}

// A stolen root belongs to its thief from then on: after sleeping on a timer (the thief's) it
// resumes there.
TEST_P(WorkStealing, StartedRootStaysWithTheWorkerThatStartedIt) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<size_t> checked{0}, moved{0}, on_1{0};
  std::atomic<bool> release{false};
  const size_t kRoots = 200;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < kRoots; ++i) {
      spawn_stealable([](auto* checked, auto* moved, auto* on_1) -> Task<void> {
        Worker* start = Worker::current();
        if (start->index() == 1) on_1->fetch_add(1);
        co_await sleep_for(1ms);
        co_await yield_now();
        if (Worker::current() != start) moved->fetch_add(1);
        checked->fetch_add(1);
      }(&checked, &moved, &on_1));
    }
    const auto until = std::chrono::steady_clock::now() + 20ms;
    while (std::chrono::steady_clock::now() < until && !release.load()) {
    }
    co_return;
  });
  ASSERT_TRUE(testing::wait_until([&] { return checked.load() == kRoots; }));
  EXPECT_EQ(moved.load(), 0u);
  EXPECT_GT(on_1.load(), 0u);
  rt.stop();
}

// Roots still queued when the runtime stops are destroyed on their worker, their frames freed
// (the sanitizer builds check for leaks) and the live-task count returned to zero.
TEST_P(WorkStealing, QueuedRootsAreDestroyedAtStop) {
  struct Guard {
    std::atomic<size_t>* destroyed;
    ~Guard() {
      if (destroyed != nullptr) destroyed->fetch_add(1);
    }
    Guard(std::atomic<size_t>* d) : destroyed(d) {}
    Guard(Guard&& o) noexcept : destroyed(std::exchange(o.destroyed, nullptr)) {}
  };
  Runtime rt(options(1));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<size_t> destroyed{0}, started{0};
  std::atomic<bool> spawned{false};
  const size_t kRoots = 20'000;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < kRoots; ++i) {
      spawn_stealable([](Guard g, std::atomic<size_t>* started) -> Task<void> {
        started->fetch_add(1);
        co_await sleep_for(std::chrono::hours(1));
      }(Guard(&destroyed), &started));
    }
    spawned = true;
    // Hold the worker until stop() has begun, so that at most one more run phase starts roots.
    while (rt.running()) std::this_thread::yield();
    co_return;
  });
  ASSERT_TRUE(testing::wait_until([&] { return spawned.load(); }));
  rt.stop();
  EXPECT_EQ(destroyed.load(), kRoots);
  EXPECT_LT(started.load(), kRoots) << "every root started: the unstarted path was not exercised";
  EXPECT_EQ(rt.live_tasks(), 0u);
}

// Runtime::spawn from a thread that is not a worker spreads roots over the workers; each runs.
TEST_P(WorkStealing, RuntimeSpawnFromOutsideRunsEveryRoot) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<size_t> ran{0};
  const size_t kRoots = 1000;
  for (size_t i = 0; i < kRoots; ++i) {
    rt.spawn([&ran]() -> Task<void> {
      ran.fetch_add(1);
      co_return;
    });
  }
  ASSERT_TRUE(testing::wait_until([&] { return ran.load() == kRoots; }));
  ASSERT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, WorkStealing, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
