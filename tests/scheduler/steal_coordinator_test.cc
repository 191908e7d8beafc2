// StealCoordinator caps searchers at ceil(N/2) and reports the last one out; VictimPicker
// visits every other worker once per round from a random start; XorShift64 stays in range.
#include "runtime/steal_coordinator.h"

#include <gtest/gtest.h>

#include <atomic>
#include <set>
#include <thread>
#include <vector>

#include "runtime/victim_picker.h"
#include "runtime/xorshift.h"
#include "tests/scheduler/test_support.h"

namespace shardloop::scheduler {
namespace {

TEST(StealCoordinator, AllowsAtMostHalfRoundedUp) {
  for (size_t workers = 1; workers <= 9; ++workers) {
    SCOPED_TRACE(workers);
    StealCoordinator c(workers);
    const size_t cap = (workers + 1) / 2;
    EXPECT_EQ(c.max_searching(), cap);
    std::vector<StealCoordinator::Permit> permits;
    for (size_t i = 0; i < cap; ++i) {
      auto p = c.try_begin_search();
      ASSERT_TRUE(p.has_value());
      permits.push_back(std::move(*p));
    }
    EXPECT_FALSE(c.try_begin_search().has_value());
    EXPECT_EQ(c.searching(), cap);
    permits.pop_back();  // a permit ends its search when destroyed
    EXPECT_EQ(c.searching(), cap - 1);
    EXPECT_TRUE(c.try_begin_search().has_value());  // and that one ended at once, too
    EXPECT_EQ(c.searching(), cap - 1);
  }
}

TEST(StealCoordinator, ReportsTheLastSearcher) {
  StealCoordinator c(4);
  auto a = c.try_begin_search();
  auto b = c.try_begin_search();
  ASSERT_TRUE(a && b);
  EXPECT_FALSE(a->end());
  EXPECT_FALSE(a->end());  // idempotent
  EXPECT_TRUE(b->end());
  EXPECT_EQ(c.searching(), 0u);
  ASSERT_TRUE(c.begin_search());
  EXPECT_TRUE(c.end_search());
}

TEST(StealCoordinator, MovedPermitEndsOnce) {
  StealCoordinator c(2);
  auto p = c.try_begin_search();
  ASSERT_TRUE(p);
  StealCoordinator::Permit q = std::move(*p);
  p.reset();
  EXPECT_EQ(c.searching(), 1u);
  EXPECT_TRUE(q.end());
  EXPECT_EQ(c.searching(), 0u);
}

TEST(StealCoordinator, CapHoldsUnderConcurrency) {
  constexpr size_t kWorkers = 8;
  StealCoordinator c(kWorkers);
  std::atomic<size_t> inside{0}, worst{0};
  std::vector<std::thread> threads;
  for (size_t t = 0; t < kWorkers; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 20000 / static_cast<int>(testing::kStressDivisor); ++i) {
        if (auto permit = c.try_begin_search()) {
          const size_t now = inside.fetch_add(1) + 1;
          size_t w = worst.load();
          while (now > w && !worst.compare_exchange_weak(w, now)) {
          }
          inside.fetch_sub(1);
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_LE(worst.load(), kWorkers / 2);
  EXPECT_EQ(c.searching(), 0u);
}

TEST(VictimPicker, VisitsEveryOtherWorkerOnceThenGivesUp) {
  for (size_t workers = 1; workers <= 6; ++workers) {
    for (size_t self = 0; self < workers; ++self) {
      VictimPicker picker(self, workers, 42 + self);
      for (int round = 0; round < 20; ++round) {
        std::vector<size_t> seen;
        EXPECT_EQ(picker.pick([&](size_t v) {
          seen.push_back(v);
          return false;
        }),
                  std::nullopt);
        ASSERT_EQ(seen.size(), workers - 1);
        std::set<size_t> distinct(seen.begin(), seen.end());
        EXPECT_EQ(distinct.size(), workers - 1);
        EXPECT_EQ(distinct.count(self), 0u);
        // Consecutive visits walk the ring.
        for (size_t i = 1; i < seen.size(); ++i) {
          size_t step = (seen[i] + workers - seen[i - 1]) % workers;
          EXPECT_TRUE(step == 1 || (step == 2 && (seen[i - 1] + 1) % workers == self));
        }
      }
    }
  }
}

TEST(VictimPicker, StopsAtTheFirstSuccessAndStartsRandomly) {
  VictimPicker picker(0, 8, 7);
  std::set<size_t> first_victims;
  for (int i = 0; i < 200; ++i) {
    size_t calls = 0;
    auto v = picker.pick([&](size_t) { return ++calls == 1; });
    ASSERT_TRUE(v.has_value());
    EXPECT_EQ(calls, 1u);
    first_victims.insert(*v);
  }
  EXPECT_EQ(first_victims.size(), 7u) << "random start should reach every victim";
}

TEST(XorShift64, BelowStaysInRangeAndCoversIt) {
  XorShift64 rng(0);  // zero seed must still produce a stream
  std::vector<int> hits(10);
  for (int i = 0; i < 100000; ++i) {
    uint32_t v = rng.below(10);
    ASSERT_LT(v, 10u);
    ++hits[v];
  }
  for (int h : hits) EXPECT_GT(h, 8000);
  XorShift64 a(1), b(2);
  EXPECT_NE(a.next(), b.next()) << "neighbouring seeds must give different streams";
}

}  // namespace
}  // namespace shardloop::scheduler
