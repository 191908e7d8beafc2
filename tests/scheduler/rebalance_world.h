// A synthetic world for the rebalance policy tests: workers with unattributed base load and
// connections with known loads (and optional steal evidence), turned into the snapshot the
// policy sees; moves are applied back to it, so tests can run the policy round after round.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "scheduler/rebalance_policy.h"

namespace shardloop::scheduler {

// Events share only, so a connection's estimated load is busy x events / worker events.
// Balancing starts on the first round over the start spread: most snapshots here are one round
// (the start debounce, `start_rounds`, has its own tests).
inline RebalanceConfig events_only() {
  RebalanceConfig c;
  c.event_weight = 1.0;
  c.start_rounds = 1;
  return c;
}

// A snapshot built from per-connection loads: each worker's busy is `base` plus its
// connections' loads, and events are proportional to load (1000 events/s per unit).
struct World {
  std::vector<double> base;
  struct Conn {
    uint64_t id;
    size_t owner;
    double load;
    std::vector<StealHint> hints;
    uint32_t local_starts = 0;
    double byte_factor = 1;  // != 1: bytes/s misreport this connection's share of the work
  };
  std::vector<Conn> conns;

  LoadSnapshot snapshot() const {
    LoadSnapshot s;
    s.workers.resize(base.size());
    for (size_t w = 0; w < base.size(); ++w) s.workers[w].busy = base[w];
    for (const Conn& c : conns) {
      WorkerLoad& w = s.workers[c.owner];
      w.busy += c.load;
      w.events_per_sec += c.load * 1000;
      w.bytes_per_sec += c.load * 1e6 * c.byte_factor;
      ++w.connections;
      s.connections.push_back(
          {c.id, c.owner, c.load * 1000, c.load * 1e6 * c.byte_factor, c.hints, c.local_starts});
    }
    for (WorkerLoad& w : s.workers) w.busy = std::min(w.busy, 1.0);
    return s;
  }
  // Sum of squared true demands (base plus connections, not capped at 1): the quantity every
  // move must lower.
  double demand_potential() const {
    std::vector<double> demand = base;
    for (const Conn& c : conns) demand[c.owner] += c.load;
    double sum = 0;
    for (double d : demand) sum += d * d;
    return sum;
  }
  void apply(const std::vector<Move>& moves) {
    for (const Move& m : moves) {
      for (Conn& c : conns) {
        if (c.id == m.connection) {
          ASSERT_EQ(c.owner, m.from) << "move from a worker that does not own connection " << c.id;
          c.owner = m.to;
        }
      }
    }
  }
};

}  // namespace shardloop::scheduler
