// Server: a TCP listener sharded across a Runtime's workers with SO_REUSEPORT.
//
//   auto server = Server::listen(rt, *Address::parse("127.0.0.1:0"),
//       [](Connection c) -> Task<void> { ... });
//
// Every worker gets its own listening socket bound to the same address; the kernel spreads new
// connections across them (hash of the 4-tuple) and each connection stays on the worker whose
// socket accepted it, for its whole life. A handler coroutine is spawned per connection on that
// worker.
//
// Accept errors: EMFILE/ENFILE/ENOBUFS/ENOMEM pause that worker's accepting with exponential
// backoff (50 ms doubling to 500 ms: at most 20 attempts a second) and one log line per second,
// never a busy loop; transient per-connection errors (ECONNABORTED, EPROTO, EPERM) are skipped.
//
// Drain (Runtime::drain): every shard closes its listening socket at once, and every open
// connection is drained (Connection::drain): after a short grace (drain_grace) a handler
// waiting for the next request gets Cancelled and ends; one that is busy finishes what it has
// read and then ends the same way. Handlers can check draining() to tell clients they close.
//
// Thread-safety: listen(), close(), stats() and the destructor from any thread that is not a
// worker. The handler is called concurrently on every worker, so it must be safe to call so.
// Destroying the Server stops accepting; connections already accepted run on. Destroy the
// Server before its Runtime.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "net/address.h"
#include "net/connection.h"
#include "net/connection_tracker.h"
#include "runtime/migratable_set.h"
#include "runtime/runtime.h"
#include "runtime/task.h"

namespace shardloop::net {

class ConnectionTracker;

using ConnectionHandler = std::function<Task<void>(Connection)>;

enum class Steering {
  kHash,  // the kernel's default: a hash of the 4-tuple picks the worker
  kCpu,   // the worker pinned on the CPU that received the connection (see cpu_steering.h)
};

struct ServerOptions {
  // The kernel caps this at net.core.somaxconn.
  int backlog = 4096;
  // kCpu wants a runtime with pin_cpus; where the kernel refuses the steering program, the
  // server logs why and keeps kHash.
  Steering steering = Steering::kHash;
  // Applied to every accepted connection.
  ConnectionOptions connection;
  // Most connections open at once across all workers (0: no limit). Beyond it a new connection
  // is accepted and closed at once, and counted in ServerStats::refused.
  size_t max_connections = 0;
  // Bytes sent to a refused connection before it is closed, so the client learns why (a
  // protocol's error line, e.g. redis's "-ERR max number of clients reached\r\n"). Sent with one
  // non-blocking send into the new socket's empty buffer: keep it short (well under 4 KiB).
  // Empty: close without a word.
  std::string refusal_message;
};

struct ServerStats {
  std::vector<uint64_t> accepted;  // per worker
  uint64_t accept_errors = 0;      // accept failures from fd/memory exhaustion, all workers
  uint64_t refused = 0;            // closed at once because max_connections was reached
  uint64_t open = 0;               // connections whose handler is still running
  uint64_t drained = 0;            // connections told to drain by Runtime::drain()
};

class Server {
 public:
  static absl::StatusOr<std::unique_ptr<Server>> listen(Runtime& runtime, const Address& address,
                                                        ConnectionHandler handler,
                                                        ServerOptions options = {});
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  const Address& address() const { return address_; }
  // The steering in effect (kHash if kCpu was asked for but refused).
  Steering steering() const { return steering_; }
  uint16_t port() const { return address_.port(); }

  // Stops accepting on every worker; connections already accepted are unaffected. Asynchronous:
  // each worker closes its socket in its next loop iteration. Idempotent.
  void close();
  // close(), and drains every open connection (see above). Runtime::drain() calls this.
  void drain();
  ServerStats stats() const;
  // The server's live connections as a set that scheduler::Rebalancer can sample and move
  // (runtime/migratable_set.h: each call runs on the worker it names). Ids are the connections'
  // affinity() keys. Safe to keep after the server is gone: a shard that has ended offers none.
  std::shared_ptr<MigratableSet> migratable() const;

  struct Shard;
  // Counters shared with the shards, which may outlive the Server while their last connections
  // finish.
  struct Counters;

 private:
  Server(Runtime& runtime, Address address) : runtime_(runtime), address_(address) {}

  Runtime& runtime_;
  Address address_;
  Steering steering_ = Steering::kHash;
  std::vector<std::shared_ptr<Shard>> shards_;
  std::shared_ptr<const ConnectionTracker::Group> trackers_;  // by worker, for migratable()
  uint64_t drain_hook_ = 0;
  std::atomic<bool> closed_{false};
  std::shared_ptr<Counters> counters_;
};

}  // namespace shardloop::net
