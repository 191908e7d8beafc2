// co_await run_blocking(pool, fn) on a real Runtime: fn runs on a pool thread (not a worker),
// the coroutine resumes on the worker and thread it suspended on, values (also move-only ones)
// come back, exceptions are rethrown at the co_await, and a shut-down pool throws
// BlockingRejected.
#include "scheduler/run_blocking.h"

#include <gtest/gtest.h>

#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

#include "runtime/runtime.h"
#include "runtime/task.h"
#include "runtime/worker.h"
#include "scheduler/blocking_pool.h"
#include "tests/scheduler/test_support.h"

namespace shardloop::scheduler {
namespace {

using namespace std::chrono_literals;

class RunBlockingTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_TRUE(rt_.start().ok()); }
  void TearDown() override {
    pool_.shutdown(ShutdownMode::kDrain);  // the pool first: its completions post to workers
    rt_.stop();
  }

  // Runs `body` as a root task on worker `w` and waits for it to finish.
  void run_on(size_t w, std::function<Task<void>()> body) {
    std::promise<void> finished;
    auto future = finished.get_future();
    rt_.spawn_on(w, [body = std::move(body), &finished]() -> Task<void> {
      co_await body();
      finished.set_value();
    });
    ASSERT_EQ(future.wait_for(20s), std::future_status::ready) << "coroutine did not finish";
  }

  Runtime rt_{RuntimeOptions{.workers = 2}};
  BlockingPool pool_{{.threads = 2, .consumers = 2}};
};

TEST_F(RunBlockingTest, ResumesOnTheSameWorkerAndThread) {
  const int kCalls = 200 / static_cast<int>(testing::kStressDivisor) + 20;
  for (size_t w = 0; w < 2; ++w) {
    SCOPED_TRACE(w);
    int failures = 0;
    run_on(w, [&]() -> Task<void> {
      Worker* before = Worker::current();
      const std::thread::id thread_before = std::this_thread::get_id();
      for (int i = 0; i < kCalls; ++i) {
        std::thread::id ran_on;
        Worker* worker_in_fn = before;
        int v = co_await run_blocking(pool_, [&, i] {
          ran_on = std::this_thread::get_id();
          worker_in_fn = Worker::current();
          return i * 2;
        });
        if (v != i * 2) ++failures;
        if (Worker::current() != before || std::this_thread::get_id() != thread_before) ++failures;
        if (ran_on == thread_before || worker_in_fn != nullptr) ++failures;  // ran in the pool
      }
      EXPECT_EQ(before, &rt_.worker(w));
    });
    EXPECT_EQ(failures, 0);
  }
}

TEST_F(RunBlockingTest, ManyConcurrentCallersOnBothWorkers) {
  constexpr int kPerWorker = 50;
  std::atomic<int> wrong_place{0}, done{0};
  for (size_t w = 0; w < 2; ++w) {
    for (int i = 0; i < kPerWorker; ++i) {
      rt_.spawn_on(w, [&, w, i]() -> Task<void> {
        std::string s = co_await run_blocking(pool_, [i] {
          std::this_thread::sleep_for(50us);
          return std::to_string(i);
        });
        if (s != std::to_string(i) || Worker::current() != &rt_.worker(w)) wrong_place.fetch_add(1);
        done.fetch_add(1);
      });
    }
  }
  ASSERT_TRUE(testing::wait_until([&] { return done.load() == 2 * kPerWorker; }));
  EXPECT_EQ(wrong_place.load(), 0);
}

TEST_F(RunBlockingTest, VoidAndMoveOnlyResults) {
  run_on(1, [&]() -> Task<void> {
    bool side_effect = false;
    co_await run_blocking(pool_, [&] { side_effect = true; });
    EXPECT_TRUE(side_effect);
    std::unique_ptr<int> p = co_await run_blocking(pool_, [] { return std::make_unique<int>(7); });
    EXPECT_EQ(*p, 7);
  });
}

TEST_F(RunBlockingTest, RethrowsAtTheCoAwait) {
  run_on(0, [&]() -> Task<void> {
    Worker* before = Worker::current();
    bool caught = false;
    try {
      co_await run_blocking(pool_, []() -> int { throw std::out_of_range("no such record"); });
    } catch (const std::out_of_range& e) {
      caught = std::string(e.what()) == "no such record";
    }
    EXPECT_TRUE(caught);
    EXPECT_EQ(Worker::current(), before);
  });
}

TEST_F(RunBlockingTest, ShutDownPoolThrowsBlockingRejected) {
  pool_.shutdown(ShutdownMode::kDrain);
  run_on(0, [&]() -> Task<void> {
    bool ran = false, caught = false;
    try {
      co_await run_blocking(pool_, [&] { ran = true; });
    } catch (const BlockingRejected& e) {
      caught = e.status().code() == absl::StatusCode::kFailedPrecondition;
    }
    EXPECT_TRUE(caught);
    EXPECT_FALSE(ran);
  });
}

TEST(RunBlocking, WorkerBeyondConsumerCountUsesTheSharedQueue) {
  Runtime rt(RuntimeOptions{.workers = 2});
  ASSERT_TRUE(rt.start().ok());
  BlockingPool pool({.threads = 1, .consumers = 1});  // worker 1 has no ring of its own
  std::promise<int> result;
  auto future = result.get_future();
  rt.spawn_on(
      1, [&]() -> Task<void> { result.set_value(co_await run_blocking(pool, [] { return 5; })); });
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(future.get(), 5);
  EXPECT_EQ(pool.stats().shared_submits, 1u);
  pool.shutdown(ShutdownMode::kDrain);
  rt.stop();
}

}  // namespace
}  // namespace shardloop::scheduler

namespace shardloop::scheduler {
namespace {

// co_await run_blocking(fn) uses the runtime's own pool: RuntimeOptions::blocking_threads
// threads, one consumer per worker, shut down when the runtime stops.
TEST(RuntimeBlockingPool, RunBlockingWithoutAPoolUsesTheRuntimes) {
  Runtime rt(RuntimeOptions{.workers = 2, .blocking_threads = 3});
  ASSERT_TRUE(rt.start().ok());
  std::promise<int> done;
  rt.spawn_on(1, [&]() -> Task<void> {
    Worker* before = Worker::current();
    int sum = 0;
    for (int i = 0; i < 50; ++i) {
      sum += co_await run_blocking([i] {
        return Worker::current() == nullptr ? i : -1000;  // a pool thread is not a worker
      });
      if (Worker::current() != before) sum = -1'000'000;
    }
    done.set_value(sum);
  });
  auto future = done.get_future();
  ASSERT_EQ(future.wait_for(20s), std::future_status::ready);
  EXPECT_EQ(future.get(), 49 * 50 / 2);
  BlockingPool& pool = runtime_blocking_pool(rt);
  EXPECT_EQ(pool.threads(), 3u);
  EXPECT_EQ(pool.consumers(), 2u);
  EXPECT_EQ(&pool, &runtime_blocking_pool(rt)) << "one pool per runtime";
  rt.stop();
  // Stopped with the runtime: new work is refused, not run.
  std::promise<absl::Status> outcome;
  pool.submit_shared([] {}, [&](BlockingOutcome o) { outcome.set_value(o.status); });
  EXPECT_EQ(outcome.get_future().get().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace shardloop::scheduler
