// Steal hints recorded by the workers (worker_stealing.cc): a stolen root with an affinity is
// reported to the worker that spawned it, naming the thief; a root its spawner starts itself
// counts as a local start and ends a thief's streak; affinity 0, and any root while collection
// is off, records nothing. On both backends, since stealing is driven by each poller's wakeups.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

constexpr uint64_t kAffinity = 0xa11ce;

class StealHints : public testing::PerBackendTest {};

// Counts where each root ran.
struct Ran {
  std::atomic<size_t> on[2] = {};
  size_t total() const { return on[0].load() + on[1].load(); }
};

Task<void> count_where(Ran* ran) {
  ran->on[Worker::current()->index()].fetch_add(1);
  co_return;
}

// Holds the calling worker's thread (no run phase, so its queued roots wait for a thief) until
// `done()`; bounded so that a broken steal fails the test instead of hanging it.
template <typename Pred>
void hold_worker_until(Pred done) {
  const auto give_up = std::chrono::steady_clock::now() + testing::kPatience;
  while (!done() && std::chrono::steady_clock::now() < give_up) std::this_thread::yield();
}

StealHintReport take_hints(Runtime& rt, size_t w) {
  return rt.call_on(w, [&rt, w] { return rt.worker(w).take_steal_hints(); });
}

// Worker 0 spawns roots with and without an affinity, then holds its thread: worker 1 steals
// them all. Exactly the affinity roots are reported, all as steals by worker 1 in one streak.
TEST_P(StealHints, StolenAffinityRootsAreReportedToTheirOriginNamingTheThief) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  for (size_t w = 0; w < 2; ++w) rt.worker(w).set_collect_steal_hints(true);
  Ran ran;
  const size_t kEach = 50;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < kEach; ++i) {
      spawn_stealable(count_where(&ran), kAffinity);
      spawn_stealable(count_where(&ran), 0);  // "no affinity"
      spawn_stealable(count_where(&ran));     // the plain overload
    }
    hold_worker_until([&] { return ran.on[1].load() == 3 * kEach; });
    co_return;
  });
  ASSERT_TRUE(testing::wait_until([&] { return ran.total() == 3 * kEach; }));
  ASSERT_EQ(ran.on[1].load(), 3 * kEach) << "worker 0 started some itself while held";
  StealHintReport hints = take_hints(rt, 0);
  ASSERT_EQ(hints.affinities.size(), 1u);
  EXPECT_EQ(
      hints.affinities[0],
      (AffinitySteals{kAffinity, 0, {{.worker = 1, .steals = kEach, .longest_streak = kEach}}}));
  EXPECT_EQ(hints.dropped, 0u);
  EXPECT_TRUE(take_hints(rt, 1).affinities.empty()) << "the thief's own ledger got entries";
  EXPECT_TRUE(take_hints(rt, 0).affinities.empty()) << "take() did not start a new interval";
  rt.stop();
}

// A root its spawner starts itself is a local start, never a steal.
TEST_P(StealHints, RootsStartedByTheirSpawnerAreLocalStarts) {
  Runtime rt(options(1));  // no thief to race with
  ASSERT_TRUE(rt.start().ok());
  rt.worker(0).set_collect_steal_hints(true);
  Ran ran;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < 20; ++i) spawn_stealable(count_where(&ran), kAffinity);
    co_return;
  });
  // And Runtime::spawn from a thread that is not a worker: queued on (so reported to) worker 0.
  for (size_t i = 0; i < 5; ++i) rt.spawn([&ran] { return count_where(&ran); }, kAffinity + 1);
  ASSERT_TRUE(testing::wait_until([&] { return ran.total() == 25; }));
  StealHintReport hints = take_hints(rt, 0);
  ASSERT_EQ(hints.affinities.size(), 2u);
  EXPECT_EQ(hints.affinities[0], (AffinitySteals{kAffinity, 20, {}}));
  EXPECT_EQ(hints.affinities[1], (AffinitySteals{kAffinity + 1, 5, {}}));
  rt.stop();
}

// Collection off (the default): stolen affinity roots leave no trace.
TEST_P(StealHints, NothingIsRecordedWhileCollectionIsOff) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  Ran ran;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < 40; ++i) spawn_stealable(count_where(&ran), kAffinity);
    hold_worker_until([&] { return ran.on[1].load() == 40; });
    co_return;
  });
  ASSERT_TRUE(testing::wait_until([&] { return ran.total() == 40; }));
  EXPECT_GT(ran.on[1].load(), 0u);
  EXPECT_TRUE(take_hints(rt, 0).affinities.empty());
  // Switched on now: the earlier steals are not reported late.
  rt.worker(0).set_collect_steal_hints(true);
  EXPECT_TRUE(take_hints(rt, 0).affinities.empty());
  rt.stop();
}

// Switching collection off discards what was collected: the next reader starts afresh.
TEST_P(StealHints, SwitchingCollectionOffDiscardsWhatWasCollected) {
  Runtime rt(options(1));
  ASSERT_TRUE(rt.start().ok());
  rt.worker(0).set_collect_steal_hints(true);
  Ran ran;
  rt.spawn_on(0, [&]() -> Task<void> {
    for (size_t i = 0; i < 5; ++i) spawn_stealable(count_where(&ran), kAffinity);
    co_return;
  });
  ASSERT_TRUE(testing::wait_until([&] { return ran.total() == 5; }));
  rt.worker(0).set_collect_steal_hints(false);
  // Two round trips: the first job runs in some run phase, and that phase's stealable step
  // (which discards) comes before the second job runs.
  rt.call_on(0, [] {});
  rt.call_on(0, [] {});
  rt.worker(0).set_collect_steal_hints(true);
  EXPECT_TRUE(take_hints(rt, 0).affinities.empty());
  rt.stop();
}

// Steals, then local starts, then steals again: the local starts end the first streak. The
// order is the owner's: thieves' records are folded before its run phase starts its own roots.
TEST_P(StealHints, ALocalStartEndsTheThiefsStreak) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  for (size_t w = 0; w < 2; ++w) rt.worker(w).set_collect_steal_hints(true);
  Ran ran;
  std::atomic<bool> worker1_held{false}, release_worker1{false};
  std::atomic<bool> done{false};
  rt.spawn_on(0, [&]() -> Task<void> {
    // 1. Five stolen by worker 1 while worker 0 is held.
    for (size_t i = 0; i < 5; ++i) spawn_stealable(count_where(&ran), kAffinity);
    hold_worker_until([&] { return ran.on[1].load() == 5; });
    // 2. Worker 1 held instead: worker 0 starts three itself.
    rt.spawn_on(1, [&]() -> Task<void> {
      worker1_held = true;
      hold_worker_until([&] { return release_worker1.load(); });
      co_return;
    });
    while (!worker1_held.load()) co_await sleep_for(100us);
    for (size_t i = 0; i < 3; ++i) spawn_stealable(count_where(&ran), kAffinity);
    while (ran.on[0].load() < 3) co_await yield_now();
    // 3. Worker 1 free again, worker 0 held: four more stolen.
    release_worker1 = true;
    for (size_t i = 0; i < 4; ++i) spawn_stealable(count_where(&ran), kAffinity);
    hold_worker_until([&] { return ran.on[1].load() == 9; });
    done = true;
  });
  ASSERT_TRUE(testing::wait_until([&] { return done.load(); }));
  ASSERT_EQ(ran.on[0].load(), 3u);
  ASSERT_EQ(ran.on[1].load(), 9u);
  StealHintReport hints = take_hints(rt, 0);
  ASSERT_EQ(hints.affinities.size(), 1u);
  EXPECT_EQ(hints.affinities[0],
            (AffinitySteals{kAffinity, 3, {{.worker = 1, .steals = 9, .longest_streak = 5}}}));
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, StealHints, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
