// RESP2 reply writer: exact bytes of every reply type; and round trips through the parser for
// random binary commands, in multibulk form and in quoted inline form.
#include "net/protocols/resp_writer.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "net/protocols/resp_parser.h"
#include "tests/net/test_support.h"
#include "tests/protocols/seed.h"
#include "tests/protocols/transcript.h"

namespace shardloop::resp {
namespace {

TEST(RespWriter, EveryReplyType) {
  std::string out;
  ReplyWriter w(&out);
  w.simple_string("OK");
  w.error("unknown command 'FOO'");
  w.error("-WRONGTYPE Operation against a key holding the wrong kind of value");
  w.integer(0);
  w.integer(-42);
  w.integer(std::numeric_limits<int64_t>::min());
  w.bulk("hello");
  w.bulk(std::string_view("a\r\n\0", 4));
  w.bulk("");
  w.null_bulk();
  w.array(2);
  w.null_array();
  w.array(0);
  using namespace std::string_literals;
  EXPECT_EQ(out,
            "+OK\r\n"
            "-ERR unknown command 'FOO'\r\n"
            "-WRONGTYPE Operation against a key holding the wrong kind of value\r\n"
            ":0\r\n"
            ":-42\r\n"
            ":-9223372036854775808\r\n"
            "$5\r\nhello\r\n"
            "$4\r\na\r\n\0\r\n"
            "$0\r\n\r\n"
            "$-1\r\n"
            "*2\r\n"
            "*-1\r\n"
            "*0\r\n"s);
}

TEST(RespWriter, LineRepliesCannotBeSplit) {
  std::string out;
  ReplyWriter w(&out);
  w.simple_string("a\r\nb");
  w.error("Protocol error: expected '$', got '\n'");
  EXPECT_EQ(out, "+a  b\r\n-ERR Protocol error: expected '$', got ' '\r\n");
}

TEST(RespWriter, ProtocolErrorReplyIsWhatRedisSends) {
  CommandParser p;
  const ParseResult r = p.parse("*x\r\n");
  ASSERT_EQ(r.status, ParseStatus::kError);
  std::string out;
  ReplyWriter(&out).error(r.error);
  EXPECT_EQ(out, "-ERR Protocol error: invalid multibulk length\r\n");
}

// Inline form of `args` with redis-cli-style quoting: every argument in double quotes, bytes
// outside printable ASCII (and the quote and backslash) as escapes.
std::string quote_inline(const std::vector<std::string>& args) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string line;
  for (const std::string& a : args) {
    line += line.empty() ? "\"" : " \"";
    for (char c : a) {
      const auto u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        line += '\\';
        line += c;
      } else if (u < 0x20 || u >= 0x7f) {
        line += "\\x";
        line += kHex[u >> 4];
        line += kHex[u & 15];
      } else {
        line += c;
      }
    }
    line += '"';
  }
  return line + "\r\n";
}

TEST(RespRoundTrip, RandomCommandsBothFormsInRandomPieces) {
  const uint64_t seed = testing::announced_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with SHARDLOOP_TEST_SEED)");
  std::mt19937_64 rng(seed);
  const auto uniform = [&](size_t lo, size_t hi) {
    return std::uniform_int_distribution<size_t>(lo, hi)(rng);
  };
  const int rounds = 300 / testing::kSanitizerScale;
  for (int round = 0; round < rounds; ++round) {
    std::vector<std::vector<std::string>> commands(uniform(1, 6));
    std::vector<bool> inline_form;
    std::string stream;
    for (auto& args : commands) {
      args.resize(uniform(1, 5));
      for (std::string& a : args) {
        a.resize(uniform(0, 40));
        for (char& c : a) c = static_cast<char>(uniform(0, 255));
      }
      inline_form.push_back(uniform(0, 3) == 0);
      if (inline_form.back()) {
        stream += quote_inline(args);
      } else {
        std::vector<std::string_view> views(args.begin(), args.end());
        append_command(views, &stream);
      }
    }
    std::vector<size_t> pieces;
    for (size_t fed = 0; fed < stream.size(); fed += pieces.back())
      pieces.push_back(uniform(1, 30));

    CommandParser parser;
    size_t next = 0;
    testing::Transcript t;
    testing::feed(stream, pieces, &t, [&](std::string_view view) -> long {
      const ParseResult r = parser.parse(view);
      if (r.status == ParseStatus::kNeedMore) return 0;
      EXPECT_EQ(r.status, ParseStatus::kCommand) << r.error;
      if (r.status != ParseStatus::kCommand || next >= commands.size()) return -1;
      EXPECT_EQ(parser.last_was_inline(), inline_form[next]);
      EXPECT_EQ(std::vector<std::string>(parser.args().begin(), parser.args().end()),
                commands[next]);
      ++next;
      return static_cast<long>(r.consumed);
    });
    ASSERT_EQ(next, commands.size());
    ASSERT_EQ(t.back(), "end unconsumed=0");
    ASSERT_FALSE(::testing::Test::HasFailure()) << "round " << round;
  }
}

}  // namespace
}  // namespace shardloop::resp
