// StealHintRing: records come out in order, a full ring drops and counts, and under several
// producers racing one consumer every record comes out exactly once, each producer's in the
// order it pushed them (run under TSan for the memory orders).
#include "runtime/steal_hint_ring.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <optional>
#include <thread>
#include <vector>

#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

TEST(StealHintRing, FifoAndEmpty) {
  StealHintRing ring;
  EXPECT_FALSE(ring.pop().has_value());
  for (uint32_t i = 0; i < 10; ++i) ASSERT_TRUE(ring.push({100 + i, i}));
  for (uint32_t i = 0; i < 10; ++i) {
    std::optional<StealRecord> r = ring.pop();
    ASSERT_TRUE(r.has_value());
    EXPECT_EQ(r->affinity, 100 + i);
    EXPECT_EQ(r->thief, i);
  }
  EXPECT_FALSE(ring.pop().has_value());
  EXPECT_EQ(ring.dropped(), 0u);
}

TEST(StealHintRing, FullRingDropsAndCountsThenRecovers) {
  StealHintRing ring;
  const size_t cap = StealHintRing::kCapacity;
  for (size_t lap = 0; lap < 3; ++lap) {  // wrap around a few times
    for (size_t i = 0; i < cap; ++i) ASSERT_TRUE(ring.push({i + 1, 1}));
    EXPECT_FALSE(ring.push({999, 1}));
    EXPECT_FALSE(ring.push({999, 1}));
    EXPECT_EQ(ring.dropped(), 2 * (lap + 1));
    for (size_t i = 0; i < cap; ++i) {
      std::optional<StealRecord> r = ring.pop();
      ASSERT_TRUE(r.has_value());
      EXPECT_EQ(r->affinity, i + 1);
    }
    EXPECT_FALSE(ring.pop().has_value());
  }
}

TEST(StealHintRing, ManyProducersOneConsumer) {
  StealHintRing ring;
  const uint32_t kProducers = 4;
  const uint64_t kPerProducer = 20'000 / testing::kSanitizerScale;
  std::atomic<bool> go{false};
  std::atomic<uint32_t> finished{0};
  std::vector<uint64_t> refused(kProducers, 0);
  std::vector<std::thread> producers;
  for (uint32_t p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      while (!go.load()) std::this_thread::yield();
      // affinity = sequence number within this producer, from 1. A refused push is retried
      // (a thief would drop it), so that every record must come out.
      for (uint64_t i = 1; i <= kPerProducer; ++i) {
        while (!ring.push({i, p})) {
          ++refused[p];
          std::this_thread::yield();
        }
      }
      finished.fetch_add(1);
    });
  }
  std::vector<uint64_t> last(kProducers, 0), popped(kProducers, 0);
  bool in_order = true;
  go = true;
  for (;;) {
    const bool done = finished.load() == kProducers;  // read before the final drain
    while (std::optional<StealRecord> r = ring.pop()) {
      ASSERT_LT(r->thief, kProducers);
      in_order &= r->affinity > last[r->thief];
      last[r->thief] = r->affinity;
      ++popped[r->thief];
    }
    if (done) break;
  }
  for (auto& t : producers) t.join();
  EXPECT_TRUE(in_order) << "a producer's records came out of order (or twice)";
  uint64_t dropped = 0;
  for (uint32_t p = 0; p < kProducers; ++p) {
    EXPECT_EQ(popped[p], kPerProducer) << "producer " << p;
    dropped += refused[p];
  }
  EXPECT_EQ(ring.dropped(), dropped);
}

}  // namespace
}  // namespace shardloop
