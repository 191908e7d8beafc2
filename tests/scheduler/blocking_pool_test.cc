// BlockingPool: every function runs exactly once and its completion reaches the consumer that
// submitted it; exceptions travel in the outcome; shutdown drains or rejects, never drops;
// idle threads park (no CPU burnt) and wake for new work. Built twice: default ring capacity
// and SHARDLOOP_SMALL_QUEUES (capacity 4: most submissions overflow to the shared queue).
#include "scheduler/blocking_pool.h"

#include <gtest/gtest.h>
#include <sys/resource.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <tuple>
#include <vector>

#include "runtime/xorshift.h"
#include "tests/scheduler/test_support.h"

namespace shardloop::scheduler {
namespace {

using namespace std::chrono_literals;
using testing::kStressDivisor;
using testing::wait_until;

// A one-shot gate the test opens; pool functions wait on it to hold a pool thread busy.
class Gate {
 public:
  void open() {
    std::lock_guard lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  void wait() {
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return open_; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = false;
};

// Completions delivered to one consumer, like a worker's inbox.
struct Mailbox {
  std::mutex mu;
  std::vector<std::tuple<size_t, uint64_t, BlockingOutcome>> got;  // (tag, value, outcome)
  void deliver(size_t tag, uint64_t value, BlockingOutcome outcome) {
    std::lock_guard lock(mu);
    got.emplace_back(tag, value, std::move(outcome));
  }
  size_t size() {
    std::lock_guard lock(mu);
    return got.size();
  }
};

double process_cpu_seconds() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return static_cast<double>(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
         static_cast<double>(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

// --- exactly once, right consumer, for several shapes and spin settings --------------------

struct Shape {
  size_t consumers;
  size_t threads;
  std::chrono::nanoseconds spin;
};

class SCHED_SUITE(BlockingPoolShapes) : public ::testing::TestWithParam<Shape> {};

TEST_P(SCHED_SUITE(BlockingPoolShapes), EveryFunctionRunsOnceAndReturnsToItsConsumer) {
  const Shape shape = GetParam();
  const uint64_t kPerConsumer = 20000 / kStressDivisor;
  BlockingPool pool({.threads = shape.threads, .consumers = shape.consumers, .spin = shape.spin});
  std::vector<std::atomic<uint8_t>> runs(shape.consumers * kPerConsumer);
  std::vector<Mailbox> mailboxes(shape.consumers);
  std::vector<std::thread> consumers;
  for (size_t c = 0; c < shape.consumers; ++c) {
    consumers.emplace_back([&, c] {
      for (uint64_t i = 0; i < kPerConsumer; ++i) {
        const uint64_t id = c * kPerConsumer + i;
        auto result = std::make_shared<uint64_t>(0);
        pool.submit(
            c,
            [&runs, id, result] {
              runs[id].fetch_add(1, std::memory_order_relaxed);
              *result = id * 3;  // the "result", computed on the pool thread
            },
            [&mailboxes, c, result](BlockingOutcome outcome) {
              mailboxes[c].deliver(c, *result, std::move(outcome));
            });
        // Now and then let the pool run dry, so threads park and must be woken.
        if (i % 997 == 0) std::this_thread::sleep_for(100us);
      }
    });
  }
  for (auto& t : consumers) t.join();
  for (size_t c = 0; c < shape.consumers; ++c) {
    ASSERT_TRUE(wait_until([&] { return mailboxes[c].size() == kPerConsumer; }))
        << "consumer " << c << " got " << mailboxes[c].size() << " of " << kPerConsumer;
  }
  for (size_t c = 0; c < shape.consumers; ++c) {
    std::vector<bool> seen(kPerConsumer);
    for (auto& [tag, value, outcome] : mailboxes[c].got) {
      ASSERT_EQ(tag, c);
      ASSERT_TRUE(outcome.status.ok()) << outcome.status;
      ASSERT_EQ(outcome.exception, nullptr);
      ASSERT_EQ(value % 3, 0u);
      const uint64_t id = value / 3;
      ASSERT_EQ(id / kPerConsumer, c) << "a result reached the wrong consumer";
      ASSERT_FALSE(seen[id % kPerConsumer]) << "completion delivered twice: " << id;
      seen[id % kPerConsumer] = true;
    }
  }
  for (size_t i = 0; i < runs.size(); ++i) ASSERT_EQ(runs[i].load(), 1) << "function " << i;
  const BlockingPoolStats stats = pool.stats();
  EXPECT_EQ(stats.jobs_run, shape.consumers * kPerConsumer);
  EXPECT_EQ(stats.jobs_rejected, 0u);
}

// Through a wrapper so that SCHED_SUITE(...) expands before gtest pastes tokens onto it.
#define SCHED_INSTANTIATE(prefix, suite, ...) INSTANTIATE_TEST_SUITE_P(prefix, suite, __VA_ARGS__)
SCHED_INSTANTIATE(
    , SCHED_SUITE(BlockingPoolShapes),
    ::testing::Values(Shape{1, 1, kDefaultBlockingSpin}, Shape{4, 1, kDefaultBlockingSpin},
                      Shape{1, 4, kDefaultBlockingSpin}, Shape{4, 2, kDefaultBlockingSpin},
                      Shape{8, 4, kDefaultBlockingSpin}, Shape{4, 3, 0ns}, Shape{3, 2, 2ms}),
    [](const ::testing::TestParamInfo<Shape>& info) {
      return "N" + std::to_string(info.param.consumers) + "_M" +
             std::to_string(info.param.threads) + "_spin" +
             std::to_string(info.param.spin.count() / 1000) + "us";
    });

// --- wakeups and parking ----------------------------------------------------------------------

// One job at a time with pauses, so submissions find the pool spinning, parking or parked: a
// lost wakeup shows up as a completion that never arrives.
TEST(SCHED_SUITE(BlockingPool), WakesParkedThreadsEveryTime) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  for (auto spin : {std::chrono::nanoseconds(0), std::chrono::nanoseconds(kDefaultBlockingSpin)}) {
    SCOPED_TRACE(::testing::Message() << "spin " << spin.count() << "ns");
    BlockingPool pool({.threads = 3, .consumers = 2, .spin = spin});
    std::vector<std::thread> consumers;
    std::atomic<int> lost{0};
    for (size_t c = 0; c < 2; ++c) {
      consumers.emplace_back([&, c] {
        XorShift64 rng(seed + c);
        for (int i = 0; i < 400 / static_cast<int>(kStressDivisor) + 40; ++i) {
          auto done = std::make_shared<std::atomic<bool>>(false);
          pool.submit(
              c, [] {}, [done](BlockingOutcome) { done->store(true); });
          if (!wait_until([&] { return done->load(); }, 5s)) {
            lost.fetch_add(1);
            return;
          }
          // 0-60 us: around the spin window, so each state of the handshake gets hit.
          std::this_thread::sleep_for(std::chrono::microseconds(rng.below(60)));
        }
      });
    }
    for (auto& t : consumers) t.join();
    EXPECT_EQ(lost.load(), 0) << "a submission was never run: lost wakeup";
    if (spin.count() == 0) {
      EXPECT_GT(pool.stats().parks, 0u);
    }
  }
}

TEST(SCHED_SUITE(BlockingPool), IdleThreadsParkAndBurnNoCpu) {
  BlockingPool pool({.threads = 4, .consumers = 1});
  // Make every thread run something, then go idle.
  std::atomic<int> ran{0};
  for (int i = 0; i < 64; ++i)
    pool.submit(
        0, [&] { ran.fetch_add(1); }, [](BlockingOutcome) {});
  ASSERT_TRUE(wait_until([&] { return ran.load() == 64; }));
  std::this_thread::sleep_for(50ms);  // well past the spin window
  const double before = process_cpu_seconds();
  std::this_thread::sleep_for(300ms);
  const double used = process_cpu_seconds() - before;
  EXPECT_LT(used, 0.03) << "an idle pool of 4 threads used " << used * 1e3
                        << " ms of CPU in 300 ms";
  // And it still wakes up.
  std::atomic<bool> done{false};
  pool.submit(
      0, [] {}, [&](BlockingOutcome) { done.store(true); });
  EXPECT_TRUE(wait_until([&] { return done.load(); }));
}

// --- outcomes --------------------------------------------------------------------------------

TEST(SCHED_SUITE(BlockingPool), ExceptionsTravelInTheOutcome) {
  BlockingPool pool({.threads = 2, .consumers = 1});
  Mailbox box;
  pool.submit(
      0, [] { throw std::runtime_error("disk on fire"); },
      [&](BlockingOutcome o) { box.deliver(0, 1, std::move(o)); });
  pool.submit(
      0, [] { throw 42; }, [&](BlockingOutcome o) { box.deliver(0, 2, std::move(o)); });
  pool.submit(
      0, [] {}, [&](BlockingOutcome o) { box.deliver(0, 3, std::move(o)); });
  ASSERT_TRUE(wait_until([&] { return box.size() == 3; }));
  for (auto& [tag, which, outcome] : box.got) {
    EXPECT_TRUE(outcome.status.ok());
    if (which == 1) {
      ASSERT_NE(outcome.exception, nullptr);
      try {
        std::rethrow_exception(outcome.exception);
      } catch (const std::runtime_error& e) {
        EXPECT_STREQ(e.what(), "disk on fire");
      }
    } else if (which == 2) {
      ASSERT_NE(outcome.exception, nullptr);
      EXPECT_THROW(std::rethrow_exception(outcome.exception), int);
    } else {
      EXPECT_EQ(outcome.exception, nullptr);
    }
  }
}

TEST(SCHED_SUITE(BlockingPool), SharedSubmissionsFromManyThreads) {
  BlockingPool pool({.threads = 2, .consumers = 1});
  constexpr int kThreads = 6;
  const int kEach = 3000 / static_cast<int>(kStressDivisor);
  std::vector<std::atomic<uint8_t>> runs(kThreads * kEach);
  std::atomic<int> completed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        pool.submit_shared([&runs, id = t * kEach + i] { runs[id].fetch_add(1); },
                           [&](BlockingOutcome o) {
                             EXPECT_TRUE(o.status.ok());
                             completed.fetch_add(1);
                           });
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_TRUE(wait_until([&] { return completed.load() == kThreads * kEach; }));
  for (auto& r : runs) ASSERT_EQ(r.load(), 1);
  EXPECT_EQ(pool.stats().shared_submits, static_cast<uint64_t>(kThreads * kEach));
}

TEST(SCHED_SUITE(BlockingPool), FullRingOverflowsToTheSharedQueue) {
  BlockingPool pool({.threads = 1, .consumers = 1});
  Gate gate;
  std::atomic<int> completed{0};
  pool.submit(
      0, [&] { gate.wait(); }, [&](BlockingOutcome) { completed.fetch_add(1); });
  const int kQueued = static_cast<int>(kDefaultDequeCapacity) * 2 + 3;
  for (int i = 0; i < kQueued; ++i) {
    pool.submit(
        0, [] {},
        [&](BlockingOutcome o) {
          EXPECT_TRUE(o.status.ok());
          completed.fetch_add(1);
        });
  }
  EXPECT_GT(pool.stats().overflowed, 0u);
  gate.open();
  EXPECT_TRUE(wait_until([&] { return completed.load() == kQueued + 1; }));
}

// --- shutdown --------------------------------------------------------------------------------

// Holds the pool's only thread in a function, queues `queued` more, then shuts down with
// `mode` from another thread and opens the gate once the pool has stopped accepting work.
struct ShutdownScenario {
  explicit ShutdownScenario(int queued) : queued(queued) {}

  void run(ShutdownMode mode) {
    BlockingPool pool({.threads = 1, .consumers = 1});
    std::atomic<bool> started{false};
    pool.submit(
        0,
        [&] {
          started.store(true);
          gate.wait();
          ran.fetch_add(1);
        },
        [&](BlockingOutcome o) { record(o); });
    // Only once the thread is inside the first function is everything else surely queued.
    ASSERT_TRUE(wait_until([&] { return started.load(); }));
    for (int i = 0; i < queued; ++i) {
      pool.submit(
          0, [&] { ran.fetch_add(1); }, [&](BlockingOutcome o) { record(o); });
    }
    std::thread closer([&] { pool.shutdown(mode); });
    // The pool is closed once a probe is rejected; the stop flag follows within microseconds.
    bool closed = false;
    while (!closed) {
      pool.submit_shared(
          [] {},
          [&](BlockingOutcome o) {
            if (o.status.code() == absl::StatusCode::kFailedPrecondition)
              closed = true;
            else
              record(o);  // accepted before the close: an ordinary job, counted like the rest
          });
      if (!closed) std::this_thread::sleep_for(1ms);
    }
    std::this_thread::sleep_for(100ms);
    gate.open();
    closer.join();
    // shutdown() returned: every outcome has been delivered.
  }

  void record(const BlockingOutcome& o) {
    std::lock_guard lock(mu);
    outcomes.push_back(o.status);
  }
  int count(absl::StatusCode code) {
    int n = 0;
    for (const auto& s : outcomes) n += s.code() == code;
    return n;
  }

  const int queued;
  Gate gate;
  std::atomic<int> ran{0};
  std::mutex mu;
  std::vector<absl::Status> outcomes;
};

TEST(SCHED_SUITE(BlockingPool), ShutdownDrainRunsEverythingQueued) {
  ShutdownScenario s(100);
  s.run(ShutdownMode::kDrain);
  // The held function and the 100 queued behind it all ran (probes accepted before the
  // close ran too, and only add OK outcomes).
  EXPECT_EQ(s.ran.load(), 101);
  EXPECT_GE(static_cast<int>(s.outcomes.size()), 101);
  EXPECT_EQ(s.count(absl::StatusCode::kOk), static_cast<int>(s.outcomes.size()));
}

TEST(SCHED_SUITE(BlockingPool), ShutdownRejectCancelsWhatIsQueued) {
  ShutdownScenario s(100);
  s.run(ShutdownMode::kReject);
  // The function already running finishes; everything queued behind it is cancelled, each
  // with its own completion and a message that says why.
  EXPECT_EQ(s.ran.load(), 1);
  EXPECT_EQ(s.count(absl::StatusCode::kOk), 1);
  EXPECT_EQ(s.count(absl::StatusCode::kCancelled), static_cast<int>(s.outcomes.size()) - 1);
  EXPECT_GE(static_cast<int>(s.outcomes.size()), 101);
  for (const auto& st : s.outcomes) {
    if (!st.ok()) {
      EXPECT_NE(st.message().find("shut down"), absl::string_view::npos) << st;
    }
  }
}

TEST(SCHED_SUITE(BlockingPool), SubmitAfterShutdownIsRejectedInline) {
  BlockingPool pool({.threads = 2, .consumers = 1});
  pool.shutdown(ShutdownMode::kDrain);
  pool.shutdown(ShutdownMode::kReject);  // a second shutdown is a no-op
  bool ran = false;
  std::optional<BlockingOutcome> got;
  pool.submit(
      0, [&] { ran = true; }, [&](BlockingOutcome o) { got = std::move(o); });
  ASSERT_TRUE(got.has_value()) << "done must be called before submit returns";
  EXPECT_EQ(got->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(got->status.message().find("shut down"), absl::string_view::npos);
  got.reset();
  pool.submit_shared([&] { ran = true; }, [&](BlockingOutcome o) { got = std::move(o); });
  ASSERT_TRUE(got.has_value());
  EXPECT_EQ(got->status.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_FALSE(ran);
  EXPECT_EQ(pool.stats().jobs_rejected, 2u);
}

TEST(SCHED_SUITE(BlockingPool), DestructorDrains) {
  std::atomic<int> ran{0}, completed{0};
  {
    BlockingPool pool({.threads = 1, .consumers = 2});
    for (int i = 0; i < 50; ++i) {
      pool.submit(
          i % 2,
          [&] {
            std::this_thread::sleep_for(100us);
            ran.fetch_add(1);
          },
          [&](BlockingOutcome o) {
            EXPECT_TRUE(o.status.ok());
            completed.fetch_add(1);
          });
    }
  }
  EXPECT_EQ(ran.load(), 50);
  EXPECT_EQ(completed.load(), 50);
}

// A completion that submits a follow-up while the pool drains: the follow-up is rejected with
// its own completion, not lost and not deadlocked.
TEST(SCHED_SUITE(BlockingPool), FollowUpsDuringShutdownAreRejectedNotLost) {
  std::atomic<int> ok{0}, rejected{0};
  {
    BlockingPool pool({.threads = 2, .consumers = 1});
    for (int i = 0; i < 20; ++i) {
      pool.submit(
          0, [] { std::this_thread::sleep_for(200us); },
          [&](BlockingOutcome o) {
            EXPECT_TRUE(o.status.ok());
            ok.fetch_add(1);
            pool.submit_shared(
                [] {}, [&](BlockingOutcome f) { (f.status.ok() ? ok : rejected).fetch_add(1); });
          });
    }
    pool.shutdown(ShutdownMode::kDrain);
  }
  EXPECT_EQ(ok.load() + rejected.load(), 40);
  EXPECT_GE(ok.load(), 20);
}

}  // namespace
}  // namespace shardloop::scheduler
