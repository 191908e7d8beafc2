// The connection layer on both backends: timeouts and the total deadline, half-close, abortive
// close, and the server's connection limit.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <future>
#include <thread>

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
using std::chrono::milliseconds;
using testing::loopback_any;
using testing::wait_until;

// A blocking client socket connected to `addr`.
int connect_blocking(const Address& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd >= 0 && ::connect(fd, addr.sockaddr_ptr(), addr.length()) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

class ConnectionTest : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override {
    SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam());
    ASSERT_TRUE(rt_.start().ok());
  }
  void TearDown() override { rt_.stop(); }

  // Starts a server whose handler reports the status its first failing read returned, and
  // when (seconds after accept).
  struct ReadOutcome {
    absl::Status status;
    double seconds = 0;
  };
  std::unique_ptr<net::Server> serve_reads(net::ServerOptions options,
                                           std::promise<ReadOutcome>* outcome,
                                           absl::Duration deadline = absl::InfiniteDuration()) {
    auto server = net::Server::listen(
        rt_, loopback_any(),
        [outcome, deadline](Connection conn) -> Task<void> {
          const auto start = std::chrono::steady_clock::now();
          if (deadline != absl::InfiniteDuration()) conn.set_deadline(absl::Now() + deadline);
          char buf[64];
          for (;;) {
            auto n = co_await conn.read(absl::MakeSpan(buf));
            if (!n.ok() || *n == 0) {
              outcome->set_value(
                  {n.ok() ? absl::OkStatus() : testing::detached(n.status()),
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                       .count()});
              co_return;
            }
          }
        },
        options);
    EXPECT_TRUE(server.ok()) << server.status();
    return server.ok() ? std::move(*server) : nullptr;
  }

  Runtime rt_{GetParam().options(1)};
};

TEST_P(ConnectionTest, ReadTimeoutFailsTheWaitingRead) {
  std::promise<ReadOutcome> outcome;
  net::ServerOptions options;
  options.connection.read_timeout = absl::Milliseconds(100);
  auto server = serve_reads(options, &outcome);
  int fd = connect_blocking(server->address());
  ASSERT_GE(fd, 0);
  ReadOutcome r = outcome.get_future().get();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded) << r.status;
  EXPECT_NE(r.status.message().find("read timed out"), absl::string_view::npos) << r.status;
  EXPECT_GE(r.seconds, 0.1);
  ::close(fd);
}

TEST_P(ConnectionTest, IdleTimeoutClosesTheConnection) {
  std::promise<ReadOutcome> outcome;
  net::ServerOptions options;
  options.connection.idle_timeout = absl::Milliseconds(150);
  auto server = serve_reads(options, &outcome);
  int fd = connect_blocking(server->address());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "x", 1, 0), 1);  // one byte of activity, then silence
  ReadOutcome r = outcome.get_future().get();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded) << r.status;
  EXPECT_NE(r.status.message().find("idle"), absl::string_view::npos) << r.status;
  EXPECT_GE(r.seconds, 0.15);
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 0) << "the client should see the server's FIN";
  ::close(fd);
}

// A client that trickles a byte every 50 ms keeps both the read and the idle timers happy;
// only the total deadline ends it.
TEST_P(ConnectionTest, TotalDeadlineStopsATrickle) {
  std::promise<ReadOutcome> outcome;
  net::ServerOptions options;
  options.connection.read_timeout = absl::Milliseconds(200);
  options.connection.idle_timeout = absl::Milliseconds(200);
  auto server = serve_reads(options, &outcome, absl::Milliseconds(400));
  int fd = connect_blocking(server->address());
  ASSERT_GE(fd, 0);
  auto future = outcome.get_future();
  std::atomic<bool> reset_seen{false};
  std::thread trickle([&] {
    for (int i = 0; i < 100; ++i) {
      if (::send(fd, "x", 1, MSG_NOSIGNAL) != 1) {
        reset_seen = true;
        return;
      }
      std::this_thread::sleep_for(milliseconds(50));
    }
  });
  ReadOutcome r = future.get();
  trickle.join();
  EXPECT_EQ(r.status.code(), absl::StatusCode::kDeadlineExceeded) << r.status;
  EXPECT_NE(r.status.message().find("deadline"), absl::string_view::npos) << r.status;
  EXPECT_GE(r.seconds, 0.4);
  EXPECT_LT(r.seconds, 3.0);
  EXPECT_TRUE(reset_seen) << "the trickling client should have been cut off";
  ::close(fd);
}

TEST_P(ConnectionTest, WriteTimeoutWhenThePeerStopsReading) {
  std::promise<absl::Status> outcome;
  net::ServerOptions options;
  options.connection.write_timeout = absl::Milliseconds(200);
  auto server = net::Server::listen(
      rt_, loopback_any(),
      [&](Connection conn) -> Task<void> {
        std::vector<char> block(64 * 1024, 'w');
        for (;;) {
          absl::Status s = co_await conn.write(absl::MakeConstSpan(block));
          if (!s.ok()) {
            outcome.set_value(testing::detached(s));
            co_return;
          }
        }
      },
      options);
  ASSERT_TRUE(server.ok());
  int fd = connect_blocking((*server)->address());  // and never reads
  ASSERT_GE(fd, 0);
  absl::Status s = outcome.get_future().get();
  EXPECT_EQ(s.code(), absl::StatusCode::kDeadlineExceeded) << s;
  EXPECT_NE(s.message().find("write timed out"), absl::string_view::npos) << s;
  ::close(fd);
}

// 1,000 trials of "send N bytes, then shutdown(SHUT_WR)": the echo comes back whole, then FIN.
TEST_P(ConnectionTest, HalfCloseGetsTheWholeReplyThenFin) {
  auto server = net::Server::listen(rt_, loopback_any(), examples::serve_echo);
  ASSERT_TRUE(server.ok());
  Runtime clients(GetParam().options(1));
  ASSERT_TRUE(clients.start().ok());
  const int trials = 1000 / testing::kSanitizerScale;
  const int lanes = 20;
  std::atomic<int> complete{0}, done{0};
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  Address addr = (*server)->address();
  for (int lane = 0; lane < lanes; ++lane) {
    clients.spawn_on(0, [&, lane]() -> Task<void> {
      std::mt19937_64 rng(seed + static_cast<uint64_t>(lane));
      for (int t = lane; t < trials; t += lanes) {
        auto data = testing::random_bytes(rng() % 100000, rng());
        auto conn = co_await net::dial(addr);
        bool ok = conn.ok() && (co_await conn->write_all(absl::MakeConstSpan(data))).ok() &&
                  (co_await conn->shutdown_write()).ok();
        std::vector<char> got;
        char buf[16384];
        while (ok) {
          auto n = co_await conn->read(absl::MakeSpan(buf));
          if (!n.ok()) ok = false;
          if (!ok || *n == 0) break;  // 0: FIN after the reply
          got.insert(got.end(), buf, buf + *n);
        }
        if (ok && got == data) complete++;
        done++;
      }
    });
  }
  EXPECT_TRUE(wait_until([&] { return done.load() == trials; }, std::chrono::seconds(300)));
  EXPECT_EQ(complete.load(), trials);
  clients.stop();
}

TEST_P(ConnectionTest, AbortSendsReset) {
  auto server = net::Server::listen(rt_, loopback_any(), [](Connection conn) -> Task<void> {
    char c;
    (void)co_await conn.read(absl::MakeSpan(&c, 1));
    conn.abort();
  });
  ASSERT_TRUE(server.ok());
  int fd = connect_blocking((*server)->address());
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::send(fd, "x", 1, 0), 1);
  char buf[8];
  ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
  EXPECT_EQ(n, -1);
  EXPECT_EQ(errno, ECONNRESET);
  ::close(fd);
}

TEST_P(ConnectionTest, ConnectionLimitRefusesTheExcess) {
  net::ServerOptions options;
  options.max_connections = 10;
  auto server = net::Server::listen(rt_, loopback_any(), examples::serve_echo, options);
  ASSERT_TRUE(server.ok());
  std::vector<int> fds;
  for (int i = 0; i < 20; ++i) {
    int fd = connect_blocking((*server)->address());
    ASSERT_GE(fd, 0);
    fds.push_back(fd);
  }
  ASSERT_TRUE(wait_until([&] {
    auto s = (*server)->stats();
    return s.accepted[0] + s.refused == 20;
  }));
  auto stats = (*server)->stats();
  EXPECT_EQ(stats.accepted[0], 10u);
  EXPECT_EQ(stats.refused, 10u);
  EXPECT_EQ(stats.open, 10u);
  int served = 0, refused = 0;
  for (int fd : fds) {
    char c = 'p';
    ::send(fd, &c, 1, MSG_NOSIGNAL);
    ssize_t n = ::recv(fd, &c, 1, 0);
    if (n == 1) served++;
    if (n <= 0) refused++;
    ::close(fd);
  }
  EXPECT_EQ(served, 10);
  EXPECT_EQ(refused, 10);
}

INSTANTIATE_TEST_SUITE_P(Backends, ConnectionTest, testing::kAllConfigs, testing::config_test_name);

}  // namespace
}  // namespace shardloop
