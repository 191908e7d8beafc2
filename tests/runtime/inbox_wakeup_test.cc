// Cross-thread messages (Worker::post) and the park handshake: a parked worker is woken, a busy
// one is not (no eventfd write), and every message from many producers runs exactly once.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <latch>
#include <random>
#include <thread>
#include <vector>

#include "runtime/inbox.h"
#include "runtime/runtime.h"
#include "runtime/worker.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

class InboxWakeupTest : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
  RuntimeOptions workers(size_t n) const { return GetParam().options(n); }
};

// --- Inbox on its own ------------------------------------------------------------------------

TEST(InboxTest, TakeAllReturnsMessagesInOrderAndClearsTheFlag) {
  Inbox inbox;
  EXPECT_FALSE(inbox.maybe_nonempty());
  std::vector<int> ran;
  for (int i = 0; i < 5; ++i) inbox.push([&ran, i] { ran.push_back(i); });
  EXPECT_TRUE(inbox.maybe_nonempty());

  std::vector<Inbox::Message> batch;
  inbox.take_all(batch);
  EXPECT_FALSE(inbox.maybe_nonempty());
  ASSERT_EQ(batch.size(), 5u);
  for (auto& m : batch) m();
  EXPECT_EQ(ran, (std::vector<int>{0, 1, 2, 3, 4}));

  batch.clear();
  inbox.take_all(batch);
  EXPECT_TRUE(batch.empty());
}

// --- Worker wakeups --------------------------------------------------------------------------

// Waits until worker `w` has parked at least `after + 1` times in total.
bool wait_for_park(Worker& w, uint64_t after) {
  return testing::wait_until([&] { return w.stats().parks > after; });
}

TEST_P(InboxWakeupTest, PostFromAnotherThreadWakesAParkedWorker) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);
  // With nothing to do and no timers, the worker blocks in the poller with no timeout: only a
  // wakeup can get it to run the message.
  ASSERT_TRUE(wait_for_park(w, 0));
  const uint64_t wakeups_before = w.stats().wakeups_sent;

  std::promise<std::thread::id> ran;
  auto future = ran.get_future();
  std::thread poster([&] { w.post([&ran] { ran.set_value(std::this_thread::get_id()); }); });
  poster.join();
  ASSERT_EQ(future.wait_for(testing::kPatience), std::future_status::ready)
      << "message posted to a parked worker never ran (lost wakeup)";
  EXPECT_NE(future.get(), std::this_thread::get_id());
  EXPECT_GE(w.stats().wakeups_sent, wakeups_before + 1);
  rt.stop();
}

TEST_P(InboxWakeupTest, RepeatedRoundTripsNeverLoseAWakeup) {
  // Each round trip lands at a different point of the worker's loop (busy, about to park,
  // parked); a lost wakeup shows up as a timeout.
  const int kRounds = 2000 / testing::kSanitizerScale;
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);
  for (int i = 0; i < kRounds; ++i) {
    std::promise<uint64_t> ran;
    auto future = ran.get_future();
    w.post([&ran, &w] { ran.set_value(w.stats().parks); });
    ASSERT_EQ(future.wait_for(testing::kPatience), std::future_status::ready) << "round " << i;
    const uint64_t parks_when_run = future.get();
    if (i % 100 == 0) {
      // Now and then, make sure the next post finds the worker fully parked.
      ASSERT_TRUE(wait_for_park(w, parks_when_run)) << "round " << i;
    }
  }
  rt.stop();
}

TEST_P(InboxWakeupTest, PostsAtEveryPointOfTheParkRaceAreNeverLost) {
  // Each round posts a message, waits a random few microseconds, and posts a second one while
  // the worker is somewhere in waking up, running the first, checking its inbox and parking
  // again; then waits for both. A second message that slips in between the worker's last inbox
  // check and its park, without waking it, is never run: the round times out.
  const int kRounds = 20000 / testing::kSanitizerScale;
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);
  for (uint64_t seed : testing::test_seeds(1)) {
    SCOPED_TRACE(::testing::Message() << "seed=" << seed);
    std::mt19937 rng(static_cast<uint32_t>(seed));
    std::atomic<int> acked{0};
    std::atomic<uint32_t> spin_sink{0};
    for (int i = 0; i < kRounds; ++i) {
      w.post([&acked] { acked.fetch_add(1, std::memory_order_release); });
      const uint32_t spins = rng() % 2048;
      for (uint32_t k = 0; k < spins; ++k) {
        spin_sink.fetch_add(1, std::memory_order_relaxed);  // a short busy pause
      }
      w.post([&acked] { acked.fetch_add(1, std::memory_order_release); });
      const auto deadline = std::chrono::steady_clock::now() + testing::kPatience;
      while (acked.load(std::memory_order_acquire) != 2 * (i + 1)) {
        ASSERT_LT(std::chrono::steady_clock::now(), deadline)
            << "round " << i << ": a message was never run (lost wakeup)";
        std::this_thread::yield();
      }
    }
  }
  rt.stop();
}

TEST_P(InboxWakeupTest, BusyWorkerIsNotWokenThroughTheEventfd) {
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());
  Worker& w = rt.worker(0);
  constexpr int kMessages = 100;

  std::promise<void> blocked;
  std::promise<void> release;
  std::shared_future<void> release_future = release.get_future().share();
  rt.post_to(0, [&blocked, release_future] {
    blocked.set_value();
    release_future.wait();  // the worker thread is busy until the test says otherwise
  });
  ASSERT_EQ(blocked.get_future().wait_for(testing::kPatience), std::future_status::ready);

  int ran = 0;  // only touched on the worker
  const uint64_t w0 = w.stats().wakeups_sent;
  for (int i = 0; i < kMessages; ++i) rt.post_to(0, [&ran] { ++ran; });
  const uint64_t w1 = w.stats().wakeups_sent;
  release.set_value();

  EXPECT_EQ(w1, w0) << "posting to a busy (unparked) worker wrote its eventfd";
  // call_on's message is queued after the 100, so they have all run when it does.
  EXPECT_EQ(rt.call_on(0, [&ran] { return ran; }), kMessages);
  rt.stop();
}

TEST_P(InboxWakeupTest, ManyProducersEveryMessageRunsExactlyOnceInPerProducerOrder) {
  constexpr int kProducers = 4;
  const int kPerProducer = 10000 / testing::kSanitizerScale;
  Runtime rt(workers(1));
  ASSERT_TRUE(rt.start().ok());

  // Worker-only state: the count per message, and the last sequence number per producer.
  std::vector<int> times_ran(kProducers * kPerProducer, 0);
  std::vector<int> last_seq(kProducers, -1);
  int out_of_order = 0;

  std::latch go(kProducers);
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      go.arrive_and_wait();
      for (int i = 0; i < kPerProducer; ++i) {
        rt.post_to(0, [&, p, i] {
          ++times_ran[p * kPerProducer + i];
          if (i <= last_seq[p]) ++out_of_order;
          last_seq[p] = i;
        });
      }
    });
  }
  for (auto& t : producers) t.join();

  // Posted after every producer finished, so it runs after all their messages.
  struct Summary {
    int missing = 0, duplicated = 0, out_of_order = 0;
  };
  Summary s = rt.call_on(0, [&] {
    Summary r;
    for (int n : times_ran) {
      if (n == 0) ++r.missing;
      if (n > 1) ++r.duplicated;
    }
    r.out_of_order = out_of_order;
    return r;
  });
  EXPECT_EQ(s.missing, 0);
  EXPECT_EQ(s.duplicated, 0);
  EXPECT_EQ(s.out_of_order, 0) << "messages of one producer ran out of order";
  EXPECT_GE(rt.worker(0).stats().inbox_messages, static_cast<uint64_t>(kProducers * kPerProducer));
  rt.stop();
}

TEST_P(InboxWakeupTest, WorkersPostToEachOther) {
  // Ping-pong between two workers through post(): both sides park and wake repeatedly.
  const int kHops = 2000 / testing::kSanitizerScale;
  Runtime rt(workers(2));
  ASSERT_TRUE(rt.start().ok());
  std::promise<int> done;
  auto future = done.get_future();
  struct Hop {
    Runtime* rt;
    std::promise<int>* done;
    int remaining;
    int bad_thread = 0;
    void go(size_t to) {
      rt->post_to(to, [this, to] {
        if (Worker::current() != &rt->worker(to)) ++bad_thread;
        if (--remaining == 0) {
          done->set_value(bad_thread);
          return;
        }
        go(1 - to);
      });
    }
  } hop{&rt, &done, kHops};
  hop.go(0);
  ASSERT_EQ(future.wait_for(testing::kPatience), std::future_status::ready);
  EXPECT_EQ(future.get(), 0) << "a message ran on the wrong worker";
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Backends, InboxWakeupTest, testing::kAllConfigs,
                         testing::config_test_name);

}  // namespace
}  // namespace shardloop
