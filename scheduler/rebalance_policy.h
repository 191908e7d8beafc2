// The rebalancer's policy: a pure function from a load snapshot to a list of connection moves.
//
// No threads, no fds, no clock. The rebalancer mechanism (scheduler/rebalancer.h) samples load over
// an interval, calls plan_rebalance() with the state returned by the previous call, carries out
// the moves (Connection::migrate) and keeps the returned state for the next round. Everything
// that decides a move is in the arguments, so the policy is tested with synthetic snapshots.
//
// One round, in order:
//  1. Steal affinity: a connection follows the worker that keeps running its offloaded work.
//     A connection's offloaded tasks are stealable roots tagged with its affinity; the owner
//     records who started each (runtime/steal_hint_ledger.h) and the snapshot carries, per
//     other worker k, `steals` (how many k started in the interval) and `streak` (the longest
//     run of consecutive starts by k alone: a start by the owner or by a third worker ends a
//     run), and the owner's `local_starts`. Connection c, owned by o, moves to k != o when all
//     of these hold:
//      a. streak: k's streak >= `steal_affinity_min` (K): k ran at least K of c's tasks in a
//         row, with none run locally (or elsewhere) in between;
//      b. majority: k started more than half of all c's tasks that started in the interval
//         (local_starts plus every other worker's steals), so a thief that caught one burst
//         while the owner ran the rest does not qualify, and of conflicting thieves at most
//         one can (if neither has a majority, c stays);
//      c. hysteresis: o's projected load exceeds k's by more than `start_spread`, or by more
//         than `stop_spread` while the balancing latch is on (the same two thresholds as
//         balancing, but not `min_source_busy`: a worker whose queued tasks get stolen is
//         busy by construction);
//      d. the same gates as every move: c is not cooling down and has not moved this round,
//         the move fits (see "cannot thrash" below: it narrows the pair's gap even if c
//         weighs 1 + `estimate_tolerance` times its estimate, and does not overshoot), and
//         the round's budget is not spent.
//     Qualifying connections are taken strongest streak first (then more steals, then lower
//     id). Its work already runs on k, so moving the fd makes its wakeups local too.
//  2. Balance, with hysteresis. Balancing switches on when the busiest worker's busy fraction
//     exceeds the least busy one's by more than `start_spread` (and the busiest is at least
//     `min_source_busy`) in `start_rounds` consecutive rounds, and stays on until the spread is
//     at most `stop_spread`. While on, it
//     repeatedly moves one connection from a hot worker to the coldest, choosing the one whose
//     estimated load brings the pair closest to even.
//  Both share a budget of `max_moves_per_round`; a connection that moved in round r may move
//  again only from round r + `cooldown_rounds`; each move updates the projected loads the next
//  decision sees (a connection moves at most once per round).
//
// Inputs and how they are used: busy fraction is the load. A connection's load is its worker's
// busy fraction times its share of the worker's events/s and bytes/s (blended by
// `event_weight`; 1/connections when the worker reports neither). Run-queue depth breaks ties
// between equally busy workers (two saturated workers both report busy = 1: the deeper queue
// is hotter); connection count breaks ties between equally cold targets.
//
// Why it cannot thrash, for loads that stay put:
//  - Every move, of either kind, takes a connection of true load x from a worker at s to one
//    at t only if 0 < x < s - t, which lowers the sum of squared worker demands by
//    2x(s - t - x). That sum cannot fall forever over finitely many placements, so the moves
//    stop, and no placement is ever revisited. Estimates are not true loads, so the test is
//    x_est * (1 + estimate_tolerance) < gap, with the gap taken net of the uncertainty left
//    by this round's earlier moves, and a worker that took a connection from a saturated
//    worker (whose busy = 1 hides its demand) takes no further part in that round. A
//    connection bigger than the gap is never moved: it would only move the hot spot.
//  - No overshoot: a move may leave the target hotter than the source by at most
//    `stop_spread`, so the reverse move is never worth making.
//  - Hysteresis stops balancing at `stop_spread` and restarts it only past the higher
//    `start_spread`, so load hovering near one threshold does not toggle it every round; and
//    only when the spread stays past it for `start_rounds` rounds, so one noisy sample of a
//    load that hovers just below it does not. (Measured: two workers settled at busy ~0.90 and
//    ~0.75, one sharing its CPU with the client; single 50 ms rounds read spreads up to 0.34.)
//  - The cooldown bounds how often any one connection can move when loads do change.
// The guarantee holds while the cost model errs by less than `estimate_tolerance`; beyond
// that, hysteresis and the cooldown still bound the churn.
//
// Thread-safety: plan_rebalance() is a pure function of its arguments; call it from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/container/flat_hash_map.h"

namespace shardloop::scheduler {

struct WorkerLoad {
  double busy = 0;  // fraction of the interval spent running, 0..1
  double events_per_sec = 0;
  double bytes_per_sec = 0;
  size_t run_queue_depth = 0;  // runnable tasks at the end of the interval
  size_t connections = 0;
};

// "`worker` started `steals` of this connection's offloaded tasks in the interval, at most
// `streak` of them in a row (no start by the owner or by another worker in between)."
struct StealHint {
  size_t worker = 0;
  uint32_t steals = 0;
  uint32_t streak = 0;  // <= steals
};

struct ConnectionLoad {
  uint64_t id = 0;
  size_t owner = 0;
  double events_per_sec = 0;
  double bytes_per_sec = 0;
  std::vector<StealHint> stolen_by;  // optional; entries naming the owner are ignored
  uint32_t local_starts = 0;         // its offloaded tasks its owner started itself
};

// The connections listed are the candidates (typically the top few on the hot workers);
// workers' totals cover all their connections.
struct LoadSnapshot {
  std::vector<WorkerLoad> workers;
  std::vector<ConnectionLoad> connections;
};

struct RebalanceConfig {
  double start_spread = 0.25;  // start balancing when busiest - least busy > this
  // ... in this many rounds in a row: one noisy sample (a 50 ms round in which another process
  // took a worker's CPU) does not start a wave of moves. 1 starts on the first such round.
  uint32_t start_rounds = 2;
  double stop_spread = 0.10;      // ... and continue until busiest - least busy <= this
  double min_source_busy = 0.50;  // no balancing unless the busiest worker is at least this busy
  size_t max_moves_per_round = 4;
  uint32_t cooldown_rounds = 10;  // moved in round r: may move again from r + this
  // Consecutive steals by one worker in an interval that make a connection follow it (rule 1a);
  // 0 turns steal affinity off.
  uint32_t steal_affinity_min = 16;
  double event_weight = 0.5;  // connection load = busy x (w x event share + (1-w) x byte share)
  // How far the cost model may under-estimate a connection: a move must still help if the
  // connection weighs (1 + this) times its estimate. Events and bytes are only proxies for CPU
  // (a TLS handshake event costs more than a small read), hence the generous default.
  double estimate_tolerance = 0.5;
};

enum class MoveReason { kBalance, kStealAffinity };

struct Move {
  uint64_t connection = 0;
  size_t from = 0;
  size_t to = 0;
  MoveReason reason = MoveReason::kBalance;
  double estimated_load = 0;  // busy fraction expected to move with it
  bool operator==(const Move&) const = default;
};

// What the policy remembers between rounds. Opaque to the caller: pass back what you got.
struct RebalanceState {
  uint64_t round = 0;
  bool balancing = false;          // the hysteresis latch
  uint32_t rounds_over_start = 0;  // consecutive rounds, up to this one, over the start gate
  // Connection id -> round in which it last moved, for connections still cooling down.
  absl::flat_hash_map<uint64_t, uint64_t> last_moved;
  bool operator==(const RebalanceState&) const = default;
};

struct RebalancePlan {
  std::vector<Move> moves;
  RebalanceState state;  // pass to the next call
};

RebalancePlan plan_rebalance(const LoadSnapshot& snapshot, const RebalanceConfig& config,
                             const RebalanceState& state);

// Estimated busy fraction that `c` contributes to its owner (the cost model above).
double estimated_connection_load(const ConnectionLoad& c, const WorkerLoad& owner,
                                 double event_weight);

}  // namespace shardloop::scheduler
