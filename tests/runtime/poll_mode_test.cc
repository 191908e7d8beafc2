// Poll modes: the option's parsing and validation, the adaptive mode's spin rule on its own, and
// that each mode's machinery is really in use (a shared epoll hands events to their owners;
// adaptive workers spin; sharded ones never do).
#include "runtime/poll_mode.h"

#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "runtime/adaptive_park.h"
#include "runtime/async_fd.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"

namespace shardloop {
namespace {

TEST(PollModeNames, RoundTripAndClearErrors) {
  for (PollMode mode : kAllPollModes) {
    auto parsed = parse_poll_mode(poll_mode_name(mode));
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, mode);
  }
  auto bad = parse_poll_mode("shared");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("sharded, global, throttled or adaptive"),
            std::string::npos);
}

TEST(PollModeValidation, SharedModesRefuseIoUring) {
  for (PollMode mode : {PollMode::kGlobal, PollMode::kThrottled}) {
    Runtime rt({.workers = 1, .backend = Backend::kIoUring, .poll_mode = mode});
    absl::Status st = rt.start();
    ASSERT_FALSE(st.ok());
    EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(st.message().find("needs the epoll backend"), std::string::npos) << st;
  }
}

TEST(PollModeValidation, SharedModesWithAutoRunOnEpoll) {
  Runtime rt({.workers = 2, .backend = Backend::kAuto, .poll_mode = PollMode::kGlobal});
  ASSERT_TRUE(rt.start().ok());
  EXPECT_EQ(rt.worker(0).backend(), Backend::kEpoll);
  rt.stop();
}

TEST(PollModeValidation, SharedModesCapTheWorkerCount) {
  Runtime rt({.workers = 256, .backend = Backend::kEpoll, .poll_mode = PollMode::kThrottled});
  absl::Status st = rt.start();
  ASSERT_FALSE(st.ok());
  EXPECT_NE(st.message().find("at most 255 workers"), std::string::npos) << st;
}

TEST(SpinPolicy, StartsWithOneProbe) {
  SpinPolicy hit, miss;
  ASSERT_TRUE(hit.should_spin());
  hit.record(true);
  EXPECT_FALSE(hit.backing_off());
  ASSERT_TRUE(miss.should_spin());
  miss.record(false);  // one futile spin is enough to back off
  EXPECT_TRUE(miss.backing_off());
}

TEST(SpinPolicy, KeepsSpinningWhileSpinsPay) {
  SpinPolicy p;
  p.record(true);  // the first probe
  for (int round = 0; round < 10; ++round) {
    for (uint32_t i = 0; i < SpinPolicy::kWindow; ++i) {
      ASSERT_TRUE(p.should_spin());
      p.record(i < SpinPolicy::kMinHitsPerWindow);  // exactly the minimum hit rate
    }
  }
  EXPECT_FALSE(p.backing_off());
}

TEST(SpinPolicy, BacksOffAfterAPoorWindowAndDoublesOnEachFailedProbe) {
  SpinPolicy p;
  p.record(true);  // the first probe
  for (uint32_t i = 0; i < SpinPolicy::kWindow; ++i) {
    ASSERT_TRUE(p.should_spin());
    p.record(i + 1 < SpinPolicy::kMinHitsPerWindow);  // one hit short of the minimum
  }
  uint32_t expected_skip = SpinPolicy::kInitialBackoff;
  for (int probe = 0; probe < 10; ++probe) {
    uint32_t skipped = 0;
    while (!p.should_spin()) ++skipped;
    EXPECT_EQ(skipped, expected_skip) << "probe " << probe;
    p.record(false);  // a failed probe is one spin
    expected_skip = std::min(expected_skip * 2, SpinPolicy::kMaxBackoff);
  }
}

TEST(SpinPolicy, ASuccessfulProbeResetsTheBackoff) {
  SpinPolicy p;
  p.record(true);  // the first probe
  auto fail_window = [&] {
    for (uint32_t i = 0; i < SpinPolicy::kWindow; ++i) p.record(false);
  };
  auto skipped = [&] {
    uint32_t n = 0;
    while (!p.should_spin()) ++n;
    return n;
  };
  fail_window();
  EXPECT_EQ(skipped(), SpinPolicy::kInitialBackoff);
  p.record(false);  // failed probe
  EXPECT_EQ(skipped(), 2 * SpinPolicy::kInitialBackoff);
  p.record(true);  // successful probe: a fresh window of spins follows
  for (uint32_t i = 0; i < SpinPolicy::kWindow; ++i) {
    ASSERT_EQ(skipped(), 0u);
    p.record(false);
  }
  EXPECT_EQ(skipped(), SpinPolicy::kInitialBackoff);
}

TEST(SpinGate, AdmitsOnlySpareCpusAndAtMostHalfOfThem) {
  SpinGate one_of_two(2, 1), none(2, 2), over(2, 64), eight_of_sixteen(16, 4), two_spare(8, 6);
  EXPECT_TRUE(one_of_two.try_enter());
  EXPECT_FALSE(one_of_two.try_enter());
  one_of_two.leave();
  EXPECT_TRUE(one_of_two.try_enter());
  EXPECT_FALSE(none.try_enter());
  EXPECT_FALSE(over.try_enter());
  for (int i = 0; i < 8; ++i) EXPECT_TRUE(eight_of_sixteen.try_enter());
  EXPECT_FALSE(eight_of_sixteen.try_enter());
  EXPECT_TRUE(two_spare.try_enter());
  EXPECT_TRUE(two_spare.try_enter());
  EXPECT_FALSE(two_spare.try_enter());
}

TEST(SpinGate, ALongYieldIsLongerTheMoreWorkersShareACpu) {
  // kLongYieldNs per worker that may share a CPU: a yield passes the CPU round them first.
  EXPECT_EQ(SpinGate(2, 1).long_yield_ns(), kLongYieldNs);
  EXPECT_EQ(SpinGate(2, 2).long_yield_ns(), kLongYieldNs);
  EXPECT_EQ(SpinGate(2, 3).long_yield_ns(), 2 * kLongYieldNs);
  EXPECT_EQ(SpinGate(2, 64).long_yield_ns(), 32 * kLongYieldNs);
  EXPECT_EQ(SpinGate(16, 4).long_yield_ns(), kLongYieldNs);
  EXPECT_EQ(SpinGate(0, 4).long_yield_ns(), 4 * kLongYieldNs) << "no CPU count: as if one";
}

TEST(SpinGate, OnePerCpuWhenNoMoreWorkersThanCpus) {
  EXPECT_TRUE(SpinGate(2, 1).one_per_cpu());
  EXPECT_TRUE(SpinGate(2, 2).one_per_cpu());
  EXPECT_FALSE(SpinGate(2, 3).one_per_cpu());
  EXPECT_FALSE(SpinGate(2, 64).one_per_cpu());
  EXPECT_TRUE(SpinGate(0, 1).one_per_cpu()) << "no CPU count: as if one";
  EXPECT_FALSE(SpinGate(0, 2).one_per_cpu());
}

// Posting to worker 0 40 times, a millisecond apart, makes it park 40 times; returns its
// counters, among them the non-blocking polls it made spinning before those parks and the
// yielding spins a long yield ended (when another process's thread holds the CPU).
WorkerStats stats_after_posts(const RuntimeOptions& options) {
  Runtime rt(options);
  EXPECT_TRUE(rt.start().ok());
  std::atomic<int> ran{0};
  for (int i = 0; i < 40; ++i) {
    rt.post_to(0, [&ran] { ran.fetch_add(1); });
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  while (ran.load() < 40) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const WorkerStats stats = rt.worker(0).stats();
  rt.stop();
  return stats;
}

// The polls spinning plus the spins a long yield ended, possibly before their first poll.
uint64_t spins_after_posts(const RuntimeOptions& options) {
  const WorkerStats stats = stats_after_posts(options);
  return stats.spin_polls + stats.spin_long_yields;
}

// One worker with a spare CPU: an adaptive worker spins before (at least) the first parks, a
// sharded one never does.
uint64_t spins_after_posts(PollMode mode) {
  return spins_after_posts({.workers = 1, .backend = Backend::kEpoll, .poll_mode = mode});
}

// As many workers as CPUs (none spare): an adaptive worker spins by yielding before it parks,
// unless adaptive_spin_yields is 0.
uint64_t yield_spins_after_posts(int max_yields) {
  RuntimeOptions options{.workers = allowed_cpus().size(),
                         .backend = Backend::kEpoll,
                         .poll_mode = PollMode::kAdaptive};
  options.adaptive_spin_yields = max_yields;
  return spins_after_posts(options);
}

TEST(AdaptiveMode, WithNoSpareCpuWorkersSpinByYieldingUnlessTurnedOff) {
  EXPECT_GT(yield_spins_after_posts(2), 0u);
  EXPECT_EQ(yield_spins_after_posts(0), 0u);
}

// One worker per CPU: a yielding spin lasts the spin window, not just its yields. With one
// yield per spin, a spin polls once unless the window keeps it going; each of the ~40 parks
// spins at most once, so over 100 polls means spins went on past their yield (with a 2 ms
// window and posts 1 ms apart, each spin that runs its window polls hundreds of times). The
// first spin is a probe: if another process holds the CPU through it, a long yield ends it (as
// it should) and the worker backs off for more parks than the run has. So a run whose spins
// long yields ended is retried (three runs at most, then skipped: the machine is too busy to
// show it); a run without long yields must show the window.
TEST(AdaptiveMode, WithOneWorkerPerCpuAYieldingSpinLastsTheSpinWindow) {
  RuntimeOptions options{.workers = allowed_cpus().size(),
                         .backend = Backend::kEpoll,
                         .poll_mode = PollMode::kAdaptive};
  options.adaptive_spin_yields = 1;
  options.adaptive_spin_ns = 2'000'000;
  for (int run = 0; run < 3; ++run) {
    const WorkerStats stats = stats_after_posts(options);
    if (stats.spin_polls > 100) return;
    if (stats.spin_long_yields == 0) {
      FAIL() << stats.spin_polls << " polls spinning, no long yield: the spins ended early";
    }
  }
  GTEST_SKIP() << "another process held the CPU through the spins of three runs";
}

TEST(AdaptiveMode, WorkersSpinBeforeParkingAndShardedOnesDoNot) {
  if (allowed_cpus().size() < 2) GTEST_SKIP() << "one CPU: no spare CPU for a spinner";
  EXPECT_GT(spins_after_posts(PollMode::kAdaptive), 0u);
  EXPECT_EQ(spins_after_posts(PollMode::kSharded), 0u);
}

// A readable socket owned by worker 1 is found by whichever worker polls the shared instance;
// when that is worker 0, the event must travel to worker 1, never be dispatched on worker 0.
class SharedModeHandoff : public ::testing::TestWithParam<PollMode> {};

TEST_P(SharedModeHandoff, EventsReachTheirOwnerWhoeverFetchedThem) {
  Runtime rt({.workers = 2, .backend = Backend::kEpoll, .poll_mode = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  constexpr int kRounds = 200;
  int sv[2];
  ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv), 0);
  std::atomic<int> reads{0};
  std::atomic<int> wrong_worker{0};
  rt.spawn_on(1, [&, fd = sv[0]]() -> Task<void> {
    auto afd = AsyncFd::adopt(fd, AsyncFd::Kind::kStream);
    if (!afd.ok()) co_return;
    char c;
    for (int i = 0; i < kRounds; ++i) {
      auto n = co_await (*afd)->read_some(absl::MakeSpan(&c, 1));
      if (!n.ok() || *n != 1) break;
      if (Worker::current() != &rt.worker(1)) wrong_worker.fetch_add(1);
      reads.fetch_add(1);
    }
  });
  // Worker 0 polls the shared instance between the yields of a busy loop, while worker 1
  // spends most of its time in a task that blocks its thread: most events are fetched by
  // worker 0, for worker 1.
  std::atomic<bool> stop{false};
  rt.spawn_on(0, [&]() -> Task<void> {
    while (!stop.load()) co_await yield_now();
  });
  rt.spawn_on(1, [&]() -> Task<void> {
    while (!stop.load()) {
      std::this_thread::sleep_for(std::chrono::microseconds(200));
      co_await yield_now();
    }
  });
  for (int i = 0; i < kRounds; ++i) {
    ASSERT_EQ(::write(sv[1], "x", 1), 1);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (reads.load() <= i && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::yield();
    }
    ASSERT_GT(reads.load(), i) << "round " << i;
  }
  stop = true;
  EXPECT_EQ(wrong_worker.load(), 0);
  // In the global mode worker 0 polls the shared instance between its yields, so it fetches
  // events while worker 1 sleeps, and must hand them over.
  if (GetParam() == PollMode::kGlobal) {
    EXPECT_GT(rt.worker(0).stats().events_forwarded, 0u);
  }
  rt.stop();
  ::close(sv[1]);
}

INSTANTIATE_TEST_SUITE_P(Modes, SharedModeHandoff,
                         ::testing::Values(PollMode::kGlobal, PollMode::kThrottled),
                         [](const auto& info) { return std::string(poll_mode_name(info.param)); });

}  // namespace
}  // namespace shardloop
