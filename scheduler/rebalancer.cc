#include "scheduler/rebalancer.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <tuple>
#include <utility>
#include <vector>

namespace shardloop::scheduler {

Rebalancer::Rebalancer(Runtime& runtime, std::shared_ptr<MigratableSet> set,
                       RebalancerOptions options)
    : runtime_(runtime), set_(std::move(set)), options_(std::move(options)) {
  if (!options_.enabled) return;
  for (size_t w = 0; w < runtime_.size(); ++w) {
    runtime_.worker(w).set_measure_wait_cpu(true);
    runtime_.worker(w).set_collect_steal_hints(true);
  }
  for (size_t w = 0; w < runtime_.size(); ++w) last_.push_back(runtime_.worker(w).stats());
  last_at_ = std::chrono::steady_clock::now();
  thread_ = std::thread([this] { run(); });
}

Rebalancer::~Rebalancer() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  if (options_.enabled) {
    for (size_t w = 0; w < runtime_.size(); ++w) {
      runtime_.worker(w).set_measure_wait_cpu(false);
      runtime_.worker(w).set_collect_steal_hints(false);
    }
  }
}

RebalancerStats Rebalancer::stats() const {
  return {.rounds = rounds_.load(std::memory_order_relaxed),
          .moves_planned = planned_.load(std::memory_order_relaxed),
          .moves_started = started_->load(std::memory_order_relaxed),
          .steal_affinity_moves = steal_moves_.load(std::memory_order_relaxed),
          .steal_hints_dropped = hints_dropped_.load(std::memory_order_relaxed)};
}

void Rebalancer::run() {
  RebalanceState state;
  const auto interval = absl::ToChronoNanoseconds(options_.interval);
  for (;;) {
    {
      MutexLock lock(&mu_);
      wake_.wait_for(mu_, interval, [this]() ABSL_NO_THREAD_SAFETY_ANALYSIS { return stopping_; });
      if (stopping_) return;
    }
    if (!runtime_.running()) return;
    round(state);
  }
}

void Rebalancer::round(RebalanceState& state) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - last_at_).count();
  if (seconds <= 0) return;
  LoadSnapshot snapshot;
  for (size_t w = 0; w < runtime_.size(); ++w) {
    // Sampled on the worker: the objects, their counters and the steal hints are its own.
    // Objects with steal hints are candidates whatever their reads.
    auto [stats, samples, connections, hints] = runtime_.call_on(w, [&] {
      StealHintReport report = runtime_.worker(w).take_steal_hints();
      std::vector<uint64_t> hinted;
      for (const AffinitySteals& a : report.affinities) hinted.push_back(a.affinity);
      std::vector<MigratableSet::Sample> top =
          set_->sample_on(w, options_.candidates_per_worker, hinted);
      const size_t n = set_->count_on(w);
      return std::make_tuple(runtime_.worker(w).stats(), std::move(top), n, std::move(report));
    });
    hints_dropped_.fetch_add(hints.dropped, std::memory_order_relaxed);
    const WorkerStats& before = last_[w];
    WorkerLoad load;
    const double idle = static_cast<double>(stats.idle_ns - before.idle_ns) / 1e9;
    load.busy = std::clamp(1.0 - idle / seconds, 0.0, 1.0);
    load.events_per_sec = static_cast<double>(stats.events - before.events) / seconds;
    load.connections = connections;
    snapshot.workers.push_back(load);
    for (const auto& s : samples) {
      ConnectionLoad c{
          .id = s.id, .owner = w, .events_per_sec = static_cast<double>(s.reads) / seconds};
      // The hints are keyed by affinity, which is the set's id (Connection::affinity()).
      auto it =
          std::lower_bound(hints.affinities.begin(), hints.affinities.end(), s.id,
                           [](const AffinitySteals& a, uint64_t id) { return a.affinity < id; });
      if (it != hints.affinities.end() && it->affinity == s.id) {
        c.local_starts = it->local_starts;
        for (const ThiefSteals& t : it->thieves) {
          c.stolen_by.push_back(
              {.worker = t.worker, .steals = t.steals, .streak = t.longest_streak});
        }
      }
      snapshot.connections.push_back(std::move(c));
    }
    last_[w] = stats;
  }
  last_at_ = now;
  RebalancePlan plan = plan_rebalance(snapshot, options_.policy, state);
  state = std::move(plan.state);
  rounds_.fetch_add(1, std::memory_order_relaxed);
  planned_.fetch_add(plan.moves.size(), std::memory_order_relaxed);
  steal_moves_.fetch_add(
      std::count_if(plan.moves.begin(), plan.moves.end(),
                    [](const Move& m) { return m.reason == MoveReason::kStealAffinity; }),
      std::memory_order_relaxed);
  for (const Move& m : plan.moves) {
    Worker* target = &runtime_.worker(m.to);
    runtime_.post_to(m.from,
                     [set = set_, from = m.from, id = m.connection, target, started = started_] {
                       if (set->migrate_on(from, id, *target).ok()) {
                         started->fetch_add(1, std::memory_order_relaxed);
                       }
                     });
  }
}

}  // namespace shardloop::scheduler
