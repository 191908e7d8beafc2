// co_await offload(affinity, fn) (runtime/offload.h): the result or exception comes back, the
// caller resumes on its own worker, and while the caller's worker is busy an idle worker runs
// `fn`, which the caller's worker then sees as a steal of that affinity. On both backends.
#include "runtime/offload.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

class Offload : public testing::PerBackendTest {};

TEST_P(Offload, ReturnsValuesAndExceptionsToTheCallerOnItsOwnWorker) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<bool> done{false}, same_worker{true}, caught{false}, void_ran{false};
  std::string text;
  rt.spawn_on(1, [&]() -> Task<void> {
    Worker* me = Worker::current();
    text = co_await offload(5, [] { return std::string("computed"); });
    same_worker = same_worker && Worker::current() == me;
    try {
      co_await offload(5, []() -> int { throw std::runtime_error("boom"); });
    } catch (const std::runtime_error& e) {
      caught = std::string(e.what()) == "boom";
    }
    same_worker = same_worker && Worker::current() == me;
    co_await offload(0, [&] { void_ran = true; });
    same_worker = same_worker && Worker::current() == me;
    done = true;
  });
  ASSERT_TRUE(testing::wait_until([&] { return done.load(); }));
  EXPECT_EQ(text, "computed");
  EXPECT_TRUE(caught.load());
  EXPECT_TRUE(void_ran.load());
  EXPECT_TRUE(same_worker.load()) << "the caller resumed on another worker";
  rt.stop();
}

// The caller's worker is held by another task right after the caller suspends, so the offload
// waits in its queue until worker 1 steals it; the caller then resumes on worker 0 with the
// value computed on worker 1, and worker 0's steal hints name worker 1.
TEST_P(Offload, AnIdleWorkerRunsItWhileTheCallersWorkerIsBusy) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  rt.worker(0).set_collect_steal_hints(true);
  std::atomic<bool> ran{false}, done{false};
  std::atomic<int> ran_on{-1}, resumed_on{-1};
  auto caller = [&]() -> Task<void> {
    ran_on = co_await offload(77, [&] {
      ran = true;
      return static_cast<int>(Worker::current()->index());
    });
    resumed_on = static_cast<int>(Worker::current()->index());
    done = true;
  };
  rt.spawn_on(0, [&]() -> Task<void> {
    // The caller is queued for the next run phase, this task right behind it: in that phase
    // the caller queues the offload's root and suspends, then this task holds the thread, so
    // the phase never reaches the step that would start the root here.
    spawn(caller());
    co_await yield_now();
    const auto give_up = std::chrono::steady_clock::now() + testing::kPatience;
    while (!ran.load() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
  });
  ASSERT_TRUE(testing::wait_until([&] { return done.load(); }));
  EXPECT_EQ(ran_on.load(), 1);
  EXPECT_EQ(resumed_on.load(), 0);
  StealHintReport hints = rt.call_on(0, [&rt] { return rt.worker(0).take_steal_hints(); });
  ASSERT_EQ(hints.affinities.size(), 1u);
  EXPECT_EQ(hints.affinities[0],
            (AffinitySteals{77, 0, {{.worker = 1, .steals = 1, .longest_streak = 1}}}));
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, Offload, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
