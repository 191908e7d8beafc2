// Echo server end to end: many concurrent loopback connections, random message sizes, every
// byte verified, no fd leaked. Client and server are two Runtimes in this process.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <memory>
#include <random>
#include <vector>

#include "examples/echo/echo_service.h"
#include "net/dialer.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

using net::Address;
using net::Connection;

struct Plan {
  std::vector<size_t> sizes;  // one entry per round trip
  uint64_t seed = 0;
};

struct Outcome {
  std::atomic<int> finished{0};
  std::atomic<int> failures{0};
  std::atomic<uint64_t> bytes_verified{0};
};

void fill(std::vector<char>& buf, uint64_t seed) {
  std::mt19937_64 rng(seed);
  for (char& c : buf) c = static_cast<char>(rng());
}

Task<void> write_message(Connection* conn, const std::vector<char>* msg, bool* done, bool* ok) {
  *ok = (co_await conn->write_all(absl::MakeConstSpan(*msg))).ok();
  *done = true;
}

// One client connection: for each round, write a message (concurrently, so a 1 MiB message
// cannot deadlock against its own echo) and read back exactly as many bytes, comparing each.
Task<void> run_client(Address server, Plan plan, Outcome* outcome) {
  bool ok = true;
  auto conn = co_await net::dial(server);
  if (!conn.ok()) {
    ADD_FAILURE() << "dial: " << conn.status();
    ok = false;
  }
  std::vector<char> in(64 * 1024);
  for (size_t round = 0; ok && round < plan.sizes.size(); ++round) {
    std::vector<char> msg(plan.sizes[round]);
    fill(msg, plan.seed * 1000 + round);
    bool written = false, write_ok = false;
    spawn(write_message(&*conn, &msg, &written, &write_ok));
    size_t got = 0;
    while (ok && got < msg.size()) {
      auto n =
          co_await conn->read(absl::MakeSpan(in.data(), std::min(in.size(), msg.size() - got)));
      if (!n.ok() || *n == 0) {
        ADD_FAILURE() << "read after " << got << " of " << msg.size()
                      << " bytes: " << (n.ok() ? "EOF" : n.status().ToString());
        ok = false;
        break;
      }
      if (std::memcmp(in.data(), msg.data() + got, *n) != 0) {
        ADD_FAILURE() << "echoed bytes differ in round " << round << " at offset " << got;
        ok = false;
      }
      got += *n;
    }
    // The writer task holds pointers into this frame: wait for it before moving on.
    while (!written) co_await yield_now();
    if (!write_ok) {
      ADD_FAILURE() << "write failed in round " << round;
      ok = false;
    }
    if (ok) outcome->bytes_verified.fetch_add(got, std::memory_order_relaxed);
  }
  if (conn.ok()) conn->close();
  if (!ok) outcome->failures.fetch_add(1);
  outcome->finished.fetch_add(1);
}

class EchoIntegration : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
  RuntimeOptions options(size_t workers) const { return GetParam().options(workers); }
};

TEST_P(EchoIntegration, ThousandConnectionsRandomSizesEveryByteVerified) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed << " (rerun with SHARDLOOP_TEST_SEED)");
  const int connections = 1000;
  // io_uring runs the full 1,000 x 20 under the sanitizers too: completions that outlive a
  // connection, buffer-ring recycling and cross-thread wakeups are what ASan and TSan check here.
  // The epoll configurations are scaled down there to keep the sanitizer suites short.
  const int rounds = GetParam().backend == Backend::kIoUring ? 20 : 20 / testing::kSanitizerScale;
  const int big_messages = 4;  // 1 MiB round trips, on the first few connections
  const int fds_before = testing::count_open_fds();
  std::mt19937_64 rng(seed);
  // Log-uniform sizes in [1, 16 KiB]: as many tiny messages as large ones.
  std::uniform_real_distribution<double> log_size(0, std::log(16.0 * 1024));

  Outcome outcome;
  uint64_t expected_bytes = 0;
  {
    Runtime server_rt(options(4));
    ASSERT_TRUE(server_rt.start().ok());
    auto server =
        net::Server::listen(server_rt, *Address::parse("127.0.0.1:0"), examples::serve_echo);
    ASSERT_TRUE(server.ok()) << server.status();

    Runtime client_rt(options(2));
    ASSERT_TRUE(client_rt.start().ok());
    for (int c = 0; c < connections; ++c) {
      Plan plan;
      plan.seed = seed + static_cast<uint64_t>(c);
      for (int r = 0; r < rounds; ++r) {
        size_t size = static_cast<size_t>(std::exp(log_size(rng)));
        if (c < big_messages && r == 0) size = 1 << 20;
        plan.sizes.push_back(std::max<size_t>(1, size));
        expected_bytes += plan.sizes.back();
      }
      Address addr = (*server)->address();
      client_rt.spawn_on(static_cast<size_t>(c) % client_rt.size(),
                         [addr, plan = std::move(plan), &outcome]() mutable {
                           return run_client(addr, std::move(plan), &outcome);
                         });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
    while (outcome.finished.load() < connections && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(outcome.finished.load(), connections) << "clients still running at the deadline";
    client_rt.stop();

    auto stats = (*server)->stats();
    uint64_t accepted = 0;
    for (uint64_t a : stats.accepted) accepted += a;
    EXPECT_EQ(accepted, static_cast<uint64_t>(connections));
    EXPECT_EQ(stats.accepted.size(), 4u);
    auto report = server_rt.drain(absl::Seconds(10));
    EXPECT_EQ(report.tasks_cancelled, 0u) << "server connections still open after clients closed";
    server->reset();
  }
  EXPECT_EQ(outcome.failures.load(), 0);
  EXPECT_EQ(outcome.bytes_verified.load(), expected_bytes);
  EXPECT_EQ(testing::count_open_fds(), fds_before) << "fds leaked";
}

TEST_P(EchoIntegration, PeerThatResetsMidStreamDoesNotHurtTheServer) {
  // The server is still writing echoes when the client resets: its send gets EPIPE/ECONNRESET
  // (never SIGPIPE, which would kill this test process) and the next client is served normally.
  Runtime rt(options(1));
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, *Address::parse("127.0.0.1:0"), examples::serve_echo);
  ASSERT_TRUE(server.ok());
  Address addr = (*server)->address();
  for (int i = 0; i < 20; ++i) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::connect(fd, addr.sockaddr_ptr(), addr.length()), 0);
    std::vector<char> junk(256 * 1024, 'x');
    // Best effort: the send may block briefly until the server starts echoing.
    ::send(fd, junk.data(), junk.size(), MSG_DONTWAIT);
    linger lg{1, 0};  // close with RST
    ::setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    ::close(fd);
  }
  std::atomic<bool> ok{false};
  rt.spawn_on(0, [&]() -> Task<void> {
    auto conn = co_await net::dial(addr);
    if (!conn.ok()) co_return;
    std::string hello = "hello";
    if (!(co_await conn->write_all(absl::MakeConstSpan(hello.data(), hello.size()))).ok())
      co_return;
    char buf[5];
    size_t got = 0;
    while (got < 5) {
      auto n = co_await conn->read(absl::MakeSpan(buf + got, 5 - got));
      if (!n.ok() || *n == 0) co_return;
      got += *n;
    }
    ok = std::string_view(buf, 5) == "hello";
  });
  for (int i = 0; i < 500 && !ok; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  EXPECT_TRUE(ok);
  auto report = rt.drain(absl::Seconds(5));
  EXPECT_EQ(report.tasks_cancelled, 0u);
  server->reset();
}

TEST_P(EchoIntegration, RefusedConnectionIsAClearError) {
  Runtime rt(options(1));
  ASSERT_TRUE(rt.start().ok());
  // Bind a socket without listening, so its port refuses connections and no one else takes it.
  int holder = ::socket(AF_INET, SOCK_STREAM, 0);
  auto any = *Address::parse("127.0.0.1:0");
  ASSERT_EQ(::bind(holder, any.sockaddr_ptr(), any.length()), 0);
  sockaddr_storage ss{};
  socklen_t len = sizeof(ss);
  ::getsockname(holder, reinterpret_cast<sockaddr*>(&ss), &len);
  Address target = Address::from_sockaddr(reinterpret_cast<sockaddr*>(&ss), len);

  std::promise<absl::Status> result;
  rt.spawn_on(0, [&]() -> Task<void> {
    auto conn = co_await net::dial(target);
    result.set_value(conn.ok() ? absl::OkStatus() : testing::detached(conn.status()));
  });
  absl::Status status = result.get_future().get();
  ::close(holder);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_NE(status.message().find("connect to 127.0.0.1:"), absl::string_view::npos) << status;
}

TEST_P(EchoIntegration, Ipv6Loopback) {
  Runtime rt(options(2));
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, *Address::parse("[::1]:0"), examples::serve_echo);
  if (!server.ok() && absl::IsUnavailable(server.status())) {
    GTEST_SKIP() << "no IPv6 loopback here: " << server.status();
  }
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_EQ((*server)->address().family(), AF_INET6);
  std::promise<bool> ok;
  Address addr = (*server)->address();
  rt.spawn_on(1, [&]() -> Task<void> {
    auto conn = co_await net::dial(addr);
    ok.set_value(conn.ok() &&
                 co_await testing::echo_round_trip(*conn, testing::random_bytes(200000, 3)));
  });
  EXPECT_TRUE(ok.get_future().get());
  rt.drain(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Backends, EchoIntegration, testing::kAllConfigs,
                         testing::config_test_name);

}  // namespace
}  // namespace shardloop
