// examples/rpc_server's service end to end, from a blocking test client over loopback, on both
// backends: echo and sum answers, pipelined requests with arbitrary ids, answers written as each
// request completes, server-enforced deadlines, limits, and framing errors answered with an
// error frame and a closed connection.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "examples/rpc/rpc_service.h"
#include "net/protocols/frame_codec.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

using examples::RpcError;
using rpc::FrameType;
using SteadyClock = std::chrono::steady_clock;

// An answer with its bytes copied out of the decoder.
struct Answer {
  uint64_t id = 0;
  FrameType type = FrameType::kResponse;
  RpcError error = RpcError::kNone;
  std::string payload;
  std::string message;
};

std::ostream& operator<<(std::ostream& os, const Answer& a) {
  return os << "{id=" << a.id << " type=" << static_cast<int>(a.type)
            << " error=" << examples::rpc_error_name(a.error) << " payload=" << a.payload.size()
            << "B message='" << a.message << "'}";
}

// A blocking client: whole frames out, answers in, with a 5 s receive timeout.
class Client {
 public:
  explicit Client(const net::Address& address) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    timeval tv{5, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    connected_ = ::connect(fd_, address.sockaddr_ptr(), address.length()) == 0;
  }
  ~Client() { ::close(fd_); }
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  bool connected() const { return connected_; }

  bool send(std::string_view bytes) {
    while (!bytes.empty()) {
      ssize_t n = ::send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return false;
      bytes.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  bool call(uint64_t id, std::string_view method, std::string_view payload,
            int64_t deadline_ms = -1) {
    std::string out;
    examples::append_rpc_request(
        {.id = id, .method = method, .payload = payload, .deadline_ms = deadline_ms}, &out);
    return send(out);
  }

  // The next answer; nullopt when the server closed, 5 s passed, or the bytes were not a frame.
  std::optional<Answer> next() {
    for (;;) {
      rpc::DecodeResult r = decoder_.decode(in_);
      if (r.status == rpc::DecodeStatus::kError) return std::nullopt;
      if (r.status == rpc::DecodeStatus::kFrame) {
        examples::RpcReply reply;
        if (!examples::parse_rpc_reply(decoder_.frame(), &reply)) return std::nullopt;
        Answer a{.id = reply.id,
                 .type = reply.type,
                 .error = reply.error,
                 .payload = std::string(reply.payload),
                 .message = std::string(reply.message)};
        in_.erase(0, r.consumed);
        return a;
      }
      if (!receive()) return std::nullopt;
    }
  }

  // True when the server closes the connection with nothing more to say (within 5 s).
  bool closed_after_this() {
    while (receive()) {
    }
    return eof_ && in_.empty();
  }

 private:
  bool receive() {
    char buf[16 * 1024];
    for (;;) {
      ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
      if (n < 0 && errno == EINTR) continue;  // a timed recv is not restarted by the kernel
      if (n == 0) eof_ = true;
      if (n <= 0) return false;
      in_.append(buf, static_cast<size_t>(n));
      return true;
    }
  }

  int fd_ = -1;
  bool connected_ = false;
  bool eof_ = false;
  std::string in_;
  rpc::FrameDecoder decoder_;
};

std::string header_only(FrameType type, uint64_t id, uint32_t total_length) {
  std::string frame;
  rpc::append_frame(type, id, 0, {}, &frame);
  for (int i = 0; i < 4; ++i) frame[16 + i] = static_cast<char>((total_length >> (8 * i)) & 0xff);
  return frame;
}

class RpcServer : public ::testing::TestWithParam<Backend> {
 protected:
  static constexpr uint32_t kMaxFrame = 64 * 1024;
  static constexpr size_t kMaxInFlight = 4;

  void SetUp() override {
    SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
    ASSERT_TRUE(rt_.start().ok());
    examples::RpcOptions options;
    options.limits.max_frame_size = kMaxFrame;
    options.max_in_flight = kMaxInFlight;
    auto server = net::Server::listen(rt_, testing::loopback_any(), examples::rpc_handler(options));
    ASSERT_TRUE(server.ok());
    server_ = std::move(*server);
  }
  void TearDown() override {
    server_.reset();
    rt_.stop();
  }
  Runtime rt_{{.workers = 2, .backend = GetParam()}};
  std::unique_ptr<net::Server> server_;
};

TEST_P(RpcServer, EchoAndSumAnswer) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  const std::vector<char> big = testing::random_bytes(60000, 7);
  const std::string payloads[] = {"", "hello", std::string(big.begin(), big.end())};
  uint64_t id = 10;
  for (const std::string& p : payloads) {
    ASSERT_TRUE(c.call(id, "echo", p));
    auto a = c.next();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->id, id);
    EXPECT_EQ(a->type, FrameType::kResponse) << *a;
    EXPECT_EQ(a->payload, p);
    ++id;
  }

  struct SumCase {
    std::vector<int64_t> values;
    int64_t sum;
  };
  const SumCase sums[] = {{{}, 0},
                          {{42}, 42},
                          {{1, 2, 39}, 42},
                          {{-5, 3}, -2},
                          {{INT64_MAX, -1, 1}, INT64_MAX},
                          {{INT64_MIN, 0}, INT64_MIN}};
  for (const SumCase& s : sums) {
    ASSERT_TRUE(c.call(id, "sum", examples::encode_i64s(s.values)));
    auto a = c.next();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->id, id);
    ASSERT_EQ(a->type, FrameType::kResponse) << *a;
    int64_t got = 0;
    ASSERT_TRUE(examples::decode_i64(a->payload, &got)) << a->payload.size();
    EXPECT_EQ(got, s.sum);
    ++id;
  }
}

// Application errors are answered with an error frame naming the problem, and the connection
// keeps serving.
TEST_P(RpcServer, BadRequestsGetErrorFramesAndTheConnectionStays) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  struct Case {
    std::string method;
    std::string payload;
    RpcError error;
    std::string message_part;
  };
  const Case cases[] = {
      {"sum", "12345", RpcError::kBadArgument, "multiple of 8"},
      {"sum", examples::encode_i64s({INT64_MAX, 1}), RpcError::kBadArgument, "overflows"},
      {"sum", examples::encode_i64s({INT64_MIN, -1}), RpcError::kBadArgument, "overflows"},
      {"frobnicate", "", RpcError::kUnknownMethod, "unknown method 'frobnicate'"},
      {"sleep", "abc", RpcError::kBadArgument, "sleep"},
      {"sleep", examples::encode_u32(3'600'000), RpcError::kBadArgument, "at most"},
  };
  uint64_t id = 1;
  for (const Case& k : cases) {
    ASSERT_TRUE(c.call(id, k.method, k.payload));
    auto a = c.next();
    ASSERT_TRUE(a.has_value()) << k.method;
    EXPECT_EQ(a->id, id);
    EXPECT_EQ(a->type, FrameType::kError) << *a;
    EXPECT_EQ(a->error, k.error) << *a;
    EXPECT_NE(a->message.find(k.message_part), std::string::npos) << *a;
    ++id;
  }
  // A request without a method field.
  std::string no_method;
  const rpc::Field fields[] = {{.type = examples::rpc_field::kPayload, .data = "x"}};
  rpc::append_frame(FrameType::kRequest, 99, 0, fields, &no_method);
  ASSERT_TRUE(c.send(no_method));
  auto a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, 99u);
  EXPECT_EQ(a->error, RpcError::kBadArgument) << *a;
  // A ping is answered with a ping, and the connection still echoes.
  std::string ping;
  rpc::append_frame(FrameType::kPing, 5, 0, {}, &ping);
  ASSERT_TRUE(c.send(ping));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->type, FrameType::kPing);
  EXPECT_EQ(a->id, 5u);
  ASSERT_TRUE(c.call(100, "echo", "still here"));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->payload, "still here");
}

// Ids are the client's business: any values, in any order, repeated, are answered with the
// same ids; and each answer goes out when its request completes, not in request order.
TEST_P(RpcServer, PipelinedRequestsWithArbitraryIdsAreAllAnswered) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  const uint64_t ids[] = {900, 3, 77, 3, 0, UINT64_MAX, 12345678901234ull, 1};
  std::string batch;
  for (size_t i = 0; i < std::size(ids); ++i) {
    examples::append_rpc_request(
        {.id = ids[i], .method = "echo", .payload = "payload-" + std::to_string(i)}, &batch);
  }
  ASSERT_TRUE(c.send(batch));
  for (size_t i = 0; i < std::size(ids); ++i) {
    auto a = c.next();
    ASSERT_TRUE(a.has_value()) << i;
    // echo completes at once, so these answers come in request order.
    EXPECT_EQ(a->id, ids[i]);
    EXPECT_EQ(a->payload, "payload-" + std::to_string(i));
  }

  // A slow request first, then a quick one, in one write: the quick one is answered first.
  std::string pair;
  examples::append_rpc_request({.id = 1, .method = "sleep", .payload = examples::encode_u32(200)},
                               &pair);
  examples::append_rpc_request({.id = 2, .method = "echo", .payload = "fast"}, &pair);
  ASSERT_TRUE(c.send(pair));
  auto first = c.next();
  auto second = c.next();
  ASSERT_TRUE(first.has_value());
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(first->id, 2u) << "the echo behind a sleep must not wait for it";
  EXPECT_EQ(first->payload, "fast");
  EXPECT_EQ(second->id, 1u);
  EXPECT_EQ(second->type, FrameType::kResponse) << *second;
}

TEST_P(RpcServer, DeadlinesAreEnforcedByTheServer) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  // A 2 s sleep with a 50 ms budget is answered "deadline exceeded" at about 50 ms.
  const auto start = SteadyClock::now();
  ASSERT_TRUE(c.call(1, "sleep", examples::encode_u32(2000), 50));
  auto a = c.next();
  const auto took = SteadyClock::now() - start;
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, 1u);
  EXPECT_EQ(a->error, RpcError::kDeadlineExceeded) << *a;
  EXPECT_GE(took, std::chrono::milliseconds(45));
  EXPECT_LT(took, std::chrono::milliseconds(1500)) << "the answer waited for the whole sleep";
  // A request that completes within its budget is answered normally.
  ASSERT_TRUE(c.call(2, "sleep", examples::encode_u32(10), 5000));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->type, FrameType::kResponse) << *a;
  ASSERT_TRUE(c.call(3, "echo", "x", 1000));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->payload, "x");
  // A budget of 0 is exceeded before any work.
  ASSERT_TRUE(c.call(4, "echo", "x", 0));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->error, RpcError::kDeadlineExceeded) << *a;
  // A deadline field of the wrong size is a bad argument.
  std::string odd;
  const rpc::Field fields[] = {{.type = examples::rpc_field::kMethod, .data = "echo"},
                               {.type = examples::rpc_field::kDeadlineMs, .data = "12"}};
  rpc::append_frame(FrameType::kRequest, 5, 0, fields, &odd);
  ASSERT_TRUE(c.send(odd));
  a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->error, RpcError::kBadArgument) << *a;
}

TEST_P(RpcServer, TooManyRequestsInFlightAreRefused) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  std::string batch;
  for (uint64_t id = 1; id <= kMaxInFlight + 1; ++id) {
    examples::append_rpc_request(
        {.id = id, .method = "sleep", .payload = examples::encode_u32(100)}, &batch);
  }
  ASSERT_TRUE(c.send(batch));
  auto a = c.next();  // the refusal comes at once, before any sleep ends
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, kMaxInFlight + 1);
  EXPECT_EQ(a->error, RpcError::kOverloaded) << *a;
  for (size_t i = 0; i < kMaxInFlight; ++i) {
    a = c.next();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->type, FrameType::kResponse) << *a;
  }
}

// A framing error is answered with an error frame, after the answers to the requests before
// it, and the connection closes; nothing sent behind the bad frame is answered.
TEST_P(RpcServer, MalformedFramesGetAnErrorFrameAndAClose) {
  std::string good;
  examples::append_rpc_request({.id = 1, .method = "echo", .payload = "before"}, &good);
  std::string smuggled;
  examples::append_rpc_request({.id = 2, .method = "echo", .payload = "smuggled"}, &smuggled);
  std::string bad_version = good;
  bad_version[4] = 9;
  std::string bad_reserved = good;
  bad_reserved[22] = 1;
  std::string response_frame;
  rpc::append_frame(FrameType::kResponse, 7, 0, {}, &response_frame);
  std::string field_overrun = good;
  field_overrun[24 + 2] = 100;  // the method field claims 100 bytes
  std::string too_short = header_only(FrameType::kRequest, 3, 10);
  struct Case {
    std::string name;
    std::string bytes;
  };
  const Case cases[] = {
      {"bad magic", "XLRP" + good.substr(4)},
      {"bad version", bad_version},
      {"reserved bits", bad_reserved},
      {"response from a client", response_frame},
      {"field overruns frame", field_overrun},
      {"total length below the header", too_short},
      {"garbage", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"},
  };
  for (const Case& k : cases) {
    SCOPED_TRACE(k.name);
    Client c(server_->address());
    ASSERT_TRUE(c.connected());
    ASSERT_TRUE(c.send(good + k.bytes + smuggled));
    auto a = c.next();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->id, 1u);
    EXPECT_EQ(a->payload, "before");
    a = c.next();
    ASSERT_TRUE(a.has_value());
    EXPECT_EQ(a->type, FrameType::kError) << *a;
    EXPECT_EQ(a->error, RpcError::kBadFrame) << *a;
    EXPECT_NE(a->message.find("bad frame"), std::string::npos) << *a;
    EXPECT_TRUE(c.closed_after_this()) << "the connection must close, answering nothing more";
  }
}

TEST_P(RpcServer, OversizedFrameIsRefusedByItsHeaderAndCloses) {
  // Only the header of a 1 MiB frame is sent: the refusal must not wait for the rest.
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  ASSERT_TRUE(c.send(header_only(FrameType::kRequest, 42, 1024 * 1024)));
  auto a = c.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->id, 42u) << "the refusal names the oversized request";
  EXPECT_EQ(a->error, RpcError::kFrameTooLarge) << *a;
  EXPECT_NE(a->message.find("exceeds the limit of 65536"), std::string::npos) << *a;
  EXPECT_TRUE(c.closed_after_this());

  // A frame of exactly the limit is fine.
  Client ok(server_->address());
  ASSERT_TRUE(ok.connected());
  std::string method_only;
  examples::append_rpc_request({.id = 1, .method = "echo"}, &method_only);
  const size_t payload = kMaxFrame - method_only.size();
  ASSERT_TRUE(ok.call(1, "echo", std::string(payload, 'p')));
  a = ok.next();
  ASSERT_TRUE(a.has_value());
  EXPECT_EQ(a->payload.size(), payload);
}

// Frames that arrive a byte at a time are answered the same.
TEST_P(RpcServer, FramesSplitAcrossReadsAreReassembled) {
  Client c(server_->address());
  ASSERT_TRUE(c.connected());
  std::string bytes;
  examples::append_rpc_request(
      {.id = 8, .method = "sum", .payload = examples::encode_i64s({40, 2})}, &bytes);
  for (char ch : bytes) {
    ASSERT_TRUE(c.send(std::string_view(&ch, 1)));
  }
  auto a = c.next();
  ASSERT_TRUE(a.has_value());
  int64_t got = 0;
  ASSERT_TRUE(examples::decode_i64(a->payload, &got)) << *a;
  EXPECT_EQ(got, 42);
}

INSTANTIATE_TEST_SUITE_P(Backends, RpcServer, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
