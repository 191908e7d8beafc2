// Connection::offload / spawn_offload: a handler computes each reply with co_await
// conn.offload(fn) and resumes on the connection's worker; the offloaded work carries the
// connection's affinity() (seen in the worker's steal hints as local starts when nobody steals);
// keys are unique per connection. Over every backend and poll mode.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <string>
#include <vector>

#include "net/server.h"
#include "runtime/runtime.h"
#include "tests/backend_params.h"
#include "tests/net/test_support.h"
#include "tests/runtime/test_util.h"

namespace shardloop {
namespace {

struct Seen {
  std::atomic<uint64_t> keys[2] = {};
  std::atomic<size_t> handlers{0};
  std::atomic<bool> off_owner{false};
};

// Replies with each chunk reversed, computed by an offloaded function.
Task<void> reverse_handler(Seen* seen, net::Connection conn) {
  const size_t i = seen->handlers.fetch_add(1);
  if (i < 2) seen->keys[i] = conn.affinity();
  for (;;) {
    auto chunk = co_await conn.read_chunk();
    if (!chunk.ok() || chunk->empty()) break;
    std::string in(chunk->data(), chunk->size());
    // A named awaiter: the closure captures a std::string (GCC 12, see runtime/offload.h).
    auto reverse = conn.offload([in] { return std::string(in.rbegin(), in.rend()); });
    std::string out = co_await reverse;
    if (Worker::current() != conn.worker()) seen->off_owner = true;
    conn.spawn_offload([]() -> Task<void> { co_return; }());
    if (!(co_await conn.write(absl::MakeConstSpan(out))).ok()) break;
  }
  (void)co_await conn.finish();
}

class ConnectionOffload : public ::testing::TestWithParam<testing::RuntimeConfig> {
 protected:
  void SetUp() override { SHARDLOOP_SKIP_IF_UNAVAILABLE(GetParam()); }
};

TEST_P(ConnectionOffload, RepliesComputedElsewhereComeBackToTheConnection) {
  Seen seen;
  Runtime rt(GetParam().options(1));
  ASSERT_TRUE(rt.start().ok());
  rt.worker(0).set_collect_steal_hints(true);
  auto server = net::Server::listen(rt, testing::loopback_any(), [&seen](net::Connection c) {
    return reverse_handler(&seen, std::move(c));
  });
  ASSERT_TRUE(server.ok());
  std::vector<int> fds;
  for (int k = 0; k < 2; ++k) {
    int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    ASSERT_EQ(::connect(fd, (*server)->address().sockaddr_ptr(), (*server)->address().length()), 0);
    fds.push_back(fd);
  }
  const std::string msg = "abcdef";
  for (int round = 0; round < 3; ++round) {
    for (int fd : fds) {
      ASSERT_EQ(::send(fd, msg.data(), msg.size(), MSG_NOSIGNAL), static_cast<ssize_t>(msg.size()));
      std::string got;
      char buf[16];
      while (got.size() < msg.size()) {
        ssize_t r = ::recv(fd, buf, sizeof(buf), 0);
        ASSERT_GT(r, 0);
        got.append(buf, static_cast<size_t>(r));
      }
      EXPECT_EQ(got, "fedcba");
    }
  }
  EXPECT_FALSE(seen.off_owner.load()) << "the handler resumed off its connection's worker";
  ASSERT_EQ(seen.handlers.load(), 2u);
  const uint64_t a = seen.keys[0].load(), b = seen.keys[1].load();
  EXPECT_NE(a, 0u);
  EXPECT_NE(b, 0u);
  EXPECT_NE(a, b);
  // One worker, so every offloaded root started where it was spawned: two per request
  // (offload and spawn_offload), three requests per connection.
  StealHintReport hints = rt.call_on(0, [&rt] { return rt.worker(0).take_steal_hints(); });
  ASSERT_EQ(hints.affinities.size(), 2u);
  EXPECT_EQ(hints.affinities[0], (AffinitySteals{std::min(a, b), 6, {}}));
  EXPECT_EQ(hints.affinities[1], (AffinitySteals{std::max(a, b), 6, {}}));
  for (int fd : fds) ::close(fd);
  server->reset();
  rt.stop();
}

INSTANTIATE_TEST_SUITE_P(Configs, ConnectionOffload, testing::kAllConfigs,
                         testing::config_test_name);

}  // namespace
}  // namespace shardloop
