// RESP2 command parser: redis-server 7's error messages for every protocol error, multibulk and
// inline commands, quoting, limits, and delivery-independence through transcripts.
#include "net/protocols/resp_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/net/test_support.h"
#include "tests/protocols/seed.h"
#include "tests/protocols/transcript.h"

namespace shardloop::resp {
namespace {

using testing::byte_by_byte;
using testing::resp_transcript;
using testing::to_string;

std::vector<std::string> args_of(const CommandParser& p) {
  return {p.args().begin(), p.args().end()};
}

// ---- Protocol errors ----

struct ErrorCase {
  const char* name;
  std::string input;
  std::string message;
};

void PrintTo(const ErrorCase& c, std::ostream* os) { *os << c.name; }

std::vector<ErrorCase> error_cases() {
  using namespace std::string_literals;
  const std::string kMbulk = "Protocol error: invalid multibulk length";
  const std::string kBulk = "Protocol error: invalid bulk length";
  return {
      {"count_letters", "*abc\r\n", kMbulk},
      {"count_empty", "*\r\n", kMbulk},
      {"count_leading_zero", "*01\r\n", kMbulk},
      {"count_plus", "*+1\r\n", kMbulk},
      {"count_space", "* 1\r\n", kMbulk},
      {"count_trailing_space", "*1 \r\n", kMbulk},
      {"count_minus_zero", "*-0\r\n", kMbulk},
      {"count_over_limit", "*1048577\r\n", kMbulk},
      {"count_overflow", "*99999999999999999999\r\n", kMbulk},
      {"count_cr_without_lf", "*1\rX$1\r\na\r\n", kMbulk},
      {"expected_dollar", "*1\r\nX\r\n", "Protocol error: expected '$', got 'X'"},
      {"expected_dollar_colon", "*2\r\n$1\r\na\r\n:5\r\n", "Protocol error: expected '$', got ':'"},
      {"expected_dollar_cr", "*1\r\n\r\n", "Protocol error: expected '$', got ' '"},
      {"expected_dollar_nested_array", "*1\r\n*1\r\n", "Protocol error: expected '$', got '*'"},
      {"bulk_letters", "*1\r\n$abc\r\n", kBulk},
      {"bulk_negative", "*1\r\n$-1\r\n", kBulk},
      {"bulk_empty", "*1\r\n$\r\n", kBulk},
      {"bulk_leading_zero", "*1\r\n$03\r\nabc\r\n", kBulk},
      {"bulk_over_limit", "*1\r\n$536870913\r\n", kBulk},
      {"bulk_overflow", "*1\r\n$99999999999999999999\r\n", kBulk},
      {"bulk_cr_without_lf", "*1\r\n$1\rXa\r\n", kBulk},
      {"bulk_data_too_long", "*1\r\n$3\r\nabcd\r\n",
       "Protocol error: expected CRLF after bulk string"},
      {"bulk_data_no_crlf", "*1\r\n$3\r\nabcXY", "Protocol error: expected CRLF after bulk string"},
      {"too_big_mbulk_count_partial", "*" + std::string(70000, '1'),
       "Protocol error: too big mbulk count string"},
      {"too_big_mbulk_count_complete", "*" + std::string(70000, '1') + "\r\n",
       "Protocol error: too big mbulk count string"},
      {"too_big_bulk_count_partial", "*1\r\n$" + std::string(70000, '1'),
       "Protocol error: too big bulk count string"},
      {"too_big_bulk_count_garbage", "*1\r\n" + std::string(70000, 'X'),
       "Protocol error: too big bulk count string"},
      {"too_big_inline_partial", std::string(70000, 'A'), "Protocol error: too big inline request"},
      {"too_big_inline_complete", std::string(70000, 'A') + "\r\n",
       "Protocol error: too big inline request"},
      {"unbalanced_double", "SET \"abc\r\n", "Protocol error: unbalanced quotes in request"},
      {"unbalanced_single", "SET 'abc\r\n", "Protocol error: unbalanced quotes in request"},
      {"text_after_double", "SET \"a\"b\r\n", "Protocol error: unbalanced quotes in request"},
      {"text_after_single", "SET 'a'b\r\n", "Protocol error: unbalanced quotes in request"},
      {"escaped_closing_quote", "SET \"abc\\\"\r\n",
       "Protocol error: unbalanced quotes in request"},
      {"backslash_at_end", "SET \"abc\\\r\n", "Protocol error: unbalanced quotes in request"},
      {"after_good_command", "*1\r\n$4\r\nPING\r\n*x\r\n", kMbulk},
  };
}

class RespErrorTest : public ::testing::TestWithParam<ErrorCase> {};

TEST_P(RespErrorTest, RedisMessage) {
  const ErrorCase& c = GetParam();
  const auto t = resp_transcript(c.input, {}, {c.input.size()});
  ASSERT_FALSE(t.empty());
  // The error is the last line; commands before it were delivered.
  EXPECT_EQ(t.back(), "error " + testing::escape(c.message)) << to_string(t);
  EXPECT_FALSE(testing::has_violation(t)) << to_string(t);
}

TEST_P(RespErrorTest, SameVerdictInSmallPieces) {
  const ErrorCase& c = GetParam();
  // Byte by byte costs O(size^2) in the harness (a copy per call); the 70 KB inputs go in 997-byte
  // pieces instead, which still makes the parser judge many unfinished lines.
  const std::vector<size_t> pieces = c.input.size() <= 2000
                                         ? byte_by_byte(c.input.size())
                                         : std::vector<size_t>(c.input.size() / 997 + 1, 997);
  EXPECT_EQ(to_string(resp_transcript(c.input, {}, pieces)),
            to_string(resp_transcript(c.input, {}, {c.input.size()})));
}

TEST_P(RespErrorTest, Sticky) {
  const ErrorCase& c = GetParam();
  CommandParser p;
  std::string_view in = c.input;
  ParseResult r;
  while ((r = p.parse(in)).status == ParseStatus::kCommand) in.remove_prefix(r.consumed);
  ASSERT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(p.parse("*1\r\n$4\r\nPING\r\n").status, ParseStatus::kError);
  p.reset();
  EXPECT_EQ(p.parse("*1\r\n$4\r\nPING\r\n").status, ParseStatus::kCommand);
}

INSTANTIATE_TEST_SUITE_P(All, RespErrorTest, ::testing::ValuesIn(error_cases()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Multibulk ----

TEST(RespParser, MultibulkArgumentsAreViewsIntoTheInput) {
  CommandParser p;
  const std::string in = "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n";
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kCommand) << r.error;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_FALSE(p.last_was_inline());
  EXPECT_EQ(args_of(p), (std::vector<std::string>{"SET", "k", "value"}));
  EXPECT_EQ(p.args()[2].data(), in.data() + in.find("value"));
}

TEST(RespParser, BinarySafeBulkStrings) {
  CommandParser p;
  const std::string value("a\r\nb\0c$*\n", 9);
  const std::string in = "*2\r\n$0\r\n\r\n$9\r\n" + value + "\r\n";
  ASSERT_EQ(p.parse(in).status, ParseStatus::kCommand);
  EXPECT_EQ(args_of(p), (std::vector<std::string>{"", value}));
}

TEST(RespParser, EmptyMultibulkIsAnEmptyCommand) {
  for (const char* in : {"*0\r\n", "*-1\r\n", "*-5\r\n"}) {
    CommandParser p;
    const ParseResult r = p.parse(in);
    ASSERT_EQ(r.status, ParseStatus::kCommand) << in;
    EXPECT_EQ(r.consumed, std::string_view(in).size());
    EXPECT_TRUE(p.args().empty());
  }
}

TEST(RespParser, NeedMoreAtEveryPrefix) {
  const std::string in = "*2\r\n$4\r\nECHO\r\n$5\r\nhello\r\n";
  for (size_t n = 0; n < in.size(); ++n) {
    CommandParser p;
    EXPECT_EQ(p.parse(std::string_view(in).substr(0, n)).status, ParseStatus::kNeedMore) << n;
  }
}

TEST(RespParser, LargeBulkFedInPiecesIsLinear) {
  // 4 MiB in 4 KiB pieces: the parser must not rescan what it has seen (this would take
  // minutes if each call were O(buffered bytes) in the parser's own work).
  const std::string value(4 << 20, 'v');
  const std::string in = "*1\r\n$" + std::to_string(value.size()) + "\r\n" + value + "\r\n";
  CommandParser p;
  ParseResult r;
  size_t n = 0;
  do {
    n = std::min(in.size(), n + 4096);
    r = p.parse(std::string_view(in).substr(0, n));
  } while (r.status == ParseStatus::kNeedMore && n < in.size());
  ASSERT_EQ(r.status, ParseStatus::kCommand);
  EXPECT_EQ(p.args()[0].size(), value.size());
}

// ---- Inline ----

struct InlineCase {
  std::string line;
  std::vector<std::string> args;
};

TEST(RespParser, InlineCommandsAndQuoting) {
  using namespace std::string_literals;
  const std::vector<InlineCase> cases = {
      {"PING\r\n", {"PING"}},
      {"PING\n", {"PING"}},
      {"  set  a   b  \r\n", {"set", "a", "b"}},
      {"\t set\ta\tb\r\n", {"set", "a", "b"}},
      {"\r\n", {}},
      {"\n", {}},
      {"   \r\n", {}},
      {"SET \"a b\" 'c d'\r\n", {"SET", "a b", "c d"}},
      {"ECHO \"\\x41\\x7a\\n\\r\\t\\b\\a\\\\\\\"\\q\"\r\n", {"ECHO", "Az\n\r\t\b\a\\\"q"}},
      {"ECHO \"\\x4g\"\r\n", {"ECHO", "x4g"}},
      {"ECHO 'it\\'s' 'a\\b'\r\n", {"ECHO", "it's", "a\\b"}},
      {"ECHO \"\" ''\r\n", {"ECHO", "", ""}},
      {"ECHO a\"b c\"\r\n", {"ECHO", "ab c"}},
      {"ECHO a'b c'\r\n", {"ECHO", "ab c"}},
      {"ECHO \"a\"\t'b'\r\n", {"ECHO", "a", "b"}},
      {"ECHO \"a\"\x0b"
       "b\r\n",
       {"ECHO", "a", "b"}},
      {"ECHO a\x0b"
       "b\r\n",
       {"ECHO",
        "a\x0b"
        "b"}},
      {"ECHO a\0b\r\n"s, {"ECHO", "a\0b"s}},
      {"GET k\r\r\n", {"GET", "k"}},
      {"$3\r\n", {"$3"}},
  };
  for (const InlineCase& c : cases) {
    CommandParser p;
    const ParseResult r = p.parse(c.line);
    ASSERT_EQ(r.status, ParseStatus::kCommand) << testing::escape(c.line) << " " << r.error;
    EXPECT_EQ(r.consumed, c.line.size());
    EXPECT_TRUE(p.last_was_inline());
    EXPECT_EQ(args_of(p), c.args) << testing::escape(c.line);
  }
}

TEST(RespParser, InlineLineAtTheLimit) {
  Limits limits;
  limits.max_inline_size = 16;
  CommandParser p(limits);
  // 15 bytes + "\r" = 16 bytes before the "\n": allowed.
  EXPECT_EQ(p.parse(std::string(15, 'a') + "\r\n").status, ParseStatus::kCommand);
  CommandParser q(limits);
  EXPECT_EQ(q.parse(std::string(16, 'a') + "\r\n").error, "Protocol error: too big inline request");
  CommandParser partial(limits);
  EXPECT_EQ(partial.parse(std::string(16, 'a')).status, ParseStatus::kNeedMore);
  EXPECT_EQ(partial.parse(std::string(17, 'a')).status, ParseStatus::kError);
}

// ---- Limits and pipelining ----

TEST(RespParser, ConfigurableLimits) {
  Limits limits;
  limits.max_bulk_length = 10;
  limits.max_multibulk_count = 2;
  CommandParser a(limits);
  EXPECT_EQ(a.parse("*1\r\n$10\r\n0123456789\r\n").status, ParseStatus::kCommand);
  CommandParser b(limits);
  EXPECT_EQ(b.parse("*1\r\n$11\r\n").error, "Protocol error: invalid bulk length");
  CommandParser c(limits);
  EXPECT_EQ(c.parse("*2\r\n").status, ParseStatus::kNeedMore);
  CommandParser d(limits);
  EXPECT_EQ(d.parse("*3\r\n").error, "Protocol error: invalid multibulk length");
}

TEST(RespParser, DefaultLimitsMatchRedis) {
  CommandParser a;
  EXPECT_EQ(a.parse("*1048576\r\n").status, ParseStatus::kNeedMore);
  CommandParser b;
  EXPECT_EQ(b.parse("*1\r\n$536870912\r\n").status, ParseStatus::kNeedMore);
}

TEST(RespParser, PipelinedMixOfForms) {
  const std::string in =
      "*1\r\n$4\r\nPING\r\nECHO hi\r\n*0\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\r\nSET a 'b "
      "c'\n*1\r\n$4\r\nPI";
  CommandParser p;
  std::string_view rest = in;
  std::vector<std::string> seen;
  for (;;) {
    const ParseResult r = p.parse(rest);
    if (r.status != ParseStatus::kCommand) {
      EXPECT_EQ(r.status, ParseStatus::kNeedMore);
      break;
    }
    std::string joined;
    for (std::string_view a : p.args()) joined += std::string(a) + "|";
    seen.push_back(joined);
    rest.remove_prefix(r.consumed);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"PING|", "ECHO|hi|", "", "GET|k|", "", "SET|a|b c|"}));
  EXPECT_EQ(rest, "*1\r\n$4\r\nPI");
}

// ---- Delivery independence ----

std::vector<std::string> streams() {
  using namespace std::string_literals;
  std::vector<std::string> s = {
      "*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nvalue\r\n*1\r\n$4\r\nPING\r\n",
      "PING\r\nECHO \"a\\x41 b\" 'x'\nGET k\r\n\r\n*0\r\n",
      "*2\r\n$0\r\n\r\n$3\r\n\r\n\0\r\n"s,
  };
  for (const ErrorCase& e : error_cases()) s.push_back(e.input);
  return s;
}

TEST(RespDelivery, ByteByByteMatchesOneShot) {
  for (const std::string& in : streams()) {
    if (in.size() > 2000) continue;
    const auto whole = resp_transcript(in, {}, {in.size()});
    EXPECT_EQ(to_string(whole), to_string(resp_transcript(in, {}, byte_by_byte(in.size()))))
        << testing::escape(in);
    EXPECT_FALSE(testing::has_violation(whole)) << to_string(whole);
  }
}

TEST(RespDelivery, RandomSplitsMatchOneShot) {
  const uint64_t seed = testing::announced_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with SHARDLOOP_TEST_SEED)");
  Limits small;
  small.max_inline_size = 8;
  small.max_bulk_length = 4;
  small.max_multibulk_count = 2;
  for (int round = 0; round < 30; ++round) {
    for (const std::string& in : streams()) {
      for (const Limits& limits : {Limits{}, small}) {
        ASSERT_EQ(
            to_string(resp_transcript(in, limits, {in.size()})),
            to_string(resp_transcript(in, limits, testing::pieces_from_bytes(in, seed + round))))
            << testing::escape(in.substr(0, 200));
      }
    }
  }
}

}  // namespace
}  // namespace shardloop::resp
