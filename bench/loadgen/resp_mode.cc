// loadgen --mode resp: RESP2 commands as redis clients send them (multibulk). --resp_command
// picks them: `mix` (SET, GET, PING in turn), or only `set`, `get` or `ping`. Keys are
// loadgen:key:0 .. loadgen:key:999, values --message_size bytes of a fixed pattern, so every
// reply can be checked: SET -> +OK, GET -> that value or a null bulk (not set yet), PING -> +PONG.
// An error reply or any other reply is a mismatch.
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "bench/loadgen/client_protocol.h"
#include "net/protocols/resp_writer.h"

namespace shardloop::bench {
namespace {

constexpr size_t kKeys = 1000;
// Longest reply line, and deepest array nesting, before the stream is called broken.
constexpr size_t kMaxLine = 64 * 1024;
constexpr int kMaxDepth = 8;

enum class Kind { kSet, kGet, kPing };

// The encoded commands, built once per run and shared, read-only, by every connection (on
// every worker).
struct Commands {
  std::string value;
  std::vector<std::string> set, get;  // per key
  std::string ping;
};

struct Reply {
  char type = 0;               // '+', '-', ':', '$' or '*'
  std::string_view text = {};  // simple string, error, integer, bulk contents
  bool null = false;           // $-1 or *-1
};

constexpr size_t kIncomplete = 0;
constexpr size_t kMalformed = std::string_view::npos;

bool parse_i64(std::string_view s, int64_t* v) {
  bool negative = !s.empty() && s[0] == '-';
  if (negative) s.remove_prefix(1);
  if (s.empty() || s.size() > 18) return false;
  int64_t n = 0;
  for (char c : s) {
    if (c < '0' || c > '9') return false;
    n = n * 10 + (c - '0');
  }
  *v = negative ? -n : n;
  return true;
}

// Parses one reply at the front of `in`: its size, kIncomplete or kMalformed.
size_t parse_reply(std::string_view in, Reply* reply, int depth = 0) {
  const size_t eol = in.find("\r\n");
  if (eol == std::string_view::npos) return in.size() > kMaxLine ? kMalformed : kIncomplete;
  if (eol == 0 || eol > kMaxLine || depth > kMaxDepth) return kMalformed;
  reply->type = in[0];
  reply->text = in.substr(1, eol - 1);
  reply->null = false;
  const size_t line = eol + 2;
  switch (reply->type) {
    case '+':
    case '-':
    case ':':
      return line;
    case '$': {
      int64_t len = 0;
      if (!parse_i64(reply->text, &len) || len < -1) return kMalformed;
      if (len == -1) {
        reply->null = true;
        return line;
      }
      const size_t total = line + static_cast<size_t>(len) + 2;
      if (in.size() < total) return kIncomplete;
      if (in.substr(total - 2, 2) != "\r\n") return kMalformed;
      reply->text = in.substr(line, static_cast<size_t>(len));
      return total;
    }
    case '*': {
      int64_t count = 0;
      if (!parse_i64(reply->text, &count) || count < -1) return kMalformed;
      reply->null = count == -1;
      size_t total = line;
      for (int64_t i = 0; i < count; ++i) {
        Reply element;
        const size_t n = parse_reply(in.substr(total), &element, depth + 1);
        if (n == kIncomplete || n == kMalformed) return n;
        total += n;
      }
      return total;
    }
    default:
      return kMalformed;
  }
}

class RespProtocol final : public ClientProtocol {
 public:
  RespProtocol(std::shared_ptr<const Commands> commands, std::string command)
      : commands_(std::move(commands)), command_(std::move(command)) {}

  void append_request(uint64_t seq, std::string* out) override {
    const size_t key = seq % kKeys;
    switch (kind_of(seq)) {
      case Kind::kSet:
        out->append(commands_->set[key]);
        break;
      case Kind::kGet:
        out->append(commands_->get[key]);
        break;
      case Kind::kPing:
        out->append(commands_->ping);
        break;
    }
  }

  ParseOutcome parse(std::string_view in, absl::FunctionRef<void(uint64_t)> answered) override {
    ParseOutcome r;
    for (;;) {
      Reply reply;
      const size_t n = parse_reply(in.substr(r.consumed), &reply);
      if (n == kIncomplete) return r;
      if (n == kMalformed) {
        r.broken = "resp: a malformed reply";
        return r;
      }
      r.consumed += n;
      if (!expected(kind_of(next_), reply)) ++r.mismatches;
      answered(next_++);
    }
  }

 private:
  Kind kind_of(uint64_t seq) const {
    if (command_ == "set") return Kind::kSet;
    if (command_ == "get") return Kind::kGet;
    if (command_ == "ping") return Kind::kPing;
    static constexpr Kind kMix[] = {Kind::kSet, Kind::kGet, Kind::kPing};
    return kMix[seq % 3];
  }

  bool expected(Kind kind, const Reply& reply) const {
    switch (kind) {
      case Kind::kSet:
        return reply.type == '+' && reply.text == "OK";
      case Kind::kGet:
        return reply.type == '$' && (reply.null || reply.text == commands_->value);
      case Kind::kPing:
        return reply.type == '+' && reply.text == "PONG";
    }
    return false;
  }

  std::shared_ptr<const Commands> commands_;
  std::string command_;
  uint64_t next_ = 0;  // replies come in request order
};

}  // namespace

absl::StatusOr<ProtocolFactory> resp_protocol(const ProtocolOptions& options) {
  const std::string& command = options.resp_command;
  if (command != "mix" && command != "set" && command != "get" && command != "ping") {
    return absl::InvalidArgumentError(
        absl::StrCat("--resp_command must be mix, set, get or ping, not '", command, "'"));
  }
  auto commands = std::make_shared<Commands>();
  commands->value.resize(options.message_size);
  for (size_t i = 0; i < commands->value.size(); ++i) commands->value[i] = pattern_byte(i);
  for (size_t k = 0; k < kKeys; ++k) {
    const std::string key = absl::StrCat("loadgen:key:", k);
    resp::append_command({"SET", key, commands->value}, &commands->set.emplace_back());
    resp::append_command({"GET", key}, &commands->get.emplace_back());
  }
  resp::append_command({"PING"}, &commands->ping);
  std::shared_ptr<const Commands> shared = std::move(commands);
  return ProtocolFactory(
      [shared, command] { return std::make_unique<RespProtocol>(shared, command); });
}

}  // namespace shardloop::bench
