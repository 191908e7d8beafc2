// Graceful drain under load: 50 clients in request/response loops, 5 idle clients and 5 slow
// clients that never read. drain(1 s) must stop accepting at once (new connections refused
// within 100 ms), answer every request sent (the server marks its last answer "closing", as
// HTTP's Connection: close does, and the client stops there), end idle connections, and
// force-close the stuck slow ones at the deadline, returning within deadline + 1 s.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>

#include "net/dialer.h"
#include "net/server.h"
#include "runtime/runtime.h"
#include "runtime/sleep.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"

namespace shardloop {
namespace {

using net::Connection;
using Clock = std::chrono::steady_clock;
constexpr size_t kRequestSize = 16;

// Reads exactly buf.size() bytes; false at end of stream or on error (draining included).
Task<bool> read_exactly(Connection& conn, absl::Span<char> buf) {
  size_t got = 0;
  while (got < buf.size()) {
    auto n = co_await conn.read(buf.subspan(got));
    if (!n.ok() || *n == 0) co_return false;
    got += *n;
  }
  co_return true;
}

class Drain : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

TEST_P(Drain, UnderLoadWithSlowClients) {
  std::atomic<uint64_t> requests_read{0};
  Runtime server_rt(GetParam().options(2));
  ASSERT_TRUE(server_rt.start().ok());
  // Fixed-size requests, each answered with the same bytes.
  auto server =
      net::Server::listen(server_rt, testing::loopback_any(), [&](Connection conn) -> Task<void> {
        char req[kRequestSize];
        while (co_await read_exactly(conn, absl::MakeSpan(req))) {
          requests_read++;
          // The last byte says whether this is the last answer.
          const bool closing = conn.draining();
          req[kRequestSize - 1] = closing ? 'C' : 'K';
          if (!(co_await conn.write(absl::MakeConstSpan(req))).ok()) break;
          if (closing) break;
        }
        (void)co_await conn.finish();
      });
  ASSERT_TRUE(server.ok());
  const net::Address addr = (*server)->address();
  // The slow clients' server answers each request with 64 KiB, so a client that never reads
  // soon has its handler stuck writing, where only the deadline can end it.
  auto slow_server =
      net::Server::listen(server_rt, testing::loopback_any(), [](Connection conn) -> Task<void> {
        char req[kRequestSize];
        std::vector<char> big(64 * 1024, 'b');
        while (co_await read_exactly(conn, absl::MakeSpan(req))) {
          if (!(co_await conn.write(absl::MakeConstSpan(big))).ok()) break;
        }
      });
  ASSERT_TRUE(slow_server.ok());
  const net::Address slow_addr = (*slow_server)->address();

  Runtime client_rt(GetParam().options(2));
  ASSERT_TRUE(client_rt.start().ok());
  std::atomic<uint64_t> responses{0}, sent{0};
  std::atomic<int> load_clients_done{0};
  const int kLoadClients = 50, kSlowClients = 5;
  for (int c = 0; c < kLoadClients; ++c) {
    client_rt.spawn_on(static_cast<size_t>(c) % 2, [&, c]() -> Task<void> {
      auto conn = co_await net::dial(addr);
      if (conn.ok()) {
        char req[kRequestSize], resp[kRequestSize];
        for (uint64_t i = 0;; ++i) {
          // Client number and sequence number, so a misrouted response would not match.
          const uint64_t id = (static_cast<uint64_t>(c) << 48) | i;
          std::memcpy(req, &id, sizeof(id));
          std::memcpy(req + sizeof(id), &id, sizeof(id));
          if (!(co_await conn->write_all(absl::MakeConstSpan(req, kRequestSize))).ok()) break;
          sent++;
          if (!co_await read_exactly(*conn, absl::MakeSpan(resp))) break;
          if (std::memcmp(req, resp, kRequestSize - 1) != 0) ADD_FAILURE() << "response mismatch";
          responses++;
          if (resp[kRequestSize - 1] == 'C') break;  // the server is closing: send no more
        }
      }
      load_clients_done++;
    });
  }
  // Idle clients: connected, never send. The drain must close them (they read end of stream).
  const int kIdleClients = 5;
  std::atomic<int> idle_closed{0};
  for (int c = 0; c < kIdleClients; ++c) {
    client_rt.spawn_on(1, [&]() -> Task<void> {
      auto conn = co_await net::dial(addr);
      if (!conn.ok()) co_return;
      char b;
      auto n = co_await conn->read(absl::MakeSpan(&b, 1));
      if (n.ok() && *n == 0) idle_closed++;
    });
  }
  std::atomic<bool> stop_slow{false};
  for (int c = 0; c < kSlowClients; ++c) {
    client_rt.spawn_on(0, [&]() -> Task<void> {
      auto conn = co_await net::dial(slow_addr);
      if (!conn.ok()) co_return;
      std::vector<char> requests(64 * 1024, 'r');
      // Sends requests and never reads a response: the server ends up blocked writing to us.
      while (!stop_slow && (co_await conn->write(absl::MakeConstSpan(requests))).ok()) {
      }
    });
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  ASSERT_GT(responses.load(), 0u);

  // Drain on another thread; watch for refused connections from this one.
  const auto drain_start = Clock::now();
  DrainReport report;
  std::thread drainer([&] { report = server_rt.drain(absl::Seconds(1)); });
  double refused_after = -1;
  while (Clock::now() - drain_start < std::chrono::seconds(2)) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int rc = ::connect(fd, addr.sockaddr_ptr(), addr.length());
    int err = errno;
    ::close(fd);
    if (rc != 0 && err == ECONNREFUSED) {
      refused_after = std::chrono::duration<double>(Clock::now() - drain_start).count();
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  drainer.join();
  stop_slow = true;
  EXPECT_TRUE(testing::wait_until([&] { return load_clients_done.load() == kLoadClients; },
                                  std::chrono::seconds(30)));
  client_rt.stop();
  server->reset();
  slow_server->reset();

  std::printf(
      "drain: %zu tasks at start, %zu cancelled at the deadline, %.3f s; new connections "
      "refused after %.3f s; %llu requests read by the server, %llu responses received, "
      "%llu requests sent\n",
      report.tasks_at_start, report.tasks_cancelled, absl::ToDoubleSeconds(report.elapsed),
      refused_after, static_cast<unsigned long long>(requests_read.load()),
      static_cast<unsigned long long>(responses.load()),
      static_cast<unsigned long long>(sent.load()));
  EXPECT_GE(refused_after, 0) << "new connections were never refused";
  EXPECT_LT(refused_after, 0.1);
  EXPECT_EQ(requests_read.load(), responses.load())
      << "every request the server read must have been answered in full";
  EXPECT_EQ(sent.load(), responses.load()) << "every request sent must have been answered";
  EXPECT_EQ(idle_closed.load(), kIdleClients) << "idle connections must be closed by the drain";
  EXPECT_GE(report.tasks_cancelled, static_cast<size_t>(kSlowClients)) << "slow clients' handlers";
  EXPECT_TRUE(report.deadline_hit);
  EXPECT_LT(absl::ToDoubleSeconds(report.elapsed), 1.0 + 1.0);
}

INSTANTIATE_TEST_SUITE_P(Backends, Drain, testing::kAllConfigs, testing::config_test_name);

}  // namespace
}  // namespace shardloop
