// The built loadgen binary, for about a second per run, in each mode against the matching
// service served in this process (echo_service, http_service, rpc_service, and a tiny RESP
// responder), closed and open loop, on both backends (server and loadgen alike): it must exit 0
// having completed requests. A run against the wrong kind of server must exit non-zero.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/numbers.h"
#include "examples/echo/echo_service.h"
#include "examples/http/http_service.h"
#include "examples/rpc/rpc_service.h"
#include "net/protocols/resp_parser.h"
#include "net/protocols/resp_writer.h"
#include "net/server.h"
#include "runtime/mutex.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/subprocess.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

// Just enough of a redis server for loadgen --mode resp: PING, SET key value, GET key.
// Thread-safety: the store is shared by every worker's connections, under `mu`.
struct TinyRedis {
  Mutex mu;
  absl::flat_hash_map<std::string, std::string> data ABSL_GUARDED_BY(mu);

  void execute(absl::Span<const std::string_view> args, std::string* out) {
    resp::ReplyWriter reply(out);
    if (args.size() == 1 && args[0] == "PING") {
      reply.simple_string("PONG");
    } else if (args.size() == 3 && args[0] == "SET") {
      MutexLock lock(&mu);
      data[std::string(args[1])] = std::string(args[2]);
      reply.simple_string("OK");
    } else if (args.size() == 2 && args[0] == "GET") {
      MutexLock lock(&mu);
      auto it = data.find(std::string(args[1]));
      if (it == data.end()) {
        reply.null_bulk();
      } else {
        reply.bulk(it->second);
      }
    } else {
      reply.error("unknown command");
    }
  }

  Task<void> serve(net::Connection conn) {
    resp::CommandParser parser;
    std::string in, out;
    for (;;) {
      auto chunk = co_await conn.read_chunk();
      if (!chunk.ok() || chunk->empty()) break;
      in.append(chunk->data(), chunk->size());
      size_t consumed = 0;
      bool failed = false;
      for (;;) {
        resp::ParseResult r = parser.parse(std::string_view(in).substr(consumed));
        if (r.status == resp::ParseStatus::kNeedMore) break;
        if (r.status == resp::ParseStatus::kError) {
          resp::ReplyWriter(&out).error(r.error);
          failed = true;
          break;
        }
        execute(parser.args(), &out);
        consumed += r.consumed;
      }
      in.erase(0, consumed);
      if (!(co_await conn.write(out)).ok() || failed) break;
      out.clear();
    }
    (void)co_await conn.finish();
  }
};

// The run of digits at `at`, as absl::SimpleAtoi wants it.
absl::string_view leading_digits(const std::string& s, size_t at) {
  size_t end = at;
  while (end < s.size() && s[end] >= '0' && s[end] <= '9') ++end;
  return absl::string_view(s.data() + at, end - at);
}

class LoadgenSmoke : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
    ASSERT_TRUE(rt_.start().ok());
  }
  void TearDown() override {
    servers_.clear();
    rt_.stop();
  }

  uint16_t serve(net::ConnectionHandler handler) {
    auto server = net::Server::listen(rt_, testing::loopback_any(), std::move(handler));
    EXPECT_TRUE(server.ok()) << server.status();
    if (!server.ok()) return 0;
    servers_.push_back(std::move(*server));
    return servers_.back()->port();
  }

  testing::ProcessResult loadgen(uint16_t port, std::vector<std::string> extra) {
    std::vector<std::string> argv = {
        SHARDLOOP_LOADGEN_PATH, "--port=" + std::to_string(port),
        "--connections=4",      "--duration=1",
        "--workers=2",          std::string("--backend=") + std::string(backend_name(GetParam()))};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return testing::run_process(argv, std::chrono::seconds(30));
  }

  // The `requests=N` of loadgen's summary line, if there is one.
  static std::optional<uint64_t> requests(const std::string& output) {
    const size_t at = output.find("requests=");
    if (at == std::string::npos) return std::nullopt;
    uint64_t n = 0;
    if (!absl::SimpleAtoi(leading_digits(output, at + 9), &n)) return std::nullopt;
    return n;
  }

  void expect_success(const testing::ProcessResult& r) {
    EXPECT_FALSE(r.timed_out) << r.output;
    EXPECT_EQ(r.exit_code, 0) << r.output;
    EXPECT_NE(r.output.find("errors=0 mismatches=0"), std::string::npos) << r.output;
    auto n = requests(r.output);
    ASSERT_TRUE(n.has_value()) << r.output;
    EXPECT_GT(*n, 0u) << r.output;
  }

  Runtime rt_{{.workers = 2, .backend = GetParam()}};
  std::vector<std::unique_ptr<net::Server>> servers_;
};

TEST_P(LoadgenSmoke, EchoMode) {
  const uint16_t port = serve(examples::serve_echo);
  auto r = loadgen(port, {"--pipeline=4"});
  expect_success(r);
  EXPECT_EQ(r.output.find("mode="), std::string::npos)
      << "echo in closed loop keeps the benchmark scripts' output fields";
  expect_success(loadgen(port, {"--rate=400"}));
}

TEST_P(LoadgenSmoke, HttpMode) {
  const uint16_t port = serve(examples::serve_http);
  expect_success(loadgen(port, {"--mode=http", "--pipeline=8"}));
  expect_success(loadgen(port, {"--mode=http", "--rate=400", "--pipeline=2"}));
}

TEST_P(LoadgenSmoke, RpcMode) {
  const uint16_t port = serve(examples::serve_rpc);
  expect_success(loadgen(port, {"--mode=rpc", "--pipeline=8", "--message_size=300"}));
  // Open loop: every request of the schedule (4 connections x 100 per second) is answered.
  auto r = loadgen(port, {"--mode=rpc", "--rate=400"});
  expect_success(r);
  auto n = requests(r.output);
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(*n, 400u) << r.output;
}

TEST_P(LoadgenSmoke, RespMode) {
  auto redis = std::make_shared<TinyRedis>();
  const uint16_t port = serve([redis](net::Connection c) { return redis->serve(std::move(c)); });
  expect_success(loadgen(port, {"--mode=resp", "--pipeline=8"}));
  expect_success(loadgen(port, {"--mode=resp", "--resp_command=get"}));
  expect_success(loadgen(port, {"--mode=resp", "--rate=300"}));
}

// Wrong answers and broken streams fail the run.
TEST_P(LoadgenSmoke, WrongAnswersFailTheRun) {
  const uint16_t echo = serve(examples::serve_echo);
  auto r = loadgen(echo, {"--mode=http"});  // the echoed request is not an HTTP answer
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("not an HTTP/1.x answer"), std::string::npos) << r.output;
  r = loadgen(echo, {"--mode=resp"});  // the echoed command is a well-formed but wrong reply
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_EQ(r.output.find("mismatches=0"), std::string::npos) << r.output;
  const uint16_t rpc = serve(examples::serve_rpc);
  r = loadgen(rpc, {"--mode=http"});  // the rpc server refuses the bytes with an error frame
  EXPECT_EQ(r.exit_code, 1) << r.output;
}

INSTANTIATE_TEST_SUITE_P(Backends, LoadgenSmoke, testing::kAllBackends, testing::backend_test_name);

}  // namespace
}  // namespace shardloop
