// The commands of examples/kv_server: the command table (names and redis arities), argument
// checks with redis-server 7's error texts, and the per-key operations a shard executes.
//
// A client command becomes one or more operations (Op), each on one key (or, for DBSIZE and
// FLUSHALL, on one whole shard); the service sends each to the worker that owns its key and
// assembles the reply from the operations' results in command order (see kv_service.h).
//
// Thread-safety: pure functions, except execute_op(), which touches the Keyspace it is given
// (so runs on that keyspace's owner).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "absl/types/span.h"
#include "examples/kv/kv_store.h"

namespace shardloop::examples::kv {

enum class CommandId : uint8_t {
  kPing,
  kEcho,
  kGet,
  kSet,
  kDel,
  kExists,
  kIncr,
  kDecr,
  kMget,
  kMset,
  kExpire,
  kTtl,
  kDbsize,
  kFlushall,
  kInfo,
  kCommand,
  kConfig,
  kQuit,
};

struct CommandSpec {
  std::string_view name;  // lower case, as redis names it in errors
  // Redis arity: n > 0 exactly n arguments (the name included), n < 0 at least -n.
  int arity;
  CommandId id;
};

// Whether `a` equals `lower_b` (lower case) ignoring ASCII case, as redis compares names.
bool equals_ci(std::string_view a, std::string_view lower_b);

// Case-insensitive lookup; nullptr for an unknown command.
const CommandSpec* find_command(std::string_view name);
// Number of commands in the table (COMMAND COUNT).
size_t command_count();
bool arity_ok(const CommandSpec& spec, size_t argc);

// Error messages, without the "ERR " that ReplyWriter::error adds.
std::string wrong_arity_error(std::string_view name);
std::string unknown_command_error(absl::Span<const std::string_view> args);
std::string unknown_subcommand_error(std::string_view sub, std::string_view command);
inline constexpr std::string_view kSyntaxError = "syntax error";
inline constexpr std::string_view kNotIntegerError = "value is not an integer or out of range";
inline constexpr std::string_view kOverflowError = "increment or decrement would overflow";

// One operation on one shard.
enum class OpCode : uint8_t {
  kGet,       // reply: bulk or null
  kSet,       // reply: +OK or null (condition failed)
  kIncrBy,    // reply: integer or error
  kExpire,    // reply: :1 / :0
  kTtl,       // reply: integer seconds, -1, -2
  kDel,       // count: 1 if deleted
  kExists,    // count: 1 if present
  kMsetPair,  // nothing (MSET replies +OK)
  kDbsize,    // count: keys in the shard
  kFlushall,  // nothing
};

struct Op {
  OpCode code = OpCode::kGet;
  uint8_t condition = 0;  // SetCondition for kSet, ExpireCondition for kExpire
  int64_t number = 0;     // kSet/kExpire: absolute deadline in ms (kSet: 0 = none); kIncrBy: delta
};

struct OpResult {
  std::string reply;  // RESP bytes, for ops that answer on their own
  int64_t count = 0;  // for ops whose command sums counts
};

// Parses SET's options (args = the whole command). Returns the error message, or fills `op`
// (deadlines relative to `now` ms).
std::optional<std::string> parse_set(absl::Span<const std::string_view> args, int64_t now, Op* op);
// Likewise for EXPIRE key seconds [NX|XX|GT|LT].
std::optional<std::string> parse_expire(absl::Span<const std::string_view> args, int64_t now,
                                        Op* op);

// Runs `op` on `keyspace` (the owner's), writing `out` (which it resets first).
void execute_op(const Op& op, std::string_view key, std::string_view value, Keyspace& keyspace,
                int64_t now, OpResult* out);

}  // namespace shardloop::examples::kv
