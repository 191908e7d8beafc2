#include "scheduler/rebalance_policy.h"

#include <algorithm>
#include <cmath>
#include <optional>

namespace shardloop::scheduler {
namespace {

double clamp01(double v) { return v >= 0 && v <= 1 ? v : (v > 1 ? 1 : 0); }  // NaN -> 0

// One other worker's steal evidence for a connection, its entries merged (64-bit sums).
struct Thief {
  size_t worker;
  uint64_t steals;
  uint32_t streak;
};

// A listed connection as the round sees it: where it is now (projected), what it weighs.
struct Candidate {
  const ConnectionLoad* conn;
  size_t owner;
  double load;
  bool movable;  // valid owner, positive load, not cooling down, not moved this round
};

class Round {
 public:
  Round(const LoadSnapshot& snapshot, const RebalanceConfig& config, RebalancePlan& plan)
      : snapshot_(snapshot), config_(config), plan_(plan) {
    const size_t n = snapshot.workers.size();
    load_.resize(n);
    slack_.assign(n, 0.0);
    connections_.resize(n);
    for (size_t i = 0; i < n; ++i) {
      load_[i] = clamp01(snapshot.workers[i].busy);
      connections_[i] = snapshot.workers[i].connections;
    }
    for (const ConnectionLoad& c : snapshot.connections) {
      if (c.owner >= n) continue;  // stale entry for a worker that is not in this snapshot
      const double x = estimated_connection_load(c, snapshot.workers[c.owner], config.event_weight);
      const bool cooling = plan.state.last_moved.contains(c.id);
      candidates_.push_back({&c, c.owner, x, x > 0 && !cooling});
    }
    // Decisions must not depend on the caller's listing order.
    std::sort(candidates_.begin(), candidates_.end(),
              [](const Candidate& a, const Candidate& b) { return a.conn->id < b.conn->id; });
  }

  // Rule 1 of the header: a connection follows the worker that keeps running its work.
  void steal_affinity() {
    if (config_.steal_affinity_min == 0) return;
    // Strongest evidence first (candidates are in id order, which the stable sort keeps for
    // ties), so a small budget goes to the clearest cases.
    std::vector<std::pair<Thief, Candidate*>> wanted;
    for (Candidate& c : candidates_) {
      if (std::optional<Thief> thief = qualifying_thief(c)) wanted.push_back({*thief, &c});
    }
    std::stable_sort(wanted.begin(), wanted.end(), [](const auto& a, const auto& b) {
      if (a.first.streak != b.first.streak) return a.first.streak > b.first.streak;
      return a.first.steals > b.first.steals;
    });
    // 1c: the hysteresis thresholds of balancing, as the latch stands at this round's start.
    const double threshold = plan_.state.balancing ? config_.stop_spread : config_.start_spread;
    for (auto& [thief, c] : wanted) {
      if (budget_left() == 0) return;
      const size_t to = thief.worker;
      if (!c->movable || load_[c->owner] - load_[to] <= threshold) continue;
      if (fits(c->load, c->owner, to)) apply(*c, to, MoveReason::kStealAffinity);
    }
  }

  void balance() {
    bool& on = plan_.state.balancing;
    if (!on) {
      const size_t h = hottest();
      uint32_t& over = plan_.state.rounds_over_start;
      over = spread() > config_.start_spread && load_[h] >= config_.min_source_busy ? over + 1 : 0;
      on = over >= std::max<uint32_t>(config_.start_rounds, 1);
    }
    if (on) plan_.state.rounds_over_start = 0;
    while (on) {
      if (spread() <= config_.stop_spread) {
        on = false;
        return;
      }
      if (budget_left() == 0 || !move_one_to_coldest()) return;  // latch stays on
    }
  }

 private:
  // Rules 1a and 1b: the one worker (if any) with a long enough streak and a majority of the
  // connection's starts. Entries for the same worker are merged (steals added, the longest
  // streak kept); entries naming the owner are ignored; entries naming a worker outside the
  // snapshot cannot qualify but still count as starts elsewhere.
  std::optional<Thief> qualifying_thief(const Candidate& c) const {
    const size_t owner = c.conn->owner;
    std::vector<Thief> merged;
    uint64_t total = c.conn->local_starts;
    for (const StealHint& h : c.conn->stolen_by) {
      if (h.worker == owner) continue;
      total += h.steals;
      auto it = std::find_if(merged.begin(), merged.end(),
                             [&](const Thief& m) { return m.worker == h.worker; });
      if (it == merged.end()) {
        merged.push_back({h.worker, h.steals, h.streak});
      } else {
        it->steals += h.steals;
        it->streak = std::max(it->streak, h.streak);
      }
    }
    for (const Thief& t : merged) {
      if (t.worker >= load_.size() || t.streak < config_.steal_affinity_min) continue;
      if (2 * t.steals > total) return t;  // a strict majority: at most one
    }
    return std::nullopt;
  }

  // One balancing move: to the coldest worker, from the hottest worker that has a connection
  // worth moving. False if no move improves anything.
  bool move_one_to_coldest() {
    const size_t cold = coldest();
    std::vector<size_t> sources;
    for (size_t w = 0; w < load_.size(); ++w) {
      if (w != cold) sources.push_back(w);
    }
    std::sort(sources.begin(), sources.end(), [&](size_t a, size_t b) { return hotter(a, b); });
    for (size_t src : sources) {
      const double gap = load_[src] - load_[cold];
      if (gap <= config_.stop_spread) return false;  // sorted: the rest are closer still
      Candidate* best = nullptr;
      double best_error = 0;
      for (Candidate& c : candidates_) {
        if (!c.movable || c.owner != src || !fits(c.load, src, cold)) continue;
        // After the move the pair differs by |gap - 2x|; prefer the closest to even, then the
        // lighter connection (less to disturb), then the lower id (already sorted).
        const double error = std::abs(gap - 2 * c.load);
        if (best == nullptr || error < best_error || (error == best_error && c.load < best->load)) {
          best = &c;
          best_error = error;
        }
      }
      if (best != nullptr) {
        apply(*best, cold, MoveReason::kBalance);
        return true;
      }
    }
    return false;
  }

  // Whether moving estimated load x from `from` to `to` is allowed:
  //  - it must narrow their gap even if the connection weighs (1 + estimate_tolerance) times
  //    its estimate: then the true sum of squared loads falls, whatever the estimate's error
  //    within that tolerance, so no sequence of moves can come back to an earlier placement;
  //  - the gap is taken pessimistically, net of the uncertainty that this round's earlier
  //    moves left on both workers (slack_);
  //  - it must not overshoot: the target may end up hotter than the source by at most
  //    stop_spread, so the reverse move faces a gap below which balancing does not act.
  bool fits(double x, size_t from, size_t to) const {
    const double gap = (load_[from] - slack_[from]) - (load_[to] + slack_[to]);
    return x > 0 && x * (1 + config_.estimate_tolerance) < gap &&
           2 * x - (load_[from] - load_[to]) <= config_.stop_spread;
  }

  void apply(Candidate& c, size_t to, MoveReason reason) {
    plan_.moves.push_back({c.conn->id, c.owner, to, reason, c.load});
    plan_.state.last_moved[c.conn->id] = plan_.state.round;
    // A saturated source (busy = 1) under-reports its demand, so a connection taken from it may
    // weigh any multiple of its estimate: the target sits out the rest of the round, until the
    // next snapshot measures what it really received.
    const bool saturated = snapshot_.workers[c.owner].busy >= 1.0;
    const double uncertainty = config_.estimate_tolerance * c.load;
    slack_[c.owner] += uncertainty;
    slack_[to] += saturated ? kUnknown : uncertainty;
    load_[c.owner] -= c.load;
    load_[to] += c.load;
    if (connections_[c.owner] > 0) --connections_[c.owner];
    ++connections_[to];
    c.owner = to;
    c.movable = false;
    // Another listing of the same id (a caller bug, but cheap to tolerate) must not move too.
    for (Candidate& other : candidates_) {
      if (other.conn->id == c.conn->id) other.movable = false;
    }
  }

  size_t budget_left() const {
    return plan_.moves.size() < config_.max_moves_per_round
               ? config_.max_moves_per_round - plan_.moves.size()
               : 0;
  }

  // Hotter: higher load; between equals (two saturated workers), the deeper run queue.
  bool hotter(size_t a, size_t b) const {
    if (load_[a] != load_[b]) return load_[a] > load_[b];
    const size_t qa = snapshot_.workers[a].run_queue_depth,
                 qb = snapshot_.workers[b].run_queue_depth;
    if (qa != qb) return qa > qb;
    return a < b;
  }
  // Colder: lower load; between equals, fewer connections.
  bool colder(size_t a, size_t b) const {
    if (load_[a] != load_[b]) return load_[a] < load_[b];
    if (connections_[a] != connections_[b]) return connections_[a] < connections_[b];
    return a < b;
  }
  size_t hottest() const {
    size_t h = 0;
    for (size_t w = 1; w < load_.size(); ++w) {
      if (hotter(w, h)) h = w;
    }
    return h;
  }
  size_t coldest() const {
    size_t c = 0;
    for (size_t w = 1; w < load_.size(); ++w) {
      if (colder(w, c)) c = w;
    }
    return c;
  }
  double spread() const { return load_[hottest()] - load_[coldest()]; }

  const LoadSnapshot& snapshot_;
  const RebalanceConfig& config_;
  RebalancePlan& plan_;
  static constexpr double kUnknown = 1e9;  // slack that rules a worker out for the round

  std::vector<double> load_;         // projected busy fraction per worker
  std::vector<double> slack_;        // how far load_ may be off after this round's moves
  std::vector<size_t> connections_;  // projected connection count per worker
  std::vector<Candidate> candidates_;
};

}  // namespace

double estimated_connection_load(const ConnectionLoad& c, const WorkerLoad& owner,
                                 double event_weight) {
  const double fallback = owner.connections > 0 ? 1.0 / static_cast<double>(owner.connections) : 0;
  auto share = [&](double part, double total) {
    return total > 0 ? clamp01(part / total) : fallback;
  };
  const double w = clamp01(event_weight);
  return clamp01(owner.busy) * (w * share(c.events_per_sec, owner.events_per_sec) +
                                (1 - w) * share(c.bytes_per_sec, owner.bytes_per_sec));
}

RebalancePlan plan_rebalance(const LoadSnapshot& snapshot, const RebalanceConfig& config,
                             const RebalanceState& state) {
  RebalancePlan plan;
  plan.state.round = state.round + 1;
  plan.state.balancing = state.balancing;
  plan.state.rounds_over_start = state.rounds_over_start;
  // Keep only connections still cooling down, so the state stays as small as the recent moves.
  for (const auto& [id, moved_in] : state.last_moved) {
    if (plan.state.round - moved_in < config.cooldown_rounds) plan.state.last_moved[id] = moved_in;
  }
  if (snapshot.workers.size() < 2) {
    plan.state.balancing = false;
    plan.state.rounds_over_start = 0;
    return plan;
  }
  Round round(snapshot, config, plan);
  round.steal_affinity();
  round.balance();
  return plan;
}

}  // namespace shardloop::scheduler
