// HTTP/1.1 request parser: every rejection, the happy paths, and delivery-independence (byte by
// byte, split at every offset, random splits) through transcripts.
#include "net/protocols/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>
#include <vector>

#include "tests/net/test_support.h"
#include "tests/protocols/seed.h"
#include "tests/protocols/transcript.h"

namespace shardloop::http {
namespace {

using testing::byte_by_byte;
using testing::http_transcript;
using testing::to_string;

std::string req(std::string_view head_lines, std::string_view body = "") {
  return std::string(head_lines) + "\r\n" + std::string(body);
}

// ---- Rejections ----

struct Reject {
  const char* name;
  std::string input;
  int status;
  const char* reason;  // substring of error_reason
};

void PrintTo(const Reject& r, std::ostream* os) { *os << r.name; }

std::vector<Reject> rejections() {
  using namespace std::string_literals;
  const std::string ok = "GET / HTTP/1.1\r\nHost: a\r\n";
  return {
      // Line structure.
      {"obs_fold", ok + "X: a\r\n  folded\r\n\r\n", 400, "obs-fold"},
      {"obs_fold_tab", ok + "X: a\r\n\tfolded\r\n\r\n", 400, "obs-fold"},
      {"leading_ws_first_field", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 400, "obs-fold"},
      {"bare_cr_in_value", ok + "X: a\rb\r\n\r\n", 400, "bare CR"},
      {"bare_cr_as_line_end", "GET / HTTP/1.1\r\nHost: a\rX: b\r\n\r\n", 400, "bare CR"},
      {"bare_cr_request_line", "GET / HTTP/1.1\rHost: a\r\n\r\n", 400, "bare CR"},
      {"bare_cr_in_target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n", 400, "bare CR"},
      {"bare_lf_request_line", "GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "CRLF"},
      {"bare_lf_header", "GET / HTTP/1.1\r\nHost: a\n\r\n", 400, "CRLF"},
      {"bare_lf_end_of_head", ok + "\n", 400, "CRLF"},
      {"nul_in_value", ok + "X: a\0b\r\n\r\n"s, 400, "NUL"},
      {"nul_only_value", ok + "X: \0\r\n\r\n"s, 400, "NUL"},
      {"nul_in_name", ok + "X\0Y: a\r\n\r\n"s, 400, "field name"},
      {"nul_in_target", "GET /\0 HTTP/1.1\r\nHost: a\r\n\r\n"s, 400, "request-target"},
      {"nul_in_method", "G\0T / HTTP/1.1\r\nHost: a\r\n\r\n"s, 400, "method"},
      {"ctl_in_value", ok + "X: a\x01\r\n\r\n", 400, "control"},
      {"del_in_value", ok + "X: a\x7f\r\n\r\n", 400, "control"},
      {"esc_in_value", ok + "X: \x1b[31m\r\n\r\n", 400, "control"},
      // Field names.
      {"ws_before_colon", ok + "X : a\r\n\r\n", 400, "whitespace before colon"},
      {"tab_before_colon", ok + "X\t: a\r\n\r\n", 400, "whitespace before colon"},
      {"host_ws_before_colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "before colon"},
      {"empty_name", ok + ": a\r\n\r\n", 400, "empty field name"},
      {"no_colon", ok + "X a\r\n\r\n", 400, "without colon"},
      {"name_with_slash", ok + "X/Y: a\r\n\r\n", 400, "field name"},
      {"name_with_space", ok + "X Y: a\r\n\r\n", 400, "field name"},
      {"name_with_quote", ok + "\"X\": a\r\n\r\n", 400, "field name"},
      {"name_with_obs_text", ok + "X\xe9: a\r\n\r\n", 400, "field name"},
      // Request line.
      {"http09", "GET /\r\n\r\n", 400, "malformed request line"},
      {"no_spaces", "GET\r\n\r\n", 400, "malformed request line"},
      {"double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "malformed request line"},
      {"trailing_space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, "version"},
      {"tab_separator", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
      {"empty_method", " / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
      {"method_paren", "G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
      {"method_at", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
      {"method_obs_text", "G\xc3\xa9T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "method"},
      {"lowercase_http", "GET / http/1.1\r\nHost: a\r\n\r\n", 400, "version"},
      {"version_two_digits", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", 400, "version"},
      {"version_no_dot", "GET / HTTP/11\r\nHost: a\r\n\r\n", 400, "version"},
      {"version_letter", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400, "version"},
      {"version_missing", "GET / \r\nHost: a\r\n\r\n", 400, "version"},
      {"target_relative", "GET abc HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target"},
      {"target_space_in_target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400, "version"},
      {"target_obs_text", "GET /\xe9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "request-target"},
      {"asterisk_not_options", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400, "OPTIONS"},
      {"connect_origin_form", "CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "CONNECT"},
      {"connect_no_port", "CONNECT example.com HTTP/1.1\r\nHost: a\r\n\r\n", 400, "CONNECT"},
      {"too_many_empty_lines", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400,
       "empty lines"},
      // Host.
      {"missing_host", "GET / HTTP/1.1\r\nX: a\r\n\r\n", 400, "missing Host"},
      {"missing_host_no_fields", "GET / HTTP/1.1\r\n\r\n", 400, "missing Host"},
      {"duplicate_host", ok + "Host: b\r\n\r\n", 400, "duplicate Host"},
      {"duplicate_host_case", ok + "hOsT: a\r\n\r\n", 400, "duplicate Host"},
      {"host_with_space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400, "invalid Host"},
      {"host_with_slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400, "invalid Host"},
      {"host_with_at", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400, "invalid Host"},
      {"host_duplicate_10", "GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n", 400, "duplicate Host"},
      // Content-Length.
      {"duplicate_cl", ok + "Content-Length: 1\r\nContent-Length: 1\r\n\r\na", 400, "duplicate"},
      {"duplicate_cl_differ", ok + "Content-Length: 1\r\ncontent-length: 2\r\n\r\nab", 400,
       "duplicate"},
      {"cl_list", ok + "Content-Length: 1, 1\r\n\r\na", 400, "invalid Content-Length"},
      {"cl_letters", ok + "Content-Length: abc\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_negative", ok + "Content-Length: -1\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_plus", ok + "Content-Length: +1\r\n\r\na", 400, "invalid Content-Length"},
      {"cl_hex", ok + "Content-Length: 0x10\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_inner_space", ok + "Content-Length: 1 2\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_empty", ok + "Content-Length:\r\n\r\n", 400, "invalid Content-Length"},
      {"cl_blank", ok + "Content-Length:   \r\n\r\n", 400, "invalid Content-Length"},
      {"cl_decimal", ok + "Content-Length: 1.0\r\n\r\n", 400, "invalid Content-Length"},
      // Transfer-Encoding.
      {"cl_and_te", ok + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "Content-Length with Transfer-Encoding"},
      {"te_and_cl", ok + "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n", 400,
       "Content-Length with Transfer-Encoding"},
      {"te_gzip_only", ok + "Transfer-Encoding: gzip\r\n\r\n", 400, "final"},
      {"te_chunked_then_gzip", ok + "Transfer-Encoding: chunked, gzip\r\n\r\n", 400, "final"},
      {"te_chunked_twice", ok + "Transfer-Encoding: chunked, chunked\r\n\r\n0\r\n\r\n", 400,
       "more than once"},
      {"te_chunked_two_lines",
       ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "more than once"},
      {"te_chunked_then_gzip_lines",
       ok + "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n", 400, "final"},
      {"te_empty", ok + "Transfer-Encoding:\r\n\r\n", 400, "final"},
      {"te_chunked_param", ok + "Transfer-Encoding: chunked;q=1\r\n\r\n", 400, "final"},
      {"te_chunked_quoted", ok + "Transfer-Encoding: \"chunked\"\r\n\r\n", 400, "Transfer-Enc"},
      {"te_identity", ok + "Transfer-Encoding: identity\r\n\r\n", 400, "final"},
      {"te_in_http10", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400,
       "HTTP/1.0"},
      {"te_gzip_chunked", ok + "Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501,
       "unsupported transfer coding"},
      {"te_two_lines_gzip_chunked",
       ok + "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 501,
       "unsupported"},
      // Chunk framing.
      {"chunk_size_not_hex", ok + "Transfer-Encoding: chunked\r\n\r\nx\r\n", 400, "chunk size"},
      {"chunk_size_empty", ok + "Transfer-Encoding: chunked\r\n\r\n\r\n", 400, "chunk size"},
      {"chunk_size_negative", ok + "Transfer-Encoding: chunked\r\n\r\n-1\r\n", 400, "chunk size"},
      {"chunk_size_0x", ok + "Transfer-Encoding: chunked\r\n\r\n0x5\r\n", 400, "chunk size"},
      {"chunk_size_trailing_ws", ok + "Transfer-Encoding: chunked\r\n\r\n5 \r\nhello\r\n", 400,
       "chunk size"},
      {"chunk_size_leading_ws", ok + "Transfer-Encoding: chunked\r\n\r\n 5\r\nhello\r\n", 400,
       "chunk size"},
      {"chunk_ext_ctl", ok + "Transfer-Encoding: chunked\r\n\r\n5;a=\x01\r\nhello\r\n", 400,
       "extension"},
      {"chunk_ext_nul", ok + "Transfer-Encoding: chunked\r\n\r\n5;\0\r\nhello\r\n"s, 400,
       "extension"},
      {"chunk_size_bare_lf", ok + "Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n", 400, "CRLF"},
      {"chunk_data_too_long", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello!\r\n", 400,
       "not followed by CRLF"},
      {"chunk_data_bare_lf", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n", 400,
       "not followed by CRLF"},
      {"chunk_data_short", ok + "Transfer-Encoding: chunked\r\n\r\n5\r\nhey\r\n0\r\n\r\n", 400,
       "not followed by CRLF"},
      {"trailer_obs_fold", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: a\r\n b\r\n\r\n", 400,
       "obs-fold"},
      {"trailer_nul", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: \0\r\n\r\n"s, 400, "NUL"},
      {"trailer_bare_lf", ok + "Transfer-Encoding: chunked\r\n\r\n0\r\nT: a\n\r\n", 400, "CRLF"},
      // 505.
      {"http20", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, "version"},
      {"http12", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505, "version"},
      {"http09_versioned", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", 505, "version"},
      {"http31", "GET / HTTP/3.1\r\nHost: a\r\n\r\n", 505, "version"},
  };
}

class RejectionTest : public ::testing::TestWithParam<Reject> {};

TEST_P(RejectionTest, RejectedWithStatusAndMustClose) {
  const Reject& c = GetParam();
  RequestParser p;
  const ParseResult r = p.parse(c.input);
  ASSERT_EQ(r.status, ParseStatus::kError) << testing::escape(c.input);
  EXPECT_EQ(r.error_status, c.status) << r.error_reason;
  EXPECT_NE(r.error_reason.find(c.reason), std::string_view::npos) << r.error_reason;
  EXPECT_TRUE(r.must_close);
  // Sticky: the same answer again, whatever follows.
  const ParseResult again = p.parse(c.input + "GET / HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(again.status, ParseStatus::kError);
  EXPECT_EQ(again.error_status, c.status);
}

TEST_P(RejectionTest, SameVerdictByteByByte) {
  const Reject& c = GetParam();
  const auto whole = http_transcript(c.input, {}, {c.input.size()});
  const auto bytes = http_transcript(c.input, {}, byte_by_byte(c.input.size()));
  EXPECT_EQ(to_string(whole), to_string(bytes));
  EXPECT_FALSE(testing::has_violation(whole)) << to_string(whole);
}

INSTANTIATE_TEST_SUITE_P(All, RejectionTest, ::testing::ValuesIn(rejections()),
                         [](const auto& info) { return std::string(info.param.name); });

// ---- Limits ----

TEST(HttpLimits, UriAtLimitPassesOneMoreIs414) {
  Limits limits;
  limits.max_uri_bytes = 100;
  const std::string at = "/" + std::string(99, 'a');
  RequestParser p(limits);
  EXPECT_EQ(p.parse(req("GET " + at + " HTTP/1.1\r\nHost: a\r\n")).status, ParseStatus::kComplete);
  RequestParser q(limits);
  const ParseResult r = q.parse(req("GET " + at + "b HTTP/1.1\r\nHost: a\r\n"));
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 414);
}

TEST(HttpLimits, DefaultUriLimitIs8KiB) {
  const std::string at = "/" + std::string(8 * 1024 - 1, 'a');
  RequestParser p;
  EXPECT_EQ(p.parse(req("GET " + at + " HTTP/1.1\r\nHost: a\r\n")).status, ParseStatus::kComplete);
  RequestParser q;
  EXPECT_EQ(q.parse(req("GET " + at + "a HTTP/1.1\r\nHost: a\r\n")).error_status, 414);
}

TEST(HttpLimits, UnfinishedLongRequestLineIs414BeforeItEnds) {
  Limits limits;
  limits.max_uri_bytes = 100;
  RequestParser p(limits);
  // No line end yet: refused as soon as the line outgrows the limit, without waiting for more.
  const std::string partial = "GET /" + std::string(200, 'a');
  const ParseResult r = p.parse(partial);
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 414);
  RequestParser q(limits);
  EXPECT_EQ(q.parse("GET /" + std::string(150, 'a')).status, ParseStatus::kNeedMore);
}

TEST(HttpLimits, HeaderSectionAtLimitPassesOneMoreIs431) {
  Limits limits;
  limits.max_header_bytes = 64;
  // Header section = "Host: a\r\n" (9) + "X: <v>\r\n" (5 + n) + "\r\n" (2) = 16 + n.
  const std::string fits = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(48, 'v') + "\r\n\r\n";
  RequestParser p(limits);
  EXPECT_EQ(p.parse(fits).status, ParseStatus::kComplete);
  const std::string over = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(49, 'v') + "\r\n\r\n";
  RequestParser q(limits);
  const ParseResult r = q.parse(over);
  EXPECT_EQ(r.error_status, 431);
  EXPECT_TRUE(r.must_close);
}

TEST(HttpLimits, DefaultHeaderLimitIs8KiBAndUnfinishedHeadersAreRefusedEarly) {
  RequestParser p;
  const std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(9000, 'v');
  const ParseResult r = p.parse(big);  // no line end yet
  EXPECT_EQ(r.status, ParseStatus::kError);
  EXPECT_EQ(r.error_status, 431);
  RequestParser q;
  const std::string many_lines = "GET / HTTP/1.1\r\nHost: a\r\n" + [] {
    std::string s;
    for (int i = 0; i < 90; ++i)
      s += "X-Field-" + std::to_string(i) + ": " + std::string(80, 'v') + "\r\n";
    return s;
  }() + "\r\n";
  EXPECT_EQ(q.parse(many_lines).error_status, 431);
}

TEST(HttpLimits, TooManyHeaderFieldsIs431) {
  Limits limits;
  limits.max_header_count = 3;
  RequestParser p(limits);
  EXPECT_EQ(p.parse(req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n")).status,
            ParseStatus::kComplete);
  RequestParser q(limits);
  EXPECT_EQ(q.parse(req("GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n")).error_status,
            431);
}

TEST(HttpLimits, ContentLengthOverLimitIs413WithoutWaitingForTheBody) {
  Limits limits;
  limits.max_body_bytes = 10;
  RequestParser p(limits);
  EXPECT_EQ(
      p.parse(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n", "0123456789")).status,
      ParseStatus::kComplete);
  RequestParser q(limits);
  const ParseResult r = q.parse(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n"));
  EXPECT_EQ(r.error_status, 413);
  EXPECT_TRUE(r.must_close);
  RequestParser huge;
  EXPECT_EQ(huge.parse(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: "
                           "99999999999999999999999999\r\n"))
                .error_status,
            413);
}

TEST(HttpLimits, ChunkedBodyOverLimitIs413) {
  Limits limits;
  limits.max_body_bytes = 8;
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  RequestParser p(limits);
  EXPECT_EQ(p.parse(head + "4\r\nabcd\r\n4\r\nefgh\r\n0\r\n\r\n").status, ParseStatus::kComplete);
  RequestParser q(limits);
  // Refused at the chunk-size line that would pass the limit, before its data arrives.
  EXPECT_EQ(q.parse(head + "4\r\nabcd\r\n5\r\n").error_status, 413);
  RequestParser r(limits);
  EXPECT_EQ(r.parse(head + "ffffffffffffffffffffffffffff\r\n").error_status, 413);
}

TEST(HttpLimits, ChunkLineTooLongIs400) {
  Limits limits;
  limits.max_chunk_line_bytes = 16;
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  RequestParser p(limits);
  EXPECT_EQ(p.parse(head + "1;" + std::string(40, 'e')).error_status, 400);
}

TEST(HttpLimits, TrailerSectionHasItsOwnLimit) {
  Limits limits;
  limits.max_header_bytes = 40;
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  RequestParser p(limits);
  EXPECT_EQ(p.parse(head + "0\r\nT: " + std::string(30, 'v') + "\r\n\r\n").status,
            ParseStatus::kComplete);
  RequestParser q(limits);
  EXPECT_EQ(q.parse(head + "0\r\nT: " + std::string(40, 'v') + "\r\n\r\n").error_status, 431);
}

// ---- Happy paths ----

TEST(HttpParser, SimpleGet) {
  RequestParser p;
  const std::string in = "GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_FALSE(r.must_close);
  const Request& q = p.request();
  EXPECT_EQ(q.method, "GET");
  EXPECT_EQ(q.target, "/index.html?q=1");
  EXPECT_EQ(q.version_minor, 1);
  ASSERT_EQ(q.headers.size(), 2u);
  EXPECT_EQ(q.headers[0].name, "Host");
  EXPECT_EQ(q.headers[0].value, "example.com");
  EXPECT_TRUE(q.body.empty());
  EXPECT_TRUE(q.keep_alive);
  EXPECT_FALSE(q.chunked);
  // Zero copy: the views point into the input.
  EXPECT_EQ(q.method.data(), in.data());
  EXPECT_EQ(q.headers[1].value.data(), in.data() + in.find("*/*"));
}

TEST(HttpParser, HeaderLookupIsCaseInsensitiveAndValuesAreTrimmed) {
  RequestParser p;
  const std::string in =
      req("GET / HTTP/1.1\r\nhOsT: a\r\nX-Thing: \t value with  spaces \t\r\n"
          "x-thing: second\r\nEmpty:\r\nObs: caf\xc3\xa9\r\n");
  ASSERT_EQ(p.parse(in).status, ParseStatus::kComplete);
  const Request& q = p.request();
  EXPECT_EQ(q.header("HOST"), "a");
  EXPECT_EQ(q.header("x-THING"), "value with  spaces");  // the first of the repeats
  EXPECT_EQ(q.headers[2].value, "second");
  EXPECT_EQ(q.header("empty"), "");
  EXPECT_EQ(q.header("obs"), "caf\xc3\xa9");
  EXPECT_EQ(q.header("missing"), std::nullopt);
}

TEST(HttpParser, ContentLengthBodyIsAViewIntoTheInput) {
  RequestParser p;
  const std::string in =
      req("POST /submit HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n", "hello world");
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
  EXPECT_EQ(r.consumed, in.size());
  EXPECT_EQ(p.request().body, "hello world");
  EXPECT_EQ(p.request().body.data(), in.data() + in.size() - 11);
}

TEST(HttpParser, ContentLengthZeroAndLeadingZeros) {
  RequestParser p;
  ASSERT_EQ(p.parse(req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n")).status,
            ParseStatus::kComplete);
  EXPECT_TRUE(p.request().body.empty());
  RequestParser q;
  const std::string in = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 003\r\n", "abc");
  ASSERT_EQ(q.parse(in).status, ParseStatus::kComplete);
  EXPECT_EQ(q.request().body, "abc");
}

TEST(HttpParser, ChunkedBodyWithExtensionsAndTrailers) {
  RequestParser p;
  const std::string in = req("POST /up HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: Chunked\r\n",
                             "5;name=value;flag\r\nhello\r\n"
                             "1 ; spaced = \"quoted\"\r\n \r\n"
                             "A\r\n0123456789\r\n"
                             "0;last\r\nChecksum: abc\r\nX-Trailer: 1\r\n\r\n");
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
  EXPECT_EQ(r.consumed, in.size());
  const Request& q = p.request();
  EXPECT_TRUE(q.chunked);
  EXPECT_EQ(q.body, "hello 0123456789");
  ASSERT_EQ(q.trailers.size(), 2u);
  EXPECT_EQ(q.trailers[0].name, "Checksum");
  EXPECT_EQ(q.trailers[0].value, "abc");
  EXPECT_EQ(q.header("checksum"), std::nullopt);  // trailers are not merged into headers
}

TEST(HttpParser, TransferEncodingListWithEmptyElements) {
  RequestParser p;
  ASSERT_EQ(
      p.parse(req("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: , chunked ,\r\n", "0\r\n\r\n"))
          .status,
      ParseStatus::kComplete);
  EXPECT_TRUE(p.request().chunked);
}

TEST(HttpParser, PipelinedRequestsInOneBuffer) {
  const std::string a = "GET /a HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string b = "POST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nxyz";
  const std::string c =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "2\r\nhi\r\n0\r\n\r\n";
  const std::string d = "GET /d HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n";
  std::string_view in;
  const std::string all = a + b + c + d + "GET /partial HTTP/1.1\r\n";
  in = all;
  RequestParser p;
  std::vector<std::string> seen;
  for (;;) {
    const ParseResult r = p.parse(in);
    if (r.status != ParseStatus::kComplete) {
      EXPECT_EQ(r.status, ParseStatus::kNeedMore);
      break;
    }
    seen.push_back(std::string(p.request().target) + ":" + std::string(p.request().body) +
                   (r.must_close ? ":close" : ""));
    in.remove_prefix(r.consumed);
  }
  EXPECT_EQ(seen, (std::vector<std::string>{"/a:", "/b:xyz", "/c:hi", "/d::close"}));
  EXPECT_EQ(in, "GET /partial HTTP/1.1\r\n");
}

TEST(HttpParser, KeepAliveMatrix) {
  struct Case {
    std::string head;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: a\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: CLOSE\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\nConnection: close\r\n", false},
      {"GET / HTTP/1.0\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: foo\r\n", false},
  };
  for (const Case& c : cases) {
    RequestParser p;
    const ParseResult r = p.parse(req(c.head));
    ASSERT_EQ(r.status, ParseStatus::kComplete) << c.head << r.error_reason;
    EXPECT_EQ(p.request().keep_alive, c.keep_alive) << c.head;
    EXPECT_EQ(r.must_close, !c.keep_alive) << c.head;
  }
}

TEST(HttpParser, Http10NeedsNoHost) {
  RequestParser p;
  ASSERT_EQ(p.parse(req("GET / HTTP/1.0\r\n")).status, ParseStatus::kComplete);
  EXPECT_EQ(p.request().version_minor, 0);
}

TEST(HttpParser, TargetForms) {
  for (const char* line : {"OPTIONS * HTTP/1.1", "GET http://example.com/x?y HTTP/1.1",
                           "GET svn+ssh://h/p HTTP/1.1", "CONNECT example.com:443 HTTP/1.1",
                           "CONNECT [::1]:443 HTTP/1.1", "GET /%7Euser/a;b=c?d=e&f#g HTTP/1.1"}) {
    RequestParser p;
    const ParseResult r = p.parse(req(std::string(line) + "\r\nHost: a\r\n"));
    EXPECT_EQ(r.status, ParseStatus::kComplete) << line << " " << r.error_reason;
  }
}

TEST(HttpParser, UnusualButValidTokensAndHosts) {
  RequestParser p;
  const std::string in =
      req("PROPFIND /x HTTP/1.1\r\nHost: [::1]:8080\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n");
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
  EXPECT_EQ(p.request().method, "PROPFIND");
  RequestParser e;
  EXPECT_EQ(e.parse(req("GET / HTTP/1.1\r\nHost:\r\n")).status, ParseStatus::kComplete)
      << "an empty Host is allowed when the target has no authority";
}

TEST(HttpParser, LeadingEmptyLinesAreSkipped) {
  RequestParser p;
  const std::string in = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n";
  const ParseResult r = p.parse(in);
  ASSERT_EQ(r.status, ParseStatus::kComplete) << r.error_reason;
  EXPECT_EQ(r.consumed, in.size());
}

TEST(HttpParser, ExpectContinue) {
  RequestParser p;
  const std::string head =
      "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3\r\n\r\n";
  EXPECT_EQ(p.parse(head).status, ParseStatus::kNeedMore);
  EXPECT_TRUE(p.awaiting_body_after_continue());
  ASSERT_EQ(p.parse(head + "abc").status, ParseStatus::kComplete);
  EXPECT_FALSE(p.awaiting_body_after_continue());
  EXPECT_TRUE(p.request().expect_continue);

  RequestParser old;  // HTTP/1.0 clients do not take part in 100-continue
  EXPECT_EQ(
      old.parse("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n").status,
      ParseStatus::kNeedMore);
  EXPECT_FALSE(old.awaiting_body_after_continue());
}

TEST(HttpParser, ResetClearsAStickyError) {
  RequestParser p;
  EXPECT_EQ(p.parse("BAD\r\n\r\n").status, ParseStatus::kError);
  p.reset();
  EXPECT_EQ(p.parse(req("GET / HTTP/1.1\r\nHost: a\r\n")).status, ParseStatus::kComplete);
}

TEST(HttpParser, NeedMoreAtEveryPrefix) {
  const std::string in = req("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\n", "abcd");
  for (size_t n = 0; n < in.size(); ++n) {
    RequestParser p;
    EXPECT_EQ(p.parse(std::string_view(in).substr(0, n)).status, ParseStatus::kNeedMore) << n;
  }
}

// ---- Delivery independence ----

std::vector<std::string> valid_streams() {
  return {
      "GET / HTTP/1.1\r\nHost: a\r\n\r\n",
      "GET /a HTTP/1.1\r\nHost: h\r\n\r\nPOST /b HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n"
      "xyzGET /c HTTP/1.0\r\n\r\n",
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\nHost: "
      "a\r\n\r\n",
      "\r\nGET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n",
  };
}

TEST(HttpDelivery, ByteByByteMatchesOneShot) {
  std::vector<std::string> inputs = valid_streams();
  for (const Reject& r : rejections()) inputs.push_back(r.input);
  for (const std::string& in : inputs) {
    const auto whole = http_transcript(in, {}, {in.size()});
    const auto bytes = http_transcript(in, {}, byte_by_byte(in.size()));
    ASSERT_EQ(to_string(whole), to_string(bytes)) << testing::escape(in);
    EXPECT_FALSE(testing::has_violation(whole)) << to_string(whole);
  }
}

TEST(HttpDelivery, ChunkedBodySplitAtEveryOffset) {
  const std::string in =
      "POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
      "3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nT: v\r\n\r\n";
  const auto whole = http_transcript(in, {}, {in.size()});
  ASSERT_EQ(whole.size(), 2u);
  EXPECT_NE(whole[0].find("body=abc0123456789abcdef"), std::string::npos) << whole[0];
  for (size_t cut = 1; cut < in.size(); ++cut) {
    ASSERT_EQ(to_string(http_transcript(in, {}, {cut, in.size() - cut})), to_string(whole))
        << "cut at " << cut;
  }
  // And every pair of cuts.
  for (size_t a = 1; a < in.size(); a += 3) {
    for (size_t b = a + 1; b < in.size(); b += 2) {
      ASSERT_EQ(to_string(http_transcript(in, {}, {a, b - a, in.size() - b})), to_string(whole))
          << "cuts at " << a << ", " << b;
    }
  }
}

TEST(HttpDelivery, RandomSplitsMatchOneShot) {
  const uint64_t seed = testing::announced_seed();
  SCOPED_TRACE("seed " + std::to_string(seed) + " (rerun with SHARDLOOP_TEST_SEED)");
  std::vector<std::string> inputs = valid_streams();
  for (const Reject& r : rejections()) inputs.push_back(r.input);
  Limits small;
  small.max_uri_bytes = 16;
  small.max_header_bytes = 48;
  small.max_body_bytes = 12;
  small.max_header_count = 3;
  for (int round = 0; round < 50; ++round) {
    for (const std::string& in : inputs) {
      for (const Limits& limits : {Limits{}, small}) {
        const auto whole = http_transcript(in, limits, {in.size()});
        const auto split =
            http_transcript(in, limits, testing::pieces_from_bytes(in, seed + round));
        ASSERT_EQ(to_string(whole), to_string(split)) << testing::escape(in);
      }
    }
  }
}

}  // namespace
}  // namespace shardloop::http
