// Runtime lifecycle: start/stop, worker count, backend refusal and fallback, stop destroying
// suspended tasks, drain (clean and with a deadline), drain hooks, uncaught exceptions, pinning.
#include "runtime/runtime.h"

#include <gtest/gtest.h>
#include <sched.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/sleep.h"
#include "runtime/worker.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

using testing::workers;

TEST(RuntimeTest, AllowedCpusAreSortedAndNonEmpty) {
  std::vector<int> cpus = allowed_cpus();
  ASSERT_FALSE(cpus.empty());
  for (size_t i = 1; i < cpus.size(); ++i) EXPECT_LT(cpus[i - 1], cpus[i]);
  for (int c : cpus) EXPECT_GE(c, 0);
}

TEST(RuntimeTest, DefaultWorkerCountIsOnePerAllowedCpu) {
  Runtime rt;
  EXPECT_FALSE(rt.running());
  ASSERT_TRUE(rt.start().ok());
  EXPECT_TRUE(rt.running());
  EXPECT_EQ(rt.size(), allowed_cpus().size());
  rt.stop();
  EXPECT_FALSE(rt.running());
}

TEST(RuntimeTest, StartsTheRequestedWorkersEachOnItsOwnThread) {
  constexpr size_t kWorkers = 3;
  Runtime rt(workers(kWorkers));
  ASSERT_TRUE(rt.start().ok());
  ASSERT_EQ(rt.size(), kWorkers);
  EXPECT_EQ(Worker::current(), nullptr) << "the test thread is not a worker";
  std::vector<std::thread::id> threads;
  for (size_t i = 0; i < kWorkers; ++i) {
    Worker& w = rt.worker(i);
    EXPECT_EQ(w.index(), i);
    EXPECT_EQ(&w.runtime(), &rt);
    EXPECT_EQ(w.backend(), Backend::kEpoll);
    EXPECT_EQ(w.cpu(), -1) << "not pinned unless asked";
    EXPECT_EQ(rt.call_on(i, [] { return Worker::current(); }), &w);
    EXPECT_TRUE(rt.call_on(i, [&w] { return w.is_current(); }));
    threads.push_back(rt.call_on(i, [] { return std::this_thread::get_id(); }));
  }
  for (size_t i = 0; i < kWorkers; ++i) {
    EXPECT_NE(threads[i], std::this_thread::get_id());
    for (size_t j = i + 1; j < kWorkers; ++j) EXPECT_NE(threads[i], threads[j]);
  }
  rt.stop();
}

TEST(RuntimeTest, StartTwiceFails) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  absl::Status again = rt.start();
  EXPECT_EQ(again.code(), absl::StatusCode::kFailedPrecondition) << again;
  EXPECT_TRUE(rt.running());
  EXPECT_EQ(rt.size(), 1u);
  EXPECT_EQ(rt.call_on(0, [] { return 1; }), 1) << "the failed start broke the running one";
  rt.stop();
  EXPECT_FALSE(rt.start().ok()) << "a Runtime runs once";
  EXPECT_FALSE(rt.running());
}

// Undoes inject_io_uring_failure_for_testing() when a test ends.
struct InjectedUringFailure {
  explicit InjectedUringFailure(int err) { inject_io_uring_failure_for_testing(err); }
  ~InjectedUringFailure() { inject_io_uring_failure_for_testing(0); }
};

TEST(RuntimeTest, StartFailsWhenTheBackendIsRefused) {
  InjectedUringFailure refuse(EPERM);
  RuntimeOptions options = workers(2);
  options.backend = Backend::kIoUring;
  Runtime rt(options);
  absl::Status s = rt.start();
  EXPECT_FALSE(s.ok());
  EXPECT_FALSE(rt.running());
  rt.stop();  // harmless
}

TEST(RuntimeTest, AutoFallsBackToEpollWhenIoUringIsRefused) {
  InjectedUringFailure refuse(ENOSYS);
  RuntimeOptions options = workers(2);
  options.backend = Backend::kAuto;
  Runtime rt(options);
  ASSERT_TRUE(rt.start().ok());
  for (size_t i = 0; i < rt.size(); ++i) EXPECT_EQ(rt.worker(i).backend(), Backend::kEpoll);
  EXPECT_EQ(rt.call_on(1, [] { return 7; }), 7);
  rt.stop();
}

TEST(RuntimeTest, StartFailsWithNoWorkerRunningWhenAPollerCannotBeCreated) {
  // The backend resolves, but every worker's poller creation fails (bad io_uring options):
  // start() must report it and leave no worker thread running.
  if (!resolve_backend(Backend::kIoUring).ok()) GTEST_SKIP() << "io_uring unavailable here";
  RuntimeOptions options = workers(3);
  options.backend = Backend::kIoUring;
  options.poller.uring_buffer_count = 3;  // not a power of two
  Runtime rt(options);
  absl::Status s = rt.start();
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_FALSE(rt.running());
  rt.stop();
}  // and destruction joins nothing and leaks nothing

TEST(RuntimeTest, StopIsIdempotent) {
  Runtime rt(workers(2));
  rt.stop();  // before start: nothing to do
  ASSERT_TRUE(rt.start().ok());
  rt.stop();
  rt.stop();
  EXPECT_FALSE(rt.running());
}  // and the destructor stops once more

TEST(RuntimeTest, DestroyingARunningRuntimeStopsIt) {
  std::atomic<bool> destroyed{false};
  {
    Runtime rt(workers(2));
    ASSERT_TRUE(rt.start().ok());
    struct SetOnDestroy {
      std::atomic<bool>* flag;
      ~SetOnDestroy() { flag->store(true); }
    };
    std::promise<void> started;
    auto started_future = started.get_future();
    rt.call_on(1, [&] {
      spawn([](std::atomic<bool>* flag, std::promise<void>* started) -> Task<void> {
        SetOnDestroy guard{flag};
        started->set_value();
        co_await sleep_for(1h);
      }(&destroyed, &started));
    });
    // Wait until the body runs: a task that never started has no guard to destroy yet.
    ASSERT_EQ(started_future.wait_for(testing::kPatience), std::future_status::ready);
  }
  EXPECT_TRUE(destroyed.load());
}

// Sets its flag (and records the thread) when destroyed.
struct Guard {
  std::atomic<bool>* destroyed;
  std::atomic<bool>* on_owner_thread;
  std::thread::id owner;
  Guard(std::atomic<bool>* d, std::atomic<bool>* o)
      : destroyed(d), on_owner_thread(o), owner(std::this_thread::get_id()) {}
  Guard(const Guard&) = delete;
  ~Guard() {
    on_owner_thread->store(std::this_thread::get_id() == owner);
    destroyed->store(true);
  }
};

Task<void> sleep_an_hour_holding(std::atomic<bool>* destroyed, std::atomic<bool>* on_owner,
                                 std::promise<void>* started, bool* finished) {
  Guard guard(destroyed, on_owner);
  started->set_value();
  co_await sleep_for(1h);
  *finished = true;
}

TEST(RuntimeTest, StopDestroysSuspendedTasksOnTheirWorker) {
  std::atomic<bool> destroyed{false}, on_owner{false};
  bool finished = false;
  std::promise<void> started;
  auto started_future = started.get_future();
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  rt.spawn_on(1, [&] { return sleep_an_hour_holding(&destroyed, &on_owner, &started, &finished); });
  ASSERT_EQ(started_future.wait_for(testing::kPatience), std::future_status::ready);
  EXPECT_EQ(rt.live_tasks(), 1u);
  EXPECT_FALSE(destroyed.load());

  rt.stop();
  EXPECT_TRUE(destroyed.load()) << "stop() did not destroy the suspended task";
  EXPECT_TRUE(on_owner.load()) << "the task was destroyed on another thread";
  EXPECT_FALSE(finished);
  EXPECT_EQ(rt.live_tasks(), 0u);
  EXPECT_EQ(rt.worker(1).stats().live_tasks, 0u);
}

// Destroys a whole chain of nested suspended frames, not only the root.
Task<void> nested_sleeper(int depth, std::atomic<int>* alive) {
  alive->fetch_add(1);
  struct Dec {
    std::atomic<int>* alive;
    ~Dec() { alive->fetch_sub(1); }
  } dec{alive};
  if (depth == 0) {
    co_await sleep_for(1h);
  } else {
    co_await nested_sleeper(depth - 1, alive);
  }
}

TEST(RuntimeTest, StopDestroysNestedSuspendedFrames) {
  std::atomic<int> alive{0};
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  rt.spawn_on(0, [&] { return nested_sleeper(10, &alive); });
  ASSERT_TRUE(testing::wait_until([&] { return alive.load() == 11; }));
  rt.stop();
  EXPECT_EQ(alive.load(), 0);
}

Task<void> sleep_then_set(Clock::duration d, std::atomic<int>* finished) {
  co_await sleep_for(d);
  finished->fetch_add(1);
}

TEST(RuntimeTest, DrainWaitsForTasksThatFinishInTime) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> finished{0};
  // spawn via call_on so the tasks are alive (counted) before drain starts.
  rt.call_on(0, [&] {
    spawn(sleep_then_set(20ms, &finished));
    spawn(sleep_then_set(50ms, &finished));
  });
  rt.call_on(1, [&] { spawn(sleep_then_set(30ms, &finished)); });
  ASSERT_EQ(rt.live_tasks(), 3u);

  DrainReport report = rt.drain(absl::Seconds(20));
  EXPECT_EQ(report.tasks_at_start, 3u);
  EXPECT_EQ(report.tasks_cancelled, 0u);
  EXPECT_FALSE(report.deadline_hit);
  EXPECT_EQ(finished.load(), 3);
  EXPECT_LT(report.elapsed, absl::Seconds(20)) << "drain waited for the deadline needlessly";
  EXPECT_FALSE(rt.running());
}

TEST(RuntimeTest, DrainCancelsTasksStillAliveAtTheDeadline) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<bool> destroyed{false}, on_owner{false};
  bool sleeper_finished = false;
  std::promise<void> started;
  auto started_future = started.get_future();
  rt.call_on(
      0, [&] { spawn(sleep_an_hour_holding(&destroyed, &on_owner, &started, &sleeper_finished)); });
  ASSERT_EQ(started_future.wait_for(testing::kPatience), std::future_status::ready);

  DrainReport report = rt.drain(absl::Milliseconds(100));
  EXPECT_EQ(report.tasks_at_start, 1u);
  EXPECT_EQ(report.tasks_cancelled, 1u);
  EXPECT_TRUE(report.deadline_hit);
  EXPECT_GE(report.elapsed, absl::Milliseconds(100));
  EXPECT_LT(report.elapsed, absl::Seconds(2));
  EXPECT_TRUE(destroyed.load()) << "the cancelled task's frame was not destroyed";
  EXPECT_TRUE(on_owner.load());
  EXPECT_FALSE(sleeper_finished);
  EXPECT_EQ(rt.live_tasks(), 0u);
  EXPECT_FALSE(rt.running());
}

TEST(RuntimeTest, DrainOfAnIdleRuntimeReturnsAtOnce) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  DrainReport report = rt.drain(absl::Seconds(20));
  EXPECT_EQ(report.tasks_at_start, 0u);
  EXPECT_EQ(report.tasks_cancelled, 0u);
  EXPECT_FALSE(report.deadline_hit);
  EXPECT_LT(report.elapsed, absl::Seconds(20));
  EXPECT_FALSE(rt.running());
}

TEST(RuntimeTest, DrainRunsHooksBeforeWaiting) {
  // The task runs until told to stop, like a server's accept loop; only the hook tells it, so
  // the drain finishes early only if the hook ran before the waiting began.
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<bool> stop_flag{false};
  std::atomic<int> hook_runs{0}, removed_hook_runs{0};
  rt.call_on(0, [&] {
    spawn([](std::atomic<bool>* stop) -> Task<void> {
      while (!stop->load()) co_await sleep_for(1ms);
    }(&stop_flag));
  });
  rt.add_drain_hook([&] {
    hook_runs.fetch_add(1);
    stop_flag.store(true);
  });
  uint64_t removed = rt.add_drain_hook([&] { removed_hook_runs.fetch_add(1); });
  rt.add_drain_hook([&] { hook_runs.fetch_add(1); });
  rt.remove_drain_hook(removed);

  DrainReport report = rt.drain(absl::Seconds(20));
  EXPECT_EQ(hook_runs.load(), 2);
  EXPECT_EQ(removed_hook_runs.load(), 0) << "a removed hook ran";
  EXPECT_EQ(report.tasks_at_start, 1u);
  EXPECT_EQ(report.tasks_cancelled, 0u);
  EXPECT_FALSE(report.deadline_hit);
}

TEST(RuntimeTest, DrainAccountsForTasksSpawnedBeforeItBegan) {
  // A task handed to spawn_on() before drain() must either run to completion or be reported as
  // cancelled; it must never vanish unreported. Worker 0 is kept busy so that the spawn message
  // is still queued when drain() starts, and released only once the stop has begun.
  //
  // drain() counts a spawn_on() task from the call, not from when the worker starts it.
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  std::promise<void> blocked;
  std::promise<void> release;
  std::shared_future<void> release_future = release.get_future().share();
  rt.post_to(0, [&blocked, release_future] {
    blocked.set_value();
    release_future.wait();
  });
  ASSERT_EQ(blocked.get_future().wait_for(testing::kPatience), std::future_status::ready);

  std::atomic<bool> ran{false};
  rt.spawn_on(0, [&ran]() -> Task<void> {
    ran.store(true);
    co_return;
  });

  std::thread releaser([&] {
    // Either drain reached stop() (running() turns false), or it is waiting for the task and
    // will time out; release the worker in both cases.
    testing::wait_until([&] { return !rt.running(); }, std::chrono::milliseconds(2000));
    release.set_value();
  });
  DrainReport report = rt.drain(absl::Milliseconds(500));
  releaser.join();

  EXPECT_TRUE(ran.load() || report.tasks_cancelled == 1)
      << "a task spawned with spawn_on() before drain() neither ran nor was reported cancelled "
         "(tasks_at_start="
      << report.tasks_at_start << ", tasks_cancelled=" << report.tasks_cancelled << ")";
}

TEST(RuntimeTest, UncaughtExceptionIsCountedAndTheRuntimeKeepsRunning) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  rt.spawn_on(1, []() -> Task<void> {
    co_await yield_now();
    throw std::runtime_error("deliberately uncaught (expected in this test's log)");
  });
  rt.spawn_on(1, []() -> Task<void> {
    throw 7;  // not a std::exception
    co_return;
  });
  Worker& w = rt.worker(1);
  EXPECT_TRUE(testing::wait_until([&] { return w.stats().uncaught_exceptions == 2; }))
      << w.stats().uncaught_exceptions;
  EXPECT_EQ(rt.worker(0).stats().uncaught_exceptions, 0u);
  EXPECT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }))
      << "a task that threw is still counted as live";

  // The worker still runs messages and tasks.
  EXPECT_EQ(rt.call_on(1, [] { return 5; }), 5);
  std::promise<int> p;
  auto f = p.get_future();
  rt.spawn_on(1, [&p]() -> Task<void> {
    co_await sleep_for(1ms);
    p.set_value(9);
  });
  ASSERT_EQ(f.wait_for(testing::kPatience), std::future_status::ready);
  EXPECT_EQ(f.get(), 9);
  rt.stop();
}

// Yields 2,000 times and returns the worker's counters after. In the sharded mode the worker
// makes a non-blocking poll after each yield, so at least 2,000 of them.
WorkerStats stats_after_busy_polls(const RuntimeOptions& options) {
  Runtime rt(options);
  EXPECT_TRUE(rt.start().ok());
  rt.call_on(0, [] {
    spawn([]() -> Task<void> {
      for (int i = 0; i < 2000; ++i) co_await yield_now();
    }());
  });
  EXPECT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  WorkerStats stats = rt.call_on(0, [&] { return rt.worker(0).stats(); });
  rt.stop();
  return stats;
}

RuntimeOptions sharded_workers(size_t n) {
  RuntimeOptions options = workers(n);
  options.poll_mode = PollMode::kSharded;
  return options;
}

TEST(RuntimeTest, TimeEveryPollCountsWallAndCpuTimeOfEveryPoll) {
  RuntimeOptions options = sharded_workers(1);
  options.time_every_poll = true;
  const WorkerStats timed = stats_after_busy_polls(options);
  EXPECT_GE(timed.polls, 2000u);
  EXPECT_GT(timed.poll_cpu_ns, 0u);
  // Each call's CPU time is read inside its wall-time bracket; 1 µs per call covers the two
  // clocks' different granularity.
  EXPECT_LE(timed.poll_cpu_ns, timed.poll_ns + timed.polls * 1000);

  const WorkerStats untimed = stats_after_busy_polls(sharded_workers(1));
  EXPECT_GE(untimed.polls, 2000u);
  EXPECT_EQ(untimed.poll_cpu_ns, 0u) << "CPU time is read only when time_every_poll asks";
}

// The adaptive mode on epoll skips the non-blocking poll while work is queued, until 61 jobs
// have run since the last poll (Worker::skip_busy_poll): 2,000 yields make about 2,000 / 61
// such polls, not 2,000; the sharded mode polls after every one.
TEST(RuntimeTest, AdaptiveModeOnEpollPollsEvery61QueuedJobs) {
  const WorkerStats adaptive = stats_after_busy_polls(workers(1));
  EXPECT_GE(adaptive.busy_polls_skipped, 1500u);
  EXPECT_GE(adaptive.polls, 2000u / 61);
  EXPECT_LT(adaptive.polls, 500u);
  const WorkerStats sharded = stats_after_busy_polls(sharded_workers(1));
  EXPECT_EQ(sharded.busy_polls_skipped, 0u);
  EXPECT_GE(sharded.polls, 2000u);
}

TEST(RuntimeTest, LiveTasksCountsRootsAcrossWorkers) {
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<bool> go{false};
  auto waiter = [&go]() -> Task<void> {
    while (!go.load()) co_await sleep_for(1ms);
  };
  rt.call_on(0, [&] {
    spawn(waiter());
    spawn(waiter());
  });
  rt.call_on(1, [&] { spawn(waiter()); });
  EXPECT_EQ(rt.live_tasks(), 3u);
  EXPECT_EQ(rt.worker(0).stats().live_tasks, 2u);
  EXPECT_EQ(rt.worker(1).stats().live_tasks, 1u);
  go.store(true);
  EXPECT_TRUE(testing::wait_until([&] { return rt.live_tasks() == 0; }));
  EXPECT_EQ(rt.call_on(0, [&] { return rt.worker(0).stats().live_tasks; }), 0u);
  rt.stop();
}

TEST(RuntimeTest, MessagesPostedAfterStopAreDestroyedUnrun) {
  auto owned = std::make_shared<int>(0);
  std::atomic<bool> ran{false};
  {
    Runtime rt(workers(1));
    ASSERT_TRUE(rt.start().ok());
    rt.stop();
    rt.post_to(0, [owned, &ran] { ran.store(true); });
    EXPECT_FALSE(ran.load());
  }
  EXPECT_FALSE(ran.load());
  EXPECT_EQ(owned.use_count(), 1) << "the unrun message was never destroyed";
}

TEST(RuntimeTest, PinnedWorkersRunOnTheirCpu) {
  const std::vector<int> cpus = allowed_cpus();
  const size_t n = cpus.size();
  RuntimeOptions options = workers(n + 1);  // one more than CPUs: exercises the wrap-around
  options.pin_cpus = true;
  Runtime rt(options);
  ASSERT_TRUE(rt.start().ok());
  for (size_t i = 0; i < rt.size(); ++i) {
    SCOPED_TRACE(::testing::Message() << "worker " << i);
    const int expected = cpus[i % n];
    EXPECT_EQ(rt.worker(i).cpu(), expected);
    struct Where {
      int cpu;
      int allowed_count;
      bool allowed_expected;
    };
    Where where = rt.call_on(i, [expected] {
      cpu_set_t set;
      CPU_ZERO(&set);
      Where r{sched_getcpu(), -1, false};
      if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        r.allowed_count = CPU_COUNT(&set);
        r.allowed_expected = CPU_ISSET(expected, &set);
      }
      return r;
    });
    EXPECT_EQ(where.cpu, expected);
    EXPECT_EQ(where.allowed_count, 1);
    EXPECT_TRUE(where.allowed_expected);
  }
  rt.stop();
}

}  // namespace
}  // namespace shardloop
