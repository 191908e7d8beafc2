// ConnectionTracker: the live connections of one server shard, so that a drain can reach them.
//
// Thread-safety: owner worker only (the shard's worker), like the connections it tracks.
#pragma once

#include <cstddef>

#include "absl/container/flat_hash_set.h"
#include "net/connection.h"

namespace shardloop::net {

class ConnectionTracker {
 public:
  void add(Connection& conn);
  void remove(Connection::State* state) { states_.erase(state); }
  // Drains every tracked connection (see Connection::drain()); returns how many.
  size_t drain_all();
  size_t size() const { return states_.size(); }

 private:
  absl::flat_hash_set<Connection::State*> states_;
};

}  // namespace shardloop::net
