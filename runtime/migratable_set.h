// MigratableSet: live objects spread over the workers that a load balancer may move from one
// worker to another, seen only through ids and read counts. net::Server offers its connections
// as one (Server::migratable()); scheduler::Rebalancer moves them. The interface lives here so
// that the scheduler balances whatever the layers above it register, without depending on them.
//
// Thread-safety: each call names a worker `w` and must run on that worker's thread (the objects
// there are owner-only). The set itself may be shared between threads and outlive its creator:
// a call for a worker whose objects are gone returns an empty answer or an error.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"

namespace shardloop {

class Worker;

class MigratableSet {
 public:
  // One object's load since the previous sample on its worker.
  struct Sample {
    // Stable for the object's life and never reused; also the affinity key its offloaded tasks
    // carry (runtime/steal_hint_ledger.h), which is how steal hints name it.
    uint64_t id;
    uint64_t reads;  // reads completed since the previous sample
  };

  virtual ~MigratableSet() = default;

  // How many objects worker `w` owns.
  virtual size_t count_on(size_t w) = 0;
  // The `top` objects of worker `w` by reads since the previous sample, plus any of its objects
  // whose id is in `also`; every object's read count restarts.
  virtual std::vector<Sample> sample_on(size_t w, size_t top, absl::Span<const uint64_t> also) = 0;
  // Starts moving object `id` from worker `w` to `target`; fails if it has gone or is moving.
  virtual absl::Status migrate_on(size_t w, uint64_t id, Worker& target) = 0;
};

}  // namespace shardloop
