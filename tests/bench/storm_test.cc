// bench/storm's poll designs deliver every event exactly once: each (design, pattern) runs a few
// bounded rounds over a handful of connections and the counts must add up. These are correctness
// checks of the benchmark's machinery, not timings.
#include <unistd.h>

#include <string>
#include <tuple>
#include <utility>

#include "bench/storm/connection_set.h"
#include "bench/storm/poll_designs.h"
#include "bench/storm/runtime_design.h"
#include "bench/storm/storm_run.h"
#include "gtest/gtest.h"

namespace shardloop::bench::storm {
namespace {

// Long enough that the iteration bound, not the clock, ends every run below.
constexpr double kGenerousSeconds = 5.0;

using Params = std::tuple<Design, Pattern, Arm, Transport, Driver>;

class StormDesignTest : public testing::TestWithParam<Params> {
 protected:
  RunConfig config(int threads) const {
    return {.design = std::get<0>(GetParam()),
            .pattern = std::get<1>(GetParam()),
            .arm = std::get<2>(GetParam()),
            .threads = threads,
            .max_events = 4,  // smaller than N, so a burst needs several polls
            .driver = std::get<4>(GetParam())};
  }
};

TEST_P(StormDesignTest, EveryEventHandledOnce) {
  const Pattern pattern = std::get<1>(GetParam());
  constexpr int kConnections = 13;  // not a multiple of any thread count below
  auto conns = ConnectionSet::open(std::get<3>(GetParam()), kConnections);
  ASSERT_TRUE(conns.ok()) << conns.status();
  for (int threads : {1, 3, 20}) {  // 20 > N: some sharded threads own no connection
    SCOPED_TRACE("threads " + std::to_string(threads));
    const uint64_t iterations = pattern == Pattern::kTrickle ? 60 : 8;
    const uint64_t bound = pattern == Pattern::kStayReady ? 2000 : iterations;
    auto r = run_once(config(threads), *conns,
                      {.duration_s = kGenerousSeconds, .max_iterations = bound}, 1);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_STREQ(r->stop, "iterations");
    EXPECT_LT(r->wall_s, kGenerousSeconds);
    switch (pattern) {
      case Pattern::kBurst:
        EXPECT_EQ(r->rounds, iterations);
        EXPECT_EQ(r->events, iterations * kConnections);
        break;
      case Pattern::kTrickle:
        EXPECT_EQ(r->rounds, iterations);
        EXPECT_EQ(r->events, iterations);
        break;
      case Pattern::kStayReady:
        EXPECT_GE(r->events, bound);  // counted until the driver noticed the bound
        if (std::get<0>(GetParam()) == Design::kThrottled) {
          // What was still queued when the run stopped was polled but never handled.
          EXPECT_GE(r->sum.polled_events, r->events);
          EXPECT_LT(r->sum.polled_events - r->events, 4u);
        } else {
          EXPECT_EQ(r->sum.polled_events, r->events);
        }
        break;
    }
    // One-shot and edge-triggered registrations never hand one readiness to two threads.
    EXPECT_EQ(r->sum.stale_events, 0u);
    EXPECT_GE(r->sum.polled_events, pattern == Pattern::kStayReady ? r->events : r->rounds);
    EXPECT_GT(r->sum.polls, 0u);
    // Time inside the poll calls is part of the workers' CPU (the process less the driver), and
    // the runtime designs measure it too.
    EXPECT_GE(r->cpu_s * 1e9, static_cast<double>(r->sum.poll_cpu_ns));
    if (pattern != Pattern::kStayReady) {
      EXPECT_GT(r->sum.poll_cpu_ns, 0u);
    }
    EXPECT_GE(r->total_cpu_s, r->cpu_s);
    // Nothing is left readable for the next run.
    EXPECT_EQ(conns->drain(), 0);
  }
}

std::string param_name(const testing::TestParamInfo<Params>& info) {
  std::string name = std::string(design_name(std::get<0>(info.param))) + "_" +
                     pattern_name(std::get<1>(info.param)) + "_" +
                     arm_name(std::get<2>(info.param)) +
                     (std::get<3>(info.param) == Transport::kTcp ? "_tcp" : "_unix") +
                     (std::get<4>(info.param) == Driver::kTask ? "_task" : "");
  for (char& c : name) {
    if (c == '-') c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(
    AllDesigns, StormDesignTest,
    testing::Combine(testing::Values(Design::kSharded, Design::kGlobal, Design::kThrottled),
                     testing::Values(Pattern::kBurst, Pattern::kTrickle, Pattern::kStayReady),
                     testing::Values(Arm::kOneshot),
                     testing::Values(Transport::kTcp, Transport::kUnix),
                     testing::Values(Driver::kThread)),
    param_name);

INSTANTIATE_TEST_SUITE_P(EdgeTriggered, StormDesignTest,
                         testing::Combine(testing::Values(Design::kGlobal, Design::kThrottled),
                                          testing::Values(Pattern::kBurst, Pattern::kTrickle),
                                          testing::Values(Arm::kEdge),
                                          testing::Values(Transport::kTcp),
                                          testing::Values(Driver::kThread)),
                         param_name);

// The runtime in each poll mode, driven like the bare designs, by the driver thread and by a task
// inside the runtime: every event consumed exactly once (no stale events: only a connection's
// owner reads it), every round counted, nothing left readable.
INSTANTIATE_TEST_SUITE_P(Runtime, StormDesignTest,
                         testing::Combine(testing::Values(Design::kRtSharded, Design::kRtGlobal,
                                                          Design::kRtThrottled,
                                                          Design::kRtAdaptive),
                                          testing::Values(Pattern::kBurst, Pattern::kTrickle),
                                          testing::Values(Arm::kOneshot),
                                          testing::Values(Transport::kTcp),
                                          testing::Values(Driver::kThread, Driver::kTask)),
                         param_name);

TEST(StormRuntimeDesignTest, TheTaskDriverIsRefusedForTheBareDesigns) {
  absl::Status s = runtime_design_usable(Design::kSharded, Pattern::kBurst, Driver::kTask);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("inside the runtime"), std::string::npos);
  EXPECT_TRUE(runtime_design_usable(Design::kRtSharded, Pattern::kBurst, Driver::kTask).ok());
  EXPECT_EQ(run_label({.design = Design::kRtAdaptive, .driver = Driver::kTask}),
            "rt-adaptive+task");
  EXPECT_EQ(run_label({.design = Design::kRtAdaptive}), "rt-adaptive");
}

TEST(StormRuntimeDesignTest, StayReadyIsRefusedWithTheReason) {
  absl::Status s = runtime_design_usable(Design::kRtSharded, Pattern::kStayReady);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_NE(s.message().find("edge-triggered"), std::string::npos);
  EXPECT_TRUE(runtime_design_usable(Design::kSharded, Pattern::kStayReady).ok());
}

// --time_polls=false: the runtime runs as in production (no clock reads around its polls), every
// event still counted once, and no poll time is reported rather than a wrong one.
TEST(StormRuntimeDesignTest, UntimedRunCountsEventsAndReportsNoPollTime) {
  constexpr int kConnections = 9;
  constexpr uint64_t kRounds = 6;
  auto conns = ConnectionSet::open(Transport::kTcp, kConnections);
  ASSERT_TRUE(conns.ok()) << conns.status();
  for (bool timed : {true, false}) {
    SCOPED_TRACE(timed ? "timed" : "untimed");
    const RunConfig config{.design = Design::kRtAdaptive,
                           .pattern = Pattern::kBurst,
                           .threads = 2,
                           .time_polls = timed};
    auto r =
        run_once(config, *conns, {.duration_s = kGenerousSeconds, .max_iterations = kRounds}, 1);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->events, kRounds * kConnections);
    EXPECT_GT(r->sum.polls, 0u);
    if (timed) {
      EXPECT_GT(r->sum.poll_cpu_ns, 0u);
    } else {
      EXPECT_EQ(r->sum.poll_cpu_ns, 0u);
      EXPECT_EQ(r->sum.poll_wall_ns, 0u);
    }
    EXPECT_EQ(conns->drain(), 0);
  }
}

// A warm-up's rounds run the same way and count for nothing: the run reports exactly the rounds
// and events of its measured part, for the storm's driver thread and for the task driver.
TEST(StormWarmupTest, OnlyTheMeasuredPartIsCounted) {
  constexpr int kConnections = 7;
  constexpr uint64_t kRounds = 25;
  auto conns = ConnectionSet::open(Transport::kTcp, kConnections);
  ASSERT_TRUE(conns.ok()) << conns.status();
  const std::pair<Design, Driver> designs[] = {{Design::kSharded, Driver::kThread},
                                               {Design::kThrottled, Driver::kThread},
                                               {Design::kRtAdaptive, Driver::kThread},
                                               {Design::kRtAdaptive, Driver::kTask}};
  for (const auto& [design, driver] : designs) {
    for (Pattern pattern : {Pattern::kBurst, Pattern::kTrickle}) {
      const RunConfig config{.design = design, .pattern = pattern, .threads = 3, .driver = driver};
      SCOPED_TRACE(run_label(config) + " " + pattern_name(pattern));
      // The warm-up ends at its 50 ms or at kRounds rounds, whichever comes first; either way
      // its rounds precede the measured kRounds.
      auto r = run_once(
          config, *conns,
          {.duration_s = kGenerousSeconds, .max_iterations = kRounds, .warmup_s = 0.05}, 1);
      ASSERT_TRUE(r.ok()) << r.status();
      EXPECT_STREQ(r->stop, "iterations");
      EXPECT_EQ(r->rounds, kRounds);
      EXPECT_EQ(r->events, pattern == Pattern::kBurst ? kRounds * kConnections : kRounds);
      EXPECT_GE(r->sum.polled_events, r->rounds) << "a poll per round at least";
      EXPECT_EQ(conns->drain(), 0);
    }
  }
}

TEST(StormConnectionSetTest, DrainDiscardsPendingBytes) {
  auto conns = ConnectionSet::open(Transport::kTcp, 3);
  ASSERT_TRUE(conns.ok()) << conns.status();
  ASSERT_EQ(write(conns->driver_fd(1), "abc", 3), 3);
  // Loopback TCP delivers within the write call; poll briefly anyway rather than assume it.
  long drained = 0;
  for (int i = 0; i < 200 && drained < 3; ++i) {
    drained += conns->drain();
    if (drained < 3) usleep(1000);
  }
  EXPECT_EQ(drained, 3);
  EXPECT_EQ(conns->drain(), 0);
}

TEST(StormConnectionSetTest, FdLimitBeyondHardLimitIsRefused) {
  auto limit = ensure_fd_limit(1L << 40);
  ASSERT_FALSE(limit.ok());
  EXPECT_EQ(limit.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(ensure_fd_limit(64).ok());
}

}  // namespace
}  // namespace shardloop::bench::storm
