// Channel<T>: per-producer order and exactly-once delivery (with rings small enough that the
// full-ring inbox fallback runs all the time), one wakeup per published burst, delivery without
// an explicit flush, move-only messages, and request/reply traffic that fills the rings in both
// directions from inside handlers, on both backends.
#include "runtime/channel.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/functional/any_invocable.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

struct Numbered {
  size_t from = 0;
  uint64_t seq = 0;
};

class ChannelTest : public testing::PerBackendTest {};

// Every worker sends `per_pair` numbered messages to every worker (itself included),
// interleaving consumers and yielding now and then so consumers drain while producers send.
// Each consumer checks that each producer's numbers arrive as 0, 1, 2, ...
void run_all_to_all(Runtime& rt, size_t capacity, uint64_t per_pair, ChannelStats* out) {
  const size_t n = rt.size();
  // next[c * n + p]: the number consumer c expects next from producer p. Each element is
  // touched only by its consumer's thread.
  std::vector<uint64_t> next(n * n, 0);
  std::atomic<uint64_t> handled{0}, misordered{0}, wrong_worker{0};
  Channel<Numbered> ch(rt,
                       [&](size_t from, Numbered m) {
                         const size_t c = Worker::current()->index();
                         if (from != m.from) wrong_worker.fetch_add(1, std::memory_order_relaxed);
                         if (next[c * n + from]++ != m.seq)
                           misordered.fetch_add(1, std::memory_order_relaxed);
                         handled.fetch_add(1, std::memory_order_relaxed);
                       },
                       {.capacity = capacity});
  for (size_t p = 0; p < n; ++p) {
    rt.spawn_on(p, [&ch, n, p, per_pair]() -> Task<void> {
      for (uint64_t seq = 0; seq < per_pair; ++seq) {
        for (size_t c = 0; c < n; ++c) ch.send(c, {.from = p, .seq = seq});
        if (seq % 64 == 63) {
          if (seq % 128 == 127) ch.flush();  // half the batches flushed by hand, half deferred
          co_await yield_now();
        }
      }
    });
  }
  const uint64_t total = per_pair * n * n;
  ASSERT_TRUE(testing::wait_until([&] { return handled.load() >= total; }))
      << "handled " << handled.load() << " of " << total << " (lost messages)";
  // Nothing more arrives late (a duplicate would show up here).
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  rt.stop();  // joins the workers, so `next` may be read here; the channel outlives them
  EXPECT_EQ(handled.load(), total);
  EXPECT_EQ(misordered.load(), 0u);
  EXPECT_EQ(wrong_worker.load(), 0u);
  for (size_t i = 0; i < n * n; ++i) EXPECT_EQ(next[i], per_pair) << "pair " << i;
  *out = ch.stats();
}

TEST_P(ChannelTest, EveryMessageArrivesOnceInProducerOrderThroughTheRing) {
  Runtime rt(options(3));
  ASSERT_TRUE(rt.start().ok());
  ChannelStats s;
  run_all_to_all(rt, 1024, 20000 / testing::kSanitizerScale, &s);
  EXPECT_EQ(s.sent, s.handled);
  EXPECT_LT(s.wakeups, s.sent / 16) << "consumers should be woken per batch, not per message";
}

TEST_P(ChannelTest, EveryMessageArrivesOnceInProducerOrderWhenRingsOverflow) {
  Runtime rt(options(3));
  ASSERT_TRUE(rt.start().ok());
  ChannelStats s;
  run_all_to_all(rt, 4, 20000 / testing::kSanitizerScale, &s);
  EXPECT_EQ(s.sent, s.handled);
  EXPECT_GT(s.overflowed, 0u) << "4-slot rings with 64-message bursts must overflow";
  EXPECT_LT(s.overflowed, s.sent) << "the ring must be used again after an overflow";
}

TEST_P(ChannelTest, ManyMessagesBetweenTwoWorkers) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  ChannelStats s;
  run_all_to_all(rt, 256, 250000 / testing::kSanitizerScale, &s);
  EXPECT_EQ(s.handled, 4u * (250000 / testing::kSanitizerScale));
}

TEST_P(ChannelTest, ABurstWakesTheConsumerOnce) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> handled{0}, on_consumer{0};
  Channel<int> ch(rt, [&](size_t from, int) {
    if (from == 0 && Worker::current()->index() == 1) on_consumer.fetch_add(1);
    handled.fetch_add(1);
  });
  rt.post_to(0, [&ch] {
    for (int i = 0; i < 100; ++i) ch.send(1, i);
    ch.flush();
  });
  ASSERT_TRUE(testing::wait_until([&] { return handled.load() == 100; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the deferred flush has run
  rt.stop();
  EXPECT_EQ(on_consumer.load(), 100);
  ChannelStats s = ch.stats(0, 1);
  EXPECT_EQ(s.sent, 100u);
  EXPECT_EQ(s.overflowed, 0u);
  EXPECT_EQ(s.wakeups, 1u) << "one published burst needs exactly one drain job";
}

TEST_P(ChannelTest, SendsWithoutFlushAreDeliveredAfterTheJob) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  std::atomic<int> handled{0};
  Channel<int> ch(rt, [&](size_t, int) { handled.fetch_add(1); });
  rt.post_to(1, [&ch] {
    ch.send(0, 1);
    ch.send(1, 2);  // to itself
  });
  EXPECT_TRUE(testing::wait_until([&] { return handled.load() == 2; }));
  rt.stop();
}

TEST_P(ChannelTest, MoveOnlyCallablesRunOnTheConsumer) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  using Job = absl::AnyInvocable<void()>;
  Channel<Job> ch(rt, [](size_t, Job job) { job(); }, {.capacity = 2});
  std::atomic<int> ran_on_1{0}, ran{0};
  rt.post_to(0, [&] {
    for (int i = 0; i < 50; ++i) {
      auto payload = std::make_unique<int>(i);  // move-only capture
      ch.send(1, [&, p = std::move(payload)] {
        if (Worker::current()->index() == 1) ran_on_1.fetch_add(1);
        ran.fetch_add(1);
      });
    }
  });
  ASSERT_TRUE(testing::wait_until([&] { return ran.load() == 50; }));
  rt.stop();
  EXPECT_EQ(ran_on_1.load(), 50);
  EXPECT_GT(ch.stats().overflowed, 0u);
}

// Two workers each send a burst of requests to the other at once; each request is answered from
// inside the handler. With 2-slot rings both directions are full while both workers are inside
// handlers that send: the inbox fallback must keep everything moving, in order.
TEST_P(ChannelTest, RequestsAndRepliesFillingBothDirectionsNeverDeadlock) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  struct Msg {
    bool reply = false;
    uint64_t seq = 0;
  };
  const uint64_t k = 20000 / testing::kSanitizerScale;
  std::vector<uint64_t> next_reply(2, 0);  // per origin worker, touched only by that worker
  std::atomic<uint64_t> replies{0}, misordered{0};
  Channel<Msg>* chp = nullptr;
  Channel<Msg> ch(rt,
                  [&](size_t from, Msg m) {
                    const size_t me = Worker::current()->index();
                    if (!m.reply) {
                      chp->send(from, {.reply = true, .seq = m.seq});
                      return;
                    }
                    if (next_reply[me]++ != m.seq) misordered.fetch_add(1);
                    replies.fetch_add(1);
                  },
                  {.capacity = 2});
  chp = &ch;
  for (size_t w = 0; w < 2; ++w) {
    rt.post_to(w, [&ch, w, k] {
      for (uint64_t i = 0; i < k; ++i) ch.send(1 - w, {.seq = i});
    });
  }
  ASSERT_TRUE(testing::wait_until([&] { return replies.load() == 2 * k; }))
      << "replies " << replies.load() << " of " << 2 * k;
  rt.stop();
  EXPECT_EQ(misordered.load(), 0u);
  EXPECT_GT(ch.stats().overflowed, 0u);
}

INSTANTIATE_TEST_SUITE_P(Backends, ChannelTest, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
