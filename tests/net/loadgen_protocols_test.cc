// loadgen's protocol modes without sockets: each recognises its answers, counts wrong ones, calls
// a stream it cannot read broken, and gives the same verdict however the bytes are split (fed
// the way the driver feeds them: unconsumed bytes plus what arrived).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "bench/loadgen/client_protocol.h"
#include "examples/rpc/rpc_service.h"
#include "net/protocols/frame_codec.h"

namespace shardloop::bench {
namespace {

struct Verdict {
  std::vector<uint64_t> answered;
  uint64_t mismatches = 0;
  bool broken = false;
  size_t left = 0;  // bytes of a partial answer still waiting

  bool operator==(const Verdict&) const = default;
};

std::ostream& operator<<(std::ostream& os, const Verdict& v) {
  os << "{answered=[";
  for (uint64_t s : v.answered) os << s << ",";
  return os << "] mismatches=" << v.mismatches << " broken=" << v.broken << " left=" << v.left
            << "}";
}

// Feeds `bytes` to a fresh protocol in pieces ending at `cuts` (then the rest).
Verdict feed(const ProtocolFactory& make, std::string_view bytes, const std::vector<size_t>& cuts) {
  auto protocol = make();
  Verdict v;
  std::string buffer;
  size_t from = 0;
  std::vector<size_t> ends = cuts;
  ends.push_back(bytes.size());
  for (size_t end : ends) {
    buffer.append(bytes.substr(from, end - from));
    from = end;
    ParseOutcome r = protocol->parse(buffer, [&](uint64_t seq) { v.answered.push_back(seq); });
    v.mismatches += r.mismatches;
    if (!r.broken.empty()) {
      v.broken = true;
      return v;
    }
    buffer.erase(0, r.consumed);
  }
  v.left = buffer.size();
  return v;
}

// The verdict on `bytes` in one piece, which must match every two-piece split and a byte-by-byte
// feed.
Verdict verdict(const ProtocolFactory& make, std::string_view bytes) {
  const Verdict whole = feed(make, bytes, {});
  for (size_t cut = 0; cut <= bytes.size(); ++cut) {
    EXPECT_EQ(feed(make, bytes, {cut}), whole) << "split at " << cut;
  }
  std::vector<size_t> every;
  for (size_t i = 1; i < bytes.size(); ++i) every.push_back(i);
  EXPECT_EQ(feed(make, bytes, every), whole) << "byte by byte";
  return whole;
}

ProtocolFactory factory(std::string_view mode, ProtocolOptions options = {}) {
  auto f = protocol_for_mode(mode, options);
  EXPECT_TRUE(f.ok()) << f.status();
  return *f;
}

std::string pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = pattern_byte(i);
  return s;
}

TEST(LoadgenProtocols, UnknownModeAndBadOptionsAreRefused) {
  EXPECT_FALSE(protocol_for_mode("smtp", {}).ok());
  EXPECT_FALSE(protocol_for_mode("resp", {.resp_command = "flushall"}).ok());
}

TEST(LoadgenProtocols, EchoCountsWrongBytes) {
  const auto make = factory("echo", {.message_size = 8});
  std::string request;
  make()->append_request(0, &request);
  EXPECT_EQ(request, pattern(8));
  std::string wrong = pattern(8);
  wrong[3] = '!';
  wrong[5] = '!';
  const Verdict v = verdict(make, pattern(8) + wrong + pattern(8) + "abc");
  EXPECT_EQ(v, (Verdict{.answered = {0, 1, 2}, .mismatches = 2, .left = 3}));
}

TEST(LoadgenProtocols, HttpNeedsStatus200AndAContentLength) {
  const auto make = factory("http");
  std::string request;
  make()->append_request(0, &request);
  EXPECT_EQ(request.substr(0, 16), "GET / HTTP/1.1\r\n");
  const std::string answers =
      "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 6\r\n\r\nhello\n"
      "HTTP/1.1 100 Continue\r\n\r\n"
      "HTTP/1.1 404 Not Found\r\ncontent-length:  0\r\n\r\n"
      "HTTP/1.1 204 No Content\r\n\r\n"
      "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
      "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\npar";
  EXPECT_EQ(verdict(make, answers),
            (Verdict{.answered = {0, 1, 2, 3}, .mismatches = 2, .left = 41}));
  EXPECT_TRUE(
      verdict(make, "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n").broken);
  EXPECT_TRUE(verdict(make, "HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").broken);  // no length
  EXPECT_TRUE(verdict(make, "GET / HTTP/1.1\r\nHost: a\r\n\r\n").broken);
}

TEST(LoadgenProtocols, RespValidatesEachReplyAgainstItsCommand) {
  const size_t size = 5;
  const auto make = factory("resp", {.message_size = size});
  std::string requests;
  auto p = make();
  for (uint64_t seq = 0; seq < 3; ++seq) p->append_request(seq, &requests);
  EXPECT_EQ(requests, "*3\r\n$3\r\nSET\r\n$13\r\nloadgen:key:0\r\n$5\r\n" + pattern(size) +
                          "\r\n*2\r\n$3\r\nGET\r\n$13\r\nloadgen:key:1\r\n*1\r\n$4\r\nPING\r\n");
  // mix: SET, GET, PING, SET, GET, PING, SET
  const std::string replies =
      "+OK\r\n"      // right
      "$-1\r\n"      // right: not set
      "+PONG\r\n"    // right
      "-ERR no\r\n"  // wrong
      "$5\r\n" +
      pattern(size) +
      "\r\n"                  // right
      "*1\r\n$4\r\nPONG\r\n"  // wrong
      ":1\r\n"                // wrong
      "$5\r\nabc";            // partial
  EXPECT_EQ(verdict(make, replies),
            (Verdict{.answered = {0, 1, 2, 3, 4, 5, 6}, .mismatches = 3, .left = 7}));
  EXPECT_TRUE(verdict(make, "?what\r\n").broken);
  EXPECT_TRUE(verdict(make, "$3\r\nabcd\r\n").broken);
  const auto get = factory("resp", {.message_size = size, .resp_command = "get"});
  EXPECT_EQ(verdict(get, "$3\r\nabc\r\n"), (Verdict{.answered = {0}, .mismatches = 1}));
}

TEST(LoadgenProtocols, RpcMatchesAnswersByIdInAnyOrder) {
  const size_t size = 16;
  const auto make = factory("rpc", {.message_size = size});
  std::string request;
  make()->append_request(4, &request);
  rpc::FrameDecoder decoder;
  ASSERT_EQ(decoder.decode(request).status, rpc::DecodeStatus::kFrame);
  EXPECT_EQ(decoder.frame().header.request_id, 5u) << "id = seq + 1";
  ASSERT_NE(decoder.frame().find(examples::rpc_field::kPayload), nullptr);
  EXPECT_EQ(decoder.frame().find(examples::rpc_field::kPayload)->data, pattern(size));

  auto response = [](uint64_t id, std::string_view payload) {
    std::string out;
    const rpc::Field f[] = {{.type = examples::rpc_field::kPayload, .data = payload}};
    rpc::append_frame(rpc::FrameType::kResponse, id, 0, f, &out);
    return out;
  };
  auto error = [](uint64_t id) {
    std::string out;
    const std::string code("\3\0", 2);  // kDeadlineExceeded, little-endian
    const rpc::Field f[] = {{.type = examples::rpc_field::kErrorCode, .data = code},
                            {.type = examples::rpc_field::kErrorMessage, .data = "late"}};
    rpc::append_frame(rpc::FrameType::kError, id, 0, f, &out);
    return out;
  };
  const std::string answers =
      response(3, pattern(size)) + response(1, pattern(size)) + error(2) + response(4, "wrong");
  EXPECT_EQ(verdict(make, answers), (Verdict{.answered = {2, 0, 1, 3}, .mismatches = 2}));
  EXPECT_TRUE(verdict(make, error(0)).broken) << "id 0: the server refused the stream";
  EXPECT_TRUE(verdict(make, "HTTP/1.1 200 OK\r\n").broken);
}

}  // namespace
}  // namespace shardloop::bench
