// TimerQueue with a manual clock: explicit TimePoints stand in for Clock::now(), so every test
// here is exact and independent of the machine's speed.
#include "runtime/timer_queue.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

const TimePoint t0{};

// Records the order in which tagged callbacks ran.
struct Log {
  std::vector<int> fired;
  TimerQueue::Callback note(int tag) {
    return [this, tag] { fired.push_back(tag); };
  }
};

TEST(TimerQueueTest, EmptyQueue) {
  TimerQueue q;
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.next_deadline().has_value());
  EXPECT_EQ(q.fire_due(t0 + 1h), 0u);
}

TEST(TimerQueueTest, FiresInDeadlineOrderAndOnlyWhenDue) {
  TimerQueue q;
  Log log;
  q.add(t0 + 30ms, log.note(30));
  q.add(t0 + 10ms, log.note(10));
  q.add(t0 + 20ms, log.note(20));
  q.add(t0 + 5ms, log.note(5));
  EXPECT_EQ(q.size(), 4u);

  EXPECT_EQ(q.fire_due(t0 + 4ms), 0u);
  EXPECT_TRUE(log.fired.empty());

  EXPECT_EQ(q.fire_due(t0 + 10ms), 2u) << "a deadline equal to now is due";
  EXPECT_EQ(log.fired, (std::vector<int>{5, 10}));
  EXPECT_EQ(q.size(), 2u);

  EXPECT_EQ(q.fire_due(t0 + 1h), 2u);
  EXPECT_EQ(log.fired, (std::vector<int>{5, 10, 20, 30}));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.fire_due(t0 + 2h), 0u) << "a timer fires once";
}

TEST(TimerQueueTest, TiesFireInInsertionOrder) {
  TimerQueue q;
  Log log;
  for (int i = 0; i < 20; ++i) q.add(t0 + 5ms, log.note(i));
  q.add(t0 + 1ms, log.note(-1));
  EXPECT_EQ(q.fire_due(t0 + 5ms), 21u);
  std::vector<int> expected{-1};
  for (int i = 0; i < 20; ++i) expected.push_back(i);
  EXPECT_EQ(log.fired, expected);
}

TEST(TimerQueueTest, TiesKeepInsertionOrderAfterCancellations) {
  // Cancel reshuffles the heap; ties must still come out by insertion.
  TimerQueue q;
  Log log;
  std::vector<TimerId> ids;
  for (int i = 0; i < 16; ++i) ids.push_back(q.add(t0 + 5ms, log.note(i)));
  for (int i : {0, 3, 7, 8, 15}) EXPECT_TRUE(q.cancel(ids[i]));
  q.fire_due(t0 + 5ms);
  EXPECT_EQ(log.fired, (std::vector<int>{1, 2, 4, 5, 6, 9, 10, 11, 12, 13, 14}));
}

TEST(TimerQueueTest, CancelBeforeFiring) {
  TimerQueue q;
  Log log;
  q.add(t0 + 1ms, log.note(1));
  TimerId id = q.add(t0 + 2ms, log.note(2));
  q.add(t0 + 3ms, log.note(3));

  EXPECT_TRUE(q.cancel(id));
  EXPECT_EQ(q.size(), 2u);
  EXPECT_FALSE(q.cancel(id)) << "second cancel of the same timer";
  EXPECT_EQ(q.fire_due(t0 + 1h), 2u);
  EXPECT_EQ(log.fired, (std::vector<int>{1, 3}));
}

TEST(TimerQueueTest, CancelReleasesTheCallback) {
  TimerQueue q;
  auto token = std::make_shared<int>(0);
  TimerId id = q.add(t0 + 1ms, [token] {});
  EXPECT_EQ(token.use_count(), 2);
  EXPECT_TRUE(q.cancel(id));
  EXPECT_EQ(token.use_count(), 1) << "a cancelled callback must be destroyed";
}

TEST(TimerQueueTest, CancelAfterFiringReturnsFalse) {
  TimerQueue q;
  Log log;
  TimerId id = q.add(t0 + 1ms, log.note(1));
  EXPECT_EQ(q.fire_due(t0 + 1ms), 1u);
  EXPECT_FALSE(q.cancel(id));
}

TEST(TimerQueueTest, StaleIdDoesNotCancelTheNodesNextOccupant) {
  TimerQueue q;
  Log log;
  TimerId old_id = q.add(t0 + 1ms, log.note(1));
  ASSERT_TRUE(q.cancel(old_id));
  TimerId new_id = q.add(t0 + 2ms, log.note(2));  // reuses the freed node
  EXPECT_NE(new_id, old_id) << "ids are never reused";

  EXPECT_FALSE(q.cancel(old_id));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.fire_due(t0 + 2ms), 1u);
  EXPECT_EQ(log.fired, (std::vector<int>{2}));

  // Same after firing instead of cancelling.
  TimerId fired_id = new_id;
  TimerId next_id = q.add(t0 + 3ms, log.note(3));
  EXPECT_FALSE(q.cancel(fired_id));
  EXPECT_TRUE(q.cancel(next_id));
}

TEST(TimerQueueTest, NeverIssuedIdsCancelNothing) {
  TimerQueue q;
  Log log;
  TimerId id = q.add(t0 + 1ms, log.note(1));
  EXPECT_FALSE(q.cancel(0));
  EXPECT_FALSE(q.cancel(id + 1));
  EXPECT_FALSE(q.cancel(id + (uint64_t{1} << 32)));
  EXPECT_FALSE(q.cancel(~uint64_t{0}));
  EXPECT_EQ(q.size(), 1u);
}

TEST(TimerQueueTest, CallbackAddingADueTimerRunsItInTheSameCall) {
  TimerQueue q;
  Log log;
  q.add(t0 + 5ms, [&] {
    log.fired.push_back(1);
    q.add(t0 + 5ms, log.note(2));  // due at the current `now`
    q.add(t0, log.note(3));        // already in the past
    q.add(t0 + 6ms, log.note(4));  // not due yet
  });
  EXPECT_EQ(q.fire_due(t0 + 5ms), 3u);
  // 3 has the earlier deadline, so it comes before 2 even though it was added after.
  EXPECT_EQ(log.fired, (std::vector<int>{1, 3, 2}));
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.next_deadline(), t0 + 6ms);
}

TEST(TimerQueueTest, CallbackCancellingAnotherPendingTimer) {
  TimerQueue q;
  Log log;
  TimerId victim_due = 0, victim_later = 0;
  bool cancelled_due = false, cancelled_later = false;
  q.add(t0 + 1ms, [&] {
    log.fired.push_back(1);
    cancelled_due = q.cancel(victim_due);
    cancelled_later = q.cancel(victim_later);
  });
  victim_due = q.add(t0 + 1ms, log.note(2));  // tie, would run right after
  q.add(t0 + 1ms, log.note(3));
  victim_later = q.add(t0 + 9ms, log.note(4));

  EXPECT_EQ(q.fire_due(t0 + 1ms), 2u);
  EXPECT_TRUE(cancelled_due);
  EXPECT_TRUE(cancelled_later);
  EXPECT_EQ(log.fired, (std::vector<int>{1, 3}));
  EXPECT_EQ(q.size(), 0u);
  EXPECT_EQ(q.fire_due(t0 + 1h), 0u);
}

TEST(TimerQueueTest, CallbackCancellingItselfGetsFalse) {
  TimerQueue q;
  TimerId self = 0;
  bool result = true;
  self = q.add(t0 + 1ms, [&] { result = q.cancel(self); });
  EXPECT_EQ(q.fire_due(t0 + 1ms), 1u);
  EXPECT_FALSE(result);
}

TEST(TimerQueueTest, CallbackAddingManyTimersSurvivesStorageGrowth) {
  // The callback adds enough timers to reallocate the node slab while it is running.
  TimerQueue q;
  int ran = 0;
  q.add(t0 + 1ms, [&] {
    for (int i = 0; i < 1000; ++i) q.add(t0 + 1ms, [&ran] { ++ran; });
  });
  EXPECT_EQ(q.fire_due(t0 + 1ms), 1001u);
  EXPECT_EQ(ran, 1000);
}

TEST(TimerQueueTest, NextDeadlineTracksTheEarliestLiveTimer) {
  TimerQueue q;
  Log log;
  TimerId a = q.add(t0 + 30ms, log.note(1));
  EXPECT_EQ(q.next_deadline(), t0 + 30ms);
  TimerId b = q.add(t0 + 10ms, log.note(2));
  EXPECT_EQ(q.next_deadline(), t0 + 10ms);
  q.add(t0 + 20ms, log.note(3));
  EXPECT_EQ(q.next_deadline(), t0 + 10ms);
  q.cancel(b);
  EXPECT_EQ(q.next_deadline(), t0 + 20ms);
  q.fire_due(t0 + 25ms);
  EXPECT_EQ(q.next_deadline(), t0 + 30ms);
  q.cancel(a);
  EXPECT_FALSE(q.next_deadline().has_value());
}

TEST(TimerQueueTest, ClearDropsTimersWithoutRunningThem) {
  TimerQueue q;
  Log log;
  auto token = std::make_shared<int>(0);
  TimerId id = q.add(t0 + 1ms, [&log, token] { log.fired.push_back(1); });
  q.add(t0 + 2ms, log.note(2));
  q.clear();
  EXPECT_EQ(q.size(), 0u);
  EXPECT_FALSE(q.next_deadline().has_value());
  EXPECT_EQ(token.use_count(), 1) << "cleared callbacks must be destroyed";
  EXPECT_EQ(q.fire_due(t0 + 1h), 0u);
  EXPECT_TRUE(log.fired.empty());

  // The queue is usable afterwards, and ids from before the clear stay dead.
  EXPECT_FALSE(q.cancel(id));
  TimerId fresh = q.add(t0 + 1ms, log.note(3));
  EXPECT_NE(fresh, id);
  EXPECT_FALSE(q.cancel(id)) << "an id from before clear() cancelled a new timer";
  EXPECT_EQ(q.fire_due(t0 + 1ms), 1u);
  EXPECT_EQ(log.fired, (std::vector<int>{3}));
}

TEST(TimerQueueTest, ClearToleratesCallbackDestructorsThatTouchTheQueue) {
  // Like a SleepAwaiter whose coroutine frame dies with the callback: its destructor cancels.
  TimerQueue q;
  struct CancelsOnDestruction {
    TimerQueue* q;
    TimerId other;
    bool* cancelled;
    ~CancelsOnDestruction() {
      if (q != nullptr) *cancelled = q->cancel(other);
    }
    CancelsOnDestruction(TimerQueue* q, TimerId other, bool* cancelled)
        : q(q), other(other), cancelled(cancelled) {}
    CancelsOnDestruction(CancelsOnDestruction&& o) noexcept
        : q(std::exchange(o.q, nullptr)), other(o.other), cancelled(o.cancelled) {}
  };
  bool cancelled = true;
  TimerId other = q.add(t0 + 5ms, [] {});
  q.add(t0 + 1ms, [guard = CancelsOnDestruction(&q, other, &cancelled)] {});
  q.clear();
  EXPECT_FALSE(cancelled) << "the other timer was cleared too";
  EXPECT_EQ(q.size(), 0u);
}

TEST(TimerQueueTest, FiredCallbackIsDestroyedAfterRunning) {
  TimerQueue q;
  auto token = std::make_shared<int>(0);
  q.add(t0 + 1ms, [token] {});
  q.fire_due(t0 + 1ms);
  EXPECT_EQ(token.use_count(), 1);
}

// Random add / cancel / fire against a std::multimap model keyed by (deadline, insertion).
TEST(TimerQueueTest, RandomizedAgainstModel) {
  const int kOps = 4000 / testing::kSanitizerScale;
  for (uint64_t seed : testing::test_seeds(20)) {
    SCOPED_TRACE(::testing::Message()
                 << "seed=" << seed << " (replay: SHARDLOOP_TEST_SEED=" << seed << ")");
    std::mt19937_64 rng(seed);
    TimerQueue q;
    struct Entry {
      int tag;
      TimerId id;
    };
    // Model: key (deadline, insertion number) orders exactly as the queue must fire.
    std::multimap<std::pair<TimePoint, int>, Entry> model;
    std::map<int, std::pair<TimePoint, int>> key_of;  // tag -> model key, for live timers
    std::vector<std::pair<int, TimerId>> issued;      // every id ever handed out, with its tag
    std::vector<int> fired;
    TimePoint now = t0;
    int next_tag = 0;

    for (int op = 0; op < kOps; ++op) {
      const int dice = static_cast<int>(rng() % 100);
      if (dice < 50) {
        // Deadlines cluster on a coarse grid so that ties are common; some are in the past.
        auto offset = std::chrono::milliseconds(static_cast<int>(rng() % 40) - 5);
        TimePoint deadline = now + offset;
        int tag = next_tag++;
        TimerId id = q.add(deadline, [&fired, tag] { fired.push_back(tag); });
        model.emplace(std::make_pair(deadline, tag), Entry{tag, id});
        key_of[tag] = {deadline, tag};
        issued.emplace_back(tag, id);
      } else if (dice < 80) {
        if (issued.empty()) continue;
        auto [tag, id] = issued[rng() % issued.size()];
        auto it = key_of.find(tag);
        const bool expect_live = it != key_of.end();
        ASSERT_EQ(q.cancel(id), expect_live) << "cancel of tag " << tag << " at op " << op;
        if (expect_live) {
          model.erase(model.find(it->second));
          key_of.erase(it);
        }
      } else {
        now += std::chrono::milliseconds(rng() % 15);
        std::vector<int> expected;
        while (!model.empty() && model.begin()->first.first <= now) {
          expected.push_back(model.begin()->second.tag);
          key_of.erase(model.begin()->second.tag);
          model.erase(model.begin());
        }
        fired.clear();
        ASSERT_EQ(q.fire_due(now), expected.size()) << "at op " << op;
        ASSERT_EQ(fired, expected) << "at op " << op;
      }
      ASSERT_EQ(q.size(), model.size()) << "at op " << op;
      if (model.empty()) {
        ASSERT_FALSE(q.next_deadline().has_value()) << "at op " << op;
      } else {
        ASSERT_EQ(q.next_deadline(), model.begin()->first.first) << "at op " << op;
      }
    }
    // Drain the rest.
    fired.clear();
    std::vector<int> expected;
    for (auto& [key, entry] : model) expected.push_back(entry.tag);
    EXPECT_EQ(q.fire_due(now + 1h), expected.size());
    EXPECT_EQ(fired, expected);
  }
}

}  // namespace
}  // namespace shardloop
