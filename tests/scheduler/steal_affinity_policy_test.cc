// plan_rebalance()'s steal affinity rule (rule 1 in scheduler/rebalance_policy.h), on
// synthetic snapshots: the streak threshold, the majority that settles conflicting thieves,
// the hysteresis thresholds, the shared move budget, the cooldown, the fit test, bad hints, and
// an exhaustive sweep of one connection's evidence against a direct statement of the rule.
#include <gtest/gtest.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "scheduler/rebalance_policy.h"
#include "tests/scheduler/rebalance_world.h"

namespace shardloop::scheduler {
namespace {

// Only rule 1 acts: balancing never starts by itself (no worker is busy 2.0).
RebalanceConfig steal_only(uint32_t k = 4) {
  RebalanceConfig c = events_only();
  c.steal_affinity_min = k;
  c.min_source_busy = 2;
  return c;
}

std::vector<Move> steal_moves(const RebalancePlan& plan) {
  std::vector<Move> out;
  for (const Move& m : plan.moves) {
    if (m.reason == MoveReason::kStealAffinity) out.push_back(m);
  }
  return out;
}

// Worker 0 at 0.7: connection 1 (0.1, the one whose work is stolen) and a hog, connection 2
// (0.6, no offloaded work). Workers 1 and 2 at 0.1 each.
World stolen_world(std::vector<StealHint> hints, uint32_t local_starts = 0) {
  World w{{0, 0.1, 0.1}, {}};
  w.conns.push_back({1, 0, 0.1, std::move(hints), local_starts});
  w.conns.push_back({2, 0, 0.6, {}});
  return w;
}

TEST(StealAffinityPolicy, FollowsTheThiefOnceTheStreakReachesTheThreshold) {
  for (uint32_t streak = 0; streak <= 6; ++streak) {
    SCOPED_TRACE(::testing::Message() << "streak " << streak);
    World w = stolen_world({{.worker = 2, .steals = 6, .streak = streak}});
    RebalancePlan plan = plan_rebalance(w.snapshot(), steal_only(4), {});
    if (streak < 4) {
      EXPECT_TRUE(plan.moves.empty());
    } else {
      ASSERT_EQ(plan.moves.size(), 1u);
      EXPECT_EQ(plan.moves[0],
                (Move{1, 0, 2, MoveReason::kStealAffinity, plan.moves[0].estimated_load}));
      EXPECT_NEAR(plan.moves[0].estimated_load, 0.1, 1e-12);
      EXPECT_EQ(plan.state.last_moved.at(1), 1u) << "a steal move starts the cooldown too";
    }
  }
}

TEST(StealAffinityPolicy, ThresholdZeroTurnsTheRuleOff) {
  World w = stolen_world({{.worker = 1, .steals = 50, .streak = 50}});
  EXPECT_TRUE(plan_rebalance(w.snapshot(), steal_only(0), {}).moves.empty());
}

TEST(StealAffinityPolicy, TheThiefNeedsAMajorityOfTheStarts) {
  // Streak 4 of 4 steals; local starts up to 3 leave it a strict majority, 4 do not.
  for (uint32_t local = 0; local <= 6; ++local) {
    SCOPED_TRACE(::testing::Message() << "local starts " << local);
    World w = stolen_world({{.worker = 1, .steals = 4, .streak = 4}}, local);
    EXPECT_EQ(plan_rebalance(w.snapshot(), steal_only(4), {}).moves.size(), local < 4 ? 1u : 0u);
  }
}

TEST(StealAffinityPolicy, ConflictingThievesFollowOnlyAMajorityHolder) {
  const RebalanceConfig config = steal_only(3);
  // Two thieves with equal evidence: neither has a majority, the connection stays.
  World tie = stolen_world({{1, 5, 5}, {2, 5, 5}});
  EXPECT_TRUE(plan_rebalance(tie.snapshot(), config, {}).moves.empty());
  // Both have a streak, one has the majority: that one.
  World one = stolen_world({{1, 6, 3}, {2, 4, 4}});
  RebalancePlan plan = plan_rebalance(one.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_EQ(plan.moves[0].to, 1u);
  // The majority holder's runs are too short, the one with the long run lacks the majority.
  World split = stolen_world({{1, 7, 2}, {2, 3, 3}});
  EXPECT_TRUE(plan_rebalance(split.snapshot(), config, {}).moves.empty());
  // A third thief's starts count against the others' majority.
  World three = stolen_world({{1, 5, 5}, {2, 3, 1}, {3, 3, 1}});  // 3 is outside the snapshot
  EXPECT_TRUE(plan_rebalance(three.snapshot(), config, {}).moves.empty());
}

TEST(StealAffinityPolicy, HintsForTheOwnerOrUnknownWorkersAreIgnoredAndDuplicatesMerged) {
  const RebalanceConfig config = steal_only(3);
  // The owner "stealing" from itself does not count as a start elsewhere, nor qualify.
  World owner = stolen_world({{0, 100, 100}, {1, 3, 3}});
  RebalancePlan plan = plan_rebalance(owner.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_EQ(plan.moves[0].to, 1u);
  // A worker outside the snapshot never qualifies.
  World unknown = stolen_world({{7, 100, 100}});
  EXPECT_TRUE(plan_rebalance(unknown.snapshot(), config, {}).moves.empty());
  // Two entries for worker 2: steals add up (2 + 2 > half of 4 + 3 local starts), the
  // longest streak is kept (3).
  World dup = stolen_world({{2, 2, 1}, {2, 2, 3}}, 3);
  plan = plan_rebalance(dup.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_EQ(plan.moves[0].to, 2u);
}

TEST(StealAffinityPolicy, HysteresisUsesTheBalancingThresholds) {
  // Owner 0.5 (connection 1: 0.05, hog: 0.45), thief 0.3: 0.2 apart, between stop (0.1) and
  // start (0.25).
  World w{{0, 0.3}, {{1, 0, 0.05, {{1, 10, 10}}}, {2, 0, 0.45, {}}}};
  const RebalanceConfig config = steal_only(4);
  RebalanceState off;
  EXPECT_TRUE(plan_rebalance(w.snapshot(), config, off).moves.empty())
      << "latch off: 0.2 apart is within the start threshold";
  RebalanceState on;
  on.balancing = true;
  RebalancePlan plan = plan_rebalance(w.snapshot(), config, on);
  const std::vector<Move> moves = steal_moves(plan);
  ASSERT_EQ(moves.size(), 1u) << "latch on: past the stop threshold";
  EXPECT_EQ(moves[0], (Move{1, 0, 1, MoveReason::kStealAffinity, moves[0].estimated_load}));
  // And 0.3 apart starts it with the latch off; a steal move does not set the latch.
  World wide{{0, 0.2}, {{1, 0, 0.05, {{1, 10, 10}}}, {2, 0, 0.45, {}}}};
  plan = plan_rebalance(wide.snapshot(), config, off);
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_FALSE(plan.state.balancing);
}

TEST(StealAffinityPolicy, TheMoveMustFit) {
  const RebalanceConfig config = steal_only(4);
  // The thief is hotter than the owner: never.
  World hot{{0, 0.8}, {{1, 0, 0.1, {{1, 10, 10}}}, {2, 0, 0.6, {}}}};
  EXPECT_TRUE(plan_rebalance(hot.snapshot(), config, {}).moves.empty());
  // The connection is most of its owner's load: moving it would move the hot spot.
  World big{{0.2, 0}, {{1, 0, 0.7, {{1, 10, 10}}}}};
  EXPECT_TRUE(plan_rebalance(big.snapshot(), config, {}).moves.empty());
}

TEST(StealAffinityPolicy, SharesTheBudgetStrongestStreakFirst) {
  // Six small connections on worker 0, all stolen by worker 1 with streaks 4..9, and a hog.
  World w{{0, 0}, {}};
  for (uint64_t id = 1; id <= 6; ++id) {
    w.conns.push_back({id, 0, 0.02, {{1, 10, uint32_t(3 + id)}}});
  }
  w.conns.push_back({7, 0, 0.7, {}});
  RebalanceConfig config = steal_only(4);
  config.max_moves_per_round = 3;
  RebalancePlan plan = plan_rebalance(w.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 3u);
  EXPECT_EQ(plan.moves[0].connection, 6u);
  EXPECT_EQ(plan.moves[1].connection, 5u);
  EXPECT_EQ(plan.moves[2].connection, 4u);
  // With balancing on as well, steal moves come first and balancing gets what is left.
  config.min_source_busy = 0.5;
  config.max_moves_per_round = 4;
  w.conns.push_back({8, 0, 0.05, {}});
  plan = plan_rebalance(w.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 4u);
  for (size_t i = 0; i < 4; ++i) EXPECT_EQ(plan.moves[i].reason, MoveReason::kStealAffinity);
}

TEST(StealAffinityPolicy, ACoolingConnectionWaits) {
  World w = stolen_world({{1, 10, 10}});
  RebalanceConfig config = steal_only(4);
  config.cooldown_rounds = 3;
  RebalanceState state;
  state.round = 5;
  state.last_moved[1] = 4;                                           // may move again from round 7
  RebalancePlan plan = plan_rebalance(w.snapshot(), config, state);  // round 6
  EXPECT_TRUE(plan.moves.empty());
  plan = plan_rebalance(w.snapshot(), config, plan.state);  // round 7
  ASSERT_EQ(plan.moves.size(), 1u);
  EXPECT_EQ(plan.moves[0].to, 1u);
}

TEST(StealAffinityPolicy, ApplyingTheMoveEndsIt) {
  // Once the connection is on its thief, the same evidence names its owner: no further move.
  World w = stolen_world({{1, 10, 10}});
  RebalanceConfig config = steal_only(4);
  RebalancePlan plan = plan_rebalance(w.snapshot(), config, {});
  ASSERT_EQ(plan.moves.size(), 1u);
  w.apply(plan.moves);
  for (int i = 0; i < 20; ++i) {
    plan = plan_rebalance(w.snapshot(), config, plan.state);
    ASSERT_TRUE(plan.moves.empty()) << "round " << i;
  }
}

// One connection (0.1) on worker 0 beside a hog, two possible thieves, every combination of
// evidence with up to 4 steals each (streak <= steals), 0-3 local starts, the latch off and
// on, and three placements of the thieves' loads; the plan's steal move (if any) must be
// exactly what the rule says.
TEST(StealAffinityPolicy, ExhaustiveEvidenceForOneConnection) {
  const uint32_t k = 2;
  const RebalanceConfig config = steal_only(k);
  struct Loads {
    double hog, t1, t2;
  };
  // Gaps kept clear of every threshold, so rounding cannot decide a case.
  const Loads placements[] = {{0.6, 0.1, 0.1}, {0.35, 0.15, 0.28}, {0.3, 0.1, 0.35}};
  size_t cases = 0, moves = 0;
  for (const Loads& l : placements) {
    for (bool latch : {false, true}) {
      for (uint32_t local = 0; local <= 3; ++local) {
        for (uint32_t s1 = 0; s1 <= 4; ++s1) {
          for (uint32_t r1 = 0; r1 <= s1; ++r1) {
            for (uint32_t s2 = 0; s2 <= 4; ++s2) {
              for (uint32_t r2 = 0; r2 <= s2; ++r2) {
                std::vector<StealHint> hints;
                if (s1 > 0) hints.push_back({1, s1, r1});
                if (s2 > 0) hints.push_back({2, s2, r2});
                World w{{0, l.t1, l.t2}, {{1, 0, 0.1, hints, local}, {2, 0, l.hog, {}}}};
                const LoadSnapshot snap = w.snapshot();
                // The rule, stated directly.
                const uint32_t total = local + s1 + s2;
                std::optional<size_t> target;
                if (r1 >= k && 2 * s1 > total) target = 1;
                if (r2 >= k && 2 * s2 > total) target = 2;
                bool expect_move = false;
                if (target) {
                  const double owner = snap.workers[0].busy;
                  const double thief = snap.workers[*target].busy;
                  const double gap = owner - thief;
                  // The cost model: its share of the owner's events, times the owner's busy.
                  const double x =
                      owner * (snap.connections[0].events_per_sec / snap.workers[0].events_per_sec);
                  const double threshold = latch ? config.stop_spread : config.start_spread;
                  expect_move = gap > threshold && x * (1 + config.estimate_tolerance) < gap &&
                                2 * x - gap <= config.stop_spread;
                }
                RebalanceState state;
                state.balancing = latch;
                const RebalancePlan plan = plan_rebalance(snap, config, state);
                const std::vector<Move> got = steal_moves(plan);
                SCOPED_TRACE(::testing::Message()
                             << "hog " << l.hog << " latch " << latch << " local " << local
                             << " thief1 " << s1 << "/" << r1 << " thief2 " << s2 << "/" << r2);
                ASSERT_EQ(got.size(), expect_move ? 1u : 0u);
                if (expect_move) {
                  ASSERT_EQ(plan.moves[0], got[0]) << "steal moves come before balancing";
                  EXPECT_EQ(got[0].connection, 1u);
                  EXPECT_EQ(got[0].to, *target);
                  ++moves;
                }
                ++cases;
              }
            }
          }
        }
      }
    }
  }
  EXPECT_EQ(cases, 3u * 2 * 4 * 15 * 15);
  EXPECT_GT(moves, 100u) << "the sweep should include many qualifying cases";
}

}  // namespace
}  // namespace shardloop::scheduler
