// io_uring-specific behaviour (and the same churn on epoll): fallback when io_uring is refused,
// connection churn with early closes and resets while completions are in flight, an exhausted
// provided-buffer ring, a reader slower than its sender, and the per-worker counters.
#include <gtest/gtest.h>
#include <sys/socket.h>

#include <atomic>
#include <cerrno>
#include <future>
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
using testing::echo_round_trip;
using testing::loopback_any;
using testing::random_bytes;

TEST(UringFallback, AutoFallsBackToEpollWhenIoUringIsRefused) {
  inject_io_uring_failure_for_testing(EPERM);
  {
    Runtime rt({.workers = 2, .backend = Backend::kAuto});
    ASSERT_TRUE(rt.start().ok());
    EXPECT_EQ(rt.worker(0).backend(), Backend::kEpoll);
    auto server = net::Server::listen(rt, loopback_any(), examples::serve_echo);
    ASSERT_TRUE(server.ok());
    std::promise<bool> ok;
    Address addr = (*server)->address();
    rt.spawn_on(1, [&]() -> Task<void> {
      auto conn = co_await net::dial(addr);
      ok.set_value(conn.ok() && co_await echo_round_trip(*conn, random_bytes(100000, 1)));
    });
    EXPECT_TRUE(ok.get_future().get());
    rt.drain(absl::Seconds(5));
  }
  {
    Runtime rt({.workers = 1, .backend = Backend::kIoUring});
    absl::Status s = rt.start();
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << s;
    EXPECT_NE(s.message().find("io_uring"), absl::string_view::npos) << s;
  }
  inject_io_uring_failure_for_testing(0);
}

class BackendTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

// Connect/send/close cycles where a third of the clients read the full echo, a third close as
// soon as they have sent, and a third reset the connection (RST) while data is in flight.
TEST_P(BackendTest, ChurnWithEarlyClosesAndResets) {
  const uint64_t seed = testing::test_seed();
  SCOPED_TRACE(::testing::Message() << "seed " << seed);
  // io_uring keeps all 10,000 cycles under the sanitizers (cancellations racing closes and
  // resets are its use-after-free risk); epoll is scaled down there.
  const int cycles = GetParam() == Backend::kIoUring ? 10000 : 10000 / testing::kSanitizerScale;
  const int concurrency = 100;
  const int fds_before = testing::count_open_fds();
  std::atomic<int> verified{0}, failed{0}, done{0};
  {
    Runtime server_rt({.workers = 2, .backend = GetParam()});
    ASSERT_TRUE(server_rt.start().ok());
    auto server = net::Server::listen(server_rt, loopback_any(), examples::serve_echo);
    ASSERT_TRUE(server.ok());
    Address addr = (*server)->address();
    Runtime client_rt({.workers = 2, .backend = GetParam()});
    ASSERT_TRUE(client_rt.start().ok());
    for (int lane = 0; lane < concurrency; ++lane) {
      client_rt.spawn_on(static_cast<size_t>(lane) % 2, [&, lane]() -> Task<void> {
        std::mt19937_64 rng(seed + static_cast<uint64_t>(lane));
        for (int i = lane; i < cycles; i += concurrency) {
          auto conn = co_await net::dial(addr);
          if (!conn.ok()) {
            failed.fetch_add(1);
            done.fetch_add(1);
            continue;
          }
          auto data = random_bytes(1 + rng() % (64 * 1024), rng());
          switch (rng() % 3) {
            case 0:
              if (co_await echo_round_trip(*conn, data)) {
                verified.fetch_add(1);
              } else {
                failed.fetch_add(1);
              }
              break;
            case 1:
              (void)co_await conn->write_all(absl::MakeConstSpan(data));
              break;
            case 2: {
              (void)co_await conn->write_all(absl::MakeConstSpan(data.data(), data.size() / 2));
              linger lg{1, 0};
              ::setsockopt(conn->fd(), SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
              break;
            }
          }
          conn->close();
          done.fetch_add(1);
        }
      });
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(240);
    while (done.load() < cycles && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    EXPECT_EQ(done.load(), cycles);
    client_rt.stop();
    // The server's connection tasks end as the closes and resets reach them.
    const auto settle = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (server_rt.live_tasks() > 2 && std::chrono::steady_clock::now() < settle) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    auto report = server_rt.drain(absl::Seconds(10));
    EXPECT_EQ(report.tasks_cancelled, 0u);
    server->reset();
  }
  EXPECT_EQ(failed.load(), 0);
  EXPECT_GT(verified.load(), cycles / 5);
  EXPECT_EQ(testing::count_open_fds(), fds_before) << "fds leaked";
}

// A reader that starts late: the sender's bytes pile up (on io_uring, the receive pauses at the
// per-connection chunk cap and resumes as the reader drains) and every byte still arrives.
TEST_P(BackendTest, SlowReaderGetsEveryByte) {
  const size_t total = (8u << 20) / testing::kSanitizerScale;
  Runtime rt({.workers = 2, .backend = GetParam()});
  ASSERT_TRUE(rt.start().ok());
  std::promise<std::pair<size_t, uint64_t>> received;
  auto server = net::Server::listen(rt, loopback_any(), [&](Connection conn) -> Task<void> {
    co_await sleep_for(std::chrono::milliseconds(300));
    std::vector<char> buf(100000);
    size_t n_total = 0;
    uint64_t sum = 0;
    for (;;) {
      auto n = co_await conn.read(absl::MakeSpan(buf));
      if (!n.ok() || *n == 0) break;
      for (size_t i = 0; i < *n; ++i) sum = sum * 31 + static_cast<unsigned char>(buf[i]);
      n_total += *n;
    }
    received.set_value({n_total, sum});
  });
  ASSERT_TRUE(server.ok());
  auto data = random_bytes(total, 7);
  uint64_t expected = 0;
  for (char c : data) expected = expected * 31 + static_cast<unsigned char>(c);
  Address addr = (*server)->address();
  rt.spawn_on(1, [&]() -> Task<void> {
    auto conn = co_await net::dial(addr);
    if (!conn.ok()) co_return;
    (void)co_await conn->write_all(absl::MakeConstSpan(data));
    (void)co_await conn->shutdown_write();
    conn->close();
  });
  auto [n, sum] = received.get_future().get();
  EXPECT_EQ(n, total);
  EXPECT_EQ(sum, expected);
  rt.drain(absl::Seconds(5));
}

INSTANTIATE_TEST_SUITE_P(Backends, BackendTest, testing::kAllBackends, testing::backend_test_name);

// A provided-buffer ring of four 512-byte buffers shared by 50 connections runs dry over and
// over (ENOBUFS); receives re-arm once buffers come back and no byte is lost.
TEST(UringBuffers, ExhaustedBufferRingLosesNothing) {
  SHARDLOOP_SKIP_IF_UNAVAILABLE(Backend::kIoUring);
  RuntimeOptions options{.workers = 1, .backend = Backend::kIoUring};
  options.poller.uring_buffer_count = 4;
  options.poller.uring_buffer_size = 512;
  Runtime server_rt(options);
  ASSERT_TRUE(server_rt.start().ok());
  auto server = net::Server::listen(server_rt, loopback_any(), examples::serve_echo);
  ASSERT_TRUE(server.ok());
  Runtime client_rt({.workers = 1, .backend = Backend::kEpoll});
  ASSERT_TRUE(client_rt.start().ok());
  const int connections = 50;
  std::atomic<int> ok{0}, done{0};
  Address addr = (*server)->address();
  for (int c = 0; c < connections; ++c) {
    client_rt.spawn_on(0, [&, c]() -> Task<void> {
      auto conn = co_await net::dial(addr);
      if (conn.ok() && co_await echo_round_trip(*conn, random_bytes(64 * 1024, 100 + c))) ok++;
      done++;
    });
  }
  for (int i = 0; i < 6000 && done.load() < connections; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.load(), connections);
  PollerCounters counters =
      server_rt.call_on(0, [] { return Worker::current()->poller_counters(); });
  EXPECT_GT(counters.enobufs, 0u) << "the test meant to exhaust the buffer ring did not";
  EXPECT_GT(counters.buffer_refills, 0u);
  client_rt.stop();
  server_rt.drain(absl::Seconds(5));
}

TEST(UringCounters, EchoLoadIsCounted) {
  SHARDLOOP_SKIP_IF_UNAVAILABLE(Backend::kIoUring);
  // No spin before a park: with a spare CPU the adaptive mode's spin enters the ring while it
  // waits, loops without work that this test's one-enter-per-loop bound does not count.
  Runtime rt({.workers = 1, .backend = Backend::kIoUring, .adaptive_spin_ns = 0});
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(rt, loopback_any(), examples::serve_echo);
  ASSERT_TRUE(server.ok());
  std::promise<bool> ok;
  Address addr = (*server)->address();
  rt.spawn_on(0, [&]() -> Task<void> {
    auto conn = co_await net::dial(addr);
    bool all = conn.ok();
    for (int i = 0; all && i < 100; ++i)
      all = co_await echo_round_trip(*conn, random_bytes(100, i));
    ok.set_value(all);
  });
  EXPECT_TRUE(ok.get_future().get());
  PollerCounters c = rt.call_on(0, [] { return Worker::current()->poller_counters(); });
  EXPECT_GT(c.submissions, 200u);  // at least a send per round trip, both sides
  EXPECT_GT(c.completions, 200u);
  EXPECT_GT(c.enter_calls, 0u);
  EXPECT_LT(c.enter_calls, c.submissions + c.completions) << "one enter per loop, not per op";
  EXPECT_GT(c.buffer_refills, 0u);
  rt.drain(absl::Seconds(5));
}

}  // namespace
}  // namespace shardloop
