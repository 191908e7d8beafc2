// ConnectionTracker: the live connections of one server shard, so that a drain can reach them
// and the rebalancer can sample and move them. Connections are keyed by Connection::affinity(),
// which is unique in the process and never reused, so an id sampled in one round cannot name a
// different connection in the next (as a reused address could).
//
// Thread-safety: owner worker only (the shard's worker), like the connections it tracks.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/types/span.h"
#include "net/connection.h"
#include "runtime/migratable_set.h"

namespace shardloop::net {

class ConnectionTracker {
 public:
  // The trackers of one server by worker index, so that a migrating connection can join the
  // target worker's. Weak: a shard may end while a connection is on its way to it.
  using Group = std::vector<std::weak_ptr<ConnectionTracker>>;

  void add(Connection& conn);
  void remove(Connection::State* state);
  // Drains every tracked connection (see Connection::drain()), and any that joins later;
  // returns how many were tracked.
  size_t drain_all();
  bool draining() const { return draining_; }
  size_t size() const { return states_.size(); }

  // Load sampling for the rebalancer: the `top` connections by reads completed since the last
  // sample, plus any tracked connection whose key is in `also` (those with steal hints), and a
  // move by id (Connection::migrate; fails if the connection has gone or is moving). The id is
  // the connection's affinity() key. Every tracked connection's read count restarts.
  using Sample = MigratableSet::Sample;
  std::vector<Sample> sample(size_t top, absl::Span<const uint64_t> also = {});
  absl::Status migrate(uint64_t id, Worker& target);

  // Set once by the server, before any connection is tracked.
  void set_group(std::shared_ptr<const Group> group) { group_ = std::move(group); }
  // The tracker of the same server on `worker`, if it still exists.
  std::shared_ptr<ConnectionTracker> sibling(size_t worker) const {
    return group_ != nullptr ? on_worker(*group_, worker) : nullptr;
  }
  // The tracker of `group` on `worker`, if it still exists.
  static std::shared_ptr<ConnectionTracker> on_worker(const Group& group, size_t worker) {
    return worker < group.size() ? group[worker].lock() : nullptr;
  }

 private:
  friend class Connection;
  void insert(Connection::State* state);
  absl::flat_hash_map<uint64_t, Connection::State*> states_;  // by affinity key
  bool draining_ = false;
  std::shared_ptr<const Group> group_;
};

}  // namespace shardloop::net
