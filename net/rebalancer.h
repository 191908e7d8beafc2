// Rebalancer: moves a server's live connections between workers by measured load.
//
//   net::Rebalancer rebalancer(rt, *server, {.interval = absl::Milliseconds(100)});
//
// Every `interval` a thread of its own samples each worker (on the worker, through its inbox):
// its busy fraction (wall time not spent idle in the poller: blocked there and not using CPU,
// since on io_uring completions' network work runs inside the wait), events/s, run-queue depth,
// connection count, the connections of the server's shard there that completed the most
// reads, and the worker's steal hints (Worker::take_steal_hints: who started the offloaded
// tasks of its connections, Connection::spawn_offload), which also make their connections
// candidates. It hands the snapshot to the pure policy (scheduler/rebalance_policy.h: steal
// affinity, then balancing with hysteresis, a move budget per round, a cooldown per
// connection) and asks each source worker to migrate the chosen connections
// (Connection::migrate). A connection that closed or is moving by then is skipped.
//
// While it runs, every worker collects steal hints (Worker::set_collect_steal_hints), and this
// rebalancer is their one reader: a second Rebalancer on the same runtime would split them.
//
// Lifetime: destroy the Rebalancer before stopping the runtime or destroying the server.
// Thread-safety: construct, stats() and destroy from any thread that is not a worker.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "net/server.h"
#include "runtime/mutex.h"
#include "runtime/runtime.h"
#include "scheduler/rebalance_policy.h"

namespace shardloop::net {

struct RebalancerOptions {
  absl::Duration interval = absl::Milliseconds(100);
  // Off: no thread, no sampling, no moves (the switch a deployment flips to compare).
  bool enabled = true;
  // Connections per worker offered to the policy as candidates (the busiest by reads).
  size_t candidates_per_worker = 64;
  scheduler::RebalanceConfig policy = [] {
    scheduler::RebalanceConfig c;
    c.event_weight = 1.0;  // connections report reads, not bytes
    return c;
  }();
};

struct RebalancerStats {
  uint64_t rounds = 0;
  uint64_t moves_planned = 0;
  uint64_t moves_started = 0;         // accepted by Connection::migrate on the source worker
  uint64_t steal_affinity_moves = 0;  // of the planned moves, those made by steal affinity
  uint64_t steal_hints_dropped = 0;   // steal records lost (a worker's ring or ledger full)
};

class Rebalancer {
 public:
  Rebalancer(Runtime& runtime, Server& server, RebalancerOptions options = {});
  ~Rebalancer();
  Rebalancer(const Rebalancer&) = delete;
  Rebalancer& operator=(const Rebalancer&) = delete;

  RebalancerStats stats() const;

 private:
  void run();
  void round(scheduler::RebalanceState& state);

  Runtime& runtime_;
  Server& server_;
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
  absl::Time last_at_;
  std::thread thread_;
};

}  // namespace shardloop::net
