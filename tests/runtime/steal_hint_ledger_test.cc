// StealHintLedger: steals, local starts and streaks per affinity, checked against a direct
// computation over every sequence of up to 8 entries from {local, thief 1, thief 2}; take()
// starts a new interval; the bound drops and counts.
#include "runtime/steal_hint_ledger.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <vector>

namespace shardloop {
namespace {

constexpr uint32_t kLocal = 0;  // in a sequence: the owner started it; else the thief's index

// What take() should report for one affinity whose starts were `seq`, computed directly:
// count per starter, and the longest run of equal consecutive thief entries.
AffinitySteals expected_for(uint64_t affinity, const std::vector<uint32_t>& seq) {
  AffinitySteals out{.affinity = affinity};
  for (uint32_t who : seq) out.local_starts += who == kLocal;
  for (uint32_t thief = 1; thief <= 2; ++thief) {
    ThiefSteals t{.worker = thief};
    uint32_t run = 0;
    for (uint32_t who : seq) {
      run = who == thief ? run + 1 : 0;
      t.longest_streak = std::max(t.longest_streak, run);
      t.steals += who == thief;
    }
    if (t.steals > 0) out.thieves.push_back(t);
  }
  return out;
}

TEST(StealHintLedger, EmptyLedgerReportsNothing) {
  StealHintLedger ledger;
  StealHintReport r = ledger.take();
  EXPECT_TRUE(r.affinities.empty());
  EXPECT_EQ(r.dropped, 0u);
}

TEST(StealHintLedger, EverySequenceUpToEightEntries) {
  size_t checked = 0;
  for (size_t len = 1; len <= 8; ++len) {
    size_t combos = 1;
    for (size_t i = 0; i < len; ++i) combos *= 3;
    for (size_t code = 0; code < combos; ++code) {
      std::vector<uint32_t> seq;
      for (size_t i = 0, c = code; i < len; ++i, c /= 3)
        seq.push_back(static_cast<uint32_t>(c % 3));
      StealHintLedger ledger;
      for (uint32_t who : seq) {
        if (who == kLocal)
          ledger.record_local(7);
        else
          ledger.record_steal(7, who);
      }
      StealHintReport r = ledger.take();
      ASSERT_EQ(r.affinities.size(), 1u);
      ASSERT_EQ(r.affinities[0], expected_for(7, seq))
          << "sequence code " << code << " length " << len;
      ++checked;
    }
  }
  EXPECT_EQ(checked, 9840u);  // 3 + 9 + ... + 3^8
}

TEST(StealHintLedger, AffinitiesAreIndependentAndSorted) {
  StealHintLedger ledger;
  // Interleaved: affinity 5's run by thief 1 is not broken by affinity 9's local start.
  ledger.record_steal(9, 1);
  ledger.record_steal(5, 1);
  ledger.record_local(9);
  ledger.record_steal(5, 1);
  ledger.record_steal(9, 3);
  ledger.record_steal(5, 1);
  StealHintReport r = ledger.take();
  ASSERT_EQ(r.affinities.size(), 2u);
  EXPECT_EQ(r.affinities[0], (AffinitySteals{5, 0, {{1, 3, 3}}}));
  EXPECT_EQ(r.affinities[1], (AffinitySteals{9, 1, {{1, 1, 1}, {3, 1, 1}}}));
}

TEST(StealHintLedger, TakeStartsANewInterval) {
  StealHintLedger ledger;
  ledger.record_steal(1, 2);
  ledger.record_steal(1, 2);
  ASSERT_EQ(ledger.take().affinities.size(), 1u);
  EXPECT_EQ(ledger.size(), 0u);
  // The run of thief 2 does not continue across take(): it starts again from 1.
  ledger.record_steal(1, 2);
  StealHintReport r = ledger.take();
  ASSERT_EQ(r.affinities.size(), 1u);
  EXPECT_EQ(r.affinities[0], (AffinitySteals{1, 0, {{2, 1, 1}}}));
}

TEST(StealHintLedger, BoundedDropsAndCounts) {
  StealHintLedger ledger;
  const uint64_t n = StealHintLedger::kMaxAffinities;
  for (uint64_t a = 1; a <= n; ++a) ledger.record_steal(a, 1);
  ledger.record_steal(n + 1, 1);  // a new affinity: no room
  ledger.record_local(n + 2);
  ledger.record_steal(1, 1);  // a known one still counts
  StealHintReport r = ledger.take();
  EXPECT_EQ(r.affinities.size(), n);
  EXPECT_EQ(r.dropped, 2u);
  EXPECT_EQ(r.affinities[0], (AffinitySteals{1, 0, {{1, 2, 2}}}));
  EXPECT_EQ(ledger.take().dropped, 0u);
}

}  // namespace
}  // namespace shardloop
