// Steal affinity end to end (scheduler/rebalancer.h, Connection::spawn_offload): two connections on
// worker 0, a hog whose requests keep that worker busy and a target that offloads a small task
// per request. Worker 0 is busy when the offloads are queued, so idle worker 1 steals them; with
// the rebalancer on, the steal hints move the target to worker 1, its echo stream intact, and it
// stays there; with the rebalancer off, the same steals happen and it stays on worker 0.
// Balancing is switched off (min_source_busy above 1) so that only steal affinity can move it.
// Over every backend and poll mode.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "net/server.h"
#include "runtime/runtime.h"
#include "scheduler/rebalancer.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

using namespace std::chrono_literals;

// What the handlers publish for the test thread.
struct Shared {
  std::atomic<int> target_worker{-1};  // where the target's handler last resumed
  std::atomic<int> hog_worker{-1};
  std::atomic<bool> affinity_changed{false};
  std::atomic<size_t> offloads_on[2] = {};
};

void spin_for(std::chrono::microseconds d) {
  const auto until = std::chrono::steady_clock::now() + d;
  while (std::chrono::steady_clock::now() < until) {
  }
}

// The per-request work the target offloads. It touches nothing of the connection's.
Task<void> offloaded_work(Shared* sh) {
  sh->offloads_on[Worker::current()->index()].fetch_add(1, std::memory_order_relaxed);
  spin_for(20us);
  co_return;
}

// The first byte names the role ('H' hog, 'T' target); the reply is the worker's index, so the
// client can retry until both land on worker 0. Then: echo. The hog spends 300 us of CPU per
// request; the target offloads a task and spends 100 us itself (parsing, say), long enough for
// an idle worker to take the task before this worker's next run phase would start it.
Task<void> handler(Shared* sh, net::Connection conn) {
  char role = 0;
  auto first = co_await conn.read(absl::MakeSpan(&role, 1));
  if (!first.ok() || *first == 0) co_return;
  const char where = static_cast<char>('0' + Worker::current()->index());
  if (!(co_await conn.write(absl::MakeConstSpan(&where, 1))).ok()) co_return;
  const bool target = role == 'T';
  // Each handler checks its own connection's key (a rejected placement's handler may still run).
  const uint64_t key = conn.affinity();
  for (;;) {
    auto chunk = co_await conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;
    const int w = static_cast<int>(Worker::current()->index());
    if (target) {
      sh->target_worker.store(w);
      if (conn.affinity() != key) sh->affinity_changed = true;
      conn.spawn_offload(offloaded_work(sh));
      spin_for(100us);
    } else {
      sh->hog_worker.store(w);
      spin_for(300us);
    }
    if (!(co_await conn.write(*chunk)).ok()) break;
  }
  (void)co_await conn.finish();
}

// A blocking client socket with a receive timeout, so a lost echo fails instead of hanging.
int connect_to(const net::Address& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{.tv_sec = 10, .tv_usec = 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  if (::connect(fd, addr.sockaddr_ptr(), addr.length()) != 0) {
    ::close(fd);
    return -1;
  }
  net::configure_tcp_socket(fd);
  return fd;
}

bool recv_exact(int fd, char* buf, size_t n) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, buf + got, n - got, 0);
    if (r <= 0) return false;
    got += static_cast<size_t>(r);
  }
  return true;
}

// Connects with `role` until the server says the connection is on worker 0.
int connect_on_worker_0(const net::Address& addr, char role) {
  for (int attempt = 0; attempt < 64; ++attempt) {
    int fd = connect_to(addr);
    if (fd < 0) return -1;
    char where = 0;
    if (::send(fd, &role, 1, MSG_NOSIGNAL) == 1 && recv_exact(fd, &where, 1) && where == '0') {
      return fd;
    }
    ::close(fd);
  }
  return -1;
}

// The hog's client: 64-byte ping-pong as fast as the server answers.
void run_hog(int fd, const std::atomic<bool>& stop) {
  char msg[64], back[64];
  std::memset(msg, 'h', sizeof(msg));
  while (!stop.load(std::memory_order_relaxed)) {
    if (::send(fd, msg, sizeof(msg), MSG_NOSIGNAL) != sizeof(msg)) return;
    if (!recv_exact(fd, back, sizeof(back))) return;
  }
}

// The target's client: pseudo-random messages of 1-512 bytes, one every millisecond, each
// echo checked byte for byte; at `stop`, half-closes and waits for the server's FIN.
struct StreamResult {
  uint64_t sent = 0, received = 0;
  bool mismatch = false, clean_end = false;
};
void run_target(int fd, const std::atomic<bool>& stop, StreamResult* out) {
  std::mt19937_64 send_rng(42), check_rng(42), size_rng(7);
  std::vector<char> msg(512), back(512);
  while (!stop.load(std::memory_order_relaxed)) {
    const size_t n = 1 + size_rng() % msg.size();
    for (size_t i = 0; i < n; ++i) msg[i] = static_cast<char>(send_rng());
    if (::send(fd, msg.data(), n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return;
    out->sent += n;
    if (!recv_exact(fd, back.data(), n)) return;
    for (size_t i = 0; i < n; ++i) out->mismatch |= back[i] != static_cast<char>(check_rng());
    out->received += n;
    std::this_thread::sleep_for(1ms);
  }
  ::shutdown(fd, SHUT_WR);
  char c;
  out->clean_end = ::recv(fd, &c, 1, 0) == 0;
}

class StealAffinity : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

void run_scenario(const testing::RuntimeConfig& config, bool rebalancer_on) {
  Shared sh;
  Runtime rt(config.options(2));
  ASSERT_TRUE(rt.start().ok());
  auto server = net::Server::listen(
      rt, testing::loopback_any(), [&sh](net::Connection c) { return handler(&sh, std::move(c)); });
  ASSERT_TRUE(server.ok()) << server.status();
  const int hog_fd = connect_on_worker_0((*server)->address(), 'H');
  const int target_fd = connect_on_worker_0((*server)->address(), 'T');
  ASSERT_GE(hog_fd, 0) << "could not place the hog on worker 0";
  ASSERT_GE(target_fd, 0) << "could not place the target on worker 0";

  std::atomic<bool> stop_hog{false}, stop_target{false};
  StreamResult result;
  std::thread hog([&] { run_hog(hog_fd, stop_hog); });
  std::thread target([&] { run_target(target_fd, stop_target, &result); });
  {
    scheduler::RebalancerOptions options;
    options.enabled = rebalancer_on;
    options.interval = absl::Milliseconds(50);
    options.policy.steal_affinity_min = 4;
    options.policy.min_source_busy = 2;  // no balancing: only steal affinity may move anything
    scheduler::Rebalancer rebalancer(rt, (*server)->migratable(), options);
    const auto limit = std::chrono::milliseconds(10'000 * testing::kSanitizerScale);
    if (rebalancer_on) {
      const auto start = std::chrono::steady_clock::now();
      EXPECT_TRUE(testing::wait_until([&] { return sh.target_worker.load() == 1; }, limit))
          << "target still on worker " << sh.target_worker.load()
          << "; offloads run on 0/1: " << sh.offloads_on[0].load() << "/"
          << sh.offloads_on[1].load();
      const double moved_after_s =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      const uint64_t rounds_then = rebalancer.stats().rounds;
      const size_t on0 = sh.offloads_on[0].load(), on1 = sh.offloads_on[1].load();
      // It stays there, and keeps streaming.
      const size_t offloads_then = on0 + on1;
      std::this_thread::sleep_for(500ms);
      EXPECT_EQ(sh.target_worker.load(), 1);
      EXPECT_GT(sh.offloads_on[0].load() + sh.offloads_on[1].load(), offloads_then)
          << "the target stopped serving after the move";
      const scheduler::RebalancerStats stats = rebalancer.stats();
      EXPECT_GE(stats.steal_affinity_moves, 1u);
      EXPECT_EQ(stats.steal_affinity_moves, stats.moves_planned) << "a move that was not steal "
                                                                    "affinity's";
      std::printf(
          "%s: on worker 1 after %.2f s (%llu rounds); offloads run on worker 0/1 until then: "
          "%zu/%zu; %llu moves planned in all\n",
          testing::config_test_name({config, 0}).c_str(), moved_after_s,
          static_cast<unsigned long long>(rounds_then), on0, on1,
          static_cast<unsigned long long>(stats.moves_planned));
    } else {
      // The same steals go on, and nothing moves.
      EXPECT_TRUE(testing::wait_until([&] { return sh.offloads_on[1].load() >= 40; }, limit))
          << "worker 1 stole only " << sh.offloads_on[1].load() << " offloads";
      std::this_thread::sleep_for(1s);
      EXPECT_EQ(sh.target_worker.load(), 0);
      EXPECT_EQ(rebalancer.stats().moves_started, 0u);
    }
    EXPECT_EQ(sh.hog_worker.load(), 0);
  }
  stop_target = true;
  target.join();
  stop_hog = true;
  hog.join();
  EXPECT_FALSE(result.mismatch) << "the echo stream was corrupted";
  EXPECT_EQ(result.received, result.sent);
  EXPECT_GT(result.received, 0u);
  EXPECT_TRUE(result.clean_end) << "no orderly FIN from the target's handler";
  EXPECT_FALSE(sh.affinity_changed.load()) << "the connection's key changed when it moved";
  ::close(hog_fd);
  ::close(target_fd);
}

TEST_P(StealAffinity, ConnectionFollowsTheWorkerThatKeepsStealingItsWork) {
  run_scenario(GetParam(), /*rebalancer_on=*/true);
}

TEST_P(StealAffinity, WithTheRebalancerOffItStays) {
  run_scenario(GetParam(), /*rebalancer_on=*/false);
}

INSTANTIATE_TEST_SUITE_P(Configs, StealAffinity, testing::kAllConfigs, testing::config_test_name);

}  // namespace
}  // namespace shardloop
