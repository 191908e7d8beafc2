// KvService: the Redis-protocol (RESP2) key-value service of examples/kv_server, with its
// keyspace sharded across the runtime's workers.
//
// Each worker owns one Keyspace (kv_store.h) and is the only thread that touches it: no locks.
// A key's owner is a hash of the key modulo the number of workers. A connection lives on the
// worker that accepted it and serves its pipeline in batches:
//
//   1. parse every complete command already received (at most kMaxBatch), and split each into
//      per-key operations (kv_commands.h); an operation on a key this worker owns runs at once,
//      the others are appended to one ShardBatch per owning worker (arguments copied);
//   2. send each ShardBatch on the Channel (runtime/channel.h) to its owner, which runs its
//      operations in order, writes their results, and sends the batch back the same way;
//   3. when every batch is back, write the replies in command order, all in one write.
//
// Order: a key always goes to the same worker, and one connection's operations for one worker
// travel in one batch in command order, so each client sees its own commands on each key in
// the order it sent them. Multi-key commands (MGET, MSET, DEL, EXISTS) and DBSIZE/FLUSHALL
// gather across shards; like Redis Cluster across slots, they are atomic per shard only.
//
// Expiry is lazy on access, plus a sweep every 100 ms on each worker whose shard has keys with
// a deadline (a timer on that worker; none while no key has one).
//
// Thread-safety: construct after Runtime::start(); serve() runs on any worker (the Server calls
// it per connection); destroy after the runtime has stopped (timers and queued channel jobs
// point into the service).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "examples/kv/kv_commands.h"
#include "examples/kv/kv_store.h"
#include "net/connection.h"
#include "net/protocols/resp_parser.h"
#include "net/server.h"
#include "runtime/channel.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace shardloop::examples::kv {

struct KvOptions {
  // Parser limits: max bulk length, max multibulk count, max inline (and `*N`/`$N`) line.
  resp::Limits limits;
  // Most clients connected at once (redis `maxclients`); 0: no limit. Enforced by the Server
  // (server_options()), reported by INFO.
  size_t max_clients = 10000;
  // Messages per cross-worker ring (ChannelOptions::capacity).
  size_t channel_capacity = 1024;
  std::chrono::milliseconds sweep_interval{100};
};

// Listener options for a KvService: refuses clients past max_clients with redis's message.
net::ServerOptions server_options(const KvOptions& options);

class KvService {
 public:
  // Commands served per batch at most: bounds the replies held in memory for one connection.
  static constexpr size_t kMaxBatch = 1024;

  KvService(Runtime& runtime, KvOptions options = {});
  ~KvService();
  KvService(const KvService&) = delete;
  KvService& operator=(const KvService&) = delete;

  // Serves one client until it quits, closes, or breaks the protocol.
  Task<void> serve(net::Connection conn);
  // serve() as a Server handler; the service must outlive the runtime's workers.
  net::ConnectionHandler handler() {
    return [this](net::Connection c) { return serve(std::move(c)); };
  }

  // The worker that owns `key`.
  size_t owner_of(std::string_view key) const;
  ChannelStats channel_stats() const { return channel_.stats(); }

  struct ConnBatch;
  struct ShardBatch;
  struct WorkerState;

 private:
  // Step 1 for one command; false when the connection must end after this batch (QUIT).
  bool dispatch(absl::Span<const std::string_view> args, ConnBatch& b, net::Connection& conn);
  // Adds one operation on `key` (or on worker `to`'s whole shard) to the batch.
  void route(ConnBatch& b, const Op& op, std::string_view key, std::string_view value = {});
  void route_to(ConnBatch& b, size_t to, const Op& op, std::string_view key,
                std::string_view value);
  // Channel handler: runs a ShardBatch on its owner, or completes it back on its origin.
  void on_message(size_t from, ShardBatch* sb);
  // Starts worker `w`'s sweep timer if its shard has keys with deadlines and none is armed.
  void arm_sweep(size_t w);
  std::string info(absl::Span<const std::string_view> args, net::Connection& conn) const;

  Runtime& runtime_;
  const KvOptions options_;
  std::unique_ptr<WorkerState[]> workers_;
  Channel<ShardBatch*> channel_;
  const std::chrono::steady_clock::time_point started_;
};

}  // namespace shardloop::examples::kv
