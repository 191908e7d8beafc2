// Rebalancer: moves live objects (a server's connections) between workers by measured load.
//
//   scheduler::Rebalancer rebalancer(rt, server->migratable(), {.interval =
//   absl::Milliseconds(100)});
//
// What it moves is a MigratableSet (runtime/migratable_set.h); net::Server::migratable() offers
// a server's connections as one, so this mechanism knows nothing of sockets.
//
// Every `interval` a thread of its own samples each worker (on the worker, through its inbox):
// its busy fraction (wall time not spent idle in the poller: blocked there and not using CPU,
// since on io_uring completions' network work runs inside the wait), events/s, the number of
// objects there, those that completed the most reads, and the worker's steal hints
// (Worker::take_steal_hints: who started the offloaded tasks of its objects, e.g.
// Connection::spawn_offload), which also make their objects candidates. It hands the snapshot to
// the pure policy (rebalance_policy.h: steal affinity, then balancing with hysteresis, a move
// budget per round, a cooldown per object) and asks each source worker to migrate the chosen
// objects (MigratableSet::migrate_on). One that has gone or is moving by then is skipped.
//
// While it runs, every worker collects steal hints (Worker::set_collect_steal_hints), and this
// rebalancer is their one reader: a second Rebalancer on the same runtime would split them.
//
// Lifetime: destroy the Rebalancer before stopping the runtime. The set is shared: moves already
// posted to workers keep it alive after the Rebalancer is gone.
// Thread-safety: construct, stats() and destroy from any thread that is not a worker.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "runtime/migratable_set.h"
#include "runtime/mutex.h"
#include "runtime/runtime.h"
#include "scheduler/rebalance_policy.h"

namespace shardloop::scheduler {

struct RebalancerOptions {
  absl::Duration interval = absl::Milliseconds(100);
  // Off: no thread, no sampling, no moves (the switch a deployment flips to compare).
  bool enabled = true;
  // Objects per worker offered to the policy as candidates (the busiest by reads).
  size_t candidates_per_worker = 64;
  RebalanceConfig policy = [] {
    RebalanceConfig c;
    c.event_weight = 1.0;  // objects report reads, not bytes
    return c;
  }();
};

struct RebalancerStats {
  uint64_t rounds = 0;
  uint64_t moves_planned = 0;
  uint64_t moves_started = 0;         // accepted by MigratableSet::migrate_on, on the source
  uint64_t steal_affinity_moves = 0;  // of the planned moves, those made by steal affinity
  uint64_t steal_hints_dropped = 0;   // steal records lost (a worker's ring or ledger full)
};

class Rebalancer {
 public:
  Rebalancer(Runtime& runtime, std::shared_ptr<MigratableSet> set, RebalancerOptions options = {});
  ~Rebalancer();
  Rebalancer(const Rebalancer&) = delete;
  Rebalancer& operator=(const Rebalancer&) = delete;

  RebalancerStats stats() const;

 private:
  void run();
  void round(RebalanceState& state);

  Runtime& runtime_;
  const std::shared_ptr<MigratableSet> set_;
  const RebalancerOptions options_;
  Mutex mu_;
  std::condition_variable_any wake_;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  // Written by the rebalancer thread (rounds, planned) and by workers (started, shared with the
  // move messages, which may outlive this object); read anywhere. Relaxed: statistics.
  std::atomic<uint64_t> rounds_{0}, planned_{0}, steal_moves_{0}, hints_dropped_{0};
  std::shared_ptr<std::atomic<uint64_t>> started_ = std::make_shared<std::atomic<uint64_t>>(0);
  // Previous sample per worker, for the deltas. Rebalancer thread only.
  std::vector<WorkerStats> last_;
  // When last_ was sampled: a monotonic clock, since a wall-clock step would skew every rate.
  std::chrono::steady_clock::time_point last_at_;
  std::thread thread_;
};

}  // namespace shardloop::scheduler
