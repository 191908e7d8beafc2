// StealHintLedger: per affinity, who started the affinity roots this worker spawned, over one
// sampling interval. The evidence behind "a connection whose work keeps being stolen by another
// worker moves there" (scheduler/rebalancer.h, scheduler/rebalance_policy.h).
//
// Entries are added in the order the owner records them: a local start when the owner starts
// one of its own affinity roots; a steal when the owner takes the thief's record off its
// StealHintRing, which it does at the start of each run phase, before it starts any root
// itself (and before the ledger is read). That order is the sequence the streaks below are
// counted on. A thief's record can lag the start it reports by up to one run phase of the
// owner; a streak is a property of what the owner saw, which is all it can act on.
//
// Per affinity and interval:
//  - local_starts: its roots the owner started itself;
//  - per thief: steals (its roots that worker started) and longest_streak, the longest run of
//    consecutive entries all by that thief: a local start or a start by another thief ends a
//    run.
// take() hands the interval's entries over and starts a new interval (streaks do not carry
// across it). Readers: one (the rebalancer); a second reader would see only what the first left.
//
// Bounded: at most kMaxAffinities affinities per interval; records for further ones are
// dropped and counted, so a worker whose ledger is never read (collection switched on with no
// rebalancer) stays small.
//
// Thread-safety: owner worker only (a plain class; the cross-thread part is StealHintRing).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace shardloop {

struct ThiefSteals {
  uint32_t worker = 0;          // the thief's index
  uint32_t steals = 0;          // roots of the affinity it started in the interval
  uint32_t longest_streak = 0;  // longest run of consecutive starts by it alone
  bool operator==(const ThiefSteals&) const = default;
};

struct AffinitySteals {
  uint64_t affinity = 0;
  uint32_t local_starts = 0;
  std::vector<ThiefSteals> thieves;  // ascending worker index
  bool operator==(const AffinitySteals&) const = default;
};

struct StealHintReport {
  std::vector<AffinitySteals> affinities;  // ascending affinity; only those with an entry
  uint64_t dropped = 0;  // records lost in the interval (ledger full; the worker adds ring drops)
};

class StealHintLedger {
 public:
  // 4096: far more connections than a worker offloads from within one rebalancer interval,
  // and a bound of a few hundred KiB if nobody reads.
  static constexpr size_t kMaxAffinities = 4096;

  void record_local(uint64_t affinity);
  void record_steal(uint64_t affinity, uint32_t thief);
  // The interval's entries; empties the ledger.
  StealHintReport take();
  size_t size() const { return entries_.size(); }

 private:
  static constexpr uint32_t kNoThief = UINT32_MAX;
  struct Entry {
    uint32_t local_starts = 0;
    std::vector<ThiefSteals> thieves;  // usually one
    uint32_t run_thief = kNoThief;     // who made the current run of entries, if a thief
    uint32_t run_length = 0;
  };
  // The entry for `affinity`, or nullptr (and a drop counted) when the ledger is full.
  Entry* entry(uint64_t affinity);

  absl::flat_hash_map<uint64_t, Entry> entries_;
  uint64_t dropped_ = 0;
};

}  // namespace shardloop
