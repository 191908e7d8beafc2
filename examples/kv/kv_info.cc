// The commands about the server rather than the data: INFO, COMMAND and CONFIG.
//
// INFO has the server, clients, stats and keyspace sections, in redis's format ("# Section"
// then "field:value" lines, CRLF, a blank line between sections). Counters come from every
// worker's relaxed single-writer atomics, so the answer is a recent snapshot, not an atomic one.
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "examples/kv/kv_service.h"
#include "examples/kv/kv_service_internal.h"
#include "net/protocols/resp_writer.h"
#include "runtime/worker.h"

namespace shardloop::examples::kv {
namespace {

bool wanted(absl::Span<const std::string_view> args, std::string_view section) {
  if (args.size() == 1) return true;
  for (size_t i = 1; i < args.size(); ++i) {
    if (equals_ci(args[i], section) || equals_ci(args[i], "all") || equals_ci(args[i], "default") ||
        equals_ci(args[i], "everything")) {
      return true;
    }
  }
  return false;
}

void field(std::string* out, std::string_view name, const auto& value) {
  absl::StrAppend(out, absl::string_view(name.data(), name.size()), ":", value, "\r\n");
}

}  // namespace

std::string KvService::info(absl::Span<const std::string_view> args, net::Connection& conn) const {
  uint64_t opened = 0, closed = 0, commands = 0;
  KeyspaceStats keys;
  for (size_t w = 0; w < runtime_.size(); ++w) {
    const WorkerState& ws = workers_[w];
    opened += ws.connections_opened.get();
    closed += ws.connections_closed.get();
    commands += ws.commands.get();
    KeyspaceStats s = ws.keyspace.stats();
    keys.keys += s.keys;
    keys.volatile_keys += s.volatile_keys;
    keys.hits += s.hits;
    keys.misses += s.misses;
    keys.expired += s.expired;
  }
  const ChannelStats channel = channel_.stats();
  const int64_t uptime =
      std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - started_)
          .count();
  auto local = conn.local_address();

  std::string out;
  auto section = [&](std::string_view name, std::string_view title) {
    if (!wanted(args, name)) return false;
    if (!out.empty()) out += "\r\n";
    absl::StrAppend(&out, "# ", absl::string_view(title.data(), title.size()), "\r\n");
    return true;
  };
  if (section("server", "Server")) {
    field(&out, "redis_version", "7.0.0");  // the protocol level it answers like
    field(&out, "server_name", "shardloop-kv");
    field(&out, "redis_mode", "standalone");
    field(&out, "os", "Linux");
    field(&out, "arch_bits", sizeof(void*) * 8);
    field(&out, "multiplexing_api", std::string(backend_name(Worker::current()->backend())));
    field(&out, "process_id", static_cast<int64_t>(::getpid()));
    field(&out, "tcp_port", local.ok() ? local->port() : 0);
    field(&out, "uptime_in_seconds", uptime);
    field(&out, "uptime_in_days", uptime / 86400);
    field(&out, "workers", runtime_.size());
  }
  if (section("clients", "Clients")) {
    field(&out, "connected_clients", opened - std::min(opened, closed));
    field(&out, "maxclients", options_.max_clients);
  }
  if (section("stats", "Stats")) {
    field(&out, "total_connections_received", opened);
    field(&out, "total_commands_processed", commands);
    field(&out, "expired_keys", keys.expired);
    field(&out, "keyspace_hits", keys.hits);
    field(&out, "keyspace_misses", keys.misses);
    field(&out, "cross_worker_messages", channel.sent);
    field(&out, "cross_worker_wakeups", channel.wakeups);
    field(&out, "cross_worker_ring_full", channel.overflowed);
  }
  if (section("keyspace", "Keyspace") && keys.keys > 0) {
    absl::StrAppend(&out, "db0:keys=", keys.keys, ",expires=", keys.volatile_keys,
                    ",avg_ttl=0\r\n");
  }
  return out;
}

// Enough for redis-cli and client libraries: no command docs, an honest count.
void reply_command(absl::Span<const std::string_view> args, std::string* out) {
  resp::ReplyWriter w(out);
  if (args.size() == 1 || equals_ci(args[1], "docs") || equals_ci(args[1], "info") ||
      equals_ci(args[1], "list")) {
    w.array(0);
  } else if (equals_ci(args[1], "count")) {
    w.integer(static_cast<int64_t>(command_count()));
  } else {
    w.error(unknown_subcommand_error(args[1], "command"));
  }
}

// CONFIG GET for the parameters clients ask about (redis-benchmark reads save and appendonly at
// start); nothing can be set.
void reply_config(absl::Span<const std::string_view> args, size_t max_clients, std::string* out) {
  resp::ReplyWriter w(out);
  if (!equals_ci(args[1], "get")) {
    w.error(unknown_subcommand_error(args[1], "config"));
    return;
  }
  if (args.size() < 3) {
    w.error(wrong_arity_error("config|get"));
    return;
  }
  const std::string maxclients = std::to_string(max_clients);
  const std::pair<std::string_view, std::string_view> params[] = {
      {"save", ""}, {"appendonly", "no"}, {"maxclients", maxclients}};
  std::vector<std::string_view> found;
  for (const auto& [name, value] : params) {
    for (size_t i = 2; i < args.size(); ++i) {
      if (args[i] == "*" || equals_ci(args[i], name)) {
        found.push_back(name);
        found.push_back(value);
        break;
      }
    }
  }
  w.array(found.size());
  for (std::string_view s : found) w.bulk(s);
}

}  // namespace shardloop::examples::kv
