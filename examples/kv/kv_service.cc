#include "examples/kv/kv_service.h"

#include <functional>
#include <string_view>
#include <utility>

#include "absl/time/clock.h"
#include "examples/kv/kv_service_internal.h"
#include "net/protocols/resp_writer.h"
#include "runtime/worker.h"

namespace shardloop::examples::kv {
namespace {

using Kind = KvService::ConnBatch::Kind;

// Due keys one sweep removes at most, so a sweep stays short; the rest wait for the next tick
// (or for an access, which expires them lazily).
constexpr size_t kSweepLimit = 1000;
// A connection's input buffer is given back when idle and larger than this.
constexpr size_t kKeepInputCapacity = 64 * 1024;

// Counts a client's departure however its coroutine ends (finished, or destroyed by a stop).
struct ClientGuard {
  OwnerCounter* closed;
  ~ClientGuard() { closed->add(); }
};

void reset(KvService::ConnBatch& b) {
  b.commands.clear();
  b.parts.clear();
  for (KvService::ShardBatch& sb : b.remote) {
    sb.items.clear();
    sb.arena.clear();
    if (sb.arena.capacity() > kKeepInputCapacity) std::string().swap(sb.arena);
  }
}

// The reply of every command of the batch, in order.
void assemble(const KvService::ConnBatch& b, std::string* out) {
  resp::ReplyWriter w(out);
  for (const KvService::ConnBatch::Command& c : b.commands) {
    const auto first = b.parts.begin() + c.first_part;
    switch (c.kind) {
      case Kind::kNone:
        break;
      case Kind::kSingle:
        out->append(first->reply);
        break;
      case Kind::kSum: {
        int64_t sum = 0;
        for (auto p = first; p != first + c.parts; ++p) sum += p->count;
        w.integer(sum);
        break;
      }
      case Kind::kArray:
        w.array(c.parts);
        for (auto p = first; p != first + c.parts; ++p) out->append(p->reply);
        break;
      case Kind::kOk:
        w.simple_string("OK");
        break;
    }
  }
}

// A reply computed on the spot: one part of kind kSingle, whose reply string is returned.
std::string& direct(KvService::ConnBatch& b) {
  b.commands.push_back({Kind::kSingle, static_cast<uint32_t>(b.parts.size()), 1});
  return b.parts.emplace_back().reply;
}

void begin(KvService::ConnBatch& b, Kind kind) {
  b.commands.push_back({kind, static_cast<uint32_t>(b.parts.size()), 0});
}

}  // namespace

net::ServerOptions server_options(const KvOptions& options) {
  net::ServerOptions s;
  s.max_connections = options.max_clients;
  s.refusal_message = "-ERR max number of clients reached\r\n";
  return s;
}

KvService::KvService(Runtime& runtime, KvOptions options)
    : runtime_(runtime),
      options_(options),
      workers_(std::make_unique<WorkerState[]>(runtime.size())),
      channel_(runtime, [this](size_t from, ShardBatch* sb) { on_message(from, sb); },
               {.capacity = options.channel_capacity}),
      started_(std::chrono::steady_clock::now()) {}

KvService::~KvService() = default;

size_t KvService::owner_of(std::string_view key) const {
  // std::hash, not the keyspace's absl::Hash: if the owner were absl::Hash modulo n, every key
  // of a shard would share the hash's low bits, which the hash table uses too.
  return std::hash<std::string_view>{}(key) % runtime_.size();
}

void KvService::route(ConnBatch& b, const Op& op, std::string_view key, std::string_view value) {
  route_to(b, owner_of(key), op, key, value);
}

void KvService::route_to(ConnBatch& b, size_t to, const Op& op, std::string_view key,
                         std::string_view value) {
  const uint32_t part = static_cast<uint32_t>(b.parts.size());
  b.parts.emplace_back();
  ++b.commands.back().parts;
  const size_t me = Worker::current()->index();
  if (to == me) {
    execute_op(op, key, value, workers_[me].keyspace, now_ms(), &b.parts[part]);
    return;
  }
  ShardBatch& sb = b.remote[to];
  sb.items.push_back({.op = op,
                      .part = part,
                      .key_offset = sb.arena.size(),
                      .key_length = key.size(),
                      .value_length = value.size()});
  sb.arena.append(key);
  sb.arena.append(value);
}

bool KvService::dispatch(absl::Span<const std::string_view> args, ConnBatch& b,
                         net::Connection& conn) {
  if (args.empty()) {  // `*0`, `*-1` or a blank inline line: redis ignores it
    b.commands.push_back({Kind::kNone, 0, 0});
    return true;
  }
  workers_[Worker::current()->index()].commands.add();
  const CommandSpec* spec = find_command(args[0]);
  if (spec == nullptr) {
    resp::ReplyWriter(&direct(b)).error(unknown_command_error(args));
    return true;
  }
  if (!arity_ok(*spec, args.size()) || (spec->id == CommandId::kPing && args.size() > 2) ||
      (spec->id == CommandId::kMset && args.size() % 2 == 0)) {
    resp::ReplyWriter(&direct(b)).error(wrong_arity_error(spec->name));
    return true;
  }
  const int64_t now = now_ms();
  Op op;
  switch (spec->id) {
    case CommandId::kPing:
      if (args.size() == 1) {
        resp::ReplyWriter(&direct(b)).simple_string("PONG");
      } else {
        resp::ReplyWriter(&direct(b)).bulk(args[1]);
      }
      break;
    case CommandId::kEcho:
      resp::ReplyWriter(&direct(b)).bulk(args[1]);
      break;
    case CommandId::kGet:
    case CommandId::kTtl:
      begin(b, Kind::kSingle);
      route(b, {.code = spec->id == CommandId::kGet ? OpCode::kGet : OpCode::kTtl}, args[1]);
      break;
    case CommandId::kSet:
      if (auto error = parse_set(args, now, &op)) {
        resp::ReplyWriter(&direct(b)).error(*error);
      } else {
        begin(b, Kind::kSingle);
        route(b, op, args[1], args[2]);
      }
      break;
    case CommandId::kIncr:
    case CommandId::kDecr:
      begin(b, Kind::kSingle);
      route(b, {.code = OpCode::kIncrBy, .number = spec->id == CommandId::kIncr ? 1 : -1}, args[1]);
      break;
    case CommandId::kExpire:
      if (auto error = parse_expire(args, now, &op)) {
        resp::ReplyWriter(&direct(b)).error(*error);
      } else {
        begin(b, Kind::kSingle);
        route(b, op, args[1]);
      }
      break;
    case CommandId::kDel:
    case CommandId::kExists:
    case CommandId::kMget: {
      const Kind kind = spec->id == CommandId::kMget ? Kind::kArray : Kind::kSum;
      op.code = spec->id == CommandId::kDel      ? OpCode::kDel
                : spec->id == CommandId::kExists ? OpCode::kExists
                                                 : OpCode::kGet;
      begin(b, kind);
      for (size_t i = 1; i < args.size(); ++i) route(b, op, args[i]);
      break;
    }
    case CommandId::kMset:
      begin(b, Kind::kOk);
      for (size_t i = 1; i + 1 < args.size(); i += 2) {
        route(b, {.code = OpCode::kMsetPair}, args[i], args[i + 1]);
      }
      break;
    case CommandId::kDbsize:
    case CommandId::kFlushall:
      if (spec->id == CommandId::kFlushall &&
          (args.size() > 2 ||
           (args.size() == 2 && !equals_ci(args[1], "async") && !equals_ci(args[1], "sync")))) {
        resp::ReplyWriter(&direct(b)).error(kSyntaxError);
        break;
      }
      begin(b, spec->id == CommandId::kDbsize ? Kind::kSum : Kind::kOk);
      op.code = spec->id == CommandId::kDbsize ? OpCode::kDbsize : OpCode::kFlushall;
      for (size_t w = 0; w < runtime_.size(); ++w) route_to(b, w, op, {}, {});
      break;
    case CommandId::kInfo:
      resp::ReplyWriter(&direct(b)).bulk(info(args, conn));
      break;
    case CommandId::kCommand:
      reply_command(args, &direct(b));
      break;
    case CommandId::kConfig:
      reply_config(args, options_.max_clients, &direct(b));
      break;
    case CommandId::kQuit:
      resp::ReplyWriter(&direct(b)).simple_string("OK");
      return false;
  }
  return true;
}

void KvService::on_message(size_t from, ShardBatch* sb) {
  const size_t me = Worker::current()->index();
  if (!sb->executed) {
    // On the owner: run the operations in order, writing each result where the connection
    // will read it, then send the batch home.
    Keyspace& keyspace = workers_[me].keyspace;
    const int64_t now = now_ms();
    const std::string_view arena = sb->arena;
    for (const ShardBatch::Item& item : sb->items) {
      execute_op(item.op, arena.substr(item.key_offset, item.key_length),
                 arena.substr(item.key_offset + item.key_length, item.value_length), keyspace, now,
                 &sb->conn->parts[item.part]);
    }
    sb->executed = true;
    arm_sweep(me);
    channel_.send(sb->origin, sb);
    return;
  }
  // Home again (from == the owner): wake the connection once the last one is back.
  ConnBatch* b = sb->conn;
  if (--b->pending == 0 && b->waiter) Worker::current()->schedule(std::exchange(b->waiter, {}));
}

void KvService::arm_sweep(size_t w) {
  WorkerState& ws = workers_[w];
  if (ws.sweep_armed || !ws.keyspace.has_volatile_keys()) return;
  ws.sweep_armed = true;
  runtime_.worker(w).add_timer(Clock::now() + options_.sweep_interval, [this, w] {
    WorkerState& ws = workers_[w];
    ws.sweep_armed = false;
    ws.keyspace.sweep(now_ms(), kSweepLimit);
    arm_sweep(w);
  });
}

Task<void> KvService::serve(net::Connection conn) {
  const size_t me = Worker::current()->index();
  WorkerState& ws = workers_[me];
  ws.connections_opened.add();
  ClientGuard guard{&ws.connections_closed};
  resp::CommandParser parser(options_.limits);
  std::string in, out, protocol_error;
  ConnBatch batch;
  batch.remote.resize(runtime_.size());
  bool quit = false;
  for (;;) {
    // 1. Parse and dispatch what has arrived, up to kMaxBatch commands.
    reset(batch);
    size_t consumed = 0;
    bool full = false;
    while (!quit) {
      if (batch.commands.size() == kMaxBatch) {
        full = true;
        break;
      }
      resp::ParseResult r = parser.parse(std::string_view(in).substr(consumed));
      if (r.status == resp::ParseStatus::kNeedMore) break;
      if (r.status == resp::ParseStatus::kError) {
        protocol_error = std::string(r.error);  // answered after the commands before it
        break;
      }
      if (!dispatch(parser.args(), batch, conn)) quit = true;
      consumed += r.consumed;
    }
    in.erase(0, consumed);  // the remote operations hold copies of their arguments
    arm_sweep(me);
    // 2. Send the other workers their operations; wait until every batch is back.
    for (size_t w = 0; w < batch.remote.size(); ++w) {
      ShardBatch& sb = batch.remote[w];
      if (sb.items.empty()) continue;
      sb.conn = &batch;
      sb.origin = me;
      sb.executed = false;
      ++batch.pending;
      channel_.send(w, &sb);
    }
    channel_.flush();
    co_await ConnBatch::Replies{&batch};
    // 3. Reply in command order, in one write.
    assemble(batch, &out);
    if (!protocol_error.empty()) resp::ReplyWriter(&out).error(protocol_error);
    if (!out.empty()) {
      if (!(co_await conn.write(out)).ok()) break;
      out.clear();
    }
    if (quit || !protocol_error.empty()) break;
    if (full) continue;
    if (in.empty() && in.capacity() > kKeepInputCapacity) std::string().swap(in);
    auto chunk = co_await conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;
    in.append(chunk->data(), chunk->size());
  }
  if (!protocol_error.empty()) {
    // As redis does, the error is the last thing the client gets. Lingering close (as
    // http_server does): FIN after the answer, then discard what the client still sends for up
    // to 1 s / 64 KiB, so closing with unread bytes does not RST the answer away.
    if ((co_await conn.shutdown_write()).ok()) {
      conn.set_deadline(absl::Now() + absl::Seconds(1));
      size_t discarded = 0;
      while (discarded < kKeepInputCapacity) {
        auto chunk = co_await conn.read_chunk();
        if (!chunk.ok() || chunk->empty()) break;
        discarded += chunk->size();
      }
    }
    conn.close();
    co_return;
  }
  (void)co_await conn.finish();
}

}  // namespace shardloop::examples::kv
