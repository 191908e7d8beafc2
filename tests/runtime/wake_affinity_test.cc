// Wake affinity (runtime/wake_affinity.h): the streak rule on its own, and a stream whose reader
// keeps waking a task on another worker, which must move there (adaptive mode, opted in) and
// must stay put otherwise, losing and reordering nothing either way.
#include "runtime/wake_affinity.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>

#include "runtime/async_fd.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

// The rule alone: read_waits() names the worker; nothing here calls the move.
struct FollowerTest : ::testing::Test {
  int moves_called = 0;
  WakeFollower f{[this](Worker&) {
    ++moves_called;
    return absl::OkStatus();
  }};
  void TearDown() override { EXPECT_EQ(moves_called, 0); }
};

// Counts at a point of the stream's task: `wakes` idle wakes so far, the last of worker
// `woken`, `jobs` jobs begun.
WakeFollower::Counts at(uint64_t wakes, size_t woken, uint64_t jobs = 0) {
  return {.idle_wakes = wakes, .jobs_begun = jobs, .last_woken = woken};
}

TEST_F(FollowerTest, MovesAfterReadsInARowThatEachWokeTheSameWorker) {
  EXPECT_EQ(f.read_waits(at(0, 0), 2, true), std::nullopt) << "the first read has no return";
  f.read_returned(at(0, 0));
  EXPECT_EQ(f.read_waits(at(1, 3), 2, true), std::nullopt);  // one wake of worker 3
  f.read_returned(at(1, 3));
  EXPECT_EQ(f.read_waits(at(2, 3), 2, true), std::optional<size_t>(3));  // two in a row
}

TEST_F(FollowerTest, AReadThatWokeNobodyEndsTheStreak) {
  f.read_returned(at(0, 0));
  EXPECT_EQ(f.read_waits(at(1, 3), 2, true), std::nullopt);
  f.read_returned(at(1, 3));
  EXPECT_EQ(f.read_waits(at(1, 3), 2, true), std::nullopt);  // no wake between return and wait
  f.read_returned(at(1, 3));
  EXPECT_EQ(f.read_waits(at(2, 3), 2, true), std::nullopt) << "the streak starts again at one";
  f.read_returned(at(2, 3));
  EXPECT_EQ(f.read_waits(at(3, 3), 2, true), std::optional<size_t>(3));
}

TEST_F(FollowerTest, WakingAnotherWorkerStartsANewStreak) {
  f.read_returned(at(0, 0));
  EXPECT_EQ(f.read_waits(at(1, 3), 2, true), std::nullopt);
  f.read_returned(at(1, 3));
  EXPECT_EQ(f.read_waits(at(2, 5), 2, true), std::nullopt);
  f.read_returned(at(2, 5));
  EXPECT_EQ(f.read_waits(at(3, 5), 2, true), std::optional<size_t>(5));
}

// Another job ran between the return and the wait (the task awaited something else): the wake
// may be that job's, so the read counts for nothing and the streak starts over.
TEST_F(FollowerTest, AWindowOtherJobsRanInEndsTheStreak) {
  f.read_returned(at(0, 0, 10));
  EXPECT_EQ(f.read_waits(at(1, 3, 10), 2, true), std::nullopt);
  f.read_returned(at(1, 3, 11));
  EXPECT_EQ(f.read_waits(at(2, 3, 12), 2, true), std::nullopt) << "a job ran in the window";
  f.read_returned(at(2, 3, 13));
  EXPECT_EQ(f.read_waits(at(3, 3, 13), 2, true), std::nullopt) << "one clean read: a streak of 1";
  f.read_returned(at(3, 3, 14));
  EXPECT_EQ(f.read_waits(at(4, 3, 14), 2, true), std::optional<size_t>(3));
}

// A stream that cannot move at once (a write waits, say) asks for no move and spends no
// cooldown; its next streak may move it.
TEST_F(FollowerTest, AStreakEndingWhereTheStreamCannotMoveAsksNothing) {
  uint64_t wakes = 0;
  auto streak = [&](bool movable) {
    std::optional<size_t> out;
    for (int i = 0; i < 2; ++i) {
      f.read_returned(at(wakes, 1));
      ++wakes;
      out = f.read_waits(at(wakes, 1), 2, movable);
    }
    return out;
  };
  EXPECT_EQ(streak(false), std::nullopt);
  EXPECT_EQ(streak(true), std::optional<size_t>(1));
}

TEST_F(FollowerTest, MovesAtMostOncePerCooldown) {
  uint64_t wakes = 0;
  auto streak = [&] {
    std::optional<size_t> out;
    for (int i = 0; i < 2; ++i) {
      f.read_returned(at(wakes, 1));
      ++wakes;
      out = f.read_waits(at(wakes, 1), 2, true);
    }
    return out;
  };
  EXPECT_EQ(streak(), std::optional<size_t>(1));
  EXPECT_EQ(streak(), std::nullopt) << "a second streak within the cooldown";
}

// One round trip: a task on worker `driver_at` writes message i to a socket pair and waits; the
// reader of the other end, first on worker `reader_at`, answers by resuming it through the
// driver's worker's inbox (Runtime::post_to), the way a reply reaches a waiting caller.
struct RoundTrips {
  static constexpr uint32_t kRounds = 300;

  // The waiting task's handle, or kFired once the reply came first (acq_rel exchanges: whichever
  // side comes second sees the other's and resumes the task; nothing is lost either way).
  class Reply {
   public:
    // Before the message is written: the reader's read of it comes after (the kernel orders the
    // write before the read that returns it), so its fire() sees the reset.
    void reset() { state_.store(nullptr, std::memory_order_seq_cst); }
    bool await_ready() const { return state_.load(std::memory_order_acquire) == fired(); }
    bool await_suspend(std::coroutine_handle<> h) {
      return state_.exchange(h.address(), std::memory_order_acq_rel) != fired();
    }
    void await_resume() const {}
    void fire(Runtime& rt, size_t to) {
      void* waiting = state_.exchange(fired(), std::memory_order_acq_rel);
      if (waiting == nullptr) return;
      rt.post_to(to, [h = std::coroutine_handle<>::from_address(waiting)] { h.resume(); });
    }

   private:
    static void* fired() { return reinterpret_cast<void*>(uintptr_t{1}); }
    std::atomic<void*> state_{nullptr};
  };

  Runtime& rt;
  bool follow;
  size_t reader_at = 1;
  size_t driver_at = 0;
  int fds[2] = {-1, -1};
  Reply reply;
  std::atomic<uint32_t> received{0};
  std::atomic<uint32_t> out_of_order{0};
  std::atomic<int> last_reader_worker{-1};
  std::atomic<bool> reader_done{false};
  std::atomic<bool> driver_done{false};

  Task<void> read_side() {
    auto afd = AsyncFd::adopt(fds[0], AsyncFd::Kind::kStream);
    if (!afd.ok()) {
      reader_done = true;
      co_return;
    }
    AsyncFd* stream = afd->get();
    if (follow) {
      stream->follow_wakes([stream](Worker& target) { return stream->migrate_to(target, {}); });
    }
    std::string pending;
    char buf[64];
    for (;;) {
      auto n = co_await stream->read_some(absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) break;
      last_reader_worker.store(static_cast<int>(Worker::current()->index()));
      pending.append(buf, *n);
      while (pending.size() >= sizeof(uint32_t)) {
        uint32_t seq;
        std::memcpy(&seq, pending.data(), sizeof(seq));
        pending.erase(0, sizeof(seq));
        if (seq != received.load(std::memory_order_relaxed)) out_of_order.fetch_add(1);
        received.fetch_add(1);
        reply.fire(rt, driver_at);
      }
    }
    reader_done = true;
  }

  Task<void> drive() {
    for (uint32_t i = 0; i < kRounds; ++i) {
      reply.reset();
      if (::write(fds[1], &i, sizeof(i)) != static_cast<ssize_t>(sizeof(i))) break;
      co_await reply;
    }
    ::shutdown(fds[1], SHUT_WR);  // the reader's end of stream
    driver_done = true;
  }

  void run() {
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
    rt.spawn_on(reader_at, [this]() -> Task<void> { return read_side(); });
    rt.spawn_on(driver_at, [this]() -> Task<void> { return drive(); });
    ASSERT_TRUE(testing::wait_until([&] { return driver_done.load() && reader_done.load(); }))
        << received.load() << " of " << kRounds << " replies";
    ::close(fds[1]);
  }
};

struct FollowCase {
  testing::RuntimeConfig config;
  bool follow;
  uint32_t reads;  // RuntimeOptions::wake_affinity_reads
  bool moves;      // expected
  size_t workers = 2;
  size_t driver_at = 0;  // the reader starts on worker 1
};

class WakeAffinity : public ::testing::TestWithParam<FollowCase> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam().config); }
};

TEST_P(WakeAffinity, AStreamFollowsTheWorkerItsReaderWakesOnlyWhereAllowed) {
  const FollowCase& c = GetParam();
  RuntimeOptions options = c.config.options(c.workers);
  options.wake_affinity_reads = c.reads;
  Runtime rt(options);
  ASSERT_TRUE(rt.start().ok());
  RoundTrips trips{.rt = rt, .follow = c.follow, .driver_at = c.driver_at};
  trips.run();
  EXPECT_EQ(trips.received.load(), RoundTrips::kRounds);
  EXPECT_EQ(trips.out_of_order.load(), 0u);
  const uint64_t moves = rt.worker(1).stats().wake_affinity_moves;
  if (c.moves) {
    // The driver's worker waits for nothing else, so it is idle (spinning or parked) when
    // most replies are posted: a streak forms within the first few round trips of 300.
    EXPECT_EQ(moves, 1u);
    EXPECT_EQ(trips.last_reader_worker.load(), static_cast<int>(c.driver_at))
        << "the reader should end on the driver's worker";
  } else {
    EXPECT_EQ(moves, 0u);
    EXPECT_EQ(trips.last_reader_worker.load(), 1);
  }
  for (size_t w = 0; w < rt.size(); ++w) {
    if (w != 1) {
      EXPECT_EQ(rt.worker(w).stats().wake_affinity_moves, 0u) << "worker " << w;
    }
  }
  rt.stop();
}

std::string follow_case_name(const ::testing::TestParamInfo<FollowCase>& info) {
  const FollowCase& c = info.param;
  return std::string(backend_name(c.config.backend)) + "_" +
         std::string(poll_mode_name(c.config.mode)) + (c.follow ? "_following" : "_not_following") +
         "_reads" + std::to_string(c.reads) + "_workers" + std::to_string(c.workers);
}

INSTANTIATE_TEST_SUITE_P(
    Cases, WakeAffinity,
    ::testing::Values(FollowCase{{Backend::kEpoll, PollMode::kAdaptive}, true, 2, true},
                      FollowCase{{Backend::kIoUring, PollMode::kAdaptive}, true, 2, true},
                      FollowCase{{Backend::kEpoll, PollMode::kAdaptive}, true, 8, true},
                      // Three workers: the stream goes to the one it wakes (2), not another.
                      FollowCase{{Backend::kEpoll, PollMode::kAdaptive}, true, 2, true, 3, 2},
                      // Not opted in, turned off, or not the adaptive mode: the stream stays.
                      FollowCase{{Backend::kEpoll, PollMode::kAdaptive}, false, 2, false},
                      FollowCase{{Backend::kEpoll, PollMode::kAdaptive}, true, 0, false},
                      FollowCase{{Backend::kEpoll, PollMode::kSharded}, true, 2, false},
                      FollowCase{{Backend::kIoUring, PollMode::kSharded}, true, 2, false}),
    follow_case_name);

// A reader that lets other tasks run between its reads (it yields) does not take their posts for
// its own: another task on its worker keeps waking worker 0, and the stream must stay.
TEST(WakeAffinityWindow, OtherTasksPostsBetweenAReadersReadsAreNotItsOwn) {
  Runtime rt({.workers = 2, .backend = Backend::kEpoll, .poll_mode = PollMode::kAdaptive});
  ASSERT_TRUE(rt.start().ok());
  int fds[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  constexpr uint32_t kMessages = 200;
  std::atomic<uint32_t> received{0};
  std::atomic<int> last_worker{-1};
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> noise_posts{0};
  rt.spawn_on(1, [&]() -> Task<void> {
    auto afd = AsyncFd::adopt(fds[0], AsyncFd::Kind::kStream);
    if (!afd.ok()) co_return;
    AsyncFd* stream = afd->get();
    stream->follow_wakes([stream](Worker& target) { return stream->migrate_to(target, {}); });
    char buf[64];
    for (;;) {
      auto n = co_await stream->read_some(absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) break;
      last_worker.store(static_cast<int>(Worker::current()->index()));
      received.fetch_add(static_cast<uint32_t>(*n));
      co_await yield_now();  // the noise task runs here, and posts
    }
  });
  rt.spawn_on(1, [&]() -> Task<void> {
    while (!stop.load()) {
      rt.post_to(0, [] {});
      noise_posts.fetch_add(1);
      co_await yield_now();
    }
  });
  for (uint32_t i = 0; i < kMessages; ++i) {
    ASSERT_EQ(::write(fds[1], "m", 1), 1);
    ASSERT_TRUE(testing::wait_until([&] { return received.load() > i; })) << "message " << i;
  }
  stop = true;
  EXPECT_EQ(rt.worker(1).stats().wake_affinity_moves, 0u)
      << noise_posts.load() << " posts by the other task were taken for the reader's";
  EXPECT_EQ(last_worker.load(), 1);
  rt.stop();
  ::close(fds[1]);
}

}  // namespace
}  // namespace shardloop
