#include "examples/kv/kv_commands.h"

#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "net/protocols/resp_writer.h"

namespace shardloop::examples::kv {
namespace {

constexpr CommandSpec kCommands[] = {
    {"ping", -1, CommandId::kPing},     {"echo", 2, CommandId::kEcho},
    {"get", 2, CommandId::kGet},        {"set", -3, CommandId::kSet},
    {"del", -2, CommandId::kDel},       {"exists", -2, CommandId::kExists},
    {"incr", 2, CommandId::kIncr},      {"decr", 2, CommandId::kDecr},
    {"mget", -2, CommandId::kMget},     {"mset", -3, CommandId::kMset},
    {"expire", -3, CommandId::kExpire}, {"ttl", 2, CommandId::kTtl},
    {"dbsize", 1, CommandId::kDbsize},  {"flushall", -1, CommandId::kFlushall},
    {"info", -1, CommandId::kInfo},     {"command", -1, CommandId::kCommand},
    {"config", -2, CommandId::kConfig}, {"quit", -1, CommandId::kQuit},
};

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

absl::string_view av(std::string_view s) { return absl::string_view(s.data(), s.size()); }

// Redis's checks for a relative expire of `amount` units of `unit_ms`: the result in absolute
// ms, or nullopt when it overflows.
std::optional<int64_t> deadline_after(int64_t amount, int64_t unit_ms, int64_t now) {
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  if (amount > kMax / unit_ms || amount < kMin / unit_ms) return std::nullopt;
  const int64_t ms = amount * unit_ms;
  if ((ms > 0 && now > kMax - ms) || (ms < 0 && now < kMin - ms)) return std::nullopt;
  return now + ms;
}

}  // namespace

bool equals_ci(std::string_view a, std::string_view lower_b) {
  if (a.size() != lower_b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower_b[i]) return false;
  }
  return true;
}

const CommandSpec* find_command(std::string_view name) {
  for (const CommandSpec& c : kCommands) {
    if (equals_ci(name, c.name)) return &c;
  }
  return nullptr;
}

size_t command_count() { return std::size(kCommands); }

bool arity_ok(const CommandSpec& spec, size_t argc) {
  const size_t n = static_cast<size_t>(spec.arity < 0 ? -spec.arity : spec.arity);
  return spec.arity > 0 ? argc == n : argc >= n;
}

std::string wrong_arity_error(std::string_view name) {
  return absl::StrCat("wrong number of arguments for '", av(name), "' command");
}

// redis-server 7: "unknown command '%.128s', with args beginning with: " then "'%.*s' " for each
// argument while fewer than 128 characters have been written.
std::string unknown_command_error(absl::Span<const std::string_view> args) {
  std::string list;
  for (size_t i = 1; i < args.size() && list.size() < 128; ++i) {
    absl::StrAppend(&list, "'", av(args[i].substr(0, 128 - list.size())), "' ");
  }
  return absl::StrCat("unknown command '", av(args[0].substr(0, 128)),
                      "', with args beginning with: ", list);
}

std::string unknown_subcommand_error(std::string_view sub, std::string_view command) {
  std::string upper(command);
  for (char& c : upper) c = static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  return absl::StrCat("unknown subcommand '", av(sub.substr(0, 128)), "'. Try ", upper, " HELP.");
}

// SET key value [NX|XX] [EX seconds|PX milliseconds], as redis parses it: flags first (any
// repeat or conflict is a syntax error), then the number.
std::optional<std::string> parse_set(absl::Span<const std::string_view> args, int64_t now, Op* op) {
  SetCondition condition = SetCondition::kAlways;
  int64_t unit_ms = 0;  // 1000 for EX, 1 for PX
  std::string_view amount;
  for (size_t j = 3; j < args.size(); ++j) {
    const std::string_view a = args[j];
    const bool has_next = j + 1 < args.size();
    if (equals_ci(a, "nx") && condition != SetCondition::kIfPresent) {
      condition = SetCondition::kIfAbsent;
    } else if (equals_ci(a, "xx") && condition != SetCondition::kIfAbsent) {
      condition = SetCondition::kIfPresent;
    } else if ((equals_ci(a, "ex") || equals_ci(a, "px")) && unit_ms == 0 && has_next) {
      unit_ms = lower(a[0]) == 'e' ? 1000 : 1;
      amount = args[++j];
    } else {
      return std::string(kSyntaxError);
    }
  }
  op->code = OpCode::kSet;
  op->condition = static_cast<uint8_t>(condition);
  op->number = Keyspace::kNoExpiry;
  if (unit_ms != 0) {
    std::optional<int64_t> n = parse_int64(amount);
    if (!n) return std::string(kNotIntegerError);
    std::optional<int64_t> deadline = *n > 0 ? deadline_after(*n, unit_ms, now) : std::nullopt;
    if (!deadline) return std::string("invalid expire time in 'set' command");
    op->number = *deadline;
  }
  return std::nullopt;
}

std::optional<std::string> parse_expire(absl::Span<const std::string_view> args, int64_t now,
                                        Op* op) {
  bool nx = false, xx = false, gt = false, lt = false;
  for (size_t j = 3; j < args.size(); ++j) {
    if (equals_ci(args[j], "nx")) {
      nx = true;
    } else if (equals_ci(args[j], "xx")) {
      xx = true;
    } else if (equals_ci(args[j], "gt")) {
      gt = true;
    } else if (equals_ci(args[j], "lt")) {
      lt = true;
    } else {
      return absl::StrCat("Unsupported option ", av(args[j]));
    }
  }
  if (nx && (xx || gt || lt)) {
    return std::string("NX and XX, GT or LT options at the same time are not compatible");
  }
  if (gt && lt) return std::string("GT and LT options at the same time are not compatible");
  std::optional<int64_t> seconds = parse_int64(args[2]);
  if (!seconds) return std::string(kNotIntegerError);
  std::optional<int64_t> deadline = deadline_after(*seconds, 1000, now);
  if (!deadline) return std::string("invalid expire time in 'expire' command");
  const ExpireCondition condition = nx   ? ExpireCondition::kNx
                                    : xx ? ExpireCondition::kXx
                                    : gt ? ExpireCondition::kGt
                                    : lt ? ExpireCondition::kLt
                                         : ExpireCondition::kAlways;
  *op = {
      .code = OpCode::kExpire, .condition = static_cast<uint8_t>(condition), .number = *deadline};
  return std::nullopt;
}

void execute_op(const Op& op, std::string_view key, std::string_view value, Keyspace& keyspace,
                int64_t now, OpResult* out) {
  out->reply.clear();
  out->count = 0;
  resp::ReplyWriter w(&out->reply);
  switch (op.code) {
    case OpCode::kGet:
      if (const std::string* v = keyspace.get(key, now)) {
        w.bulk(*v);
      } else {
        w.null_bulk();
      }
      break;
    case OpCode::kSet:
      if (keyspace.set(key, value, static_cast<SetCondition>(op.condition), op.number, now)) {
        w.simple_string("OK");
      } else {
        w.null_bulk();
      }
      break;
    case OpCode::kIncrBy: {
      int64_t result = 0;
      switch (keyspace.incr_by(key, op.number, now, &result)) {
        case IncrStatus::kOk:
          w.integer(result);
          break;
        case IncrStatus::kNotInteger:
          w.error(kNotIntegerError);
          break;
        case IncrStatus::kOverflow:
          w.error(kOverflowError);
          break;
      }
      break;
    }
    case OpCode::kExpire:
      w.integer(keyspace.expire(key, op.number, static_cast<ExpireCondition>(op.condition), now));
      break;
    case OpCode::kTtl: {
      const int64_t ms = keyspace.ttl_ms(key, now);
      w.integer(ms < 0 ? ms : (ms + 500) / 1000);  // redis rounds to the nearest second
      break;
    }
    case OpCode::kDel:
      out->count = keyspace.del(key, now);
      break;
    case OpCode::kExists:
      out->count = keyspace.exists(key, now);
      break;
    case OpCode::kMsetPair:
      keyspace.set(key, value, SetCondition::kAlways, Keyspace::kNoExpiry, now);
      break;
    case OpCode::kDbsize:
      out->count = static_cast<int64_t>(keyspace.size(now));
      break;
    case OpCode::kFlushall:
      keyspace.clear();
      break;
  }
}

}  // namespace shardloop::examples::kv
