// ConnectionTracker: the live connections of one server shard, so that a drain can reach them.
//
// Thread-safety: owner worker only (the shard's worker), like the connections it tracks.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "net/connection.h"

namespace shardloop::net {

class ConnectionTracker {
 public:
  // The trackers of one server by worker index, so that a migrating connection can join the
  // target worker's. Weak: a shard may end while a connection is on its way to it.
  using Group = std::vector<std::weak_ptr<ConnectionTracker>>;

  void add(Connection& conn);
  void remove(Connection::State* state) { states_.erase(state); }
  // Drains every tracked connection (see Connection::drain()), and any that joins later;
  // returns how many were tracked.
  size_t drain_all();
  bool draining() const { return draining_; }
  size_t size() const { return states_.size(); }

  // Load sampling for the rebalancer: the `top` connections by reads completed since the last
  // sample (an id valid on this worker while the connection is tracked here), and a move by id
  // (Connection::migrate; fails if the connection has gone or is moving).
  struct Sample {
    uint64_t id;
    uint64_t reads;
  };
  std::vector<Sample> sample(size_t top);
  absl::Status migrate(uint64_t id, Worker& target);

  // Set once by the server, before any connection is tracked.
  void set_group(std::shared_ptr<const Group> group) { group_ = std::move(group); }
  // The tracker of the same server on `worker`, if it still exists.
  std::shared_ptr<ConnectionTracker> sibling(size_t worker) const {
    if (group_ == nullptr || worker >= group_->size()) return nullptr;
    return (*group_)[worker].lock();
  }

 private:
  friend class Connection;
  absl::flat_hash_set<Connection::State*> states_;
  bool draining_ = false;
  std::shared_ptr<const Group> group_;
};

}  // namespace shardloop::net
