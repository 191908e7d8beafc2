// WorkStealingDeque, one thread at a time: LIFO pop, FIFO steal, full and empty edges,
// wrap-around, steal_half sizing; plus a two-thread hammer on the last-item race.
// Built twice: with the default capacity (256) and with SHARDLOOP_SMALL_QUEUES (4).
#include "runtime/work_stealing_deque.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include "runtime/xorshift.h"
#include "tests/scheduler/test_support.h"

namespace shardloop::scheduler {
namespace {

using Item = uint64_t;

TEST(SCHED_SUITE(WorkStealingDeque), DefaultCapacityFollowsBuildFlag) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
#ifdef SHARDLOOP_SMALL_QUEUES
  EXPECT_EQ(local.capacity(), 4u);
  EXPECT_EQ(kMaxStealBatch, 2u);
#else
  EXPECT_EQ(local.capacity(), 256u);
  EXPECT_EQ(kMaxStealBatch, 32u);
#endif
}

TEST(SCHED_SUITE(WorkStealingDeque), StartsEmpty) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  EXPECT_TRUE(local.empty());
  EXPECT_EQ(local.size(), 0u);
  EXPECT_EQ(local.pop(), std::nullopt);
  EXPECT_EQ(stealer.steal(), std::nullopt);
  EXPECT_TRUE(stealer.empty());
  EXPECT_EQ(stealer.size_hint(), 0u);
  // Popping an empty deque must leave it usable (bottom restored).
  ASSERT_TRUE(local.push(7));
  EXPECT_EQ(local.pop(), 7u);
}

TEST(SCHED_SUITE(WorkStealingDeque), PopIsLifoStealIsFifo) {
  auto [local, stealer] = make_work_stealing_deque<Item>(8);
  for (Item i = 1; i <= 4; ++i) ASSERT_TRUE(local.push(i));
  EXPECT_EQ(local.size(), 4u);
  EXPECT_EQ(stealer.size_hint(), 4u);
  EXPECT_EQ(local.pop(), 4u);
  EXPECT_EQ(stealer.steal(), 1u);
  EXPECT_EQ(local.pop(), 3u);
  EXPECT_EQ(stealer.steal(), 2u);
  EXPECT_EQ(local.pop(), std::nullopt);
  EXPECT_EQ(stealer.steal(), std::nullopt);
}

TEST(SCHED_SUITE(WorkStealingDeque), PushFailsWhenFullAndKeepsContents) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  const size_t cap = local.capacity();
  for (Item i = 0; i < cap; ++i) ASSERT_TRUE(local.push(i)) << i;
  EXPECT_EQ(local.free_slots(), 0u);
  EXPECT_FALSE(local.push(999));
  EXPECT_FALSE(local.push_seq_cst(999));
  EXPECT_EQ(local.size(), cap);
  for (Item i = cap; i-- > 0;) ASSERT_EQ(local.pop(), i);
  EXPECT_TRUE(local.empty());
}

TEST(SCHED_SUITE(WorkStealingDeque), StealMakesRoomForPush) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  const size_t cap = local.capacity();
  for (Item i = 0; i < cap; ++i) ASSERT_TRUE(local.push(i));
  ASSERT_FALSE(local.push(cap));
  EXPECT_EQ(stealer.steal(), 0u);
  EXPECT_EQ(local.free_slots(), 1u);
  ASSERT_TRUE(local.push(cap));  // reuses slot 0, which the thief has already read
  for (Item i = 1; i <= cap; ++i) ASSERT_EQ(stealer.steal(), i);
  EXPECT_EQ(stealer.steal(), std::nullopt);
}

TEST(SCHED_SUITE(WorkStealingDeque), WrapsAroundManyTimes) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  const size_t cap = local.capacity();
  // Mixed ends, indices far past the capacity: every slot is reused many times.
  Item next = 0, expect_steal = 0;
  std::vector<Item> popped;
  for (size_t round = 0; round < 50; ++round) {
    const Item first = next;
    for (size_t i = 0; i < cap; ++i) ASSERT_TRUE(local.push(next++));
    expect_steal = first;
    for (size_t i = 0; i < cap / 2; ++i) ASSERT_EQ(stealer.steal(), expect_steal++);
    for (size_t i = 0; i < cap - cap / 2; ++i) ASSERT_EQ(local.pop(), next - 1 - i);
    ASSERT_TRUE(local.empty());
  }
}

TEST(SCHED_SUITE(WorkStealingDeque), LastItemGoesToExactlyOneSide) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  ASSERT_TRUE(local.push(1));
  EXPECT_EQ(stealer.steal(), 1u);
  EXPECT_EQ(local.pop(), std::nullopt);
  ASSERT_TRUE(local.push(2));
  EXPECT_EQ(local.pop(), 2u);
  EXPECT_EQ(stealer.steal(), std::nullopt);
  ASSERT_TRUE(local.push(3));  // still consistent after both paths
  EXPECT_EQ(local.size(), 1u);
  EXPECT_EQ(stealer.steal(), 3u);
}

TEST(SCHED_SUITE(WorkStealingDeque), StealHalfTakesCeilHalfOldestFirst) {
  for (size_t n = 1; n <= kDefaultDequeCapacity; ++n) {
    SCOPED_TRACE(n);
    auto [victim, stealer] = make_work_stealing_deque<Item>();
    auto [mine, my_stealer] = make_work_stealing_deque<Item>();
    for (Item i = 0; i < n; ++i) ASSERT_TRUE(victim.push(i));
    const size_t expected = std::min(n - n / 2, kMaxStealBatch);
    ASSERT_EQ(stealer.steal_half_into(mine), expected);
    EXPECT_EQ(mine.size(), expected);
    EXPECT_EQ(victim.size(), n - expected);
    // The thief got the oldest items, in order (its own thieves would take them FIFO too).
    for (Item i = 0; i < expected; ++i) ASSERT_EQ(my_stealer.steal(), i);
    // The victim kept the newest.
    for (Item i = n; i-- > expected;) ASSERT_EQ(victim.pop(), i);
    EXPECT_TRUE(victim.empty());
  }
}

TEST(SCHED_SUITE(WorkStealingDeque), StealHalfRespectsBatchAndDestinationSpace) {
  auto [victim, stealer] = make_work_stealing_deque<Item>(64);
  auto [mine, my_stealer] = make_work_stealing_deque<Item>(8);
  for (Item i = 0; i < 64; ++i) ASSERT_TRUE(victim.push(i));
  EXPECT_EQ(stealer.steal_half_into(mine, /*max_batch=*/3), 3u);
  ASSERT_TRUE(mine.push(100));
  ASSERT_TRUE(mine.push(101));
  // 8 slots, 5 used: only 3 more fit, although half of the victim's 61 is 31.
  EXPECT_EQ(stealer.steal_half_into(mine, /*max_batch=*/32), 3u);
  EXPECT_EQ(mine.free_slots(), 0u);
  EXPECT_EQ(stealer.steal_half_into(mine), 0u);  // full destination: nothing moves, nothing lost
  EXPECT_EQ(victim.size(), 58u);
  for (Item i = 6; i < 64; ++i) ASSERT_EQ(stealer.steal(), i);
}

TEST(SCHED_SUITE(WorkStealingDeque), StealHalfFromEmptyMovesNothing) {
  auto [victim, stealer] = make_work_stealing_deque<Item>();
  auto [mine, my_stealer] = make_work_stealing_deque<Item>();
  EXPECT_EQ(stealer.steal_half_into(mine), 0u);
  EXPECT_TRUE(mine.empty());
}

TEST(SCHED_SUITE(WorkStealingDeque), DefaultStealerIsEmpty) {
  DequeStealer<Item> nothing;
  auto [mine, my_stealer] = make_work_stealing_deque<Item>();
  EXPECT_EQ(nothing.steal(), std::nullopt);
  EXPECT_EQ(nothing.steal_half_into(mine), 0u);
  EXPECT_TRUE(nothing.empty());
  EXPECT_EQ(nothing.size_hint(), 0u);
}

TEST(SCHED_SUITE(WorkStealingDeque), StealersKeepTheRingAlive) {
  DequeStealer<Item> stealer;
  {
    auto [local, s] = make_work_stealing_deque<Item>();
    ASSERT_TRUE(local.push(5));
    ASSERT_TRUE(local.push(6));
    stealer = s;  // a copy; the Local and `s` die at the brace
  }
  EXPECT_EQ(stealer.steal(), 5u);
  EXPECT_EQ(stealer.steal(), 6u);
  EXPECT_EQ(stealer.steal(), std::nullopt);
}

TEST(SCHED_SUITE(WorkStealingDeque), HoldsPointers) {
  int values[3] = {10, 20, 30};
  auto [local, stealer] = make_work_stealing_deque<int*>();
  for (int& v : values) ASSERT_TRUE(local.push(&v));
  EXPECT_EQ(*stealer.steal().value(), 10);
  EXPECT_EQ(*local.pop().value(), 30);
  EXPECT_EQ(local.stealer().steal().value(), &values[1]);
}

TEST(SCHED_SUITE(WorkStealingDeque), MovedLocalKeepsItsItems) {
  auto [local, stealer] = make_work_stealing_deque<Item>();
  ASSERT_TRUE(local.push(1));
  DequeLocal<Item> moved = std::move(local);
  ASSERT_TRUE(moved.push(2));
  EXPECT_EQ(moved.pop(), 2u);
  EXPECT_EQ(stealer.steal(), 1u);
}

// The owner pushes one item and pops it straight back while a thief steals continuously: the
// deque holds zero or one item nearly all the time, so nearly every operation is the
// last-item race between pop's CAS and steal's CAS. Each item must be taken exactly once.
// Items point to records with a plain payload written before the push and checked by whoever
// takes the item: a thief can only win an item by reading the push's store of `bottom`, so
// under ThreadSanitizer a push that failed to publish its slot is reported as a data race.
TEST(SCHED_SUITE(WorkStealingDeque), LastItemRaceTakesEachItemOnce) {
  struct Record {
    uint64_t payload = 0;  // plain on purpose
  };
  // At least kItems races; more (up to kMaxItems) while the thief has won fewer than
  // kMinStolen, since on a loaded machine it may not get a CPU at first.
  const uint64_t kItems = 200'000 / testing::kStressDivisor;
  const uint64_t kMaxItems = 10 * kItems;
  constexpr uint64_t kMinStolen = 50;
  std::vector<Record> records(kMaxItems);
  std::vector<std::atomic<uint8_t>> taken(kMaxItems);
  std::atomic<uint64_t> corrupt{0};
  auto take = [&](Record* r) {
    const uint64_t id = static_cast<uint64_t>(r - records.data());
    if (r->payload != id + 1) corrupt.fetch_add(1, std::memory_order_relaxed);
    taken[id].fetch_add(1, std::memory_order_relaxed);
  };
  auto [local, stealer] = make_work_stealing_deque<Record*>();
  std::atomic<bool> done{false}, thief_running{false};
  std::atomic<uint64_t> stolen{0};
  std::thread thief([&, s = stealer]() mutable {
    thief_running.store(true);
    while (!done.load(std::memory_order_acquire)) {
      if (std::optional<Record*> r = s.steal()) {
        take(*r);
        stolen.fetch_add(1, std::memory_order_relaxed);
      }
    }
  });
  while (!thief_running.load()) std::this_thread::yield();
  uint64_t popped = 0;
  XorShift64 rng(testing::test_seed());
  uint64_t items = 0;
  for (; items < kMaxItems && (items < kItems || stolen.load() < kMinStolen); ++items) {
    const uint64_t i = items;
    records[i].payload = i + 1;
    ASSERT_TRUE(local.push(&records[i]));
    // A random pause before the pop, so that the thief wins a fair share of the races even
    // when it runs slower than the owner (sanitizers) or shares its CPU (a loaded machine): a
    // thief needs a few cache misses to take an item, so sometimes spin up to a microsecond or
    // so (ending early once the item is gone), and now and then yield the CPU mid-race.
    const uint32_t dice = rng.below(1024);
    if (dice == 0) {
      std::this_thread::yield();
    } else if (dice < 256) {
      for (uint32_t spin = rng.below(512); spin > 0 && stealer.size_hint() != 0; --spin) {
      }
    }
    if (std::optional<Record*> r = local.pop()) {
      take(*r);
      ++popped;
    }
  }
  while (std::optional<Record*> r = local.pop()) {
    take(*r);
    ++popped;
  }
  done.store(true, std::memory_order_release);
  thief.join();
  EXPECT_EQ(popped + stolen.load(), items);
  EXPECT_GT(stolen.load(), 0u) << "the thief never won: the race was not exercised";
  EXPECT_EQ(corrupt.load(), 0u);
  for (uint64_t i = 0; i < items; ++i) ASSERT_EQ(taken[i].load(), 1) << "item " << i;
}

}  // namespace
}  // namespace shardloop::scheduler
