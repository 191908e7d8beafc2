// RunQueue: FIFO order, including across growth while the ring has wrapped around.
#include "runtime/run_queue.h"

#include <gtest/gtest.h>

#include <memory>
#include <vector>

namespace shardloop {
namespace {

TEST(RunQueueTest, RunsJobsInFifoOrder) {
  RunQueue q;
  EXPECT_TRUE(q.empty());
  std::vector<int> ran;
  for (int i = 0; i < 10; ++i) q.push([&ran, i] { ran.push_back(i); });
  EXPECT_EQ(q.size(), 10u);
  while (!q.empty()) q.pop()();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
}

TEST(RunQueueTest, KeepsOrderWhenGrowingAfterWrapAround) {
  // Advance the head well into the ring, then push enough to wrap and to force several
  // doublings while the live jobs straddle the end of the ring.
  RunQueue q;
  std::vector<int> ran;
  int next = 0, expected = 0;
  for (int i = 0; i < 200; ++i) q.push([&ran, v = next++] { ran.push_back(v); });
  for (int i = 0; i < 150; ++i) q.pop()();
  for (int i = 0; i < 2000; ++i) q.push([&ran, v = next++] { ran.push_back(v); });
  EXPECT_EQ(q.size(), 2050u);
  while (!q.empty()) q.pop()();
  ASSERT_EQ(ran.size(), static_cast<size_t>(next));
  for (int v : ran) EXPECT_EQ(v, expected++);
}

TEST(RunQueueTest, InterleavedPushPopStaysFifo) {
  RunQueue q;
  std::vector<int> ran;
  int next = 0;
  for (int round = 0; round < 50; ++round) {
    for (int i = 0; i < round * 7 % 300; ++i) q.push([&ran, v = next++] { ran.push_back(v); });
    for (int i = 0; i < round * 5 % 200 && !q.empty(); ++i) q.pop()();
  }
  while (!q.empty()) q.pop()();
  ASSERT_EQ(ran.size(), static_cast<size_t>(next));
  for (int i = 0; i < next; ++i) ASSERT_EQ(ran[i], i);
}

TEST(RunQueueTest, ClearDestroysJobsWithoutRunningThem) {
  RunQueue q;
  auto owned = std::make_shared<int>(0);
  bool ran = false;
  for (int i = 0; i < 300; ++i) q.push([owned, &ran] { ran = true; });
  q.clear();
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(ran);
  EXPECT_EQ(owned.use_count(), 1);
}

}  // namespace
}  // namespace shardloop
