// KvService's private structures, shared by kv_service.cc (dispatch, batches, the connection
// loop) and kv_info.cc (INFO). Not for users of the service.
#pragma once

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <vector>

#include "examples/kv/kv_commands.h"
#include "examples/kv/kv_service.h"
#include "examples/kv/kv_store.h"

namespace shardloop::examples::kv {

// Milliseconds on the monotonic clock: the time base of every deadline in the keyspaces.
inline int64_t now_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// A counter with one writer (its worker) that any worker reads for INFO: relaxed load+store by
// the writer, relaxed loads elsewhere (a statistic, not a synchronisation point).
struct OwnerCounter {
  std::atomic<uint64_t> v{0};
  void add() { v.store(v.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed); }
  uint64_t get() const { return v.load(std::memory_order_relaxed); }
};

// One worker's shard and counters. alignas(64): each worker writes its own counters on every
// command, so neighbours in the array must not share a cache line.
struct alignas(64) KvService::WorkerState {
  Keyspace keyspace;         // owner only
  bool sweep_armed = false;  // owner only
  OwnerCounter connections_opened, connections_closed, commands;
};

// The operations of one connection's batch that one other worker owns: the message that
// travels on the channel (by pointer) to that worker and back. Owned by the ConnBatch, which
// does not touch it while it travels (its connection is suspended until it is back).
struct KvService::ShardBatch {
  struct Item {
    Op op;
    uint32_t part;                                // where the result goes: ConnBatch::parts[part]
    size_t key_offset, key_length, value_length;  // in `arena`: the key, then the value
  };
  ConnBatch* conn = nullptr;
  size_t origin = 0;      // the connection's worker
  bool executed = false;  // false: on its way to the owner; true: on its way back
  std::vector<Item> items;
  std::string arena;  // copies of the arguments: the parser's views die with the next parse
};

// One round of a connection's pipeline: its commands, the results of their operations, and the
// ShardBatches for other workers. Owner (connection's worker) only; while a ShardBatch travels,
// its owner writes the `parts` elements its items name, and nothing else.
struct KvService::ConnBatch {
  // How a command's reply is made from its operations' results.
  enum class Kind : uint8_t {
    kNone,    // empty command: no reply
    kSingle,  // the one part's reply
    kSum,     // integer: the parts' counts added (DEL, EXISTS, DBSIZE)
    kArray,   // array of the parts' replies (MGET)
    kOk,      // +OK once every part ran (MSET, FLUSHALL)
  };
  struct Command {
    Kind kind;
    uint32_t first_part;
    uint32_t parts;
  };
  std::vector<Command> commands;
  std::vector<OpResult> parts;
  std::vector<ShardBatch> remote;  // [worker]
  size_t pending = 0;              // ShardBatches not yet back
  std::coroutine_handle<> waiter;  // the connection, suspended until pending == 0

  // Awaits every ShardBatch's return.
  struct Replies {
    ConnBatch* b;
    bool await_ready() const { return b->pending == 0; }
    void await_suspend(std::coroutine_handle<> h) { b->waiter = h; }
    void await_resume() const {}
  };
};

// kv_info.cc: the replies of COMMAND and CONFIG, appended to `out`.
void reply_command(absl::Span<const std::string_view> args, std::string* out);
void reply_config(absl::Span<const std::string_view> args, size_t max_clients, std::string* out);

}  // namespace shardloop::examples::kv
